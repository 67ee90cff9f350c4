//! Pass 2's loop: batches go out concurrently under the rate limit, only while the run can
//! prove it holds its lock, and what comes back acknowledged is committed through the lock.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::batches::{planned_batches, Producer};
use super::commit::{CommitBuffer, Committed};
use super::plan::Plan;
use super::warehouse::WarehousePlan;
use super::RunContext;
use crate::delivery::{BatchOutcome, Delivery};
use crate::destination::DestinationError;
use crate::error::Error;
use crate::hash::{id_key, record_hash};
use crate::payload;
use crate::quote::{shorten, MAX_QUOTED_CHARS};
use crate::record::Change;
use crate::state::{Commit, IndexEntry, RejectionStage, RunCounts, RunProgress, Sent, StoredRejection, SuppressReason};
use crate::warehouse::WarehouseCommit;

/// The batches of pass 2, sent concurrently under the rate limit.
type InFlight<'a> = std::pin::Pin<Box<dyn futures::Stream<Item = (Vec<Change>, BatchOutcome)> + Send + 'a>>;

/// Pass 2 and its commits, for one run.
pub(super) struct CommitWindow<'a> {
    pub context: &'a RunContext<'a>,
    /// The next commit replaces the stored state (see [`Commit::replace`]); only the first does.
    pub replace: bool,
    pub buffer: CommitBuffer,
    /// Why the destination stopped the run, if it did.
    pub fatal: Option<String>,
    /// What the run last reported of its progress to the state store, and when.
    pub reported: Option<(RunProgress, Instant)>,
    /// Where acknowledged records are committed when the warehouse keeps the state.
    pub warehouse: Option<WarehouseCommits<'a>>,
}

/// The warehouse's commits of one run.
pub(super) struct WarehouseCommits<'a> {
    pub plan: &'a WarehousePlan,
    /// The first commit writes the coverage and, if asked, forgets the stored records.
    pub first: bool,
}

/// How often a run reports its progress to the state store.
const REPORT_EVERY: Duration = Duration::from_secs(1);

impl CommitWindow<'_> {
    /// Sends and commits until pass 2 ends; `Ok(true)` if a stop or shutdown ended it first.
    pub async fn deliver(&mut self, plan: &Plan, counts: &mut RunCounts, committed: &mut Committed) -> Result<bool, Error> {
        let RunContext { sync, options, lock, .. } = *self.context;
        let stop = options.cancel.child_token();
        let (mut in_flight, producer) = self.start_sending(plan, &stop);
        let mut abandoned = false;
        loop {
            let step = tokio::select! {
                biased;
                () = lock.lost() => Step::LockLost,
                item = in_flight.next() => Step::Finished(item),
                () = self.buffer.due() => Step::Flush,
                () = options.abandon.cancelled() => Step::Abandon,
            };
            let last = match step {
                Step::Finished(Some((batch, outcome))) => {
                    if !self.buffer.add(batch, outcome) {
                        continue;
                    }
                    false
                }
                Step::Finished(None) => true,
                Step::Flush => false,
                Step::Abandon => {
                    // Requests still in flight are dropped unanswered: their records were not
                    // acknowledged, so they stay unsynced and the next run sends them.
                    tracing::warn!(sync = %sync.name(), "abandoning requests still in flight");
                    abandoned = true;
                    true
                }
                // Requests in flight are dropped with the stream, and nothing more is committed:
                // another run may own the sync by now. What was acknowledged is sent again next run.
                Step::LockLost => return Err(lock.check().err().map(Error::from).unwrap_or(Error::Interrupted)),
            };
            self.flush(counts, committed, &stop).await?;
            if last {
                break;
            }
        }
        drop(in_flight);
        producer.finish().await?;
        if let Some(reason) = self.fatal.take() {
            return Err(DestinationError::Refused(reason).into());
        }
        Ok(options.cancel.is_cancelled() || abandoned)
    }

    /// Pass 2 as a stream of delivered batches, and the task that reads the source for it.
    fn start_sending(&self, plan: &Plan, stop: &CancellationToken) -> (InFlight<'static>, Producer) {
        let RunContext { sync, run_id, lock, .. } = *self.context;
        let config = sync.mapping.delivery();
        let gate = lock.gate();
        let capabilities = sync.destination.capabilities();
        let pacer = self
            .context
            .options
            .pacers
            .get(sync.mapping.destination.rate_scope(), config.requests_per_minute);
        let mut delivery = Delivery::new(sync.destination.clone(), pacer, config.retry_budget);
        delivery.run = Some(format!("{}/{run_id}", sync.name()));
        delivery.observer = self.context.options.observer.clone();
        // Every request start proves the lock, retries and split halves included.
        delivery.gate = Some(gate);
        let delivery = Arc::new(delivery);
        let (mut rx, producer) = planned_batches(sync, plan, &capabilities, None);
        let batches = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).take_until(stop.clone().cancelled_owned());
        let in_flight = Box::pin(
            batches
                .map(move |batch| {
                    let delivery = delivery.clone();
                    async move {
                        let outcome = delivery.deliver(&batch).await;
                        (batch, outcome)
                    }
                })
                .buffer_unordered(config.concurrency),
        );
        (in_flight, producer)
    }

    /// Commits what the window's batches acknowledged, through the run lock, then records their rejections.
    pub async fn flush(&mut self, counts: &mut RunCounts, committed: &mut Committed, stop: &CancellationToken) -> Result<(), Error> {
        let RunContext { sync, store, run_id, .. } = *self.context;
        let done = self.buffer.take();
        if done.is_empty() {
            return Ok(());
        }
        let Acknowledged {
            upserted: acked,
            payloads,
            rows,
            deleted,
        } = acknowledged(&done, sync.mapping.keep_payloads && self.warehouse.is_none());
        if !acked.is_empty() || !rows.is_empty() || !deleted.is_empty() {
            self.commit(&acked, &payloads, &rows, &deleted, committed).await?;
        }
        counts.sent += (acked.len() + rows.len()) as u64;
        counts.deleted += deleted.len() as u64;
        let mut rejected: Vec<StoredRejection> = Vec::new();
        let mut failed = 0;
        for (batch, outcome) in done {
            rejected.extend(outcome.rejected.iter().map(|(i, reason)| StoredRejection {
                stage: RejectionStage::Destination,
                record_id: Some(batch[*i].id().to_string()),
                position: format!("id {}", shorten(batch[*i].id(), MAX_QUOTED_CHARS)),
                reason: reason.clone(),
            }));
            failed += outcome.failed.len();
            if let (Some(reason), None) = (outcome.fatal, &self.fatal) {
                tracing::error!(sync = %sync.name(), %reason, "stopping: no new batches will start");
                self.fatal = Some(reason);
                stop.cancel();
            }
        }
        counts.rejected += rejected.len() as u64;
        if !rejected.is_empty() {
            store.add_rejections(run_id, sync.name(), &rejected).await?;
        }
        let settled = (acked.len() + rows.len() + deleted.len() + rejected.len() + failed) as u64;
        if let Some(progress) = &self.context.options.progress {
            progress.advance(settled);
        }
        self.report(settled).await
    }

    /// Commits acknowledged changes through the run lock: the only write of record state.
    async fn commit(
        &mut self,
        acked: &[(String, u128)],
        payloads: &[Vec<u8>],
        rows: &[(String, String, u128)],
        deleted: &[String],
        committed: &mut Committed,
    ) -> Result<(), Error> {
        if self.warehouse.is_some() {
            return self.commit_in_warehouse(rows, deleted).await;
        }
        let RunContext { store, lock, run_id, .. } = *self.context;
        let changes = Commit {
            upserted: acked,
            deleted,
            destination: &self.context.destination,
            replace: self.replace,
            // A record mirror deleted is never sent again, even if its row comes back.
            suppress_deleted: Some((SuppressReason::Mirror, Some(run_id))),
            sent: Some(Sent { run: run_id, payloads }),
        };
        let generation = store.commit(lock, &changes).await?;
        // After a commit that replaced the state, the table holds exactly this run's records.
        committed.generation = match std::mem::take(&mut self.replace) {
            true => Some(generation),
            false => committed.generation.filter(|g| generation == g + 1).map(|_| generation),
        };
        committed.removed.extend(deleted.iter().map(|id| id_key(id)));
        committed.entries.extend(acked.iter().map(|(id, hash)| IndexEntry {
            key: id_key(id),
            hash: *hash,
        }));
        Ok(())
    }

    /// Commits to the warehouse: its record state first, through the lock, then, in the local
    /// state, the suppression of what was deleted (and, once, the forgetting of the records the
    /// sync kept there before its state moved to the warehouse).
    async fn commit_in_warehouse(&mut self, upserts: &[(String, String, u128)], deleted: &[String]) -> Result<(), Error> {
        let RunContext {
            sync, store, lock, run_id, ..
        } = *self.context;
        // The suppression first: a crash after it deletes again, harmlessly; one before the
        // warehouse forgets the record could never suppress it.
        if self.replace || !deleted.is_empty() {
            let changes = Commit {
                upserted: &[],
                deleted,
                destination: &self.context.destination,
                replace: std::mem::take(&mut self.replace),
                suppress_deleted: Some((SuppressReason::Mirror, Some(run_id))),
                sent: None,
            };
            store.commit(lock, &changes).await?;
        }
        let Some(warehouse) = self.warehouse.as_mut() else { return Ok(()) };
        let deletes: Vec<String> = deleted
            .iter()
            .filter_map(|id| warehouse.plan.delete_keys.get(id).cloned())
            .collect();
        let first = std::mem::take(&mut warehouse.first);
        let commit = WarehouseCommit {
            coverage: warehouse.plan.coverage.as_ref().filter(|_| first),
            replace: first && warehouse.plan.replace,
            upserts,
            deletes: &deletes,
        };
        lock.check()?;
        warehouse.plan.diff.commit(sync.name(), &commit).await?;
        Ok(())
    }

    /// Tells the state store how far sending has got: at most once a second, and always at
    /// the start, so that `ebb status` in another process can show it.
    pub async fn report(&mut self, settled: u64) -> Result<(), Error> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let Some((progress, at)) = &mut self.reported else { return Ok(()) };
        progress.done += settled;
        progress.at_ms = now_ms;
        let due = at.elapsed() >= REPORT_EVERY || progress.done == 0;
        if due {
            *at = Instant::now();
            let RunContext { store, run_id, .. } = *self.context;
            store.report_progress(run_id, progress).await?;
        }
        Ok(())
    }
}

/// What the destination acknowledged of a commit window.
struct Acknowledged {
    /// Upserts diffed in process, with the hash of what was sent.
    upserted: Vec<(String, u128)>,
    /// What each upsert sent, in `upserted`'s order.
    payloads: Vec<Vec<u8>>,
    /// `(key, id, hash)` of the upserts whose rows came from the warehouse's diff.
    rows: Vec<(String, String, u128)>,
    deleted: Vec<String>,
}

/// `keep_payloads` false encodes none: the commit then stores none.
fn acknowledged(done: &[(Vec<Change>, BatchOutcome)], keep_payloads: bool) -> Acknowledged {
    let mut out = Acknowledged {
        upserted: Vec::new(),
        payloads: Vec::new(),
        rows: Vec::new(),
        deleted: Vec::new(),
    };
    for change in done.iter().flat_map(|(batch, outcome)| outcome.acked.iter().map(|&i| &batch[i])) {
        match change {
            Change::Upsert(record) => {
                // A row from the warehouse's diff is committed with the warehouse's hash; the
                // record's own is not needed.
                match &record.row_state {
                    Some(row) => out.rows.push((row.key.clone(), record.id.clone(), row.hash)),
                    None => out.upserted.push((record.id.clone(), record_hash(record))),
                }
                if keep_payloads {
                    out.payloads.push(payload::encode(record));
                }
            }
            Change::Delete { id } => out.deleted.push(id.clone()),
        }
    }
    out
}

/// One turn of the delivery loop.
enum Step {
    Finished(Option<(Vec<Change>, BatchOutcome)>),
    Flush,
    Abandon,
    LockLost,
}
