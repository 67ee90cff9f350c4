//! `/`: one row per sync, failed and blocked ones first to the eye, and the invalid mappings.

use chrono::{DateTime, Utc};
use maud::{html, Markup};

use super::layout::{badge, counts, duration, relative, row_class, when};
use super::sync_status;
use crate::state::{RunRecord, RunStatus};
use crate::worker::{InvalidMapping, SyncInfo};

pub(super) fn render(rows: &[(SyncInfo, Option<RunRecord>)], invalid: &[InvalidMapping], now: DateTime<Utc>) -> Markup {
    html! {
        h1 { "Syncs" }
        (summary(rows, invalid))
        table #syncs {
            thead { tr {
                th { "Sync" } th { "Destination" } th { "Schedule" } th { "Status" }
                th { "Last run" } th { "Took" } th { "Counts" } th { "Last error" }
            } }
            tbody {
                @for (info, last) in rows { (row(info, last.as_ref(), now)) }
            }
        }
        @if rows.is_empty() { p.muted { "No valid mappings in the folder." } }
        @if !invalid.is_empty() {
            h2 #invalid { "Invalid mappings" }
            table.invalid {
                thead { tr { th { "File" } th { "Errors" } } }
                tbody {
                    @for bad in invalid {
                        tr.bad {
                            td { (bad.file.display()) }
                            td { @for e in &bad.errors { div.error { (e) } } }
                        }
                    }
                }
            }
        }
    }
}

/// A line of how many syncs are in each state that needs a look.
fn summary(rows: &[(SyncInfo, Option<RunRecord>)], invalid: &[InvalidMapping]) -> Markup {
    let with = |status: RunStatus| {
        rows.iter()
            .filter(|(_, last)| last.as_ref().is_some_and(|r| r.status == status))
            .count()
    };
    let failed = with(RunStatus::Failed);
    let blocked = with(RunStatus::Blocked);
    let running = rows.iter().filter(|(info, _)| info.view.running).count();
    html! {
        p.summary {
            (rows.len()) " sync" @if rows.len() != 1 { "s" } ": "
            @if failed > 0 { (badge("failed")) (failed) " failed " }
            @if blocked > 0 { (badge("blocked")) (blocked) " blocked " }
            @if running > 0 { (badge("running")) (running) " running " }
            @if !invalid.is_empty() { (badge("invalid")) (invalid.len()) " invalid mapping" @if invalid.len() != 1 { "s" } }
            @if failed + blocked + invalid.len() == 0 { "all well" }
        }
    }
}

fn row(info: &SyncInfo, last: Option<&RunRecord>, now: DateTime<Utc>) -> Markup {
    let status = sync_status(info.view.running, info.view.queued, last);
    html! {
        tr class=(row_class(last.map(|r| r.status))) data-sync=(info.name) {
            td { a href={ "/syncs/" (info.name) } { (info.name) } }
            td { (info.mapping.destination.fingerprint()) }
            td {
                @match info.schedule() {
                    Some(s) => { (s.to_string()) }
                    None => { span.muted { "on trigger only" } }
                }
                @if let Some(next) = info.view.next_run.filter(|_| !info.view.running) {
                    br; span.muted { "next " (relative(next, now)) }
                }
            }
            td {
                (badge(status))
                @if let Some(p) = info.view.progress.as_ref().map(|p| p.snapshot()) {
                    br; span.muted { (p.done) " of " (p.total) " sent" }
                }
            }
            @match last {
                Some(run) => {
                    td { (badge(run.status.as_str())) " " (when(run.started_at, now)) }
                    td.num { (duration(run, now)) }
                    td {
                        (counts(run))
                        @if let Some(folders) = &run.folders { div.folders { "read " (folders.summary()) } }
                        @if let Some(left) = run.counts.left {
                            div.backlog {
                                "backlog: " (left) " left"
                                @if let Some(eta) = run.counts.eta_secs { ", about " (crate::sync::cost::spoken_duration(eta)) }
                            }
                        }
                    }
                    td { @if let Some(e) = &run.error { div.error { (e) } } }
                }
                None => { td.muted colspan="4" { "never ran" } }
            }
        }
    }
}
