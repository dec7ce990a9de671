//! The one shape of Stratum's control loops, after kube-rs's controller runtime: a [`Reconciler`] compares what
//! should run with what runs and takes one step towards it, and the [`Action`] it returns says when to look again.
//! A pass that fails is tried again after the shared [`Backoff`], through the reconciler's error policy. [`run`]
//! drives any of them the same way: the control plane's placement ([`crate::server`]), each agent's heartbeat
//! ([`crate::agent`]), the training scheduler and `stratum up`'s supervisor ([`crate::supervisor`]).
//!
//! The loops are level-triggered: a pass reads the whole state it acts on, so a missed wake-up or a pass that
//! failed half-way is mended by the next one.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// When a reconciler wants its next pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// After this long, even if nothing wakes it: what it watches may change without a word (an agent that
    /// stops heartbeating, a component that fails).
    Requeue(Duration),
    /// Only when woken or stopped.
    AwaitChange,
    /// Never again: the loop has ended (an agent whose token the control plane refused).
    Done,
}

/// One control loop: what it wants, what is, and the step between them.
pub trait Reconciler: Send {
    /// What makes a pass fail.
    type Error: std::fmt::Display + Send;

    /// The loop's name, for logs.
    fn name(&self) -> &'static str;

    /// One pass: observe, compare with what is wanted, act; when to pass again.
    fn reconcile(&mut self) -> impl Future<Output = Result<Action, Self::Error>> + Send;

    /// The backoff its failed passes wait by: the shared one (1 s doubling to a minute) unless it says otherwise.
    fn backoff(&self) -> Backoff {
        Backoff::default()
    }

    /// What to do after a failed pass: by default, log it and try again after the backoff.
    fn error_policy(&mut self, error: &Self::Error, backoff: &mut Backoff) -> Action {
        let wait = backoff.after(Duration::ZERO);
        tracing::warn!(reconciler = self.name(), %error, wait_seconds = wait.as_secs_f64(), "pass failed; trying again");
        Action::Requeue(wait)
    }
}

/// Runs `reconciler` until `stop` turns true, a pass at a time: the next one when its action says, or at once when
/// `wake` is notified. Gives the reconciler back, to be drained by its owner.
pub async fn run<R: Reconciler>(mut reconciler: R, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) -> R {
    let mut backoff = reconciler.backoff();
    loop {
        if *stop.borrow() {
            return reconciler;
        }
        let action = match reconciler.reconcile().await {
            Ok(action) => {
                backoff.reset();
                action
            }
            Err(error) => reconciler.error_policy(&error, &mut backoff),
        };
        let next = async {
            match action {
                Action::Requeue(wait) => tokio::time::sleep(wait).await,
                Action::AwaitChange => std::future::pending().await,
                Action::Done => {}
            }
        };
        if action == Action::Done {
            return reconciler;
        }
        tokio::select! {
            _ = next => {}
            _ = wake.notified() => {}
            _ = stop.wait_for(|stopped| *stopped) => return reconciler,
        }
    }
}

/// The first wait of the shared backoff.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A run this long resets the backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(600);

/// How long to wait before trying again what failed (a pass, a tool that exited, a data plane a component
/// stopped): 1 s, 2 s, 4 s … at most a minute by default, and the first wait again after a run of ten minutes.
#[derive(Clone, Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new(FIRST_BACKOFF, MAX_BACKOFF)
    }
}

impl Backoff {
    /// A backoff from `first`, doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max, next: first }
    }

    /// The wait before the next try, after a run that lasted `ran`; the wait after it doubles.
    pub fn after(&mut self, ran: Duration) -> Duration {
        if ran >= HEALTHY_RUN {
            self.next = self.first;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// Back to the first wait: what failed works again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute_and_starts_over_after_a_long_run() {
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..8).map(|_| backoff.after(Duration::from_secs(1)).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff.after(Duration::from_secs(600)), Duration::from_secs(1));
        assert_eq!(backoff.after(Duration::ZERO), Duration::from_secs(2));
        backoff.reset();
        assert_eq!(backoff.after(Duration::ZERO), Duration::from_secs(1));
    }

    /// Fails its first two passes, then counts passes; wants a pass every 10 ms.
    struct Flaky {
        passes: u32,
        failures: Vec<Duration>,
    }

    impl Reconciler for Flaky {
        type Error = String;

        fn name(&self) -> &'static str {
            "flaky"
        }

        async fn reconcile(&mut self) -> Result<Action, String> {
            self.passes += 1;
            if self.passes <= 2 { Err(format!("pass {} failed", self.passes)) } else { Ok(Action::AwaitChange) }
        }

        fn error_policy(&mut self, _error: &String, _backoff: &mut Backoff) -> Action {
            let wait = Duration::from_millis(5 * (self.failures.len() as u64 + 1));
            self.failures.push(wait);
            Action::Requeue(wait)
        }
    }

    #[tokio::test]
    async fn a_failed_pass_is_tried_again_by_its_policy_and_a_quiet_loop_waits_to_be_woken() {
        let wake = Arc::new(Notify::new());
        let (stop, stopped) = watch::channel(false);
        let running = tokio::spawn(run(Flaky { passes: 0, failures: Vec::new() }, wake.clone(), stopped));
        // Two failures wait 5 ms and 10 ms; the third pass succeeds and the loop waits for a wake-up, however long.
        tokio::time::sleep(Duration::from_millis(300)).await;
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send_replace(true);
        let flaky = running.await.unwrap();
        assert_eq!(flaky.failures, [Duration::from_millis(5), Duration::from_millis(10)]);
        assert_eq!(flaky.passes, 4, "three passes to succeed, one more when woken");
    }
}
