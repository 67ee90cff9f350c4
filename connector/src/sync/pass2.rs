//! Pass 2's loop: batches go out concurrently under the rate limit, only while the run can
//! prove it holds its lock, and what comes back acknowledged is committed through the lock.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::commit::CommitBuffer;
use super::run_box::RunBox;
use super::RunContext;
use crate::baseline::Plan;
use crate::destination::DestinationError;
use crate::error::Error;
use crate::quote::{shorten, MAX_QUOTED_CHARS};
use crate::record::{Change, Record};
use crate::ship::batches::{planned_batches, Producer};
use crate::ship::{BatchOutcome, Delivery};
use crate::state::{RejectionStage, RunCounts, RunProgress, StoredRejection};

/// The batches of pass 2, sent concurrently under the rate limit.
type InFlight<'a> = std::pin::Pin<Box<dyn futures::Stream<Item = (Vec<Change>, BatchOutcome)> + Send + 'a>>;

/// How pass 2 ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Delivered {
    /// Every planned batch was sent.
    All,
    /// A stop or a shutdown ended it first.
    Stopped,
    /// The run's box did.
    Boxed,
}

/// Pass 2 and its commits, for one run.
pub(super) struct CommitWindow<'a> {
    pub context: &'a RunContext<'a>,
    pub buffer: CommitBuffer,
    /// Why the destination stopped the run, if it did.
    pub fatal: Option<String>,
    /// Records the destination was asked for and did not acknowledge or reject.
    pub failed: u64,
    /// What the run last reported of its progress to the state store, and when.
    pub reported: Option<(RunProgress, Instant)>,
}

/// How often a run reports its progress to the state store.
const REPORT_EVERY: Duration = Duration::from_secs(1);

impl CommitWindow<'_> {
    /// Sends and commits until pass 2 ends.
    pub async fn deliver(&mut self, plan: &Plan, counts: &mut RunCounts) -> Result<Delivered, Error> {
        let RunContext { sync, options, lock, .. } = *self.context;
        let stop = options.cancel.child_token();
        let run_box = Arc::new(RunBox::new(self.context.started, self.context.max_run(), stop.clone()));
        let (mut in_flight, producer) = self.start_sending(plan, &stop, &run_box);
        let mut abandoned = false;
        loop {
            let step = tokio::select! {
                biased;
                () = lock.lost() => Step::LockLost,
                item = in_flight.next() => Step::Finished(item),
                () = self.buffer.due() => Step::Flush,
                () = options.abandon.cancelled() => Step::Abandon,
                () = run_box.due() => Step::Boxed,
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
                Step::Boxed => {
                    tracing::info!(sync = %sync.name(), "the run's box is over: no new batches will start");
                    run_box.reach();
                    false
                }
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
            self.flush(plan, counts, &stop).await?;
            if last {
                break;
            }
        }
        drop(in_flight);
        producer.finish().await?;
        if let Some(reason) = self.fatal.take() {
            return Err(DestinationError::Refused(reason).into());
        }
        Ok(match (options.cancel.is_cancelled() || abandoned, run_box.is_reached()) {
            (true, _) => Delivered::Stopped,
            (false, true) => Delivered::Boxed,
            (false, false) => Delivered::All,
        })
    }

    /// Pass 2 as a stream of delivered batches, and the task that reads the source for it.
    fn start_sending(&self, plan: &Plan, stop: &CancellationToken, run_box: &Arc<RunBox>) -> (InFlight<'static>, Producer) {
        let RunContext { sync, run_id, lock, .. } = *self.context;
        let config = sync.mapping.delivery();
        let gate = lock.gate();
        let capabilities = sync.destination.capabilities();
        let pacer = self.context.options.pacers.get(
            sync.mapping.destination.rate_scope(),
            config.requests_per_minute,
            self.context.store.shared_pace(),
        );
        let mut delivery = Delivery::new(sync.destination.clone(), pacer, config.retry_budget);
        delivery.run = Some(format!("{}/{run_id}", sync.name()));
        delivery.observer = self.context.options.observer.clone();
        // Every request start proves the lock, retries and split halves included.
        delivery.gate = Some(gate);
        let delivery = Arc::new(delivery);
        let (mut rx, producer) = planned_batches(&sync.source, plan, &capabilities, None);
        let run_box = Arc::clone(run_box);
        let batches = futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
            .take_until(stop.clone().cancelled_owned())
            .inspect(move |_| run_box.batch_started());
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

    /// Commits what the window's batches acknowledged, through the baseline, then records
    /// their rejections.
    pub async fn flush(&mut self, plan: &Plan, counts: &mut RunCounts, stop: &CancellationToken) -> Result<(), Error> {
        let RunContext { sync, store, run_id, .. } = *self.context;
        let done = self.buffer.take();
        if done.is_empty() {
            return Ok(());
        }
        let (upserted, deleted) = acknowledged(&done);
        if !upserted.is_empty() || !deleted.is_empty() {
            plan.baseline.commit(&self.context.commit_at(), &upserted, &deleted).await?;
            if let Some(cursor) = &plan.cursor {
                cursor.acknowledged(&upserted);
            }
        }
        counts.sent += upserted.len() as u64;
        counts.deleted += deleted.len() as u64;
        let mut rejected: Vec<StoredRejection> = Vec::new();
        let mut failed = 0;
        for (batch, outcome) in &done {
            rejected.extend(outcome.rejected.iter().map(|(i, reason)| StoredRejection {
                stage: RejectionStage::Destination,
                record_id: Some(batch[*i].id().to_string()),
                position: format!("id {}", shorten(batch[*i].id(), MAX_QUOTED_CHARS)),
                reason: reason.clone(),
            }));
            failed += outcome.failed.len();
            self.failed += outcome.failed.len() as u64;
            if let (Some(reason), None) = (&outcome.fatal, &self.fatal) {
                tracing::error!(sync = %sync.name(), %reason, "stopping: no new batches will start");
                self.fatal = Some(reason.clone());
                stop.cancel();
            }
        }
        counts.rejected += rejected.len() as u64;
        if !rejected.is_empty() {
            store.add_rejections(run_id, sync.name(), &rejected).await?;
        }
        let settled = (upserted.len() + deleted.len() + rejected.len() + failed) as u64;
        if let Some(progress) = &self.context.options.progress {
            progress.advance(settled);
        }
        self.report(settled).await
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

/// The upserts and the deletes the destination acknowledged of a commit window.
fn acknowledged(done: &[(Vec<Change>, BatchOutcome)]) -> (Vec<&Record>, Vec<String>) {
    let (mut upserted, mut deleted) = (Vec::new(), Vec::new());
    for change in done.iter().flat_map(|(batch, outcome)| outcome.acked.iter().map(|&i| &batch[i])) {
        match change {
            Change::Upsert(record) => upserted.push(record),
            Change::Delete { id } => deleted.push(id.clone()),
        }
    }
    (upserted, deleted)
}

/// One turn of the delivery loop.
enum Step {
    Finished(Option<(Vec<Change>, BatchOutcome)>),
    Flush,
    Abandon,
    LockLost,
    Boxed,
}
