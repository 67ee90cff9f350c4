//! PostgreSQL rows into Arrow batches, cell by cell, where no legal value fails the batch.
//!
//! Columns arrive in a few wire forms (see [`Wire`]). Dates and timestamps are read from their
//! binary form as the integers they are, rather than through a date library that cannot hold
//! `infinity` or year 294276; arrays are read from theirs, so that an empty array, NULL
//! elements, any lower bound and any number of dimensions are each a value rather than an
//! error. A cell that has no form in a batch (a `NaN` numeric, a time beyond what Arrow holds,
//! a two-dimensional array) becomes NULL there and a problem of its row, which the mapping
//! rejects with that reason: the row fails, never the batch.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use sqlx::postgres::{PgRow, PgValueFormat, PgValueRef};
use sqlx::{Row, ValueRef};

use crate::calendar;
use crate::column::ColumnType;
use crate::quote::quote;

/// How a column travels: the server-side cast and the decoder that reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wire {
    Text,
    /// `numeric` as its exact decimal text, which may be `NaN` or `±Infinity`.
    Numeric,
    Int,
    Float,
    Bool,
    Date,
    /// `timestamp` and `timestamptz`: both are microseconds since 2000-01-01 UTC on the wire.
    Timestamp,
    TextList,
    NumericList,
    IntList,
    FloatList,
    BoolList,
}

impl Wire {
    pub(super) fn cast(self) -> &'static str {
        match self {
            Wire::Text | Wire::Numeric => "::text",
            Wire::Int => "::int8",
            Wire::Float => "::float8",
            Wire::TextList | Wire::NumericList => "::text[]",
            Wire::IntList => "::int8[]",
            Wire::FloatList => "::float8[]",
            Wire::Bool | Wire::Date | Wire::Timestamp | Wire::BoolList => "",
        }
    }

    /// The list form of a scalar wire, if PostgreSQL arrays of it are read.
    pub(super) fn list(self) -> Option<Wire> {
        Some(match self {
            Wire::Text => Wire::TextList,
            Wire::Numeric => Wire::NumericList,
            Wire::Int => Wire::IntList,
            Wire::Float => Wire::FloatList,
            Wire::Bool => Wire::BoolList,
            _ => return None,
        })
    }
}

/// Microseconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days from 1970-01-01 to 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

/// Per row, the first thing found wrong with one of its cells.
struct Problems {
    rows: usize,
    found: RowProblems,
}

impl Problems {
    fn note(&mut self, row: usize, column: &str, why: &str) {
        let rows = self.rows;
        let found = self.found.get_or_insert_with(|| vec![None; rows]);
        if let Some(slot @ None) = found.get_mut(row) {
            *slot = Some(format!("column {}: {why}", quote(column)));
        }
    }
}

/// The cell's bytes in binary form; `None` for NULL.
fn raw<'r>(row: &'r PgRow, i: usize) -> Result<Option<&'r [u8]>, String> {
    let value: PgValueRef<'r> = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if value.is_null() {
        return Ok(None);
    }
    if value.format() != PgValueFormat::Binary {
        return Err("arrived in text form, where ebb asked for binary".into());
    }
    value.as_bytes().map(Some).map_err(|e| e.to_string())
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("has {} bytes where {N} were expected", bytes.len()))
}

fn text(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("is not UTF-8 text: {e}"))
}

fn numeric(bytes: &[u8]) -> Result<&str, String> {
    let text = text(bytes)?;
    match text {
        "NaN" | "Infinity" | "-Infinity" => Err(format!("{text} is not a finite number")),
        _ => Ok(text),
    }
}

fn int(bytes: &[u8]) -> Result<i64, String> {
    fixed::<8>(bytes).map(i64::from_be_bytes)
}

fn float(bytes: &[u8]) -> Result<f64, String> {
    fixed::<8>(bytes).map(f64::from_be_bytes)
}

fn boolean(bytes: &[u8]) -> Result<bool, String> {
    fixed::<1>(bytes).map(|[b]| b != 0)
}

/// Days since 1970-01-01; `infinity` and `-infinity` are `i32::MAX` and `i32::MIN`, as in
/// PostgreSQL and DuckDB, which the mapping reads as such.
fn date(bytes: &[u8]) -> Result<i32, String> {
    match fixed::<4>(bytes).map(i32::from_be_bytes)? {
        infinite @ (i32::MAX | i32::MIN) => Ok(infinite),
        // PostgreSQL's dates end in 5874897 AD, far inside an i32 from 1970.
        days => days.checked_add(PG_EPOCH_DAYS).ok_or_else(|| "is out of range".to_string()),
    }
}

/// Microseconds since 1970-01-01; `infinity` and `-infinity` are `i64::MAX` and `i64::MIN`. A
/// time in PostgreSQL's last 29 years (294248 to 294276 AD) does not fit an `i64` from 1970.
fn timestamp(bytes: &[u8]) -> Result<i64, String> {
    let micros = fixed::<8>(bytes).map(i64::from_be_bytes)?;
    match micros {
        infinite @ (i64::MAX | i64::MIN) => Ok(infinite),
        _ => micros
            .checked_add(PG_EPOCH_MICROS)
            .filter(|m| *m != i64::MAX && *m != i64::MIN)
            .ok_or_else(|| {
                let secs = micros.div_euclid(1_000_000) + PG_EPOCH_MICROS / 1_000_000;
                let nanos = (micros.rem_euclid(1_000_000) * 1000) as u32;
                calendar::outside(&calendar::timestamp_text(secs, nanos))
            }),
    }
}

/// Reads big-endian integers and slices off an array's bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("is a truncated array".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(fixed::<4>(self.take(4)?)?))
    }
}

/// The elements of a one-dimensional array in binary form, `None` for a NULL element. An empty
/// array has no dimension; its lower bound does not matter to a list.
fn elements(bytes: &[u8]) -> Result<Vec<Option<&[u8]>>, String> {
    let mut reader = Reader(bytes);
    let dimensions = reader.i32()?;
    let _has_nulls = reader.i32()?;
    let _element_type = reader.i32()?;
    match dimensions {
        0 => return Ok(Vec::new()),
        1 => {}
        n => return Err(format!("is an array of {n} dimensions; a list has one")),
    }
    let length = reader.i32()?;
    let _lower_bound = reader.i32()?;
    // Each element takes at least its 4-byte length, so no claim can reserve more than the bytes.
    let mut out = Vec::with_capacity(usize::try_from(length).unwrap_or(0).min(bytes.len() / 4));
    for _ in 0..length {
        let size = reader.i32()?;
        out.push(match usize::try_from(size) {
            Ok(size) => Some(reader.take(size)?),
            Err(_) => None,
        });
    }
    Ok(out)
}

/// One column of scalars: each cell decoded by `read` into `builder`; a cell it cannot read is
/// NULL, and its row's problem.
fn scalars<'r, T, B: ArrayBuilder>(
    cells: &Cells<'r>,
    mut builder: B,
    read: fn(&'r [u8]) -> Result<T, String>,
    push: fn(&mut B, Option<T>),
    problems: &mut Problems,
) -> ArrayRef {
    let rows: &'r [PgRow] = cells.rows;
    for (row, r) in rows.iter().enumerate() {
        match raw(r, cells.index).and_then(|bytes| bytes.map(read).transpose()) {
            Ok(value) => push(&mut builder, value),
            Err(why) => {
                push(&mut builder, None);
                problems.note(row, cells.name, &why);
            }
        }
    }
    builder.finish()
}

/// One column of arrays: a NULL array is a NULL list, NULL elements stay NULL (the mapping
/// leaves them out); an array with an element `read` cannot take is NULL, and its row's problem.
fn lists<'r, T, B: ArrayBuilder>(
    cells: &Cells<'r>,
    values: B,
    read: fn(&'r [u8]) -> Result<T, String>,
    push: fn(&mut B, Option<T>),
    problems: &mut Problems,
) -> ArrayRef {
    let mut builder = ListBuilder::new(values);
    let rows: &'r [PgRow] = cells.rows;
    for (row, r) in rows.iter().enumerate() {
        let items = raw(r, cells.index).and_then(|bytes| {
            let Some(bytes) = bytes else { return Ok(None) };
            let items: Result<Vec<Option<T>>, String> = elements(bytes)?.into_iter().map(|e| e.map(read).transpose()).collect();
            items.map(Some)
        });
        match items {
            Ok(Some(items)) => {
                for item in items {
                    push(builder.values(), item);
                }
                builder.append(true);
            }
            Ok(None) => builder.append(false),
            Err(why) => {
                builder.append(false);
                problems.note(row, cells.name, &why);
            }
        }
    }
    Arc::new(builder.finish())
}

/// One column of the rows: its index in each row and its name.
struct Cells<'a> {
    rows: &'a [PgRow],
    index: usize,
    name: &'a str,
}

fn column(cells: &Cells<'_>, wire: Wire, problems: &mut Problems) -> ArrayRef {
    let p = problems;
    match wire {
        Wire::Text => scalars(cells, StringBuilder::new(), text, |b, v| b.append_option(v), p),
        Wire::Numeric => scalars(cells, StringBuilder::new(), numeric, |b, v| b.append_option(v), p),
        Wire::Int => scalars(cells, Int64Builder::new(), int, |b, v| b.append_option(v), p),
        Wire::Float => scalars(cells, Float64Builder::new(), float, |b, v| b.append_option(v), p),
        Wire::Bool => scalars(cells, BooleanBuilder::new(), boolean, |b, v| b.append_option(v), p),
        Wire::Date => scalars(cells, Date32Builder::new(), date, |b, v| b.append_option(v), p),
        // A timestamp without zone is taken as UTC, as the Parquet source does.
        Wire::Timestamp => scalars(cells, TimestampMicrosecondBuilder::new(), timestamp, |b, v| b.append_option(v), p),
        Wire::TextList => lists(cells, StringBuilder::new(), text, |b, v| b.append_option(v), p),
        Wire::NumericList => lists(cells, StringBuilder::new(), numeric, |b, v| b.append_option(v), p),
        Wire::IntList => lists(cells, Int64Builder::new(), int, |b, v| b.append_option(v), p),
        Wire::FloatList => lists(cells, Float64Builder::new(), float, |b, v| b.append_option(v), p),
        Wire::BoolList => lists(cells, BooleanBuilder::new(), boolean, |b, v| b.append_option(v), p),
    }
}

/// Per row of a batch, what was wrong with it, if anything was (see [`SourceBatch::problems`]).
///
/// [`SourceBatch::problems`]: crate::source::SourceBatch::problems
pub(super) type RowProblems = Option<Vec<Option<String>>>;

/// The batch of `rows`, whose expected columns start at column `offset`, and its problems.
pub(super) fn to_batch(
    expected: &[(String, ColumnType)],
    wires: &[Wire],
    rows: &[PgRow],
    offset: usize,
) -> Result<(RecordBatch, RowProblems), String> {
    let mut problems = Problems {
        rows: rows.len(),
        found: None,
    };
    let mut fields = Vec::with_capacity(wires.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(wires.len());
    for (i, ((name, _), wire)) in expected.iter().zip(wires).enumerate() {
        let cells = Cells {
            rows,
            index: i + offset,
            name,
        };
        let array = column(&cells, *wire, &mut problems);
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| e.to_string())?;
    Ok((batch, problems.found))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(dimensions: i32, items: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = Vec::new();
        for n in [dimensions, 1, 20] {
            out.extend(n.to_be_bytes());
        }
        if dimensions > 0 {
            out.extend((items.len() as i32).to_be_bytes());
            out.extend(0i32.to_be_bytes());
        }
        for item in items {
            match item {
                Some(bytes) => {
                    out.extend((bytes.len() as i32).to_be_bytes());
                    out.extend(*bytes);
                }
                None => out.extend((-1i32).to_be_bytes()),
            }
        }
        out
    }

    #[test]
    fn arrays_of_any_lower_bound_with_nulls_or_empty_are_lists() {
        let one = 1i64.to_be_bytes();
        let bytes = array(1, &[Some(&one), None]);
        let items = elements(&bytes).expect("one dimension");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].map(int), Some(Ok(1)));
        assert!(items[1].is_none());
        assert_eq!(elements(&array(0, &[])).expect("empty"), Vec::<Option<&[u8]>>::new());
    }

    #[test]
    fn a_bad_array_is_a_reason_not_a_panic() {
        assert_eq!(
            elements(&array(2, &[])).expect_err("two dimensions"),
            "is an array of 2 dimensions; a list has one"
        );
        let mut cut = array(1, &[Some(b"abcdef")]);
        cut.truncate(cut.len() - 2);
        assert_eq!(elements(&cut).expect_err("truncated"), "is a truncated array");
        let mut huge = array(1, &[]);
        huge[12..16].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(elements(&huge).is_err(), "a length the bytes do not hold reserves nothing");
    }

    #[test]
    fn infinities_and_the_far_future_keep_their_meaning() {
        assert_eq!(timestamp(&i64::MAX.to_be_bytes()), Ok(i64::MAX));
        assert_eq!(timestamp(&i64::MIN.to_be_bytes()), Ok(i64::MIN));
        assert_eq!(timestamp(&0i64.to_be_bytes()), Ok(PG_EPOCH_MICROS));
        // 294276-12-31 23:59:59 UTC, PostgreSQL's last second, in its microseconds since 2000.
        let last = 9_223_371_331_199_000_000i64;
        let why = timestamp(&last.to_be_bytes()).expect_err("beyond an i64 from 1970");
        assert!(
            why.starts_with("294276-12-31 23:59:59") && why.ends_with("is outside 0001-01-01..9999-12-31"),
            "{why}"
        );
        assert_eq!(date(&i32::MAX.to_be_bytes()), Ok(i32::MAX));
        assert_eq!(date(&i32::MIN.to_be_bytes()), Ok(i32::MIN));
        assert_eq!(numeric(b"NaN"), Err("NaN is not a finite number".into()));
        assert_eq!(numeric(b"-Infinity"), Err("-Infinity is not a finite number".into()));
        assert_eq!(numeric(b"12.50"), Ok("12.50"));
        assert_eq!(int(&[1, 2]), Err("has 2 bytes where 8 were expected".into()));
    }
}
