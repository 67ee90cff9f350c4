//! Parquet files on local disk: listed with globs, read one record batch at a time on a blocking
//! thread, so decoding runs on its own core while the caller maps and hashes.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::narrow;
use super::BATCH_ROWS;
use crate::source::feed::{self, Feed, Gone};
use crate::source::{SourceBatch, SourceError, SourceSchema};

/// A local path, folder or glob, listed on a blocking thread.
pub(super) struct Listing {
    pattern: String,
}

impl Listing {
    pub fn new(pattern: &str) -> Listing {
        Listing {
            pattern: pattern.to_string(),
        }
    }
}

fn listing(path: &Path, cause: std::io::Error) -> SourceError {
    SourceError::Listing {
        path: path.display().to_string(),
        cause,
    }
}

/// Whether `path` is a file (`Some(true)`), a folder (`Some(false)`), or something else that a
/// listing skips; a path that cannot be looked at (a broken link, no permission) is an error,
/// never a file that is silently left out of the snapshot.
fn is_file(path: &Path) -> Result<Option<bool>, SourceError> {
    let meta = std::fs::metadata(path).map_err(|e| listing(path, e))?;
    Ok(match meta {
        m if m.is_file() => Some(true),
        m if m.is_dir() => Some(false),
        _ => None,
    })
}

#[async_trait::async_trait]
impl super::folders::Listing for Listing {
    type Part = PathBuf;
    async fn subfolders(&self, dir: &str) -> Result<Vec<String>, SourceError> {
        let dir = dir.to_string();
        feed::blocking(&self.pattern, move || {
            let entries = std::fs::read_dir(&dir).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => SourceError::NotFound { pattern: dir.clone() },
                _ => listing(Path::new(&dir), e),
            })?;
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| listing(Path::new(&dir), e))?;
                if is_file(&entry.path())? == Some(false) {
                    // A name that is not UTF-8 never matches a pattern, which is UTF-8 text.
                    names.extend(entry.file_name().into_string().ok());
                }
            }
            names.sort();
            Ok(names)
        })
        .await
    }

    async fn list(&self, dir: &str) -> Result<Vec<PathBuf>, SourceError> {
        let everything = format!("{}**/*", glob::Pattern::escape(dir));
        let shown = self.pattern.clone();
        feed::blocking(&self.pattern, move || glob_files(&everything, &shown)).await
    }

    async fn exists(&self, path: &str) -> Result<bool, SourceError> {
        Ok(Path::new(path).is_file())
    }

    async fn plain(&self) -> Result<Vec<PathBuf>, SourceError> {
        let pattern = self.pattern.clone();
        feed::blocking(&self.pattern, move || files(&pattern)).await
    }
}

/// The files of a path, folder or glob, sorted so that every run reads them in one order.
fn files(pattern: &str) -> Result<Vec<PathBuf>, SourceError> {
    let path = Path::new(pattern);
    let mut files = if pattern.contains(['*', '?', '[']) {
        glob_files(pattern, pattern)?
    } else if path.is_file() {
        vec![path.to_path_buf()]
    } else if path.is_dir() {
        let nested = format!("{}/**/*.parquet", glob::Pattern::escape(pattern.trim_end_matches('/')));
        glob_files(&nested, pattern)?
    } else {
        return Err(SourceError::NotFound {
            pattern: pattern.to_string(),
        });
    };
    files.sort();
    if files.is_empty() {
        return Err(SourceError::NoFiles {
            pattern: pattern.to_string(),
        });
    }
    Ok(files)
}

/// The files a glob matches; `shown` is the pattern as the mapping wrote it, for errors.
fn glob_files(glob_pattern: &str, shown: &str) -> Result<Vec<PathBuf>, SourceError> {
    let matches = glob::glob(glob_pattern).map_err(|e| SourceError::BadGlob {
        pattern: shown.to_string(),
        message: e.msg.to_string(),
    })?;
    let mut files = Vec::new();
    for found in matches {
        let path = found.map_err(|e| {
            let path = e.path().to_path_buf();
            listing(&path, e.into())
        })?;
        if is_file(&path)? == Some(true) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_err(path: &Path, e: impl Into<crate::source::BoxError>) -> SourceError {
    SourceError::Read {
        path: path.display().to_string(),
        cause: e.into(),
    }
}

fn open(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, SourceError> {
    let file = File::open(path).map_err(|e| read_err(path, e))?;
    let size = file.metadata().map_err(|e| read_err(path, e))?.len();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| read_err(path, e))?;
    super::check_footer(&path.display().to_string(), builder.metadata(), size)?;
    Ok(builder)
}

/// A file's schema, read from its footer, named by its path.
pub(super) fn schema(path: &Path) -> Result<(String, SourceSchema), SourceError> {
    let builder = open(path)?;
    Ok((path.display().to_string(), super::source_schema(builder.schema())))
}

/// Streams every file into `feed`, in order; stops at the first error, or early if the consumer
/// is gone.
pub(super) fn read_all(files: &[PathBuf], read: &super::Read, feed: &Feed) -> Result<(), SourceError> {
    for path in files {
        // A panic in the decoder is reported against the file it met, not just the snapshot.
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_file(path, read, feed)));
        let read = read.map_err(|payload| SourceError::Internal {
            source_name: path.display().to_string(),
            message: crate::panic::panic_message(payload.as_ref()),
        })?;
        if read?.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Streams one file into `feed`; `Err(Gone)` when the consumer stopped listening.
fn read_file(path: &Path, read: &super::Read, feed: &Feed) -> Result<Result<(), Gone>, SourceError> {
    let expected = read.expected.as_slice();
    let builder = open(path)?;
    let shown = path.display().to_string();
    let roots = super::projection(builder.schema(), expected, &shown)?;
    let in_footer = builder.metadata().file_metadata().num_rows();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let schemas = (builder.schema().as_ref(), builder.parquet_schema());
    let Some(narrowed) = narrow::for_file(read.since.as_ref(), builder.metadata(), schemas, &read.decoded, &shown)? else {
        return Ok(Ok(()));
    };
    let origin = narrow::origin(&shown, narrowed.is_some());
    let (builder, check) = match narrowed {
        Some(n) => {
            let (builder, check) = n.apply(builder);
            (builder, Some(check))
        }
        None => (builder, None),
    };
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| read_err(path, e))?;
    let mut first_row = 0u64;
    for batch in reader {
        let batch = super::typed(batch.map_err(|e| read_err(path, e))?, expected, &shown)?;
        let rows = batch.num_rows() as u64;
        let sent = feed.blocking_send(SourceBatch {
            batch,
            origin: origin.clone(),
            first_row,
            problems: None,
        });
        if sent.is_err() {
            return Ok(Err(Gone));
        }
        first_row += rows;
        read.decoded.rows.fetch_add(rows, std::sync::atomic::Ordering::Relaxed);
    }
    narrow::check_read(&shown, first_row, in_footer, check)?;
    Ok(Ok(()))
}
