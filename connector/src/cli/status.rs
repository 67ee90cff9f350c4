//! `ebb status`, `ebb history` and `ebb reset`: what state says about syncs and their runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::progress::human_duration;
use super::{load, open_store, print_counts, print_json, print_wrapped};
use crate::config;
use crate::config::env::Env;
use crate::error::Error;
use crate::state::{self, RunRecord};
use crate::sync::ProgressSnapshot;

#[derive(serde::Serialize)]
pub(super) struct SyncStatus {
    sync: String,
    runs: Vec<RunRecord>,
    rejections: Vec<state::StoredRejection>,
    /// Records the last completed run rejected (`ebb rejected` lists them); none before one.
    rejected_now: Option<u64>,
}

pub(super) async fn status(state_url: &str, paths: &[PathBuf], json: bool, limit: usize, env: &dyn Env) -> Result<ExitCode, Error> {
    let store = open_store(state_url, true).await?;
    let names: Vec<String> = if paths.is_empty() {
        store.syncs().await?
    } else {
        paths.iter().map(|p| load(p, env).map(|m| m.name)).collect::<Result<_, _>>()?
    };
    let mut out = Vec::new();
    for name in names {
        let runs = store.runs(Some(&name), limit.max(1)).await?;
        let rejections = match runs.first() {
            Some(last) => store.rejections(last.id, 100).await?,
            None => Vec::new(),
        };
        let rejected_now = state::rejected_count(store.as_ref(), &name).await?;
        out.push(SyncStatus {
            sync: name,
            runs,
            rejections,
            rejected_now,
        });
    }
    if json {
        print_json(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if out.is_empty() {
        println!("no runs yet");
    }
    for s in &out {
        println!("{}", s.sync);
        if s.runs.is_empty() {
            println!("  never ran");
        }
        for r in &s.runs {
            print_run(r);
        }
        if !s.rejections.is_empty() {
            println!("  rejections in the last run (up to 100):");
            for r in &s.rejections {
                print_wrapped("    ", &format!("{}: {}", r.position, r.reason));
            }
        }
        if let Some(n @ 1..) = s.rejected_now {
            println!("  {n} rejected now (`ebb rejected MAPPING` lists them with their streaks)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn print_run(r: &RunRecord) {
    let when = chrono::DateTime::from_timestamp(r.started_at, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_default();
    let took = r
        .ended_at
        .map(|e| human_duration(((e - r.started_at).max(0) as u64) * 1000))
        .unwrap_or_else(|| "…".into());
    let by = match (&r.worker, r.origin.as_str()) {
        (Some(w), origin) => format!(" {origin} on {w}"),
        (None, origin) => format!(" {origin}"),
    };
    println!(
        "  run {} {} {}{}{by} ({took})",
        r.id,
        r.status.as_str(),
        when,
        if r.full_resync { " full" } else { "" }
    );
    print_counts("      ", &r.counts);
    if let Some(folders) = &r.folders {
        print_wrapped("      ", &format!("read {}", folders.summary()));
    }
    if let Some(left) = r.counts.left {
        let eta = r
            .counts
            .eta_secs
            .map(|s| format!(", about {} at the configured pace", crate::sync::cost::spoken_duration(s)));
        println!("      backlog: {left} records left for the next run{}", eta.unwrap_or_default());
    }
    if let (state::RunStatus::Running, Some(p)) = (r.status, &r.progress) {
        println!("      sending: {}", ProgressSnapshot::new(p.planned, p.done, p.per_second()).line());
    }
    if let Some(e) = &r.error {
        print_wrapped("      ", &format!("error: {e}"));
    }
}

pub(super) async fn history(state_url: &str, name: &str, limit: usize, json: bool) -> Result<ExitCode, Error> {
    let store = open_store(state_url, true).await?;
    let runs = store.runs(Some(name), limit.max(1)).await?;
    if json {
        print_json(&runs)?;
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        let known = store.syncs().await?;
        eprintln!(
            "error: no runs of {} in {}",
            crate::quote::quote(name),
            state::redact_url(state_url)
        );
        match config::did_you_mean(name, known.iter().map(String::as_str)) {
            Some(close) => eprintln!("hint: did you mean `{close}`?"),
            None if !known.is_empty() => eprintln!("hint: syncs with history: {}", known.join(", ")),
            None => {}
        }
        return Ok(ExitCode::FAILURE);
    }
    println!("{name}: last {} run{}", runs.len(), if runs.len() == 1 { "" } else { "s" });
    for r in &runs {
        print_run(r);
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn reset(state_url: &str, path: &Path, env: &dyn Env) -> Result<ExitCode, Error> {
    let mapping = load(path, env)?;
    let store = open_store(state_url, false).await?;
    let mut forgotten = store.reset(&mapping.name).await?;
    let mut place = String::new();
    let baseline = crate::baseline::for_mapping(&mapping)?;
    if let Some(elsewhere) = baseline.kept_elsewhere() {
        forgotten += baseline.reset(&mapping.name).await?;
        place = format!(" (its state in {elsewhere})");
    }
    println!(
        "{}: forgot {forgotten} record{}{place}; the next sync sends everything",
        mapping.name,
        if forgotten == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}
