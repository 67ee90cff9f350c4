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
mod object_reader;
mod remote;

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::Schema;
use futures::stream::BoxStream;
use tokio::sync::{mpsc, OnceCell};

pub use folders::folder_wildcard;

use folders::Resolved;

use super::store::{Bucket, Object};
use super::{ColumnType, Found, SnapshotFolders, Source, SourceBatch, SourceError, SourceSchema};
use crate::config::source::FolderRule;

const BATCH_ROWS: usize = 8192;
const CHANNEL_BATCHES: usize = 4;

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
}

type Sender = mpsc::Sender<Result<SourceBatch, SourceError>>;

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
            inner: Arc::new(Inner { pattern, place, rule }),
        }
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
                tokio::task::spawn_blocking(move || files.parts.iter().map(|path| local::schema(path)).collect())
                    .await
                    .map_err(|e| SourceError::Read {
                        path: self.pattern.clone(),
                        cause: e.into(),
                    })?
            }
            Place::Store { bucket, resolved, footers } => {
                let objects = self.objects(bucket, resolved).await?;
                remote::schemas(bucket, &objects.parts, footers).await
            }
        }
    }

    /// Reads every file into `tx`, in order; stops at the first error, or when `tx` is closed.
    async fn read_into(self: Arc<Self>, expected: Arc<Vec<(String, ColumnType)>>, tx: Sender) {
        let unlisted = match &self.place {
            Place::Local(cell) => match self.local_files(cell).await {
                // Decoded on a thread of its own, as the caller maps and hashes on others.
                Ok(files) => {
                    let _ = tokio::task::spawn_blocking(move || local::read_all(&files.parts, &expected, &tx)).await;
                    return;
                }
                Err(e) => e,
            },
            Place::Store { bucket, resolved, footers } => match self.objects(bucket, resolved).await {
                Ok(objects) => return remote::read_all(bucket, &objects.parts, footers, &expected, &tx).await,
                Err(e) => e,
            },
        };
        let _ = tx.send(Err(unlisted)).await;
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
        let (tx, mut rx) = mpsc::channel::<Result<SourceBatch, SourceError>>(CHANNEL_BATCHES);
        tokio::spawn(Arc::clone(&self.inner).read_into(expected, tx));
        Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
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
        merged.columns.retain(|(column, ty)| match other.column(column) {
            Some(t) if t == ty => true,
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
