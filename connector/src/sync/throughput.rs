//! How far pass 2 has got: records done, the rate, and the time left, for the progress bar,
//! the worker's `/syncs` and its log.
//!
//! The rate is measured from the first batch that came back, not from the start: the first
//! request goes out at once and the pace applies only from the second, so counting from the
//! start would overstate the rate of a paced run by a whole batch.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// Pass 2's progress as a reader sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProgressSnapshot {
    pub total: u64,
    /// Acknowledged, rejected or given up on.
    pub done: u64,
    /// Records a second since the first batch came back; `None` until a second one has.
    pub per_second: Option<f64>,
    /// The estimated time left, in whole seconds.
    pub eta_secs: Option<u64>,
}

impl ProgressSnapshot {
    /// The progress of `done` of `total` records at `per_second`, with the time left that rate gives.
    pub fn new(total: u64, done: u64, per_second: Option<f64>) -> ProgressSnapshot {
        let left = total.saturating_sub(done);
        let eta_secs = match per_second {
            _ if left == 0 => Some(0),
            Some(rate) if rate > 0.0 => Some((left as f64 / rate).round() as u64),
            _ => None,
        };
        ProgressSnapshot {
            total,
            done,
            per_second,
            eta_secs,
        }
    }

    /// `1,200/10,000 records, 15.0/s, about 9m 46s left`.
    pub fn line(&self) -> String {
        let mut line = format!("{}/{} records", self.done, self.total);
        if let Some(rate) = self.per_second {
            line.push_str(&format!(", {rate:.1}/s"));
        }
        if let Some(eta) = self.eta_secs {
            let eta = humantime::format_duration(Duration::from_secs(eta));
            line.push_str(&format!(", about {eta} left"));
        }
        line
    }
}

#[derive(Clone, Debug)]
pub struct Throughput {
    total: u64,
    done: u64,
    /// When the first batch came back, and how many records it settled.
    first: Option<(Instant, u64)>,
}

impl Throughput {
    pub fn new(total: u64) -> Throughput {
        Throughput {
            total,
            done: 0,
            first: None,
        }
    }

    pub fn advance(&mut self, records: u64) {
        self.done = (self.done + records).min(self.total);
        if self.first.is_none() {
            self.first = Some((Instant::now(), self.done));
        }
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        let per_second = self.first.and_then(|(at, first)| {
            let secs = at.elapsed().as_secs_f64();
            (self.done > first && secs > 0.0).then(|| (self.done - first) as f64 / secs)
        });
        ProgressSnapshot::new(self.total, self.done, per_second)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::destination::{Attempt, Capabilities, Destination, DestinationError, PreparedRequest};
    use crate::record::{Change, Record};
    use crate::ship::pacing::Pacer;
    use crate::ship::Delivery;

    /// Acknowledges every request after 80 ms.
    struct Acks;

    #[async_trait::async_trait]
    impl Destination for Acks {
        fn describe(&self) -> String {
            "acks".into()
        }

        fn capabilities(&self) -> Capabilities {
            Capabilities::plain_for_tests(15)
        }

        fn prepare(&self, changes: &[&Change]) -> Result<PreparedRequest, DestinationError> {
            Ok(PreparedRequest {
                method: "POST",
                url: "http://acks.invalid/".into(),
                body: Vec::new(),
                records: changes.len(),
                run: None,
            })
        }

        async fn send(&self, _request: &PreparedRequest) -> Attempt {
            tokio::time::sleep(Duration::from_millis(80)).await;
            Attempt::Response {
                status: 200,
                retry_after: None,
                body: String::new(),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_eta_of_a_paced_run_is_within_a_fifth_of_its_real_duration() {
        let delivery = Delivery::new(Arc::new(Acks), Arc::new(Pacer::new(30)), Duration::from_secs(60));
        let batch: Vec<Change> = (0..15)
            .map(|i| {
                Change::Upsert(Record {
                    id: format!("u{i}"),
                    created_at: 0,
                    attributes: Vec::new(),
                })
            })
            .collect();
        let batches = 40u64;
        let mut throughput = Throughput::new(batches * 15);
        let started = Instant::now();
        let mut estimate = None;
        for n in 1..=batches {
            let outcome = delivery.deliver(&batch).await;
            throughput.advance(outcome.acked.len() as u64);
            if n == batches / 4 {
                let eta = throughput.snapshot().eta_secs.expect("an eta after ten batches");
                estimate = Some(started.elapsed().as_secs_f64() + eta as f64);
            }
        }
        let real = started.elapsed().as_secs_f64();
        let estimate = estimate.expect("sampled");
        assert!(real > 75.0, "30 a minute: 40 requests take over a minute and a quarter ({real} s)");
        assert!((estimate - real).abs() <= real * 0.2, "estimated {estimate:.1} s, took {real:.1} s");
        let done = throughput.snapshot();
        assert_eq!((done.done, done.eta_secs), (600, Some(0)));
    }

    #[test]
    fn the_line_reads_as_a_sentence() {
        let snapshot = ProgressSnapshot {
            total: 10_000,
            done: 1_200,
            per_second: Some(15.0),
            eta_secs: Some(586),
        };
        assert_eq!(snapshot.line(), "1200/10000 records, 15.0/s, about 9m 46s left");
        let early = ProgressSnapshot {
            per_second: None,
            eta_secs: None,
            ..snapshot
        };
        assert_eq!(early.line(), "1200/10000 records");
    }
}
