//! A Parquet read narrowed to the rows past a cursor.
//!
//! Row groups whose footer statistics put every cursor below the bound (and hold no null
//! cursor) are skipped without reading a page; a file where that is every group is read no
//! further than its footer. In the groups that are read, the cursor column is decoded first
//! and the others only for the rows it selects (the parquet crate's row filter).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::Schema;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{ArrowPredicateFn, ArrowReaderBuilder, RowFilter};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::ParquetMetaData;
use parquet::schema::types::SchemaDescriptor;

use crate::source::since::{cursor_values, selected};
use crate::source::{Since, SourceError};

/// How many rows a source decoded, for its log line and for tests.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Cursor values decoded to choose rows.
    pub cursor_values: AtomicU64,
    /// Rows decoded whole: every mapped column.
    pub rows: AtomicU64,
}

impl Decoded {
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    pub fn cursor_values(&self) -> u64 {
        self.cursor_values.load(Ordering::Relaxed)
    }
}

/// What to read of one file.
pub(super) struct Narrowed {
    /// The row groups that may hold a selected row.
    pub row_groups: Vec<usize>,
    pub filter: RowFilter,
    /// Rows in those groups: what the filter must have seen once the file was read.
    pub rows_in_groups: u64,
    /// Rows the filter saw.
    pub seen: Arc<AtomicU64>,
}

/// What a narrowed read must have done once it ends without error: shown the filter every row
/// of the groups it read.
pub(super) struct RowsCheck {
    rows_in_groups: u64,
    seen: Arc<AtomicU64>,
}

impl Narrowed {
    /// The reader, told which groups to read and which rows to decode whole.
    pub fn apply<T>(self, builder: ArrowReaderBuilder<T>) -> (ArrowReaderBuilder<T>, RowsCheck) {
        let check = RowsCheck {
            rows_in_groups: self.rows_in_groups,
            seen: self.seen,
        };
        (builder.with_row_groups(self.row_groups).with_row_filter(self.filter), check)
    }
}

/// A file's read, checked against what its footer says it holds: every row (a plain read), or
/// every row of the groups the filter was to see (a narrowed one).
pub(super) fn check_read(part: &str, read: u64, in_footer: i64, narrowed: Option<RowsCheck>) -> Result<(), SourceError> {
    match narrowed {
        None => super::check_rows(part, read, in_footer),
        Some(check) => {
            let seen = check.seen.load(Ordering::Relaxed);
            super::check_rows(part, seen, i64::try_from(check.rows_in_groups).unwrap_or(i64::MAX))
        }
    }
}

/// How batches name the file they came from: row numbers of a narrowed read count the rows it
/// selected, not the file's.
pub(super) fn origin(part: &str, narrowed: bool) -> Arc<str> {
    match narrowed {
        false => Arc::from(part),
        true => Arc::from(format!("{part} (rows past the cursor)").as_str()),
    }
}

/// The narrowing of one file under `since`; `Ok(None)` when no row group can hold a selected
/// row, so the file is read no further than its footer.
pub(super) fn for_file(
    since: Option<&Since>,
    footer: &ParquetMetaData,
    (schema, parquet_schema): (&Schema, &SchemaDescriptor),
    decoded: &Arc<Decoded>,
    part: &str,
) -> Result<Option<Option<Narrowed>>, SourceError> {
    let Some(since) = since else { return Ok(Some(None)) };
    let narrowed = narrow(footer, schema, parquet_schema, since, decoded, part)?;
    Ok((!narrowed.row_groups.is_empty()).then_some(Some(narrowed)))
}

fn read_err(part: &str, e: impl Into<crate::source::BoxError>) -> SourceError {
    SourceError::Read {
        path: part.to_string(),
        cause: e.into(),
    }
}

/// The row groups to read and the filter for the rest, from the file's footer.
fn narrow(
    footer: &ParquetMetaData,
    schema: &Schema,
    parquet_schema: &SchemaDescriptor,
    since: &Since,
    decoded: &Arc<Decoded>,
    part: &str,
) -> Result<Narrowed, SourceError> {
    let root = schema.index_of(&since.column).map_err(|e| read_err(part, e))?;
    let row_groups = groups_past(footer, schema, parquet_schema, since, part)?;
    let rows_in_groups = row_groups.iter().map(|&g| footer.row_group(g).num_rows().max(0) as u64).sum();
    let seen = Arc::new(AtomicU64::new(0));
    let (counted, decoded, from) = (Arc::clone(&seen), Arc::clone(decoded), since.from);
    let predicate = ArrowPredicateFn::new(ProjectionMask::roots(parquet_schema, [root]), move |batch: RecordBatch| {
        let rows = batch.num_rows() as u64;
        counted.fetch_add(rows, Ordering::Relaxed);
        decoded.cursor_values.fetch_add(rows, Ordering::Relaxed);
        selected(&cursor_values(batch.column(0))?, from)
    });
    Ok(Narrowed {
        row_groups,
        filter: RowFilter::new(vec![Box::new(predicate)]),
        rows_in_groups,
        seen,
    })
}

/// The row groups whose statistics do not rule out a selected row: a group without
/// statistics, with a null cursor, or whose largest cursor is at or past the bound.
fn groups_past(
    footer: &ParquetMetaData,
    schema: &Schema,
    parquet_schema: &SchemaDescriptor,
    since: &Since,
    part: &str,
) -> Result<Vec<usize>, SourceError> {
    let all: Vec<usize> = (0..footer.num_row_groups()).collect();
    let Ok(converter) = StatisticsConverter::try_new(&since.column, schema, parquet_schema) else {
        return Ok(all);
    };
    let maxes = converter
        .row_group_maxes(footer.row_groups().iter())
        .map_err(|e| read_err(part, e))?;
    let nulls = converter
        .row_group_null_counts(footer.row_groups().iter())
        .map_err(|e| read_err(part, e))?;
    let maxes = cursor_values(&maxes).map_err(|e| read_err(part, e))?;
    if maxes.len() != all.len() || nulls.len() != all.len() {
        return Ok(all);
    }
    Ok(all
        .into_iter()
        .filter(|&g| maxes.is_null(g) || maxes.value(g) >= since.from || nulls.is_null(g) || nulls.value(g) > 0)
        .collect())
}
