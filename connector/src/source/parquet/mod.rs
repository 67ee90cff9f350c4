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

use super::store::{Bucket, Object};
use super::{ColumnType, Found, SnapshotFolders, Source, SourceBatch, SourceError, SourceSchema};
use crate::config::source::FolderRule;

const BATCH_ROWS: usize = 8192;
const CHANNEL_BATCHES: usize = 4;

/// Where the files are.
enum Place {
    Local,
    Store(Arc<Bucket>),
}

pub struct ParquetSource {
    inner: Arc<Inner>,
}

struct Inner {
    /// The path or URL as the mapping wrote it (a local one made absolute).
    pattern: String,
    place: Place,
    rule: FolderRule,
    resolved: OnceCell<Arc<folders::Resolved>>,
    /// Footers of objects in a store, kept from the schema check for the reads.
    footers: remote::Footers,
}

/// One file of a snapshot.
#[derive(Clone, Debug)]
pub enum Part {
    File(PathBuf),
    Object(Object),
}

impl Part {
    /// Its path on disk or key in the bucket, as `/`-separated text.
    pub fn path(&self) -> &str {
        match self {
            // Paths that are not UTF-8 never match a pattern, which is UTF-8 text.
            Part::File(path) => path.to_str().unwrap_or_default(),
            Part::Object(object) => &object.key,
        }
    }
}

type Sender = mpsc::Sender<Result<SourceBatch, SourceError>>;

impl ParquetSource {
    /// A local file, folder or glob, read whole.
    pub fn local(pattern: String, rule: FolderRule) -> Self {
        Self::with_place(pattern, Place::Local, rule)
    }

    /// An object-store URL; opening the bucket does no I/O.
    pub fn in_store(pattern: String, config: &crate::config::store::StoreConfig, rule: FolderRule) -> Result<Self, SourceError> {
        let bucket = Bucket::open(config)?;
        Ok(Self::with_place(pattern, Place::Store(Arc::new(bucket)), rule))
    }

    fn with_place(pattern: String, place: Place, rule: FolderRule) -> Self {
        ParquetSource {
            inner: Arc::new(Inner {
                pattern,
                place,
                rule,
                resolved: OnceCell::new(),
                footers: Default::default(),
            }),
        }
    }
}

impl Inner {
    /// The snapshot's files, listed on first use and the same from then on.
    async fn resolved(&self) -> Result<Arc<folders::Resolved>, SourceError> {
        let resolved = self
            .resolved
            .get_or_try_init(|| async {
                let resolved = match &self.place {
                    Place::Local => folders::resolve(&local::Listing::new(&self.pattern), &self.pattern, &self.rule).await?,
                    Place::Store(bucket) => {
                        let key_pattern = &bucket.config().key_pattern;
                        folders::resolve(&remote::Listing::new(bucket, key_pattern), key_pattern, &self.rule).await?
                    }
                };
                Ok::<_, SourceError>(Arc::new(resolved))
            })
            .await?;
        Ok(Arc::clone(resolved))
    }

    /// Each part's schema, with the name messages give it.
    async fn schemas(&self, parts: &[Part]) -> Result<Vec<(String, SourceSchema)>, SourceError> {
        match &self.place {
            Place::Local => {
                let parts = parts.to_vec();
                tokio::task::spawn_blocking(move || parts.iter().map(local::schema).collect())
                    .await
                    .map_err(|e| SourceError::Read {
                        path: self.pattern.clone(),
                        cause: e.into(),
                    })?
            }
            Place::Store(bucket) => remote::schemas(bucket, parts, &self.footers).await,
        }
    }

    /// Reads every part into `tx`, in order; stops at the first error, or when `tx` is closed.
    async fn read_into(self: Arc<Self>, expected: Arc<Vec<(String, ColumnType)>>, tx: Sender) {
        let parts = match self.resolved().await {
            Ok(resolved) => resolved.parts.clone(),
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        match &self.place {
            Place::Local => {
                let _ = tokio::task::spawn_blocking(move || local::read_all(&parts, &expected, &tx)).await;
            }
            Place::Store(bucket) => remote::read_all(bucket, &parts, &self.footers, &expected, &tx).await,
        }
    }
}

#[async_trait::async_trait]
impl Source for ParquetSource {
    fn describe(&self) -> String {
        self.inner.pattern.clone()
    }

    async fn schema(&self) -> Result<SourceSchema, SourceError> {
        let resolved = self.inner.resolved().await?;
        let schemas = self.inner.schemas(&resolved.parts).await?;
        Ok(merge(schemas))
    }

    fn stream(&self, expected: Arc<Vec<(String, ColumnType)>>) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
        let (tx, mut rx) = mpsc::channel::<Result<SourceBatch, SourceError>>(CHANNEL_BATCHES);
        tokio::spawn(Arc::clone(&self.inner).read_into(expected, tx));
        Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }

    fn folders(&self) -> Option<SnapshotFolders> {
        self.inner.resolved.get().and_then(|r| r.folders.clone())
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
