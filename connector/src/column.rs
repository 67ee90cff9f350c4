//! The logical type of a source column: what the mapping, the drift check and the state's
//! stored schema speak of. A leaf, so that `state` and `mapping` need not import `source`.

use std::fmt;

use arrow::datatypes::DataType;

/// The logical type of a column, independent of its physical encoding.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    String,
    Int,
    UInt,
    Float,
    Decimal,
    Bool,
    Date,
    Timestamp,
    List(Box<ColumnType>),
    /// A column whose every value is null, written with Arrow's `null` type (pyarrow, pandas
    /// and polars write an empty column so): compatible with every other type.
    Null,
}

impl ColumnType {
    /// The logical type of an Arrow type, or `None` for types ebb does not read.
    pub fn from_arrow(dt: &DataType) -> Option<ColumnType> {
        use DataType as D;
        Some(match dt {
            D::Utf8 | D::LargeUtf8 | D::Utf8View => ColumnType::String,
            D::Dictionary(_, value) => match ColumnType::from_arrow(value)? {
                ColumnType::List(_) => return None,
                scalar => scalar,
            },
            D::Int8 | D::Int16 | D::Int32 | D::Int64 => ColumnType::Int,
            D::UInt8 | D::UInt16 | D::UInt32 | D::UInt64 => ColumnType::UInt,
            D::Float16 | D::Float32 | D::Float64 => ColumnType::Float,
            D::Decimal128(_, _) => ColumnType::Decimal,
            D::Boolean => ColumnType::Bool,
            D::Date32 | D::Date64 => ColumnType::Date,
            D::Timestamp(_, _) => ColumnType::Timestamp,
            D::Null => ColumnType::Null,
            D::List(field) | D::LargeList(field) => match ColumnType::from_arrow(field.data_type())? {
                ColumnType::List(_) => return None,
                scalar => ColumnType::List(Box::new(scalar)),
            },
            _ => return None,
        })
    }

    /// Whether a column of this type can stand where `other` was: the same type, or all nulls
    /// on either side, which hold no value of any type.
    pub fn compatible(&self, other: &ColumnType) -> bool {
        match (self, other) {
            (ColumnType::Null, _) | (_, ColumnType::Null) => true,
            (ColumnType::List(a), ColumnType::List(b)) => a.compatible(b),
            (a, b) => a == b,
        }
    }

    /// Of two compatible types, the one that says more: a null column takes the other's type.
    pub fn known(self, other: &ColumnType) -> ColumnType {
        match (self, other) {
            (ColumnType::Null, other) => other.clone(),
            (ColumnType::List(a), ColumnType::List(b)) => ColumnType::List(Box::new(a.known(b))),
            (mine, _) => mine,
        }
    }

    /// The Arrow type a column of nulls of this type is given.
    pub fn arrow_type(&self) -> DataType {
        use arrow::datatypes::{Field, TimeUnit};
        match self {
            ColumnType::String => DataType::Utf8,
            ColumnType::Int => DataType::Int64,
            ColumnType::UInt => DataType::UInt64,
            ColumnType::Float => DataType::Float64,
            ColumnType::Decimal => DataType::Decimal128(38, 0),
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColumnType::List(item) => DataType::List(std::sync::Arc::new(Field::new("item", item.arrow_type(), true))),
            ColumnType::Null => DataType::Null,
        }
    }

    pub fn is_list(&self) -> bool {
        matches!(self, ColumnType::List(_))
    }

    /// The element type of a list, or the type itself.
    pub fn scalar(&self) -> &ColumnType {
        match self {
            ColumnType::List(inner) => inner,
            other => other,
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::String => f.write_str("string"),
            ColumnType::Int => f.write_str("integer"),
            ColumnType::UInt => f.write_str("unsigned integer"),
            ColumnType::Float => f.write_str("float"),
            ColumnType::Decimal => f.write_str("decimal"),
            ColumnType::Bool => f.write_str("boolean"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::Timestamp => f.write_str("timestamp"),
            ColumnType::List(inner) => write!(f, "list of {inner}"),
            ColumnType::Null => f.write_str("null (no value in any row)"),
        }
    }
}
