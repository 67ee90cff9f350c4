//! One Parquet object's bytes, for the parquet crate's async reader: the footer with one ranged
//! GET from the end, then per row group only the mapped columns' byte ranges, so a column the
//! mapping does not use is never fetched, and memory holds a row group or two of mapped columns,
//! not the file.
//!
//! A read fetches the next row group's chunks while the decoder works on the current one
//! ([`Ahead`]): without it, decoding waits for every fetch and the network for every decode.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use tokio::sync::mpsc;

use crate::source::store::{Bucket, Object};

/// The footer's usual size: fetched in one request with the 8-byte tail that gives its length.
const FOOTER_HINT_BYTES: usize = 64 * 1024;
/// Mapped columns closer than this are fetched in one GET: a request costs more than reading
/// that much. (`object_store`'s own default, 1 MiB, would fetch most unmapped columns too.)
const COALESCE_GAP_BYTES: u64 = 64 * 1024;
/// A longer range is fetched as parts of this size, several at once: one GET streams at what
/// one connection gives (S3 advises parallel ranged GETs for throughput).
const PART_BYTES: u64 = 1024 * 1024;
const PARTS_AT_ONCE: usize = 8;

/// Reads an object's byte ranges with ranged GETs; failures keep the store's own problem.
pub(super) struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    bucket: Arc<Bucket>,
    path: Path,
    size: u64,
    footer: Option<Arc<ParquetMetaData>>,
    ahead: Option<Ahead>,
}

impl ObjectReader {
    pub fn new(bucket: &Arc<Bucket>, object: &Object, footer: Option<Arc<ParquetMetaData>>) -> ObjectReader {
        ObjectReader {
            store: Arc::clone(bucket.store()),
            bucket: Arc::clone(bucket),
            // Listed keys are already in object_store's encoding; `from` would encode them again.
            path: Path::parse(&object.key).unwrap_or_else(|_| Path::from(object.key.as_str())),
            size: object.size,
            footer,
            ahead: None,
        }
    }

    /// Fetches each row group's `mask` columns one row group ahead of the decoder; needs the footer.
    pub fn reading_ahead(mut self, mask: &ProjectionMask) -> ObjectReader {
        if let Some(footer) = &self.footer {
            self.ahead = Some(Ahead::start(Arc::clone(&self.store), self.path.clone(), footer, mask));
        }
        self
    }

    fn failed(&self, e: object_store::Error) -> ParquetError {
        ParquetError::External(Box::new(self.bucket.error(self.path.as_ref(), &e)))
    }

    /// A range is fetched only if it lies inside the object: the offsets come from the file's
    /// own footer, and a crafted one must not make ebb ask for (and allocate) more than is there.
    fn inside(&self, ranges: &[Range<u64>]) -> parquet::errors::Result<()> {
        match ranges.iter().find(|r| r.start > r.end || r.end > self.size) {
            None => Ok(()),
            Some(r) => Err(ParquetError::General(format!(
                "its footer points at bytes {}..{}, outside the object's {} bytes",
                r.start, r.end, self.size
            ))),
        }
    }
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.inside(std::slice::from_ref(&range))?;
            self.store.get_range(&self.path, range).await.map_err(|e| self.failed(e))
        }
        .boxed()
    }

    /// A row group's chunks: those fetched ahead, or else fetched now.
    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.inside(&ranges)?;
            if let Some(ahead) = self.ahead.as_mut() {
                match ahead.next(&ranges).await {
                    Some(Ok(found)) => return Ok(found),
                    Some(Err(e)) => return Err(self.failed(e)),
                    // Not what was fetched ahead: from here on, every fetch is made when asked.
                    None => self.ahead = None,
                }
            }
            fetch(self.store.as_ref(), &self.path, &ranges).await.map_err(|e| self.failed(e))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            if let Some(footer) = &self.footer {
                return Ok(Arc::clone(footer));
            }
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .with_prefetch_hint(Some(FOOTER_HINT_BYTES))
                .load_and_finish(&mut *self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// Row groups' chunks, in order, fetched by a task of their own.
type Fetched = object_store::Result<Vec<(Range<u64>, Bytes)>>;

/// The mapped column chunks of each row group, fetched one row group ahead of the decoder.
struct Ahead {
    fetched: mpsc::Receiver<Fetched>,
    task: tokio::task::AbortHandle,
}

impl Ahead {
    fn start(store: Arc<dyn ObjectStore>, path: Path, footer: &ParquetMetaData, mask: &ProjectionMask) -> Ahead {
        // The ranges the decoder asks for with no row selection: each mapped column's chunk.
        let plan: Vec<Vec<Range<u64>>> = footer
            .row_groups()
            .iter()
            .map(|group| {
                (0..group.num_columns())
                    .filter(|&i| mask.leaf_included(i))
                    .map(|i| {
                        let (start, length) = group.column(i).byte_range();
                        // Checked against the object's size before any read; never wraps.
                        start..start.saturating_add(length)
                    })
                    .collect()
            })
            .collect();
        let (tx, fetched) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            for ranges in plan {
                // A row group is fetched once the one before it was taken: the decoder's row
                // group and the next one are all that memory holds.
                let Ok(slot) = tx.reserve().await else { return };
                let chunks = fetch(store.as_ref(), &path, &ranges).await;
                slot.send(chunks.map(|chunks| ranges.into_iter().zip(chunks).collect()));
            }
        });
        Ahead {
            fetched,
            task: task.abort_handle(),
        }
    }

    /// The next row group's chunks if they are `ranges`; `None` if the decoder asked for others.
    async fn next(&mut self, ranges: &[Range<u64>]) -> Option<object_store::Result<Vec<Bytes>>> {
        let mut chunks: HashMap<Range<u64>, Bytes> = match self.fetched.recv().await? {
            Ok(chunks) => chunks.into_iter().collect(),
            Err(e) => return Some(Err(e)),
        };
        ranges
            .iter()
            .map(|range| chunks.remove(range))
            .collect::<Option<Vec<Bytes>>>()
            .map(Ok)
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `ranges` of the object: nearby ones in one request, long ones in parts, several at once.
async fn fetch(store: &dyn ObjectStore, path: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
    object_store::coalesce_ranges(ranges, |range| in_parts(store, path, range), COALESCE_GAP_BYTES).await
}

/// `range` of the object, fetched as [`PART_BYTES`] parts, [`PARTS_AT_ONCE`] at a time, each
/// streamed straight into its place in one buffer (no buffer per part, no copy to join them).
async fn in_parts(store: &dyn ObjectStore, path: &Path, range: Range<u64>) -> object_store::Result<Bytes> {
    if range.end - range.start <= PART_BYTES {
        return store.get_range(path, range).await;
    }
    // The range was checked against the object's size; asking the allocator rather than
    // assuming keeps a huge object an error instead of an abort.
    let length = usize::try_from(range.end - range.start).map_err(|e| generic(e.to_string()))?;
    let mut whole = Vec::new();
    whole
        .try_reserve_exact(length)
        .map_err(|e| generic(format!("cannot hold {length} bytes: {e}")))?;
    whole.resize(length, 0u8);
    let mut fills = Vec::new();
    let mut start = range.start;
    for slot in whole.chunks_mut(PART_BYTES as usize) {
        let part = start..start + slot.len() as u64;
        start = part.end;
        fills.push(fill(store, path, part, slot));
    }
    futures::stream::iter(fills)
        .buffer_unordered(PARTS_AT_ONCE)
        .try_collect::<()>()
        .await?;
    Ok(Bytes::from(whole))
}

fn generic(message: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "object store",
        source: message.into(),
    }
}

/// Streams `part` of the object into `slot`, which is as long as the part.
async fn fill(store: &dyn ObjectStore, path: &Path, part: Range<u64>, slot: &mut [u8]) -> object_store::Result<()> {
    let options = GetOptions {
        range: Some(GetRange::Bounded(part.clone())),
        ..GetOptions::default()
    };
    let mut body = store.get_opts(path, options).await?.into_stream();
    let mut at = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        let end = at + chunk.len();
        let Some(place) = slot.get_mut(at..end) else { break };
        place.copy_from_slice(&chunk);
        at = end;
    }
    if at != slot.len() {
        return Err(generic(format!("bytes {}..{} came back as {at} bytes", part.start, part.end)));
    }
    Ok(())
}
