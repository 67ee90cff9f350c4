//! Parquet files on local disk: listed with globs, read one record batch at a time on a blocking
//! thread, so decoding runs on its own core while the caller maps and hashes.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::{Sender, BATCH_ROWS};
use crate::source::{ColumnType, SourceBatch, SourceError, SourceSchema};

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

async fn blocking<T: Send + 'static>(
    pattern: &str,
    work: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, SourceError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| SourceError::Read {
        path: pattern.to_string(),
        cause: e.into(),
    })?
}

#[async_trait::async_trait]
impl super::folders::Listing for Listing {
    type Part = PathBuf;
    async fn subfolders(&self, dir: &str) -> Result<Vec<String>, SourceError> {
        let dir = dir.to_string();
        blocking(&self.pattern, move || {
            let entries = std::fs::read_dir(&dir).map_err(|_| SourceError::NotFound { pattern: dir.clone() })?;
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect();
            names.sort();
            Ok(names)
        })
        .await
    }

    async fn list(&self, dir: &str) -> Result<Vec<PathBuf>, SourceError> {
        let everything = format!("{}**/*", glob::Pattern::escape(dir));
        let shown = self.pattern.clone();
        blocking(&self.pattern, move || glob_files(&everything, &shown)).await
    }

    async fn exists(&self, path: &str) -> Result<bool, SourceError> {
        Ok(Path::new(path).is_file())
    }

    async fn plain(&self) -> Result<Vec<PathBuf>, SourceError> {
        let pattern = self.pattern.clone();
        blocking(&self.pattern, move || files(&pattern)).await
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
    let mut files: Vec<PathBuf> = matches.filter_map(Result::ok).filter(|p| p.is_file()).collect();
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
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| read_err(path, e))
}

/// A file's schema, read from its footer, named by its path.
pub(super) fn schema(path: &Path) -> Result<(String, SourceSchema), SourceError> {
    let builder = open(path)?;
    Ok((path.display().to_string(), super::source_schema(builder.schema())))
}

/// Streams every file into `tx`, in order; stops at the first error or when `tx` is closed.
pub(super) fn read_all(files: &[PathBuf], expected: &[(String, ColumnType)], tx: &Sender) {
    for path in files {
        if let Err(e) = read_file(path, expected, tx) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        if tx.is_closed() {
            return;
        }
    }
}

/// Streams one file into `tx`; stops early if the receiver is gone.
fn read_file(path: &Path, expected: &[(String, ColumnType)], tx: &Sender) -> Result<(), SourceError> {
    let builder = open(path)?;
    let shown = path.display().to_string();
    let roots = super::projection(builder.schema(), expected, &shown)?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| read_err(path, e))?;
    let origin: std::sync::Arc<str> = std::sync::Arc::from(shown);
    let mut first_row = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| read_err(path, e))?;
        let rows = batch.num_rows() as u64;
        let sent = tx.blocking_send(Ok(SourceBatch {
            warehouse: None,
            batch,
            origin: origin.clone(),
            first_row,
            problems: None,
        }));
        if sent.is_err() {
            return Ok(());
        }
        first_row += rows;
    }
    Ok(())
}
