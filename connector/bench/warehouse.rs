//! The warehouse-side diff against the in-process one, side by side on the same PostgreSQL
//! tables in one run: the first sync's diff phase (`preview` with empty state), `preview` of B
//! against the state of A, and a sync with nothing changed, each with wall time, ebb's peak RSS
//! and the bytes the database sent. The bytes are counted by a TCP relay between ebb and the
//! server, so they are what crossed the wire, not an estimate.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::{Connection, Executor, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::generate::Shape;
use crate::suite::{fmt_stats, measure, postgres_mapping, stats, Env, Sample, ServerProcess, Stats};
use crate::GenerateArgs;

#[derive(clap::Args)]
pub struct WarehouseArgs {
    /// Table sizes; each is measured both ways.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000_000u64, 10_000_000])]
    pub rows: Vec<u64>,
    /// Runs of each case; the table shows the median and the range.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    #[arg(long, default_value = "target/bench")]
    pub work: PathBuf,
    /// The `ebb` binary; by default the one next to this one.
    #[arg(long)]
    pub ebb: Option<PathBuf>,
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub database_url: String,
    #[arg(long, default_value_t = 18788)]
    pub port: u16,
}

const SCHEMA: &str = "ebb_bench_wh";
const STATE_SCHEMA: &str = "ebb_bench_wh_state";

/// Relays TCP to `target`, counting the bytes that come back from it.
async fn counting_relay(target: SocketAddr) -> Result<(SocketAddr, Arc<AtomicU64>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(target).await else { return };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let up = async {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    let _ = server_write.shutdown().await;
                };
                // Counted as it passes: a connection's bytes are known before it closes.
                let down = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = server_read.read(&mut buf).await {
                        if n == 0 || client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        counter.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    let _ = client_write.shutdown().await;
                };
                let _ = tokio::join!(up, down);
            });
        }
    });
    Ok((addr, received))
}

/// One measured command, with the bytes the database sent during it.
struct Measured {
    sample: Sample,
    bytes: u64,
}

struct Bench {
    env: Env,
    bytes: Arc<AtomicU64>,
    runs: usize,
}

impl Bench {
    fn once(&self, args: &[&str], table: &str) -> Result<Measured> {
        let before = self.bytes.load(Ordering::SeqCst);
        let (sample, _) = measure(&mut self.env.ebb(args, &[("TABLE", table)]))?;
        // The last bytes may still be on their way through the relay as ebb exits.
        std::thread::sleep(Duration::from_millis(100));
        Ok(Measured {
            sample,
            bytes: self.bytes.load(Ordering::SeqCst) - before,
        })
    }

    /// `runs` runs, each after `fresh` (which may clear state); stats and the median bytes.
    async fn case(&self, args: &[&str], table: &str, fresh: Option<(&str, &str)>) -> Result<(Stats, u64)> {
        let (mut samples, mut bytes) = (Vec::new(), Vec::new());
        for _ in 0..self.runs {
            let mut args: Vec<&str> = args.to_vec();
            let state;
            if let Some((name, mode)) = fresh {
                state = self.env.fresh_state(name)?;
                if mode == "warehouse" {
                    drop_state(&self.env.database_url).await?;
                }
                args.extend(["--state", &state]);
            }
            let m = self.once(&args, table)?;
            samples.push(m.sample);
            bytes.push(m.bytes);
        }
        bytes.sort_unstable();
        Ok((stats(&samples), bytes[bytes.len() / 2]))
    }
}

async fn drop_state(url: &str) -> Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    conn.execute(format!("DROP SCHEMA IF EXISTS {STATE_SCHEMA} CASCADE").as_str())
        .await?;
    Ok(())
}

fn mapping(name: &str, diff: &str) -> String {
    postgres_mapping(name, "${TABLE}").replace(
        "    table: ${TABLE}",
        &format!("    table: ${{TABLE}}\n    diff: {diff}\n    state_schema: {STATE_SCHEMA}"),
    )
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The relay's URL for `url`: the same database, through the relay, without TLS so that the
/// bytes counted are the protocol's.
fn relayed_url(url: &str, relay: SocketAddr) -> Result<String> {
    let mut u = url::Url::parse(url)?;
    u.set_host(Some("127.0.0.1"))?;
    u.set_port(Some(relay.port()))
        .map_err(|()| anyhow::anyhow!("cannot set the port of {url}"))?;
    u.query_pairs_mut().append_pair("sslmode", "disable");
    Ok(u.to_string())
}

/// Every case at `rows` rows; appends rows to `table` and lines to `notes`.
async fn at(args: &WarehouseArgs, bench: &mut Bench, rows: u64, table: &mut String, notes: &mut String) -> Result<()> {
    eprintln!("warehouse diff, {rows} rows: generating…");
    let truth = crate::run_generate(&GenerateArgs {
        rows,
        seed: 42,
        out: bench.env.work.join(format!("data-wh-{rows}")),
        postgres: Some(args.database_url.clone()),
        schema: SCHEMA.into(),
        shape: Shape::Users,
    })
    .await?;
    let (a, b) = (format!("{SCHEMA}.users_a"), format!("{SCHEMA}.users_b"));
    let mut first = Vec::new();
    for (mode, file) in [("in_process", "ip.yml"), ("warehouse", "wh.yml")] {
        eprintln!("  {mode}: first diff phase…");
        let state_name = format!("wh-{mode}-{rows}");
        first.push(
            bench
                .case(&["preview", file, "--limit", "0"], &a, Some((&state_name, mode)))
                .await?,
        );
    }
    let mut diffs = Vec::new();
    let mut unchanged = Vec::new();
    for (mode, file) in [("in_process", "ip.yml"), ("warehouse", "wh.yml")] {
        let state = bench.env.fresh_state(&format!("wh-{mode}-{rows}"))?;
        if mode == "warehouse" {
            drop_state(&args.database_url).await?;
        }
        eprintln!("  {mode}: the state of A, by a full sync…");
        let seed = bench.once(&["sync", file, "--state", &state], &a)?;
        let _ = writeln!(
            notes,
            "- {rows} rows, {mode}: the state of A was made by one full sync to the stand-in: {:.1} s, {:.0} MB",
            seed.sample.wall, seed.sample.rss_mb
        );
        eprintln!("  {mode}: preview of B, sync with nothing changed…");
        diffs.push(bench.case(&["preview", file, "--limit", "0", "--state", &state], &b, None).await?);
        unchanged.push(bench.case(&["sync", file, "--state", &state], &a, None).await?);
    }
    let row = |table: &mut String, case: &str, pair: &[(Stats, u64)], target: &str| {
        let (ip, wh) = (&pair[0], &pair[1]);
        let _ = writeln!(
            table,
            "| {case}, {rows} rows | {} · read {} | {} · read {} | {:.2}× | {target} |",
            fmt_stats(&ip.0),
            mb(ip.1),
            fmt_stats(&wh.0),
            mb(wh.1),
            wh.0.median / ip.0.median
        );
    };
    row(table, "first sync's diff phase (`preview`, empty state)", &first, "RSS < 100 MB");
    row(
        table,
        "`preview` of B against the state of A (1% changed, 0.5% deleted, 0.5% new)",
        &diffs,
        "≤ 1.0× at 10M, RSS < 100 MB",
    );
    row(table, "`sync` with nothing changed", &unchanged, "≤ 1.0× at 10M, RSS < 100 MB");
    let _ = writeln!(
        notes,
        "- {rows} rows: the 1%-change preview read {} from the warehouse, {:.1}% of the full extraction's {} (truth: {} changed, {} new, {} deleted)",
        mb(diffs[1].1),
        100.0 * diffs[1].1 as f64 / first[0].1.max(1) as f64,
        mb(first[0].1),
        truth.changed,
        truth.new,
        truth.deleted
    );
    Ok(())
}

/// The warehouse cases at every size in `args.rows`: the table's rows and the notes under it.
pub async fn run(args: &WarehouseArgs) -> Result<(String, String)> {
    let ebb = crate::suite::ebb_binary(args.ebb.as_deref())?;
    std::fs::create_dir_all(&args.work)?;
    let work = args.work.canonicalize()?;
    let server = url::Url::parse(&args.database_url)?;
    let target = tokio::net::lookup_host((server.host_str().unwrap_or("127.0.0.1"), server.port().unwrap_or(5432)))
        .await?
        .next()
        .context("the database's host does not resolve")?;
    let (relay, bytes) = counting_relay(target).await?;
    let env = Env {
        ebb,
        work: work.clone(),
        stand_in_url: format!("http://127.0.0.1:{}", args.port),
        database_url: relayed_url(&args.database_url, relay)?,
    };
    std::fs::write(work.join("ip.yml"), mapping("wh_bench_ip", "in_process"))?;
    std::fs::write(work.join("wh.yml"), mapping("wh_bench_wh", "warehouse"))?;
    let _stand_in = ServerProcess::stand_in(&env.ebb, args.port)?;
    let mut bench = Bench {
        env,
        bytes,
        runs: args.runs.max(1),
    };
    let (mut table, mut notes) = (String::new(), String::new());
    let _ = writeln!(table, "| case | in_process | warehouse | ratio (warehouse ÷ in_process) | target |");
    let _ = writeln!(table, "|---|---|---|---|---|");
    for &rows in &args.rows {
        at(args, &mut bench, rows, &mut table, &mut notes).await?;
    }
    Ok((table, notes))
}
