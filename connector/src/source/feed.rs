//! How a reader hands its snapshot over, so that a snapshot which ended was read to its end.
//!
//! A reader runs on a task of its own and sends batches over a bounded channel. The channel
//! closing says only that the reader stopped, not why: a reader that panicked, or returned
//! early, closes it just as one that finished does. So the stream [`spawn`] returns ends only
//! on a positive signal, the reader's own `Ok(())` from its awaited task; an error it returns
//! is the stream's last item, and a panic becomes [`SourceError::Internal`]. Callers can then
//! read a stream to its end and know that they saw every row, or an error.

use std::future::Future;

use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinError, JoinHandle};

use super::{SourceBatch, SourceError};

/// Batches decoded ahead of the consumer: a few, so memory holds a few batches, never the
/// snapshot.
const AHEAD: usize = 4;

/// The sending side, given to a reader.
pub struct Feed {
    tx: mpsc::Sender<SourceBatch>,
}

/// The consumer dropped the stream: nobody wants more rows, and the reader may stop.
#[derive(Debug)]
pub struct Gone;

impl Feed {
    pub async fn send(&self, batch: SourceBatch) -> Result<(), Gone> {
        self.tx.send(batch).await.map_err(|_| Gone)
    }

    /// [`Feed::send`] from a blocking thread.
    pub fn blocking_send(&self, batch: SourceBatch) -> Result<(), Gone> {
        self.tx.blocking_send(batch).map_err(|_| Gone)
    }
}

/// Runs `read` on a task of its own, for `source` (as messages name it), and streams what it
/// sends. The stream ends after every batch only if `read` returned `Ok(())`; otherwise its last
/// item is the error. Dropping the stream stops the reader.
pub fn spawn<F, Fut>(source: String, read: F) -> BoxStream<'static, Result<SourceBatch, SourceError>>
where
    F: FnOnce(Feed) -> Fut,
    Fut: Future<Output = Result<(), SourceError>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(AHEAD);
    let task = tokio::spawn(read(Feed { tx }));
    let state = Reading {
        rx,
        abort: task.abort_handle(),
        task: Some(task),
        source,
    };
    futures::stream::unfold(state, |mut state| async move {
        if let Some(batch) = state.rx.recv().await {
            return Some((Ok(batch), state));
        }
        // Every sender is gone: the reader stopped. Only its result says whether it finished.
        let task = state.task.take()?;
        let ended = match task.await {
            Ok(Ok(())) => return None,
            Ok(Err(e)) => e,
            Err(e) => joined(&state.source, e),
        };
        Some((Err(ended), state))
    })
    .boxed()
}

/// The reader's task, and where its batches arrive.
struct Reading {
    rx: mpsc::Receiver<SourceBatch>,
    task: Option<JoinHandle<Result<(), SourceError>>>,
    abort: AbortHandle,
    source: String,
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

/// What a reader's task that did not return says: a panic is a bug in ebb or a library.
pub fn joined(source: &str, e: JoinError) -> SourceError {
    SourceError::Internal {
        source_name: source.to_string(),
        message: crate::panic::joined("reading", e).message,
    }
}

/// Awaits a blocking reader's thread, whose panic is an error like any other of the reader.
pub async fn blocking<T: Send + 'static>(
    source: &str,
    work: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, SourceError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| joined(source, e))?
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::record_batch::RecordBatch;

    use super::*;

    fn batch(first_row: u64) -> SourceBatch {
        let column = Arc::new(Int64Array::from(vec![1, 2, 3]));
        SourceBatch {
            batch: RecordBatch::try_from_iter([("n", column as _)]).expect("batch"),
            origin: Arc::from("test"),
            first_row,
            problems: None,
        }
    }

    async fn outcome(mut stream: BoxStream<'static, Result<SourceBatch, SourceError>>) -> (usize, Option<String>) {
        let mut batches = 0;
        while let Some(item) = stream.next().await {
            match item {
                Ok(_) => batches += 1,
                Err(e) => {
                    assert!(stream.next().await.is_none(), "an error is the last item");
                    return (batches, Some(e.to_string()));
                }
            }
        }
        (batches, None)
    }

    #[tokio::test]
    async fn a_reader_that_finishes_ends_the_stream() {
        let stream = spawn("t".into(), |feed| async move {
            for i in 0..10 {
                feed.send(batch(i * 3))
                    .await
                    .map_err(|_| SourceError::NotFound { pattern: "gone".into() })?;
            }
            Ok(())
        });
        assert_eq!(outcome(stream).await, (10, None));
    }

    #[tokio::test]
    async fn an_error_after_some_batches_is_the_last_item() {
        let stream = spawn("t".into(), |feed| async move {
            let _ = feed.send(batch(0)).await;
            Err(SourceError::NotFound {
                pattern: "x.parquet".into(),
            })
        });
        let (batches, error) = outcome(stream).await;
        assert_eq!(batches, 1);
        assert_eq!(error.as_deref(), Some("x.parquet: no such file or folder"));
    }

    #[tokio::test]
    async fn a_reader_that_panics_mid_stream_is_an_internal_error() {
        let stream = spawn("users.parquet".into(), |feed| async move {
            let _ = feed.send(batch(0)).await;
            let broken: Option<u8> = None;
            #[allow(clippy::unnecessary_literal_unwrap)]
            broken.expect("a footer that lies");
            Ok(())
        });
        let (batches, error) = outcome(stream).await;
        assert_eq!(batches, 1);
        assert_eq!(
            error.as_deref(),
            Some("internal error in reading users.parquet: a footer that lies (please report)")
        );
    }

    #[tokio::test]
    async fn a_blocking_reader_that_panics_is_an_internal_error_too() {
        let stream = spawn("db".into(), |feed| async move {
            blocking("db", move || {
                let _ = feed.blocking_send(batch(0));
                panic!("decoder gave up at row {}", 8192)
            })
            .await
        });
        let (_, error) = outcome(stream).await;
        assert_eq!(
            error.as_deref(),
            Some("internal error in reading db: decoder gave up at row 8192 (please report)")
        );
    }
}
