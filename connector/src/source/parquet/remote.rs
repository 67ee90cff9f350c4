//! Parquet objects in a bucket: listed for a pattern, their footers read for the schema check,
//! and their rows streamed by the parquet crate's async reader over [`ObjectReader`]. A footer
//! read by the schema check is kept for the reads of the same run, which then fetch row data
//! only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;

use super::folders::MATCH;
use super::narrow;
use super::object_reader::ObjectReader;
use super::BATCH_ROWS;
use crate::source::feed::{Feed, Gone};
use crate::source::store::{Bucket, Object};
use crate::source::{SourceBatch, SourceError, SourceSchema};

/// Footers read at once by `validate` and a run's schema check.
const FOOTERS_AT_ONCE: usize = 8;

/// The footers read so far, by key.
pub(super) type Footers = Mutex<HashMap<String, Arc<ParquetMetaData>>>;

/// A bucket, listed for one key pattern.
pub(super) struct Listing<'a> {
    bucket: &'a Bucket,
    key_pattern: &'a str,
}

impl<'a> Listing<'a> {
    pub fn new(bucket: &'a Bucket, key_pattern: &'a str) -> Listing<'a> {
        Listing { bucket, key_pattern }
    }
}

fn files(objects: Vec<Object>) -> Vec<Object> {
    // A folder made in a console is a zero-byte `name/` object, never a file.
    objects.into_iter().filter(|o| !o.key.ends_with('/')).collect()
}

#[async_trait::async_trait]
impl super::folders::Listing for Listing<'_> {
    type Part = Object;
    async fn subfolders(&self, dir: &str) -> Result<Vec<String>, SourceError> {
        self.bucket.subfolders(dir).await
    }

    async fn list(&self, dir: &str) -> Result<Vec<Object>, SourceError> {
        Ok(files(self.bucket.list(dir).await?))
    }

    async fn exists(&self, path: &str) -> Result<bool, SourceError> {
        Ok(self.bucket.head(path).await?.is_some())
    }

    /// A glob matches keys under its literal folders; a key without wildcards is an object, or
    /// else a folder whose `.parquet` objects are read.
    async fn plain(&self) -> Result<Vec<Object>, SourceError> {
        let pattern = self.key_pattern;
        let found = if pattern.contains(['*', '?', '[']) {
            let glob = glob::Pattern::new(pattern).map_err(|e| SourceError::BadGlob {
                pattern: self.bucket.config().url_of(pattern),
                message: e.msg.to_string(),
            })?;
            let literal = &pattern[..pattern.find(['*', '?', '[']).unwrap_or(0)];
            let base = &literal[..literal.rfind('/').map_or(0, |i| i + 1)];
            let listed = self.bucket.list(base).await?;
            files(listed.into_iter().filter(|o| glob.matches_with(&o.key, MATCH)).collect())
        } else {
            // `users/` is a folder; `users` is an object, or else a folder.
            let object = match pattern.ends_with('/') {
                true => None,
                false => self.bucket.head(pattern).await?,
            };
            match object {
                Some(object) => vec![object],
                None => {
                    let under = self.bucket.list(&format!("{}/", pattern.trim_end_matches('/'))).await?;
                    files(under.into_iter().filter(|o| o.key.ends_with(".parquet")).collect())
                }
            }
        };
        if found.is_empty() {
            return Err(SourceError::NoFiles {
                pattern: self.bucket.config().url_of(pattern),
            });
        }
        Ok(found)
    }
}

/// An error of the reader: the store's problem if the store failed, else the file's.
fn read_error(url: &str, e: ParquetError) -> SourceError {
    match e {
        ParquetError::External(inner) => match inner.downcast::<SourceError>() {
            Ok(store) => *store,
            Err(other) => SourceError::Read {
                path: url.to_string(),
                cause: other,
            },
        },
        other => SourceError::Read {
            path: url.to_string(),
            cause: Box::new(other),
        },
    }
}

/// The object's footer, from `footers` or else read (one ranged GET from the end) and kept
/// there, with the Arrow schema it gives.
async fn footer(bucket: &Arc<Bucket>, object: &Object, footers: &Footers) -> Result<ArrowReaderMetadata, SourceError> {
    let url = bucket.config().url_of(&object.key);
    let known = footers.lock().ok().and_then(|f| f.get(&object.key).cloned());
    let footer = match known {
        Some(footer) => footer,
        None => {
            let mut reader = ObjectReader::new(bucket, object, None);
            let footer = reader.get_metadata(None).await.map_err(|e| read_error(&url, e))?;
            super::check_footer(&url, &footer, object.size)?;
            if let Ok(mut footers) = footers.lock() {
                footers.insert(object.key.clone(), Arc::clone(&footer));
            }
            footer
        }
    };
    ArrowReaderMetadata::try_new(footer, ArrowReaderOptions::new()).map_err(|e| read_error(&url, e))
}

/// Every object's schema, from its footer alone, several footers at once; in order.
pub(super) async fn schemas(
    bucket: &Arc<Bucket>,
    objects: &[Object],
    footers: &Footers,
) -> Result<Vec<(String, SourceSchema)>, SourceError> {
    let reads: Vec<_> = objects.iter().map(|object| object_schema(bucket, object, footers)).collect();
    futures::stream::iter(reads).buffered(FOOTERS_AT_ONCE).try_collect().await
}

async fn object_schema(bucket: &Arc<Bucket>, object: &Object, footers: &Footers) -> Result<(String, SourceSchema), SourceError> {
    let metadata = footer(bucket, object, footers).await?;
    Ok((bucket.config().url_of(&object.key), super::source_schema(metadata.schema())))
}

/// Streams every object into `feed`, in order; stops at the first error, or early if the
/// consumer is gone.
pub(super) async fn read_all(
    bucket: &Arc<Bucket>,
    objects: &[Object],
    footers: &Footers,
    read: &super::Read,
    feed: &Feed,
) -> Result<(), SourceError> {
    for object in objects {
        // A panic in the decoder is reported against the object it met, not just the snapshot.
        let read = crate::panic::catch("reading", read_object(bucket, object, footers, read, feed)).await;
        let read = read.map_err(|internal| SourceError::Internal {
            source_name: bucket.config().url_of(&object.key),
            message: internal.message,
        })?;
        if read?.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Streams one object into `feed`; `Err(Gone)` when the consumer stopped listening.
async fn read_object(
    bucket: &Arc<Bucket>,
    object: &Object,
    footers: &Footers,
    read: &super::Read,
    feed: &Feed,
) -> Result<Result<(), Gone>, SourceError> {
    let (url, expected) = (bucket.config().url_of(&object.key), read.expected.as_slice());
    let metadata = footer(bucket, object, footers).await?;
    let roots = super::projection(metadata.schema(), expected, &url)?;
    let in_footer = metadata.metadata().file_metadata().num_rows();
    let mask = ProjectionMask::roots(metadata.parquet_schema(), roots);
    let schemas = (metadata.schema().as_ref(), metadata.parquet_schema());
    let Some(narrowed) = narrow::for_file(read.since.as_ref(), metadata.metadata(), schemas, &read.decoded, &url)? else {
        return Ok(Ok(()));
    };
    let origin = narrow::origin(&url, narrowed.is_some());
    let reader = ObjectReader::new(bucket, object, Some(Arc::clone(metadata.metadata())));
    // Reading ahead fetches every row group's chunks whole: a narrowed read asks for less.
    let reader = match narrowed.is_some() {
        true => reader,
        false => reader.reading_ahead(&mask),
    };
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, metadata);
    let (builder, check) = match narrowed {
        Some(n) => {
            let (builder, check) = n.apply(builder);
            (builder, Some(check))
        }
        None => (builder, None),
    };
    let mut batches = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| read_error(&url, e))?;
    let mut first_row = 0u64;
    while let Some(batch) = batches.next().await {
        let batch = super::typed(batch.map_err(|e| read_error(&url, e))?, expected, &url)?;
        let rows = batch.num_rows() as u64;
        let sent = feed
            .send(SourceBatch {
                batch,
                origin: origin.clone(),
                first_row,
                problems: None,
            })
            .await;
        if sent.is_err() {
            return Ok(Err(Gone));
        }
        first_row += rows;
        read.decoded.rows.fetch_add(rows, std::sync::atomic::Ordering::Relaxed);
    }
    narrow::check_read(&url, first_row, in_footer, check)?;
    Ok(Ok(()))
}
