//! Pass 2's reader: the records the plan selected, in batches, on a task of its own: the ones
//! pass 1 kept, or, when they did not fit its budget, the source read again.

use std::collections::HashSet;
use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::plan::{Plan, ToSend};
use super::SyncJob;
use crate::destination::Capabilities;
use crate::error::Error;
use crate::hash::id_key;
use crate::mapping::CompiledMapping;
use crate::record::{Change, Record};
use crate::source::{SourceBatch, SourceError};

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

/// Pass 2: the planned records, in source order, in batches as big as the destination takes,
/// then the planned deletes in batches of their own. The records pass 1 kept are used when
/// there are any; otherwise the source is read again.
pub fn planned_batches(
    sync: &SyncJob,
    plan: &Plan,
    capabilities: &Capabilities,
    max_batches: Option<usize>,
) -> (mpsc::Receiver<Vec<Change>>, Producer) {
    let (tx, rx) = mpsc::channel(8);
    if plan.to_send.is_empty() && plan.to_delete.is_empty() {
        // Nothing to send: no need to read the source again.
        return (rx, Producer(None));
    }
    let mut batcher = Batcher {
        tx,
        batch_size: capabilities.max_batch_records.max(1),
        deletes_per_request: capabilities.deletes_per_request.max(1),
        max_batches,
        sent: 0,
        current: Vec::new(),
        wanted: plan.to_send.clone(),
        emitted: HashSet::new(),
    };
    let deletes = plan.to_delete.clone();
    let kept = plan.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    let task = match kept {
        Some(records) => tokio::spawn(async move {
            for record in records {
                if let Some(full) = batcher.push(record) {
                    if !batcher.send(full).await {
                        return Ok(());
                    }
                }
            }
            batcher.finish(&deletes).await;
            Ok(())
        }),
        None => {
            let compiled = plan.compiled.clone();
            let stream = match &plan.warehouse {
                Some(warehouse) => warehouse.diff.changed(warehouse.query.clone()),
                None => sync.source.stream(Arc::new(compiled.columns().to_vec())),
            };
            tokio::spawn(reread(stream, compiled, batcher, deletes))
        }
    };
    (rx, Producer(Some(task)))
}

/// Pass 2 reading the source again, mapping only the rows the plan selected.
async fn reread(
    mut stream: BoxStream<'static, Result<SourceBatch, SourceError>>,
    compiled: Arc<CompiledMapping>,
    mut batcher: Batcher,
    deletes: Arc<Vec<String>>,
) -> Result<(), Error> {
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let mut ready = Vec::new();
        let wanted = batcher.wanted.clone();
        compiled.map_selected(
            &batch,
            |id| wanted.may_want(id),
            |mapped| {
                if let Ok(record) = mapped {
                    ready.extend(batcher.push(record));
                }
            },
        );
        for full in ready {
            if !batcher.send(full).await {
                return Ok(());
            }
        }
    }
    batcher.finish(&deletes).await;
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
    wanted: Arc<ToSend>,
    emitted: HashSet<u128>,
}

impl Batcher {
    /// Adds a record the plan selected; returns a batch once one is full.
    fn push(&mut self, record: Record) -> Option<Vec<Change>> {
        // A record seen twice here means the source changed between passes: send it once.
        if !self.wanted.wants(&record) || (self.wanted.watch_repeats() && !self.emitted.insert(id_key(&record.id))) {
            return None;
        }
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

    /// The last, partial batch of records, then the deletes.
    async fn finish(mut self, deletes: &[String]) {
        let last = std::mem::take(&mut self.current);
        let last = (!last.is_empty()).then_some(last);
        let deletes: Vec<Change> = deletes.iter().map(|id| Change::Delete { id: id.clone() }).collect();
        for batch in last
            .into_iter()
            .chain(deletes.chunks(self.deletes_per_request).map(<[Change]>::to_vec))
        {
            if !self.send(batch).await {
                return;
            }
        }
    }
}
