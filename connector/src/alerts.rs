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
    GuardBlocked,
    BacklogOver,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::RunFailed => "run_failed",
            AlertKind::RejectedRatio => "rejected_ratio",
            AlertKind::FullResync => "full_resync",
            AlertKind::RowCountChange => "row_count_change",
            AlertKind::GuardBlocked => "guard_blocked",
            AlertKind::BacklogOver => "backlog_over",
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
    [
        run_failed(config, report),
        guard_blocked(report),
        rejected_ratio(config, report),
        full_resync(config, report, earlier),
        row_count_change(config, report, earlier),
        backlog_over(config, report),
    ]
    .into_iter()
    .flatten()
    .map(|(alert, message)| Alert {
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
    })
    .collect()
}

/// One rule's verdict: the alert and its message, or nothing.
type Raised = Option<(AlertKind, String)>;

fn run_failed(config: &AlertsConfig, report: &RunReport) -> Raised {
    (config.on_failure && report.status == RunStatus::Failed).then(|| {
        let error = report.error.as_deref().unwrap_or("no error recorded");
        (AlertKind::RunFailed, format!("{} failed: {error}", report.sync))
    })
}

/// A time-boxed run left more than `backlog_over` of sending for the runs after it.
fn backlog_over(config: &AlertsConfig, report: &RunReport) -> Raised {
    let limit = config.backlog_over?;
    let (left, eta) = (report.counts.left?, report.counts.eta_secs?);
    (eta > limit.as_secs()).then(|| {
        let message = format!(
            "{}: {left} records left, about {} to clear at the configured pace (over {})",
            report.sync,
            crate::sync::cost::spoken_duration(eta),
            crate::sync::cost::spoken_duration(limit.as_secs())
        );
        (AlertKind::BacklogOver, message)
    })
}

/// Always raised where alerts are configured: a blocked run waits for a person.
fn guard_blocked(report: &RunReport) -> Raised {
    (report.status == RunStatus::Blocked).then(|| {
        let why = report.error.as_deref().unwrap_or("blocked by a guard");
        (AlertKind::GuardBlocked, format!("{} was {why}", report.sync))
    })
}

fn rejected_ratio(config: &AlertsConfig, report: &RunReport) -> Raised {
    let threshold = config.rejected_ratio_above?;
    let c = &report.counts;
    let rejected = c.invalid + c.rejected;
    if c.source == 0 {
        return None;
    }
    let ratio = rejected as f64 / c.source as f64;
    (ratio > threshold).then(|| {
        let message = format!(
            "{}: {rejected} of {} source rows rejected ({:.1}%, over {:.1}%)",
            report.sync,
            c.source,
            ratio * 100.0,
            threshold * 100.0
        );
        (AlertKind::RejectedRatio, message)
    })
}

fn full_resync(config: &AlertsConfig, report: &RunReport, earlier: &[RunRecord]) -> Raised {
    let completed_before = earlier.iter().any(|r| r.status == RunStatus::Completed);
    // The first run of a sync sends everything by nature; only a later one is a *re*sync.
    if !(config.on_full_resync && report.full_resync && completed_before && report.status != RunStatus::Failed) {
        return None;
    }
    let why = match &report.state_was_for {
        Some(other) => format!("the state was for {other}, not this destination"),
        None => "--full, a reset, or lost state".to_string(),
    };
    let planned = report.counts.new + report.counts.changed;
    let message = format!(
        "{}: full resync, {planned} records planned regardless of state ({why})",
        report.sync
    );
    Some((AlertKind::FullResync, message))
}

fn row_count_change(config: &AlertsConfig, report: &RunReport, earlier: &[RunRecord]) -> Raised {
    let rule = config.row_count_change?;
    let source = report.counts.source;
    // A run that did not complete may have stopped before counting its source.
    // A cursor run counts only the rows past its watermark: no measure of the source's size.
    let recent: Vec<u64> = earlier
        .iter()
        .filter(|r| r.status == RunStatus::Completed && !r.counts.narrowed)
        .take(rule.last_runs)
        .map(|r| r.counts.source)
        .collect();
    if report.status != RunStatus::Completed || report.counts.narrowed || recent.is_empty() {
        return None;
    }
    let average = recent.iter().sum::<u64>() as f64 / recent.len() as f64;
    let change = match (average == 0.0, source == 0) {
        (true, true) => 0.0,
        (true, false) => f64::INFINITY,
        (false, _) => (source as f64 - average).abs() / average * 100.0,
    };
    (change > rule.percent_above).then(|| {
        let message = format!(
            "{}: {source} source rows, {change:.0}% away from the average of {average:.1} over the last {} completed run{} (limit {}%)",
            report.sync,
            recent.len(),
            if recent.len() == 1 { "" } else { "s" },
            rule.percent_above
        );
        (AlertKind::RowCountChange, message)
    })
}

/// The alert webhook's client: it follows no redirect, which would carry the alert (and its
/// sync's details) to whatever host the redirect names.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()
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
            backlog_over: Some(Duration::from_secs(7200)),
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
            state_was_for: None,
            folders: None,
            cursor: None,
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
            progress: None,
            folders: None,
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
    fn a_backlog_over_the_limit_alerts_and_one_under_it_does_not() {
        let continued = |eta_secs| {
            let mut r = report(RunStatus::Continued, 100, 0, false);
            (r.counts.left, r.counts.eta_secs) = (Some(40_000), Some(eta_secs));
            r
        };
        let over = evaluate(&config(), &continued(7201), &[], "t");
        assert_eq!(kinds(over.clone()), vec![AlertKind::BacklogOver]);
        assert_eq!(
            over[0].message,
            "users: 40000 records left, about 2 h to clear at the configured pace (over 2 h)"
        );
        assert!(evaluate(&config(), &continued(7200), &[], "t").is_empty(), "2 h is not over 2 h");
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
            backlog_over: None,
            ..config()
        };
        let history = [earlier(RunStatus::Completed, 1)];
        assert!(evaluate(&quiet, &report(RunStatus::Failed, 100, 90, true), &history, "t").is_empty());
    }

    #[test]
    fn a_resync_because_the_destination_changed_says_so() {
        let mut config = config();
        config.on_full_resync = true;
        let mut resync = report(RunStatus::Completed, 10, 0, true);
        resync.state_was_for = Some("enterpret users at https://old.example".into());
        let alerts = evaluate(&config, &resync, &[earlier(RunStatus::Completed, 10)], "w:1");
        let full: Vec<&Alert> = alerts.iter().filter(|a| a.alert == AlertKind::FullResync).collect();
        assert_eq!(full.len(), 1);
        assert!(
            full[0]
                .message
                .contains("the state was for enterpret users at https://old.example, not this destination"),
            "{}",
            full[0].message
        );
    }

    #[test]
    fn a_blocked_run_raises_guard_blocked_with_the_guard_and_nothing_else() {
        let mut blocked = report(RunStatus::Blocked, 100, 0, false);
        blocked.error = Some("blocked by guard `max_deletes`: 7 deletes planned, over the limit of 5".into());
        let quiet = AlertsConfig {
            on_failure: true,
            ..config()
        };
        let raised = evaluate(&quiet, &blocked, &[], "t");
        let kinds: Vec<&str> = raised.iter().map(|a| a.alert.as_str()).collect();
        assert_eq!(kinds, ["guard_blocked"], "not run_failed as well");
        assert!(
            raised[0].message.contains("max_deletes") && raised[0].message.contains("7 deletes planned"),
            "{}",
            raised[0].message
        );
    }
}
