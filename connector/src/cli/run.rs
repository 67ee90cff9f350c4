//! `ebb sync`: every mapping checked first, then each sync run in turn, with summaries or JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::progress::human_duration;
use super::{failure, open_store, print_counts, print_error, print_json, print_wrapped, progress};
use crate::config::env::Env;
use crate::config::ConfigErrors;
use crate::error::Error;
use crate::spec::{self, Mapping};
use crate::state::{self, StateStore};
use crate::sync::{self, AllowGuards, RunOptions, RunReport, SyncJob};

pub(super) fn print_report(r: &RunReport) {
    println!("{}: {} in {}", r.sync, r.status.as_str(), human_duration(r.duration_ms));
    print_counts("  ", &r.counts);
    print_read_notes(
        (r.folders.as_ref(), r.cursor.as_ref()),
        r.counts.changed_without_cursor,
        r.state_was_for.as_deref(),
    );
    if let Some(left) = r.counts.left {
        print_wrapped(
            "  ",
            &format!("continued: the run's box was over with {left} records left; the next run diffs again and goes on"),
        );
    }
    if let Some(e) = &r.error {
        print_wrapped("  ", &format!("error: {e}"));
    }
}

/// What a person reads of a run's cursor: which rows it read, and what a full diff found.
/// What a run or a preview read (folders, cursor) and from which state.
pub(super) fn print_read_notes(
    (folders, cursor): (Option<&crate::folders::SnapshotFolders>, Option<&crate::cursor::CursorSummary>),
    changed_without_cursor: Option<u64>,
    state_was_for: Option<&str>,
) {
    if let Some(folders) = folders {
        print_wrapped("  ", &format!("read {}", folders.summary()));
    }
    for note in cursor.map(|c| cursor_notes(c, changed_without_cursor)).unwrap_or_default() {
        print_wrapped("  ", &note);
    }
    if let Some(other) = state_was_for {
        print_wrapped("  ", &state_was_for_note(other));
    }
}

fn cursor_notes(c: &crate::cursor::CursorSummary, changed_without_cursor: Option<u64>) -> Vec<String> {
    let mut notes = vec![scope_note(c, changed_without_cursor)];
    if let Some(ahead) = &c.ahead_of_clock {
        let rows = match ahead.rows {
            1 => "1 row has".to_string(),
            n => format!("{n} rows have"),
        };
        notes.push(format!(
            "cursor: {rows} {} more than a day after the run's start (the furthest {}): every run reads them, and they never move the watermark",
            c.column, ahead.furthest
        ));
    }
    notes
}

fn scope_note(c: &crate::cursor::CursorSummary, changed_without_cursor: Option<u64>) -> String {
    match (&c.read_from, c.full_because, changed_without_cursor) {
        (Some(from), _, _) => format!("cursor: read only rows with {} at or after {from} (or null)", c.column),
        (None, _, Some(1)) => format!("full diff: 1 row changed without its cursor moving ({})", c.column),
        (None, _, Some(n)) => format!("full diff: {n} rows changed without their cursor moving ({})", c.column),
        (None, reason, None) => format!("full diff ({}): every row read", reason.unwrap_or("asked")),
    }
}

/// What a person reads when a sync's state was kept for another destination.
fn state_was_for_note(other: &str) -> String {
    format!("state was for {other}, not this destination: it starts empty, so every record is sent once")
}

/// Ctrl-C once: stop starting batches, finish and commit in-flight ones. Twice: exit now.
pub(super) fn cancel_on_ctrl_c() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: finishing in-flight requests and committing them; press Ctrl-C again to exit now");
            t.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    token
}

/// Exit code of `ebb sync` when a sync was skipped because another run holds its lock (EX_TEMPFAIL).
pub const EXIT_ALREADY_RUNNING: u8 = 75;

/// One sync's run, and its alerts.
pub(super) async fn run_one(mapping: Mapping, store: &dyn StateStore, options: &RunOptions) -> Result<RunReport, Error> {
    let alerts = mapping.alerts.clone();
    let report = sync::run(&SyncJob::from_mapping(mapping)?, store, options).await?;
    if let Some(alerts) = &alerts {
        if let Ok(client) = crate::alerts::client() {
            crate::alerts::after_run(store, &client, alerts, &report, "cli").await;
        }
    }
    Ok(report)
}

/// Every mapping, or every problem of all of them.
pub(super) fn load_all(paths: &[PathBuf], env: &dyn Env) -> Result<Vec<Mapping>, Error> {
    let mut mappings = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        match spec::load(path, env) {
            Ok(m) => mappings.push(m),
            Err(ConfigErrors(issues)) => problems.extend(issues),
        }
    }
    if problems.is_empty() {
        Ok(mappings)
    } else {
        Err(Error::Config(ConfigErrors(problems)))
    }
}

/// `ebb sync`'s arguments.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Mapping files, or folders of them.
    #[arg(required = true)]
    pub mappings: Vec<PathBuf>,
    #[command(flatten)]
    pub select: super::SelectArgs,
    /// Ignore state and send every record.
    #[arg(long)]
    pub full: bool,
    /// With `source.cursor:`, read and diff every row rather than only those past the
    /// watermark; reports the rows that changed without their cursor moving.
    #[arg(long)]
    pub full_diff: bool,
    /// Print the summaries as JSON.
    #[arg(long)]
    pub json: bool,
    /// If another run of a sync holds its lock, wait for it instead of exiting.
    #[arg(long)]
    pub wait: bool,
    /// Let this run pass one guard (repeatable), after looking at `ebb preview`.
    #[arg(long = "allow-guard", value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(crate::config::GUARD_NAMES))]
    pub allow_guard: Vec<String>,
    /// Let this run pass every guard.
    #[arg(long, conflicts_with = "allow_guard")]
    pub allow_guards: bool,
    /// Stop starting batches this long after a run starts (`10m`, `1h`), over the mapping's
    /// `max_run:`; the run commits what was acknowledged and ends `continued`.
    #[arg(long, value_name = "DURATION", value_parser = parse_max_run)]
    pub max_run: Option<std::time::Duration>,
}

/// `--max-run`: as the mapping's `max_run:` takes it.
pub(super) fn parse_max_run(text: &str) -> Result<std::time::Duration, String> {
    crate::config::whole_seconds(text, "a run's box")
}

impl SyncArgs {
    pub(super) fn flags(self) -> SyncFlags {
        let allow_guards = match (self.allow_guards, self.allow_guard.is_empty()) {
            (true, _) => AllowGuards::All,
            (false, true) => AllowGuards::None,
            (false, false) => AllowGuards::Some(self.allow_guard),
        };
        SyncFlags {
            full: self.full,
            full_diff: self.full_diff,
            json: self.json,
            wait: self.wait,
            allow_guards,
            max_run: self.max_run,
        }
    }
}

pub(super) struct SyncFlags {
    pub full: bool,
    pub full_diff: bool,
    pub json: bool,
    pub wait: bool,
    pub allow_guards: AllowGuards,
    pub max_run: Option<std::time::Duration>,
}

/// Exit code of `ebb sync` when a guard blocked a sync and nothing failed.
pub const EXIT_BLOCKED: u8 = 3;

pub(super) async fn run_syncs(state_url: &str, paths: &[PathBuf], flags: SyncFlags, env: &dyn Env) -> ExitCode {
    // Every mapping is checked before any sync starts: a typo in the third must not leave two half-done.
    let prepared = match load_all(paths, env) {
        Ok(mappings) => open_store(state_url, false).await.map(|store| (mappings, store)),
        Err(e) => Err(e),
    };
    let (mappings, store) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => return failure(&e),
    };
    let cancel = cancel_on_ctrl_c();
    let json = flags.json;
    let options = flags.options(cancel.clone());
    let mut outcome = Outcome::default();
    let mut reports = Vec::new();
    for mapping in mappings {
        if cancel.is_cancelled() {
            break;
        }
        match run_one(mapping, store.as_ref(), &options).await {
            Ok(r) => {
                outcome.ran(r.status);
                if !json {
                    print_report(&r);
                }
                reports.push(r);
            }
            Err(e @ Error::AlreadyRunning(_)) => {
                outcome.busy = true;
                print_error(&e);
            }
            Err(e) => {
                outcome.failed = true;
                print_error(&e);
            }
        }
    }
    if json {
        if let Err(e) = print_json(&reports) {
            outcome.failed = true;
            print_error(&e);
        }
    }
    outcome.exit_code()
}

impl SyncFlags {
    fn options(self, cancel: CancellationToken) -> RunOptions {
        RunOptions {
            full: self.full,
            full_diff: self.full_diff,
            progress: (!self.json).then(|| Arc::new(progress::Bar::default()) as Arc<dyn sync::Progress>),
            cancel,
            wait_for_lock: self.wait,
            allow_guards: self.allow_guards,
            max_run: self.max_run,
            ..RunOptions::default()
        }
    }
}

/// How the syncs of one `ebb sync` went, for its exit code.
#[derive(Default)]
struct Outcome {
    failed: bool,
    blocked: bool,
    busy: bool,
}

impl Outcome {
    /// A sync ran and ended with `status`: a continued run is not a failure, it goes on next time.
    fn ran(&mut self, status: state::RunStatus) {
        use state::RunStatus::{Blocked, Completed, Continued};
        self.blocked |= status == Blocked;
        self.failed |= !matches!(status, Completed | Blocked | Continued);
    }

    /// A failure outranks a blocked sync, which outranks one skipped as already running.
    fn exit_code(&self) -> ExitCode {
        if self.failed {
            ExitCode::FAILURE
        } else if self.blocked {
            ExitCode::from(EXIT_BLOCKED)
        } else if self.busy {
            ExitCode::from(EXIT_ALREADY_RUNNING)
        } else {
            ExitCode::SUCCESS
        }
    }
}
