//! Pass 1: stream the source, hash every row (`snapshot.rs`), find duplicate ids, and diff
//! against the stored hashes. Ids and hashes are kept, and, within a memory budget, the mapped
//! records of new and changed rows (`kept.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;

use super::kept::Kept;
use super::snapshot::{read_snapshot, Snapshot};
use super::suppress::suppressed;
use super::warehouse::WarehousePlan;
use super::SyncJob;
use crate::config::Mode;
use crate::destination::capabilities::Identity;
use crate::diff::{self, Duplicate};
use crate::error::Error;
use crate::hash::id_key;
use crate::mapping::CompiledMapping;
use crate::quote::{quote, shorten, MAX_QUOTED_CHARS};
use crate::record::Record;
use crate::state::{RejectionStage, RunCounts, StateStore, StoredRejection, StoredState, MAX_STORED_REJECTIONS};

/// Pass 1's result: what to send, and the counts so far.
pub struct Plan {
    /// The mapped records of pass 1's candidates, in source order, when they fit the budget:
    /// pass 2 takes them instead of reading the source again.
    pub(super) kept: std::sync::Mutex<Option<Vec<Record>>>,
    pub(super) compiled: Arc<CompiledMapping>,
    pub counts: RunCounts,
    /// The first rejections, for storage and display; `counts.invalid` is exact.
    pub rejections: Vec<StoredRejection>,
    /// The records to send; shared with pass 2 rather than copied.
    pub(super) to_send: Arc<ToSend>,
    /// Ids to delete at the destination, sorted, sent after the upserts: in mirror mode, the
    /// records ebb sent that left the source.
    pub(super) to_delete: Arc<Vec<String>>,
    /// Identities of the suppression source that the suppression list does not hold yet.
    pub(super) suppress_from_source: Vec<String>,
    /// Records in state for this destination before the run.
    pub in_state: usize,
    /// Every record is sent, whatever was sent before: state was empty, set aside, or of
    /// another mapping or hash version.
    pub sends_everything: bool,
    /// The warehouse-side diff's part of the run, when the warehouse keeps the state.
    pub(super) warehouse: Option<WarehousePlan>,
}

/// Which records pass 2 sends.
pub(super) enum ToSend {
    /// Those of these keys, sorted.
    Keys(Vec<u128>),
    /// Every record of the warehouse's changed rows that the mode sends, but those of `skip`
    /// (duplicate ids) and `held` (suppressed identities).
    Changed {
        count: usize,
        skip: HashSet<u128>,
        held: Arc<HashSet<u128>>,
        mode: Mode,
    },
}

impl ToSend {
    pub fn len(&self) -> usize {
        match self {
            ToSend::Keys(keys) => keys.len(),
            ToSend::Changed { count, .. } => *count,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a row of this id may be sent: worth mapping.
    pub fn may_want(&self, id: &str) -> bool {
        let key = id_key(id);
        match self {
            ToSend::Keys(keys) => keys.binary_search(&key).is_ok(),
            ToSend::Changed { skip, held, .. } => !skip.contains(&key) && !held.contains(&key),
        }
    }

    /// Whether this record is sent.
    pub fn wants(&self, record: &Record) -> bool {
        match self {
            ToSend::Keys(_) => self.may_want(&record.id),
            ToSend::Changed { mode, .. } => {
                let Some(row) = &record.row_state else { return false };
                let by_mode = match mode {
                    Mode::Upsert | Mode::Mirror => true,
                    Mode::CreateOnly => !row.known,
                    Mode::UpdateOnly => row.known,
                };
                by_mode && self.may_want(&record.id)
            }
        }
    }

    /// Whether pass 2 must watch for a record read twice (a source that changed between
    /// passes). The warehouse's diff is one query: a key comes out of it once.
    pub fn watch_repeats(&self) -> bool {
        matches!(self, ToSend::Keys(_))
    }
}

impl Plan {
    /// Upserts planned.
    pub fn to_send(&self) -> usize {
        self.to_send.len()
    }

    /// Deletes planned.
    pub fn to_delete(&self) -> &[String] {
        &self.to_delete
    }

    /// The plan, once its counts are logged.
    pub(super) fn logged(self, sync: &str) -> Plan {
        let c = &self.counts;
        tracing::info!(
            sync = %sync,
            source = c.source,
            invalid = c.invalid,
            new = c.new,
            changed = c.changed,
            unchanged = c.unchanged,
            gone = c.gone,
            to_send = self.to_send(),
            to_delete = self.to_delete.len(),
            diff = if self.warehouse.is_some() { "warehouse" } else { "in_process" },
            "plan ready"
        );
        self
    }

    /// Every change planned: upserts and deletes.
    pub fn changes(&self) -> usize {
        self.to_send.len() + self.to_delete.len()
    }
}

/// What pass 1 needs before it reads a row: the mapping checked against the source's schema,
/// and the identities held back.
pub(super) struct Start {
    pub compiled: Arc<CompiledMapping>,
    pub held: Arc<HashSet<u128>>,
    pub from_source: Vec<String>,
}

impl Start {
    /// Gives the columns with no value in this snapshot the types state last saw them with.
    pub fn settle(&mut self, stored: Option<&[(String, crate::column::ColumnType)]>) {
        // Only this start holds the mapping until the snapshot is read.
        if let Some(compiled) = Arc::get_mut(&mut self.compiled) {
            compiled.settle_types(stored);
        }
    }

    pub async fn new(sync: &SyncJob, store: &dyn StateStore) -> Result<Start, Error> {
        let compiled = Arc::new(sync.compile().await?);
        let held = suppressed(sync, store).await?;
        Ok(Start {
            compiled,
            held: Arc::new(held.keys),
            from_source: held.from_source,
        })
    }
}

/// Pass 1 of a run: hash every row straight from the source's columns, then diff against the
/// stored state by merging two arrays sorted by id key. The state loads while the mapping is
/// checked against the source. Records of new and changed rows are kept for pass 2 while they
/// fit `keep_budget` bytes (see `kept.rs`); 0 keeps none. Returns the plan with the state it
/// was made against, and the destination that state was for when it was another.
pub async fn plan(
    sync: &SyncJob,
    store: &dyn StateStore,
    full: bool,
    keep_budget: usize,
) -> Result<(Plan, StoredState, Option<String>), Error> {
    if let Some(warehouse) = sync.source.warehouse_diff() {
        return super::warehouse::plan(sync, store, warehouse, full, keep_budget).await;
    }
    let (loaded, start) = tokio::join!(sync.load_state(store), Start::new(sync, store));
    let ((stored, state_was_for), mut start) = (loaded?, start?);
    diff::check_drift(stored.schema.as_deref(), start.compiled.columns())?;
    start.settle(stored.schema.as_deref());
    let (mut counts, mut rejections) = (RunCounts::default(), Vec::new());
    let kept = Kept::new(keep_budget, Some(&stored.index), full);
    let snapshot = read_snapshot(sync, &start.compiled, Arc::clone(&start.held), kept, &mut counts, &mut rejections).await?;
    let plan = finish(sync, store, &stored, full, start, snapshot, (counts, rejections)).await?;
    Ok((plan, stored, state_was_for))
}

/// Pass 1 of a preview, which keeps no records: the stored state is loaded while the snapshot
/// is read, rather than before. Returns the plan with the state it was made against, and the
/// destination that state was for when it was another (see [`SyncJob::load_state`]).
pub async fn plan_preview(sync: &SyncJob, store: &dyn StateStore) -> Result<(Plan, StoredState, Option<String>), Error> {
    if let Some(warehouse) = sync.source.warehouse_diff() {
        return super::warehouse::plan(sync, store, warehouse, false, 0).await;
    }
    let mut start = Start::new(sync, store).await?;
    let (mut counts, mut rejections) = (RunCounts::default(), Vec::new());
    // A column with no value takes its type from state, which must then be read first.
    let loaded_first = match start.compiled.has_untyped_columns() {
        true => {
            let loaded = sync.load_state(store).await?;
            start.settle(loaded.0.schema.as_deref());
            Some(loaded)
        }
        false => None,
    };
    let read = read_snapshot(
        sync,
        &start.compiled,
        Arc::clone(&start.held),
        Kept::none(),
        &mut counts,
        &mut rejections,
    );
    let (loaded, snapshot) = match loaded_first {
        Some(loaded) => (loaded, read.await),
        None => {
            let (loaded, snapshot) = tokio::join!(sync.load_state(store), read);
            (loaded?, snapshot)
        }
    };
    let (stored, state_was_for) = loaded;
    // Checked after the read, and still before anything could be sent.
    diff::check_drift(stored.schema.as_deref(), start.compiled.columns())?;
    let plan = finish(sync, store, &stored, false, start, snapshot?, (counts, rejections)).await?;
    Ok((plan, stored, state_was_for))
}

/// The diff of what pass 1 read against `stored`.
async fn finish(
    sync: &SyncJob,
    store: &dyn StateStore,
    stored: &StoredState,
    full: bool,
    start: Start,
    snapshot: Snapshot,
    (mut counts, mut rejections): (RunCounts, Vec<StoredRejection>),
) -> Result<Plan, Error> {
    let Start {
        compiled,
        held,
        from_source,
    } = start;
    // A suppressed identity is neither sent nor gone: its record, if any, stays where it is.
    let mut gone = diff::gone_keys(&stored.index, &snapshot.seen, &snapshot.duplicates, &snapshot.rejected_ids);
    gone.retain(|key| !held.contains(key));
    if !full {
        counts.gone = gone.len() as u64;
    }
    // Even a full resync deletes in mirror mode: what ebb sent and the source no longer has.
    let to_delete = match sync.mapping.mode {
        Mode::Mirror => ids_in_state(store, sync.name(), gone).await?,
        _ => Vec::new(),
    };
    let selection = diff::select(&snapshot.seen, &stored.index, sync.mapping.mode, full);
    (counts.new, counts.changed, counts.unchanged) = (selection.new, selection.changed, selection.unchanged);
    let to_send = selection.to_send;
    let Snapshot {
        seen,
        rejected_ids,
        duplicates,
        kept,
    } = snapshot;
    drop(seen);
    reject_duplicates(sync, &compiled, &duplicates, &rejected_ids, &mut counts, &mut rejections).await?;
    Ok(Plan {
        kept: std::sync::Mutex::new(kept),
        compiled,
        counts,
        rejections,
        to_send: Arc::new(ToSend::Keys(to_send)),
        to_delete: Arc::new(to_delete),
        suppress_from_source: from_source,
        in_state: stored.index.len(),
        sends_everything: stored.index.is_empty(),
        warehouse: None,
    }
    .logged(sync.name()))
}

/// The ids of `keys`, as state holds them (the index has only their digests), sorted.
async fn ids_in_state(store: &dyn StateStore, sync: &str, keys: Vec<u128>) -> Result<Vec<String>, Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let keys: HashSet<u128> = keys.into_iter().collect();
    let mut ids: Vec<String> = store
        .records(sync)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| keys.contains(&id_key(id)))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Counts every row of a duplicate id as invalid and records why, by the id's text.
pub(super) async fn reject_duplicates(
    sync: &SyncJob,
    compiled: &CompiledMapping,
    duplicates: &[Duplicate],
    rejected_ids: &[(u128, String)],
    counts: &mut RunCounts,
    rejections: &mut Vec<StoredRejection>,
) -> Result<(), Error> {
    if duplicates.is_empty() {
        return Ok(());
    }
    let mut texts: HashMap<u128, String> = duplicates
        .iter()
        .filter_map(|d| {
            let i = rejected_ids.binary_search_by_key(&d.key, |(k, _)| *k).ok()?;
            Some((d.key, rejected_ids[i].1.clone()))
        })
        .collect();
    let missing: HashSet<u128> = duplicates.iter().map(|d| d.key).filter(|k| !texts.contains_key(k)).collect();
    if !missing.is_empty() {
        texts.extend(ids_of(sync, compiled, &missing).await?);
    }
    // What the destination keys records on, as people call it: an id, or an email.
    let label = match sync.destination.capabilities().identity {
        Identity::Id => "id",
        Identity::Email => "email",
    };
    for d in duplicates {
        counts.invalid += u64::from(d.valid);
        if rejections.len() >= MAX_STORED_REJECTIONS {
            continue;
        }
        // The text can only be missing if the source changed between reads.
        let id = texts.get(&d.key).cloned().unwrap_or_else(|| format!("{:032x}", d.key));
        rejections.push(StoredRejection {
            stage: RejectionStage::Mapping,
            record_id: Some(id.clone()),
            position: format!("{label} {}", shorten(&id, MAX_QUOTED_CHARS)),
            reason: format!(
                "{label} {} occurs {} times in the snapshot; every occurrence is rejected",
                quote(&id),
                d.occurrences
            ),
        });
    }
    Ok(())
}

/// The ids of `keys`, found by reading the source's id column again. Only runs when a
/// snapshot has duplicate ids, which pass 1 knows by key but not by text.
async fn ids_of(sync: &SyncJob, compiled: &CompiledMapping, keys: &HashSet<u128>) -> Result<HashMap<u128, String>, Error> {
    let mut found = HashMap::new();
    let mut stream = sync.source.stream(Arc::new(compiled.columns().to_vec()));
    while let Some(batch) = stream.next().await {
        compiled.ids_batch(&batch?, |id| {
            if let Some(id) = id {
                let key = id_key(id);
                if keys.contains(&key) && !found.contains_key(&key) {
                    found.insert(key, id.to_string());
                }
            }
        });
        if found.len() == keys.len() {
            break;
        }
    }
    Ok(found)
}
