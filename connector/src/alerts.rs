//! Alerts about runs: decided by a pure function of the run and the sync's recent
//! history, then POSTed as JSON to the webhook of the mapping's `alerts:` block (or the
//! worker config's). A webhook that cannot be reached is logged; it never fails a run.

use std::time::Duration;

use serde::Serialize;

use crate::config::AlertsConfig;
use crate::state::{RunCounts, RunRecord, RunStatus, StateStore};
use crate::sync::RunReport;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    RunFailed,
    RejectedRatio,
    FullResync,
    RowCountChange,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::RunFailed => "run_failed",
            AlertKind::RejectedRatio => "rejected_ratio",
            AlertKind::FullResync => "full_resync",
            AlertKind::RowCountChange => "row_count_change",
        }
    }
}

/// The run an alert is about, as the webhook receives it.
#[derive(Clone, Debug, Serialize)]
pub struct AlertRun {
    pub id: Option<i64>,
    pub status: RunStatus,
    pub counts: RunCounts,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub full_resync: bool,
}

/// The JSON body POSTed to the webhook.
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    pub alert: AlertKind,
    pub sync: String,
    /// One line for a person.
    pub message: String,
    pub run: AlertRun,
    /// The worker (`host:pid`) or `cli`.
    pub raised_by: String,
    /// RFC 3339, UTC.
    pub at: String,
}

/// The alerts a run raises. `earlier` holds the sync's runs before this one, newest first.
pub fn evaluate(config: &AlertsConfig, report: &RunReport, earlier: &[RunRecord], raised_by: &str) -> Vec<Alert> {
    let mut out = Vec::new();
    let c = &report.counts;
    let mut raise = |alert: AlertKind, message: String| {
        out.push(Alert {
            alert,
            sync: report.sync.clone(),
            message,
            run: AlertRun {
                id: report.run_id,
                status: report.status,
                counts: report.counts.clone(),
                error: report.error.clone(),
                duration_ms: report.duration_ms,
                full_resync: report.full_resync,
            },
            raised_by: raised_by.to_string(),
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
    };
    if config.on_failure && report.status == RunStatus::Failed {
        raise(
            AlertKind::RunFailed,
            format!("{} failed: {}", report.sync, report.error.as_deref().unwrap_or("no error recorded")),
        );
    }
    if let Some(threshold) = config.rejected_ratio_above {
        let rejected = c.invalid + c.rejected;
        if c.source > 0 {
            let ratio = rejected as f64 / c.source as f64;
            if ratio > threshold {
                raise(
                    AlertKind::RejectedRatio,
                    format!(
                        "{}: {rejected} of {} source rows rejected ({:.1}%, over {:.1}%)",
                        report.sync,
                        c.source,
                        ratio * 100.0,
                        threshold * 100.0
                    ),
                );
            }
        }
    }
    let completed_before = earlier.iter().any(|r| r.status == RunStatus::Completed);
    // The first run of a sync sends everything by nature; only a later one is a *re*sync.
    if config.on_full_resync && report.full_resync && completed_before && report.status != RunStatus::Failed {
        raise(
            AlertKind::FullResync,
            format!(
                "{}: full resync, {} records planned regardless of state (--full, a reset, or lost state)",
                report.sync,
                c.new + c.changed
            ),
        );
    }
    if let Some(rule) = config.row_count_change {
        // A run that did not complete may have stopped before counting its source.
        let recent: Vec<u64> = earlier
            .iter()
            .filter(|r| r.status == RunStatus::Completed)
            .take(rule.last_runs)
            .map(|r| r.counts.source)
            .collect();
        if report.status == RunStatus::Completed && !recent.is_empty() {
            let average = recent.iter().sum::<u64>() as f64 / recent.len() as f64;
            let change = if average == 0.0 {
                if c.source == 0 {
                    0.0
                } else {
                    f64::INFINITY
                }
            } else {
                (c.source as f64 - average).abs() / average * 100.0
            };
            if change > rule.percent_above {
                raise(
                    AlertKind::RowCountChange,
                    format!(
                        "{}: {} source rows, {:.0}% away from the average of {:.1} over the last {} completed run{} (limit {}%)",
                        report.sync,
                        c.source,
                        change,
                        average,
                        recent.len(),
                        if recent.len() == 1 { "" } else { "s" },
                        rule.percent_above
                    ),
                );
            }
        }
    }
    out
}

/// POSTs one alert, retrying twice; the error names no URL, as the URL may hold a token.
pub async fn post(client: &reqwest::Client, config: &AlertsConfig, alert: &Alert) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        }
        match client
            .post(config.webhook_url.expose())
            .timeout(Duration::from_secs(10))
            .json(alert)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("the webhook answered HTTP {}", r.status().as_u16()),
            Err(e) => {
                last = if e.is_timeout() {
                    "the webhook timed out".to_string()
                } else if e.is_connect() {
                    "cannot connect to the webhook".to_string()
                } else {
                    "the webhook request failed".to_string()
                }
            }
        }
    }
    Err(last)
}

/// Evaluates and sends the alerts of a finished run; returns each alert's kind and whether
/// the webhook took it.
pub async fn after_run(
    store: &dyn StateStore,
    client: &reqwest::Client,
    config: &AlertsConfig,
    report: &RunReport,
    raised_by: &str,
) -> Vec<(AlertKind, bool)> {
    let wanted = config.row_count_change.map(|r| r.last_runs).unwrap_or(0).max(5);
    let earlier: Vec<RunRecord> = match store.runs(Some(&report.sync), wanted * 2 + 1).await {
        Ok(runs) => runs.into_iter().filter(|r| Some(r.id) != report.run_id).collect(),
        Err(e) => {
            tracing::warn!(sync = %report.sync, error = %e, "cannot read run history for alerts");
            Vec::new()
        }
    };
    let mut out = Vec::new();
    for alert in evaluate(config, report, &earlier, raised_by) {
        let delivered = match post(client, config, &alert).await {
            Ok(()) => {
                tracing::info!(sync = %alert.sync, alert = alert.alert.as_str(), "alert sent");
                true
            }
            Err(e) => {
                tracing::error!(sync = %alert.sync, alert = alert.alert.as_str(), error = %e, "alert not delivered");
                false
            }
        };
        out.push((alert.alert, delivered));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::SecretString;
    use crate::config::RowCountChange;

    fn config() -> AlertsConfig {
        AlertsConfig {
            webhook_url: SecretString::new("http://127.0.0.1:9/hook"),
            on_failure: true,
            rejected_ratio_above: Some(0.1),
            on_full_resync: true,
            row_count_change: Some(RowCountChange {
                percent_above: 50.0,
                last_runs: 3,
            }),
        }
    }

    fn report(status: RunStatus, source: u64, invalid: u64, full_resync: bool) -> RunReport {
        RunReport {
            sync: "users".into(),
            run_id: Some(10),
            status,
            counts: RunCounts {
                source,
                invalid,
                new: source - invalid,
                ..RunCounts::default()
            },
            error: (status == RunStatus::Failed).then(|| "destination: HTTP 401".to_string()),
            duration_ms: 5,
            full_resync,
        }
    }

    fn earlier(status: RunStatus, source: u64) -> RunRecord {
        RunRecord {
            id: 1,
            sync: "users".into(),
            started_at: 0,
            ended_at: Some(1),
            status,
            full_resync: false,
            counts: RunCounts {
                source,
                ..RunCounts::default()
            },
            error: None,
            origin: crate::state::RunOrigin::Schedule,
            scheduled_for: None,
            worker: None,
        }
    }

    fn kinds(alerts: Vec<Alert>) -> Vec<AlertKind> {
        alerts.into_iter().map(|a| a.alert).collect()
    }

    #[test]
    fn each_rule_fires_on_its_own_condition_only() {
        use AlertKind::*;
        use RunStatus::*;
        let history = [earlier(Completed, 100), earlier(Completed, 100), earlier(Failed, 0)];
        let only_failed = [earlier(Failed, 0)];
        let cases: Vec<(&str, RunReport, &[RunRecord], Vec<AlertKind>)> = vec![
            ("a quiet run", report(Completed, 100, 0, false), &history, vec![]),
            ("a failed run", report(Failed, 0, 0, false), &history, vec![RunFailed]),
            ("10% rejected is not over 10%", report(Completed, 100, 10, false), &history, vec![]),
            ("11% rejected", report(Completed, 100, 11, false), &history, vec![RejectedRatio]),
            (
                "a resync after completed runs",
                report(Completed, 100, 0, true),
                &history,
                vec![FullResync],
            ),
            ("the first run is no resync", report(Completed, 100, 0, true), &[], vec![]),
            ("+50% is not over 50%", report(Completed, 150, 0, false), &history, vec![]),
            ("+51%", report(Completed, 151, 0, false), &history, vec![RowCountChange]),
            ("-60%", report(Completed, 40, 0, false), &history, vec![RowCountChange]),
            (
                "no completed history, no average",
                report(Completed, 1000, 0, false),
                &only_failed,
                vec![],
            ),
        ];
        for (what, report, history, want) in cases {
            assert_eq!(kinds(evaluate(&config(), &report, history, "test")), want, "{what}");
        }
    }

    #[test]
    fn the_average_uses_only_the_last_n_completed_runs() {
        let mut history = vec![earlier(RunStatus::Completed, 100); 3];
        history.push(earlier(RunStatus::Completed, 10_000));
        let alerts = evaluate(&config(), &report(RunStatus::Completed, 100, 0, false), &history, "test");
        assert!(alerts.is_empty(), "the 4th run back is outside last_runs = 3");
    }

    #[test]
    fn disabled_rules_stay_quiet() {
        let quiet = AlertsConfig {
            on_failure: false,
            rejected_ratio_above: None,
            on_full_resync: false,
            row_count_change: None,
            ..config()
        };
        let history = [earlier(RunStatus::Completed, 1)];
        assert!(evaluate(&quiet, &report(RunStatus::Failed, 100, 90, true), &history, "t").is_empty());
    }
}
