//! Delivers one batch: rate limit, retries with backoff, splitting.
//!
//! The result says, per record, whether the destination acknowledged it,
//! refused it (with the destination's reason) or could not be reached. The
//! caller commits only the acknowledged ones. Retries of one batch are
//! bounded in time by the retry budget; after that the batch fails and its
//! records wait for the next run.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::backoff::backoff;
use super::pacing::Pacer;
use super::split::{push_halves, refused_in};
use crate::destination::{Attempt, Destination, PreparedRequest, RetryAction};
use crate::record::Change;
use crate::state::LockWatch;

/// Sees every attempt a delivery makes, whatever the destination: the worker's metrics. Hooked
/// here, where attempts are made, rather than around the destination, so that no method a
/// destination gains can slip past it.
pub trait AttemptObserver: Send + Sync {
    /// One attempt against `destination` (as it describes itself), which took `seconds`.
    fn attempted(&self, destination: &str, seconds: f64, attempt: &Attempt);
}

/// Shared by every batch of a run.
pub struct Delivery {
    pub destination: Arc<dyn Destination>,
    /// The pace of the destination's credential, shared with every other delivery that uses it.
    pacer: Arc<Pacer>,
    pub retry_budget: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Which run sends, for [`PreparedRequest::run`].
    pub run: Option<String>,
    pub observer: Option<Arc<dyn AttemptObserver>>,
    /// The run's lock, proven before every request starts: the first attempt, each retry and
    /// each half of a split alike. A run paused past a takeover must not send even a retry,
    /// which would overwrite the newer run's values at the destination.
    pub gate: Option<LockWatch>,
    /// The destination as it describes itself, worked out once rather than on every attempt.
    label: String,
}

impl Delivery {
    pub fn new(destination: Arc<dyn Destination>, pacer: Arc<Pacer>, retry_budget: Duration) -> Self {
        Self {
            label: destination.describe(),
            destination,
            pacer,
            retry_budget,
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            run: None,
            observer: None,
            gate: None,
        }
    }
}

#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Indices into the batch.
    pub acked: Vec<usize>,
    pub rejected: Vec<(usize, String)>,
    pub failed: Vec<usize>,
    /// Why the run must stop, if it must.
    pub fatal: Option<String>,
    pub attempts: u32,
}

impl Delivery {
    /// Delivers one batch of changes; the outcome names them by position in `records`.
    pub async fn deliver(&self, records: &[Change]) -> BatchOutcome {
        let started = Instant::now();
        let mut out = BatchOutcome::default();
        // Parts of the batch still to send, as positions: a part sent again after some of its
        // records were refused need not be contiguous.
        let mut pending: Vec<Vec<usize>> = Vec::with_capacity(8);
        pending.push((0..records.len()).collect());
        let max_bytes = self.destination.capabilities().max_request_bytes;
        while let Some(part) = pending.pop() {
            let refs: Vec<&Change> = part.iter().map(|&i| &records[i]).collect();
            let request = match self.destination.prepare(&refs) {
                Ok(r) => PreparedRequest {
                    run: self.run.clone(),
                    ..r
                },
                Err(e) => {
                    out.rejected.extend(part.into_iter().map(|i| (i, e.to_string())));
                    continue;
                }
            };
            if request.body.len() > max_bytes {
                if part.len() > 1 {
                    push_halves(&mut pending, part);
                } else {
                    out.rejected.extend(part.into_iter().map(|i| {
                        let size = request.body.len();
                        (i, format!("the record is {size} bytes, over the {max_bytes}-byte request limit"))
                    }));
                }
                continue;
            }
            if let Err(fatal) = self.attempt_until_settled(&request, &part, started, &mut pending, &mut out).await {
                out.failed.extend(part);
                out.failed.extend(pending.drain(..).flatten());
                out.fatal = Some(fatal);
                break;
            }
        }
        out
    }

    /// Sends one request until it is acknowledged, refused or split; `Err` stops the run.
    async fn attempt_until_settled(
        &self,
        request: &PreparedRequest,
        part: &[usize],
        started: Instant,
        pending: &mut Vec<Vec<usize>>,
        out: &mut BatchOutcome,
    ) -> Result<(), String> {
        let mut delays = backoff(self.min_backoff, self.max_backoff);
        loop {
            self.pacer.ready().await;
            // After the pace: a wait for the pace can outlast the proof.
            if let Some(gate) = &self.gate {
                gate.until_proven().await;
            }
            out.attempts += 1;
            let sent_at = Instant::now();
            let attempt = self.destination.send(request).await;
            if let Some(observer) = &self.observer {
                observer.attempted(&self.label, sent_at.elapsed().as_secs_f64(), &attempt);
            }
            let (delay, asked) = match self.destination.classify(request, &attempt) {
                RetryAction::Retry { after: Some(wait) } => (wait, true),
                RetryAction::Retry { after: None } => {
                    if attempt.status() == Some(429) {
                        self.pacer.slow_down(sent_at).await;
                    }
                    (delays.next().unwrap_or(self.max_backoff), false)
                }
                action => {
                    self.pacer.answered();
                    return self.settle(action, &attempt, part, pending, out);
                }
            };
            let reason = self.destination.explain(&attempt);
            // The budget first: a wait this run will not take must not hold every other sync
            // of the credential either.
            if started.elapsed() + delay > self.retry_budget {
                return Err(format!(
                    "{} unreachable after retrying for {}s: {reason}",
                    self.label,
                    started.elapsed().as_secs()
                ));
            }
            if asked {
                self.pacer.hold(delay).await;
            }
            tracing::warn!(delay_ms = delay.as_millis() as u64, %reason, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// What an attempt that is not retried means for the part it carried.
    fn settle(
        &self,
        action: RetryAction,
        attempt: &Attempt,
        part: &[usize],
        pending: &mut Vec<Vec<usize>>,
        out: &mut BatchOutcome,
    ) -> Result<(), String> {
        match action {
            RetryAction::Delivered => out.acked.extend_from_slice(part),
            RetryAction::Partial { refused } => {
                let refused = refused_in(part, refused);
                out.acked.extend(part.iter().filter(|i| !refused.iter().any(|(r, _)| r == *i)));
                out.rejected.extend(refused);
            }
            RetryAction::RefusedSome { refused } => {
                let refused = refused_in(part, refused);
                if refused.is_empty() {
                    // Nothing applied and no one to blame: sending again would be refused again.
                    return Err(self.destination.explain(attempt));
                }
                let rest: Vec<usize> = part.iter().copied().filter(|i| !refused.iter().any(|(r, _)| r == i)).collect();
                tracing::debug!(
                    refused = refused.len(),
                    again = rest.len(),
                    "records refused; sending the others again"
                );
                out.rejected.extend(refused);
                if !rest.is_empty() {
                    pending.push(rest);
                }
            }
            RetryAction::Split if part.len() > 1 => {
                tracing::debug!(records = part.len(), reason = %self.destination.explain(attempt), "splitting batch");
                push_halves(pending, part.to_vec());
            }
            RetryAction::Split | RetryAction::Reject => {
                let reason = self.destination.explain(attempt);
                out.rejected.extend(part.iter().map(|&i| (i, reason.clone())));
            }
            RetryAction::Fatal | RetryAction::Retry { .. } => return Err(self.destination.explain(attempt)),
        }
        Ok(())
    }
}
