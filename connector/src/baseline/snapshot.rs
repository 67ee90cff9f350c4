//! Pass 1's read of the snapshot, on both cores: the source decodes batches on a thread of its
//! own, and two batches at a time are hashed on blocking threads. Their results are taken in
//! source order, so rejections and kept records come out as they would from one thread.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::Array;

use futures::StreamExt;

use super::kept::Kept;
use crate::cursor::{Clock, CursorRead, Seen};
use crate::diff::{self, Duplicate};
use crate::error::Error;
use crate::hash::id_key;
use crate::mapping::{CompiledMapping, Rejection};
use crate::record::Record;
use crate::source::since::batch_cursor_values;
use crate::source::{SourceBatch, SourceError};
use crate::state::{IndexEntry, RejectionStage, RunCounts, SharedLookup, StoredRejection, MAX_STORED_REJECTIONS};

/// The rows pass 1 reads: the whole source, or the rows past a cursor.
pub(super) type SourceRows = futures::stream::BoxStream<'static, Result<SourceBatch, SourceError>>;

/// Batches hashed at once: one per core, while the source decodes the next.
const HASHED_AT_ONCE: usize = 2;

/// Every valid row's key and priority value, in source order.
pub(super) type Priorities = Vec<(u128, Option<i64>)>;

/// What pass 1 read from the snapshot.
pub(super) struct Snapshot {
    /// The valid rows' keys and hashes, sorted by key, without duplicate ids.
    pub seen: Vec<IndexEntry>,
    /// The ids of rejected rows, sorted by key.
    pub rejected_ids: Vec<(u128, String)>,
    /// Ids that occur more than once, all of whose rows are rejected.
    pub duplicates: Vec<Duplicate>,
    /// The records of new and changed rows, when they fit the budget (see `kept.rs`).
    pub kept: Option<Vec<Record>>,
    /// With `priority:`, every valid row's key and priority value, in source order.
    pub priorities: Option<Priorities>,
}

/// One batch, hashed.
struct Hashed {
    batch: SourceBatch,
    entries: Vec<IndexEntry>,
    suppressed: u64,
    rejections: Vec<Rejection>,
    /// With a cursor: the rows whose record differs from the baseline's, with their cursor
    /// value, and what the batch's cursors tell the watermark.
    differing: Vec<(u128, Option<i64>)>,
    seen: Seen,
    /// With `priority:`, the value of each of `entries`.
    priorities: Vec<Option<i64>>,
}

/// The cursor's side of pass 1: what it learns, the column it reads, and the stored index
/// that tells which rows differ from the baseline (looked up on the hashing threads).
pub(super) struct CursorPass<'a> {
    pub read: &'a mut CursorRead,
    pub column: Arc<str>,
    pub stored: Arc<SharedLookup>,
}

impl CursorPass<'_> {
    fn note(&mut self, done: &Hashed) {
        self.read.saw(done.seen);
        for (key, cursor) in &done.differing {
            self.read.differs(*key, *cursor);
        }
    }
}

fn hash_one(
    (compiled, priority): (&CompiledMapping, Option<&str>),
    batch: SourceBatch,
    suppressed: &HashSet<u128>,
    cursor: Option<(&str, Option<Clock>, &SharedLookup)>,
) -> Result<Hashed, Error> {
    let values = match cursor {
        Some((name, ..)) => batch_cursor_values(&batch, name)?,
        None => None,
    };
    let priorities = match priority {
        Some(name) => crate::priority::batch_values(&batch, name)?,
        None => None,
    };
    let mut out = Hashed {
        entries: Vec::with_capacity(batch.batch.num_rows()),
        suppressed: 0,
        rejections: Vec::new(),
        differing: Vec::new(),
        seen: values
            .as_ref()
            .zip(cursor)
            .map(|(v, (_, clock, _))| Seen::of(v, clock))
            .unwrap_or_default(),
        priorities: Vec::new(),
        batch,
    };
    let mut row = 0;
    compiled.hash_batch(&out.batch, |hashed| {
        match hashed {
            Ok((id, hash)) => {
                let key = id_key(id);
                if suppressed.contains(&key) {
                    out.suppressed += 1;
                } else {
                    out.entries.push(IndexEntry { key, hash });
                    if let Some(p) = &priorities {
                        out.priorities.push(p.is_valid(row).then(|| p.value(row)));
                    }
                    if let (Some(values), Some((.., stored))) = (&values, cursor) {
                        if stored.get(key) != Some(hash) {
                            out.differing.push((key, values.is_valid(row).then(|| values.value(row))));
                        }
                    }
                }
            }
            Err(rejection) => out.rejections.push(rejection),
        }
        row += 1;
    });
    Ok(out)
}

/// Notes a rejected row's id, which is present though not valid, and keeps the first
/// rejections for storage.
pub(super) fn keep_rejection(rejection: Rejection, rejected_ids: &mut Vec<(u128, String)>, rejections: &mut Vec<StoredRejection>) {
    if let Some(id) = &rejection.id {
        rejected_ids.push((id_key(id), id.clone()));
    }
    if rejections.len() < MAX_STORED_REJECTIONS {
        rejections.push(mapping_rejection(rejection));
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

/// Streams the source once (`rows`), hashing valid rows, keeping the first rejections, mapping
/// the rows `kept` wants, and telling `cursor` what it reads.
pub(super) async fn read_snapshot(
    rows: SourceRows,
    (compiled, suppressed, priority): (&Arc<CompiledMapping>, Arc<HashSet<u128>>, Option<Arc<str>>),
    mut kept: Kept<'_>,
    mut cursor: Option<CursorPass<'_>>,
    counts: &mut RunCounts,
    rejections: &mut Vec<StoredRejection>,
) -> Result<Snapshot, Error> {
    // Sized for the usual case, a snapshot about as big as the last one, so it never doubles.
    let last_size = kept.stored_len().unwrap_or(0);
    let mut seen: Vec<IndexEntry> = Vec::with_capacity(last_size + last_size / 16 + 1024);
    let mut rejected_ids: Vec<(u128, String)> = Vec::new();
    let mut candidates: Vec<u128> = Vec::new();
    let mut priorities = priority.as_ref().map(|_| Vec::with_capacity(last_size));
    let tracked = cursor
        .as_ref()
        .map(|c| (Arc::clone(&c.column), c.read.clock(), Arc::clone(&c.stored)));
    let mut hashed = rows
        .map(|batch| {
            let (compiled, suppressed, tracked) = (Arc::clone(compiled), Arc::clone(&suppressed), tracked.clone());
            let priority = priority.clone();
            async move {
                let batch = batch?;
                tokio::task::spawn_blocking(move || {
                    let cursor = tracked.as_ref().map(|(column, clock, stored)| (&**column, *clock, &**stored));
                    hash_one((&compiled, priority.as_deref()), batch, &suppressed, cursor)
                })
                .await
                .map_err(|e| Error::from(crate::panic::joined("mapping", e)))?
            }
        })
        .buffered(HASHED_AT_ONCE);
    while let Some(done) = hashed.next().await {
        let mut done = done?;
        if let Some(cursor) = cursor.as_mut() {
            cursor.note(&done);
        }
        count(&mut done, counts, &mut rejected_ids, rejections);
        candidates.extend(done.entries.iter().filter(|e| kept.wants(e.key, e.hash)).map(|e| e.key));
        if let Some(priorities) = priorities.as_mut() {
            priorities.extend(done.entries.iter().map(|e| e.key).zip(done.priorities.iter().copied()));
        }
        seen.extend_from_slice(&done.entries);
        if !candidates.is_empty() {
            keep_candidates(compiled, &done.batch, &mut candidates, &mut kept);
        }
    }
    drop(hashed);
    sort_on_two_cores(&mut seen).await?;
    rejected_ids.sort_unstable();
    let duplicates = diff::take_duplicates(&mut seen, &rejected_ids);
    Ok(Snapshot {
        seen,
        rejected_ids,
        duplicates,
        kept: kept.finish(),
        priorities,
    })
}

/// Counts a hashed batch's rows, and keeps its rejections.
fn count(done: &mut Hashed, counts: &mut RunCounts, rejected_ids: &mut Vec<(u128, String)>, rejections: &mut Vec<StoredRejection>) {
    counts.source += done.batch.batch.num_rows() as u64;
    counts.suppressed += done.suppressed;
    counts.invalid += done.rejections.len() as u64;
    for rejection in std::mem::take(&mut done.rejections) {
        keep_rejection(rejection, rejected_ids, rejections);
    }
}

/// Maps the batch's rows whose keys are `candidates` into `kept`, and empties `candidates`.
fn keep_candidates(compiled: &CompiledMapping, batch: &SourceBatch, candidates: &mut Vec<u128>, kept: &mut Kept<'_>) {
    if kept.is_open() {
        candidates.sort_unstable();
        compiled.map_selected(
            batch,
            |id| candidates.binary_search(&id_key(id)).is_ok(),
            |_, mapped| {
                // The same rows hashed without a rejection a moment ago.
                if let Ok(record) = mapped {
                    kept.push(record);
                }
            },
        );
    }
    candidates.clear();
}

/// Sorts by key on both cores without a second buffer: keys are digests, spread evenly, so
/// splitting them at the middle of the key space halves the work; each half is sorted on its
/// own thread.
async fn sort_on_two_cores(entries: &mut Vec<IndexEntry>) -> Result<(), Error> {
    const HALF: u128 = 1 << 127;
    let mut low = 0;
    let mut high = entries.len();
    // Partition in place: keys below HALF first.
    while low < high {
        if entries[low].key < HALF {
            low += 1;
        } else {
            high -= 1;
            entries.swap(low, high);
        }
    }
    let mut owned = std::mem::take(entries);
    let sorted = tokio::task::spawn_blocking(move || {
        let (below, above) = owned.split_at_mut(low);
        std::thread::scope(|scope| {
            scope.spawn(|| above.sort_unstable_by_key(|e| e.key));
            below.sort_unstable_by_key(|e| e.key);
        });
        owned
    })
    .await;
    *entries = sorted.map_err(|e| crate::panic::joined("sorting the snapshot", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_two_core_sort_sorts() {
        let mut x: u128 = 0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C834;
        let mut entries: Vec<IndexEntry> = (0..10_000u128)
            .map(|i| {
                x = x.wrapping_mul(0x2360_ED05_1FC6_5DA4_4385_DF64_9FCC_F645).wrapping_add(i);
                IndexEntry { key: x, hash: i }
            })
            .collect();
        entries.push(IndexEntry { key: 0, hash: 0 });
        entries.push(IndexEntry { key: u128::MAX, hash: 0 });
        let mut want = entries.clone();
        want.sort_unstable_by_key(|e| e.key);
        sort_on_two_cores(&mut entries).await.expect("sorted");
        assert_eq!(entries, want);
        let mut empty = Vec::new();
        sort_on_two_cores(&mut empty).await.expect("sorted");
        assert!(empty.is_empty());
    }
}
