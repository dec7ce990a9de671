//! The lease an agent holds on the stateful streams it runs: the fence that keeps a stream from running on two
//! machines at once.
//!
//! The control plane moves a stream off an agent that has not heartbeated for its agent timeout. An agent that is
//! cut off (a partition) or was not running (SIGSTOP, a suspended machine) cannot know that it happened, so it
//! holds its streams only for a lease: the agent timeout, counted from when it sent the last heartbeat the control
//! plane answered — that is never later than the control plane counts from, so the lease ends before the stream
//! can move. A windowed or joining stream whose lease has ended pauses: it takes nothing in, closes no window and
//! emits nothing, until the next answer renews the lease (its state stays its own) or its agent is told to let it
//! go (it leaves without emitting; its producers send what it had not acknowledged to where it runs now). So a
//! stale stream emits no window twice. Nothing is lost: what it holds was acknowledged only once the control plane
//! kept it (see [`crate::checkpoint::CheckpointCopies`]), and its sources keep the rest.
//!
//! What it costs: while the control plane cannot be reached for longer than the agent timeout, stateful streams
//! wait (their producers buffer in their logs) and go on when it answers again. Stateless components go on.

use std::time::Instant;
use tokio::sync::watch;

/// Until when the agent holds its stateful streams; shared by the agent (which renews it) and its pipelines (which
/// check it before they emit).
#[derive(Clone, Debug)]
pub struct Lease(watch::Sender<Instant>);

impl Lease {
    /// A lease that ends at `until` (an agent's first: the moment it starts, until its first answer).
    pub fn until(until: Instant) -> Lease {
        Lease(watch::Sender::new(until))
    }

    /// Holds the streams until `until` (never shortens the lease).
    pub fn renew(&self, until: Instant) {
        self.0.send_if_modified(|current| {
            let later = until > *current;
            if later {
                *current = until;
            }
            later
        });
    }

    /// Whether the streams are held now.
    pub fn held(&self) -> bool {
        Instant::now() < *self.0.borrow()
    }

    /// Waits until the lease is renewed.
    pub async fn renewed(&self) {
        let mut changes = self.0.subscribe();
        // An error means the lease's owner is gone: nothing will renew it.
        if changes.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_lease_is_held_until_it_ends_and_renewing_wakes_who_waits() {
        let lease = Lease::until(Instant::now() + Duration::from_secs(60));
        assert!(lease.held());
        let ended = Lease::until(Instant::now());
        assert!(!ended.held());
        let waiting = {
            let ended = ended.clone();
            tokio::spawn(async move { ended.renewed().await })
        };
        tokio::task::yield_now().await;
        ended.renew(Instant::now() - Duration::from_secs(1));
        assert!(!ended.held(), "a renewal never shortens the lease");
        ended.renew(Instant::now() + Duration::from_secs(60));
        assert!(ended.held());
        tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
    }
}
