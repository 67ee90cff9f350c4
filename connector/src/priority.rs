//! `priority:` at run time: the column checked against the source's schema, its values read as
//! integers that order as the column does, and the place of each record in its send group.
//!
//! Values are compared as `i64`: a timestamp in microseconds, a date in days, an integer as it
//! is, and a float or decimal through its IEEE-754 bits, flipped so that integer order is float
//! order. A null, a NaN, or a value no `i64` holds (a timestamp past year 294,000, an unsigned
//! integer past 2^63) has no place in the order, and goes after every value.

use std::cmp::Reverse;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use arrow::error::ArrowError;

use crate::column::ColumnType;
use crate::config::{ConfigErrors, SortOrder};
use crate::quote::quote;
use crate::source::since::cursor_values;
use crate::source::{SourceBatch, SourceError, SourceSchema};
use crate::spec::Mapping;

/// The priority column as the source has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriorityColumn {
    pub name: String,
    pub ty: ColumnType,
    pub order: SortOrder,
}

/// The mapping's priority column, checked against the source's schema: there, and of a type
/// that orders.
pub fn check(mapping: &Mapping, schema: &SourceSchema) -> Result<Option<PriorityColumn>, ConfigErrors> {
    let Some(config) = &mapping.priority else { return Ok(None) };
    let Some(ty) = schema.column(&config.column) else {
        let (message, hint) = schema.missing(&config.column);
        return Err(ConfigErrors(vec![mapping.issue(&config.loc, message, hint)]));
    };
    let orders = matches!(
        ty,
        ColumnType::Timestamp
            | ColumnType::Date
            | ColumnType::Int
            | ColumnType::UInt
            | ColumnType::Float
            | ColumnType::Decimal
            | ColumnType::Null
    );
    if !orders {
        let message = format!(
            "column {} is {ty}: a priority is a timestamp, date or number column",
            quote(&config.column)
        );
        return Err(ConfigErrors(vec![mapping.issue(&config.loc, message, None)]));
    }
    Ok(Some(PriorityColumn {
        name: config.column.clone(),
        ty: ty.clone(),
        order: config.order,
    }))
}

/// The batch's priority values as ordered integers, if the batch has the column.
pub fn batch_values(batch: &SourceBatch, column: &str) -> Result<Option<Int64Array>, SourceError> {
    let Some(array) = batch.batch.column_by_name(column) else {
        return Ok(None);
    };
    ordered_values(array).map(Some).map_err(|e| SourceError::Read {
        path: batch.origin.to_string(),
        cause: Box::new(e),
    })
}

fn ordered_values(array: &ArrayRef) -> Result<Int64Array, ArrowError> {
    match array.data_type() {
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) | DataType::Decimal256(..) => {
            let floats = cast(array, &DataType::Float64)?;
            Ok(floats
                .as_primitive::<Float64Type>()
                .iter()
                .map(|v| v.filter(|f| !f.is_nan()).map(float_order))
                .collect())
        }
        DataType::Dictionary(_, value) => ordered_values(&cast(array, value)?),
        _ => cursor_values(array),
    }
}

/// A float as an integer in the same order: positive floats order as their bits do; negative
/// ones in reverse, so their bits below the sign are flipped.
fn float_order(f: f64) -> i64 {
    let bits = f.to_bits() as i64;
    if bits < 0 {
        bits ^ i64::MAX
    } else {
        bits
    }
}

/// What sorts a record within its group: rows with a value first, in the column's order, then
/// the rest; ties and nulls in source order (`position`).
pub fn sort_key(value: Option<i64>, order: SortOrder, position: usize) -> (bool, Reverse<i64>, i64, usize) {
    match (value, order) {
        (None, _) => (true, Reverse(0), 0, position),
        (Some(v), SortOrder::Asc) => (false, Reverse(0), v, position),
        (Some(v), SortOrder::Desc) => (false, Reverse(v), 0, position),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Decimal128Array, Float64Array, Int32Array, TimestampMillisecondArray};

    use super::*;

    #[test]
    fn floats_order_as_integers_and_nan_has_no_place() {
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(-1e300),
            Some(-2.5),
            Some(-0.0),
            Some(0.0),
            Some(1e-300),
            Some(3.0),
            Some(f64::INFINITY),
            Some(f64::NAN),
            None,
        ]));
        let v = ordered_values(&floats).unwrap();
        let ordered: Vec<i64> = (0..7).map(|i| v.value(i)).collect();
        assert!(ordered.windows(2).all(|w| w[0] <= w[1]), "{ordered:?}");
        assert!(v.is_null(7) && v.is_null(8));
        let decimals: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(-150), Some(99), Some(100)])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        );
        let v = ordered_values(&decimals).unwrap();
        assert!(v.value(0) < v.value(1) && v.value(1) < v.value(2));
    }

    #[test]
    fn integers_and_timestamps_order_in_their_unit() {
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(3), None, Some(-1)]));
        assert_eq!(ordered_values(&ints).unwrap(), Int64Array::from(vec![Some(3), None, Some(-1)]));
        let millis: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![2_000, 1_000]));
        assert_eq!(ordered_values(&millis).unwrap(), Int64Array::from(vec![2_000_000, 1_000_000]));
    }

    #[test]
    fn values_come_first_in_their_order_then_nulls_in_source_order() {
        let rows = [(Some(5), 0), (None, 1), (Some(9), 2), (Some(5), 3), (None, 4)];
        let sorted = |order| {
            let mut r = rows.to_vec();
            r.sort_by_key(|(v, p)| sort_key(*v, order, *p));
            r.iter().map(|(_, p)| *p).collect::<Vec<_>>()
        };
        assert_eq!(sorted(SortOrder::Desc), [2, 0, 3, 1, 4]);
        assert_eq!(sorted(SortOrder::Asc), [0, 3, 2, 1, 4]);
    }
}
