//! The run lock: proof that this process is the only one running a sync.
//!
//! A [`RunLock`] is taken before a run and held to its end. State that only the
//! lock's holder may write (record hashes, schedule claims) is written through
//! it, so a holder that can no longer prove it holds the lock cannot write them.
//!
//! A lock can be *lost* while it is held: PostgreSQL frees a session's advisory
//! lock when the session ends, and a session ends when its connection drops
//! (a failover, an idle timeout, `pg_terminate_backend`). The backend notices
//! and fires [`RunLock::lost`]; the run then stops at once. SQLite's `flock`
//! cannot be lost while the process lives, so its locks never fire.

use std::any::Any;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use super::StateError;

/// Why a held lock can no longer be proven held.
#[derive(Clone, Debug, thiserror::Error)]
#[error("lost the run lock (state connection dropped) on state store {store}: {cause}")]
pub struct LockLost {
    /// The state store's URL, password masked.
    pub store: String,
    pub cause: String,
}

/// Shared by a lock and whatever watches over it (a heartbeat): fires once, on the first loss.
#[derive(Clone, Default)]
pub struct LockWatch {
    lost: CancellationToken,
    why: Arc<OnceLock<LockLost>>,
    /// Until when the lock is proven held, for a lock that is proven by renewals; `None` for a
    /// lock that cannot be lost while the process lives.
    proven_until: Arc<Mutex<Option<Instant>>>,
}

impl LockWatch {
    /// A watch for a lock proven held until `until`, and then by each [`LockWatch::renewed`].
    pub(crate) fn proven_until(until: Instant) -> LockWatch {
        let watch = LockWatch::default();
        watch.renewed(until);
        watch
    }

    pub(crate) fn renewed(&self, until: Instant) {
        *crate::panic::lock(&self.proven_until) = Some(until);
    }

    /// Returns once the lock is proven held now; never, once it is lost. A holder that was paused
    /// (a frozen VM, a long GC, SIGSTOP) past its last proof waits here for the next renewal
    /// instead of starting a request on a lock that someone else may have taken meanwhile.
    pub async fn until_proven(&self) {
        loop {
            if self.is_lost() {
                return std::future::pending().await;
            }
            let until = *crate::panic::lock(&self.proven_until);
            match until {
                None => return,
                Some(until) if Instant::now() < until => return,
                Some(_) => {
                    tokio::select! {
                        () = self.lost.cancelled() => {}
                        () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
            }
        }
    }

    pub(crate) fn lose(&self, why: LockLost) {
        let said = why.to_string();
        // Only the first loss is the cause; later failures follow from it.
        if self.why.set(why).is_ok() {
            tracing::error!(error = %said, "stopping: the run lock is lost");
        }
        self.lost.cancel();
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// `Err` once lost.
    pub(crate) fn check(&self) -> Result<(), LockLost> {
        match self.why.get() {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }
}

/// What a backend keeps for a held lock. Dropping it releases the lock.
#[async_trait::async_trait]
pub(crate) trait Held: Any + Send + Sync {
    /// Releases the lock and waits until it is released; dropping does the same in the background.
    async fn release(self: Box<Self>);
}

/// Proof that this process is the only one running a sync. Dropping it releases the lock;
/// [`RunLock::release`] does too, and waits until others can see it.
pub struct RunLock {
    sync: String,
    watch: LockWatch,
    held: Option<Box<dyn Held>>,
    /// The fencing token: see [`RunLock::fence`].
    fence: i64,
}

impl RunLock {
    pub(crate) fn new(sync: &str, watch: LockWatch, held: impl Held) -> RunLock {
        RunLock {
            sync: sync.to_string(),
            watch,
            held: Some(Box::new(held)),
            fence: 0,
        }
    }

    /// The lock with its fencing token.
    pub(crate) fn fenced(mut self, fence: i64) -> RunLock {
        self.fence = fence;
        self
    }

    /// The fencing token: a number that grows with every hold of this sync's lock, kept in the
    /// state store. State written outside the store (the warehouse's bookkeeping) is written
    /// with it, and refuses a token older than the newest it has seen: a holder that lost the
    /// lock, and was paused past another run's takeover, cannot write there any more.
    ///
    /// Each hold's token is the greater of the last hold's plus one and the store's clock in
    /// microseconds, so a state store that starts afresh (lost, reset, or moved from SQLite to
    /// PostgreSQL) still writes tokens newer than those its predecessor left in the warehouse.
    pub fn fence(&self) -> i64 {
        self.fence
    }

    /// The sync this lock is for.
    pub fn sync(&self) -> &str {
        &self.sync
    }

    /// Completes when the lock is lost; never, for a lock that cannot be lost.
    pub fn lost(&self) -> WaitForCancellationFuture<'_> {
        self.watch.lost.cancelled()
    }

    pub fn is_lost(&self) -> bool {
        self.watch.is_lost()
    }

    /// `Err(StateError::LockLost)` once the lock is lost.
    pub fn check(&self) -> Result<(), StateError> {
        self.watch.check().map_err(StateError::LockLost)
    }

    /// What a request about to start waits on: see [`LockWatch::until_proven`].
    pub fn gate(&self) -> LockWatch {
        self.watch.clone()
    }

    /// Releases the lock, and returns once other processes can take it.
    pub async fn release(mut self) {
        if let Some(held) = self.held.take() {
            held.release().await;
        }
    }

    /// The backend's part of the lock, for a store that writes through it.
    pub(crate) fn held<T: Held>(&self) -> Option<&T> {
        let held: &dyn Any = self.held.as_deref()?;
        held.downcast_ref::<T>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    #[async_trait::async_trait]
    impl Held for Nothing {
        async fn release(self: Box<Self>) {}
    }

    #[tokio::test]
    async fn a_lost_lock_says_why_and_fires_once() {
        let watch = LockWatch::default();
        let lock = RunLock::new("users", watch.clone(), Nothing);
        assert!(lock.check().is_ok() && !lock.is_lost());
        assert!(lock.held::<Nothing>().is_some(), "the backend finds its own part");
        watch.lose(LockLost {
            store: "postgres://u:****@h/db".into(),
            cause: "connection reset".into(),
        });
        watch.lose(LockLost {
            store: "postgres://u:****@h/db".into(),
            cause: "a later failure".into(),
        });
        lock.lost().await;
        let err = lock.check().expect_err("lost").to_string();
        assert_eq!(
            err,
            "lost the run lock (state connection dropped) on state store postgres://u:****@h/db: connection reset"
        );
        lock.release().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_proven_only_until_a_deadline_holds_requests_back_after_it() {
        let watch = LockWatch::proven_until(Instant::now() + Duration::from_secs(7));
        let gate = RunLock::new("users", watch.clone(), Nothing).gate();
        gate.until_proven().await;
        tokio::time::advance(Duration::from_secs(8)).await;
        let waiting = tokio::time::timeout(Duration::from_secs(5), gate.until_proven()).await;
        assert!(waiting.is_err(), "past its proof a lock lets no request start");
        watch.renewed(Instant::now() + Duration::from_secs(7));
        gate.until_proven().await;
        watch.lose(LockLost {
            store: "s".into(),
            cause: "c".into(),
        });
        let lost = tokio::time::timeout(Duration::from_secs(60), gate.until_proven()).await;
        assert!(lost.is_err(), "a lost lock never lets a request start");
        let unlosable = LockWatch::default();
        unlosable.until_proven().await;
    }
}
