//! The `ebb` commands. `main` parses, sets up logging and dispatches here;
//! each command returns an exit code and prints its own output.

mod demo;
mod init;
mod output;
mod preview;
mod progress;
mod record;
mod rejected;
mod run;
mod standin;
mod status;
mod suppress;
mod validate;
mod worker;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::config::env::{Env, ProcessEnv};
use crate::error::Error;
use crate::selection::Selection;
use crate::spec::{self, Mapping};
use crate::state::{self, StateStore};
pub(super) use output::TEXT_COLUMNS;
use output::{failure, print_counts, print_error, print_json, print_wrapped, report};

#[derive(Debug, Parser)]
#[command(name = "ebb", version, about = "Sync warehouse users and accounts to Enterpret and to customer-profile platforms", long_about = None)]
pub struct Cli {
    /// Where sync state lives: a file path or sqlite://PATH (SQLite), or postgres://USER@HOST/DB[?schema=NAME].
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

/// `--select` and `--exclude`, as dbt has them.
#[derive(Debug, Default, clap::Args)]
pub struct SelectArgs {
    /// Only these mappings (repeatable): `tag:NAME`, a sync name, a file name, or a glob of names.
    #[arg(long = "select", value_name = "SELECTOR")]
    pub select: Vec<String>,
    /// Leave these out (repeatable; same forms as --select); it wins over --select.
    #[arg(long = "exclude", value_name = "SELECTOR")]
    pub exclude: Vec<String>,
}

impl SelectArgs {
    pub fn selection(&self) -> Result<Selection, Error> {
        Ok(Selection::new(&self.select, &self.exclude)?)
    }
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
        /// Mapping files, or folders of them.
        #[arg(required = true)]
        mappings: Vec<PathBuf>,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Dry run: counts, and the first requests exactly as they would be sent.
    Preview {
        /// Mapping files, or folders of them.
        #[arg(required = true)]
        mappings: Vec<PathBuf>,
        #[command(flatten)]
        select: SelectArgs,
        /// How many request bodies to show; with --explain, how many records to explain.
        #[arg(long, default_value_t = 3)]
        limit: usize,
        /// For each record a run would send or delete: what changed since the payload the
        /// destination last acknowledged, field by field.
        #[arg(long)]
        explain: bool,
        /// With `source.cursor:`, read every row rather than only those past the watermark.
        #[arg(long)]
        full_diff: bool,
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
    Sync(run::SyncArgs),
    /// The last runs per sync, with counts, status and sample rejections.
    Status {
        /// Mapping files or folders; every sync in state without them.
        mappings: Vec<PathBuf>,
        #[command(flatten)]
        select: SelectArgs,
        #[arg(long)]
        json: bool,
        /// Runs to show per sync.
        #[arg(long, default_value_t = 5)]
        limit: usize,
    },
    /// Forget a sync's state, so the next run sends everything. The suppression list stays.
    Reset { mapping: PathBuf },
    /// Never send these identities again (no request is sent), until `ebb unsuppress`.
    Suppress {
        mapping: PathBuf,
        #[arg(required = true)]
        identities: Vec<String>,
    },
    /// Lift suppressions: the next run sends those records again if they are in the source.
    Unsuppress {
        mapping: PathBuf,
        #[arg(required = true)]
        identities: Vec<String>,
    },
    /// The records a sync rejects now (by the mapping or the destination): why, and since when.
    Rejected {
        mapping: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// One record: the payload the destination last acknowledged, when and by which runs, and
    /// whether it is rejected or suppressed now.
    Record {
        mapping: PathBuf,
        /// Its identity: the id, or the email for profiles.
        identity: String,
        #[arg(long)]
        json: bool,
    },
    /// A sync's suppression list: when, why and by which run.
    Suppressed {
        mapping: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Delete records at the destination now; each acknowledged delete is suppressed.
    Delete {
        mapping: PathBuf,
        #[arg(required = true)]
        identities: Vec<String>,
    },
    /// Run a local stand-in for Enterpret's webhooks and for a profiles API.
    StandIn(standin::StandInArgs),
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
        #[command(flatten)]
        worker: worker::WorkerClientArgs,
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
    /// Write a first mapping from a source's schema: the identity and creation time guessed,
    /// every other column a typed field, secrets as `${VAR}`s.
    Init(init::InitArgs),
    /// Print the JSON Schema of mapping files, for editors and CI (`# yaml-language-server: $schema=…`).
    Schema,
    /// Check a running worker's `/healthz`: exit 0 if it and its state store answer.
    Health {
        #[command(flatten)]
        worker: worker::WorkerClientArgs,
    },
}

pub fn main() -> ExitCode {
    crate::panic::install_hook();
    let matches = Cli::command().get_matches();
    // What an internal error says it happened in: `ebb sync`.
    let command = format!("ebb {}", matches.subcommand_name().unwrap_or_default());
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if !matches!(cli.command, Command::Worker(_)) {
        quiet_on_closed_pipe();
    }
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A run catches its own panics and records itself as failed; this catches the rest.
    match runtime.block_on(crate::panic::catch(&command, dispatch(cli))) {
        Ok(code) => code,
        Err(internal) => failure(&Error::Internal(internal)),
    }
}

/// `ebb preview … | head` ends quietly when `head` has read enough, as other command-line
/// tools do, instead of failing with "internal error: failed printing to stdout". Rust ignores
/// SIGPIPE, so a print to a closed pipe panics; the default disposition ends the process there.
/// Nothing is lost by it: a run commits before its summary is printed. The worker, a service
/// that logs, keeps ignoring SIGPIPE.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: sets a signal's disposition, before the runtime starts any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
        Command::Validate { mappings, select } => match selected(&mappings, &select) {
            Ok(files) => validate::validate(&files, &env).await,
            Err(e) => failure(&e),
        },
        Command::Preview {
            mappings,
            select,
            limit,
            json,
            explain,
            full_diff,
        } => {
            // One file named alone keeps its one JSON document; a folder or a selection gives a list.
            let one = mappings.len() == 1 && !mappings[0].is_dir() && select.select.is_empty() && select.exclude.is_empty();
            let shape = preview::PreviewOutput {
                limit,
                json,
                one,
                explain,
                full_diff,
            };
            report(match selected(&mappings, &select) {
                Ok(files) => preview::preview_all(&cli.state, &files, shape, &env).await,
                Err(e) => Err(e),
            })
        }
        Command::Test { mapping, records } => report(preview::test(&cli.state, &mapping, records, &env).await),
        Command::Sync(args) => match selected(&args.mappings, &args.select) {
            Ok(files) => run::run_syncs(&cli.state, &files, args.flags(), &env).await,
            Err(e) => failure(&e),
        },
        Command::Status {
            mappings,
            select,
            json,
            limit,
        } => report(match status_files(&mappings, &select) {
            Ok(files) => status::status(&cli.state, &files, json, limit, &env).await,
            Err(e) => Err(e),
        }),
        Command::Reset { mapping } => report(status::reset(&cli.state, &mapping, &env).await),
        Command::Suppress { mapping, identities } => report(suppress::suppress(&cli.state, &mapping, &identities, &env).await),
        Command::Unsuppress { mapping, identities } => report(suppress::unsuppress(&cli.state, &mapping, &identities, &env).await),
        Command::Rejected { mapping, json } => report(rejected::rejected(&cli.state, &mapping, json, &env).await),
        Command::Record { mapping, identity, json } => report(record::record(&cli.state, &mapping, &identity, json, &env).await),
        Command::Suppressed { mapping, json } => report(suppress::list(&cli.state, &mapping, json, &env).await),
        Command::Delete { mapping, identities } => report(suppress::delete(&cli.state, &mapping, &identities, &env).await),
        Command::StandIn(args) => report(standin::stand_in(args).await),
        Command::Demo => report(demo::run().await),
        Command::Worker(args) => report(worker::run(&cli.state, args).await),
        Command::Trigger { name, full, worker } => report(worker::trigger(&worker, &name, full).await),
        Command::History { name, limit, json } => report(status::history(&cli.state, &name, limit, json).await),
        Command::Health { worker } => report(worker::health(&worker).await),
        Command::Init(args) => report(init::init(args).await),
        Command::Schema => report(print_json(&spec::json_schema()).map(|()| ExitCode::SUCCESS)),
    }
}

/// The mapping files the arguments name (folders expanded), narrowed by `--select`/`--exclude`.
fn selected(paths: &[PathBuf], select: &SelectArgs) -> Result<Vec<PathBuf>, Error> {
    Ok(select.selection()?.files(paths)?)
}

/// `ebb status`'s mappings: none means every sync in state, which has no tags to select by.
fn status_files(paths: &[PathBuf], select: &SelectArgs) -> Result<Vec<PathBuf>, Error> {
    match (paths.is_empty(), select.select.is_empty() && select.exclude.is_empty()) {
        (true, true) => Ok(Vec::new()),
        (true, false) => Err(Error::Usage(
            "--select and --exclude choose among mapping files: name them or their folder, as in `ebb status mappings/ --select tag:crm`"
                .into(),
        )),
        (false, _) => selected(paths, select),
    }
}

fn load(path: &Path, env: &dyn Env) -> Result<Mapping, Error> {
    Ok(spec::load(path, env)?)
}

pub(super) async fn open_store(url: &str, read_only: bool) -> Result<Box<dyn StateStore>, Error> {
    Ok(state::open(url, read_only).await?)
}
