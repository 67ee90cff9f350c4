//! `ebb preview` (a dry run) and `ebb test` (a few records, really sent, state untouched).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::run::load_all;
use super::{load, open_store, print_json, print_wrapped};
use crate::config::env::Env;
use crate::error::Error;
use crate::sync::explain::{Action, Explanation};
use crate::sync::{self, SyncJob};

/// How `ebb preview` prints.
pub(super) struct PreviewOutput {
    pub limit: usize,
    pub json: bool,
    /// One mapping file was named: its JSON is one document, not a list of one.
    pub one: bool,
    pub explain: bool,
    /// Read every row, even with a cursor.
    pub full_diff: bool,
}

/// Every mapping is checked before any preview is computed, as `ebb sync` does.
pub(super) async fn preview_all(state_url: &str, paths: &[PathBuf], out: PreviewOutput, env: &dyn Env) -> Result<ExitCode, Error> {
    let mut syncs = Vec::with_capacity(paths.len());
    for mapping in load_all(paths, env)? {
        syncs.push(SyncJob::from_mapping(mapping)?);
    }
    let store = open_store(state_url, true).await?;
    let mut previews = Vec::with_capacity(syncs.len());
    for (i, sync) in syncs.iter().enumerate() {
        let options = sync::PreviewOptions {
            limit: out.limit,
            explain: out.explain,
            full_diff: out.full_diff,
        };
        let preview = sync::preview_with(sync, store.as_ref(), options).await?;
        if !out.json {
            if i > 0 {
                println!();
            }
            print_preview(&preview, out.limit)?;
        }
        previews.push(preview);
    }
    if out.json {
        match (out.one, previews.as_slice()) {
            (true, [only]) => print_json(only)?,
            _ => print_json(&previews)?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_preview(preview: &sync::Preview, limit: usize) -> Result<(), Error> {
    let c = &preview.counts;
    let header = format!(
        "{} → {} (dry run: nothing is sent, state is unchanged)",
        preview.sync, preview.destination
    );
    print_wrapped("", &header);
    let suppressed = if c.suppressed == 0 {
        String::new()
    } else {
        format!(" · suppressed {}", c.suppressed)
    };
    println!(
        "  source rows {} · invalid {}{suppressed} · new {} · changed {} · unchanged {} · gone {}",
        c.source, c.invalid, c.new, c.changed, c.unchanged, c.gone
    );
    super::run::print_read_notes(
        (preview.folders.as_ref(), preview.cursor.as_ref()),
        c.changed_without_cursor,
        preview.state_was_for.as_deref(),
    );
    println!(
        "  would send {} record{}",
        preview.to_send,
        if preview.to_send == 1 { "" } else { "s" }
    );
    if preview.cost.requests > 0 {
        print_wrapped("  ", &preview.cost.summary());
    }
    print_deletes(&preview.to_delete, limit);
    for guard in &preview.guards {
        print_wrapped("  ", &format!("guard: {guard}"));
    }
    if let Some(blocked) = &preview.blocked {
        print_wrapped("  ", &format!("a sync would be {blocked}"));
    }
    for (i, r) in preview.rejections.iter().take(10).enumerate() {
        if i == 0 {
            println!("  rejected rows (first {}):", preview.rejections.len().min(10));
        }
        print_wrapped("    ", &format!("{}: {}", r.position, r.reason));
    }
    if let Some(explained) = &preview.explain {
        // The explanation stands for the request bodies: the same records, as changes.
        print_explained(explained, preview.to_send + preview.to_delete.len());
        return Ok(());
    }
    for (i, request) in preview.requests.iter().enumerate() {
        println!(
            "\nrequest {} of {}: {} {}",
            i + 1,
            preview.cost.requests,
            request.method,
            request.url
        );
        print_json(&request.body)?;
    }
    Ok(())
}

/// `+ u-00001 (new)`, `~ u-00002 (changed since run 4)`, `- u-00003 (delete)`, each with its fields.
fn print_explained(explained: &[Explanation], planned: usize) {
    println!();
    for e in explained {
        let since = e
            .last_sent
            .and_then(|l| l.run)
            .map(|r| format!(" since run {r}"))
            .unwrap_or_default();
        let (mark, what) = match e.action {
            Action::New => ("+", "new".to_string()),
            Action::Changed => ("~", format!("changed{since}")),
            Action::Delete => ("-", format!("delete, last sent{since}")),
        };
        print_wrapped("", &format!("{mark} {} ({what})", e.identity));
        if !e.compared {
            println!("    (no payload kept from before: the fields as they will be sent)");
        }
        for change in &e.changes {
            print_wrapped("    ", &change.to_string());
        }
    }
    if explained.len() < planned {
        println!("… {} more (--limit N explains more)", planned - explained.len());
    }
}

/// The deletes a mirror run would send, the first `limit` by identity.
fn print_deletes(to_delete: &[String], limit: usize) {
    if to_delete.is_empty() {
        return;
    }
    let s = if to_delete.len() == 1 { "" } else { "s" };
    println!("  would delete {} record{s} that left the source (mirror):", to_delete.len());
    for id in to_delete.iter().take(limit.max(10)) {
        println!("    {id}");
    }
    if to_delete.len() > limit.max(10) {
        println!("    … and {} more (`--json` lists them all)", to_delete.len() - limit.max(10));
    }
}

pub(super) async fn test(state_url: &str, path: &Path, records: usize, env: &dyn Env) -> Result<ExitCode, Error> {
    let sync = SyncJob::from_mapping(load(path, env)?)?;
    let store = open_store(state_url, true).await?;
    let exchanges = sync::test_send(&sync, store.as_ref(), records.max(1)).await?;
    if exchanges.is_empty() {
        println!("{}: no valid record to send", sync.name());
        return Ok(ExitCode::FAILURE);
    }
    let mut ok = true;
    for x in &exchanges {
        println!("{} {}", x.method, x.url);
        print_json(&x.body)?;
        match x.status {
            Some(s) => println!("→ HTTP {s}\n{}", x.response),
            None => println!("→ no response: {}", x.response),
        }
        ok &= x.status.is_some_and(|s| (200..300).contains(&s));
    }
    println!("(test send: state was not changed)");
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
