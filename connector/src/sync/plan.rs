//! Pass 1: stream the source, map and hash every row, find duplicate ids, and diff against the
//! stored hashes. Ids and hashes are kept, and, within a
//! memory budget, the mapped records of new and changed rows (`kept.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;

use super::kept::Kept;
use super::suppress::suppressed;
use super::SyncJob;
use crate::config::Mode;
use crate::destination::capabilities::Identity;
use crate::diff::{self, Duplicate};
use crate::error::Error;
use crate::hash::id_key;
use crate::mapping::{CompiledMapping, Rejection};
use crate::quote::{quote, shorten, MAX_QUOTED_CHARS};
use crate::record::Record;
use crate::source::SourceBatch;
use crate::state::{IndexEntry, RejectionStage, RunCounts, StateStore, StoredRejection, StoredState, MAX_STORED_REJECTIONS};

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

fn mapping_rejection(r: Rejection) -> StoredRejection {
    StoredRejection {
        stage: RejectionStage::Mapping,
        record_id: r.id,
        position: r.position,
        reason: r.reason,
    }
}

/// What pass 1 read from the snapshot.
struct Snapshot {
    /// The valid rows' keys and hashes, sorted by key, without duplicate ids.
    seen: Vec<IndexEntry>,
    /// The ids of rejected rows, sorted by key.
    rejected_ids: Vec<(u128, String)>,
    /// Ids that occur more than once, all of whose rows are rejected.
    duplicates: Vec<Duplicate>,
    /// See [`Plan::kept`].
    kept: Option<Vec<Record>>,
}

/// Pass 1: hash every row straight from the source's columns, then diff against `stored`
/// by merging two arrays sorted by id key. Records of new and changed rows are kept for pass 2
/// while they fit `keep_budget` bytes (see `kept.rs`); 0 keeps none.
pub async fn plan(sync: &SyncJob, store: &dyn StateStore, stored: &StoredState, full: bool, keep_budget: usize) -> Result<Plan, Error> {
    let compiled = Arc::new(sync.compile().await?);
    diff::check_drift(stored.schema.as_deref(), compiled.columns())?;
    let held = suppressed(sync, store).await?;
    let mut counts = RunCounts::default();
    let mut rejections = Vec::new();
    let kept = Kept::new(keep_budget, &stored.index, full);
    let snapshot = read_snapshot(sync, &compiled, &held.keys, kept, &mut counts, &mut rejections).await?;
    // A suppressed identity is neither sent nor gone: its record, if any, stays where it is.
    let mut gone = diff::gone_keys(&stored.index, &snapshot.seen, &snapshot.duplicates, &snapshot.rejected_ids);
    gone.retain(|key| !held.keys.contains(key));
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
        suppress_from_source: held.from_source,
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

/// Streams the source once, hashing valid rows, keeping the first rejections, and mapping the
/// rows `kept` wants.
async fn read_snapshot(
    sync: &SyncJob,
    compiled: &CompiledMapping,
    suppressed: &HashSet<u128>,
    mut kept: Kept<'_>,
    counts: &mut RunCounts,
    rejections: &mut Vec<StoredRejection>,
) -> Result<Snapshot, Error> {
    // Sized for the usual case, a snapshot about as big as the last one, so it never doubles.
    let last_size = kept.stored_len();
    let mut seen: Vec<IndexEntry> = Vec::with_capacity(last_size + last_size / 16 + 1024);
    let mut rejected_ids: Vec<(u128, String)> = Vec::new();
    let mut candidates: Vec<u128> = Vec::new();
    let mut stream = sync.source.stream(Arc::new(compiled.columns().to_vec()));
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        counts.source += batch.batch.num_rows() as u64;
        compiled.hash_batch(&batch, |hashed| match hashed {
            Ok((id, hash)) => {
                let key = id_key(id);
                if suppressed.contains(&key) {
                    counts.suppressed += 1;
                } else {
                    seen.push(IndexEntry { key, hash });
                    if kept.wants(key, hash) {
                        candidates.push(key);
                    }
                }
            }
            Err(rejection) => {
                counts.invalid += 1;
                if let Some(id) = &rejection.id {
                    rejected_ids.push((id_key(id), id.clone()));
                }
                if rejections.len() < MAX_STORED_REJECTIONS {
                    rejections.push(mapping_rejection(rejection));
                }
            }
        });
        if !candidates.is_empty() {
            keep_candidates(compiled, &batch, &mut candidates, &mut kept);
        }
    }
    drop(stream);
    seen.sort_unstable_by_key(|e| e.key);
    rejected_ids.sort_unstable();
    let duplicates = diff::take_duplicates(&mut seen, &rejected_ids);
    Ok(Snapshot {
        seen,
        rejected_ids,
        duplicates,
        kept: kept.finish(),
    })
}

/// Maps the batch's rows whose keys are `candidates` into `kept`, and empties `candidates`.
fn keep_candidates(compiled: &CompiledMapping, batch: &SourceBatch, candidates: &mut Vec<u128>, kept: &mut Kept<'_>) {
    if kept.is_open() {
        candidates.sort_unstable();
        compiled.map_selected(
            batch,
            |id| candidates.binary_search(&id_key(id)).is_ok(),
            |mapped| {
                // The same rows hashed without a rejection a moment ago.
                if let Ok(record) = mapped {
                    kept.push(record);
                }
            },
        );
    }
    candidates.clear();
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
