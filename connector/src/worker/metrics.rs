//! The worker's Prometheus metrics, served at `GET /metrics`.
//!
//! Per sync: runs by status, records by outcome, the last run's duration and the last
//! success. Per destination: request latency and responses by status class, measured by
//! the [`AttemptObserver`] every delivery calls, so no destination knows about metrics.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::destination::Attempt;
use crate::ship::AttemptObserver;
use crate::state::RunStatus;
use crate::sync::RunReport;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    pub sync: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub sync: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecordLabels {
    pub sync: String,
    /// `sent`, `rejected`, `failed`, `unchanged`, `invalid` or `changed_without_cursor`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestinationLabels {
    pub destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    pub destination: String,
    /// `2xx`, `429`, `4xx`, `5xx` or `transport`.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub sync: String,
    pub alert: String,
    pub delivered: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MappingLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    pub reason: String,
}

/// The series of the worker itself rather than of its syncs.
fn register_worker_series(registry: &mut Registry) -> (Family<MappingLabels, Gauge>, Family<RefusalLabels, Counter>) {
    let mappings = Family::<MappingLabels, Gauge>::default();
    registry.register("worker_mappings", "Mappings in the folder, valid or invalid", mappings.clone());
    let refused = Family::<RefusalLabels, Counter>::default();
    registry.register(
        "worker_http_refused",
        "Requests to the worker turned away: a missing or wrong token (401), or a browser's change without the page's CSRF token (403)",
        refused.clone(),
    );
    (mappings, refused)
}

fn latency_histogram() -> Histogram {
    // 5 ms to about 20 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    records: Family<RecordLabels, Counter>,
    last_duration: Family<SyncLabels, Gauge<f64, AtomicU64>>,
    last_success: Family<SyncLabels, Gauge>,
    running: Family<SyncLabels, Gauge>,
    request_duration: Family<DestinationLabels, Histogram, fn() -> Histogram>,
    responses: Family<ResponseLabels, Counter>,
    alerts: Family<AlertLabels, Counter>,
    mappings: Family<MappingLabels, Gauge>,
    refused: Family<RefusalLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ebb");
        let runs = Family::<RunLabels, Counter>::default();
        let records = Family::<RecordLabels, Counter>::default();
        let last_duration = Family::<SyncLabels, Gauge<f64, AtomicU64>>::default();
        let last_success = Family::<SyncLabels, Gauge>::default();
        let running = Family::<SyncLabels, Gauge>::default();
        let request_duration = Family::<DestinationLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let responses = Family::<ResponseLabels, Counter>::default();
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register("sync_runs", "Runs finished, by sync and status", runs.clone());
        registry.register(
            "sync_records",
            "Records by sync and outcome: sent (acknowledged), deleted (acknowledged deletes), suppressed (not sent: on the suppression list), rejected (by the destination), failed (not delivered), unchanged, invalid (rejected by the mapping), changed_without_cursor (found by a full diff of a cursor sync: changed, but their cursor had not moved)",
            records.clone(),
        );
        registry.register_with_unit(
            "sync_last_run_duration",
            "Duration of the sync's last run",
            Unit::Seconds,
            last_duration.clone(),
        );
        registry.register_with_unit(
            "sync_last_success_timestamp",
            "When the sync's last completed run ended, Unix time",
            Unit::Seconds,
            last_success.clone(),
        );
        registry.register("sync_running", "1 while this worker runs the sync", running.clone());
        registry.register_with_unit(
            "destination_request_duration",
            "Latency of requests to the destination, one attempt each",
            Unit::Seconds,
            request_duration.clone(),
        );
        registry.register(
            "destination_responses",
            "Destination responses by status class (2xx, 429, 4xx, 5xx, transport)",
            responses.clone(),
        );
        registry.register(
            "alerts",
            "Alerts raised, by sync, kind and whether the webhook took them",
            alerts.clone(),
        );
        let (mappings, refused) = register_worker_series(&mut registry);
        Metrics {
            registry,
            runs,
            records,
            last_duration,
            last_success,
            running,
            request_duration,
            responses,
            alerts,
            mappings,
            refused,
        }
    }

    /// A request turned away, by why: `missing`, `wrong` (the token) or `csrf`.
    pub fn record_refusal(&self, reason: &str) {
        self.refused
            .get_or_create(&RefusalLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition, which Prometheus scrapes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Makes a sync's series exist at zero, so dashboards see it before its first run.
    pub fn register_sync(&self, sync: &str) {
        for outcome in ["sent", "deleted", "suppressed", "rejected", "failed", "unchanged", "invalid"] {
            let _ = self.records.get_or_create(&RecordLabels {
                sync: sync.to_string(),
                outcome: outcome.to_string(),
            });
        }
        let _ = self.running.get_or_create(&SyncLabels { sync: sync.to_string() });
    }

    pub fn set_running(&self, sync: &str, running: bool) {
        self.running
            .get_or_create(&SyncLabels { sync: sync.to_string() })
            .set(i64::from(running));
    }

    pub fn set_mappings(&self, valid: usize, invalid: usize) {
        for (state, n) in [("valid", valid), ("invalid", invalid)] {
            self.mappings
                .get_or_create(&MappingLabels { state: state.to_string() })
                .set(n as i64);
        }
    }

    pub fn record_run(&self, report: &RunReport) {
        let sync = report.sync.clone();
        self.runs
            .get_or_create(&RunLabels {
                sync: sync.clone(),
                status: report.status.as_str().to_string(),
            })
            .inc();
        let c = &report.counts;
        for (outcome, n) in [
            ("sent", c.sent),
            ("deleted", c.deleted),
            ("suppressed", c.suppressed),
            ("rejected", c.rejected),
            ("failed", c.failed),
            ("unchanged", c.unchanged),
            ("invalid", c.invalid),
        ] {
            self.records
                .get_or_create(&RecordLabels {
                    sync: sync.clone(),
                    outcome: outcome.to_string(),
                })
                .inc_by(n);
        }
        if let Some(n) = c.changed_without_cursor {
            self.records
                .get_or_create(&RecordLabels {
                    sync: sync.clone(),
                    outcome: "changed_without_cursor".to_string(),
                })
                .inc_by(n);
        }
        let labels = SyncLabels { sync };
        self.last_duration.get_or_create(&labels).set(report.duration_ms as f64 / 1000.0);
        // A continued run succeeded too: it sent what its box allowed, and the next goes on.
        if matches!(report.status, RunStatus::Completed | RunStatus::Continued) {
            self.last_success.get_or_create(&labels).set(chrono::Utc::now().timestamp());
        }
    }

    pub fn record_alert(&self, sync: &str, alert: &str, delivered: bool) {
        self.alerts
            .get_or_create(&AlertLabels {
                sync: sync.to_string(),
                alert: alert.to_string(),
                delivered: delivered.to_string(),
            })
            .inc();
    }

    fn record_attempt(&self, destination: &str, seconds: f64, attempt: &Attempt) {
        self.request_duration
            .get_or_create(&DestinationLabels {
                destination: destination.to_string(),
            })
            .observe(seconds);
        let class = match attempt.status() {
            None => "transport",
            Some(429) => "429",
            Some(s) if (200..300).contains(&s) => "2xx",
            Some(s) if (500..600).contains(&s) => "5xx",
            Some(s) if (400..500).contains(&s) => "4xx",
            Some(_) => "other",
        };
        self.responses
            .get_or_create(&ResponseLabels {
                destination: destination.to_string(),
                status: class.to_string(),
            })
            .inc();
    }
}

impl AttemptObserver for Metrics {
    fn attempted(&self, destination: &str, seconds: f64, attempt: &Attempt) {
        self.record_attempt(destination, seconds, attempt);
    }
}
