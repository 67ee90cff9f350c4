//! `ebb rejected`: the records a sync rejects now, why, and since which run.

use std::path::Path;
use std::process::ExitCode;

use super::{load, open_store, print_json, print_wrapped};
use crate::config::env::Env;
use crate::error::Error;
use crate::state::{self, RejectedNow};

pub(super) async fn rejected(state_url: &str, path: &Path, json: bool, env: &dyn Env) -> Result<ExitCode, Error> {
    let mapping = load(path, env)?;
    let store = open_store(state_url, true).await?;
    let now = state::rejected_now(store.as_ref(), &mapping.name).await?;
    if json {
        print_json(&serde_json::json!({ "sync": mapping.name, "rejected": now }))?;
        return Ok(ExitCode::SUCCESS);
    }
    print_rejected(&mapping.name, &now);
    Ok(ExitCode::SUCCESS)
}

fn print_rejected(sync: &str, now: &RejectedNow) {
    let Some(run) = now.run else {
        println!("{sync}: no completed run yet");
        return;
    };
    if now.by_mapping + now.by_destination == 0 {
        print_wrapped("", &format!("{sync}: nothing rejected by the last completed run (run {run})"));
        return;
    }
    let plural = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let header = format!(
        "{sync}: run {run} rejected {} by the mapping and {} by the destination",
        plural(now.by_mapping, "row"),
        plural(now.by_destination, "record")
    );
    print_wrapped("", &header);
    for r in &now.records {
        let since = if r.runs_in_a_row == 1 {
            "first rejected by this run".to_string()
        } else {
            format!("rejected by runs {}–{}, {} in a row", r.first_run, r.last_run, r.runs_in_a_row)
        };
        print_wrapped("  ", &format!("{} · {} · {since}", r.position, r.stage.as_str()));
        print_wrapped("      ", &r.reason);
    }
    if !now.complete {
        println!(
            "  … the run kept the first {} rejections; the counts above are exact",
            now.records.len()
        );
    }
}
