//! The `alerts:` section of a mapping, and `ebb worker --config`, which holds the alerts and the
//! retention that apply to every sync.

use std::path::Path;
use std::time::Duration;

use serde_saphyr::Spanned;
use url::Url;

use super::env::Env;
use super::issue::{ConfigErrors, Loc};
use super::raw::{RawAlerts, RawWorkerConfig};
use super::secret::SecretString;
use super::validator::Validator;
use super::yaml;
use crate::quote::quote;

/// Where alerts about a sync's runs go, and what raises one.
#[derive(Clone, Debug)]
pub struct AlertsConfig {
    /// May carry a token (Slack's do), so it is a secret.
    pub webhook_url: SecretString,
    pub on_failure: bool,
    pub rejected_ratio_above: Option<f64>,
    pub on_full_resync: bool,
    pub row_count_change: Option<RowCountChange>,
    /// Alert when a continued run's backlog takes longer than this to clear.
    pub backlog_over: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowCountChange {
    pub percent_above: f64,
    pub last_runs: usize,
}

/// A validated `ebb worker --config` file.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub alerts: Option<AlertsConfig>,
    pub retention: Duration,
}

/// How long run history is kept unless the worker config says otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            alerts: None,
            retention: DEFAULT_RETENTION,
        }
    }
}

/// Reads and validates an `ebb worker --config` file.
pub fn load_worker_config(path: &Path, env: &dyn Env) -> Result<WorkerConfig, ConfigErrors> {
    let text = yaml::read(path, "the worker config")?;
    let raw: RawWorkerConfig = yaml::from_str(path, &text)?;
    let mut v = Validator::new(path, env);
    let alerts = raw.alerts.as_ref().and_then(|a| v.alerts(a));
    let retention = match &raw.retention {
        None => DEFAULT_RETENTION,
        Some(text) => match humantime::parse_duration(text.value.trim()) {
            Ok(d) if d >= Duration::from_secs(3600) => d,
            Ok(_) => {
                v.push(&Loc::of(text, "retention"), "must be at least 1h");
                DEFAULT_RETENTION
            }
            Err(e) => {
                v.push(
                    &Loc::of(text, "retention"),
                    format!("{} is not a duration such as `14d`: {e}", quote(&text.value)),
                );
                DEFAULT_RETENTION
            }
        },
    };
    v.finish(WorkerConfig { alerts, retention })
}

impl Validator<'_> {
    pub fn alerts(&mut self, raw: &Spanned<RawAlerts>) -> Option<AlertsConfig> {
        let a = &raw.value;
        let url_loc = Loc::of(&a.webhook_url, "alerts.webhook_url");
        let url = self.secret(&a.webhook_url, "alerts.webhook_url", "webhook_url: ${ALERT_WEBHOOK_URL}")?;
        match Url::parse(url.expose()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            // The URL is not quoted back: it may hold a token.
            _ => self.push(&url_loc, "must be an http:// or https:// URL"),
        }
        let rejected_ratio_above = match &a.rejected_ratio_above {
            Some(r) if !(0.0..=1.0).contains(&r.value) => {
                self.push(
                    &Loc::of(r, "alerts.rejected_ratio_above"),
                    format!("must be a share between 0 and 1, got {}", r.value),
                );
                None
            }
            other => other.as_ref().map(|r| r.value),
        };
        let row_count_change = a.row_count_change.as_ref().map(|c| {
            let percent = &c.value.percent_above;
            if !(percent.value > 0.0 && percent.value.is_finite()) {
                self.push(
                    &Loc::of(percent, "alerts.row_count_change.percent_above"),
                    format!("must be a positive percentage, got {}", percent.value),
                );
            }
            let last_runs = self.int_in(&c.value.last_runs, "alerts.row_count_change.last_runs", 1..=100, 5) as usize;
            RowCountChange {
                percent_above: percent.value,
                last_runs,
            }
        });
        let backlog_over = a.backlog_over.as_ref().and_then(|text| {
            super::whole_seconds(&text.value, "a backlog's limit")
                .map_err(|e| self.push(&Loc::of(text, "alerts.backlog_over"), e))
                .ok()
        });
        Some(AlertsConfig {
            webhook_url: url,
            on_failure: a.on_failure.unwrap_or(true),
            rejected_ratio_above,
            on_full_resync: a.on_full_resync.unwrap_or(true),
            row_count_change,
            backlog_over,
        })
    }
}
