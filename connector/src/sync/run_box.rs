//! A run's box (`max_run:`): past it, no new batch starts. The batches in flight finish and
//! are committed, and the run ends `continued`, leaving the rest of its plan to the next run,
//! which diffs again: a change made meanwhile is sent then, not after the whole backlog.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(super) struct RunBox {
    deadline: Option<Instant>,
    started: AtomicBool,
    reached: AtomicBool,
    /// Cancelled to stop starting batches.
    stop: CancellationToken,
}

impl RunBox {
    /// A box of `length` from `run_started`, or none (also for a box past what the clock holds,
    /// `max_run: 500000000y`, whose end never comes).
    pub fn new(run_started: Instant, length: Option<Duration>, stop: CancellationToken) -> RunBox {
        RunBox {
            deadline: length.and_then(|l| run_started.checked_add(l)),
            started: AtomicBool::new(false),
            reached: AtomicBool::new(false),
            stop,
        }
    }

    /// A batch is starting. The first always does, even past the box, so that a run whose
    /// planning outlasted its box still moves the sync on instead of ending with nothing sent.
    pub fn batch_started(&self) {
        self.started.store(true, Ordering::SeqCst);
        if self.reached.load(Ordering::SeqCst) {
            self.stop.cancel();
        }
    }

    /// Ready at the box's end; never without a box, or once it was reached.
    pub async fn due(&self) {
        match self.deadline {
            Some(deadline) if !self.is_reached() => tokio::time::sleep_until(deadline).await,
            _ => std::future::pending().await,
        }
    }

    /// The box is over: no batch starts after the first.
    pub fn reach(&self) {
        self.reached.store(true, Ordering::SeqCst);
        if self.started.load(Ordering::SeqCst) {
            self.stop.cancel();
        }
    }

    pub fn is_reached(&self) -> bool {
        self.reached.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_box_stops_new_batches_but_never_before_the_first() {
        let stop = CancellationToken::new();
        let boxed = RunBox::new(Instant::now(), Some(Duration::from_secs(10)), stop.clone());
        tokio::select! {
            () = boxed.due() => {}
            () = tokio::time::sleep(Duration::from_secs(11)) => panic!("the box ends at 10 s"),
        }
        boxed.reach();
        assert!(!stop.is_cancelled(), "no batch started yet: the first still may");
        boxed.batch_started();
        assert!(stop.is_cancelled(), "and none after it");

        let stop = CancellationToken::new();
        let started = RunBox::new(Instant::now(), Some(Duration::from_secs(1)), stop.clone());
        started.batch_started();
        assert!(!stop.is_cancelled());
        started.reach();
        assert!(stop.is_cancelled());

        for length in [None, Some(Duration::MAX)] {
            let unboxed = RunBox::new(Instant::now(), length, CancellationToken::new());
            tokio::select! {
                () = unboxed.due() => panic!("{length:?}: no end"),
                () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            }
        }
    }
}
