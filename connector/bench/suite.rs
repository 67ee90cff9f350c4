//! The benchmark suite: every case several times, against its peers, on the
//! same files and the same machine, in one run.
//!
//! Each measured command runs under `/usr/bin/time`, which reports wall time
//! and peak RSS from the kernel's accounting. The stand-in runs as a process
//! of its own, so its CPU time is read from `/proc` and the CPU split of a
//! sync is measured, not guessed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sqlx::{Connection, Executor, PgConnection};

use crate::generate::Shape;
use crate::GenerateArgs;

/// What every benchmark command takes: how often to run, where, which ebb, and the peers.
#[derive(clap::Args)]
pub struct CommonArgs {
    /// Runs of each case; the table shows the median and the range.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    #[arg(long, default_value = "target/bench")]
    pub work: PathBuf,
    /// The `ebb` binary; by default the one next to this one.
    #[arg(long)]
    pub ebb: Option<PathBuf>,
    /// A Python with duckdb installed.
    #[arg(long)]
    pub python: PathBuf,
    /// drt-core's `drt` command.
    #[arg(long)]
    pub drt: PathBuf,
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub database_url: String,
}

#[derive(clap::Args)]
pub struct SuiteArgs {
    /// Rows in the main snapshots.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Rows in the large snapshots; 0 skips the large cases.
    #[arg(long, default_value_t = 5_000_000)]
    large_rows: u64,
    /// Rows in the PostgreSQL table of the end-to-end case against drt.
    #[arg(long, default_value_t = 100_000)]
    e2e_rows: u64,
    #[command(flatten)]
    pub common: CommonArgs,
    #[arg(long, default_value_t = 18787)]
    port: u16,
    /// Where to write the results table (Markdown).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Table sizes of the warehouse-side diff's cases; 0 skips them.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000_000u64, 10_000_000])]
    warehouse_rows: Vec<u64>,
    /// Skips the status page's case, which writes its state with this driver's own library: an
    /// `--ebb` of another version (a before-and-after comparison) cannot open state migrated by
    /// a newer one.
    #[arg(long)]
    skip_status_page: bool,
}

/// One measured command.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    pub wall: f64,
    pub rss_mb: f64,
    pub cpu: f64,
}

pub(crate) fn measure(cmd: &mut Command) -> Result<(Sample, String)> {
    let report = tempfile_path("time");
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-f").arg("%e %M %U %S").arg("-o").arg(&report).arg(&program).args(&args);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    let out = timed.output().with_context(|| format!("running {program:?}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{program:?} {args:?} failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(&report)?;
    let _ = std::fs::remove_file(&report);
    let f: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() != 4 {
        bail!("cannot read /usr/bin/time's report: {text:?}");
    }
    Ok((
        Sample {
            wall: f[0],
            rss_mb: f[1] / 1024.0,
            cpu: f[2] + f[3],
        },
        stdout,
    ))
}

fn tempfile_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ebb-bench-{tag}-{}-{}", std::process::id(), rand::random::<u32>()))
}

/// Median and range of several samples.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub rss_mb: f64,
    pub cpu: f64,
}

pub(crate) fn stats(samples: &[Sample]) -> Stats {
    let mut walls: Vec<f64> = samples.iter().map(|s| s.wall).collect();
    walls.sort_by(f64::total_cmp);
    let mut cpus: Vec<f64> = samples.iter().map(|s| s.cpu).collect();
    cpus.sort_by(f64::total_cmp);
    Stats {
        median: walls[walls.len() / 2],
        min: walls[0],
        max: walls[walls.len() - 1],
        rss_mb: samples.iter().map(|s| s.rss_mb).fold(0.0, f64::max),
        cpu: cpus[cpus.len() / 2],
    }
}

pub(crate) fn fmt_stats(s: &Stats) -> String {
    format!("{:.2} s ({:.2}–{:.2}) · {:.0} MB", s.median, s.min, s.max, s.rss_mb)
}

/// A server the suite runs as a process of its own (the stand-in, the S3 server), so that its
/// CPU time is measured apart from ebb's; killed on drop.
pub(crate) struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    /// Starts `command` and waits until something listens on `port`.
    pub fn start(command: &mut Command, port: u16, what: &str) -> Result<ServerProcess> {
        // Another server on the port would answer in this one's place, and be measured.
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            bail!("port {port} is taken: stop what listens there, or pass another port");
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting the {what}"))?;
        for _ in 0..100 {
            if let Some(status) = child.try_wait()? {
                bail!("the {what} exited with {status}");
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(ServerProcess { child });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("the {what} did not start on port {port}")
    }

    /// `ebb stand-in` on `port`.
    pub fn stand_in(ebb: &Path, port: u16) -> Result<ServerProcess> {
        ServerProcess::start(Command::new(ebb).args(["stand-in", "--port", &port.to_string()]), port, "stand-in")
    }

    pub fn cpu(&self) -> Result<f64> {
        process_cpu(self.child.id())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `ebb` binary a command was given, or else the one next to this one.
pub(crate) fn ebb_binary(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(path) => Ok(path.to_path_buf()),
        None => Ok(std::env::current_exe()?.with_file_name("ebb")),
    }
}

/// A process's user + system CPU seconds so far, from /proc.
pub(crate) fn process_cpu(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    Ok((ticks(11) + ticks(12)) / 100.0)
}

/// Shared with `tests/scale.rs`, so the suite measures the mapping the test checks.
pub(crate) const PARQUET_MAPPING: &str = include_str!("../../mappings/bench/users.yml");
/// The mixed case's mapping: eight attributes, a decimal among them.
const MIXED_MAPPING: &str = include_str!("../../mappings/bench/users_mixed.yml");

pub(crate) fn postgres_mapping(name: &str, table: &str) -> String {
    PARQUET_MAPPING.replace("name: bench_users", &format!("name: {name}")).replace(
        "  parquet: ${SNAPSHOT}",
        &format!("  postgres:\n    url: ${{WAREHOUSE_URL}}\n    table: {table}"),
    )
}

/// How drt finds what to send.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum DrtStrategy {
    /// drt's `rest_api` with `mode: upsert`: it sends every row on every run.
    Upsert,
    /// `incremental_strategy: diff` into the same REST destination behind a config with an
    /// `upsert_key` (the `rest_api_keyed` plugin in `connector/bench/drt_keyed`): drt diffs a
    /// snapshot of the query in the warehouse and sends only new and changed rows.
    Diff,
    /// `mode: incremental` with `cursor_field: updated_at`: drt reads only the rows past its
    /// watermark and sends every one of them, without diffing.
    Cursor,
}

impl DrtStrategy {
    fn sync_name(self) -> &'static str {
        match self {
            DrtStrategy::Upsert => "users_upsert",
            DrtStrategy::Diff => "users_diff",
            DrtStrategy::Cursor => "users_cursor",
        }
    }
}

/// drt's sync into the same stand-in: the same columns, 15 records per request, in the
/// Enterpret body shape, built by drt's batch template.
fn drt_sync(table: &str, port: u16, strategy: DrtStrategy) -> String {
    let (kind, key, sync) = match strategy {
        DrtStrategy::Upsert => ("rest_api", "", "  mode: upsert\n"),
        DrtStrategy::Diff => (
            "rest_api_keyed",
            "  upsert_key: [id]\n",
            "  mode: upsert\n  incremental_strategy: diff\n",
        ),
        DrtStrategy::Cursor => ("rest_api", "", "  mode: incremental\n  cursor_field: updated_at\n"),
    };
    let name = strategy.sync_name();
    format!(
        r#"name: {name}
model: "SELECT id, email, name, plan, arr, seats, extract(epoch from signup_at)::bigint AS created_at, active, tags, updated_at FROM {table}"
destination:
  type: {kind}
{key}  url: http://127.0.0.1:{port}/webhook/users/custom
  method: POST
  headers:
    Content-Type: application/json
    api-key: local-users-key
  body_mode: batch
  max_records_per_request: 15
  batch_template: |
    {{"users": [{{% for row in rows %}}{{"id": {{{{ row.id | tojson }}}}, "createdAt": {{{{ row.created_at }}}}, "attributes": {{"email": {{"s": [{{{{ row.email | tojson }}}}]}}, "name": {{"s": [{{{{ row.name | tojson }}}}]}}, "plan": {{"s": [{{{{ row.plan | tojson }}}}]}}, "arr": {{"n": [{{{{ row.arr }}}}]}}, "seats": {{"n": [{{{{ row.seats }}}}]}}, "active": {{"b": [{{{{ row.active | tojson }}}}]}}, "tags": {{"s": {{{{ row.tags | tojson }}}}}}}}}}{{% if not loop.last %}},{{% endif %}}{{% endfor %}}]}}
sync:
{sync}  batch_size: 1000
  rate_limit:
    requests_per_second: 100000
"#
    )
}

const DUCKDB_DIFF: &str = r#"
import sys, duckdb
a, b = sys.argv[1], sys.argv[2]
con = duckdb.connect()
changed_or_new = con.execute(f"SELECT count(*) FROM (SELECT * FROM read_parquet('{b}') EXCEPT SELECT * FROM read_parquet('{a}'))").fetchone()[0]
deleted = con.execute(f"SELECT count(*) FROM read_parquet('{a}') a ANTI JOIN read_parquet('{b}') b USING (id)").fetchone()[0]
print(changed_or_new, deleted)
"#;

pub(crate) struct Env {
    pub ebb: PathBuf,
    pub work: PathBuf,
    pub stand_in_url: String,
    pub database_url: String,
}

impl Env {
    pub fn ebb(&self, args: &[&str], envs: &[(&str, &str)]) -> Command {
        let mut c = Command::new(&self.ebb);
        c.args(args)
            .current_dir(&self.work)
            .env("STANDIN_URL", &self.stand_in_url)
            .env("WAREHOUSE_URL", &self.database_url)
            .env("EBB_LOG", "warn");
        for (k, v) in envs {
            c.env(k, v);
        }
        c
    }

    pub fn state(&self, name: &str) -> String {
        format!("sqlite://{}", self.work.join("state").join(format!("{name}.db")).display())
    }

    pub fn fresh_state(&self, name: &str) -> Result<String> {
        let dir = self.work.join("state");
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{name}.db")))
            {
                if path.is_dir() {
                    std::fs::remove_dir_all(&path)?;
                } else {
                    std::fs::remove_file(&path)?;
                }
            }
        }
        Ok(self.state(name))
    }
}

/// Fills `{schema}.users` with snapshot A or B, with an index on its cursor.
pub(crate) async fn load_table(url: &str, schema: &str, snapshot: &str) -> Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    conn.execute(
        format!(
            "DROP TABLE IF EXISTS {schema}.users; CREATE TABLE {schema}.users AS SELECT * FROM {schema}.users_{snapshot};
             ALTER TABLE {schema}.users ADD PRIMARY KEY (id); CREATE INDEX ON {schema}.users (updated_at); ANALYZE {schema}.users;"
        )
        .as_str(),
    )
    .await?;
    Ok(())
}

/// The line of `preview` or `sync` output that holds the counts.
pub(crate) fn counts_line(stdout: &str) -> String {
    stdout.lines().find(|l| l.contains("source ")).unwrap_or("").trim().to_string()
}

/// The diff case, side by side: `runs` previews of `b` against `state` with `mapping`, then
/// `runs` of DuckDB's `EXCEPT` on files `a` and `b`. Returns both and the counts each printed.
struct DiffRuns {
    ebb: Stats,
    duckdb: Stats,
    ebb_counts: String,
    duckdb_counts: String,
}

fn diff_against_duckdb(env: &Env, python: &Path, runs: usize, mapping: &str, state: &str, (a, b): (&str, &str)) -> Result<DiffRuns> {
    let (mut ebb, mut duckdb) = (Vec::new(), Vec::new());
    let (mut ebb_counts, mut duckdb_counts) = (String::new(), String::new());
    for _ in 0..runs {
        let (s, out) = measure(&mut env.ebb(&["preview", mapping, "--state", state, "--limit", "0"], &[("SNAPSHOT", b)]))?;
        ebb_counts = counts_line(&out);
        ebb.push(s);
    }
    for _ in 0..runs {
        let (s, out) = measure(Command::new(python).arg(env.work.join("duckdb_diff.py")).arg(a).arg(b))?;
        duckdb_counts = out.trim().to_string();
        duckdb.push(s);
    }
    Ok(DiffRuns {
        ebb: stats(&ebb),
        duckdb: stats(&duckdb),
        ebb_counts,
        duckdb_counts,
    })
}

/// What every case of one run of the suite shares, and the table they fill.
struct Suite<'a> {
    env: Env,
    args: &'a SuiteArgs,
    runs: usize,
    table: String,
    notes: String,
}

/// The work folder with the suite's mappings and scripts, and the commands' environment.
fn prepare(args: &SuiteArgs) -> Result<Env> {
    let ebb = crate::suite::ebb_binary(args.common.ebb.as_deref())?;
    std::fs::create_dir_all(&args.common.work)?;
    let work = args.common.work.canonicalize()?;
    std::fs::write(work.join("users.yml"), PARQUET_MAPPING)?;
    std::fs::write(work.join("users_untracked.yml"), format!("{PARQUET_MAPPING}keep_payloads: false\n"))?;
    std::fs::write(work.join("pg_extract.yml"), postgres_mapping("pg_extract", "ebb_bench.users_a"))?;
    std::fs::write(work.join("pg_e2e.yml"), postgres_mapping("pg_e2e", "ebb_bench_e2e.users"))?;
    std::fs::write(work.join("duckdb_diff.py"), DUCKDB_DIFF)?;
    Ok(Env {
        ebb,
        work,
        stand_in_url: format!("http://127.0.0.1:{}", args.port),
        database_url: args.common.database_url.clone(),
    })
}

pub async fn run(args: SuiteArgs) -> Result<()> {
    let mut suite = Suite {
        env: prepare(&args)?,
        args: &args,
        runs: args.common.runs.max(1),
        table: "| case | ebb | peer | ratio (ebb ÷ peer) | target |\n|---|---|---|---|---|\n".into(),
        notes: String::new(),
    };
    let (main_dir, truth) = suite.generate().await?;
    let (a, b) = (main_dir.join("a.parquet"), main_dir.join("b.parquet"));
    let (a, b) = (a.display().to_string(), b.display().to_string());
    let stand_in = ServerProcess::stand_in(&suite.env.ebb, args.port)?;
    suite.first_full_sync(&stand_in, &a).await?;
    let state = suite.env.state("main");
    suite.diff(&state, (&a, &b), &truth)?;
    suite.no_change(&state, &a)?;
    let (env, runs) = (&suite.env, suite.runs);
    object_store_case(
        env,
        runs,
        args.rows,
        Path::new(&b),
        &state,
        args.port + 3,
        &mut suite.table,
        &mut suite.notes,
    )
    .await?;
    suite.postgres_extract()?;
    if !args.skip_status_page {
        eprintln!("status page…");
        let row = crate::status_page::row(&crate::status_page::measure(&suite.env.ebb, &suite.env.work).await?);
        let _ = writeln!(suite.table, "{row}");
    }
    end_to_end(&suite.env, &args, runs, &mut suite.table, &mut suite.notes).await?;
    mixed_diff(&suite.env, &args, runs, args.rows, &mut suite.table, &mut suite.notes).await?;
    if args.large_rows > 0 {
        mixed_diff(&suite.env, &args, runs, args.large_rows, &mut suite.table, &mut suite.notes).await?;
        suite.large_snapshots().await?;
    }
    drop(stand_in);
    suite.warehouse().await?;
    let report = format!(
        "{}\nMedian wall time of {runs} runs (min–max) · peak RSS, measured with /usr/bin/time.\n\n{}",
        suite.table, suite.notes
    );
    println!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report)?;
    }
    Ok(())
}

impl Suite<'_> {
    /// The main snapshots (also loaded into PostgreSQL) and the end-to-end case's table.
    async fn generate(&self) -> Result<(PathBuf, crate::generate::Truth)> {
        eprintln!("generating data…");
        let main_dir = self.env.work.join(format!("data-{}", self.args.rows));
        let truth = crate::run_generate(&GenerateArgs {
            rows: self.args.rows,
            seed: 42,
            out: main_dir.clone(),
            postgres: Some(self.args.common.database_url.clone()),
            schema: "ebb_bench".into(),
            shape: Shape::Users,
        })
        .await?;
        crate::run_generate(&GenerateArgs {
            rows: self.args.e2e_rows,
            seed: 42,
            out: self.env.work.join(format!("data-{}", self.args.e2e_rows)),
            postgres: Some(self.args.common.database_url.clone()),
            schema: "ebb_bench_e2e".into(),
            shape: Shape::Users,
        })
        .await?;
        Ok((main_dir, truth))
    }

    /// First full sync of A, which also leaves the state of A for the diff cases.
    async fn first_full_sync(&mut self, stand_in: &ServerProcess, a: &str) -> Result<()> {
        eprintln!("first full sync of {} rows…", self.args.rows);
        let (mut samples, mut stand_in_cpu) = (Vec::new(), Vec::new());
        for _ in 0..self.runs {
            let state = self.env.fresh_state("main")?;
            let before = stand_in.cpu()?;
            let (s, _) = measure(&mut self.env.ebb(&["sync", "users.yml", "--state", &state], &[("SNAPSHOT", a)]))?;
            stand_in_cpu.push(stand_in.cpu()? - before);
            samples.push(s);
        }
        let full = stats(&samples);
        stand_in_cpu.sort_by(f64::total_cmp);
        let _ = writeln!(
            self.table,
            "| first full sync, {} rows → stand-in, 15/request, concurrency 8 | {} | — | — | CPU: ebb {:.1} s, stand-in {:.1} s |",
            self.args.rows,
            fmt_stats(&full),
            full.cpu,
            stand_in_cpu[stand_in_cpu.len() / 2]
        );
        payload_cost(&self.env, self.runs, self.args.rows, a, &full, &mut self.table).await
    }

    /// The diff: preview of B against the state of A, and DuckDB's EXCEPT on the same files.
    fn diff(&mut self, state: &str, (a, b): (&str, &str), truth: &crate::generate::Truth) -> Result<()> {
        eprintln!("diff of B against A…");
        let diff = diff_against_duckdb(&self.env, &self.args.common.python, self.runs, "users.yml", state, (a, b))?;
        let (e, d) = (diff.ebb, diff.duckdb);
        let _ = writeln!(
            self.table,
            "| preview of B against the state of A, {} rows | {} | DuckDB EXCEPT + anti-join: {} | time {:.2}×, RSS {:.2}× | ≤ 1.0× time, ≤ 0.5× RSS |",
            self.args.rows,
            fmt_stats(&e),
            fmt_stats(&d),
            e.median / d.median,
            e.rss_mb / d.rss_mb
        );
        let _ = writeln!(
            self.notes,
            "- ebb's diff counts: {}; DuckDB (changed or new, deleted): {}; truth: {truth:?}",
            diff.ebb_counts, diff.duckdb_counts
        );
        Ok(())
    }

    /// Nothing changed: preview and sync of A against the state of A.
    fn no_change(&mut self, state: &str, a: &str) -> Result<()> {
        eprintln!("no-change runs…");
        for verb in ["preview", "sync"] {
            let mut samples = Vec::new();
            for _ in 0..self.runs {
                let mut args = vec![verb, "users.yml", "--state", state];
                if verb == "preview" {
                    args.extend(["--limit", "0"]);
                }
                samples.push(measure(&mut self.env.ebb(&args, &[("SNAPSHOT", a)]))?.0);
            }
            let _ = writeln!(
                self.table,
                "| `{verb}` with nothing changed, {} rows | {} | — | — | ≤ 1.0 s |",
                self.args.rows,
                fmt_stats(&stats(&samples))
            );
        }
        Ok(())
    }

    /// PostgreSQL extraction: preview of the whole table with no state, against psql's binary COPY.
    fn postgres_extract(&mut self) -> Result<()> {
        eprintln!("PostgreSQL extraction…");
        let mut extract = Vec::new();
        for _ in 0..self.runs {
            let state = self.env.fresh_state("extract")?;
            extract.push(measure(&mut self.env.ebb(&["preview", "pg_extract.yml", "--state", &state, "--limit", "0"], &[]))?.0);
        }
        let mut psql = Vec::new();
        for _ in 0..self.runs {
            psql.push(
                measure(Command::new("psql").arg(&self.args.common.database_url).arg("-c").arg(
                    "\\copy (select id, email, name, plan, arr, seats, signup_at, active, tags from ebb_bench.users_a) to '/dev/null' with (format binary)",
                ))?
                .0,
            );
        }
        let (e, p) = (stats(&extract), stats(&psql));
        let _ = writeln!(
            self.table,
            "| PostgreSQL, {} rows: `preview` (extract, map, hash, diff) | {} | psql `\\copy … (format binary)`: {} | throughput {:.0}% of psql | ≥ 70% |",
            self.args.rows,
            fmt_stats(&e),
            fmt_stats(&p),
            100.0 * p.median / e.median
        );
        Ok(())
    }

    /// The diff at the large size, against a state made by one full sync.
    async fn large_snapshots(&mut self) -> Result<()> {
        let rows = self.args.large_rows;
        eprintln!("large snapshots ({rows} rows)…");
        let dir = self.env.work.join(format!("data-{rows}"));
        crate::generate_parquet(dir.clone(), rows).await?;
        let (la, lb) = (
            dir.join("a.parquet").display().to_string(),
            dir.join("b.parquet").display().to_string(),
        );
        // The state of A once, by a real sync; not a case of its own.
        let state = self.env.fresh_state("large")?;
        let (seed, _) = measure(&mut self.env.ebb(&["sync", "users.yml", "--state", &state], &[("SNAPSHOT", &la)]))?;
        let _ = writeln!(
            self.notes,
            "- the large state was made by one full sync: {:.1} s, {:.0} MB",
            seed.wall, seed.rss_mb
        );
        let large = diff_against_duckdb(&self.env, &self.args.common.python, self.runs, "users.yml", &state, (&la, &lb))?;
        let (e, d) = (large.ebb, large.duckdb);
        let _ = writeln!(
            self.table,
            "| preview of B against the state of A, {rows} rows | {} | DuckDB EXCEPT + anti-join: {} | time {:.2}×, RSS {:.2}× | ≤ 1.0× time, RSS < 600 MB |",
            fmt_stats(&e),
            fmt_stats(&d),
            e.median / d.median,
            e.rss_mb / d.rss_mb
        );
        Ok(())
    }

    /// The warehouse-side diff's cases, when sizes are given.
    async fn warehouse(&mut self) -> Result<()> {
        let rows: Vec<u64> = self.args.warehouse_rows.iter().copied().filter(|&n| n > 0).collect();
        if rows.is_empty() {
            return Ok(());
        }
        let (table, notes) = crate::warehouse::run(&crate::warehouse::WarehouseArgs {
            rows,
            runs: self.runs,
            work: self.env.work.clone(),
            ebb: Some(self.env.ebb.clone()),
            database_url: self.args.common.database_url.clone(),
            port: self.args.port + 1,
        })
        .await?;
        let _ = write!(
            self.table,
            "\n**The warehouse-side diff** (`diff: warehouse`), same tables both ways:\n\n{table}"
        );
        self.notes.push_str(&notes);
        Ok(())
    }
}

/// B read from a local S3 server against B read from disk, when the bench is built with the
/// S3 server (`--features bench-s3`, as `scripts/bench.sh` builds it).
#[allow(clippy::too_many_arguments)]
async fn object_store_case(
    env: &Env,
    runs: usize,
    rows: u64,
    b: &Path,
    state: &str,
    s3_port: u16,
    table: &mut String,
    notes: &mut String,
) -> Result<()> {
    #[cfg(feature = "bench-s3")]
    {
        eprintln!("diff of B against A, read from S3…");
        let (row, note) = crate::object_store::measure_case(env, runs, rows, b, state, s3_port).await?;
        let _ = writeln!(table, "{row}");
        notes.push_str(&note);
    }
    #[cfg(not(feature = "bench-s3"))]
    {
        let _ = (env, runs, rows, b, state, s3_port, table);
        let _ = writeln!(
            notes,
            "- object store: not measured; build ebb-bench with `--features bench-s3` (scripts/bench.sh does)"
        );
    }
    Ok(())
}

/// What keeping payloads costs: the first full sync again with `keep_payloads: false`, and the
/// state's size both ways (the state of the tracked sync is `main`'s, which the diff cases use).
async fn payload_cost(env: &Env, runs: usize, rows: u64, a: &str, tracked: &Stats, table: &mut String) -> Result<()> {
    eprintln!("first full sync without payloads…");
    let mut samples = Vec::new();
    for _ in 0..runs {
        let state = env.fresh_state("untracked")?;
        samples.push(measure(&mut env.ebb(&["sync", "users_untracked.yml", "--state", &state], &[("SNAPSHOT", a)]))?.0);
    }
    let untracked = stats(&samples);
    let size = |name: &str| std::fs::metadata(env.work.join("state").join(format!("{name}.db"))).map(|m| m.len() as f64);
    let (with, without) = (size("main")?, size("untracked")?);
    let pool = sqlx::SqlitePool::connect(&env.state("main")).await?;
    let (count, payload): (i64, i64) = sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM records")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    let per_million = |bytes: f64| bytes / rows as f64 * 1e6 / 1e6;
    let _ = writeln!(
        table,
        "| the same with `keep_payloads: false` | {} | — | keeping payloads: {:.2}× the time | — |",
        fmt_stats(&untracked),
        tracked.median / untracked.median
    );
    let _ = writeln!(
        table,
        "| state per million records, SQLite | {:.0} MB with payloads ({:.0} bytes of compressed payload a record) | {:.0} MB without | {:.2}× | — |",
        per_million(with),
        payload as f64 / count.max(1) as f64,
        per_million(without),
        with / without
    );
    Ok(())
}

/// drt's project folder: its project file, its PostgreSQL profile, and one sync per strategy
/// over `table`.
pub(crate) fn drt_project(work: &Path, database_url: &str, port: u16, table: &str) -> Result<PathBuf> {
    let drt_dir = work.join("drt");
    std::fs::create_dir_all(drt_dir.join("syncs"))?;
    std::fs::create_dir_all(drt_dir.join("home/.drt"))?;
    std::fs::write(
        drt_dir.join("drt_project.yml"),
        "name: ebb_bench\nversion: \"0.1\"\nprofile: bench\n",
    )?;
    let pg = url::Url::parse(database_url)?;
    std::fs::write(
        drt_dir.join("home/.drt/profiles.yml"),
        format!(
            "bench:\n  type: postgres\n  host: {}\n  port: {}\n  dbname: {}\n  user: {}\n",
            pg.host_str().unwrap_or("127.0.0.1"),
            pg.port().unwrap_or(5432),
            pg.path().trim_start_matches('/'),
            if pg.username().is_empty() { "postgres" } else { pg.username() }
        ),
    )?;
    let _ = std::fs::remove_file(drt_dir.join("syncs/users.yml"));
    for strategy in [DrtStrategy::Upsert, DrtStrategy::Diff, DrtStrategy::Cursor] {
        std::fs::write(
            drt_dir.join(format!("syncs/{}.yml", strategy.sync_name())),
            drt_sync(table, port, strategy),
        )?;
    }
    Ok(drt_dir)
}

/// One drt run of one sync, from a state that knows nothing when `fresh`: drt's diff keeps its
/// snapshot in the warehouse (schema `_drt`) and its run state in the project folder.
pub(crate) async fn drt_run(database_url: &str, drt: &Path, drt_dir: &Path, strategy: DrtStrategy, fresh: bool) -> Result<Sample> {
    if fresh {
        let mut conn = PgConnection::connect(database_url).await?;
        conn.execute("DROP SCHEMA IF EXISTS _drt CASCADE").await?;
        let _ = std::fs::remove_dir_all(drt_dir.join(".drt"));
    }
    let mut c = Command::new(drt);
    c.args(["run", "--select", strategy.sync_name()])
        .current_dir(drt_dir)
        .env("HOME", drt_dir.join("home"));
    Ok(measure(&mut c)?.0)
}

/// End to end against drt, process start to exit: a fresh sync of the PostgreSQL table as A,
/// then the table becomes B, then a run with nothing changed. drt runs both ways: diffing
/// (the fair peer) and plain upsert (for reference).
async fn end_to_end(env: &Env, args: &SuiteArgs, runs: usize, table: &mut String, notes: &mut String) -> Result<()> {
    eprintln!("end to end against drt…");
    let drt_dir = drt_project(&env.work, &args.common.database_url, args.port, "ebb_bench_e2e.users")?;
    let (mut ebb_first, mut ebb_change, mut ebb_same) = (vec![], vec![], vec![]);
    let (mut diff_first, mut diff_change, mut upsert_first, mut upsert_change) = (vec![], vec![], vec![], vec![]);
    let mut change_counts = String::new();
    for _ in 0..runs {
        load_table(&args.common.database_url, "ebb_bench_e2e", "a").await?;
        let state = env.fresh_state("e2e")?;
        ebb_first.push(measure(&mut env.ebb(&["sync", "pg_e2e.yml", "--state", &state], &[]))?.0);
        load_table(&args.common.database_url, "ebb_bench_e2e", "b").await?;
        let (s, out) = measure(&mut env.ebb(&["sync", "pg_e2e.yml", "--state", &state], &[]))?;
        change_counts = counts_line(&out);
        ebb_change.push(s);
        ebb_same.push(measure(&mut env.ebb(&["sync", "pg_e2e.yml", "--state", &state], &[]))?.0);
        for (strategy, first, change) in [
            (DrtStrategy::Diff, &mut diff_first, &mut diff_change),
            (DrtStrategy::Upsert, &mut upsert_first, &mut upsert_change),
        ] {
            load_table(&args.common.database_url, "ebb_bench_e2e", "a").await?;
            first.push(drt_run(&args.common.database_url, &args.common.drt, &drt_dir, strategy, true).await?);
            load_table(&args.common.database_url, "ebb_bench_e2e", "b").await?;
            change.push(drt_run(&args.common.database_url, &args.common.drt, &drt_dir, strategy, false).await?);
        }
    }
    let rows = args.e2e_rows;
    let cases = [
        ("first sync", &ebb_first, "drt diffing", &diff_first, "≤ 0.25×"),
        ("then B (2% of rows differ)", &ebb_change, "drt diffing", &diff_change, "≤ 0.1×"),
        ("first sync", &ebb_first, "drt plain upsert", &upsert_first, "for reference"),
        ("then B", &ebb_change, "drt plain upsert", &upsert_change, "for reference"),
    ];
    for (label, e, peer, d, target) in cases {
        let (e, d) = (stats(e), stats(d));
        let _ = writeln!(
            table,
            "| PostgreSQL {rows} rows → stand-in, {label} | {} | {peer} (drt-core 1.2.1): {} | {:.2}× ({:.1}× faster) | {target} |",
            fmt_stats(&e),
            fmt_stats(&d),
            e.median / d.median,
            d.median / e.median
        );
    }
    let _ = writeln!(
        table,
        "| PostgreSQL {rows} rows, `sync` with nothing changed (process start to exit) | {} | — | — | ≤ 0.15 s |",
        fmt_stats(&stats(&ebb_same))
    );
    let _ = writeln!(notes, "- ebb's second end-to-end run: {change_counts}");
    Ok(())
}

/// The diff with eight mixed attributes (strings, an integer, floats, a decimal, a boolean and
/// a list): `preview` of B against the state of A, against DuckDB's `EXCEPT` on the same files,
/// with the CPU time each used per second of wall time.
async fn mixed_diff(env: &Env, args: &SuiteArgs, runs: usize, rows: u64, table: &mut String, notes: &mut String) -> Result<()> {
    eprintln!("mixed attributes, {rows} rows…");
    let dir = env.work.join(format!("data-mixed-{rows}"));
    crate::run_generate(&GenerateArgs {
        rows,
        seed: 42,
        out: dir.clone(),
        postgres: None,
        schema: String::new(),
        shape: Shape::Mixed,
    })
    .await?;
    std::fs::write(env.work.join("users_mixed.yml"), MIXED_MAPPING)?;
    let (a, b) = (
        dir.join("a.parquet").display().to_string(),
        dir.join("b.parquet").display().to_string(),
    );
    let state = env.fresh_state(&format!("mixed-{rows}"))?;
    let (seed, _) = measure(&mut env.ebb(&["sync", "users_mixed.yml", "--state", &state], &[("SNAPSHOT", &a)]))?;
    let _ = writeln!(
        notes,
        "- the mixed {rows}-row state was made by one full sync: {:.1} s, {:.0} MB",
        seed.wall, seed.rss_mb
    );
    let mixed = diff_against_duckdb(env, &args.common.python, runs, "users_mixed.yml", &state, (&a, &b))?;
    let (e, d, counts) = (mixed.ebb, mixed.duckdb, mixed.ebb_counts);
    let target = if rows > args.rows { "≤ 0.8×, RSS < 600 MB" } else { "≤ 0.6×" };
    let _ = writeln!(
        table,
        "| `preview` of B against the state of A, {rows} rows, eight mixed attributes | {} · CPU {:.2}× wall | DuckDB EXCEPT + anti-join: {} · CPU {:.2}× wall | time {:.2}×, RSS {:.2}× | {target} |",
        fmt_stats(&e),
        e.cpu / e.median,
        fmt_stats(&d),
        d.cpu / d.median,
        e.median / d.median,
        e.rss_mb / d.rss_mb
    );
    let _ = writeln!(notes, "- ebb's mixed diff counts at {rows} rows: {counts}");
    Ok(())
}
