//! Pass 2's reader: stream the source again and map only the records the plan selected, in
//! batches, on a task of its own.

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::plan::Plan;
use super::SyncJob;
use crate::destination::Capabilities;
use crate::error::Error;
use crate::hash::id_key;
use crate::record::Change;

/// The task that reads pass 2. It ends when the source does, when `max_batches` were sent, or
/// when the receiver is gone; a source error ends it and comes back from [`Producer::finish`].
pub struct Producer(Option<JoinHandle<Result<(), Error>>>);

impl Producer {
    /// The producer's own result, once its batches have been taken or dropped.
    pub async fn finish(self) -> Result<(), Error> {
        let Some(task) = self.0 else { return Ok(()) };
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled only when the runtime shuts down, which ends the run anyway.
            Err(_) => Ok(()),
        }
    }
}

/// Pass 2: the planned records, in source order, in batches as big as the destination takes,
/// then the planned deletes in batches of their own.
pub fn planned_batches(
    sync: &SyncJob,
    plan: &Plan,
    capabilities: &Capabilities,
    max_batches: Option<usize>,
) -> (mpsc::Receiver<Vec<Change>>, Producer) {
    let batch_size = capabilities.max_batch_records.max(1);
    let deletes_per_request = capabilities.deletes_per_request.max(1);
    let (tx, rx) = mpsc::channel(8);
    if plan.to_send.is_empty() && plan.to_delete.is_empty() {
        // Nothing to send: no need to read the source again.
        return (rx, Producer(None));
    }
    let compiled = plan.compiled.clone();
    let wanted = plan.to_send.clone();
    let deletes = plan.to_delete.clone();
    let mut stream = sync.source.stream(Arc::new(compiled.columns().to_vec()));
    let task = tokio::spawn(async move {
        let mut emitted: HashSet<u128> = HashSet::new();
        let mut current = Vec::with_capacity(batch_size);
        let mut batches = 0usize;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let mut ready = Vec::new();
            compiled.map_selected(
                &batch,
                |id| wanted.binary_search(&id_key(id)).is_ok(),
                |mapped| {
                    // A record seen twice here means the source changed between passes: send it once.
                    if let Ok(record) = mapped {
                        if emitted.insert(id_key(&record.id)) {
                            current.push(Change::Upsert(record));
                            if current.len() == batch_size {
                                ready.push(std::mem::replace(&mut current, Vec::with_capacity(batch_size)));
                            }
                        }
                    }
                },
            );
            for b in ready {
                if max_batches.is_some_and(|m| batches >= m) || tx.send(b).await.is_err() {
                    return Ok(());
                }
                batches += 1;
            }
        }
        let deletes: Vec<Change> = deletes.iter().map(|id| Change::Delete { id: id.clone() }).collect();
        let last = (!current.is_empty()).then_some(current);
        for b in last.into_iter().chain(deletes.chunks(deletes_per_request).map(<[Change]>::to_vec)) {
            if max_batches.is_some_and(|m| batches >= m) || tx.send(b).await.is_err() {
                return Ok(());
            }
            batches += 1;
        }
        Ok(())
    });
    (rx, Producer(Some(task)))
}
