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
            D::List(field) | D::LargeList(field) => match ColumnType::from_arrow(field.data_type())? {
                ColumnType::List(_) => return None,
                scalar => ColumnType::List(Box::new(scalar)),
            },
            _ => return None,
        })
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
        }
    }
}
