//! What every page shares: the frame, the style sheet, times and run statuses.

use chrono::{DateTime, TimeZone, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::state::{RunRecord, RunStatus};

/// Inline, so that the page fetches nothing; it works the same with scripts turned off.
const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d232a; background: #f6f7f9; }
header { background: #1d232a; color: #fff; padding: 10px 24px; display: flex; gap: 24px; align-items: baseline; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
header .worker { color: #aab; font-size: 12px; }
main { padding: 16px 24px; }
h1 { font-size: 20px; margin: 4px 0 12px; } h2 { font-size: 16px; margin: 20px 0 8px; }
table { border-collapse: collapse; background: #fff; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
th { font-size: 12px; color: #5b6470; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.bad { background: #fdecec; } tr.warn { background: #fff4e0; }
.status { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
.s-completed { background: #e1f3e6; color: #17672f; } .s-failed { background: #c62828; color: #fff; }
.s-blocked { background: #ef8f00; color: #fff; } .s-invalid { background: #9b1c1c; color: #fff; } .s-interrupted { background: #e3e6ea; color: #3a424c; }
.s-running, .s-queued { background: #dbe8fb; color: #1a4f9c; } .s-never_ran { background: #eee; color: #555; }
.error { white-space: pre-wrap; color: #9b1c1c; font-family: ui-monospace, monospace; font-size: 12px; }
.muted { color: #6b7480; font-size: 12px; }
.summary { margin: 0 0 12px; } .summary .status { margin-right: 6px; }
pre { background: #fff; border: 1px solid #e3e6ea; padding: 8px; overflow-x: auto; font-size: 12px; }
form.inline { display: inline; } button { font: inherit; padding: 4px 12px; cursor: pointer; }
button.danger { color: #9b1c1c; }
.actions { margin: 8px 0 16px; display: flex; gap: 8px; align-items: center; }
.flash { background: #dbe8fb; padding: 8px 12px; margin-bottom: 12px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; background: #fff; padding: 8px 12px; margin: 0; }
dt { color: #5b6470; } dd { margin: 0; font-family: ui-monospace, monospace; font-size: 13px; }
svg text { font-size: 11px; fill: #5b6470; }
"#;

/// How a page reloads itself, without a script: every `secs`, at `to` (the page's own address
/// without a one-time notice such as `?queued=run`).
pub(super) struct Refresh<'a> {
    pub secs: u32,
    pub to: &'a str,
}

/// A whole page.
pub(super) fn page(title: &str, worker: &str, refresh: Option<Refresh<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(r) = refresh { meta http-equiv="refresh" content={ (r.secs) "; url=" (r.to) }; }
                title { (title) " · ebb" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href="/" { "ebb worker" }
                    span.worker { (worker) }
                }
                main { (body) }
            }
        }
    }
}

/// A status badge; its class is the status's name, so a test or a person can find it.
pub(super) fn badge(status: &str) -> Markup {
    html! { span class={ "status s-" (status) } { (status.replace('_', " ")) } }
}

/// Which rows must stand out: failed and blocked runs.
pub(super) fn row_class(status: Option<RunStatus>) -> &'static str {
    match status {
        Some(RunStatus::Failed) => "bad",
        Some(RunStatus::Blocked) => "warn",
        _ => "",
    }
}

/// A time in UTC, and how long ago or ahead it is.
pub(super) fn when(secs: i64, now: DateTime<Utc>) -> Markup {
    let Some(at) = Utc.timestamp_opt(secs, 0).single() else {
        return html! { "—" };
    };
    html! {
        time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
            (at.format("%Y-%m-%d %H:%M:%S UTC"))
        }
        " " span.muted { "(" (relative(at, now)) ")" }
    }
}

/// "3 minutes ago", or "in 3 minutes".
pub(super) fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let mut formatter = timeago::Formatter::new();
    formatter.num_items(1);
    match (now - at).to_std() {
        Ok(past) => formatter.convert(past),
        Err(_) => {
            let ahead = (at - now).to_std().unwrap_or_default();
            formatter.ago("");
            format!("in {}", formatter.convert(ahead).trim_end())
        }
    }
}

/// A run's length, `1.2s` or `3m 4s`; a running run's so far.
pub(super) fn duration(run: &RunRecord, now: DateTime<Utc>) -> String {
    let end = run.ended_at.unwrap_or_else(|| now.timestamp());
    let secs = (end - run.started_at).max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// The counts worth a column, `sent 12 · rejected 1`; zeros left out but for `sent`.
pub(super) fn counts(run: &RunRecord) -> String {
    let c = &run.counts;
    let all = [
        ("sent", c.sent),
        ("changed", c.changed),
        ("new", c.new),
        ("unchanged", c.unchanged),
        ("invalid", c.invalid),
        ("rejected", c.rejected),
        ("suppressed", c.suppressed),
        ("deleted", c.deleted),
        ("failed", c.failed),
    ];
    all.iter()
        .filter(|(name, n)| *n > 0 || *name == "sent")
        .map(|(name, n)| format!("{name} {n}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_with_how_long_ago_or_ahead() {
        let now = Utc.timestamp_opt(1_764_630_000, 0).single().expect("time");
        assert_eq!(relative(now - chrono::Duration::seconds(190), now), "3 minutes ago");
        assert_eq!(relative(now + chrono::Duration::seconds(7300), now), "in 2 hours");
        assert_eq!(relative(now, now), "now");
        let text = when(1_764_629_810, now).into_string();
        assert!(
            text.contains("2025-12-01 22:56:50 UTC") && text.contains("(3 minutes ago)"),
            "{text}"
        );
    }
}
