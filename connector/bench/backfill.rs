//! How long a change waits during a long, paced first sync: a real `ebb worker` sends a
//! PostgreSQL table to the stand-in at a fixed rate while the benchmark changes rows the
//! destination already holds, every few seconds, and times each change until the stand-in holds
//! its new value. Once with time-boxed runs (`max_run:` as long as the period), once without a
//! box, where a change waits for the backfill to end, as it does in the tools that queue
//! changes behind a backfill.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ebb::standin::{StandIn, StandInConfig};

#[derive(clap::Args)]
pub struct BackfillArgs {
    /// Rows in the table: the first sync's records.
    #[arg(long, default_value_t = 100_000)]
    rows: u64,
    /// The destination's limit and the sync's pace, in requests a minute (15 records each).
    #[arg(long, default_value_t = 6_000)]
    rpm: u32,
    /// The worker's period, and the box of a boxed run.
    #[arg(long, default_value = "10s")]
    period: String,
    /// How often ten delivered rows change.
    #[arg(long, default_value_t = 5)]
    change_every_secs: u64,
    /// The `ebb` binary; by default the one next to this one.
    #[arg(long)]
    ebb: Option<PathBuf>,
    #[arg(long, default_value = "target/bench")]
    work: PathBuf,
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    database_url: String,
}

/// One backfill: how long it took, and each change's delay.
struct Outcome {
    backfill: Duration,
    delays: Vec<Duration>,
}

pub async fn run(args: BackfillArgs) -> Result<()> {
    let ebb = match &args.ebb {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("ebb"),
    };
    let pool = sqlx::PgPool::connect(&args.database_url).await.context("PostgreSQL")?;
    let mut lines = Vec::new();
    for (label, max_run) in [("boxed (`max_run` = period)", args.period.as_str()), ("no box", "24h")] {
        load_table(&pool, args.rows).await?;
        let outcome = backfill(&args, &ebb, &pool, max_run).await?;
        lines.push(row(label, &outcome));
    }
    sqlx::raw_sql("DROP SCHEMA IF EXISTS ebb_bench_backfill CASCADE")
        .execute(&pool)
        .await?;
    println!("| runs | backfill | changes | delay, median | delay, max |\n|---|---|---|---|---|");
    for line in lines {
        println!("{line}");
    }
    println!(
        "\n{} rows at {} requests/min (15 records each) under `ebb worker` with `every: {}`; ten delivered rows changed every {} s.",
        args.rows, args.rpm, args.period, args.change_every_secs
    );
    Ok(())
}

fn row(label: &str, o: &Outcome) -> String {
    let mut delays = o.delays.clone();
    delays.sort();
    let median = delays.get(delays.len() / 2).copied().unwrap_or_default();
    let max = delays.last().copied().unwrap_or_default();
    format!(
        "| {label} | {:.0} s | {} | {:.1} s | {:.1} s |",
        o.backfill.as_secs_f64(),
        delays.len(),
        median.as_secs_f64(),
        max.as_secs_f64()
    )
}

async fn load_table(pool: &sqlx::PgPool, rows: u64) -> Result<()> {
    sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS ebb_bench_backfill CASCADE; CREATE SCHEMA ebb_bench_backfill;
         CREATE TABLE ebb_bench_backfill.people (id text PRIMARY KEY, email text, created bigint NOT NULL);
         INSERT INTO ebb_bench_backfill.people SELECT 'p' || g, 'p' || g || '@example.com', 1700000000 + g
         FROM generate_series(1, {rows}) g;"
    ))
    .execute(pool)
    .await?;
    Ok(())
}

/// One first sync under a worker, with rows changing while it goes.
async fn backfill(args: &BackfillArgs, ebb: &Path, pool: &sqlx::PgPool, max_run: &str) -> Result<Outcome> {
    let standin = StandIn::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        StandInConfig {
            rpm: Some(args.rpm),
            ..StandInConfig::default()
        },
    )
    .await?;
    let dir = args.work.join("backfill");
    let _ = std::fs::remove_dir_all(&dir);
    let mappings = dir.join("mappings");
    std::fs::create_dir_all(&mappings)?;
    std::fs::write(mappings.join("people.yml"), mapping(args, &standin.url(), max_run))?;
    let worker = Worker::start(ebb, &mappings, &dir.join("state.db"), &args.database_url)?;
    let started = wait_for_first_request(&standin).await?;
    let mut pending: BTreeMap<String, Instant> = BTreeMap::new();
    let mut delays = Vec::new();
    let mut changed = std::collections::HashSet::new();
    let mut next_change = Instant::now() + Duration::from_secs(args.change_every_secs);
    let deadline = Instant::now() + Duration::from_secs(3 * 3600);
    loop {
        let held = standin.records("users");
        for r in &held {
            if let Some(at) = pending.get(&r.id) {
                if r.attributes.to_string().contains("changed-") {
                    delays.push(at.elapsed());
                    pending.remove(&r.id);
                }
            }
        }
        let complete = held.len() as u64 >= args.rows;
        if complete && pending.is_empty() {
            break;
        }
        if !complete && Instant::now() >= next_change {
            let ids: Vec<String> = held
                .iter()
                .map(|r| r.id.clone())
                .filter(|id| !changed.contains(id))
                .step_by(97)
                .take(10)
                .collect();
            change(pool, &ids).await?;
            for id in ids {
                changed.insert(id.clone());
                pending.insert(id, Instant::now());
            }
            next_change += Duration::from_secs(args.change_every_secs);
        }
        if Instant::now() > deadline {
            bail!("the backfill did not end within 3 h");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let backfill = started.elapsed();
    drop(worker);
    standin.stop().await;
    Ok(Outcome { backfill, delays })
}

fn mapping(args: &BackfillArgs, url: &str, max_run: &str) -> String {
    format!(
        "name: backfill\nevery: {}\nmax_run: {max_run}\nsource:\n  postgres:\n    url: ${{WAREHOUSE_URL}}\n    table: ebb_bench_backfill.people\n\
         destination:\n  enterpret:\n    object: user\n    api_key: ${{BENCH_KEY:-local-users-key}}\n    url: {url}\n\
         \x20   concurrency: 4\n    requests_per_minute: {}\nid: id\ncreated_at: created\nattributes:\n  Email: email\n",
        args.period, args.rpm
    )
}

async fn change(pool: &sqlx::PgPool, ids: &[String]) -> Result<()> {
    sqlx::query("UPDATE ebb_bench_backfill.people SET email = 'changed-' || id || '@example.com' WHERE id = ANY($1)")
        .bind(ids)
        .execute(pool)
        .await?;
    Ok(())
}

async fn wait_for_first_request(standin: &StandIn) -> Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while standin.requests().is_empty() {
        if Instant::now() > deadline {
            bail!("the worker sent nothing within 2 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Instant::now())
}

/// An `ebb worker` process, stopped when dropped.
struct Worker(Child);

impl Worker {
    fn start(ebb: &Path, mappings: &Path, state: &Path, database_url: &str) -> Result<Worker> {
        let child = Command::new(ebb)
            .args(["--state", &format!("sqlite://{}", state.display()), "worker"])
            .arg(mappings)
            .args(["--listen", "127.0.0.1:0"])
            .env("WAREHOUSE_URL", database_url)
            .env_remove("EBB_STATE")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", ebb.display()))?;
        Ok(Worker(child))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
