//! `/syncs/NAME`: the chart and table of the last runs, the last run's rejections, the
//! mapping's source and destination, and the actions.

use chrono::{DateTime, Utc};
use maud::{html, Markup};

use super::chart::runs_chart;
use super::layout::{badge, counts, duration, relative, row_class, when};
use super::sync_status;
use crate::state::{RunRecord, RunStatus, StoredRejection};
use crate::worker::SyncInfo;

pub(super) struct SyncPage<'a> {
    pub info: &'a SyncInfo,
    /// Newest first.
    pub runs: &'a [RunRecord],
    pub rejections: &'a [StoredRejection],
    /// The run the rejections are of.
    pub rejections_of: Option<&'a RunRecord>,
    pub csrf: &'a str,
    /// What a form just queued: `run` or `full`.
    pub flash: Option<&'a str>,
}

impl SyncPage<'_> {
    pub(super) fn render(&self, now: DateTime<Utc>) -> Markup {
        let info = self.info;
        let status = sync_status(info.view.running, info.view.queued, self.runs.first());
        html! {
            h1 { (info.name) " " (badge(status)) }
            @if let Some(what) = self.flash {
                p.flash role="status" { @if what == "full" { "Full resync queued." } @else { "Run queued." } " It starts as soon as the sync is free." }
            }
            (actions(&info.name, self.csrf))
            (backlog(self.runs.iter().find(|r| r.status != RunStatus::Running)))
            (details(info, now))
            h2 { "Last " (self.runs.len()) " runs" }
            @if self.runs.is_empty() { p.muted { "No runs yet." } } @else { (runs_chart(self.runs, super::HISTORY)) (runs_table(self.runs, now)) }
            (self.rejected())
        }
    }

    fn rejected(&self) -> Markup {
        let Some(run) = self.rejections_of else { return html! {} };
        let total = run.counts.rejected + run.counts.invalid;
        if total == 0 {
            return html! { h2 #rejected { "Rejected" } p.muted { "Run " (run.id) " rejected nothing." } };
        }
        html! {
            h2 #rejected { "Rejected in run " (run.id) ": " (total) }
            @if total > self.rejections.len() as u64 && !self.rejections.is_empty() {
                p.muted { "The first " (self.rejections.len()) " are listed; `ebb rejected` lists them all." }
            }
            @if !self.rejections.is_empty() {
                table.rejections {
                    thead { tr { th { "Record" } th { "Stage" } th { "Where" } th { "Reason" } } }
                    tbody {
                        @for r in self.rejections {
                            tr {
                                td { (r.record_id.as_deref().unwrap_or("—")) }
                                td { (r.stage.as_str()) }
                                td { (r.position) }
                                td { (r.reason) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What the last finished run left to the next when its box was over, and how long that takes.
fn backlog(last: Option<&RunRecord>) -> Markup {
    let Some(left) = last.and_then(|r| r.counts.left) else {
        return html! {};
    };
    html! {
        p #backlog role="status" {
            "Backlog: " (left) " records left for the next run"
            @if let Some(eta) = last.and_then(|r| r.counts.eta_secs) {
                ", about " (crate::sync::cost::spoken_duration(eta)) " at the configured pace"
            }
            "."
        }
    }
}

/// "Run now" posts straight away; a full resync goes through a page that asks first, so that
/// it needs no script to confirm.
fn actions(name: &str, csrf: &str) -> Markup {
    html! {
        div.actions {
            form.inline method="post" action={ "/syncs/" (name) "/trigger" } {
                input type="hidden" name="csrf" value=(csrf);
                button #run-now type="submit" { "Run now" }
            }
            a #full-resync href={ "/syncs/" (name) "/full-resync" } { "Full resync…" }
            (super::preview::form(name, csrf))
        }
    }
}

/// Where the records come from and go to: descriptions that hold no credential (a source URL
/// shows host, port and database; a destination its URL without user, query or key).
fn details(info: &SyncInfo, now: DateTime<Utc>) -> Markup {
    let mapping = &info.mapping;
    let source = crate::source::build(&mapping.source)
        .map(|s| s.describe())
        .unwrap_or_else(|e| e.to_string());
    html! {
        dl.mapping {
            dt { "Mapping" } dd { (info.file.display()) }
            dt { "Source" } dd { (source) }
            dt { "Destination" } dd { (mapping.destination.fingerprint()) }
            dt { "Mode" } dd { (format!("{:?}", mapping.mode).to_lowercase()) }
            dt { "Schedule" } dd {
                @match info.schedule() { Some(s) => { (s.to_string()) } None => { "on trigger only" } }
                @if let Some(next) = info.view.next_run { " · next " (relative(next, now)) }
            }
            @if !mapping.tags.is_empty() { dt { "Tags" } dd { (mapping.tags.join(", ")) } }
        }
    }
}

fn runs_table(runs: &[RunRecord], now: DateTime<Utc>) -> Markup {
    html! {
        table #runs {
            thead { tr { th { "Run" } th { "Status" } th { "Started" } th { "Took" } th { "Origin" } th { "Counts" } th { "Error" } } }
            tbody {
                @for run in runs {
                    tr class=(row_class(Some(run.status))) data-run=(run.id) {
                        td.num { (run.id) }
                        td { (badge(run.status.as_str())) @if run.full_resync { " full" } }
                        td { (when(run.started_at, now)) }
                        td.num { (duration(run, now)) }
                        td { (run.origin.as_str()) }
                        td {
                            (counts(run))
                            @if let Some(folders) = &run.folders { div.folders { "read " (folders.summary()) } }
                        }
                        td { @if let Some(e) = &run.error { div.error { (e) } } }
                    }
                }
            }
        }
    }
}

/// The page a full resync is confirmed on.
pub(super) fn confirm_full_resync(info: &SyncInfo, csrf: &str) -> Markup {
    html! {
        h1 { "Full resync of " (info.name) "?" }
        p {
            "A full resync sends every record of the source again, whatever state says was sent, to "
            (info.mapping.destination.fingerprint()) ". It takes as long as a first sync."
        }
        div.actions {
            form.inline method="post" action={ "/syncs/" (info.name) "/trigger" } {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="full" value="true";
                button.danger #confirm-full type="submit" { "Yes, resend everything" }
            }
            a href={ "/syncs/" (info.name) } { "Cancel" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folders::SnapshotFolders;
    use crate::state::{RunCounts, RunOrigin, RunStatus};

    #[test]
    fn a_run_that_a_folder_rule_chose_for_names_the_folder_it_read() {
        let run = RunRecord {
            id: 7,
            sync: "users".into(),
            started_at: 1_000,
            ended_at: Some(1_002),
            status: RunStatus::Completed,
            full_resync: false,
            counts: RunCounts::default(),
            error: None,
            origin: RunOrigin::Schedule,
            scheduled_for: None,
            worker: None,
            progress: None,
            folders: Some(SnapshotFolders {
                read: vec!["users/dt=2026-11-30/".into()],
                skipped: vec!["users/dt=2026-12-01/".into()],
            }),
        };
        let now = DateTime::from_timestamp(2_000, 0).unwrap_or_default();
        let page = runs_table(&[run], now).into_string();
        assert!(
            page.contains("read users/dt=2026-11-30/ (skipped, no marker yet: users/dt=2026-12-01/)"),
            "{page}"
        );
    }
}
