//! Pass 1 as the pipeline asks for it: the mapping checked against the source and the
//! suppressions read, while the sync's [`crate::baseline::Baseline`] loads; then the baseline
//! reads the source and diffs it.

use std::sync::Arc;

use super::suppress::suppressed;
use super::SyncJob;
use crate::baseline::{Plan, PlanInput, Start};
use crate::cursor::scope::Asked;
use crate::error::Error;
use crate::state::StateStore;

/// What pass 1 needs before it reads a row: the mapping checked against the source's schema,
/// and the identities held back.
async fn start(sync: &SyncJob, store: &dyn StateStore) -> Result<Start, Error> {
    let (compiled, cursor, priority) = sync.compile_with_columns().await?;
    let held = suppressed(sync, store).await?;
    Ok(Start {
        compiled: Arc::new(compiled),
        held: Arc::new(held.keys),
        from_source: held.from_source,
        cursor,
        priority,
    })
}

/// Pass 1 of a run, which will commit with the lock's fencing token `fence`, keeping the
/// records to send while they fit `keep_budget` bytes (0 keeps none).
/// `asked`: `--full` and `--full-diff`.
pub async fn plan(sync: &SyncJob, store: &dyn StateStore, asked: Asked, keep_budget: usize, fence: i64) -> Result<Plan, Error> {
    sync.baseline.plan(input(sync, store, asked, keep_budget, Some(fence))).await
}

/// Pass 1 of a preview, which keeps no records and writes nothing.
pub async fn plan_preview(sync: &SyncJob, store: &dyn StateStore, full_diff: bool) -> Result<Plan, Error> {
    let asked = Asked { full: false, full_diff };
    sync.baseline.plan(input(sync, store, asked, 0, None)).await
}

fn input<'a>(sync: &'a SyncJob, store: &'a dyn StateStore, asked: Asked, keep_budget: usize, fence: Option<i64>) -> PlanInput<'a> {
    PlanInput {
        mapping: &sync.mapping,
        source: sync.source.as_ref(),
        store,
        start: Box::pin(start(sync, store)),
        identity: sync.destination.capabilities().identity,
        full: asked.full,
        full_diff: asked.full_diff,
        keep_budget,
        fence,
    }
}
