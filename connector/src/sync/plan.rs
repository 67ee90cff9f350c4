//! Pass 1: stream the source, hash every row (`snapshot.rs`), find duplicate ids, and diff
//! against the stored hashes. Ids and hashes are kept, and, within a memory budget, the mapped
//! records of new and changed rows (`kept.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;

use super::kept::Kept;
use super::snapshot::{read_snapshot, Snapshot};
use super::suppress::suppressed;
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
    /// Keys of the records to send, sorted; shared with pass 2 rather than copied.
    pub(super) to_send: Arc<Vec<u128>>,
    /// Ids to delete at the destination, sorted, sent after the upserts: in mirror mode, the
    /// records ebb sent that left the source.
    pub(super) to_delete: Arc<Vec<String>>,
    /// Identities of the suppression source that the suppression list does not hold yet.
    pub(super) suppress_from_source: Vec<String>,
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

    /// Every change planned: upserts and deletes.
    pub fn changes(&self) -> usize {
        self.to_send.len() + self.to_delete.len()
    }
}

/// What pass 1 needs before it reads a row: the mapping checked against the source's schema,
/// and the identities held back.
struct Start {
    compiled: Arc<CompiledMapping>,
    held: Arc<HashSet<u128>>,
    from_source: Vec<String>,
}

impl Start {
    async fn new(sync: &SyncJob, store: &dyn StateStore) -> Result<Start, Error> {
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
    let (loaded, start) = tokio::join!(sync.load_state(store), Start::new(sync, store));
    let ((stored, state_was_for), start) = (loaded?, start?);
    diff::check_drift(stored.schema.as_deref(), start.compiled.columns())?;
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
    let start = Start::new(sync, store).await?;
    let (mut counts, mut rejections) = (RunCounts::default(), Vec::new());
    let read = read_snapshot(
        sync,
        &start.compiled,
        Arc::clone(&start.held),
        Kept::none(),
        &mut counts,
        &mut rejections,
    );
    let (loaded, snapshot) = tokio::join!(sync.load_state(store), read);
    let (stored, state_was_for) = loaded?;
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
    tracing::info!(
        sync = %sync.name(),
        source = counts.source,
        invalid = counts.invalid,
        new = counts.new,
        changed = counts.changed,
        unchanged = counts.unchanged,
        gone = counts.gone,
        to_send = to_send.len(),
        to_delete = to_delete.len(),
        "plan ready"
    );
    Ok(Plan {
        kept: std::sync::Mutex::new(kept),
        compiled,
        counts,
        rejections,
        to_send: Arc::new(to_send),
        to_delete: Arc::new(to_delete),
        suppress_from_source: from_source,
    })
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
async fn reject_duplicates(
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
