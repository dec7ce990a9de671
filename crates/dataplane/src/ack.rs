//! End-to-end acknowledgements: how a source learns that the records it took in are durable, so that it
//! acknowledges them to whoever sent them (an HTTP 200, an MQTT PUBACK, a committed offset) only then.
//!
//! A source that can acknowledge makes an [`Ack`] for what it sends and keeps its [`Settlement`]. The ack travels
//! with the records: every component that holds them holds a share of it (a clone), and hands its share on to
//! what it makes of them, or marks it [`Ack::done`] once the records are durable or no longer needed (written and
//! synced by a sink, appended to a path's durable log, taken into a synced checkpoint, filtered out). The
//! settlement resolves when the last share is gone: [`Settled::Durable`] when every share was marked done,
//! [`Settled::Failed`] when any was dropped without it — a sink that failed, a channel dropped when the pipeline
//! stopped, a process that is going away. So a failure on any path is never taken for success.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::oneshot;

/// How the records behind an [`Ack`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Every component that held them made them durable or no longer needed them.
    Durable,
    /// A component failed with them, or dropped them unfinished: the source must not acknowledge them.
    Failed,
}

/// One share in the outcome of some records. Cloning makes another share; see the module documentation.
pub struct Ack {
    shared: Arc<Shared>,
    done: bool,
}

struct Shared {
    failed: AtomicBool,
    settled: std::sync::Mutex<Option<oneshot::Sender<Settled>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let outcome = if self.failed.load(Ordering::Acquire) { Settled::Failed } else { Settled::Durable };
        if let Some(sender) = self.settled.get_mut().ok().and_then(Option::take) {
            // The source may have stopped waiting; then nobody needs to know.
            let _ = sender.send(outcome);
        }
    }
}

impl Ack {
    /// A new ack, and the settlement its source waits on.
    pub fn new() -> (Ack, Settlement) {
        let (sender, receiver) = oneshot::channel();
        let shared = Shared { failed: AtomicBool::new(false), settled: std::sync::Mutex::new(Some(sender)) };
        (Ack { shared: Arc::new(shared), done: false }, Settlement(receiver))
    }

    /// This share's records are durable, or no longer needed.
    pub fn done(mut self) {
        self.done = true;
    }
}

impl Clone for Ack {
    fn clone(&self) -> Ack {
        Ack { shared: self.shared.clone(), done: false }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if !self.done {
            self.shared.failed.store(true, Ordering::Release);
        }
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Ack")
    }
}

/// The outcome of an [`Ack`], once its last share is gone.
#[derive(Debug)]
pub struct Settlement(oneshot::Receiver<Settled>);

impl std::future::Future for Settlement {
    type Output = Settled;

    fn poll(mut self: std::pin::Pin<&mut Self>, context: &mut std::task::Context<'_>) -> std::task::Poll<Settled> {
        // The sender goes only with the last share, after sending; a receive error cannot mean success.
        std::pin::Pin::new(&mut self.0).poll(context).map(|outcome| outcome.unwrap_or(Settled::Failed))
    }
}

/// Commits what each settlement covers, in the order they were sent, once it settles durable: a file position,
/// a log's acknowledgement. Stops at the first that does not: what it covers, and everything after it, must stay
/// uncommitted for the next run to send again. `commit` runs blocking I/O (it syncs), off the async threads.
pub async fn commit_in_order<T: Send + 'static>(
    mut settlements: tokio::sync::mpsc::UnboundedReceiver<(T, Settlement)>,
    commit: impl Fn(T) + Clone + Send + 'static,
) {
    while let Some((covered, settlement)) = settlements.recv().await {
        if settlement.await == Settled::Failed {
            return;
        }
        let commit = commit.clone();
        let _ = tokio::task::spawn_blocking(move || commit(covered)).await;
    }
}

/// The acks records carry: usually none (a generator's) or one (a source's), more where a component merges what
/// came from several.
#[derive(Debug, Default)]
pub struct Acks(Vec<Ack>);

impl Acks {
    /// Nothing to acknowledge (a record that no one waits for).
    pub fn none() -> Acks {
        Acks(Vec::new())
    }

    /// Whether it holds no acknowledgement.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes on the shares of `other`.
    pub fn extend(&mut self, other: Acks) {
        self.0.extend(other.0);
    }

    /// Another share of each: for a second holder of the same records.
    pub fn share(&self) -> Acks {
        Acks(self.0.clone())
    }

    /// These records are durable, or no longer needed.
    pub fn done(self) {
        self.0.into_iter().for_each(Ack::done);
    }
}

impl From<Ack> for Acks {
    fn from(ack: Ack) -> Acks {
        Acks(vec![ack])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_ack_settles_durable_only_when_every_share_is_done() {
        let (ack, settlement) = Ack::new();
        let (first, second) = (Acks::from(ack), Acks::none());
        let mut second = second;
        second.extend(first.share());
        first.done();
        second.done();
        assert_eq!(settlement.await, Settled::Durable);
    }

    #[tokio::test]
    async fn one_share_dropped_unfinished_fails_the_whole() {
        let (ack, settlement) = Ack::new();
        let shares = Acks::from(ack);
        let other = shares.share();
        shares.done();
        drop(other);
        assert_eq!(settlement.await, Settled::Failed);
    }

    #[tokio::test]
    async fn a_settlement_waits_while_a_share_is_held() {
        let (ack, mut settlement) = Ack::new();
        let held = ack.clone();
        ack.done();
        assert!(futures_poll_once(&mut settlement).await.is_none(), "a share is still held");
        held.done();
        assert_eq!(settlement.await, Settled::Durable);
    }

    async fn futures_poll_once(settlement: &mut Settlement) -> Option<Settled> {
        tokio::time::timeout(std::time::Duration::from_millis(20), settlement).await.ok()
    }
}
