//! `ebb-bench`: the benchmark suite's data generator and driver.
//!
//! It is not part of the product: `scripts/bench.sh` builds it, installs the
//! peers (DuckDB, drt) into a throwaway venv, and runs `ebb-bench suite`.

mod backfill;
mod cursor;
mod generate;
#[cfg(feature = "bench-s3")]
mod object_store;
mod status_page;
mod suite;
mod warehouse;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ebb-bench", about = "ebb's benchmark suite: data generator and driver")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write snapshots A and B as Parquet plus truth.json, and optionally load them into PostgreSQL.
    Generate(GenerateArgs),
    /// Run every case several times against the peers and print the results table.
    Suite(suite::SuiteArgs),
    /// Only the cursor cases: a cursor-narrowed diff against the full diff, DuckDB and drt's cursor mode.
    Cursor(cursor::CursorArgs),
    /// Only the warehouse-side diff's cases: in process and in the warehouse, on the same tables.
    WarehouseDiff(warehouse::WarehouseArgs),
    /// Only the object-store case: B read from a local S3 server and from disk.
    #[cfg(feature = "bench-s3")]
    ObjectStore(object_store::ObjectStoreArgs),
    /// An S3-compatible server over a folder (one subfolder a bucket), for the object-store case.
    #[cfg(feature = "bench-s3")]
    #[command(hide = true)]
    S3Server {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        port: u16,
        #[arg(long, value_enum, default_value = "whole")]
        gets: object_store::Gets,
    },
    /// How long a change waits during a long paced first sync, with and without time-boxed runs.
    Backfill(backfill::BackfillArgs),
    /// Only the status page case: a worker over 200 syncs and 10,000 runs, `GET /` timed.
    StatusPage {
        /// The `ebb` binary; by default the one next to this one.
        #[arg(long)]
        ebb: Option<PathBuf>,
        #[arg(long, default_value = "target/bench")]
        work: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Folder for a.parquet, b.parquet and truth.json.
    #[arg(long)]
    out: PathBuf,
    /// Also load both snapshots as `{schema}.users_a` and `{schema}.users_b`.
    #[arg(long)]
    postgres: Option<String>,
    #[arg(long, default_value = "ebb_bench")]
    schema: String,
    /// Which columns: `users` (the suite's main case) or `mixed` (two more: a decimal and a float).
    #[arg(long, value_enum, default_value_t = generate::Shape::Users)]
    shape: generate::Shape,
}

pub async fn run_generate(args: &GenerateArgs) -> Result<generate::Truth> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let truth = generate::truth(args.seed, args.rows);
    let (seed, rows, shape) = (args.seed, args.rows, args.shape);
    let (a, b) = (args.out.join("a.parquet"), args.out.join("b.parquet"));
    // Both files at once: the generator is CPU-bound and there are two cores.
    let wa = tokio::task::spawn_blocking(move || generate::write_parquet(&a, shape, generate::rows(seed, rows, false)));
    let wb = tokio::task::spawn_blocking(move || generate::write_parquet(&b, shape, generate::rows(seed, rows, true)));
    let (na, nb) = (wa.await??, wb.await??);
    anyhow::ensure!(
        na == truth.rows_a && nb == truth.rows_b,
        "wrote {na}/{nb} rows, truth says {truth:?}"
    );
    std::fs::write(args.out.join("truth.json"), serde_json::to_string_pretty(&truth)?)?;
    if let Some(url) = &args.postgres {
        generate::load_postgres(url, &args.schema, "users_a", generate::rows(seed, rows, false)).await?;
        generate::load_postgres(url, &args.schema, "users_b", generate::rows(seed, rows, true)).await?;
    }
    Ok(truth)
}

impl GenerateArgs {
    /// The users snapshots A and B in `out`, also loaded into PostgreSQL's `schema`.
    pub fn postgres(out: PathBuf, rows: u64, url: &str, schema: &str) -> GenerateArgs {
        GenerateArgs {
            rows,
            seed: 42,
            out,
            postgres: Some(url.to_string()),
            schema: schema.to_string(),
            shape: generate::Shape::Users,
        }
    }
}

/// The users snapshots A and B of `rows` rows as Parquet only, with the suite's seed.
pub async fn generate_parquet(out: PathBuf, rows: u64) -> Result<generate::Truth> {
    run_generate(&GenerateArgs {
        rows,
        seed: 42,
        out,
        postgres: None,
        schema: String::new(),
        shape: generate::Shape::Users,
    })
    .await
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Generate(args) => {
            let truth = run_generate(&args).await?;
            println!("{}", serde_json::to_string(&truth)?);
        }
        Command::Suite(args) => suite::run(args).await?,
        Command::Cursor(args) => cursor::run(args).await?,
        Command::Backfill(args) => backfill::run(args).await?,
        Command::WarehouseDiff(args) => {
            let (table, notes) = warehouse::run(&args).await?;
            println!(
                "{table}\nMedian wall time of {} runs (min–max) · peak RSS, measured with /usr/bin/time.\n\n{notes}",
                args.runs
            );
        }
        #[cfg(feature = "bench-s3")]
        Command::ObjectStore(args) => {
            let (row, notes) = object_store::run(&args).await?;
            println!(
                "| case | ebb | peer | ratio | target |\n|---|---|---|---|---|\n{row}\n\nMedian wall time of {} runs (min–max) · peak RSS.\n\n{notes}",
                args.runs
            );
        }
        #[cfg(feature = "bench-s3")]
        Command::S3Server { root, port, gets } => object_store::serve(&root, port, gets).await?,
        Command::StatusPage { ebb, work } => {
            let ebb = suite::ebb_binary(ebb.as_deref())?;
            std::fs::create_dir_all(&work)?;
            println!("{}", status_page::row(&status_page::measure(&ebb, &work.canonicalize()?).await?));
        }
    }
    Ok(())
}
