//! Applies a mapping to source rows: Arrow columns in, [`Record`]s or
//! [`Rejection`]s out.
//!
//! `compile` checks a mapping against a source schema (every column exists
//! with a type that can be coerced) and is what `ebb validate` runs.
//! `map_batch` then turns each row into a canonical record, or rejects it with
//! a reason; a bad row never fails the run. Duplicate ids need the whole
//! snapshot and are found by the sync, not here.

use std::borrow::Cow;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::datatypes::{
    Date32Type, Date64Type, Decimal128Type, Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type,
    UInt8Type,
};
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

use crate::column::ColumnType;
use crate::config::{did_you_mean, AttrType, AttributeSource, ColumnRef, ConfigErrors, ConfigIssue, NullPolicy};
use crate::hash::Encoder;
use crate::quote::{debug, quote, shorten, MAX_QUOTED_CHARS};
use crate::record::{AttrValue, Number, Record};
use crate::source::{SourceBatch, SourceSchema};
use crate::spec::Mapping;

/// Integers at or above this are read as epoch milliseconds (13 digits).
const MILLIS_THRESHOLD: i64 = 100_000_000_000;

/// A row that could not be mapped, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    pub id: Option<String>,
    /// `file row N` (1-based) or the id, so a person can find the row.
    pub position: String,
    pub reason: String,
}

#[derive(Debug)]
enum AttrKind {
    Column {
        col: usize,
        target: AttrType,
        split: Option<String>,
    },
    Constant(AttrValue),
}

#[derive(Debug)]
struct CompiledAttr {
    name: String,
    column_name: Option<String>,
    kind: AttrKind,
}

/// A mapping checked against a schema, ready to map rows.
#[derive(Debug)]
pub struct CompiledMapping {
    columns: Vec<(String, ColumnType)>,
    id: usize,
    created_at: usize,
    attributes: Vec<CompiledAttr>,
    nulls: NullPolicy,
    /// Upper bound for `createdAt`: the start of the run.
    now: i64,
    /// Lower bound for `createdAt`: the destination's (a capability).
    earliest_created_at: i64,
}

fn id_type_ok(t: &ColumnType) -> bool {
    matches!(t, ColumnType::String | ColumnType::Int | ColumnType::UInt)
}

fn created_at_type_ok(t: &ColumnType) -> bool {
    matches!(
        t,
        ColumnType::Timestamp | ColumnType::Date | ColumnType::Int | ColumnType::UInt | ColumnType::String
    )
}

/// The wire type a column gets when the mapping does not say.
fn inferred_type(t: &ColumnType) -> AttrType {
    match t.scalar() {
        ColumnType::Int | ColumnType::UInt | ColumnType::Float | ColumnType::Decimal => AttrType::Number,
        ColumnType::Bool => AttrType::Boolean,
        _ => AttrType::String,
    }
}

fn coercible(from: &ColumnType, to: AttrType) -> bool {
    matches!(
        (from.scalar(), to),
        (_, AttrType::String)
            | (
                ColumnType::String | ColumnType::Int | ColumnType::UInt | ColumnType::Float | ColumnType::Decimal,
                AttrType::Number
            )
            | (
                ColumnType::Bool | ColumnType::String | ColumnType::Int | ColumnType::UInt,
                AttrType::Boolean
            )
    )
}

/// Checks a mapping's columns against a schema, collecting the columns to read and every problem.
struct Resolver<'a> {
    mapping: &'a Mapping,
    schema: &'a SourceSchema,
    /// The source, as messages name it.
    source: &'a str,
    columns: Vec<(String, ColumnType)>,
    issues: Vec<ConfigIssue>,
}

impl Resolver<'_> {
    fn issue(&mut self, col: &ColumnRef, message: String) {
        self.issues.push(self.mapping.issue(&col.loc, message, None));
    }

    /// The column's index among those read, and its type; `None` after recording why not.
    fn resolve(&mut self, col: &ColumnRef) -> Option<(usize, ColumnType)> {
        let schema = self.schema;
        if let Some(t) = schema.column(&col.name) {
            let index = match self.columns.iter().position(|(n, _)| n == &col.name) {
                Some(i) => i,
                None => {
                    self.columns.push((col.name.clone(), t.clone()));
                    self.columns.len() - 1
                }
            };
            return Some((index, t.clone()));
        }
        let name = quote(&col.name);
        if let Some((_, ty)) = schema.unsupported.iter().find(|(n, _)| n == &col.name) {
            self.issue(
                col,
                format!(
                    "column {name} has type {ty}, which ebb cannot read (supported: strings, integers, floats, decimals, booleans, dates, timestamps, and lists of these)"
                ),
            );
        } else if let Some((_, detail)) = schema.conflicts.iter().find(|(n, _)| n == &col.name) {
            self.issue(col, format!("column {name} {detail}"));
        } else {
            let names = schema
                .columns
                .iter()
                .map(|(n, _)| n.as_str())
                .chain(schema.unsupported.iter().map(|(n, _)| n.as_str()));
            let hint = did_you_mean(&col.name, names);
            let message = format!("column {name} not found in {}", shorten(self.source, MAX_QUOTED_CHARS));
            self.issues.push(self.mapping.issue(&col.loc, message, hint));
        }
        None
    }

    fn attribute(&mut self, attr: &crate::config::Attribute) -> Option<CompiledAttr> {
        let (column, ty, split, list) = match &attr.source {
            AttributeSource::Constant(v) => {
                return Some(CompiledAttr {
                    name: attr.name.clone(),
                    column_name: None,
                    kind: AttrKind::Constant(v.clone()),
                })
            }
            AttributeSource::Column { column, ty, split, list } => (column, ty, split, *list),
        };
        let (col, t) = self.resolve(column)?;
        let name = quote(&column.name);
        if list && !t.is_list() {
            self.issue(
                column,
                format!("`list: true` needs a list column, and {name} is {t}; use `split:` for delimited text"),
            );
            return None;
        }
        if split.is_some() && t != ColumnType::String {
            self.issue(column, format!("`split` needs a string column, and {name} is {t}"));
            return None;
        }
        let target = ty.unwrap_or_else(|| if split.is_some() { AttrType::String } else { inferred_type(&t) });
        if !coercible(&t, target) {
            self.issue(column, format!("column {name} is {t} and cannot be coerced to {target}"));
            return None;
        }
        Some(CompiledAttr {
            name: attr.name.clone(),
            column_name: Some(column.name.clone()),
            kind: AttrKind::Column {
                col,
                target,
                split: split.clone(),
            },
        })
    }
}

impl CompiledMapping {
    /// The columns to read, with the types the mapping was checked against.
    pub fn columns(&self) -> &[(String, ColumnType)] {
        &self.columns
    }

    pub fn compile(mapping: &Mapping, schema: &SourceSchema, source: &str, now: i64) -> Result<CompiledMapping, ConfigErrors> {
        let mut resolver = Resolver {
            mapping,
            schema,
            source,
            columns: Vec::new(),
            issues: Vec::new(),
        };
        let id = resolver.resolve(&mapping.id);
        if let Some((_, t)) = &id {
            if !id_type_ok(t) {
                let message = format!("column {} is {t}; an id must be text or an integer", quote(&mapping.id.name));
                resolver.issue(&mapping.id, message);
            }
        }
        let created_at = resolver.resolve(&mapping.created_at);
        if let Some((_, t)) = &created_at {
            if !created_at_type_ok(t) {
                let message = format!(
                    "column {} is {t}; created_at must be a timestamp, a date, integer seconds or milliseconds, or RFC 3339 text",
                    quote(&mapping.created_at.name)
                );
                resolver.issue(&mapping.created_at, message);
            }
        }
        let attributes: Vec<CompiledAttr> = mapping.attributes.iter().filter_map(|a| resolver.attribute(a)).collect();
        match (id, created_at) {
            (Some((id, _)), Some((created_at, _))) if resolver.issues.is_empty() => Ok(CompiledMapping {
                columns: resolver.columns,
                id,
                created_at,
                attributes,
                nulls: mapping.nulls,
                now,
                earliest_created_at: mapping.destination.capabilities().earliest_created_at().unwrap_or(i64::MIN),
            }),
            _ => Err(ConfigErrors(resolver.issues)),
        }
    }

    /// Maps every row of a batch, in order.
    pub fn map_batch(&self, sb: &SourceBatch, mut emit: impl FnMut(Result<Record, Rejection>)) {
        let columns = self.prepare(sb);
        let mut sink = RecordBuilder::default();
        let mut scratch = String::new();
        for row in 0..sb.batch.num_rows() {
            emit(
                self.map_row(&columns, row, &mut sink, &mut scratch)
                    .map(|()| sink.take())
                    .map_err(|(id, reason)| self.rejection(sb, row, id, reason)),
            );
        }
    }

    /// Maps only the rows whose id `select` accepts; the others are not mapped at all.
    pub fn map_selected(&self, sb: &SourceBatch, mut select: impl FnMut(&str) -> bool, mut emit: impl FnMut(Result<Record, Rejection>)) {
        let columns = self.prepare(sb);
        let mut sink = RecordBuilder::default();
        let (mut scratch, mut id_scratch) = (String::new(), String::new());
        for row in 0..sb.batch.num_rows() {
            if !row_id(&columns[self.id], row, &mut id_scratch).is_ok_and(&mut select) {
                continue;
            }
            emit(
                self.map_row(&columns, row, &mut sink, &mut scratch)
                    .map(|()| sink.take())
                    .map_err(|(id, reason)| self.rejection(sb, row, id, reason)),
            );
        }
    }

    /// Hashes every row of a batch the way [`record_hash`](crate::hash::record_hash) hashes
    /// the mapped record, without building it: `emit` gets the id and the hash, or the rejection.
    pub fn hash_batch(&self, sb: &SourceBatch, mut emit: impl FnMut(Result<(&str, u128), Rejection>)) {
        let columns = self.prepare(sb);
        let mut sink = HashWriter::default();
        let mut scratch = String::new();
        for row in 0..sb.batch.num_rows() {
            match self.map_row(&columns, row, &mut sink, &mut scratch) {
                Ok(()) => {
                    let hash = sink.encoder.finish();
                    emit(Ok((&sink.id, hash)));
                }
                Err((id, reason)) => emit(Err(self.rejection(sb, row, id, reason))),
            }
        }
    }

    /// The id of every row, or `None` where it is null or empty; for finding rows again.
    pub fn ids_batch(&self, sb: &SourceBatch, mut emit: impl FnMut(Option<&str>)) {
        let columns = self.prepare(sb);
        let mut scratch = String::new();
        for row in 0..sb.batch.num_rows() {
            emit(row_id(&columns[self.id], row, &mut scratch).ok());
        }
    }

    fn rejection(&self, sb: &SourceBatch, row: usize, id: Option<String>, reason: String) -> Rejection {
        Rejection {
            position: format!("{} row {}", sb.origin, sb.first_row + row as u64 + 1),
            id,
            reason,
        }
    }

    fn prepare(&self, sb: &SourceBatch) -> Vec<Column> {
        let batch = &sb.batch;
        self.columns
            .iter()
            .map(|(name, _)| match batch.column_by_name(name) {
                Some(a) => Column::new(normalise(a)),
                // The source checked the columns; an absent one reads as nulls.
                None => Column::new(arrow::array::new_null_array(&DataType::Null, batch.num_rows())),
            })
            .collect()
    }

    fn map_row(
        &self,
        columns: &[Column],
        row: usize,
        sink: &mut impl RowWriter,
        scratch: &mut String,
    ) -> Result<(), (Option<String>, String)> {
        let id = row_id(&columns[self.id], row, scratch).map_err(|reason| (None, reason))?;
        let fail = |reason: String| (Some(id.to_string()), reason);
        let created_at = created_at_secs(columns[self.created_at].value(row)).map_err(fail)?;
        if created_at < self.earliest_created_at {
            let earliest = DateTime::<Utc>::from_timestamp(self.earliest_created_at, 0)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| self.earliest_created_at.to_string());
            return Err(fail(format!("createdAt {} is before {earliest}", fmt_secs(created_at))));
        }
        if created_at > self.now {
            return Err(fail(format!("createdAt {} is in the future", fmt_secs(created_at))));
        }
        sink.begin(id, created_at);
        let mut text = String::new();
        // Mapping attributes are sorted by name already (they come from a BTreeMap).
        for attr in &self.attributes {
            match &attr.kind {
                AttrKind::Constant(v) => sink.constant(&attr.name, v),
                AttrKind::Column { col, target, split } => coerce(
                    columns[*col].value(row),
                    &attr.name,
                    *target,
                    split.as_deref(),
                    self.nulls,
                    sink,
                    &mut text,
                )
                .map_err(|reason| {
                    fail(format!(
                        "attribute {} (column {}): {reason}",
                        quote(&attr.name),
                        quote(attr.column_name.as_deref().unwrap_or(""))
                    ))
                })?,
            }
        }
        Ok(())
    }
}

fn row_id<'a>(column: &'a Column, row: usize, scratch: &'a mut String) -> Result<&'a str, String> {
    use std::fmt::Write;
    scratch.clear();
    match column.value(row) {
        Value::Null => Err("id is null".into()),
        Value::Str(s) if s.trim().is_empty() => Err("id is empty".into()),
        Value::Str(Cow::Borrowed(s)) => Ok(s),
        Value::Str(Cow::Owned(s)) => {
            scratch.push_str(&s);
            Ok(scratch)
        }
        Value::Int(i) => {
            let _ = write!(scratch, "{i}");
            Ok(scratch)
        }
        Value::UInt(u) => {
            let _ = write!(scratch, "{u}");
            Ok(scratch)
        }
        other => Err(format!("id {} is not text or an integer", debug(&other))),
    }
}

/// Where [`CompiledMapping::map_row`] writes a row: into a [`Record`], or
/// straight into the canonical hash. One mapping routine feeds both, so the
/// hash of a row is by construction the hash of the record that is sent.
trait RowWriter {
    fn begin(&mut self, id: &str, created_at: i64);
    fn begin_attr(&mut self, name: &str, target: AttrType);
    fn str_item(&mut self, s: &str);
    fn num_item(&mut self, n: Number);
    fn bool_item(&mut self, b: bool);
    fn end_attr(&mut self);

    fn constant(&mut self, name: &str, value: &AttrValue) {
        match value {
            AttrValue::S(items) => {
                self.begin_attr(name, AttrType::String);
                items.iter().for_each(|s| self.str_item(s));
            }
            AttrValue::N(items) => {
                self.begin_attr(name, AttrType::Number);
                items.iter().for_each(|n| self.num_item(*n));
            }
            AttrValue::B(items) => {
                self.begin_attr(name, AttrType::Boolean);
                items.iter().for_each(|b| self.bool_item(*b));
            }
        }
        self.end_attr();
    }
}

#[derive(Default)]
struct RecordBuilder {
    record: Option<Record>,
}

impl RecordBuilder {
    fn take(&mut self) -> Record {
        self.record.take().unwrap_or(Record {
            id: String::new(),
            created_at: 0,
            attributes: Vec::new(),
        })
    }

    fn current(&mut self) -> Option<&mut AttrValue> {
        self.record.as_mut().and_then(|r| r.attributes.last_mut()).map(|(_, v)| v)
    }
}

impl RowWriter for RecordBuilder {
    fn begin(&mut self, id: &str, created_at: i64) {
        self.record = Some(Record {
            id: id.to_string(),
            created_at,
            attributes: Vec::new(),
        });
    }

    fn begin_attr(&mut self, name: &str, target: AttrType) {
        if let Some(r) = self.record.as_mut() {
            r.attributes.push((name.to_string(), empty(target)));
        }
    }

    fn str_item(&mut self, s: &str) {
        if let Some(AttrValue::S(items)) = self.current() {
            items.push(s.to_string());
        }
    }

    fn num_item(&mut self, n: Number) {
        if let Some(AttrValue::N(items)) = self.current() {
            items.push(n);
        }
    }

    fn bool_item(&mut self, b: bool) {
        if let Some(AttrValue::B(items)) = self.current() {
            items.push(b);
        }
    }

    fn end_attr(&mut self) {}
}

#[derive(Default)]
struct HashWriter {
    id: String,
    encoder: Encoder,
}

impl RowWriter for HashWriter {
    fn begin(&mut self, id: &str, created_at: i64) {
        self.id.clear();
        self.id.push_str(id);
        self.encoder.begin(id, created_at);
    }

    fn begin_attr(&mut self, name: &str, target: AttrType) {
        let tag = match target {
            AttrType::String => b's',
            AttrType::Number => b'n',
            AttrType::Boolean => b'b',
        };
        self.encoder.begin_attr(name, tag);
    }

    fn str_item(&mut self, s: &str) {
        self.encoder.str_item(s);
    }

    fn num_item(&mut self, n: Number) {
        self.encoder.num_item(n);
    }

    fn bool_item(&mut self, b: bool) {
        self.encoder.bool_item(b);
    }

    fn end_attr(&mut self) {
        self.encoder.end_attr();
    }
}

/// Dictionary columns become plain ones, so `value` needs no dictionary case.
fn normalise(array: &ArrayRef) -> ArrayRef {
    if let DataType::Dictionary(_, value_type) = array.data_type() {
        if let Ok(plain) = arrow::compute::cast(array, value_type) {
            return plain;
        }
    }
    array.clone()
}

/// A column of one batch, with a list column's items normalised once per batch
/// rather than once per row.
struct Column {
    array: ArrayRef,
    items: Option<ArrayRef>,
}

impl Column {
    fn new(array: ArrayRef) -> Column {
        let items = match array.data_type() {
            DataType::List(_) => Some(normalise(array.as_list::<i32>().values())),
            DataType::LargeList(_) => Some(normalise(array.as_list::<i64>().values())),
            _ => None,
        };
        Column { array, items }
    }

    fn value(&self, row: usize) -> Value<'_> {
        match &self.items {
            Some(items) if !self.array.is_null(row) => {
                let (start, end) = match self.array.data_type() {
                    DataType::LargeList(_) => {
                        let offsets = self.array.as_list::<i64>().value_offsets();
                        (offsets[row] as usize, offsets[row + 1] as usize)
                    }
                    _ => {
                        let offsets = self.array.as_list::<i32>().value_offsets();
                        (offsets[row] as usize, offsets[row + 1] as usize)
                    }
                };
                Value::List(items.as_ref(), start, end)
            }
            _ => value(self.array.as_ref(), row),
        }
    }
}

/// One cell, borrowed from its array where possible.
#[derive(Debug)]
enum Value<'a> {
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    UInt(u64),
    Float(f64),
    Decimal(i128, i8),
    Bool(bool),
    /// Days since the epoch.
    Date(i64),
    Timestamp {
        secs: i64,
        nanos: u32,
    },
    /// Items `start..end` of a list column's (normalised) values array.
    List(&'a dyn Array, usize, usize),
}

fn split_nanos(v: i64, per_sec: i64) -> Value<'static> {
    let secs = v.div_euclid(per_sec);
    let nanos = (v.rem_euclid(per_sec) * (1_000_000_000 / per_sec)) as u32;
    Value::Timestamp { secs, nanos }
}

/// A scalar cell; list cells come from [`Column::value`], which knows the items.
fn value(arr: &dyn Array, row: usize) -> Value<'_> {
    if arr.is_null(row) {
        return Value::Null;
    }
    use DataType as D;
    match arr.data_type() {
        D::Utf8 => Value::Str(Cow::Borrowed(arr.as_string::<i32>().value(row))),
        D::LargeUtf8 => Value::Str(Cow::Borrowed(arr.as_string::<i64>().value(row))),
        D::Utf8View => Value::Str(Cow::Borrowed(arr.as_string_view().value(row))),
        D::Int8 => Value::Int(arr.as_primitive::<Int8Type>().value(row).into()),
        D::Int16 => Value::Int(arr.as_primitive::<Int16Type>().value(row).into()),
        D::Int32 => Value::Int(arr.as_primitive::<Int32Type>().value(row).into()),
        D::Int64 => Value::Int(arr.as_primitive::<Int64Type>().value(row)),
        D::UInt8 => Value::UInt(arr.as_primitive::<UInt8Type>().value(row).into()),
        D::UInt16 => Value::UInt(arr.as_primitive::<UInt16Type>().value(row).into()),
        D::UInt32 => Value::UInt(arr.as_primitive::<UInt32Type>().value(row).into()),
        D::UInt64 => Value::UInt(arr.as_primitive::<UInt64Type>().value(row)),
        D::Float16 => Value::Float(arr.as_primitive::<Float16Type>().value(row).to_f64()),
        // Through the shortest decimal text, so float32 1.1 reads as 1.1, not 1.100000023841858.
        D::Float32 => Value::Float(arr.as_primitive::<Float32Type>().value(row).to_string().parse().unwrap_or(f64::NAN)),
        D::Float64 => Value::Float(arr.as_primitive::<Float64Type>().value(row)),
        D::Decimal128(_, scale) => Value::Decimal(arr.as_primitive::<Decimal128Type>().value(row), *scale),
        D::Boolean => Value::Bool(arr.as_boolean().value(row)),
        D::Date32 => Value::Date(arr.as_primitive::<Date32Type>().value(row).into()),
        D::Date64 => Value::Date(arr.as_primitive::<Date64Type>().value(row).div_euclid(86_400_000)),
        // The stored value is UTC whatever the zone, so the zone does not change the instant.
        D::Timestamp(TimeUnit::Second, _) => Value::Timestamp {
            secs: arr.as_primitive::<TimestampSecondType>().value(row),
            nanos: 0,
        },
        D::Timestamp(TimeUnit::Millisecond, _) => split_nanos(arr.as_primitive::<TimestampMillisecondType>().value(row), 1_000),
        D::Timestamp(TimeUnit::Microsecond, _) => split_nanos(arr.as_primitive::<TimestampMicrosecondType>().value(row), 1_000_000),
        D::Timestamp(TimeUnit::Nanosecond, _) => split_nanos(arr.as_primitive::<TimestampNanosecondType>().value(row), 1_000_000_000),
        _ => Value::Null,
    }
}

fn fmt_secs(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| secs.to_string())
}

fn epoch_number(v: i64) -> i64 {
    if v.abs() >= MILLIS_THRESHOLD {
        v.div_euclid(1000)
    } else {
        v
    }
}

fn created_at_secs(v: Value<'_>) -> Result<i64, String> {
    match v {
        Value::Null => Err("createdAt is null".into()),
        Value::Timestamp { secs, .. } => Ok(secs),
        Value::Date(days) => Ok(days * 86_400),
        Value::Int(i) => Ok(epoch_number(i)),
        Value::UInt(u) => i64::try_from(u)
            .map(epoch_number)
            .map_err(|_| format!("createdAt {u} is out of range")),
        Value::Str(s) => {
            parse_time_text(s.trim()).ok_or_else(|| format!("createdAt {} is not a timestamp, a date or epoch seconds", debug(&s)))
        }
        other => Err(format!("createdAt {} is not a time", debug(&other))),
    }
}

fn parse_time_text(s: &str) -> Option<i64> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok().map(epoch_number);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).unwrap_or(0))
}

fn number_text(n: Number) -> String {
    match n {
        Number::Int(i) => i.to_string(),
        Number::Float(f) => f.to_string(),
    }
}

/// A scalar as text; `Str` is borrowed, the rest are written into `out`.
fn to_text<'v>(v: &'v Value<'_>, out: &'v mut String) -> Result<&'v str, String> {
    use std::fmt::Write;
    out.clear();
    match v {
        Value::Str(s) => return Ok(s),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) => out.push_str(&number_text(Number::from_f64(*f).ok_or_else(|| format!("{f} has no JSON form"))?)),
        Value::Decimal(d, s) if *s > 0 => out.push_str(&crate::record::decimal_text(*d, *s as u32)),
        Value::Decimal(d, s) => out.push_str(&number_text(Number::from_decimal(*d, *s).ok_or("decimal out of range")?)),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Date(days) => {
            let date = DateTime::<Utc>::from_timestamp(days * 86_400, 0).ok_or("date out of range")?;
            let _ = write!(out, "{}", date.format("%Y-%m-%d"));
        }
        Value::Timestamp { secs, nanos } => out.push_str(
            &DateTime::<Utc>::from_timestamp(*secs, *nanos)
                .ok_or("timestamp out of range")?
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        ),
        Value::Null | Value::List(..) => return Err("not a scalar".into()),
    }
    Ok(out)
}

fn to_number(v: Value<'_>) -> Result<Number, String> {
    match v {
        Value::Int(i) => Ok(Number::Int(i)),
        Value::UInt(u) => Ok(Number::from_u64(u)),
        Value::Float(f) => Number::from_f64(f).ok_or_else(|| format!("{f} is not a finite number")),
        Value::Decimal(d, s) => Number::from_decimal(d, s).ok_or_else(|| "decimal out of range".into()),
        Value::Str(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .ok_or_else(|| format!("cannot read {} as a number", debug(&s))),
        other => Err(format!("cannot read {} as a number", debug(&other))),
    }
}

fn to_bool(v: Value<'_>) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(b),
        Value::Int(0) | Value::UInt(0) => Ok(false),
        Value::Int(1) | Value::UInt(1) => Ok(true),
        Value::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" => Ok(true),
            "false" | "f" | "no" | "n" | "0" => Ok(false),
            _ => Err(format!("cannot read {} as a boolean", debug(&s))),
        },
        other => Err(format!("cannot read {} as a boolean", debug(&other))),
    }
}

fn item(v: Value<'_>, target: AttrType, sink: &mut impl RowWriter, text: &mut String) -> Result<(), String> {
    match target {
        AttrType::String => sink.str_item(to_text(&v, text)?),
        AttrType::Number => sink.num_item(to_number(v)?),
        AttrType::Boolean => sink.bool_item(to_bool(v)?),
    }
    Ok(())
}

/// Writes a cell as attribute `name`; a null under `nulls: skip` writes nothing.
fn coerce(
    v: Value<'_>,
    name: &str,
    target: AttrType,
    split: Option<&str>,
    nulls: NullPolicy,
    sink: &mut impl RowWriter,
    text: &mut String,
) -> Result<(), String> {
    match v {
        Value::Null => {
            if nulls == NullPolicy::Send {
                sink.begin_attr(name, target);
                sink.end_attr();
            }
            return Ok(());
        }
        Value::List(items, start, end) => {
            sink.begin_attr(name, target);
            for i in start..end {
                match value(items, i) {
                    Value::Null => {}
                    v => item(v, target, sink, text)?,
                }
            }
        }
        Value::Str(s) if split.is_some() => {
            sink.begin_attr(name, target);
            for part in s.split(split.unwrap_or(",")).map(str::trim).filter(|p| !p.is_empty()) {
                item(Value::Str(Cow::Borrowed(part)), target, sink, text)?;
            }
        }
        scalar => {
            sink.begin_attr(name, target);
            item(scalar, target, sink, text)?;
        }
    }
    sink.end_attr();
    Ok(())
}

fn empty(target: AttrType) -> AttrValue {
    match target {
        AttrType::String => AttrValue::S(Vec::new()),
        AttrType::Number => AttrValue::N(Vec::new()),
        AttrType::Boolean => AttrValue::B(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_text_forms() {
        assert_eq!(parse_time_text("2021-03-04T05:06:07Z"), Some(1_614_834_367));
        assert_eq!(parse_time_text("2021-03-04T06:06:07+01:00"), Some(1_614_834_367));
        assert_eq!(parse_time_text("2021-03-04 05:06:07"), Some(1_614_834_367));
        assert_eq!(parse_time_text("2021-03-04"), Some(1_614_816_000));
        assert_eq!(parse_time_text("1614834367123"), Some(1_614_834_367));
        assert_eq!(parse_time_text("yesterday"), None);
    }

    fn coerce(v: Value<'_>, target: AttrType, split: Option<&str>, nulls: NullPolicy) -> Result<Option<AttrValue>, String> {
        let mut sink = RecordBuilder::default();
        sink.begin("k", 0);
        super::coerce(v, "v", target, split, nulls, &mut sink, &mut String::new())?;
        Ok(sink.take().attributes.pop().map(|(_, v)| v))
    }

    #[test]
    fn a_huge_value_is_quoted_back_cut_short_in_its_rejection() {
        let huge = "9x".repeat(2_500_000);
        let reason = coerce(Value::Str(Cow::Borrowed(&huge)), AttrType::Number, None, NullPolicy::Skip).expect_err("not a number");
        assert!(reason.len() < 200 && reason.contains("5000002 characters"), "{reason}");
        let reason = coerce(Value::Str(Cow::Borrowed(&huge)), AttrType::Boolean, None, NullPolicy::Skip).expect_err("not a boolean");
        assert!(reason.len() < 200, "{reason}");
    }

    #[test]
    fn coercions() {
        let s = |x: &'static str| Value::Str(Cow::Borrowed(x));
        assert_eq!(
            coerce(s("a, b,,c"), AttrType::String, Some(","), NullPolicy::Skip),
            Ok(Some(AttrValue::S(vec!["a".into(), "b".into(), "c".into()])))
        );
        assert_eq!(coerce(Value::Null, AttrType::Number, None, NullPolicy::Skip), Ok(None));
        assert_eq!(
            coerce(Value::Null, AttrType::Number, None, NullPolicy::Send),
            Ok(Some(AttrValue::N(vec![])))
        );
        assert_eq!(
            coerce(s(" 3.50 "), AttrType::Number, None, NullPolicy::Skip),
            Ok(Some(AttrValue::N(vec![Number::Float(3.5)])))
        );
        assert!(coerce(s("x"), AttrType::Number, None, NullPolicy::Skip)
            .unwrap_err()
            .contains("cannot read \"x\" as a number"));
        assert_eq!(
            coerce(s("No"), AttrType::Boolean, None, NullPolicy::Skip),
            Ok(Some(AttrValue::B(vec![false])))
        );
        assert!(coerce(Value::Int(2), AttrType::Boolean, None, NullPolicy::Skip).is_err());
        assert_eq!(
            coerce(Value::Float(f64::NAN), AttrType::Number, None, NullPolicy::Skip).map(|_| ()),
            Err("NaN is not a finite number".into())
        );
    }

    /// The one property the diff rests on: hashing a row from its columns gives the hash of
    /// the record that would be sent, for every kind of value, and rejects the same rows.
    #[test]
    fn hashing_from_columns_matches_hashing_the_record() {
        use arrow::array::{
            Date32Array, Decimal128Array, DictionaryArray, Float32Array, Int64Array, ListBuilder, StringArray, StringBuilder,
            TimestampMicrosecondArray,
        };
        use arrow::datatypes::Int32Type;
        use arrow::record_batch::RecordBatch;
        use std::sync::Arc;

        let mut tags = ListBuilder::new(StringBuilder::new());
        for row in [
            Some(vec![Some("a"), None, Some("b")]),
            None,
            Some(vec![]),
            Some(vec![Some("c")]),
            Some(vec![Some("")]),
        ] {
            match row {
                Some(items) => {
                    for i in items {
                        tags.values().append_option(i);
                    }
                    tags.append(true);
                }
                None => tags.append(false),
            }
        }
        let t = 1_600_000_000_000_000i64;
        let batch = RecordBatch::try_from_iter(vec![
            (
                "id",
                Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(4), Some(5)])) as ArrayRef,
            ),
            (
                "at",
                Arc::new(TimestampMicrosecondArray::from(vec![
                    Some(t),
                    Some(t + 1),
                    Some(t),
                    Some(0),
                    Some(t),
                ])) as ArrayRef,
            ),
            (
                "name",
                Arc::new(StringArray::from(vec![Some("Ada"), None, Some("x"), Some("é"), Some("")])) as ArrayRef,
            ),
            (
                "plan",
                Arc::new(
                    vec![Some("pro"), Some("free"), None, Some("pro"), Some("free")]
                        .into_iter()
                        .collect::<DictionaryArray<Int32Type>>(),
                ) as ArrayRef,
            ),
            ("tags", Arc::new(tags.finish()) as ArrayRef),
            (
                "csv",
                Arc::new(StringArray::from(vec![Some("a, b,,c"), Some(""), None, Some("x"), Some(" , ")])) as ArrayRef,
            ),
            (
                "f32",
                Arc::new(Float32Array::from(vec![Some(1.1), Some(2.0), None, Some(-0.0), Some(f32::NAN)])) as ArrayRef,
            ),
            (
                "dec",
                Arc::new(
                    Decimal128Array::from(vec![Some(1250), Some(100), None, Some(-1), Some(7)])
                        .with_precision_and_scale(10, 2)
                        .expect("decimal"),
                ) as ArrayRef,
            ),
            (
                "day",
                Arc::new(Date32Array::from(vec![Some(18_000), None, Some(0), Some(1), Some(2)])) as ArrayRef,
            ),
        ])
        .expect("batch");
        let sb = SourceBatch {
            batch,
            origin: "test".into(),
            first_row: 0,
        };
        let attr = |name: &str, col: usize, target: AttrType, split: Option<&str>| CompiledAttr {
            name: name.into(),
            column_name: Some(name.into()),
            kind: AttrKind::Column {
                col,
                target,
                split: split.map(String::from),
            },
        };
        for nulls in [NullPolicy::Skip, NullPolicy::Send] {
            let mut attributes = vec![
                attr("csv", 5, AttrType::String, Some(",")),
                attr("day", 8, AttrType::String, None),
                attr("dec", 7, AttrType::Number, None),
                attr("decText", 7, AttrType::String, None),
                attr("f32", 6, AttrType::Number, None),
                attr("name", 2, AttrType::String, None),
                attr("plan", 3, AttrType::String, None),
                attr("tags", 4, AttrType::String, None),
                attr("when", 1, AttrType::String, None),
                CompiledAttr {
                    name: "zConst".into(),
                    column_name: None,
                    kind: AttrKind::Constant(AttrValue::N(vec![Number::Int(3)])),
                },
            ];
            attributes.sort_by(|a, b| a.name.cmp(&b.name));
            let compiled = CompiledMapping {
                columns: ["id", "at", "name", "plan", "tags", "csv", "f32", "dec", "day"]
                    .iter()
                    .map(|n| (n.to_string(), ColumnType::String))
                    .collect(),
                id: 0,
                created_at: 1,
                attributes,
                nulls,
                now: 2_000_000_000,
                earliest_created_at: crate::destination::enterpret::EARLIEST_CREATED_AT,
            };
            let mut mapped = Vec::new();
            compiled.map_batch(&sb, |r| mapped.push(r));
            let mut hashed = Vec::new();
            compiled.hash_batch(&sb, |r| hashed.push(r.map(|(id, h)| (id.to_string(), h))));
            let mut selected = Vec::new();
            compiled.map_selected(&sb, |_| true, |r| selected.push(r));
            assert_eq!(mapped.len(), 5);
            let (mut ok, mut rejected) = (0, 0);
            for (m, h) in mapped.iter().zip(&hashed) {
                match (m, h) {
                    (Ok(record), Ok((id, hash))) => {
                        ok += 1;
                        assert_eq!((id, *hash), (&record.id, crate::hash::record_hash(record)), "{record:?}");
                    }
                    (Err(a), Err(b)) => {
                        rejected += 1;
                        assert_eq!(a, b);
                    }
                    other => panic!("the two paths disagree: {other:?}"),
                }
            }
            // Row 3 (null id) and row 4 (createdAt 1970) are rejected, and so is row 5's NaN.
            assert_eq!((ok, rejected), (2, 3), "{mapped:?}");
            let ok_ids: Vec<String> = selected.iter().filter_map(|r| r.as_ref().ok().map(|r| r.id.clone())).collect();
            assert_eq!(ok_ids, vec!["1".to_string(), "2".to_string()]);
        }
    }
}
