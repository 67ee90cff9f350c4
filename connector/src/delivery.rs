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

use crate::destination::{Attempt, Destination, PreparedRequest};
use crate::pacing::Pacer;
use crate::record::Change;
use crate::retry::{backoff, RetryAction};
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
                        self.pacer.slow_down(sent_at);
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
                self.pacer.hold(delay);
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

/// The refused records of a reply, by their position in the batch; a position outside the
/// request is ignored.
fn refused_in(part: &[usize], refused: Vec<(usize, String)>) -> Vec<(usize, String)> {
    refused
        .into_iter()
        .filter_map(|(i, reason)| part.get(i).map(|&at| (at, reason)))
        .collect()
}

fn push_halves(pending: &mut Vec<Vec<usize>>, mut part: Vec<usize>) {
    let second = part.split_off(part.len() / 2);
    // Pushed in reverse so the first half is tried first.
    pending.push(second);
    pending.push(part);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::{Capabilities, DestinationError};
    use crate::record::Record;
    use crate::retry::Attempt;

    /// A destination whose 200 replies list the ids it refused, as `{"refused":{"id":"why"}}`,
    /// and which reads them itself, as a destination with per-record errors does. With
    /// `applies_none`, such a reply applied nothing (as a profiles 403 does), and the requests
    /// it saw are kept.
    #[derive(Default)]
    struct RefusesSome {
        applies_none: bool,
        seen: std::sync::Mutex<Vec<Vec<String>>>,
    }

    #[async_trait::async_trait]
    impl Destination for RefusesSome {
        fn describe(&self) -> String {
            "refuses some".into()
        }

        fn capabilities(&self) -> Capabilities {
            Capabilities::plain_for_tests(10)
        }

        fn prepare(&self, records: &[&Change]) -> Result<PreparedRequest, DestinationError> {
            let ids: Vec<&str> = records.iter().map(|r| r.id()).collect();
            Ok(PreparedRequest {
                method: "POST",
                url: "http://refuses.invalid/".into(),
                body: serde_json::to_vec(&ids).map_err(DestinationError::Encode)?,
                records: records.len(),
                run: None,
            })
        }

        async fn send(&self, request: &PreparedRequest) -> Attempt {
            let ids: Vec<String> = serde_json::from_slice(&request.body).unwrap_or_default();
            self.seen.lock().expect("lock").push(ids.clone());
            let refused: serde_json::Map<String, serde_json::Value> = ids
                .iter()
                .filter(|id| id.starts_with("bad"))
                .map(|id| (id.clone(), serde_json::Value::from(format!("{id} has no email"))))
                .collect();
            Attempt::Response {
                status: 200,
                retry_after: None,
                body: serde_json::json!({ "ids": ids, "refused": refused }).to_string(),
            }
        }

        fn classify(&self, _request: &PreparedRequest, attempt: &Attempt) -> RetryAction {
            let Attempt::Response { status: 200, body, .. } = attempt else {
                return crate::retry::classify(attempt);
            };
            let reply: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            let ids = reply["ids"].as_array().cloned().unwrap_or_default();
            let refused: Vec<(usize, String)> = ids
                .iter()
                .enumerate()
                .filter_map(|(i, id)| Some((i, reply["refused"][id.as_str()?].as_str()?.to_string())))
                .collect();
            if refused.is_empty() {
                RetryAction::Delivered
            } else if self.applies_none {
                RetryAction::RefusedSome { refused }
            } else {
                RetryAction::Partial { refused }
            }
        }
    }

    fn record(id: &str) -> Change {
        Change::Upsert(Record {
            id: id.into(),
            created_at: 0,
            attributes: Vec::new(),
        })
    }

    #[tokio::test]
    async fn a_partial_reply_rejects_the_records_it_names_and_acknowledges_the_rest() {
        let delivery = Delivery::new(
            Arc::new(RefusesSome::default()),
            Arc::new(Pacer::new(1_000_000)),
            Duration::from_secs(5),
        );
        let records: Vec<Change> = ["a", "bad1", "b", "bad2", "c"].into_iter().map(record).collect();
        let out = delivery.deliver(&records).await;
        assert_eq!(out.acked, vec![0, 2, 4]);
        assert_eq!(
            out.rejected,
            vec![(1, "bad1 has no email".to_string()), (3, "bad2 has no email".to_string())]
        );
        assert!(out.failed.is_empty() && out.fatal.is_none());
        assert_eq!(out.attempts, 1, "one request settled it, with no split and no retry");
    }

    #[tokio::test]
    async fn a_reply_that_refused_some_and_applied_none_rejects_those_and_sends_the_others_again_in_one_request() {
        let destination = Arc::new(RefusesSome {
            applies_none: true,
            ..RefusesSome::default()
        });
        let delivery = Delivery::new(destination.clone(), Arc::new(Pacer::new(1_000_000)), Duration::from_secs(5));
        let records: Vec<Change> = ["a", "bad1", "b", "bad2", "c"].into_iter().map(record).collect();
        let out = delivery.deliver(&records).await;
        let mut acked = out.acked.clone();
        acked.sort_unstable();
        assert_eq!(acked, vec![0, 2, 4]);
        assert_eq!(
            out.rejected,
            vec![(1, "bad1 has no email".to_string()), (3, "bad2 has no email".to_string())]
        );
        assert!(out.failed.is_empty() && out.fatal.is_none());
        let seen = destination.seen.lock().expect("lock").clone();
        assert_eq!(
            seen,
            vec![vec!["a", "bad1", "b", "bad2", "c"], vec!["a", "b", "c"]],
            "the others go again together"
        );
    }

    /// A destination that gives every request the same answer, and notes when each started.
    struct Answers {
        status: u16,
        retry_after: Option<Duration>,
        started: std::sync::Mutex<Vec<tokio::time::Instant>>,
    }

    impl Answers {
        fn with(status: u16, retry_after: Option<Duration>) -> Answers {
            Answers {
                status,
                retry_after,
                started: Default::default(),
            }
        }
    }

    #[async_trait::async_trait]
    impl Destination for Answers {
        fn describe(&self) -> String {
            format!("answers {}", self.status)
        }

        fn capabilities(&self) -> Capabilities {
            Capabilities::plain_for_tests(10)
        }

        fn prepare(&self, records: &[&Change]) -> Result<PreparedRequest, DestinationError> {
            Ok(PreparedRequest {
                method: "POST",
                url: "http://answers.invalid/".into(),
                body: Vec::new(),
                records: records.len(),
                run: None,
            })
        }

        async fn send(&self, _request: &PreparedRequest) -> Attempt {
            self.started.lock().expect("lock").push(tokio::time::Instant::now());
            Attempt::Response {
                status: self.status,
                retry_after: self.retry_after,
                body: String::new(),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_retry_budget_fails_the_batch_and_holds_no_one_else() {
        let pacer = Arc::new(Pacer::new(1_000_000));
        // Every request is asked to come back in a day.
        let asks_for_a_day = Answers::with(429, Some(Duration::from_secs(86_400)));
        let delivery = Delivery::new(Arc::new(asks_for_a_day), pacer.clone(), Duration::from_secs(60));
        let started = tokio::time::Instant::now();
        let out = delivery.deliver(&[record("a")]).await;
        assert!(out.fatal.as_deref().is_some_and(|f| f.contains("unreachable")), "{:?}", out.fatal);
        assert_eq!(out.failed, vec![0]);
        // Another sync of the same credential goes on at once: the day was never held.
        pacer.ready().await;
        assert!(started.elapsed() < Duration::from_secs(60), "held for {:?}", started.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_waits_for_the_lock_to_be_proven_like_a_first_request() {
        let destination = Arc::new(Answers::with(503, None));
        let proven_until = tokio::time::Instant::now() + Duration::from_secs(1);
        let mut delivery = Delivery::new(destination.clone(), Arc::new(Pacer::new(1_000_000)), Duration::from_secs(600));
        // The lock was last proven a second from now, and never again (a paused holder).
        delivery.gate = Some(LockWatch::proven_until(proven_until));
        let sent = tokio::time::timeout(Duration::from_secs(300), delivery.deliver(&[record("a")])).await;
        assert!(sent.is_err(), "the batch waits for a proof that never comes");
        let started = destination.started.lock().expect("lock").clone();
        assert!(!started.is_empty(), "the first attempt went out while the lock was proven");
        let late: Vec<Duration> = started
            .iter()
            .filter(|at| **at >= proven_until)
            .map(|at| at.duration_since(proven_until))
            .collect();
        assert!(late.is_empty(), "retries started this long after the last proof: {late:?}");
    }
}
