//! Reading Arrow cells: every physical encoding of a logical type read as one [`Value`].

use std::borrow::Cow;

use arrow::array::{Array, ArrayRef, AsArray};
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
    /// Days since the epoch.
    Date(i64),
    Timestamp {
        secs: i64,
        nanos: u32,
    },
    /// Items `start..end` of a list column's (normalised) values array.
    List(&'a dyn Array, usize, usize),
}

pub(super) fn split_nanos(v: i64, per_sec: i64) -> Value<'static> {
    let secs = v.div_euclid(per_sec);
    let nanos = (v.rem_euclid(per_sec) * (1_000_000_000 / per_sec)) as u32;
    Value::Timestamp { secs, nanos }
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
