//! The commit buffer. Acknowledged batches wait here and are committed together, every
//! [`COMMIT_INTERVAL`] or [`COMMIT_RECORDS`], whichever comes first: a commit per request costs
//! more than the request at a thousand requests a second. A crash loses at most one window's
//! commits, which the next run sends again; nothing unacknowledged is ever committed.

use std::time::Duration;

use crate::record::Change;
use crate::ship::BatchOutcome;

/// How long acknowledged records may wait to be committed together.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(200);
/// How many acknowledged records make a commit happen before the interval is up.
pub const COMMIT_RECORDS: usize = 3000;

/// Delivered batches not committed yet.
#[derive(Default)]
pub(super) struct CommitBuffer {
    pending: Vec<(Vec<Change>, BatchOutcome)>,
    records: usize,
    deadline: Option<tokio::time::Instant>,
}

impl CommitBuffer {
    /// Takes a finished batch; true if the buffer should be committed now.
    pub fn add(&mut self, batch: Vec<Change>, outcome: BatchOutcome) -> bool {
        let urgent = outcome.fatal.is_some();
        self.records += batch.len();
        self.pending.push((batch, outcome));
        self.deadline.get_or_insert_with(|| tokio::time::Instant::now() + COMMIT_INTERVAL);
        urgent || self.records >= COMMIT_RECORDS
    }

    /// Everything buffered, leaving the buffer empty and its window closed.
    pub fn take(&mut self) -> Vec<(Vec<Change>, BatchOutcome)> {
        self.deadline = None;
        self.records = 0;
        std::mem::take(&mut self.pending)
    }

    /// Resolves when the window is up; never, while nothing is buffered.
    pub async fn due(&self) {
        match self.deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}
