//! The baseline: what a run knows of the destination's copy, diffs against, and commits to.
//!
//! A [`Baseline`] is chosen once per sync, from the mapping ([`for_mapping`]), and the pipeline
//! sees only the trait:
//!
//! - [`hashes`]: a hash per identity in the state store; pass 1 reads and hashes the whole
//!   source and diffs in process (the default).
//! - [`warehouse`]: bookkeeping tables in the source's own database (`diff: warehouse`); the
//!   warehouse finds the new and changed rows in one query and only those leave it.
//!
//! [`Baseline::plan`] is pass 1: it says what is new, changed, unchanged and gone, and hands
//! back the run's side of the baseline, a [`BaselineRun`], which gives pass 2 its records (the
//! ones pass 1 kept, or a second read) and commits what the destination acknowledged. Every
//! commit is fenced by the run's lock: one that lost the lock cannot take effect, even when the
//! loss comes between a check and the write.

pub mod hashes;
mod kept;
mod narrowed;
mod order;
mod plan;
mod snapshot;
pub mod warehouse;

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::config::Identity;
use crate::cursor::CursorColumn;
use crate::error::Error;
use crate::mapping::CompiledMapping;
use crate::priority::PriorityColumn;
use crate::record::Record;
use crate::source::Source;
use crate::spec::Mapping;
use crate::state::{RunLock, StateStore};
pub use kept::KEEP_BUDGET_BYTES;
pub use plan::Plan;

/// What pass 1 needs before it reads a row: the mapping checked against the source's schema,
/// and the identities held back.
pub struct Start {
    pub compiled: Arc<CompiledMapping>,
    /// The suppressed identities, by key.
    pub held: Arc<HashSet<u128>>,
    /// Identities of the suppression source that the suppression list does not hold yet.
    pub from_source: Vec<String>,
    /// The mapping's cursor column, checked against the source's schema.
    pub cursor: Option<CursorColumn>,
    /// The mapping's priority column, checked against the source's schema.
    pub priority: Option<PriorityColumn>,
}

impl Start {
    /// Gives the columns with no value in this snapshot the types state last saw them with.
    pub fn settle(&mut self, stored: Option<&[(String, crate::column::ColumnType)]>) {
        // Only this start holds the mapping until the snapshot is read.
        if let Some(compiled) = Arc::get_mut(&mut self.compiled) {
            compiled.settle_types(stored);
        }
    }
}

/// What a plan is made from.
pub struct PlanInput<'a> {
    pub mapping: &'a Mapping,
    pub source: &'a dyn Source,
    pub store: &'a dyn StateStore,
    /// Checks the mapping and reads the suppressions; awaited while the baseline loads.
    pub start: BoxFuture<'a, Result<Start, Error>>,
    /// What the destination keys records on, as rejections name it.
    pub identity: Identity,
    /// Plan every record, whatever the baseline holds (`--full`).
    pub full: bool,
    /// Read every row, even with a cursor (`--full-diff`).
    pub full_diff: bool,
    /// How much memory pass 1 may spend keeping the records to send; 0 keeps none.
    pub keep_budget: usize,
    /// The run lock's fencing token, for a run that will commit; `None` for a dry run, which
    /// reads the baseline and writes nothing.
    pub fence: Option<i64>,
}

/// What a run needs to know about the destination's copy of a sync's records.
#[async_trait::async_trait]
pub trait Baseline: Send + Sync {
    /// Where the baseline keeps its records, for messages, when not in the state store.
    fn kept_elsewhere(&self) -> Option<String> {
        None
    }

    /// Checks, creating and writing nothing, that the baseline can be read and written.
    async fn check_access(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Pass 1: reads the source, maps and hashes its rows, and diffs them against the baseline.
    async fn plan(&self, input: PlanInput<'_>) -> Result<Plan, Error>;

    /// Forgets what the baseline keeps of `sync` outside the state store (the state store
    /// forgets its own); returns how many records were forgotten.
    async fn reset(&self, _sync: &str) -> Result<u64, Error> {
        Ok(0)
    }
}

/// Where and as whom a window of acknowledged changes is committed.
pub struct CommitAt<'a> {
    pub store: &'a dyn StateStore,
    pub lock: &'a RunLock,
    pub run_id: i64,
    /// The destination's fingerprint, committed with every acknowledgement.
    pub destination: &'a str,
}

/// Pass 2's records as the baseline gives them out, in sending order, only those to send.
pub type Records = BoxStream<'static, Result<Vec<Record>, Error>>;

/// Pass 2's records: those sent before the deletes, and the resends, sent after them. Each
/// stream reads the source only once it is polled.
pub struct Outgoing {
    pub before_deletes: Records,
    pub after_deletes: Records,
}

impl Outgoing {
    /// Every record before the deletes.
    pub fn before_deletes(records: Records) -> Outgoing {
        Outgoing {
            before_deletes: records,
            after_deletes: futures::stream::empty().boxed(),
        }
    }
}

/// The baseline's side of one planned run.
#[async_trait::async_trait]
pub trait BaselineRun: Send + Sync {
    /// Which baseline it is, for logs.
    fn kind(&self) -> &'static str;

    /// Pass 2's records: of `kept`, the records pass 1 kept, when it could keep them all; else
    /// of the rows read again, from `source` or from the baseline's own query.
    fn records(&self, kept: Option<Vec<Record>>, source: &Arc<dyn Source>, compiled: &Arc<CompiledMapping>) -> Outgoing;

    /// Commits acknowledged upserts and deletes. A run that lost its lock commits nothing.
    async fn commit(&self, at: &CommitAt<'_>, upserted: &[&Record], deleted: &[String]) -> Result<(), Error>;

    /// After the run's last commit.
    async fn finish(&self, _at: &CommitAt<'_>) {}
}

/// The baseline a mapping asks for.
pub fn for_mapping(mapping: &Mapping) -> Result<Arc<dyn Baseline>, Error> {
    Ok(match warehouse::tables_for(&mapping.source) {
        Some(tables) => Arc::new(warehouse::WarehouseBaseline::new(tables)),
        None => Arc::new(hashes::StateHashes),
    })
}
