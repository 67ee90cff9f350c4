//! The `ebb` commands. `main` parses, sets up logging and dispatches here;
//! each command returns an exit code and prints its own output.

mod demo;
mod worker;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::config::env::{Env, ProcessEnv};
use crate::config::{self, ConfigErrors};
use crate::error::Error;
use crate::spec::{self, Mapping};
use crate::standin::{StandIn, StandInConfig};
use crate::state::{self, RunRecord, StateStore};
use crate::sync::{self, human_duration, RunOptions, RunReport, SyncJob};

#[derive(Debug, Parser)]
#[command(name = "ebb", version, about = "Sync warehouse users and accounts to Enterpret", long_about = None)]
pub struct Cli {
    /// Where sync state lives: sqlite://PATH or postgres://USER@HOST/DB[?schema=NAME].
    // A PostgreSQL URL may hold a password, so the environment's value is never printed.
    #[arg(
        long,
        global = true,
        env = "EBB_STATE",
        default_value = "sqlite://.ebb/state.db",
        hide_env_values = true
    )]
    pub state: String,
    /// Log line format (logs go to stderr).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, as in RUST_LOG (`info`, `ebb=debug`); `warn` by default, `info` for `ebb worker`.
    #[arg(long, global = true, env = "EBB_LOG")]
    pub log: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check mappings: syntax, schema, env vars, source and columns. Sends nothing.
    Validate {
        #[arg(required = true)]
        mappings: Vec<PathBuf>,
    },
    /// Dry run: counts, and the first requests exactly as they would be sent.
    Preview {
        mapping: PathBuf,
        /// How many request bodies to show.
        #[arg(long, default_value_t = 3)]
        limit: usize,
        /// One machine-readable JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Really send a few records, once, and show the destination's reply. State is untouched.
    Test {
        mapping: PathBuf,
        #[arg(long, default_value_t = 1)]
        records: usize,
    },
    /// Send new and changed records, and commit what the destination acknowledged.
    Sync {
        #[arg(required = true)]
        mappings: Vec<PathBuf>,
        /// Ignore state and send every record.
        #[arg(long)]
        full: bool,
        /// Print the summaries as JSON.
        #[arg(long)]
        json: bool,
        /// If another run of a sync holds its lock, wait for it instead of exiting.
        #[arg(long)]
        wait: bool,
    },
    /// The last runs per sync, with counts, status and sample rejections.
    Status {
        mappings: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
        /// Runs to show per sync.
        #[arg(long, default_value_t = 5)]
        limit: usize,
    },
    /// Forget a sync's state, so the next run sends everything.
    Reset { mapping: PathBuf },
    /// Run a local stand-in for Enterpret's webhooks.
    StandIn {
        #[arg(long, default_value_t = 8787)]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        #[arg(long, env = "STANDIN_USERS_KEY", default_value = "local-users-key", hide_env_values = true)]
        users_key: String,
        #[arg(long, env = "STANDIN_ACCOUNTS_KEY", default_value = "local-accounts-key", hide_env_values = true)]
        accounts_key: String,
        /// Requests per minute per object before answering 429.
        #[arg(long)]
        rpm: Option<u32>,
        /// Share of requests answered with a 500 (0 to 1).
        #[arg(long, default_value_t = 0.0)]
        fail_ratio: f64,
        /// Delay before each webhook reply.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
    },
    /// Sync the bundled sample users and accounts into an in-process stand-in, twice.
    Demo,
    /// Run the syncs of a folder of mappings on their schedules, with HTTP endpoints for
    /// health, metrics, status and triggers. SIGTERM or Ctrl-C stops it gracefully; SIGHUP reloads.
    Worker(worker::WorkerArgs),
    /// Ask a running worker to run a sync now.
    Trigger {
        /// The sync's name (`name:` in its mapping).
        name: String,
        /// Send every record, whatever state says.
        #[arg(long)]
        full: bool,
        /// The worker's address.
        #[arg(long, env = "EBB_WORKER_URL", default_value = "http://127.0.0.1:9187")]
        worker: String,
    },
    /// The run history of one sync, newest first.
    History {
        /// The sync's name (`name:` in its mapping).
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Check a running worker's `/healthz`: exit 0 if it and its state store answer.
    Health {
        #[arg(long, env = "EBB_WORKER_URL", default_value = "http://127.0.0.1:9187")]
        worker: String,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(dispatch(cli))
}

fn init_logging(cli: &Cli) {
    // A worker is a service: its runs are what its log is for.
    let default = if matches!(cli.command, Command::Worker(_)) {
        "info"
    } else {
        "warn"
    };
    let wanted = cli.log.as_deref().unwrap_or(default);
    let filter = tracing_subscriber::EnvFilter::try_new(wanted).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match cli.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn dispatch(cli: Cli) -> ExitCode {
    let env = ProcessEnv;
    match cli.command {
        Command::Validate { mappings } => validate(&mappings, &env).await,
        Command::Preview { mapping, limit, json } => report(preview(&cli.state, &mapping, limit, json, &env).await),
        Command::Test { mapping, records } => report(test(&mapping, records, &env).await),
        Command::Sync {
            mappings,
            full,
            json,
            wait,
        } => run_syncs(&cli.state, &mappings, SyncFlags { full, json, wait }, &env).await,
        Command::Status { mappings, json, limit } => report(status(&cli.state, &mappings, json, limit, &env).await),
        Command::Reset { mapping } => report(reset(&cli.state, &mapping, &env).await),
        Command::StandIn {
            port,
            host,
            users_key,
            accounts_key,
            rpm,
            fail_ratio,
            latency_ms,
        } => {
            let config = StandInConfig {
                users_key,
                accounts_key,
                rpm,
                fail_ratio: fail_ratio.clamp(0.0, 1.0),
                latency: Duration::from_millis(latency_ms),
            };
            report(stand_in(SocketAddr::new(host, port), config).await)
        }
        Command::Demo => report(demo::run().await),
        Command::Worker(args) => report(worker::run(&cli.state, args).await),
        Command::Trigger { name, full, worker } => report(worker::trigger(&worker, &name, full).await),
        Command::History { name, limit, json } => report(history(&cli.state, &name, limit, json).await),
        Command::Health { worker } => report(worker::health(&worker).await),
    }
}

/// Prints an error as `stage: message`, plus a hint, and picks the exit code.
fn report(result: Result<ExitCode, Error>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            print_error(&e);
            ExitCode::FAILURE
        }
    }
}

fn print_error(e: &Error) {
    match e {
        Error::Config(errors) => {
            for issue in &errors.0 {
                eprintln!("error: {issue}");
            }
        }
        other => eprintln!("error: {other}"),
    }
    if let Some(hint) = e.hint() {
        eprintln!("hint: {hint}");
    }
}

fn load(path: &Path, env: &dyn Env) -> Result<Mapping, Error> {
    Ok(spec::load(path, env)?)
}

async fn open_store(url: &str, read_only: bool) -> Result<Box<dyn StateStore>, Error> {
    Ok(state::open(url, read_only).await?)
}

async fn validate(paths: &[PathBuf], env: &dyn Env) -> ExitCode {
    let mut all = Vec::new();
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    for path in paths {
        let mapping = match spec::load(path, env) {
            Ok(m) => m,
            Err(ConfigErrors(issues)) => {
                all.extend(issues);
                continue;
            }
        };
        if let Some((_, other)) = names.iter().find(|(n, _)| n == &mapping.name) {
            all.push(config::ConfigIssue {
                file: path.clone(),
                line: 1,
                column: 1,
                field: "name".into(),
                message: format!(
                    "sync name {} is also used by {}; names must be unique",
                    crate::quote::quote(&mapping.name),
                    other.display()
                ),
                hint: None,
            });
        }
        names.push((mapping.name.clone(), path.clone()));
        let sync = match SyncJob::from_mapping(mapping) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        match sync.compile().await {
            Ok(_) => {}
            Err(Error::Config(ConfigErrors(issues))) => all.extend(issues),
            Err(e) => {
                let loc = sync.mapping.source.loc().clone();
                all.push(sync.mapping.issue(&loc, e.to_string(), None));
            }
        }
    }
    if all.is_empty() {
        for path in paths {
            println!("ok: {}", path.display());
        }
        ExitCode::SUCCESS
    } else {
        for issue in &all {
            eprintln!("error: {issue}");
        }
        eprintln!("{} problem{} found", all.len(), if all.len() == 1 { "" } else { "s" });
        ExitCode::FAILURE
    }
}

fn counts_line(c: &state::RunCounts) -> String {
    format!(
        "source {} · invalid {} · new {} · changed {} · unchanged {} · gone {} → sent {} · rejected {} · failed {}",
        c.source, c.invalid, c.new, c.changed, c.unchanged, c.gone, c.sent, c.rejected, c.failed
    )
}

async fn preview(state_url: &str, path: &Path, limit: usize, json: bool, env: &dyn Env) -> Result<ExitCode, Error> {
    let sync = SyncJob::from_mapping(load(path, env)?)?;
    let store = open_store(state_url, true).await?;
    let preview = sync::preview(&sync, store.as_ref(), limit).await?;
    if json {
        print_json(&preview)?;
        return Ok(ExitCode::SUCCESS);
    }
    let c = &preview.counts;
    println!(
        "{} → {} (dry run: nothing is sent, state is unchanged)",
        preview.sync, preview.destination
    );
    println!(
        "  source rows {} · invalid {} · new {} · changed {} · unchanged {} · gone {}",
        c.source, c.invalid, c.new, c.changed, c.unchanged, c.gone
    );
    if let Some(other) = &preview.state_was_for {
        println!("  {}", state_was_for_note(other));
    }
    println!(
        "  would send {} record{}",
        preview.to_send,
        if preview.to_send == 1 { "" } else { "s" }
    );
    for (i, r) in preview.rejections.iter().take(10).enumerate() {
        if i == 0 {
            println!("  rejected rows (first {}):", preview.rejections.len().min(10));
        }
        println!("    {}: {}", r.position, r.reason);
    }
    for (i, request) in preview.requests.iter().enumerate() {
        println!(
            "\nrequest {} of {}: {} {}",
            i + 1,
            preview.to_send.div_ceil(sync.destination.capabilities().max_batch_records.max(1)),
            request.method,
            request.url
        );
        print_json(&request.body)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn test(path: &Path, records: usize, env: &dyn Env) -> Result<ExitCode, Error> {
    let sync = SyncJob::from_mapping(load(path, env)?)?;
    let exchanges = sync::test_send(&sync, records.max(1)).await?;
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

fn print_report(r: &RunReport) {
    println!(
        "{}: {} in {} — {}",
        r.sync,
        r.status.as_str(),
        human_duration(r.duration_ms),
        counts_line(&r.counts)
    );
    if let Some(other) = &r.state_was_for {
        println!("  {}", state_was_for_note(other));
    }
    if let Some(e) = &r.error {
        println!("  error: {e}");
    }
}

/// What a person reads when a sync's state was kept for another destination.
fn state_was_for_note(other: &str) -> String {
    format!("state was for {other}, not this destination: it starts empty, so every record is sent once")
}

/// Ctrl-C once: stop starting batches, finish and commit in-flight ones. Twice: exit now.
fn cancel_on_ctrl_c() -> CancellationToken {
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
async fn run_one(mapping: Mapping, store: &dyn StateStore, options: &RunOptions) -> Result<RunReport, Error> {
    let alerts = mapping.alerts.clone();
    let report = sync::run(&SyncJob::from_mapping(mapping)?, store, options).await?;
    if let Some(alerts) = &alerts {
        if let Ok(client) = reqwest::Client::builder().build() {
            crate::alerts::after_run(store, &client, alerts, &report, "cli").await;
        }
    }
    Ok(report)
}

/// Every mapping, or every problem of all of them.
fn load_all(paths: &[PathBuf], env: &dyn Env) -> Result<Vec<Mapping>, Error> {
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

struct SyncFlags {
    full: bool,
    json: bool,
    wait: bool,
}

async fn run_syncs(state_url: &str, paths: &[PathBuf], flags: SyncFlags, env: &dyn Env) -> ExitCode {
    let SyncFlags { full, json, wait } = flags;
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
    let options = RunOptions {
        full,
        progress: !json,
        cancel: cancel.clone(),
        wait_for_lock: wait,
        ..RunOptions::default()
    };
    let mut failed = false;
    let mut busy = false;
    let mut reports = Vec::new();
    for mapping in mappings {
        if cancel.is_cancelled() {
            break;
        }
        match run_one(mapping, store.as_ref(), &options).await {
            Ok(r) => {
                failed |= r.status != state::RunStatus::Completed;
                if !json {
                    print_report(&r);
                }
                reports.push(r);
            }
            Err(e @ Error::AlreadyRunning(_)) => {
                busy = true;
                print_error(&e);
            }
            Err(e) => {
                failed = true;
                print_error(&e);
            }
        }
    }
    if json {
        if let Err(e) = print_json(&reports) {
            failed = true;
            print_error(&e);
        }
    }
    if failed {
        ExitCode::FAILURE
    } else if busy {
        ExitCode::from(EXIT_ALREADY_RUNNING)
    } else {
        ExitCode::SUCCESS
    }
}

#[derive(serde::Serialize)]
struct SyncStatus {
    sync: String,
    runs: Vec<RunRecord>,
    rejections: Vec<state::StoredRejection>,
}

async fn status(state_url: &str, paths: &[PathBuf], json: bool, limit: usize, env: &dyn Env) -> Result<ExitCode, Error> {
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
        out.push(SyncStatus {
            sync: name,
            runs,
            rejections,
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
                println!("    {}: {}", r.position, r.reason);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_run(r: &RunRecord) {
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
        "  run {} {} {}{}{by} ({took}) {}",
        r.id,
        r.status.as_str(),
        when,
        if r.full_resync { " full" } else { "" },
        counts_line(&r.counts)
    );
    if let Some(e) = &r.error {
        println!("      error: {e}");
    }
}

async fn history(state_url: &str, name: &str, limit: usize, json: bool) -> Result<ExitCode, Error> {
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

async fn reset(state_url: &str, path: &Path, env: &dyn Env) -> Result<ExitCode, Error> {
    let mapping = load(path, env)?;
    let store = open_store(state_url, false).await?;
    let forgotten = store.reset(&mapping.name).await?;
    println!(
        "{}: forgot {forgotten} record{}; the next sync sends everything",
        mapping.name,
        if forgotten == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}

async fn stand_in(addr: SocketAddr, config: StandInConfig) -> Result<ExitCode, Error> {
    let server = StandIn::start(addr, config).await.map_err(|source| Error::Io {
        context: format!("stand-in cannot listen on {addr}"),
        source,
    })?;
    println!("stand-in for Enterpret listening on {}", server.url());
    println!("  POST /webhook/users/custom, /webhook/accounts/custom · GET /records/users, /records/accounts, /stats");
    let _ = tokio::signal::ctrl_c().await;
    server.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// Prints the error and its hint; the exit code of a command that could not start.
fn failure(e: &Error) -> ExitCode {
    print_error(e);
    ExitCode::FAILURE
}

/// One pretty JSON document on stdout. A value that cannot be serialised is an error, never an
/// empty line that a script would read as "nothing".
fn print_json(value: &impl serde::Serialize) -> Result<(), Error> {
    println!("{}", serde_json::to_string_pretty(value).map_err(Error::Json)?);
    Ok(())
}
