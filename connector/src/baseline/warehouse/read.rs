//! Pass 1's read of the warehouse's diff: every changed row checked as the in-process diff
//! checks it, and the records of the rows to send kept while they fit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array};
use futures::StreamExt;

use super::tables::{DiffQuery, WarehouseError, WarehouseTables, HASH_COLUMN, KEY_COLUMN, STORED_COLUMN};
use crate::baseline::kept::Kept;
use crate::baseline::snapshot::keep_rejection;
use crate::baseline::Start;
use crate::config::Mode;
use crate::cursor::{CursorRead, Seen};
use crate::error::Error;
use crate::hash::id_key;
use crate::mapping::Rejection;
use crate::record::Record;
use crate::source::since::batch_cursor_values;
use crate::source::SourceBatch;
use crate::state::{IndexEntry, RunCounts, StoredRejection};

/// What the bookkeeping knows of a row of the diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RowState {
    /// The row's key as the source gives it; `None` when the identity is NULL (the mapping
    /// rejects the row).
    pub key: Option<String>,
    /// The row's hash in the warehouse, which its bookkeeping keeps once it is acknowledged.
    pub hash: u128,
    /// The bookkeeping held the key before this run: the record is changed, not new.
    pub known: bool,
}

/// The key, hash and stored flag of each row of a batch of the diff query.
pub(super) fn row_states(batch: &SourceBatch, place: &str) -> Result<Vec<RowState>, WarehouseError> {
    let bad = |detail: String| WarehouseError::BadRow {
        place: place.to_string(),
        detail,
    };
    let column = |name: &str| {
        batch
            .batch
            .column_by_name(name)
            .ok_or_else(|| bad(format!("the diff query returned no column {name}")))
    };
    let (keys, hashes, stored) = (column(KEY_COLUMN)?, column(HASH_COLUMN)?, column(STORED_COLUMN)?);
    let (Some(keys), Some(hashes), Some(stored)) = (keys.as_string_opt::<i32>(), hashes.as_string_opt::<i32>(), stored.as_boolean_opt())
    else {
        return Err(bad("the diff query's key, hash and flag are not text, text and boolean".into()));
    };
    (0..batch.batch.num_rows())
        .map(|row| {
            let hash = if hashes.is_valid(row) { hashes.value(row) } else { "" };
            let hash = u128::from_str_radix(hash, 16).map_err(|_| bad(format!("the row hash {hash:?} is not 32 hex digits")))?;
            Ok(RowState {
                key: keys.is_valid(row).then(|| keys.value(row).to_string()),
                hash,
                known: stored.is_valid(row) && stored.value(row),
            })
        })
        .collect()
}

/// What pass 1 read of the changed rows.
pub(super) struct Read {
    pub counts: RunCounts,
    pub rejections: Vec<StoredRejection>,
    pub rejected_ids: Vec<(u128, String)>,
    /// Rows read, and of them those whose key state held.
    pub rows: u64,
    pub known_rows: u64,
    /// The valid rows of keys that more than one row has: whether state held each, and its id.
    pub repeated: Vec<(IndexEntry, bool, String)>,
    pub kept: Option<Vec<Record>>,
    /// What the bookkeeping knows of each kept record's row, by id key.
    pub kept_rows: HashMap<u128, RowState>,
}

impl Read {
    /// One row of the diff: rejected, suppressed, of a repeated key, or new or changed; of a
    /// new or changed row, its id key and whether it is changed.
    fn take(
        &mut self,
        hashed: Result<(&str, u128), Rejection>,
        here: Option<&RowState>,
        held: &HashSet<u128>,
        also: &HashSet<&str>,
    ) -> Option<(u128, bool)> {
        let (id, hash) = match hashed {
            Ok(valid) => valid,
            Err(rejection) => {
                self.counts.invalid += 1;
                keep_rejection(rejection, &mut self.rejected_ids, &mut self.rejections);
                return None;
            }
        };
        let key = id_key(id);
        let known = here.is_some_and(|r| r.known);
        if held.contains(&key) {
            self.counts.suppressed += 1;
        } else if here.and_then(|r| r.key.as_deref()).is_some_and(|k| also.contains(k)) {
            self.repeated.push((IndexEntry { key, hash }, known, id.to_string()));
        } else if known {
            self.counts.changed += 1;
            return Some((key, true));
        } else {
            self.counts.new += 1;
            return Some((key, false));
        }
        None
    }
}

/// The cursor's side of the warehouse's pass 1: the column it reads, and which rows the mode
/// sends (only those can hold the watermark back).
pub(super) struct CursorTrack<'a> {
    pub read: &'a mut CursorRead,
    pub column: String,
    pub mode: Mode,
}

impl CursorTrack<'_> {
    /// The batch's cursor values, once its largest was noted.
    fn values(&mut self, batch: &SourceBatch) -> Result<Option<Int64Array>, Error> {
        let values = batch_cursor_values(batch, &self.column)?;
        if let Some(values) = &values {
            self.read.saw(Seen::of(values, self.read.clock()));
        }
        Ok(values)
    }

    fn note(&mut self, (key, changed): (u128, bool), cursor: Option<i64>) {
        let sent = match self.mode {
            Mode::Upsert | Mode::Mirror => true,
            Mode::CreateOnly => !changed,
            Mode::UpdateOnly => changed,
        };
        if sent {
            self.read.differs(key, cursor);
        }
    }
}

/// Streams the changed rows, checking every one as the in-process diff does and keeping the
/// records of the rows to send while they fit.
pub(super) async fn read_changed(
    start: &Start,
    tables: &dyn WarehouseTables,
    query: &Arc<DiffQuery>,
    mut kept: Kept<'_>,
    mut cursor: Option<CursorTrack<'_>>,
) -> Result<Read, Error> {
    let also: HashSet<&str> = query.also.iter().map(String::as_str).collect();
    let mut read = Read {
        counts: RunCounts::default(),
        rejections: Vec::new(),
        rejected_ids: Vec::new(),
        rows: 0,
        known_rows: 0,
        repeated: Vec::new(),
        kept: None,
        kept_rows: HashMap::new(),
    };
    let (compiled, held) = (&start.compiled, &start.held);
    let place = tables.describe();
    let mut stream = tables.changed(Arc::clone(query));
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let rows = row_states(&batch, &place)?;
        read.rows += batch.batch.num_rows() as u64;
        read.known_rows += rows.iter().filter(|r| r.known).count() as u64;
        let values = match cursor.as_mut() {
            Some(track) => track.values(&batch)?,
            None => None,
        };
        let mut row = 0;
        compiled.hash_batch(&batch, |hashed| {
            let planned = read.take(hashed, rows.get(row), held, &also);
            if let (Some(planned), Some(track)) = (planned, cursor.as_mut()) {
                let value = values.as_ref().filter(|v| v.is_valid(row)).map(|v| v.value(row));
                track.note(planned, value);
            }
            row += 1;
        });
        if kept.is_open() {
            compiled.map_selected(
                &batch,
                |id| !held.contains(&id_key(id)),
                |row, mapped| {
                    if let (Ok(record), Some(state)) = (mapped, rows.get(row)) {
                        read.kept_rows.insert(id_key(&record.id), state.clone());
                        kept.push(record);
                    }
                },
            );
            if !kept.is_open() {
                read.kept_rows = HashMap::new();
            }
        }
    }
    read.rejected_ids.sort_unstable();
    read.kept = kept.finish();
    Ok(read)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, BooleanArray, Int64Array, StringArray};
    use arrow::record_batch::RecordBatch;

    use super::*;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> SourceBatch {
        SourceBatch {
            batch: RecordBatch::try_from_iter(columns).expect("batch"),
            origin: Arc::from("t"),
            first_row: 0,
            problems: None,
        }
    }

    fn diff_rows(hashes: Vec<Option<&str>>) -> SourceBatch {
        let n = hashes.len();
        batch(vec![
            (KEY_COLUMN, Arc::new(StringArray::from(vec![Some("k"); n])) as ArrayRef),
            (HASH_COLUMN, Arc::new(StringArray::from(hashes))),
            (STORED_COLUMN, Arc::new(BooleanArray::from(vec![Some(true); n]))),
        ])
    }

    #[test]
    fn a_row_of_the_diff_that_cannot_be_read_back_is_an_error_that_says_why() {
        let good = format!("{:032x}", 7u128);
        let rows = row_states(&diff_rows(vec![Some(good.as_str())]), "pg").expect("read");
        assert_eq!(
            rows,
            vec![RowState {
                key: Some("k".into()),
                hash: 7,
                known: true
            }]
        );
        let cases: [(SourceBatch, &str); 4] = [
            (
                diff_rows(vec![Some("not hex")]),
                "pg: the row hash \"not hex\" is not 32 hex digits",
            ),
            (diff_rows(vec![None]), "pg: the row hash \"\" is not 32 hex digits"),
            (
                batch(vec![(KEY_COLUMN, Arc::new(StringArray::from(vec!["k"])) as ArrayRef)]),
                "pg: the diff query returned no column ebb_hash",
            ),
            (
                batch(vec![
                    (KEY_COLUMN, Arc::new(Int64Array::from(vec![1])) as ArrayRef),
                    (HASH_COLUMN, Arc::new(StringArray::from(vec![good.as_str()]))),
                    (STORED_COLUMN, Arc::new(BooleanArray::from(vec![true]))),
                ]),
                "pg: the diff query's key, hash and flag are not text, text and boolean",
            ),
        ];
        for (batch, want) in cases {
            assert_eq!(row_states(&batch, "pg").expect_err(want).to_string(), want);
        }
    }
}
