//! What a run would cost at the destination before it starts: its requests, and how long they
//! take at the configured pace. A first sync of 500,000 users at Enterpret's pace is hours of
//! sending; a team should read that in `ebb preview`, not learn it from a run that never ends.

use std::time::Duration;

use serde::Serialize;

use super::SyncJob;
use crate::destination::Capabilities;

/// A run's requests and their time, for `preview` (`cost` in `--json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cost {
    pub requests: u64,
    pub records_per_request: u64,
    pub requests_per_minute: u64,
    /// How long the requests take at `requests_per_minute`, to the second.
    pub eta_secs: u64,
    /// With a box (`max_run:`, or the worker's default for a scheduled sync): how many boxed
    /// runs the requests take, rounded up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<u64>,
}

impl Cost {
    /// The cost of upserting `to_send` records and deleting `to_delete` identities.
    pub fn of(sync: &SyncJob, to_send: usize, to_delete: usize) -> Cost {
        let run_box = sync.mapping.run_box(chrono::Utc::now());
        Cost::with(
            &sync.destination.capabilities(),
            sync.mapping.delivery().requests_per_minute,
            run_box,
            (to_send, to_delete),
        )
    }

    fn with(
        capabilities: &Capabilities,
        requests_per_minute: u32,
        run_box: Option<Duration>,
        (to_send, to_delete): (usize, usize),
    ) -> Cost {
        let per_request = capabilities.max_batch_records.max(1);
        let requests = (to_send.div_ceil(per_request) + to_delete.div_ceil(capabilities.deletes_per_request.max(1))) as u64;
        let rpm = u64::from(requests_per_minute.max(1));
        let eta_secs = (requests as f64 * 60.0 / rpm as f64).round() as u64;
        Cost {
            requests,
            records_per_request: per_request as u64,
            requests_per_minute: rpm,
            eta_secs,
            runs: run_box
                .filter(|_| requests > 0)
                .map(|b| eta_secs.div_ceil(b.as_secs().max(1)).max(1)),
        }
    }

    /// `≈ 33,334 requests · 5 h 33 min at 100 requests/min (15 records/request)`.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "≈ {} requests · {} at {} requests/min ({} records/request)",
            grouped(self.requests),
            spoken_duration(self.eta_secs),
            grouped(self.requests_per_minute),
            self.records_per_request
        );
        if let Some(runs) = self.runs {
            line.push_str(&format!(" · {} boxed run{}", grouped(runs), if runs == 1 { "" } else { "s" }));
        }
        line
    }
}

/// `33334` as `33,334`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `5 h 33 min`, `2 min 5 s`, `40 s`: the two largest units.
pub fn spoken_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, _) if s == 0 => format!("{m} min"),
        (0, _) => format!("{m} min {s} s"),
        (_, 0) => format!("{h} h"),
        _ => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enterpret() -> Capabilities {
        Capabilities {
            deletes_per_request: 1,
            ..Capabilities::plain_for_tests(15)
        }
    }

    #[test]
    fn a_first_sync_of_half_a_million_users_at_enterprets_pace() {
        let cost = Cost::with(&enterpret(), 100, Some(Duration::from_secs(900)), (500_000, 0));
        assert_eq!(
            cost,
            Cost {
                requests: 33_334,
                records_per_request: 15,
                requests_per_minute: 100,
                eta_secs: 20_000,
                runs: Some(23),
            }
        );
        assert_eq!(
            cost.summary(),
            "≈ 33,334 requests · 5 h 33 min at 100 requests/min (15 records/request) · 23 boxed runs"
        );
        let unboxed = Cost::with(&enterpret(), 600, None, (16, 3));
        assert_eq!(
            (unboxed.requests, unboxed.eta_secs, unboxed.runs),
            (5, 1, None),
            "2 upserts and 3 deletes"
        );
        assert_eq!(
            Cost::with(&enterpret(), 100, Some(Duration::from_secs(60)), (0, 0)).runs,
            None,
            "nothing to send"
        );
        assert_eq!(spoken_duration(125), "2 min 5 s");
        assert_eq!(spoken_duration(40), "40 s");
        assert_eq!(spoken_duration(7200), "2 h");
        assert_eq!(
            (grouped(0), grouped(999), grouped(1_000), grouped(1_234_567)),
            ("0".into(), "999".into(), "1,000".into(), "1,234,567".into())
        );
    }
}
