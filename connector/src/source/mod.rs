//! Sources: where rows come from.
//!
//! A [`Source`] reports its schema in logical types and streams Arrow record
//! batches. It knows nothing about mappings, state or destinations; the
//! mapping decides what the columns mean. Physical encodings that carry the
//! same logical type (utf8, large_utf8 and dictionary strings; list and
//! large_list; timestamps in any unit or zone) report the same
//! [`ColumnType`], so a change of writer is not a change of schema.

pub mod parquet;
pub mod postgres;

use crate::quote::{quote, shorten, MAX_QUOTED_CHARS};
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use futures::stream::BoxStream;

use crate::config::SourceConfig;

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

/// What a source holds, as far as ebb can read it.
#[derive(Clone, Debug, Default)]
pub struct SourceSchema {
    /// Readable columns, in source order.
    pub columns: Vec<(String, ColumnType)>,
    /// Columns of a type ebb does not read: name and the source's own type name.
    pub unsupported: Vec<(String, String)>,
    /// Columns whose logical type differs between the parts of one snapshot.
    pub conflicts: Vec<(String, String)>,
}

impl SourceSchema {
    pub fn column(&self, name: &str) -> Option<&ColumnType> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

/// A batch of rows and where they came from, for rejection messages.
pub struct SourceBatch {
    pub batch: RecordBatch,
    /// The file or table the rows were read from.
    pub origin: Arc<str>,
    /// Row number (0-based) of the batch's first row within `origin`.
    pub first_row: u64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("{}: no such file or folder", shorten(.pattern, MAX_QUOTED_CHARS))]
    NotFound { pattern: String },
    #[error("{}: matches no Parquet file", shorten(.pattern, MAX_QUOTED_CHARS))]
    NoFiles { pattern: String },
    #[error("{}: bad glob: {message}", shorten(.pattern, MAX_QUOTED_CHARS))]
    BadGlob { pattern: String, message: String },
    #[error("{}: {message}", shorten(.path, MAX_QUOTED_CHARS))]
    Read { path: String, message: String },
    #[error("column {} changed {detail}", quote(.column))]
    Drift { column: String, detail: String },
}

/// A snapshot of rows.
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// Where the rows come from, for messages.
    fn describe(&self) -> String;

    /// The schema, read without reading rows.
    async fn schema(&self) -> Result<SourceSchema, SourceError>;

    /// Streams the whole snapshot, reading only `columns` where the format allows.
    /// Each part of the snapshot is checked to hold `columns` with the types in `expected`.
    fn stream(&self, expected: Arc<Vec<(String, ColumnType)>>) -> BoxStream<'static, Result<SourceBatch, SourceError>>;
}

pub fn build(config: &SourceConfig) -> Box<dyn Source> {
    match config {
        SourceConfig::Parquet { pattern, .. } => Box::new(parquet::ParquetSource::new(pattern.clone())),
        SourceConfig::Postgres { url, relation, .. } => Box::new(postgres::PostgresSource::new(url.clone(), relation.clone())),
    }
}
