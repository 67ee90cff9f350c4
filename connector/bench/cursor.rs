//! The cursor cases (`ebb-bench cursor`): a cursor-narrowed diff against ebb's own full diff of
//! the same files, DuckDB running the equivalent query in process, and drt's own cursor mode.
//!
//! - Parquet: `preview` of B against the state of A with `cursor: updated_at` (B's 1% of
//!   changed rows and 0.5% of new ones carry a time after every time in A, scattered over the
//!   file), then the same with `--full-diff`. DuckDB runs `WHERE updated_at >= W` (every column
//!   of those rows fetched) plus the identity anti-join, timed inside Python on a fresh
//!   connection: no interpreter start or import counted. Its `EXCEPT` plus anti-join is timed
//!   the same way for the full diff.
//! - PostgreSQL: a table as A, synced, then changed to B; the `sync` of B timed for ebb with a
//!   cursor, ebb without one, drt's cursor mode (`mode: incremental`, `cursor_field`) and drt
//!   diffing, process start to exit, into the same stand-in.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use sqlx::Connection;

use crate::suite::{
    counts_line, drt_project, drt_run, ebb_binary, fmt_stats, load_table, measure, postgres_mapping, stats, CommonArgs, DrtStrategy, Env,
    Sample, ServerProcess, Stats, PARQUET_MAPPING,
};

#[derive(clap::Args)]
pub struct CursorArgs {
    /// Rows in the Parquet snapshots; 0 skips their cases.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Rows in the PostgreSQL table; 0 skips its cases.
    #[arg(long, default_value_t = 100_000)]
    pg_rows: u64,
    /// Rows in the table of the warehouse-side diff's case; 0 skips it.
    #[arg(long, default_value_t = 1_000_000)]
    warehouse_rows: u64,
    #[command(flatten)]
    pub common: CommonArgs,
    #[arg(long, default_value_t = 18797)]
    port: u16,
    #[arg(long)]
    out: Option<PathBuf>,
}

const SCHEMA: &str = "ebb_bench_cursor";
const WAREHOUSE_SCHEMA: &str = "ebb_bench_cursor_wh";
const WAREHOUSE_STATE: &str = "ebb_bench_cursor_wh_state";

/// `mapping` with `cursor: updated_at` (lag 5m) under its source.
fn with_cursor(mapping: &str) -> String {
    mapping.replacen(
        "\ndestination:",
        "\n  cursor:\n    column: updated_at\n    lag: 5m\ndestination:",
        1,
    )
}

/// In process: a fresh connection, then the rows past the bound with every column fetched,
/// and the ids of A missing from B. Prints the counts and the seconds it took.
const DUCKDB_CURSOR: &str = r#"
import sys, time, duckdb
a, b, bound = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
con = duckdb.connect()
past = len(con.execute(f"SELECT * FROM read_parquet('{b}') WHERE updated_at >= '{bound}'::TIMESTAMPTZ").fetchall())
gone = con.execute(f"SELECT count(*) FROM read_parquet('{a}') a ANTI JOIN read_parquet('{b}') b USING (id)").fetchone()[0]
print(past, gone, time.perf_counter() - t0)
"#;

/// The suite's full diff (`EXCEPT` plus the anti-join), timed the same way.
const DUCKDB_FULL: &str = r#"
import sys, time, duckdb
a, b = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
con = duckdb.connect()
changed_or_new = con.execute(f"SELECT count(*) FROM (SELECT * FROM read_parquet('{b}') EXCEPT SELECT * FROM read_parquet('{a}'))").fetchone()[0]
gone = con.execute(f"SELECT count(*) FROM read_parquet('{a}') a ANTI JOIN read_parquet('{b}') b USING (id)").fetchone()[0]
print(changed_or_new, gone, time.perf_counter() - t0)
"#;

pub async fn run(args: CursorArgs) -> Result<()> {
    let env = prepare(&args)?;
    let mut table = String::from("| case | ebb | peer | ratio (ebb ÷ peer) | target |\n|---|---|---|---|---|\n");
    let mut notes = String::new();
    let stand_in = ServerProcess::stand_in(&env.ebb, args.port)?;
    if args.rows > 0 {
        parquet_cases(&env, &args, &mut table, &mut notes).await?;
    }
    if args.pg_rows > 0 {
        postgres_cases(&env, &args, &mut table, &mut notes).await?;
    }
    if args.warehouse_rows > 0 {
        warehouse_cases(&env, &args, &mut table, &mut notes).await?;
    }
    drop(stand_in);
    let report = format!(
        "{table}\nMedian wall time of {} runs (min–max) · peak RSS, measured with /usr/bin/time.\n\n{notes}",
        args.common.runs.max(1)
    );
    println!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report)?;
    }
    Ok(())
}

fn prepare(args: &CursorArgs) -> Result<Env> {
    std::fs::create_dir_all(&args.common.work)?;
    let work = args.common.work.canonicalize()?;
    std::fs::write(work.join("users_cursor.yml"), with_cursor(PARQUET_MAPPING))?;
    std::fs::write(work.join("users_plain.yml"), PARQUET_MAPPING)?;
    let table = format!("{SCHEMA}.users");
    std::fs::write(work.join("pg_cursor.yml"), with_cursor(&postgres_mapping("pg_cursor", &table)))?;
    std::fs::write(work.join("pg_plain.yml"), postgres_mapping("pg_plain", &table))?;
    let warehouse = postgres_mapping("wh_cursor", "${TABLE}").replace(
        "    table: ${TABLE}",
        &format!("    table: ${{TABLE}}\n    diff: warehouse\n    state_schema: {WAREHOUSE_STATE}"),
    );
    std::fs::write(work.join("wh_cursor.yml"), with_cursor(&warehouse))?;
    std::fs::write(work.join("wh_plain.yml"), warehouse)?;
    std::fs::write(work.join("duckdb_cursor.py"), DUCKDB_CURSOR)?;
    std::fs::write(work.join("duckdb_full.py"), DUCKDB_FULL)?;
    Ok(Env {
        ebb: ebb_binary(args.common.ebb.as_deref())?,
        work,
        stand_in_url: format!("http://127.0.0.1:{}", args.port),
        database_url: args.common.database_url.clone(),
    })
}

/// DuckDB's script, `runs` times: the time it printed (in process), and its counts.
fn duckdb_in_process(python: &Path, script: &Path, argv: &[&str], runs: usize) -> Result<(Vec<f64>, String)> {
    let (mut times, mut counts) = (Vec::new(), String::new());
    for _ in 0..runs {
        let out = Command::new(python).arg(script).args(argv).output().context("running DuckDB")?;
        anyhow::ensure!(out.status.success(), "DuckDB failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let (head, secs) = text.rsplit_once(' ').context("DuckDB printed no time")?;
        times.push(secs.parse::<f64>()?);
        counts = head.to_string();
    }
    Ok((times, counts))
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// The bound a cursor run reads from, as the preview reports it.
fn read_from(env: &Env, state: &str, b: &str) -> Result<String> {
    let out = env
        .ebb(
            &["preview", "users_cursor.yml", "--state", state, "--limit", "0", "--json"],
            &[("SNAPSHOT", b)],
        )
        .output()?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).context("preview --json")?;
    let bound = json["cursor"]["read_from"]
        .as_str()
        .context("the preview read no bound: not a cursor run")?;
    Ok(bound.to_string())
}

async fn parquet_cases(env: &Env, args: &CursorArgs, table: &mut String, notes: &mut String) -> Result<()> {
    eprintln!("cursor: generating {} rows…", args.rows);
    let dir = env.work.join(format!("cursor-data-{}", args.rows));
    crate::generate_parquet(dir.clone(), args.rows).await?;
    let (a, b) = (
        dir.join("a.parquet").display().to_string(),
        dir.join("b.parquet").display().to_string(),
    );
    eprintln!("cursor: the first sync of A, which leaves the watermark…");
    let state = env.fresh_state("cursor_parquet")?;
    measure(&mut env.ebb(&["sync", "users_cursor.yml", "--state", &state], &[("SNAPSHOT", &a)]))?;
    let bound = read_from(env, &state, &b)?;
    let runs = args.common.runs.max(1);
    let (mut narrowed, mut full, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    let (mut narrowed_counts, mut full_counts) = (String::new(), String::new());
    for _ in 0..runs {
        let (s, out) = measure(&mut env.ebb(
            &["preview", "users_cursor.yml", "--state", &state, "--limit", "0"],
            &[("SNAPSHOT", &b)],
        ))?;
        narrowed.push(s);
        narrowed_counts = counts_line(&out);
        let preview_full = ["preview", "users_cursor.yml", "--state", &state, "--limit", "0", "--full-diff"];
        let (s, out) = measure(&mut env.ebb(&preview_full, &[("SNAPSHOT", &b)]))?;
        full.push(s);
        full_counts = counts_line(&out);
        let preview_plain = ["preview", "users_plain.yml", "--state", &state, "--limit", "0"];
        plain.push(measure(&mut env.ebb(&preview_plain, &[("SNAPSHOT", &b)]))?.0);
    }
    let python = &args.common.python;
    let (duck_cursor, duck_cursor_counts) = duckdb_in_process(python, &env.work.join("duckdb_cursor.py"), &[&a, &b, &bound], runs)?;
    let (duck_full, duck_full_counts) = duckdb_in_process(python, &env.work.join("duckdb_full.py"), &[&a, &b], runs)?;
    let (narrowed, full, plain) = (stats(&narrowed), stats(&full), stats(&plain));
    let (dc, df) = (median(duck_cursor), median(duck_full));
    let rows = args.rows;
    let _ = writeln!(
        table,
        "| Parquet {rows} rows, 1% changed (scattered), `preview` **with a cursor** | {} | ebb's own `--full-diff` preview: {} | {:.2}× | ≤ 0.35× |",
        fmt_stats(&narrowed),
        fmt_stats(&full),
        narrowed.median / full.median
    );
    let _ = writeln!(
        table,
        "| the same | {} | DuckDB in process, `WHERE updated_at >= W` (every column fetched) + the identity anti-join: {:.2} s ({:.2}–{:.2}) | {:.2}× | ≤ 1.0× |",
        fmt_stats(&narrowed),
        dc.0,
        dc.1,
        dc.2,
        narrowed.median / dc.0
    );
    let _ = writeln!(
        table,
        "| the same | {} | the same files' `preview` without a cursor (the same state): {} | {:.2}× | — |",
        fmt_stats(&narrowed),
        fmt_stats(&plain),
        narrowed.median / plain.median
    );
    for (label, ours) in [
        ("without a cursor (`preview`)", &plain),
        ("of a cursor sync (`preview --full-diff`)", &full),
    ] {
        let _ = writeln!(
            table,
            "| Parquet {rows} rows, the full diff {label}, seven attributes | {} | DuckDB `EXCEPT` + anti-join in process, fresh connection: {:.2} s ({:.2}–{:.2}) | {:.2}× | ≤ 0.7× |",
            fmt_stats(ours),
            df.0,
            df.1,
            df.2,
            ours.median / df.0
        );
    }
    let _ = writeln!(
        notes,
        "- Parquet: the cursor preview read from {bound}: {narrowed_counts}\n- the full diff: {full_counts}\n- DuckDB (rows past W, ids gone): {duck_cursor_counts}; full (changed or new, gone): {duck_full_counts}"
    );
    Ok(())
}

/// One timed `ebb sync` of B after an untimed one of A, from fresh state.
async fn ebb_change_run(env: &Env, database_url: &str, mapping: &str, state_name: &str) -> Result<(Sample, String)> {
    load_table(database_url, SCHEMA, "a").await?;
    let state = env.fresh_state(state_name)?;
    measure(&mut env.ebb(&["sync", mapping, "--state", &state], &[]))?;
    load_table(database_url, SCHEMA, "b").await?;
    measure(&mut env.ebb(&["sync", mapping, "--state", &state], &[]))
}

/// One timed drt run of B after a fresh one of A.
async fn drt_change_run(args: &CursorArgs, drt_dir: &Path, strategy: DrtStrategy) -> Result<Sample> {
    load_table(&args.common.database_url, SCHEMA, "a").await?;
    drt_run(&args.common.database_url, &args.common.drt, drt_dir, strategy, true).await?;
    load_table(&args.common.database_url, SCHEMA, "b").await?;
    drt_run(&args.common.database_url, &args.common.drt, drt_dir, strategy, false).await
}

async fn postgres_cases(env: &Env, args: &CursorArgs, table: &mut String, notes: &mut String) -> Result<()> {
    eprintln!("cursor: PostgreSQL, {} rows…", args.pg_rows);
    let dir = env.work.join(format!("cursor-pg-{}", args.pg_rows));
    crate::run_generate(&crate::GenerateArgs::postgres(dir, args.pg_rows, &args.common.database_url, SCHEMA)).await?;
    let drt_dir = drt_project(&env.work, &args.common.database_url, args.port, &format!("{SCHEMA}.users"))?;
    let (mut cursor, mut plain, mut drt_cursor, mut drt_diff) = (vec![], vec![], vec![], vec![]);
    let (mut cursor_counts, mut plain_counts) = (String::new(), String::new());
    for _ in 0..args.common.runs.max(1) {
        let (s, out) = ebb_change_run(env, &args.common.database_url, "pg_cursor.yml", "cursor_pg").await?;
        cursor.push(s);
        cursor_counts = counts_line(&out);
        let (s, out) = ebb_change_run(env, &args.common.database_url, "pg_plain.yml", "plain_pg").await?;
        plain.push(s);
        plain_counts = counts_line(&out);
        drt_cursor.push(drt_change_run(args, &drt_dir, DrtStrategy::Cursor).await?);
        drt_diff.push(drt_change_run(args, &drt_dir, DrtStrategy::Diff).await?);
    }
    let (cursor, plain, drt_cursor, drt_diff) = (stats(&cursor), stats(&plain), stats(&drt_cursor), stats(&drt_diff));
    let rows = args.pg_rows;
    let row = |label: &str, e: &Stats, peer: &str, d: &Stats, target: &str| {
        format!(
            "| PostgreSQL {rows} rows → stand-in, B (1% changed, 0.5% new) {label} | {} | {peer}: {} | {:.2}× | {target} |",
            fmt_stats(e),
            fmt_stats(d),
            e.median / d.median
        )
    };
    let _ = writeln!(
        table,
        "{}",
        row("**with a cursor**", &cursor, "drt's cursor mode (no diff)", &drt_cursor, "≤ 0.5×")
    );
    let _ = writeln!(table, "{}", row("**with a cursor**", &cursor, "drt diffing", &drt_diff, "≤ 0.05×"));
    let _ = writeln!(table, "{}", row("without a cursor", &plain, "drt diffing", &drt_diff, "≤ 0.1×"));
    let _ = writeln!(notes, "- PostgreSQL with a cursor: {cursor_counts}\n- without: {plain_counts}");
    Ok(())
}

/// `runs` runs of one ebb command over `TABLE`.
fn over_table(env: &Env, args: &[&str], table: &str, runs: usize) -> Result<(Stats, String)> {
    let (mut samples, mut counts) = (Vec::new(), String::new());
    for _ in 0..runs {
        let (s, out) = measure(&mut env.ebb(args, &[("TABLE", table)]))?;
        samples.push(s);
        counts = counts_line(&out);
    }
    Ok((stats(&samples), counts))
}

/// The warehouse-side diff with and without a cursor, on one state: made by a full sync of A
/// with the cursor mapping (which leaves the watermark); then a `sync` of A (nothing changed)
/// and a `preview` of B (1% changed, 0.5% new, 0.5% deleted) each way. Neither changes the state.
async fn warehouse_cases(env: &Env, args: &CursorArgs, table: &mut String, notes: &mut String) -> Result<()> {
    let rows = args.warehouse_rows;
    eprintln!("cursor: the warehouse-side diff, {rows} rows…");
    let dir = env.work.join(format!("cursor-wh-{rows}"));
    crate::run_generate(&crate::GenerateArgs::postgres(
        dir,
        rows,
        &args.common.database_url,
        WAREHOUSE_SCHEMA,
    ))
    .await?;
    let mut conn = sqlx::PgConnection::connect(&args.common.database_url).await?;
    let ddl = format!(
        "CREATE INDEX ON {WAREHOUSE_SCHEMA}.users_a (updated_at); CREATE INDEX ON {WAREHOUSE_SCHEMA}.users_b (updated_at);
         ANALYZE {WAREHOUSE_SCHEMA}.users_a; ANALYZE {WAREHOUSE_SCHEMA}.users_b; DROP SCHEMA IF EXISTS {WAREHOUSE_STATE} CASCADE;"
    );
    sqlx::Executor::execute(&mut conn, ddl.as_str()).await?;
    let (a, b) = (format!("{WAREHOUSE_SCHEMA}.users_a"), format!("{WAREHOUSE_SCHEMA}.users_b"));
    let state = env.fresh_state("cursor_wh")?;
    let (seed, _) = measure(&mut env.ebb(&["sync", "wh_cursor.yml", "--state", &state], &[("TABLE", &a)]))?;
    let runs = args.common.runs.max(1);
    let sync = |file| ["sync", file, "--state", state.as_str()];
    let preview = |file| ["preview", file, "--state", state.as_str(), "--limit", "0"];
    let (same_cursor, same_counts) = over_table(env, &sync("wh_cursor.yml"), &a, runs)?;
    let (same_plain, _) = over_table(env, &sync("wh_plain.yml"), &a, runs)?;
    let (diff_cursor, diff_counts) = over_table(env, &preview("wh_cursor.yml"), &b, runs)?;
    let (diff_plain, _) = over_table(env, &preview("wh_plain.yml"), &b, runs)?;
    for (label, cursor, plain, target) in [
        ("`sync` with nothing changed", &same_cursor, &same_plain, "≤ 3 s at 10M"),
        ("`preview` of B (1% changed)", &diff_cursor, &diff_plain, "≤ 10 s at 10M"),
    ] {
        let _ = writeln!(
            table,
            "| `diff: warehouse`, {rows} rows, {label}, **with a cursor** | {} | the same without a cursor: {} | {:.2}× | {target} |",
            fmt_stats(cursor),
            fmt_stats(plain),
            cursor.median / plain.median
        );
    }
    let _ = writeln!(
        notes,
        "- warehouse, {rows} rows: the state of A was made by one full sync with the cursor: {:.1} s\n- nothing changed: {same_counts}\n- B: {diff_counts}",
        seed.wall
    );
    Ok(())
}
