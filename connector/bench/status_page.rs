//! How fast the worker's status page answers with a big state: 200 syncs and 10,000 runs
//! (50 each, some failed, some with rejections), served by a real `ebb worker` process.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ebb::state::{RunCounts, RunOrigin, RunStart, RunStatus, StoredRejection};

pub const SYNCS: usize = 200;
pub const RUNS_PER_SYNC: usize = 50;
/// Requests timed per page, after a few to warm up.
const REQUESTS: usize = 30;

/// Page latencies in milliseconds: median, and the slowest of [`REQUESTS`].
pub struct PageTimes {
    pub overview: (f64, f64),
    pub sync: (f64, f64),
}

pub async fn measure(ebb: &Path, work: &Path) -> Result<PageTimes> {
    let dir = work.join("status-page");
    let _ = std::fs::remove_dir_all(&dir);
    let mappings = dir.join("mappings");
    std::fs::create_dir_all(&mappings)?;
    for i in 0..SYNCS {
        std::fs::write(mappings.join(format!("sync{i:03}.yml")), mapping(i))?;
    }
    let state = dir.join("state.db");
    seed(&format!("sqlite://{}", state.display())).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let worker = Worker::start(ebb, &mappings, &state, port)?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &base).await?;
    let overview = time_page(&client, &format!("{base}/"), "data-sync=\"sync199\"").await?;
    let sync = time_page(&client, &format!("{base}/syncs/sync042"), "id=\"runs-chart\"").await?;
    drop(worker);
    Ok(PageTimes { overview, sync })
}

fn mapping(i: usize) -> String {
    format!(
        "name: sync{i:03}\nsource:\n  parquet: /nonexistent/ebb-bench/users{i}.parquet\ndestination:\n  enterpret:\n    object: user\n    \
         api_key: ${{BENCH_KEY:-local-users-key}}\n    url: http://127.0.0.1:9\nid: user_id\ncreated_at: signup_at\n\
         attributes:\n  Email: email\n  Plan: plan\n"
    )
}

/// 50 finished runs a sync, as real runs leave them: every seventh failed, every fifth with
/// rejections (three kept each).
async fn seed(url: &str) -> Result<()> {
    let store = ebb::state::open(url, false).await?;
    for i in 0..SYNCS {
        let sync = format!("sync{i:03}");
        for r in 0..RUNS_PER_SYNC {
            let start = RunStart {
                full: false,
                origin: RunOrigin::Schedule,
                scheduled_for: None,
                worker: Some("bench:1".into()),
            };
            let run = store.begin_run(&sync, &start).await?;
            let failed = (i + r) % 7 == 0;
            let rejected = if (i + r) % 5 == 0 { 3 } else { 0 };
            let counts = RunCounts {
                source: 10_000,
                new: 20 + r as u64,
                changed: 100,
                unchanged: 9_880 - r as u64,
                sent: 120 + r as u64 - rejected,
                rejected,
                ..RunCounts::default()
            };
            if rejected > 0 {
                let rejections: Vec<StoredRejection> = (0..rejected)
                    .map(|k| StoredRejection {
                        stage: ebb::state::RejectionStage::Destination,
                        record_id: Some(format!("u{k}")),
                        position: format!("request {k}, record 1"),
                        reason: "Email: not an email address".into(),
                    })
                    .collect();
                store.add_rejections(run, &sync, &rejections).await?;
            }
            let (status, error) = match failed {
                true => (RunStatus::Failed, Some("destination: HTTP 503 after 5 attempts over 60s")),
                false => (RunStatus::Completed, None),
            };
            store.finish_run(run, status, &counts, error).await?;
        }
    }
    Ok(())
}

struct Worker(Child);

impl Worker {
    fn start(ebb: &Path, mappings: &Path, state: &Path, port: u16) -> Result<Worker> {
        let child = Command::new(ebb)
            .arg("--state")
            .arg(state)
            .arg("worker")
            .arg(mappings)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--poll", "0s"])
            .env_remove("EBB_WORKER_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting ebb worker")?;
        Ok(Worker(child))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_ready(client: &reqwest::Client, base: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/syncs")).send().await {
            let body = r.text().await.unwrap_or_default();
            if body.matches("\"name\":").count() >= SYNCS {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the worker did not load its {SYNCS} mappings within 30 s")
}

/// Median and slowest of [`REQUESTS`] requests, each checked to be the whole page.
async fn time_page(client: &reqwest::Client, url: &str, must_contain: &str) -> Result<(f64, f64)> {
    let mut times = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS + 3 {
        let started = Instant::now();
        let response = client.get(url).send().await?;
        anyhow::ensure!(response.status().is_success(), "{url}: HTTP {}", response.status());
        let body = response.text().await?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(body.contains(must_contain), "{url} lacks {must_contain}");
        if i >= 3 {
            times.push(ms);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], times[times.len() - 1]))
}

/// The results table's row.
pub fn row(t: &PageTimes) -> String {
    format!(
        "| status page, {SYNCS} syncs and {} runs in state: `GET /` (a sync's page: `GET /syncs/NAME`) | {:.1} ms (max {:.1}); sync page {:.1} ms (max {:.1}) | — | — | < 100 ms |",
        SYNCS * RUNS_PER_SYNC,
        t.overview.0,
        t.overview.1,
        t.sync.0,
        t.sync.1
    )
}
