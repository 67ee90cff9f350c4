//! `ebb init`: writes a first mapping for a Parquet snapshot or a PostgreSQL table or query.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Args, ValueEnum};

use crate::config::secret::SecretString;
use crate::config::{Loc, PostgresRelation, SourceConfig};
use crate::error::Error;
use crate::init::{self, yaml_scalar, InitDestination, InitSource};
use crate::quote::quote;
use crate::source;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("from").args(["parquet", "postgres_url", "postgres_url_env"])))]
pub struct InitArgs {
    /// A Parquet file, folder or glob.
    #[arg(long, value_name = "PATH")]
    parquet: Option<String>,
    /// A PostgreSQL URL to read the schema and a sample from. A command line is visible to
    /// every user of the machine: a URL with a password is better in a variable
    /// (--postgres-url-env, or EBB_INIT_POSTGRES_URL). The mapping reads it from
    /// ${WAREHOUSE_URL}: this value is not written anywhere.
    #[arg(long, value_name = "URL", requires = "relation")]
    postgres_url: Option<String>,
    /// The environment variable that holds the PostgreSQL URL (its name, never the URL);
    /// without --parquet or --postgres-url, EBB_INIT_POSTGRES_URL is read.
    #[arg(long, value_name = "VAR", requires = "relation")]
    postgres_url_env: Option<String>,
    /// With --postgres-url: a `[schema.]name`.
    #[arg(long, group = "relation", conflicts_with = "parquet")]
    table: Option<String>,
    /// With --postgres-url: a SELECT.
    #[arg(long, group = "relation", conflicts_with = "parquet")]
    query: Option<String>,
    /// What the mapping syncs to.
    #[arg(long, value_enum)]
    destination: DestinationArg,
    /// Where to write the mapping; on stdout without it.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Overwrite --out if it exists.
    #[arg(long, requires = "out")]
    force: bool,
    /// The sync's name; by default the table's or the file's.
    #[arg(long)]
    name: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DestinationArg {
    EnterpretUsers,
    EnterpretAccounts,
    Profiles,
}

impl From<DestinationArg> for InitDestination {
    fn from(d: DestinationArg) -> InitDestination {
        match d {
            DestinationArg::EnterpretUsers => InitDestination::EnterpretUsers,
            DestinationArg::EnterpretAccounts => InitDestination::EnterpretAccounts,
            DestinationArg::Profiles => InitDestination::Profiles,
        }
    }
}

pub(super) async fn init(args: InitArgs) -> Result<ExitCode, Error> {
    if let Some(out) = &args.out {
        if out.exists() && !args.force {
            return Err(Error::Usage(format!(
                "{} exists; pass --force to overwrite it",
                quote(&out.display().to_string())
            )));
        }
    }
    let (config, block, default_name) = source_of(&args)?;
    let source = source::build(&config)?;
    let name = args.name.clone().unwrap_or_else(|| sync_name(&default_name));
    let from = InitSource {
        block,
        source: source.as_ref(),
    };
    let draft = init::draft(&name, &from, args.destination.into()).await?;
    match &args.out {
        Some(out) => write(out, &draft.text)?,
        None => print!("{}", draft.text),
    }
    for todo in &draft.todos {
        print_todo(todo);
    }
    if draft.todos.is_empty() {
        let file = args.out.as_ref().map_or("FILE".to_string(), |o| o.display().to_string());
        let vars = required_vars(&draft.text).join(", ");
        print_next(&format!("next: set {vars}, then `ebb validate {file}` and `ebb preview {file}`"));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_todo(todo: &str) {
    print_next(&format!("todo: {todo}"));
}

/// On stderr, so that a mapping printed on stdout stays a mapping.
fn print_next(text: &str) {
    let options = textwrap::Options::new(super::TEXT_COLUMNS).subsequent_indent("      ");
    for line in textwrap::wrap(text, options) {
        eprintln!("{line}");
    }
}

/// The `${VAR}`s of a mapping's text that have no default.
fn required_vars(text: &str) -> Vec<String> {
    let mut vars: Vec<String> = text
        .split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}'))
        .filter(|(var, _)| !var.contains(":-"))
        .map(|(var, _)| var.to_string())
        .collect();
    vars.dedup();
    vars
}

/// The source's configuration, its `source:` block as written, and the name it suggests.
fn source_of(args: &InitArgs) -> Result<(SourceConfig, String, String), Error> {
    let loc = Loc {
        line: 0,
        column: 0,
        field: "source".into(),
    };
    match &args.parquet {
        Some(pattern) => parquet_source(args, pattern, loc),
        None => postgres_source(args, postgres_url(args)?, loc),
    }
}

/// The variable `ebb init` reads a PostgreSQL URL from when no other source is named.
const INIT_URL_ENV: &str = "EBB_INIT_POSTGRES_URL";

/// The PostgreSQL URL: given, or from the variable named, or from [`INIT_URL_ENV`].
fn postgres_url(args: &InitArgs) -> Result<String, Error> {
    if let Some(url) = &args.postgres_url {
        return Ok(url.clone());
    }
    let (var, named) = match &args.postgres_url_env {
        Some(var) => (var.as_str(), true),
        None => (INIT_URL_ENV, false),
    };
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Ok(url),
        // The name is not repeated when it was given: someone who put the URL itself after
        // --postgres-url-env would see it printed back.
        _ if named => Err(Error::Usage(
            "the variable that --postgres-url-env names is not set: export the URL in it (--postgres-url-env takes a variable's name, never the URL)".into(),
        )),
        _ => Err(Error::Usage(format!(
            "give --parquet PATH, or a PostgreSQL URL: --postgres-url-env VAR, {INIT_URL_ENV}, or --postgres-url"
        ))),
    }
}

fn parquet_source(args: &InitArgs, pattern: &str, loc: Loc) -> Result<(SourceConfig, String, String), Error> {
    let absolute = std::env::current_dir().map(|cwd| cwd.join(pattern)).map_err(|source| Error::Io {
        context: "cannot read the current folder".into(),
        source,
    })?;
    // A glob has no canonical form; a path does, without its `..`s.
    let absolute = std::fs::canonicalize(&absolute).unwrap_or(absolute);
    let written = match args.out.as_deref().and_then(Path::parent) {
        Some(dir) => relative_to(&absolute, dir),
        None => pattern.to_string(),
    };
    let stem = Path::new(pattern.trim_end_matches(['*', '/']))
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sync".into());
    let config = SourceConfig::Parquet {
        pattern: absolute.display().to_string(),
        store: None,
        folders: Default::default(),
        loc,
    };
    Ok((config, format!("  parquet: {}\n", yaml_scalar(&written)), stem))
}

fn postgres_source(args: &InitArgs, url: String, loc: Loc) -> Result<(SourceConfig, String, String), Error> {
    let (relation, line, name) = match (&args.table, &args.query) {
        (Some(table), _) => {
            let parts: Vec<&str> = table.split('.').collect();
            let relation = match parts.as_slice() {
                [name] => PostgresRelation::Table {
                    schema: None,
                    name: name.to_string(),
                },
                [schema, name] => PostgresRelation::Table {
                    schema: Some(schema.to_string()),
                    name: name.to_string(),
                },
                _ => return Err(Error::Usage(format!("--table {}: give `[schema.]name`", quote(table)))),
            };
            let name = parts.last().map_or("sync", |n| n).to_string();
            (relation, format!("    table: {}\n", yaml_scalar(table)), name)
        }
        (None, Some(query)) => (
            PostgresRelation::Query(query.clone()),
            format!("    query: {}\n", yaml_scalar(query)),
            "sync".into(),
        ),
        (None, None) => return Err(Error::Usage("a PostgreSQL source needs --table or --query".into())),
    };
    let config = SourceConfig::Postgres {
        url: SecretString::new(url),
        relation,
        diff: Default::default(),
        loc,
    };
    Ok((config, format!("  postgres:\n    url: ${{WAREHOUSE_URL}}\n{line}"), name))
}

/// `path` as the mapping in `dir` should name it: relative when both are under one folder
/// other than the root (a project's), else absolute.
fn relative_to(path: &Path, dir: &Path) -> String {
    let dir = std::env::current_dir()
        .map(|cwd| cwd.join(dir))
        .unwrap_or_else(|_| dir.to_path_buf());
    let top = |p: &Path| p.components().take(2).map(|c| c.as_os_str().to_owned()).collect::<Vec<_>>();
    let relative = (top(path) == top(&dir)).then(|| pathdiff::diff_paths(path, &dir)).flatten();
    relative.unwrap_or_else(|| path.to_path_buf()).display().to_string()
}

/// A sync name from a file or table name: the characters names may hold, at most 100.
fn sync_name(from: &str) -> String {
    let name: String = from
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(crate::config::MAX_NAME_CHARS)
        .collect();
    if name.is_empty() {
        "sync".into()
    } else {
        name
    }
}

/// Writes the mapping, and the schema its modeline names when the folder has none yet.
fn write(out: &Path, text: &str) -> Result<(), Error> {
    let io = |what: &Path| {
        let context = format!("cannot write {}", what.display());
        move |source| Error::Io { context, source }
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(out, text).map_err(io(out))?;
    eprintln!("wrote {}", out.display());
    let schema = out.parent().unwrap_or(Path::new(".")).join("ebb.schema.json");
    if !schema.exists() {
        let json = serde_json::to_string_pretty(&crate::spec::json_schema()).map_err(Error::Json)?;
        std::fs::write(&schema, json + "\n").map_err(io(&schema))?;
        print_next(&format!("wrote {} (the schema the mapping's first line names)", schema.display()));
    }
    Ok(())
}
