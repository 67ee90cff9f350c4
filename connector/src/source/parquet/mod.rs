//! Parquet snapshots: a file, a folder (searched recursively) or a glob, on local disk or in an
//! object store (`local.rs`, `remote.rs`); with `latest:` or `require_marker:`, the files of the
//! folder or folders those choose (`folders.rs`).
//!
//! A snapshot is resolved once per source, that is once per run: both passes of a run read the
//! same files, even if a newer export lands in between. Only the mapped columns are decoded, a
//! few record batches at a time, handed over a bounded channel, so memory holds a few batches,
//! never the snapshot. Local and remote files are decoded by the same Arrow reader into the
//! same types, so the same rows hash the same wherever they were read from.

mod folders;
mod local;
mod narrow;
mod object_reader;
mod remote;

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::new_null_array;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use futures::stream::BoxStream;
use parquet::file::metadata::ParquetMetaData;
use tokio::sync::OnceCell;

use folders::Resolved;
pub use narrow::Decoded;

use super::feed::{self, Feed};
use super::store::{Bucket, Object};
use super::{ColumnType, Found, Since, SnapshotFolders, Source, SourceBatch, SourceError, SourceSchema};
use crate::config::source::FolderRule;

const BATCH_ROWS: usize = 8192;

/// Where the files are, and what one run learns of them: the files the folder rule chose,
/// listed on first use and the same from then on, and (in a store) the footers read.
enum Place {
    Local(OnceCell<Arc<Resolved<PathBuf>>>),
    Store {
        bucket: Arc<Bucket>,
        resolved: OnceCell<Arc<Resolved<Object>>>,
        footers: remote::Footers,
    },
}

pub struct ParquetSource {
    inner: Arc<Inner>,
}

struct Inner {
    /// The path or URL as the mapping wrote it (a local one made absolute).
    pattern: String,
    place: Place,
    rule: FolderRule,
    decoded: Arc<Decoded>,
}

/// One read of the snapshot: the columns, and the cursor that narrows it, if any.
struct Read {
    expected: Arc<Vec<(String, ColumnType)>>,
    since: Option<Since>,
    decoded: Arc<Decoded>,
}

impl ParquetSource {
    /// A local file, folder or glob, read whole.
    pub fn local(pattern: String, rule: FolderRule) -> Self {
        Self::with_place(pattern, Place::Local(OnceCell::new()), rule)
    }

    /// An object-store URL; opening the bucket does no I/O.
    pub fn in_store(pattern: String, config: &crate::config::store::StoreConfig, rule: FolderRule) -> Result<Self, SourceError> {
        let place = Place::Store {
            bucket: Arc::new(Bucket::open(config)?),
            resolved: OnceCell::new(),
            footers: Default::default(),
        };
        Ok(Self::with_place(pattern, place, rule))
    }

    fn with_place(pattern: String, place: Place, rule: FolderRule) -> Self {
        ParquetSource {
            inner: Arc::new(Inner {
                pattern,
                place,
                rule,
                decoded: Arc::default(),
            }),
        }
    }

    /// How many rows this source has decoded so far, over every read.
    pub fn decoded(&self) -> Arc<Decoded> {
        Arc::clone(&self.inner.decoded)
    }
}

/// The files `listing` gives under the folder rule, the first time; the same ones after.
async fn resolve_once<L: folders::Listing>(
    cell: &OnceCell<Arc<Resolved<L::Part>>>,
    listing: &L,
    pattern: &str,
    rule: &FolderRule,
) -> Result<Arc<Resolved<L::Part>>, SourceError> {
    let resolved = cell
        .get_or_try_init(|| async { folders::resolve(listing, pattern, rule).await.map(Arc::new) })
        .await?;
    Ok(Arc::clone(resolved))
}

impl Inner {
    async fn local_files(&self, cell: &OnceCell<Arc<Resolved<PathBuf>>>) -> Result<Arc<Resolved<PathBuf>>, SourceError> {
        resolve_once(cell, &local::Listing::new(&self.pattern), &self.pattern, &self.rule).await
    }

    async fn objects(&self, bucket: &Bucket, cell: &OnceCell<Arc<Resolved<Object>>>) -> Result<Arc<Resolved<Object>>, SourceError> {
        let key_pattern = &bucket.config().key_pattern;
        resolve_once(cell, &remote::Listing::new(bucket, key_pattern), key_pattern, &self.rule).await
    }

    /// Each file's schema, with the name messages give it.
    async fn schemas(&self) -> Result<Vec<(String, SourceSchema)>, SourceError> {
        match &self.place {
            Place::Local(cell) => {
                let files = self.local_files(cell).await?;
                feed::blocking(&self.pattern, move || files.parts.iter().map(|path| local::schema(path)).collect()).await
            }
            Place::Store { bucket, resolved, footers } => {
                let objects = self.objects(bucket, resolved).await?;
                remote::schemas(bucket, &objects.parts, footers).await
            }
        }
    }

    /// Reads every file into `feed`, in order. `Ok` only once every row of every file was sent
    /// (or the consumer stopped listening); the first error ends the read.
    async fn read_into(self: Arc<Self>, read: Read, feed: Feed) -> Result<(), SourceError> {
        match &self.place {
            Place::Local(cell) => {
                let files = self.local_files(cell).await?;
                // Decoded on a thread of its own, as the caller maps and hashes on others.
                feed::blocking(&self.pattern, move || local::read_all(&files.parts, &read, &feed)).await
            }
            Place::Store { bucket, resolved, footers } => {
                let objects = self.objects(bucket, resolved).await?;
                remote::read_all(bucket, &objects.parts, footers, &read, &feed).await
            }
        }
    }

    fn spawn(
        self: &Arc<Self>,
        expected: Arc<Vec<(String, ColumnType)>>,
        since: Option<Since>,
    ) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
        let inner = Arc::clone(self);
        let read = Read {
            expected,
            since,
            decoded: Arc::clone(&self.decoded),
        };
        feed::spawn(self.pattern.clone(), move |feed| inner.read_into(read, feed))
    }

    fn folders(&self) -> Option<SnapshotFolders> {
        match &self.place {
            Place::Local(cell) => cell.get().and_then(|r| r.folders.clone()),
            Place::Store { resolved, .. } => resolved.get().and_then(|r| r.folders.clone()),
        }
    }
}

#[async_trait::async_trait]
impl Source for ParquetSource {
    fn describe(&self) -> String {
        self.inner.pattern.clone()
    }

    async fn schema(&self) -> Result<SourceSchema, SourceError> {
        Ok(merge(self.inner.schemas().await?))
    }

    fn stream(&self, expected: Arc<Vec<(String, ColumnType)>>) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
        self.inner.spawn(expected, None)
    }

    fn stream_since(
        &self,
        expected: Arc<Vec<(String, ColumnType)>>,
        since: Since,
    ) -> Option<BoxStream<'static, Result<SourceBatch, SourceError>>> {
        Some(self.inner.spawn(expected, Some(since)))
    }

    fn folders(&self) -> Option<SnapshotFolders> {
        self.inner.folders()
    }
}

/// A file's columns in ebb's types.
fn source_schema(schema: &Schema) -> SourceSchema {
    let mut out = SourceSchema::default();
    for field in schema.fields() {
        match ColumnType::from_arrow(field.data_type()) {
            Some(t) => out.columns.push((field.name().clone(), t)),
            None => out.unsupported.push((field.name().clone(), field.data_type().to_string())),
        }
    }
    out
}

/// The columns every part has with one type; the others are conflicts that name the parts.
fn merge(mut schemas: Vec<(String, SourceSchema)>) -> SourceSchema {
    if schemas.is_empty() {
        return SourceSchema::default();
    }
    let (first, mut merged) = schemas.remove(0);
    for (name, other) in &schemas {
        let mut conflicts = Vec::new();
        merged.columns.retain_mut(|(column, ty)| match other.column(column) {
            Some(t) if t.compatible(ty) => {
                *ty = std::mem::replace(ty, ColumnType::Null).known(t);
                true
            }
            Some(t) => {
                conflicts.push((column.clone(), format!("is {ty} in {first} but {t} in {name}")));
                false
            }
            None => {
                conflicts.push((column.clone(), format!("is in {first} but missing from {name}")));
                false
            }
        });
        merged.conflicts.extend(conflicts);
    }
    merged
}

/// A batch whose all-null columns (Arrow's `null` type, as pyarrow, pandas and polars write a
/// column with no value) are given the type the mapping expects, so that every batch of a
/// snapshot has one type per column whichever file it came from.
fn typed(batch: RecordBatch, expected: &[(String, ColumnType)], part: &str) -> Result<RecordBatch, SourceError> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| f.data_type() == &DataType::Null) {
        return Ok(batch);
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let want = expected.iter().find(|(name, _)| name == field.name()).map(|(_, t)| t.arrow_type());
        match want {
            Some(want) if field.data_type() == &DataType::Null => {
                fields.push(Field::new(field.name(), want.clone(), true));
                columns.push(new_null_array(&want, batch.num_rows()));
            }
            _ => {
                fields.push(field.as_ref().clone());
                columns.push(Arc::clone(column));
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| SourceError::Read {
        path: part.to_string(),
        cause: Box::new(e),
    })
}

/// A footer's column chunks lie within the file: the parquet crate asserts this as it reads,
/// and a file that breaks it is corrupt, not a reason to stop the process.
fn check_footer(part: &str, footer: &ParquetMetaData, size: u64) -> Result<(), SourceError> {
    let corrupt = |detail: String| SourceError::Read {
        path: part.to_string(),
        cause: format!("its footer is corrupt: {detail}").into(),
    };
    if footer.file_metadata().num_rows() < 0 {
        return Err(corrupt(format!("it claims {} rows", footer.file_metadata().num_rows())));
    }
    for (g, group) in footer.row_groups().iter().enumerate() {
        for chunk in group.columns() {
            let start = chunk.dictionary_page_offset().unwrap_or_else(|| chunk.data_page_offset());
            let length = chunk.compressed_size();
            let end = u64::try_from(start)
                .ok()
                .zip(u64::try_from(length).ok())
                .and_then(|(s, l)| s.checked_add(l));
            if end.is_none_or(|end| end > size) {
                return Err(corrupt(format!(
                    "row group {g}, column {}: bytes {start}, length {length}, in a file of {size} bytes",
                    chunk.column_path()
                )));
            }
        }
    }
    Ok(())
}

/// A file's rows read against what its footer says it holds: a reader that stopped short
/// without an error must not pass for a whole file.
fn check_rows(part: &str, read: u64, footer: i64) -> Result<(), SourceError> {
    if i64::try_from(read).ok() == Some(footer) {
        return Ok(());
    }
    Err(SourceError::Read {
        path: part.to_string(),
        cause: format!("{read} rows were read, but its footer says it holds {footer}").into(),
    })
}

/// The drift check of one file: the root column of each expected column, sorted, for the
/// projection that reads only those.
fn projection(schema: &Schema, expected: &[(String, ColumnType)], part: &str) -> Result<Vec<usize>, SourceError> {
    let mut roots = super::check_part(expected, part, |name| match schema.column_with_name(name) {
        None => Found::Missing,
        Some((index, field)) => match ColumnType::from_arrow(field.data_type()) {
            Some(t) => Found::Readable(t, index),
            None => Found::Unsupported(field.data_type().to_string()),
        },
    })?;
    roots.sort_unstable();
    roots.dedup();
    Ok(roots)
}
