//! Reading only the rows past a cursor: the values every source compares, and the test.
//!
//! A cursor's value is an integer in the column's own unit, whatever the physical encoding:
//! microseconds since 1970 (UTC) for a timestamp in any unit or zone, days since 1970 for a
//! date, the number for an integer. A row is selected when its value is at or past the bound,
//! or null (a row with no cursor counts as changed), or not representable in that unit (a
//! timestamp in seconds beyond what microseconds hold): a row is never left out because ebb
//! could not compare it.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array};
use arrow::compute::kernels::boolean::or_kleene;
use arrow::compute::kernels::cmp::gt_eq;
use arrow::compute::{cast, is_null};
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use arrow::error::ArrowError;

use super::ColumnType;

/// Which rows a narrowed read takes: those whose `column` is at or past `from`, or null.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Since {
    pub column: String,
    /// In the column's unit (see the module's documentation).
    pub from: i64,
}

/// Whether a column of this type can be a cursor.
pub fn is_cursor_type(t: &ColumnType) -> bool {
    matches!(t, ColumnType::Timestamp | ColumnType::Date | ColumnType::Int | ColumnType::UInt)
}

/// A cursor column's values in its unit; null where a value is null or not representable.
pub fn cursor_values(array: &ArrayRef) -> Result<Int64Array, ArrowError> {
    let as_int64 = |a: &ArrayRef| -> Result<Int64Array, ArrowError> { Ok(cast(a, &DataType::Int64)?.as_primitive::<Int64Type>().clone()) };
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, None) => as_int64(array),
        DataType::Timestamp(..) => as_int64(&cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?),
        DataType::Date32 => as_int64(array),
        DataType::Date64 => as_int64(&cast(array, &DataType::Date32)?),
        DataType::Dictionary(_, value) => {
            let plain = cast(array, value)?;
            cursor_values(&plain)
        }
        DataType::Null => Ok(Int64Array::new_null(array.len())),
        _ => as_int64(array),
    }
}

/// The values of a batch's cursor column, if the batch has it; a column that cannot be read as
/// one is an error of the batch's part.
pub fn batch_cursor_values(batch: &super::SourceBatch, column: &str) -> Result<Option<Int64Array>, super::SourceError> {
    let Some(array) = batch.batch.column_by_name(column) else {
        return Ok(None);
    };
    cursor_values(array).map(Some).map_err(|e| super::SourceError::Read {
        path: batch.origin.to_string(),
        cause: Box::new(e),
    })
}

/// The rows a narrowed read selects: at or past `from`, or without a comparable value.
pub fn selected(values: &Int64Array, from: i64) -> Result<BooleanArray, ArrowError> {
    let at_or_past = gt_eq(values, &Int64Array::new_scalar(from))?;
    or_kleene(&is_null(values)?, &at_or_past)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Date32Array, Int32Array, TimestampNanosecondArray, TimestampSecondArray};

    use super::*;

    #[test]
    fn every_encoding_reads_in_the_columns_unit_and_nulls_are_selected() {
        let nanos: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![Some(1_500_000_000), None]).with_timezone("+02:00"));
        assert_eq!(cursor_values(&nanos).unwrap(), Int64Array::from(vec![Some(1_500_000), None]));
        // Seconds past what microseconds hold are not comparable: such a row is read.
        let secs: ArrayRef = Arc::new(TimestampSecondArray::from(vec![i64::MAX / 10, 5]));
        let values = cursor_values(&secs).unwrap();
        assert!(values.is_null(0));
        assert_eq!(values.value(1), 5_000_000);
        let days: ArrayRef = Arc::new(Date32Array::from(vec![20_000, 19_000]));
        let values = cursor_values(&days).unwrap();
        assert_eq!(selected(&values, 19_500).unwrap(), BooleanArray::from(vec![true, false]));
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(3), None, Some(1)]));
        let values = cursor_values(&ints).unwrap();
        assert_eq!(selected(&values, 2).unwrap(), BooleanArray::from(vec![true, true, false]));
    }
}
