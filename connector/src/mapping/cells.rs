//! Reading Arrow cells: every physical encoding of a logical type read as one [`Value`].

use std::borrow::Cow;

use arrow::array::{Array, ArrayRef, AsArray};

use crate::calendar;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::datatypes::{
    Date32Type, Date64Type, Decimal128Type, Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type,
    UInt8Type,
};

/// Dictionary columns become plain ones, so `value` needs no dictionary case.
pub(super) fn normalise(array: &ArrayRef) -> ArrayRef {
    if let DataType::Dictionary(_, value_type) = array.data_type() {
        if let Ok(plain) = arrow::compute::cast(array, value_type) {
            return plain;
        }
    }
    array.clone()
}

/// A column of one batch, with a list column's items normalised once per batch
/// rather than once per row.
pub(super) struct Column {
    array: ArrayRef,
    items: Option<ArrayRef>,
}

impl Column {
    pub(super) fn new(array: ArrayRef) -> Column {
        let items = match array.data_type() {
            DataType::List(_) => Some(normalise(array.as_list::<i32>().values())),
            DataType::LargeList(_) => Some(normalise(array.as_list::<i64>().values())),
            _ => None,
        };
        Column { array, items }
    }

    pub(super) fn value(&self, row: usize) -> Value<'_> {
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
pub(super) enum Value<'a> {
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    UInt(u64),
    Float(f64),
    Decimal(i128, i8),
    Bool(bool),
    /// Days since the epoch, from 0001-01-01 to 9999-12-31.
    Date(i64),
    /// From 0001-01-01 to 9999-12-31.
    Timestamp {
        secs: i64,
        nanos: u32,
    },
    /// A value that has no form in a record (a date at `infinity`, in year 20000): why, which
    /// rejects the row whatever the value was mapped to.
    Invalid(String),
    /// Items `start..end` of a list column's (normalised) values array.
    List(&'a dyn Array, usize, usize),
}

/// DuckDB's `-infinity`: the negated maximum, one above the minimum.
const NEGATIVE_INFINITY_64: i64 = -i64::MAX;
const NEGATIVE_INFINITY_32: i32 = -i32::MAX;

/// A timestamp of `per_sec` units since the epoch. `i64::MAX` is `infinity`, and `i64::MIN` (as
/// PostgreSQL has it) and `-i64::MAX` (as DuckDB writes it) are `-infinity`.
pub(super) fn instant(raw: i64, per_sec: i64) -> Value<'static> {
    match raw {
        i64::MAX => outside("infinity"),
        i64::MIN | NEGATIVE_INFINITY_64 => outside("-infinity"),
        _ => {
            let secs = raw.div_euclid(per_sec);
            let nanos = (raw.rem_euclid(per_sec) * (1_000_000_000 / per_sec)) as u32;
            match calendar::secs_in_range(secs) {
                true => Value::Timestamp { secs, nanos },
                false => outside(&calendar::timestamp_text(secs, nanos)),
            }
        }
    }
}

/// A date, in days since the epoch.
fn day(days: i64) -> Value<'static> {
    match calendar::day_in_range(days) {
        true => Value::Date(days),
        false => outside(&calendar::date_text(days)),
    }
}

fn outside(shown: &str) -> Value<'static> {
    Value::Invalid(calendar::outside(shown))
}

/// A scalar cell; list cells come from [`Column::value`], which knows the items.
pub(super) fn value(arr: &dyn Array, row: usize) -> Value<'_> {
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
        // The extremes are `infinity` and `-infinity`, as DuckDB writes them.
        D::Date32 => match arr.as_primitive::<Date32Type>().value(row) {
            i32::MAX => outside("infinity"),
            i32::MIN | NEGATIVE_INFINITY_32 => outside("-infinity"),
            days => day(days.into()),
        },
        D::Date64 => match arr.as_primitive::<Date64Type>().value(row) {
            i64::MAX => outside("infinity"),
            i64::MIN | NEGATIVE_INFINITY_64 => outside("-infinity"),
            millis => day(millis.div_euclid(86_400_000)),
        },
        // The stored value is UTC whatever the zone, so the zone does not change the instant.
        D::Timestamp(TimeUnit::Second, _) => instant(arr.as_primitive::<TimestampSecondType>().value(row), 1),
        D::Timestamp(TimeUnit::Millisecond, _) => instant(arr.as_primitive::<TimestampMillisecondType>().value(row), 1_000),
        D::Timestamp(TimeUnit::Microsecond, _) => instant(arr.as_primitive::<TimestampMicrosecondType>().value(row), 1_000_000),
        D::Timestamp(TimeUnit::Nanosecond, _) => instant(arr.as_primitive::<TimestampNanosecondType>().value(row), 1_000_000_000),
        _ => Value::Null,
    }
}
