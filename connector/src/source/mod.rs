//! Sources: where rows come from.
//!
//! A [`Source`] reports its schema in logical types and streams Arrow record
//! batches. It knows nothing about mappings, state or destinations; the
//! mapping decides what the columns mean. Physical encodings that carry the
//! same logical type (utf8, large_utf8 and dictionary strings; list and
//! large_list; timestamps in any unit or zone) report the same
//! [`ColumnType`], so a change of writer is not a change of schema.

pub mod feed;
mod joined;
pub mod parquet;
pub mod postgres;
pub mod since;
pub mod store;

pub use crate::folders::folder_wildcard;
pub use since::Since;
pub use store::StoreProblem;

use crate::quote::{quote, shorten, MAX_QUOTED_CHARS};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use futures::stream::BoxStream;

pub use crate::column::ColumnType;
use crate::config::SourceConfig;
pub use crate::folders::SnapshotFolders;

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

    /// What to say of a column a mapping names that the source lacks: the message, and the
    /// closest name the source has, if one is close.
    pub fn missing(&self, name: &str) -> (String, Option<String>) {
        let names = self.columns.iter().map(|(n, _)| n.as_str());
        let message = format!("column {} is not in the source", crate::quote::quote(name));
        (message, crate::config::did_you_mean(name, names))
    }
}

/// A batch of rows and where they came from, for rejection messages.
pub struct SourceBatch {
    pub batch: RecordBatch,
    /// The file or table the rows were read from.
    pub origin: Arc<str>,
    /// Row number (0-based) of the batch's first row within `origin`.
    pub first_row: u64,
    /// Per row, what the source found wrong with it (an ambiguous join), if anything: the
    /// mapping rejects such a row with this reason.
    pub problems: Option<Vec<Option<String>>>,
}

impl SourceBatch {
    pub fn problem(&self, row: usize) -> Option<&str> {
        self.problems.as_ref()?.get(row)?.as_deref()
    }
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
    /// A Parquet file that cannot be read.
    #[error("{}: {cause}", shorten(.path, MAX_QUOTED_CHARS))]
    Read {
        path: String,
        #[source]
        cause: BoxError,
    },
    /// A database source that cannot be reached or read; `source` names it without credentials.
    #[error("{}: {cause}", shorten(.source_name, MAX_QUOTED_CHARS))]
    Database {
        source_name: String,
        #[source]
        cause: BoxError,
    },
    #[error("column {} changed {detail}", quote(.column))]
    Drift { column: String, detail: String },
    /// An object store failed or refused: `url` is the object's or pattern's, as written.
    #[error("{}: {problem}", shorten(.url, MAX_QUOTED_CHARS))]
    Store {
        url: String,
        #[source]
        problem: StoreProblem,
    },
    /// `require_marker:` found no folder that has the marker.
    #[error(
        "{}: no folder has its marker {} yet ({} without it: {})",
        shorten(.pattern, MAX_QUOTED_CHARS),
        quote(.marker),
        .without.len(),
        shorten(&.without.join(", "), MAX_QUOTED_CHARS)
    )]
    NoMarkedFolder {
        pattern: String,
        marker: String,
        without: Vec<String>,
    },
    /// `latest:` chose a folder that holds no file the rest of the pattern matches.
    #[error("{}: the newest folder has no file that matches {}", shorten(.folder, MAX_QUOTED_CHARS), quote(.rest))]
    EmptyFolder { folder: String, rest: String },
    /// A folder or glob that could not be listed whole: an unreadable folder, a broken link.
    #[error("cannot list {}: {cause}", shorten(.path, MAX_QUOTED_CHARS))]
    Listing {
        path: String,
        #[source]
        cause: std::io::Error,
    },
    /// The reader panicked: a bug in ebb or in a library it uses, reported as such.
    #[error("internal error in reading {}: {message} (please report)", shorten(.source_name, MAX_QUOTED_CHARS))]
    Internal { source_name: String, message: String },
}

/// The cause of a read failure: the reader's own error, kept for its chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl SourceError {
    /// What a person can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            SourceError::Database { .. } => {
                "check the source's url (host, database, user, sslmode) and that the table or query can be read"
            }
            SourceError::Drift { .. } => "the source's schema changed while it was read; run again",
            SourceError::Store { problem, .. } => problem.hint(),
            SourceError::NoMarkedFolder { .. } => {
                "the export may still be running: nothing was read or sent; the next run reads the folder once its marker is there"
            }
            SourceError::EmptyFolder { .. } => "check the export, or the part of the path after the folder",
            SourceError::Listing { .. } => "nothing was read or sent: check the folder's permissions and links",
            SourceError::Internal { .. } => {
                "a bug in ebb or in a library it uses, which a corrupt file can set off: nothing was deleted or suppressed, and state keeps only what was acknowledged; RUST_BACKTRACE=1 shows where it happened"
            }
            _ => "check that the source path exists and holds readable Parquet files",
        }
    }
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
    ///
    /// The stream ends only once every row was read: a reader that fails or panics part-way
    /// ends it with an error instead (see [`feed`]), so a consumer that reads to the end has
    /// the whole snapshot or an error, never a shorter snapshot.
    fn stream(&self, expected: Arc<Vec<(String, ColumnType)>>) -> BoxStream<'static, Result<SourceBatch, SourceError>>;

    /// Streams only the rows [`Since`] selects, as [`Source::stream`] streams every row;
    /// `expected` holds the cursor column. `None` when the source cannot narrow a read: the
    /// caller reads every row instead.
    fn stream_since(
        &self,
        _expected: Arc<Vec<(String, ColumnType)>>,
        _since: Since,
    ) -> Option<BoxStream<'static, Result<SourceBatch, SourceError>>> {
        None
    }

    /// What makes a cursor on `column` slow here, if anything (a table without an index that
    /// leads with it), for `validate` to warn about; reads no rows.
    async fn cursor_warning(&self, _column: &str) -> Option<String> {
        None
    }

    /// The folders that `latest:` or `require_marker:` chose, once the snapshot was listed.
    fn folders(&self) -> Option<SnapshotFolders> {
        None
    }
}

/// The source a mapping names. Building reads nothing; a source that cannot be built (a client
/// that cannot be set up) says why.
pub fn build(config: &SourceConfig) -> Result<Box<dyn Source>, SourceError> {
    Ok(match config {
        SourceConfig::Parquet {
            pattern,
            store: None,
            folders,
            ..
        } => Box::new(parquet::ParquetSource::local(pattern.clone(), folders.clone())),
        SourceConfig::Parquet {
            pattern,
            store: Some(store),
            folders,
            ..
        } => Box::new(parquet::ParquetSource::in_store(pattern.clone(), store, folders.clone())?),
        SourceConfig::Postgres { url, relation, .. } => Box::new(postgres::PostgresSource::new(url.clone(), relation.clone())),
        SourceConfig::Joined { base, lookup, join } => Box::new(joined::JoinedSource::new(build(base)?, build(lookup)?, join.clone())),
    })
}

/// How one part of a snapshot (a file, a query's result) has a column.
pub enum Found<T> {
    Missing,
    /// Of this logical type, read with the source's `T` (a column index, a wire form).
    Readable(ColumnType, T),
    /// Of a type ebb does not read, by the source's own name for it.
    Unsupported(String),
}

/// The drift check of every source: each expected column must be in `part` with the type the
/// mapping was checked against. Returns what `find` gave for each, in order; the first column
/// that is missing or changed is the drift that stops the run.
pub fn check_part<T>(expected: &[(String, ColumnType)], part: &str, mut find: impl FnMut(&str) -> Found<T>) -> Result<Vec<T>, SourceError> {
    expected
        .iter()
        .map(|(name, want)| {
            let drift = |detail: String| SourceError::Drift {
                column: name.clone(),
                detail,
            };
            match find(name) {
                Found::Missing => Err(drift(format!(": it is missing from {part}"))),
                Found::Readable(t, read) if t.compatible(want) => Ok(read),
                Found::Readable(t, _) => Err(drift(format!("type from {want} to {t} in {part}"))),
                Found::Unsupported(type_name) => Err(drift(format!("to the unsupported type {type_name} in {part}"))),
            }
        })
        .collect()
}
