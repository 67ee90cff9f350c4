//! The request loop against destinations that give set answers: acknowledgements, partial
//! replies, splits, the retry budget and the lock's proof before every attempt.

use std::sync::Arc;
use std::time::Duration;

use super::pacing::Pacer;
use super::requests::*;
use crate::destination::{Attempt, Capabilities, Destination, DestinationError, PreparedRequest, RetryAction};
use crate::record::{Change, Record};
use crate::state::LockWatch;

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
            return crate::destination::reply::classify(attempt);
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
