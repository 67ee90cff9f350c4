//! Pass 1 when the warehouse keeps the state (`diff: warehouse`): the warehouse finds the new
//! and changed rows in one query and only those are read, mapped and kept; the gone ones come
//! from a second query. The counts, rejections, duplicates, suppressions and guards are those
//! of the in-process diff, except that an unchanged row is counted without being read.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;

use super::kept::Kept;
use super::plan::{reject_duplicates, Plan, Start, ToSend};
use super::snapshot::keep_rejection;
use super::SyncJob;
use crate::config::Mode;
use crate::diff::{self, Duplicate};
use crate::error::Error;
use crate::hash::id_key;
use crate::mapping::Rejection;
use crate::record::Record;
use crate::source::WarehouseDiff;
use crate::source::WarehouseRow;
use crate::state::{IndexEntry, RunCounts, StateStore, StoredRejection, StoredState};
use crate::warehouse::{Coverage, DiffQuery, WAREHOUSE_HASH_VERSION};

/// The warehouse's part of a run, for pass 2 and the commits.
pub(super) struct WarehousePlan {
    pub diff: Arc<dyn WarehouseDiff>,
    /// Pass 2 runs the same query again when pass 1 could not keep its records.
    pub query: Arc<DiffQuery>,
    /// What the hashes are made with, when the stored coverage says otherwise: written with
    /// the run's first commit.
    pub coverage: Option<Coverage>,
    /// The stored records were for another destination: the first commit forgets them.
    pub replace: bool,
    /// The key of each planned delete, by the id it was sent as.
    pub delete_keys: HashMap<String, String>,
}

/// The mapped columns, `name type` joined with `, `, as the coverage records them.
fn column_list(columns: &[(String, crate::column::ColumnType)]) -> String {
    columns
        .iter()
        .map(|(name, ty)| format!("{name} {ty}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pass 1 with the warehouse's diff. Local state keeps no records for such a sync: any it has
/// (the sync diffed in process before) are forgotten by the run's first commit. Returns the
/// plan, the local state it was made with, and the destination the warehouse's state was for
/// when it was another.
pub(super) async fn plan(
    sync: &SyncJob,
    store: &dyn StateStore,
    warehouse: Arc<dyn WarehouseDiff>,
    full: bool,
    keep_budget: usize,
) -> Result<(Plan, StoredState, Option<String>), Error> {
    let (loaded, start) = tokio::join!(sync.load_state(store), Start::new(sync, store));
    let ((local, _), start) = (loaded?, start?);
    diff::check_drift(local.schema.as_deref(), start.compiled.columns())?;
    let opened = warehouse.open(sync.name()).await?;
    let coverage = Coverage {
        hash_version: WAREHOUSE_HASH_VERSION,
        salt: start.compiled.fingerprint(),
        columns: column_list(start.compiled.columns()),
        destination: sync.mapping.destination.fingerprint(),
    };
    let (local, state_was_for) = (moved_away(local), stored_for_another(&opened, &coverage));
    let replace = state_was_for.is_some();
    let in_state = if replace { 0 } else { opened.records };
    let key = start.compiled.row_key();
    let also = warehouse.duplicate_keys(&key).await?;
    let query = Arc::new(DiffQuery {
        sync: sync.name().to_string(),
        key,
        columns: start.compiled.columns().to_vec(),
        salt: coverage.salt.clone(),
        everything: full || replace,
        also,
    });
    let read = read_changed(&start, warehouse.as_ref(), &query, Kept::everything(keep_budget)).await?;
    let gone = match replace {
        true => Vec::new(),
        false => warehouse.gone(sync.name(), &query.key).await?,
    };
    let sends_everything = in_state == 0 || full || opened.coverage.as_ref().is_none_or(|c| c.salt != coverage.salt);
    let write_coverage = opened.coverage.as_ref() != Some(&coverage);
    let parts = Finish {
        in_state,
        gone,
        full,
        sends_everything,
    };
    let warehouse = WarehousePlan {
        diff: warehouse,
        query,
        coverage: write_coverage.then_some(coverage),
        replace,
        delete_keys: HashMap::new(),
    };
    let plan = finish(sync, start, read, warehouse, parts).await?;
    Ok((plan, local, state_was_for))
}

/// The local state such a run works with: the schema, and no records. Records kept there (the
/// sync diffed in process before) are forgotten by the run's first commit.
fn moved_away(local: StoredState) -> StoredState {
    StoredState {
        replace: !local.index.is_empty(),
        schema: local.schema,
        ..StoredState::default()
    }
}

/// The destination the warehouse's state was for, when it was another.
fn stored_for_another(opened: &crate::warehouse::Opened, now: &Coverage) -> Option<String> {
    let stored = opened.coverage.as_ref()?;
    (stored.destination != now.destination).then(|| stored.destination.clone())
}

/// What pass 1 read of the changed rows.
struct Read {
    counts: RunCounts,
    rejections: Vec<StoredRejection>,
    rejected_ids: Vec<(u128, String)>,
    /// Rows read, and of them those whose key state held.
    rows: u64,
    known_rows: u64,
    /// The valid rows of keys that more than one row has: whether state held each, and its id.
    repeated: Vec<(IndexEntry, bool, String)>,
    kept: Option<Vec<Record>>,
}

impl Read {
    /// One row of the diff: rejected, suppressed, of a repeated key, or new or changed.
    fn take(&mut self, hashed: Result<(&str, u128), Rejection>, here: Option<&WarehouseRow>, held: &HashSet<u128>, also: &HashSet<&str>) {
        let (id, hash) = match hashed {
            Ok(valid) => valid,
            Err(rejection) => {
                self.counts.invalid += 1;
                keep_rejection(rejection, &mut self.rejected_ids, &mut self.rejections);
                return;
            }
        };
        let key = id_key(id);
        let known = here.is_some_and(|r| r.stored);
        if held.contains(&key) {
            self.counts.suppressed += 1;
        } else if here.and_then(|r| r.key.as_deref()).is_some_and(|k| also.contains(k)) {
            self.repeated.push((IndexEntry { key, hash }, known, id.to_string()));
        } else if known {
            self.counts.changed += 1;
        } else {
            self.counts.new += 1;
        }
    }
}

/// Streams the changed rows, checking every one as the in-process diff does and keeping the
/// records of the rows to send while they fit.
async fn read_changed(start: &Start, warehouse: &dyn WarehouseDiff, query: &Arc<DiffQuery>, mut kept: Kept<'_>) -> Result<Read, Error> {
    let also: HashSet<&str> = query.also.iter().map(String::as_str).collect();
    let mut read = Read {
        counts: RunCounts::default(),
        rejections: Vec::new(),
        rejected_ids: Vec::new(),
        rows: 0,
        known_rows: 0,
        repeated: Vec::new(),
        kept: None,
    };
    let (compiled, held) = (&start.compiled, &start.held);
    let mut stream = warehouse.changed(Arc::clone(query));
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let rows = batch.warehouse.as_deref().unwrap_or_default();
        read.rows += batch.batch.num_rows() as u64;
        read.known_rows += rows.iter().filter(|r| r.stored).count() as u64;
        let mut row = 0;
        compiled.hash_batch(&batch, |hashed| {
            read.take(hashed, rows.get(row), held, &also);
            row += 1;
        });
        if kept.is_open() {
            compiled.map_selected(
                &batch,
                |id| !held.contains(&id_key(id)),
                |mapped| {
                    if let Ok(record) = mapped {
                        kept.push(record);
                    }
                },
            );
        }
    }
    read.rejected_ids.sort_unstable();
    read.kept = kept.finish();
    Ok(read)
}

/// What the plan is made of besides the rows read.
struct Finish {
    in_state: u64,
    gone: Vec<crate::warehouse::Gone>,
    full: bool,
    sends_everything: bool,
}

/// The rows of repeated keys that are duplicates of one id, rejected every one; the others
/// are counted as the rows they are.
fn duplicates(read: &mut Read) -> (Vec<Duplicate>, HashSet<u128>) {
    let mut entries: Vec<IndexEntry> = read.repeated.iter().map(|(e, _, _)| *e).collect();
    entries.sort_unstable_by_key(|e| e.key);
    let duplicates = diff::take_duplicates(&mut entries, &read.rejected_ids);
    let skip: HashSet<u128> = duplicates.iter().map(|d| d.key).collect();
    for (entry, known, _) in &read.repeated {
        match (skip.contains(&entry.key), known) {
            (true, _) => {}
            (false, true) => read.counts.changed += 1,
            (false, false) => read.counts.new += 1,
        }
    }
    (duplicates, skip)
}

async fn finish(sync: &SyncJob, start: Start, mut read: Read, mut warehouse: WarehousePlan, parts: Finish) -> Result<Plan, Error> {
    let Start {
        compiled,
        held,
        from_source,
    } = start;
    let (duplicates, skip) = duplicates(&mut read);
    let mut ids = read.rejected_ids.clone();
    ids.extend(read.repeated.iter().map(|(e, _, id)| (e.key, id.clone())));
    ids.sort_unstable();
    let mut counts = std::mem::take(&mut read.counts);
    reject_duplicates(sync, &compiled, &duplicates, &ids, &mut counts, &mut read.rejections).await?;
    let gone_anywhere = parts.gone.len() as u64;
    // A suppressed identity is neither sent nor gone: its record, if any, stays where it is.
    let gone: Vec<_> = parts.gone.into_iter().filter(|g| !held.contains(&id_key(&g.sent_as))).collect();
    if !parts.full {
        counts.gone = gone.len() as u64;
    }
    counts.unchanged = parts.in_state.saturating_sub(gone_anywhere + read.known_rows);
    counts.source = read.rows + counts.unchanged;
    let mut to_delete = Vec::new();
    if sync.mapping.mode == Mode::Mirror {
        to_delete = gone.iter().map(|g| g.sent_as.clone()).collect();
        to_delete.sort_unstable();
        warehouse.delete_keys = gone.into_iter().map(|g| (g.sent_as, g.key)).collect();
    }
    let count = match sync.mapping.mode {
        Mode::Upsert | Mode::Mirror => counts.new + counts.changed,
        Mode::CreateOnly => counts.new,
        Mode::UpdateOnly => counts.changed,
    } as usize;
    tracing::debug!(sync = %sync.name(), read = read.rows, "rows read out of the warehouse's diff");
    let mode = sync.mapping.mode;
    Ok(Plan {
        kept: std::sync::Mutex::new(read.kept),
        compiled,
        counts,
        rejections: read.rejections,
        to_send: Arc::new(ToSend::Changed { count, skip, held, mode }),
        to_delete: Arc::new(to_delete),
        suppress_from_source: from_source,
        in_state: parts.in_state as usize,
        sends_everything: parts.sends_everything,
        warehouse: Some(warehouse),
    }
    .logged(sync.name()))
}
