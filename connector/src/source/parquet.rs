//! Parquet snapshots: a file, a folder (searched recursively) or a glob.
//!
//! Files are read one record batch at a time on a blocking thread and handed
//! over a bounded channel, so memory holds a few batches, never the snapshot,
//! and decoding runs on its own core while the caller maps and hashes. Only
//! the mapped columns are decoded.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::stream::BoxStream;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use tokio::sync::mpsc;

use super::{ColumnType, Found, Source, SourceBatch, SourceError, SourceSchema};

const BATCH_ROWS: usize = 8192;
const CHANNEL_BATCHES: usize = 4;

pub struct ParquetSource {
    pattern: String,
}

impl ParquetSource {
    pub fn new(pattern: String) -> Self {
        Self { pattern }
    }

    /// The files of the snapshot, sorted so that every run reads them in one order.
    pub fn files(&self) -> Result<Vec<PathBuf>, SourceError> {
        let pattern = &self.pattern;
        let path = Path::new(pattern);
        let mut files = if pattern.contains(['*', '?', '[']) {
            glob_files(pattern, pattern)?
        } else if path.is_file() {
            vec![path.to_path_buf()]
        } else if path.is_dir() {
            let nested = format!("{}/**/*.parquet", glob::Pattern::escape(pattern.trim_end_matches('/')));
            glob_files(&nested, pattern)?
        } else {
            return Err(SourceError::NotFound { pattern: pattern.clone() });
        };
        files.sort();
        if files.is_empty() {
            return Err(SourceError::NoFiles { pattern: pattern.clone() });
        }
        Ok(files)
    }
}

/// The files a glob matches; `shown` is the pattern as the mapping wrote it, for errors.
fn glob_files(glob_pattern: &str, shown: &str) -> Result<Vec<PathBuf>, SourceError> {
    let matches = glob::glob(glob_pattern).map_err(|e| SourceError::BadGlob {
        pattern: shown.to_string(),
        message: e.msg.to_string(),
    })?;
    Ok(matches.filter_map(Result::ok).filter(|p| p.is_file()).collect())
}

fn read_err(path: &Path, e: impl Into<super::BoxError>) -> SourceError {
    SourceError::Read {
        path: path.display().to_string(),
        cause: e.into(),
    }
}

fn open(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, SourceError> {
    let file = File::open(path).map_err(|e| read_err(path, e))?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| read_err(path, e))
}

fn file_schema(path: &Path) -> Result<SourceSchema, SourceError> {
    let builder = open(path)?;
    let mut schema = SourceSchema::default();
    for field in builder.schema().fields() {
        match ColumnType::from_arrow(field.data_type()) {
            Some(t) => schema.columns.push((field.name().clone(), t)),
            None => schema.unsupported.push((field.name().clone(), field.data_type().to_string())),
        }
    }
    Ok(schema)
}

#[async_trait::async_trait]
impl Source for ParquetSource {
    fn describe(&self) -> String {
        self.pattern.clone()
    }

    async fn schema(&self) -> Result<SourceSchema, SourceError> {
        let files = self.files()?;
        tokio::task::spawn_blocking(move || {
            let mut merged = file_schema(&files[0])?;
            for path in &files[1..] {
                let other = file_schema(path)?;
                let mut conflicts = Vec::new();
                merged.columns.retain(|(name, ty)| match other.column(name) {
                    Some(t) if t == ty => true,
                    Some(t) => {
                        conflicts.push((
                            name.clone(),
                            format!("is {ty} in {} but {t} in {}", files[0].display(), path.display()),
                        ));
                        false
                    }
                    None => {
                        conflicts.push((
                            name.clone(),
                            format!("is in {} but missing from {}", files[0].display(), path.display()),
                        ));
                        false
                    }
                });
                merged.conflicts.extend(conflicts);
            }
            Ok(merged)
        })
        .await
        .map_err(|e| SourceError::Read {
            path: self.pattern.clone(),
            cause: e.into(),
        })?
    }

    fn stream(&self, expected: Arc<Vec<(String, ColumnType)>>) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
        let (tx, mut rx) = mpsc::channel::<Result<SourceBatch, SourceError>>(CHANNEL_BATCHES);
        let files = self.files();
        tokio::task::spawn_blocking(move || {
            let files = match files {
                Ok(f) => f,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            for path in files {
                if let Err(e) = read_file(&path, &expected, &tx) {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
        Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}

/// Streams one file into `tx`; stops early if the receiver is gone.
fn read_file(
    path: &Path,
    expected: &[(String, ColumnType)],
    tx: &mpsc::Sender<Result<SourceBatch, SourceError>>,
) -> Result<(), SourceError> {
    let builder = open(path)?;
    let arrow_schema = builder.schema().clone();
    let mut roots = super::check_part(expected, &path.display().to_string(), |name| {
        match arrow_schema.column_with_name(name) {
            None => Found::Missing,
            Some((index, field)) => match ColumnType::from_arrow(field.data_type()) {
                Some(t) => Found::Readable(t, index),
                None => Found::Unsupported(field.data_type().to_string()),
            },
        }
    })?;
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| read_err(path, e))?;
    let origin: Arc<str> = Arc::from(path.display().to_string());
    let mut first_row = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| read_err(path, e))?;
        let rows = batch.num_rows() as u64;
        if tx
            .blocking_send(Ok(SourceBatch {
                warehouse: None,
                batch,
                origin: origin.clone(),
                first_row,
                problems: None,
            }))
            .is_err()
        {
            return Ok(());
        }
        first_row += rows;
    }
    Ok(())
}
