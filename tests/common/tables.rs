//! The real bookkeeping tables of `diff: warehouse`, watched by a test: the rows their diff
//! hands out are counted and, when armed, the first commit stops after the run's lock check
//! until the test lets it go on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use ebb::baseline::warehouse::{
    self, DiffQuery, Gone, Opened, RowKey, WarehouseBaseline, WarehouseCommit, WarehouseError, WarehouseTables,
};
use ebb::source::{SourceBatch, SourceError};
use ebb::sync::SyncJob;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::Notify;

/// Where a paused commit says it has stopped, and what lets it go on.
#[derive(Default)]
pub struct Pause {
    armed: AtomicBool,
    pub reached: Notify,
    pub resume: Notify,
}

pub struct Tapped {
    inner: Arc<dyn WarehouseTables>,
    /// Rows the diff query handed out.
    pub rows: Arc<AtomicU64>,
    pub pause: Pause,
}

impl Tapped {
    /// Puts the sync's own tables, tapped, under its baseline; returns the tap.
    pub fn install(sync: &mut SyncJob, pause_first_commit: bool) -> Arc<Tapped> {
        let tapped = Arc::new(Tapped {
            inner: warehouse::tables_for(&sync.mapping.source).expect("diff: warehouse"),
            rows: Arc::default(),
            pause: Pause::default(),
        });
        tapped.pause.armed.store(pause_first_commit, Ordering::SeqCst);
        sync.baseline = Arc::new(WarehouseBaseline::new(tapped.clone()));
        tapped
    }
}

#[async_trait::async_trait]
impl WarehouseTables for Tapped {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn check_access(&self) -> Result<(), WarehouseError> {
        self.inner.check_access().await
    }
    async fn open(&self, sync: &str, fence: Option<i64>) -> Result<Opened, WarehouseError> {
        self.inner.open(sync, fence).await
    }
    async fn duplicate_keys(&self, key: &RowKey) -> Result<Vec<String>, WarehouseError> {
        self.inner.duplicate_keys(key).await
    }
    fn changed(&self, query: Arc<DiffQuery>) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
        let rows = self.rows.clone();
        Box::pin(self.inner.changed(query).inspect(move |batch| {
            if let Ok(batch) = batch {
                rows.fetch_add(batch.batch.num_rows() as u64, Ordering::SeqCst);
            }
        }))
    }
    async fn gone(&self, sync: &str, key: &RowKey) -> Result<Vec<Gone>, WarehouseError> {
        self.inner.gone(sync, key).await
    }
    async fn commit(&self, sync: &str, commit: &WarehouseCommit<'_>) -> Result<(), WarehouseError> {
        if self.pause.armed.swap(false, Ordering::SeqCst) {
            self.pause.reached.notify_one();
            self.pause.resume.notified().await;
        }
        self.inner.commit(sync, commit).await
    }
    async fn reset(&self, sync: &str) -> Result<u64, WarehouseError> {
        self.inner.reset(sync).await
    }
}
