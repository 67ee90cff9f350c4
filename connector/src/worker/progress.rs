//! A running sync's progress, kept in its view for `/syncs` and written to the log now and
//! then: a first sync at a destination's pace can run for hours.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{lock, SyncView};
use crate::sync::{Progress, Throughput};

/// How often a running sync says how far it has got.
const LOG_EVERY: Duration = Duration::from_secs(60);

pub(super) struct ViewProgress {
    pub view: Arc<Mutex<SyncView>>,
    /// When the progress was last logged.
    pub logged: Mutex<Option<Instant>>,
}

impl Progress for ViewProgress {
    fn start(&self, sync: &str, total: u64) {
        lock(&self.view).progress = Some(Throughput::new(total));
        *lock(&self.logged) = Some(Instant::now());
        tracing::info!(sync, records = total, "sending");
    }

    fn advance(&self, records: u64) {
        let snapshot = {
            let mut view = lock(&self.view);
            let Some(throughput) = view.progress.as_mut() else { return };
            throughput.advance(records);
            throughput.snapshot()
        };
        let mut logged = lock(&self.logged);
        if logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            *logged = Some(Instant::now());
            tracing::info!(
                done = snapshot.done,
                total = snapshot.total,
                eta_secs = snapshot.eta_secs,
                "{}",
                snapshot.line()
            );
        }
    }

    fn finish(&self) {
        lock(&self.view).progress = None;
    }
}
