//! `ebb record`: what state knows of one record: the payload the destination last
//! acknowledged, when and by which runs, and whether it is rejected or suppressed now.

use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::Value;

use super::suppress::identities;
use super::{open_store, print_json, print_wrapped};
use crate::config::env::Env;
use crate::destination::DestinationError;
use crate::error::Error;
use crate::payload;
use crate::record::Change;
use crate::state::{self, RejectedRecord, RunStatus, StateStore, Suppression};
use crate::sync::SyncJob;

/// How many runs are searched for the ones that sent the record.
const RUNS_SEARCHED: usize = 1000;

#[derive(Serialize)]
struct RecordReport {
    sync: String,
    identity: String,
    /// Acknowledged by the destination and not deleted since.
    in_state: bool,
    /// When it was last acknowledged (Unix seconds).
    synced_at: Option<i64>,
    /// The runs that sent it, newest first (up to four).
    runs: Vec<SentBy>,
    /// The fields it was last acknowledged with; `None` if state kept no payload of it.
    fields: Option<serde_json::Map<String, Value>>,
    created_at: Option<i64>,
    /// That payload as the destination receives it: the body of a request of this record alone.
    request_body: Option<Value>,
    /// Why the last completed run rejected it, if it did.
    rejection: Option<RejectedRecord>,
    suppressed: Option<Suppression>,
}

#[derive(Serialize)]
struct SentBy {
    run: i64,
    /// When the run started and how it ended; unknown once retention has pruned it.
    started_at: Option<i64>,
    status: Option<RunStatus>,
}

pub(super) async fn record(state_url: &str, path: &Path, identity: &str, json: bool, env: &dyn Env) -> Result<ExitCode, Error> {
    let sync = SyncJob::from_mapping(super::load(path, env)?)?;
    let id = identities(&sync, &[identity.to_string()])?.remove(0);
    let store = open_store(state_url, true).await?;
    let report = gather(&sync, store.as_ref(), id).await?;
    let known = report.in_state || report.rejection.is_some() || report.suppressed.is_some();
    if json {
        print_json(&report)?;
    } else {
        print_report(&report)?;
    }
    Ok(if known { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn gather(sync: &SyncJob, store: &dyn StateStore, id: String) -> Result<RecordReport, Error> {
    let tracked = store.tracked(sync.name(), std::slice::from_ref(&id)).await?.pop();
    let record = match &tracked {
        Some(t) => t.acknowledged()?,
        None => None,
    };
    let request_body = match &record {
        Some(r) => {
            let change = Change::Upsert(r.clone());
            let request = sync.destination.prepare(&[&change])?;
            Some(serde_json::from_slice(&request.body).map_err(DestinationError::Encode)?)
        }
        None => None,
    };
    let sent_by = tracked.as_ref().map(|t| t.runs.clone()).unwrap_or_default();
    let history = match sent_by.is_empty() {
        true => Vec::new(),
        false => store.runs(Some(sync.name()), RUNS_SEARCHED).await?,
    };
    let runs = sent_by
        .iter()
        .map(|&run| {
            let seen = history.iter().find(|r| r.id == run);
            SentBy {
                run,
                started_at: seen.map(|r| r.started_at),
                status: seen.map(|r| r.status),
            }
        })
        .collect();
    let rejected = state::rejected_now(store, sync.name()).await?;
    let suppressions = store.suppressions(sync.name()).await?;
    Ok(RecordReport {
        sync: sync.name().to_string(),
        in_state: tracked.is_some(),
        synced_at: tracked.as_ref().map(|t| t.synced_at),
        runs,
        fields: record.as_ref().map(payload::fields_view),
        created_at: record.as_ref().map(|r| r.created_at),
        request_body,
        rejection: rejected.records.into_iter().find(|r| r.identity.as_deref() == Some(id.as_str())),
        suppressed: suppressions.into_iter().find(|s| s.id == id),
        identity: id,
    })
}

/// `2026-12-01 19:40:00Z (5m ago)`.
fn when(secs: i64) -> String {
    let Some(at) = chrono::DateTime::from_timestamp(secs, 0) else {
        return secs.to_string();
    };
    let ago = (chrono::Utc::now() - at).num_seconds().max(0) as u64;
    let ago = match ago {
        0..60 => format!("{ago}s ago"),
        60..3600 => format!("{}m ago", ago / 60),
        3600..86400 => format!("{}h ago", ago / 3600),
        _ => format!("{}d ago", ago / 86400),
    };
    format!("{} ({ago})", at.format("%Y-%m-%d %H:%M:%SZ"))
}

fn print_report(r: &RecordReport) -> Result<(), Error> {
    print_wrapped("", &format!("{} in sync {}", r.identity, r.sync));
    match (r.in_state, r.synced_at, r.runs.first()) {
        (true, Some(at), Some(last)) => println!("  last acknowledged {} by run {}", when(at), last.run),
        (true, Some(at), None) => println!("  last acknowledged {} (before runs were kept with records)", when(at)),
        _ => println!("  not in state: never acknowledged, deleted, or forgotten by `ebb reset`"),
    }
    if r.runs.len() > 1 {
        let runs: Vec<String> = r
            .runs
            .iter()
            .map(|s| match s.started_at {
                Some(at) => format!("{} at {}", s.run, when(at)),
                None => s.run.to_string(),
            })
            .collect();
        print_wrapped("  ", &format!("sent by runs {}", runs.join(", ")));
    }
    match &r.rejection {
        Some(rej) => print_wrapped(
            "  ",
            &format!(
                "rejected now by the {} (runs {}–{}): {}",
                rej.stage.as_str(),
                rej.first_run,
                rej.last_run,
                rej.reason
            ),
        ),
        None => println!("  rejected now: no"),
    }
    if let Some(s) = &r.suppressed {
        println!("  suppressed since {} ({}): no run sends it", when(s.at), s.reason.as_str());
    }
    if let Some(fields) = &r.fields {
        println!("  fields as last acknowledged:");
        for (name, value) in fields {
            print_wrapped("    ", &format!("{name}: {}", payload::plain(value)));
        }
    }
    if let Some(body) = &r.request_body {
        println!("  as the destination received it (the body of a request of this record alone):");
        print_json(body)?;
    }
    Ok(())
}
