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

use crate::config::{did_you_mean, AttrType, AttributeSource, ColumnRef, ConfigErrors, ConfigIssue, Mapping, NullPolicy};
use crate::record::{AttrValue, Number, Record};
use crate::source::{ColumnType, SourceBatch, SourceSchema};

/// 2000-01-01T00:00:00Z, the earliest `createdAt` the destination accepts.
pub const MIN_CREATED_AT: i64 = 946_684_800;
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

impl CompiledMapping {
    /// The columns to read, with the types the mapping was checked against.
    pub fn columns(&self) -> &[(String, ColumnType)] {
        &self.columns
    }

    pub fn compile(mapping: &Mapping, schema: &SourceSchema, source: &str, now: i64) -> Result<CompiledMapping, ConfigErrors> {
        let mut issues: Vec<ConfigIssue> = Vec::new();
        let mut columns: Vec<(String, ColumnType)> = Vec::new();
        let mut resolve = |col: &ColumnRef, issues: &mut Vec<ConfigIssue>| -> Option<(usize, ColumnType)> {
            if let Some(t) = schema.column(&col.name) {
                let index = match columns.iter().position(|(n, _)| n == &col.name) {
                    Some(i) => i,
                    None => {
                        columns.push((col.name.clone(), t.clone()));
                        columns.len() - 1
                    }
                };
                return Some((index, t.clone()));
            }
            if let Some((_, ty)) = schema.unsupported.iter().find(|(n, _)| n == &col.name) {
                issues.push(mapping.issue(
                    &col.loc,
                    format!(
                        "column `{}` has type {ty}, which ebb cannot read (supported: strings, integers, floats, decimals, booleans, dates, timestamps, and lists of these)",
                        col.name
                    ),
                    None,
                ));
            } else if let Some((_, detail)) = schema.conflicts.iter().find(|(n, _)| n == &col.name) {
                issues.push(mapping.issue(&col.loc, format!("column `{}` {detail}", col.name), None));
            } else {
                let names = schema
                    .columns
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .chain(schema.unsupported.iter().map(|(n, _)| n.as_str()));
                issues.push(mapping.issue(
                    &col.loc,
                    format!("column `{}` not found in {source}", col.name),
                    did_you_mean(&col.name, names),
                ));
            }
            None
        };

        let id = resolve(&mapping.id, &mut issues);
        if let Some((_, t)) = &id {
            if !id_type_ok(t) {
                issues.push(mapping.issue(
                    &mapping.id.loc,
                    format!("column `{}` is {t}; an id must be text or an integer", mapping.id.name),
                    None,
                ));
            }
        }
        let created_at = resolve(&mapping.created_at, &mut issues);
        if let Some((_, t)) = &created_at {
            if !created_at_type_ok(t) {
                issues.push(mapping.issue(
                    &mapping.created_at.loc,
                    format!(
                        "column `{}` is {t}; created_at must be a timestamp, a date, integer seconds or milliseconds, or RFC 3339 text",
                        mapping.created_at.name
                    ),
                    None,
                ));
            }
        }

        let mut attributes = Vec::new();
        for attr in &mapping.attributes {
            match &attr.source {
                AttributeSource::Constant(v) => attributes.push(CompiledAttr {
                    name: attr.name.clone(),
                    column_name: None,
                    kind: AttrKind::Constant(v.clone()),
                }),
                AttributeSource::Column { column, ty, split, list } => {
                    let Some((col, t)) = resolve(column, &mut issues) else { continue };
                    if *list && !t.is_list() {
                        issues.push(mapping.issue(
                            &column.loc,
                            format!(
                                "`list: true` needs a list column, and `{}` is {t}; use `split:` for delimited text",
                                column.name
                            ),
                            None,
                        ));
                        continue;
                    }
                    if split.is_some() && t != ColumnType::String {
                        issues.push(mapping.issue(
                            &column.loc,
                            format!("`split` needs a string column, and `{}` is {t}", column.name),
                            None,
                        ));
                        continue;
                    }
                    let target = ty.unwrap_or_else(|| if split.is_some() { AttrType::String } else { inferred_type(&t) });
                    if !coercible(&t, target) {
                        issues.push(mapping.issue(
                            &column.loc,
                            format!("column `{}` is {t} and cannot be coerced to {target}", column.name),
                            None,
                        ));
                        continue;
                    }
                    attributes.push(CompiledAttr {
                        name: attr.name.clone(),
                        column_name: Some(column.name.clone()),
                        kind: AttrKind::Column {
                            col,
                            target,
                            split: split.clone(),
                        },
                    });
                }
            }
        }

        match (id, created_at) {
            (Some((id, _)), Some((created_at, _))) if issues.is_empty() => Ok(CompiledMapping {
                columns,
                id,
                created_at,
                attributes,
                nulls: mapping.nulls,
                now,
            }),
            _ => Err(ConfigErrors(issues)),
        }
    }

    /// Maps every row of a batch, in order.
    pub fn map_batch(&self, sb: &SourceBatch, mut emit: impl FnMut(Result<Record, Rejection>)) {
        let batch = &sb.batch;
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|(name, _)| match batch.column_by_name(name) {
                Some(a) => normalise(a),
                // The source checked the columns; an absent one reads as nulls.
                None => arrow::array::new_null_array(&DataType::Null, batch.num_rows()),
            })
            .collect();
        for row in 0..batch.num_rows() {
            emit(self.map_row(&arrays, row).map_err(|(id, reason)| Rejection {
                position: format!("{} row {}", sb.origin, sb.first_row + row as u64 + 1),
                id,
                reason,
            }));
        }
    }

    fn map_row(&self, arrays: &[ArrayRef], row: usize) -> Result<Record, (Option<String>, String)> {
        let id = match value(arrays[self.id].as_ref(), row) {
            Value::Null => return Err((None, "id is null".into())),
            Value::Str(s) if s.trim().is_empty() => return Err((None, "id is empty".into())),
            Value::Str(s) => s.into_owned(),
            Value::Int(i) => i.to_string(),
            Value::UInt(u) => u.to_string(),
            other => return Err((None, format!("id {other:?} is not text or an integer"))),
        };
        let fail = |reason: String| (Some(id.clone()), reason);
        let created_at = created_at_secs(value(arrays[self.created_at].as_ref(), row)).map_err(&fail)?;
        if created_at < MIN_CREATED_AT {
            return Err(fail(format!("createdAt {} is before 2000-01-01", fmt_secs(created_at))));
        }
        if created_at > self.now {
            return Err(fail(format!("createdAt {} is in the future", fmt_secs(created_at))));
        }
        let mut attributes = Vec::with_capacity(self.attributes.len());
        for attr in &self.attributes {
            let v = match &attr.kind {
                AttrKind::Constant(v) => Some(v.clone()),
                AttrKind::Column { col, target, split } => coerce(value(arrays[*col].as_ref(), row), *target, split.as_deref(), self.nulls)
                    .map_err(|reason| {
                        fail(format!(
                            "attribute `{}` (column `{}`): {reason}",
                            attr.name,
                            attr.column_name.as_deref().unwrap_or("")
                        ))
                    })?,
            };
            if let Some(v) = v {
                attributes.push((attr.name.clone(), v));
            }
        }
        // Mapping attributes are sorted by name already (they come from a BTreeMap).
        Ok(Record {
            id,
            created_at,
            attributes,
        })
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
    List(Vec<Value<'a>>),
}

fn split_nanos(v: i64, per_sec: i64) -> Value<'static> {
    let secs = v.div_euclid(per_sec);
    let nanos = (v.rem_euclid(per_sec) * (1_000_000_000 / per_sec)) as u32;
    Value::Timestamp { secs, nanos }
}

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
        D::List(_) => list_values(arr.as_list::<i32>().value(row)),
        D::LargeList(_) => list_values(arr.as_list::<i64>().value(row)),
        _ => Value::Null,
    }
}

fn list_values(items: ArrayRef) -> Value<'static> {
    // The element array is local to this call, so its strings are copied out.
    let items = normalise(&items);
    Value::List((0..items.len()).map(|i| into_static(value(items.as_ref(), i))).collect())
}

fn into_static(v: Value<'_>) -> Value<'static> {
    match v {
        Value::Null => Value::Null,
        Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
        Value::Int(i) => Value::Int(i),
        Value::UInt(u) => Value::UInt(u),
        Value::Float(f) => Value::Float(f),
        Value::Decimal(d, s) => Value::Decimal(d, s),
        Value::Bool(b) => Value::Bool(b),
        Value::Date(d) => Value::Date(d),
        Value::Timestamp { secs, nanos } => Value::Timestamp { secs, nanos },
        Value::List(l) => Value::List(l.into_iter().map(into_static).collect()),
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
        Value::Str(s) => parse_time_text(s.trim()).ok_or_else(|| format!("createdAt {s:?} is not a timestamp, a date or epoch seconds")),
        other => Err(format!("createdAt {other:?} is not a time")),
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

fn to_string(v: Value<'_>) -> Result<String, String> {
    Ok(match v {
        Value::Str(s) => s.into_owned(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => number_text(Number::from_f64(f).ok_or_else(|| format!("{f} has no JSON form"))?),
        Value::Decimal(d, s) if s > 0 => crate::record::decimal_text(d, s as u32),
        Value::Decimal(d, s) => number_text(Number::from_decimal(d, s).ok_or("decimal out of range")?),
        Value::Bool(b) => b.to_string(),
        Value::Date(days) => DateTime::<Utc>::from_timestamp(days * 86_400, 0)
            .ok_or("date out of range")?
            .format("%Y-%m-%d")
            .to_string(),
        Value::Timestamp { secs, nanos } => DateTime::<Utc>::from_timestamp(secs, nanos)
            .ok_or("timestamp out of range")?
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        Value::Null | Value::List(_) => return Err("not a scalar".into()),
    })
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
            .ok_or_else(|| format!("cannot read {s:?} as a number")),
        other => Err(format!("cannot read {other:?} as a number")),
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
            _ => Err(format!("cannot read {s:?} as a boolean")),
        },
        other => Err(format!("cannot read {other:?} as a boolean")),
    }
}

/// A cell as an attribute value; `None` leaves the attribute out.
fn coerce(v: Value<'_>, target: AttrType, split: Option<&str>, nulls: NullPolicy) -> Result<Option<AttrValue>, String> {
    let items: Vec<Value<'_>> = match v {
        Value::Null => {
            return Ok(match nulls {
                NullPolicy::Skip => None,
                NullPolicy::Send => Some(empty(target)),
            })
        }
        Value::List(items) => items.into_iter().filter(|i| !matches!(i, Value::Null)).collect(),
        Value::Str(s) if split.is_some() => {
            let delimiter = split.unwrap_or(",");
            s.split(delimiter)
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| Value::Str(Cow::Owned(p.to_string())))
                .collect()
        }
        scalar => vec![scalar],
    };
    Ok(Some(match target {
        AttrType::String => AttrValue::S(items.into_iter().map(to_string).collect::<Result<_, _>>()?),
        AttrType::Number => AttrValue::N(items.into_iter().map(to_number).collect::<Result<_, _>>()?),
        AttrType::Boolean => AttrValue::B(items.into_iter().map(to_bool).collect::<Result<_, _>>()?),
    }))
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
}
