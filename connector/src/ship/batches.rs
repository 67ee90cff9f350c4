//! Pass 2's reader: the records the baseline hands out (the ones pass 1 kept, or, when they did
//! not fit its budget, the rows read again), in batches, on a task of its own.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::baseline::{Outgoing, Plan, Records};
use crate::destination::Capabilities;
use crate::error::Error;
use crate::record::{Change, Record};
use crate::source::Source;

/// The task that reads pass 2. It ends when the source does, when `max_batches` were sent, or
/// when the receiver is gone; a source error ends it and comes back from [`Producer::finish`].
pub struct Producer(Option<JoinHandle<Result<(), Error>>>);

impl Producer {
    /// The producer's own result, once its batches have been taken or dropped.
    pub async fn finish(self) -> Result<(), Error> {
        let Some(task) = self.0 else { return Ok(()) };
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err(crate::panic::joined("reading pass 2", e).into()),
            // Cancelled only when the runtime shuts down, which ends the run anyway.
            Err(_) => Ok(()),
        }
    }
}

/// Pass 2: the planned records, in the order the baseline sends them (stale copies first; see
/// `baseline::order`), in batches as big as the destination takes, then the planned deletes in
/// batches of their own, then the resends.
pub fn planned_batches(
    source: &Arc<dyn Source>,
    plan: &Plan,
    capabilities: &Capabilities,
    max_batches: Option<usize>,
) -> (mpsc::Receiver<Vec<Change>>, Producer) {
    let (tx, rx) = mpsc::channel(8);
    if plan.changes() == 0 {
        // Nothing to send: no need to read the source again.
        return (rx, Producer(None));
    }
    let batcher = Batcher {
        tx,
        batch_size: capabilities.max_batch_records.max(1),
        deletes_per_request: capabilities.deletes_per_request.max(1),
        max_batches,
        sent: 0,
        current: Vec::new(),
    };
    let outgoing = match plan.to_send() {
        0 => Outgoing::before_deletes(futures::stream::empty().boxed()),
        _ => plan.baseline.records(plan.take_kept(), source, &plan.compiled),
    };
    let task = tokio::spawn(batch(outgoing, batcher, plan.deletes()));
    (rx, Producer(Some(task)))
}

/// Cuts pass 2's records, the deletes, then the resends into batches.
async fn batch(outgoing: Outgoing, mut batcher: Batcher, deletes: Arc<Vec<String>>) -> Result<(), Error> {
    let Outgoing {
        before_deletes,
        after_deletes,
    } = outgoing;
    if !batcher.records(before_deletes).await? || !batcher.deletes(&deletes).await {
        return Ok(());
    }
    batcher.records(after_deletes).await?;
    Ok(())
}

/// Cuts the planned records into batches and hands them to the senders.
struct Batcher {
    tx: mpsc::Sender<Vec<Change>>,
    batch_size: usize,
    deletes_per_request: usize,
    max_batches: Option<usize>,
    sent: usize,
    current: Vec<Change>,
}

impl Batcher {
    /// Adds a record to send; returns a batch once one is full.
    fn push(&mut self, record: Record) -> Option<Vec<Change>> {
        self.current.push(Change::Upsert(record));
        (self.current.len() >= self.batch_size).then(|| std::mem::replace(&mut self.current, Vec::with_capacity(self.batch_size)))
    }
    /// Hands a batch on; `false` once no more are wanted.
    async fn send(&mut self, batch: Vec<Change>) -> bool {
        if self.max_batches.is_some_and(|m| self.sent >= m) || self.tx.send(batch).await.is_err() {
            return false;
        }
        self.sent += 1;
        true
    }

    /// Cuts `records` into batches, the last one partial; `false` once no more are wanted.
    async fn records(&mut self, mut records: Records) -> Result<bool, Error> {
        while let Some(chunk) = records.next().await {
            for record in chunk? {
                if let Some(full) = self.push(record) {
                    if !self.send(full).await {
                        return Ok(false);
                    }
                }
            }
        }
        let last = std::mem::take(&mut self.current);
        Ok(last.is_empty() || self.send(last).await)
    }

    /// The deletes, in batches of their own; `false` once no more are wanted.
    async fn deletes(&mut self, deletes: &[String]) -> bool {
        for chunk in deletes.chunks(self.deletes_per_request) {
            let batch = chunk.iter().map(|id| Change::Delete { id: id.clone() }).collect();
            if !self.send(batch).await {
                return false;
            }
        }
        true
    }
}
