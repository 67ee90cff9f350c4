//! `ebb worker` as a process: schedules against PostgreSQL, metrics against the
//! stand-in's counts, SIGTERM mid-run, three workers over one state store, alerts,
//! and broken mappings.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{database_url, stand_in, stand_in_with, TempSchema, Workspace};
use ebb::standin::{StandIn, StandInConfig};
use ebb::state::{self, RunOrigin, RunRecord, RunStatus};

/// A warehouse schema with `people` (600 rows) and `teams` (2 rows).
struct Warehouse {
    schema: String,
    pool: sqlx::PgPool,
    _temp: TempSchema,
}

impl Warehouse {
    async fn new(people: usize) -> Warehouse {
        let temp = TempSchema::new("ebb_wk");
        let schema = temp.name.clone();
        let pool = sqlx::PgPool::connect(&database_url()).await.expect("PostgreSQL at DATABASE_URL");
        sqlx::raw_sql(&format!(
            "CREATE SCHEMA \"{schema}\";
             CREATE TABLE \"{schema}\".people (id text PRIMARY KEY, email text, created bigint NOT NULL);
             INSERT INTO \"{schema}\".people SELECT 'p' || g, 'p' || g || '@example.com', 1700000000 + g FROM generate_series(1, {people}) g;
             CREATE TABLE \"{schema}\".teams (id bigint PRIMARY KEY, name text, created bigint NOT NULL);
             INSERT INTO \"{schema}\".teams VALUES (1, 'Acme', 1600000000), (2, 'Initech', 1600000001);"
        ))
        .execute(&pool)
        .await
        .expect("warehouse tables");
        Warehouse { schema, pool, _temp: temp }
    }

    async fn exec(&self, sql: &str) {
        sqlx::raw_sql(&sql.replace("{s}", &self.schema))
            .execute(&self.pool)
            .await
            .expect("warehouse SQL");
    }
}

fn mapping(name: &str, object: &str, table: &str, schedule: &str, url: &str, extra: &str) -> String {
    let (id, attr) = match object {
        "user" => ("id", "Email: email"),
        _ => ("id", "Name: name"),
    };
    format!(
        "name: {name}\n{schedule}\nsource:\n  postgres:\n    url: ${{WAREHOUSE_URL}}\n    table: ${{WAREHOUSE_SCHEMA}}.{table}\n\
         destination:\n  enterpret:\n    object: {object}\n    api_key: ${{API_KEY:-local-{object}s-key}}\n    url: {url}\n\
         {extra}id: {id}\ncreated_at: created\nattributes:\n  {attr}\n"
    )
}

/// An empty mappings folder in the workspace.
fn mappings_dir(ws: &Workspace) -> PathBuf {
    let dir = ws.path().join("mappings");
    std::fs::create_dir(&dir).expect("mappings dir");
    dir
}

/// A running `ebb worker` with its output in files.
struct WorkerProcess {
    child: Child,
    base: String,
    stderr: PathBuf,
}

impl WorkerProcess {
    fn start(ws: &Path, dir: &Path, state_url: &str, extra: &[&str], envs: &[(&str, &str)]) -> WorkerProcess {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stdout = ws.join(format!("worker{n}.out"));
        let stderr = ws.join(format!("worker{n}.err"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ebb"));
        cmd.args(["--state", state_url, "worker"])
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("EBB_STATE")
            .env_remove("EBB_LOG")
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .stdin(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("ebb worker starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        let base = loop {
            let text = std::fs::read_to_string(&stdout).unwrap_or_default();
            if let Some(rest) = text.split(" on http://").nth(1) {
                break format!("http://{}", rest.split_whitespace().next().expect("address"));
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "worker exited with {status}: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "worker did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        WorkerProcess { child, base, stderr }
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(ok.success());
    }

    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "worker did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("{}{path}", self.base)).await.expect("worker answers");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    async fn syncs(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/syncs").await.1).expect("JSON")
    }

    fn trigger(&self, name: &str) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_ebb"))
            .args(["trigger", name, "--worker", &self.base])
            .output()
            .expect("ebb trigger runs");
        let (stdout, stderr) = common::text(&out);
        (out.status.success(), format!("{stdout}{stderr}"))
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for<T>(what: &str, within: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn runs(state_url: &str, sync: &str) -> Vec<RunRecord> {
    let store = state::open(state_url, true).await.expect("state");
    let mut runs = store.runs(Some(sync), 1000).await.expect("runs");
    runs.reverse();
    runs
}

fn ids(standin: &StandIn, object: &str) -> BTreeSet<String> {
    standin.records(object).into_iter().map(|r| r.id).collect()
}

/// The value of one sample in Prometheus text.
fn sample(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {name_and_labels} in:\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_syncs_run_on_schedule_pick_up_a_new_row_and_count_what_the_stand_in_got() {
    let wh = Warehouse::new(3).await;
    let standin = stand_in().await;
    let ws = Workspace::new();
    let dir = mappings_dir(&ws);
    std::fs::write(
        dir.join("people.yml"),
        mapping("wk-people", "user", "people", "every: 2s", &standin.url(), ""),
    )
    .expect("write");
    std::fs::write(
        dir.join("teams.yml"),
        mapping("wk-teams", "account", "teams", "every: 2s", &standin.url(), ""),
    )
    .expect("write");
    let state_url = ws.state_url();
    let envs = [("WAREHOUSE_URL", database_url()), ("WAREHOUSE_SCHEMA", wh.schema.clone())];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut worker = WorkerProcess::start(ws.path(), &dir, &state_url, &[], &envs);

    // Each sync runs on its 2 s slots: at least two scheduled runs each, on consecutive slots.
    for sync in ["wk-people", "wk-teams"] {
        let scheduled = wait_for(sync, Duration::from_secs(15), async || {
            let done: Vec<RunRecord> = runs(&state_url, sync)
                .await
                .into_iter()
                .filter(|r| r.status == RunStatus::Completed && r.origin == RunOrigin::Schedule)
                .collect();
            (done.len() >= 3).then_some(done)
        })
        .await;
        let slots: Vec<i64> = scheduled.iter().filter_map(|r| r.scheduled_for).collect();
        assert_eq!(slots.len(), scheduled.len(), "every scheduled run names its slot");
        assert!(slots.iter().all(|s| s % 2 == 0), "2 s slots align to the epoch: {slots:?}");
        assert!(
            slots.windows(2).skip(1).all(|w| w[1] - w[0] == 2),
            "after the catch-up run at start, one run per slot: {slots:?}"
        );
    }
    assert_eq!(ids(&standin, "users").len(), 3);
    assert_eq!(ids(&standin, "accounts").len(), 2);

    // A row inserted now is sent within one period (plus the run's own time).
    wh.exec("INSERT INTO \"{s}\".people VALUES ('p-new', 'new@example.com', 1700000999)")
        .await;
    let inserted = Instant::now();
    if !ids(&standin, "users").contains("p-new") {
        let deadline = Instant::now() + Duration::from_secs(6);
        while !ids(&standin, "users").contains("p-new") {
            assert!(Instant::now() < deadline, "the new row never arrived:\n{}", worker.stderr());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let took = inserted.elapsed();
    assert!(
        took <= Duration::from_millis(3500),
        "picked up after {took:?}, more than one 2 s period"
    );

    // Once a run has completed after that, nothing more is sent: counters must equal the stand-in's counts.
    let after = runs(&state_url, "wk-people").await.last().map(|r| r.id).unwrap_or(0);
    wait_for("a quiet run", Duration::from_secs(10), async || {
        runs(&state_url, "wk-people")
            .await
            .iter()
            .any(|r| r.id > after && r.status == RunStatus::Completed && r.counts.sent == 0)
            .then_some(())
    })
    .await;
    let (code, metrics) = worker.get("/metrics").await;
    assert_eq!(code, 200);
    let received = |object: &str| standin.records(object).iter().map(|r| r.received_count).sum::<u64>() as f64;
    assert_eq!(
        sample(&metrics, r#"ebb_sync_records_total{sync="wk-people",outcome="sent"}"#),
        received("users")
    );
    assert_eq!(
        sample(&metrics, r#"ebb_sync_records_total{sync="wk-teams",outcome="sent"}"#),
        received("accounts")
    );
    assert_eq!(received("users"), 4.0, "every row once");
    let accepted = standin.stats().accepted_requests as f64;
    let counted = sample(
        &metrics,
        r#"ebb_destination_responses_total{destination="enterpret users",status="2xx"}"#,
    ) + sample(
        &metrics,
        r#"ebb_destination_responses_total{destination="enterpret accounts",status="2xx"}"#,
    );
    assert_eq!(counted, accepted, "one 2xx counted per request the stand-in accepted");
    let completed = runs(&state_url, "wk-people")
        .await
        .iter()
        .filter(|r| r.status == RunStatus::Completed)
        .count() as f64;
    let counted_runs = sample(&metrics, r#"ebb_sync_runs_total{sync="wk-people",status="completed"}"#);
    assert!(
        counted_runs >= completed - 1.0 && counted_runs <= completed,
        "{counted_runs} runs counted, {completed} recorded"
    );
    assert!(metrics.contains("ebb_destination_request_duration_seconds_bucket{"), "{metrics}");
    assert!(metrics.contains(r#"ebb_sync_last_success_timestamp_seconds{sync="wk-teams"}"#));

    let (code, health) = worker.get("/healthz").await;
    assert_eq!((code, health.contains("\"ok\"")), (200, true), "{health}");
    let syncs = worker.syncs().await;
    let people = &syncs["syncs"][0];
    assert_eq!(
        (people["name"].as_str(), people["schedule"].as_str()),
        (Some("wk-people"), Some("every 2s"))
    );
    assert!(people["next_run"].is_string() && people["last_run"]["id"].is_i64(), "{syncs}");

    worker.signal("TERM");
    assert!(worker.wait_exit(Duration::from_secs(15)).success(), "{}", worker.stderr());
}

/// 600 people behind a slow stand-in: a run takes several seconds.
async fn slow_setup(latency_ms: u64) -> (Warehouse, StandIn, Workspace, PathBuf, Vec<(&'static str, String)>) {
    let wh = Warehouse::new(600).await;
    let standin = stand_in_with(StandInConfig {
        latency: Duration::from_millis(latency_ms),
        ..StandInConfig::default()
    })
    .await;
    let ws = Workspace::new();
    let dir = mappings_dir(&ws);
    let extra = "    concurrency: 2\n    requests_per_minute: 100000\n";
    std::fs::write(dir.join("people.yml"), mapping("slow", "user", "people", "", &standin.url(), extra)).expect("write");
    let envs = vec![("WAREHOUSE_URL", database_url()), ("WAREHOUSE_SCHEMA", wh.schema.clone())];
    (wh, standin, ws, dir, envs)
}

fn as_refs<'a>(envs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    envs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn state_ids(state_url: &str, sync: &str) -> BTreeSet<String> {
    let store = state::open(state_url, true).await.expect("state");
    store.records(sync).await.expect("records").into_iter().map(|(id, _)| id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_commits_what_was_acknowledged_and_a_restart_finishes() {
    let (_wh, standin, ws, dir, envs) = slow_setup(100).await;
    let state_url = ws.state_url();
    let mut worker = WorkerProcess::start(ws.path(), &dir, &state_url, &["--grace", "20s"], &as_refs(&envs));
    let (ok, said) = worker.trigger("slow");
    assert!(ok, "{said}");
    wait_for("some records sent", Duration::from_secs(20), async || {
        (ids(&standin, "users").len() >= 60).then_some(())
    })
    .await;
    // While it sends, /syncs says how far it got (as committed), how fast, and how long it has left.
    let progress = wait_for("progress in /syncs", Duration::from_secs(10), async || {
        let progress = worker.syncs().await["syncs"][0]["progress"].clone();
        progress["eta_secs"].is_u64().then_some(progress)
    })
    .await;
    assert_eq!(progress["total"], 600, "{progress}");
    assert!(progress["done"].as_u64().is_some_and(|d| d > 0 && d < 600), "{progress}");
    assert!(progress["per_second"].as_f64().is_some_and(|r| r > 0.0), "{progress}");
    assert!(progress["eta_secs"].is_u64(), "{progress}");
    worker.signal("TERM");
    let status = worker.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "a graceful stop exits 0: {status}\n{}", worker.stderr());

    let last = runs(&state_url, "slow").await.pop().expect("a run");
    assert_eq!(last.status, RunStatus::Interrupted, "{last:?}");
    let delivered = ids(&standin, "users");
    assert!(delivered.len() < 600, "stopped before the end: {}", delivered.len());
    assert_eq!(
        state_ids(&state_url, "slow").await,
        delivered,
        "state holds exactly what the stand-in acknowledged: in-flight requests finished and were committed"
    );
    assert_eq!(last.counts.sent as usize, delivered.len());

    let mut again = WorkerProcess::start(ws.path(), &dir, &state_url, &[], &as_refs(&envs));
    assert!(again.trigger("slow").0);
    wait_for("the restarted run", Duration::from_secs(30), async || {
        runs(&state_url, "slow")
            .await
            .iter()
            .any(|r| r.id > last.id && r.status == RunStatus::Completed)
            .then_some(())
    })
    .await;
    let held = standin.records("users");
    assert_eq!(held.len(), 600, "nothing lost");
    assert!(held.iter().all(|r| r.received_count == 1), "and nothing sent twice");
    assert_eq!(state_ids(&state_url, "slow").await.len(), 600);
    again.signal("INT");
    assert!(again.wait_exit(Duration::from_secs(15)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once_and_state_never_runs_ahead_of_the_destination() {
    let (_wh, standin, ws, dir, envs) = slow_setup(1500).await;
    let state_url = ws.state_url();
    let mut worker = WorkerProcess::start(ws.path(), &dir, &state_url, &["--grace", "60s"], &as_refs(&envs));
    assert!(worker.trigger("slow").0);
    wait_for("some records sent", Duration::from_secs(20), async || {
        (!ids(&standin, "users").is_empty()).then_some(())
    })
    .await;
    worker.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = Instant::now();
    worker.signal("TERM");
    let status = worker.wait_exit(Duration::from_secs(5));
    assert!(
        second.elapsed() < Duration::from_secs(1),
        "exited {:?} after the second signal",
        second.elapsed()
    );
    assert_eq!(status.code(), Some(130), "{}", worker.stderr());
    let committed = state_ids(&state_url, "slow").await;
    assert!(
        committed.is_subset(&ids(&standin, "users")),
        "no record is committed that was not acknowledged"
    );
    assert_eq!(runs(&state_url, "slow").await.pop().map(|r| r.status), Some(RunStatus::Running));

    let mut again = WorkerProcess::start(ws.path(), &dir, &state_url, &[], &as_refs(&envs));
    assert!(again.trigger("slow").0);
    let history = wait_for("the next run", Duration::from_secs(30), async || {
        let all = runs(&state_url, "slow").await;
        (all.len() == 2 && all[0].status == RunStatus::Interrupted).then_some(all)
    })
    .await;
    assert!(
        history[0].error.as_deref().unwrap_or("").contains("stopped"),
        "the next run closes the killed one: {history:?}"
    );
    again.signal("TERM");
    assert!(again.wait_exit(Duration::from_secs(15)).success());
}

/// A worker running sync `slow` on `timing` (its schedule keys), one request of 15 at a time
/// against a stand-in that takes 150 ms each: 600 rows are about 6 s of sending.
async fn slow_worker(timing: &str) -> (Warehouse, StandIn, Workspace, String, WorkerProcess) {
    let (wh, standin, ws, dir, envs) = slow_setup(150).await;
    let extra = "    concurrency: 1\n    requests_per_minute: 100000\n";
    std::fs::write(
        dir.join("people.yml"),
        mapping("slow", "user", "people", timing, &standin.url(), extra),
    )
    .expect("write");
    let state_url = ws.state_url();
    let worker = WorkerProcess::start(ws.path(), &dir, &state_url, &[], &as_refs(&envs));
    (wh, standin, ws, state_url, worker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_slots_are_coalesced_into_one_run_after_a_long_one() {
    // The first run takes about 6 s, six 1 s slots. Its box is an hour: without one, a
    // worker's run is boxed at its period.
    let (_wh, standin, _ws, state_url, mut worker) = slow_worker("every: 1s\nmax_run: 1h").await;
    let history = wait_for("the long run and two after it", Duration::from_secs(40), async || {
        let all = runs(&state_url, "slow").await;
        (all.len() >= 3 && all[2].status != RunStatus::Running).then_some(all)
    })
    .await;
    worker.signal("TERM");
    worker.wait_exit(Duration::from_secs(15));
    let (long, next) = (&history[0], &history[1]);
    let long_end = long.ended_at.expect("ended");
    assert!(long_end - long.started_at >= 4, "the first run was long: {long:?}");
    for pair in history.windows(2) {
        assert!(
            pair[1].started_at >= pair[0].ended_at.unwrap_or(i64::MAX),
            "runs never overlap: {pair:?}"
        );
    }
    assert!(next.started_at <= long_end + 1, "the missed slots run once, right after: {next:?}");
    assert!(
        next.scheduled_for.unwrap_or(0) >= long_end - 1,
        "for the latest slot, not the first one missed: {next:?} after {long:?}"
    );
    assert_eq!(ids(&standin, "users").len(), 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_run_is_boxed_at_its_period_and_the_next_runs_finish_the_backlog() {
    // About 6 s of sending, under `every: 2s` and no `max_run:`: each run stops starting
    // batches after 2 s, and the runs after it go on.
    let (_wh, standin, _ws, state_url, mut worker) = slow_worker("every: 2s").await;
    let page = wait_for("the sync's page to show the backlog", Duration::from_secs(30), async || {
        let (_, page) = worker.get("/syncs/slow").await;
        page.contains("id=\"backlog\"").then_some(page)
    })
    .await;
    assert!(page.contains("records left for the next run, about"), "{page}");
    let history = wait_for("the backlog to clear", Duration::from_secs(60), async || {
        let all = runs(&state_url, "slow").await;
        all.iter().any(|r| r.status == RunStatus::Completed).then_some(all)
    })
    .await;
    worker.signal("TERM");
    worker.wait_exit(Duration::from_secs(15));
    let first = &history[0];
    assert_eq!(first.status, RunStatus::Continued, "{first:?}");
    let left = first.counts.left.expect("a continued run says what it left");
    assert_eq!(first.counts.sent + left, 600, "{first:?}");
    assert!(
        first.ended_at.expect("ended") - first.started_at <= 4,
        "boxed at its 2 s period, in-flight batches included: {first:?}"
    );
    let records = standin.records("users");
    assert_eq!(records.len(), 600);
    assert!(
        records.iter().all(|r| r.received_count == 1),
        "each record sent once across the boxed runs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_over_one_postgres_store_run_each_slot_exactly_once() {
    let wh = Warehouse::new(40).await;
    let standin = stand_in().await;
    let ws = Workspace::new();
    let dir = mappings_dir(&ws);
    std::fs::write(
        dir.join("people.yml"),
        mapping("shared", "user", "people", "every: 1s", &standin.url(), ""),
    )
    .expect("write");
    let state = TempSchema::new("ebb_wk_state");
    let state_url = state.state_url();
    let envs = [("WAREHOUSE_URL", database_url()), ("WAREHOUSE_SCHEMA", wh.schema.clone())];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The first opener creates the schema; the others start at once after.
    let first = WorkerProcess::start(ws.path(), &dir, &state_url, &[], &envs);
    let mut workers = vec![first];
    for _ in 0..2 {
        workers.push(WorkerProcess::start(ws.path(), &dir, &state_url, &[], &envs));
    }
    wait_for("six scheduled runs", Duration::from_secs(30), async || {
        let all = runs(&state_url, "shared").await;
        (all.iter().filter(|r| r.status == RunStatus::Completed).count() >= 6).then_some(())
    })
    .await;
    for w in &workers {
        w.signal("TERM");
    }
    for w in &mut workers {
        assert!(w.wait_exit(Duration::from_secs(15)).success());
    }
    let history = runs(&state_url, "shared").await;
    assert!(history.len() >= 6);
    let mut slots: Vec<i64> = history.iter().map(|r| r.scheduled_for.expect("scheduled")).collect();
    let n = slots.len();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), n, "no slot ran twice: {history:#?}");
    let by: BTreeSet<&str> = history.iter().filter_map(|r| r.worker.as_deref()).collect();
    eprintln!("{n} runs by {} workers", by.len());
    let held = standin.records("users");
    assert_eq!(held.len(), 40);
    assert!(held.iter().all(|r| r.received_count == 1), "the first slot's records went once");
}

/// A local receiver for alert webhooks: collects every JSON body.
async fn receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let got = got.clone();
            move |axum::Json(body): axum::Json<serde_json::Value>| {
                let got = got.clone();
                async move {
                    got.lock().expect("lock").push(body);
                    "ok"
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_webhook_fires_on_a_failed_run_without_the_api_key() {
    let wh = Warehouse::new(5).await;
    let standin = stand_in().await;
    let (hook, got) = receiver().await;
    let ws = Workspace::new();
    let dir = mappings_dir(&ws);
    let alerts = format!("alerts:\n  webhook_url: ${{ALERT_URL:-{hook}}}\n  rejected_ratio_above: 0.5\n");
    std::fs::write(
        dir.join("people.yml"),
        format!("{}{alerts}", mapping("alerting", "user", "people", "", &standin.url(), "")),
    )
    .expect("write");
    let envs = [
        ("WAREHOUSE_URL", database_url()),
        ("WAREHOUSE_SCHEMA", wh.schema.clone()),
        // The stand-in answers 401 to a wrong key, which fails the run.
        ("API_KEY", "wrong-key-s3cr3t".to_string()),
    ];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut worker = WorkerProcess::start(ws.path(), &dir, &ws.state_url(), &[], &envs);
    assert!(worker.trigger("alerting").0);
    let alerts = wait_for("the alert", Duration::from_secs(20), async || {
        let got = got.lock().expect("lock").clone();
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(alerts.len(), 1, "one alert, for the failure only: {alerts:?}");
    let alert = &alerts[0];
    assert_eq!(alert["alert"], "run_failed");
    assert_eq!(alert["sync"], "alerting");
    assert_eq!(alert["run"]["status"], "failed");
    assert!(alert["message"].as_str().unwrap_or("").contains("401"), "{alert}");
    assert!(alert["raised_by"].as_str().unwrap_or("").contains(':'), "{alert}");
    assert!(!alert.to_string().contains("s3cr3t"), "the API key never reaches an alert: {alert}");
    let (_, metrics) = worker.get("/metrics").await;
    assert_eq!(
        sample(&metrics, r#"ebb_alerts_total{sync="alerting",alert="run_failed",delivered="true"}"#),
        1.0
    );
    worker.signal("TERM");
    worker.wait_exit(Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_and_missing_mappings_are_reported_and_the_rest_keep_running() {
    let wh = Warehouse::new(2).await;
    let standin = stand_in().await;
    let ws = Workspace::new();
    let dir = mappings_dir(&ws);
    let good = mapping("good", "user", "people", "every: 1s", &standin.url(), "");
    std::fs::write(dir.join("good.yml"), &good).expect("write");
    std::fs::write(dir.join("broken.yml"), "name: broken\nsource: [\n").expect("write");
    std::fs::write(
        dir.join("typo.yaml"),
        good.replace("name: good", "name: typo").replace("Email: email", "Email: emial"),
    )
    .expect("write");
    std::fs::write(dir.join("twin.yml"), good.replace("every: 1s", "")).expect("write");
    std::fs::write(dir.join("README.md"), "not a mapping").expect("write");
    let envs = [("WAREHOUSE_URL", database_url()), ("WAREHOUSE_SCHEMA", wh.schema.clone())];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut worker = WorkerProcess::start(ws.path(), &dir, &ws.state_url(), &["--poll", "0s"], &envs);

    wait_for("the good sync", Duration::from_secs(10), async || {
        (ids(&standin, "users").len() == 2).then_some(())
    })
    .await;
    let syncs = worker.syncs().await;
    let names: Vec<&str> = syncs["syncs"]
        .as_array()
        .expect("syncs")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, vec!["good"], "{syncs}");
    let invalid = syncs["invalid"].to_string();
    assert!(invalid.contains("broken.yml:"), "{invalid}");
    assert!(invalid.contains("column `emial`") && invalid.contains("email"), "{invalid}");
    assert!(invalid.contains("twin.yml") && invalid.contains("also used by"), "{invalid}");
    let log = worker.stderr();
    assert!(log.contains("mapping skipped") && log.contains("broken.yml:"), "{log}");

    let (ok, said) = worker.trigger("goood");
    assert!(
        !ok && said.contains("no sync named `goood`") && said.contains("did you mean `good`"),
        "{said}"
    );
    let (ok, said) = worker.trigger("broken");
    assert!(!ok && said.contains("invalid") && said.contains("broken.yml"), "{said}");

    // Fixed on disk and reloaded with SIGHUP: it runs; the good one, deleted, stops.
    std::fs::write(
        dir.join("broken.yml"),
        mapping("broken", "account", "teams", "every: 1s", &standin.url(), ""),
    )
    .expect("write");
    std::fs::remove_file(dir.join("good.yml")).expect("remove");
    worker.signal("HUP");
    wait_for("the fixed sync", Duration::from_secs(10), async || {
        (ids(&standin, "accounts").len() == 2).then_some(())
    })
    .await;
    let syncs = worker.syncs().await;
    let names: Vec<&str> = syncs["syncs"]
        .as_array()
        .expect("syncs")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, vec!["broken", "good"], "twin.yml now holds the only `good`: {syncs}");
    assert_eq!(syncs["syncs"][1]["file"].as_str().map(|f| f.ends_with("twin.yml")), Some(true));
    assert_eq!(syncs["syncs"][1]["schedule"], serde_json::Value::Null, "twin has no schedule");
    assert!(worker.stderr().contains("SIGHUP"));
    worker.signal("TERM");
    assert!(worker.wait_exit(Duration::from_secs(15)).success());
}

#[tokio::test]
async fn a_worker_starts_on_an_empty_folder_with_a_warning_and_picks_mappings_up_on_reload() {
    let wh = Warehouse::new(2).await;
    let standin = stand_in().await;
    let ws = Workspace::new();
    let dir = mappings_dir(&ws);
    let envs = [("WAREHOUSE_URL", database_url()), ("WAREHOUSE_SCHEMA", wh.schema.clone())];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut worker = WorkerProcess::start(ws.path(), &dir, &ws.state_url(), &["--poll", "0s"], &envs);
    assert!(worker.stderr().contains("no mappings in the folder"), "{}", worker.stderr());
    assert_eq!(worker.syncs().await["syncs"], serde_json::json!([]));
    std::fs::write(
        dir.join("late.yml"),
        mapping("late", "user", "people", "every: 1s", &standin.url(), ""),
    )
    .expect("write");
    worker.signal("HUP");
    wait_for("the sync that arrived", Duration::from_secs(10), async || {
        (ids(&standin, "users").len() == 2).then_some(())
    })
    .await;
    worker.signal("TERM");
    assert!(worker.wait_exit(Duration::from_secs(15)).success());
}

#[tokio::test]
async fn a_missing_mappings_folder_is_a_clear_error() {
    let ws = Workspace::new();
    let out = common::ebb(
        ws.path(),
        &["--state", &ws.state_url(), "worker", "no-such-dir", "--listen", "127.0.0.1:0"],
        &[],
    );
    let (_, stderr) = common::text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("mappings folder no-such-dir") && stderr.contains("not a folder"),
        "{stderr}"
    );
    let out = common::ebb(ws.path(), &["trigger", "x", "--worker", "http://127.0.0.1:9"], &[]);
    let (_, stderr) = common::text(&out);
    assert!(
        !out.status.success() && stderr.contains("cannot reach the worker at http://127.0.0.1:9"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_loses_its_state_connection_fails_alerts_and_the_next_slot_completes() {
    let db = common::TempDatabase::new("ebb_wk_lost").await;
    let state_url = format!("{}?schema=ebb", db.url_with_password("hunter2-worker-pw"));
    let (_wh, standin, ws, dir, mut envs) = slow_setup(800).await;
    let (hook, got) = receiver().await;
    envs.push(("ALERT_URL", hook));
    std::fs::write(
        dir.join("people.yml"),
        mapping(
            "slow",
            "user",
            "people",
            "every: 2s",
            &standin.url(),
            "    concurrency: 2\n    requests_per_minute: 100000\n",
        ) + "alerts:\n  webhook_url: ${ALERT_URL}\n",
    )
    .expect("write");
    let mut worker = WorkerProcess::start(ws.path(), &dir, &state_url, &[], &as_refs(&envs));
    wait_for("some records committed", Duration::from_secs(30), async || {
        (state_ids(&state_url, "slow").await.len() >= 30).then_some(())
    })
    .await;
    assert!(db.terminate_sessions().await > 0);
    let alert = wait_for("the run_failed alert", Duration::from_secs(30), async || {
        got.lock().expect("lock").iter().find(|a| a["alert"] == "run_failed").cloned()
    })
    .await;
    let message = alert["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("lost the run lock (state connection dropped)"), "{alert}");
    assert!(!alert.to_string().contains("hunter2-worker-pw"), "{alert}");
    standin.set_latency(Duration::ZERO);
    wait_for("the next slot's run", Duration::from_secs(30), async || {
        runs(&state_url, "slow")
            .await
            .iter()
            .any(|r| r.status == RunStatus::Completed)
            .then_some(())
    })
    .await;
    let history = runs(&state_url, "slow").await;
    assert_eq!(history[0].status, RunStatus::Failed, "{history:?}");
    assert!(history[0].error.as_deref().unwrap_or("").contains("lost the run lock"));
    let (_, metrics) = worker.get("/metrics").await;
    assert_eq!(sample(&metrics, r#"ebb_sync_runs_total{sync="slow",status="failed"}"#), 1.0);
    assert!(sample(&metrics, r#"ebb_sync_runs_total{sync="slow",status="completed"}"#) >= 1.0);
    assert_eq!(ids(&standin, "users").len(), 600, "nothing lost");
    assert_eq!(state_ids(&state_url, "slow").await, ids(&standin, "users"));
    let windows = standin
        .requests()
        .into_iter()
        .fold(BTreeMap::<String, (u64, u64)>::new(), |mut w, r| {
            let e = w.entry(r.run.unwrap_or_default()).or_insert((r.started_ms, r.ended_ms));
            *e = (e.0.min(r.started_ms), e.1.max(r.ended_ms));
            w
        });
    let mut spans: Vec<(u64, u64)> = windows.values().copied().collect();
    spans.sort_unstable();
    assert!(spans.windows(2).all(|p| p[0].1 <= p[1].0), "runs never overlap: {windows:?}");
    worker.signal("TERM");
    assert!(worker.wait_exit(Duration::from_secs(15)).success(), "{}", worker.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_a_profiles_mapping_counts_its_responses_and_alerts_without_the_token() {
    let standin = stand_in().await;
    let (hook, got) = receiver().await;
    let ws = Workspace::new();
    let dir = mappings_dir(&ws);
    let profiles = |name: &str, token_var: &str| {
        format!(
            r#"name: {name}
source:
  parquet: {people}
destination:
  profiles:
    url: {url}
    token: ${{{token_var}}}
    retry_budget_secs: 3
email: email
full_name: full_name
properties:
  seats: seats
alerts:
  webhook_url: ${{ALERT_URL:-{hook}}}
"#,
            people = common::fixture("profiles/people.parquet").display(),
            url = standin.url()
        )
    };
    std::fs::write(dir.join("good.yml"), profiles("good-profiles", "GOOD_TOKEN")).expect("write");
    std::fs::write(dir.join("bad.yml"), profiles("bad-profiles", "BAD_TOKEN")).expect("write");
    let envs = [("GOOD_TOKEN", "local-profiles-token"), ("BAD_TOKEN", "wrong-t0ken-s3cr3t")];
    let mut worker = WorkerProcess::start(ws.path(), &dir, &ws.state_url(), &[], &envs);
    assert!(worker.trigger("good-profiles").0);
    assert!(worker.trigger("bad-profiles").0);
    let done = wait_for("both runs", Duration::from_secs(20), async || {
        let (good, bad) = (
            runs(&ws.state_url(), "good-profiles").await,
            runs(&ws.state_url(), "bad-profiles").await,
        );
        let finished = |r: &Vec<RunRecord>| r.last().is_some_and(|r| r.status != RunStatus::Running);
        (finished(&good) && finished(&bad) && !got.lock().expect("lock").is_empty()).then_some((good, bad))
    })
    .await;
    // Without a company source, only the email and name rejections are left: 7 of 19 go.
    assert_eq!(done.0.last().map(|r| (r.status, r.counts.sent)), Some((RunStatus::Completed, 7)));
    assert_eq!(done.1.last().map(|r| r.status), Some(RunStatus::Failed));
    assert_eq!(standin.profiles().len(), 7);
    let (_, metrics) = worker.get("/metrics").await;
    assert_eq!(
        sample(&metrics, r#"ebb_destination_responses_total{destination="profiles",status="2xx"}"#),
        1.0
    );
    assert_eq!(
        sample(&metrics, r#"ebb_destination_responses_total{destination="profiles",status="4xx"}"#),
        1.0
    );
    let alerts = got.lock().expect("lock").clone();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        (alerts[0]["alert"].as_str(), alerts[0]["sync"].as_str()),
        (Some("run_failed"), Some("bad-profiles"))
    );
    assert!(
        alerts[0]["message"].as_str().unwrap_or("").contains("token was refused"),
        "{}",
        alerts[0]
    );
    assert!(!alerts[0].to_string().contains("s3cr3t"), "the token never reaches an alert");
    worker.signal("TERM");
    worker.wait_exit(Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_select_runs_only_the_tagged_mappings_and_follows_a_retag() {
    let wh = Warehouse::new(2).await;
    let standin = stand_in().await;
    let ws = Workspace::new();
    let dir = mappings_dir(&ws);
    let tagged = |name: &str, object: &str, table: &str, tags: &str| {
        mapping(name, object, table, "every: 1s", &standin.url(), "").replace("\nsource:", &format!("\ntags: {tags}\nsource:"))
    };
    std::fs::write(dir.join("people.yml"), tagged("people", "user", "people", "[crm, hourly]")).expect("write");
    std::fs::write(dir.join("teams.yml"), tagged("teams", "account", "teams", "[billing]")).expect("write");
    // Not selected, so its error is not this worker's business.
    std::fs::write(dir.join("broken.yml"), "name: broken\ntags: [billing]\nsource: { parquet: x }\n").expect("write");
    let envs = [("WAREHOUSE_URL", database_url()), ("WAREHOUSE_SCHEMA", wh.schema.clone())];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut worker = WorkerProcess::start(ws.path(), &dir, &ws.state_url(), &["--poll", "0s", "--select", "tag:crm"], &envs);

    wait_for("the crm sync", Duration::from_secs(10), async || {
        (ids(&standin, "users").len() == 2).then_some(())
    })
    .await;
    let syncs = worker.syncs().await;
    let names: Vec<&str> = syncs["syncs"]
        .as_array()
        .expect("syncs")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, vec!["people"], "{syncs}");
    assert_eq!(syncs["invalid"], serde_json::json!([]), "a mapping left out is not reported");
    assert!(ids(&standin, "accounts").is_empty(), "the billing sync never ran");

    // Tagged crm on disk and reloaded: the worker picks it up.
    std::fs::write(dir.join("teams.yml"), tagged("teams", "account", "teams", "[billing, crm]")).expect("write");
    worker.signal("HUP");
    wait_for("the retagged sync", Duration::from_secs(10), async || {
        (ids(&standin, "accounts").len() == 2).then_some(())
    })
    .await;
    worker.signal("TERM");
    assert!(worker.wait_exit(Duration::from_secs(15)).success());
}

/// Requests of `sync` (by the run header) that started in `[from, to)` ms of the stand-in's clock.
fn started_within(log: &[ebb::standin::LoggedRequest], sync: Option<&str>, (from, to): (u64, u64)) -> usize {
    log.iter()
        .filter(|r| sync.is_none_or(|s| r.run.as_deref().is_some_and(|run| run.starts_with(&format!("{s}/")))))
        .filter(|r| (from..to).contains(&r.started_ms))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_postgres_state_share_a_keys_limit_and_one_takes_the_others_share_when_it_dies() {
    const RPM: u32 = 600;
    // 9,000 people, 600 requests of 15 a sync: more than either sends in the 80 s watched.
    let wh = Warehouse::new(9_000).await;
    let standin = stand_in_with(StandInConfig {
        rpm: Some(RPM),
        ..StandInConfig::default()
    })
    .await;
    let ws = Workspace::new();
    let state = TempSchema::new("ebb_wk_share");
    let state_url = state.state_url();
    let envs = vec![("WAREHOUSE_URL", database_url()), ("WAREHOUSE_SCHEMA", wh.schema.clone())];
    // Each worker its own sync, with the same key and the stand-in's limit.
    let extra = format!("    concurrency: 2\n    requests_per_minute: {RPM}\n");
    let workers: Vec<WorkerProcess> = ["share_a", "share_b"]
        .iter()
        .map(|name| {
            let dir = ws.path().join(name);
            std::fs::create_dir(&dir).expect("mappings dir");
            let text = mapping(name, "user", "people", "every: 1s\nmax_run: 10m", &standin.url(), &extra);
            std::fs::write(dir.join("people.yml"), text).expect("write");
            WorkerProcess::start(ws.path(), &dir, &state_url, &[], &as_refs(&envs))
        })
        .collect();
    let [mut a, mut b] = <[WorkerProcess; 2]>::try_from(workers).ok().expect("two workers");
    let first = |sync: &str| {
        let log = standin.requests();
        let prefix = format!("{sync}/");
        log.iter()
            .filter(|r| r.run.as_deref().is_some_and(|run| run.starts_with(&prefix)))
            .map(|r| r.started_ms)
            .min()
    };
    let both = wait_for("both workers sending", Duration::from_secs(30), async || {
        Some(first("share_a")?.max(first("share_b")?))
    })
    .await;
    // A full minute of both sending, then one dies without a word.
    let minute = (both, both + 60_000);
    wait_for("a minute of both sending", Duration::from_secs(90), async || {
        standin.requests().iter().any(|r| r.started_ms >= minute.1).then_some(())
    })
    .await;
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(5));
    let killed = standin.requests().iter().map(|r| r.started_ms).max().unwrap_or(minute.1);
    let after = (killed + 10_000, killed + 20_000);
    wait_for("20 s after the kill", Duration::from_secs(40), async || {
        standin.requests().iter().any(|r| r.started_ms >= after.1).then_some(())
    })
    .await;
    b.signal("TERM");
    b.wait_exit(Duration::from_secs(15));
    let log = standin.requests();
    let throttled = log.iter().filter(|r| r.status == Some(429)).count();
    assert_eq!(throttled, 0, "429s from the stand-in's limit: {:?}", standin.stats());
    let in_minute = started_within(&log, None, minute);
    let (by_a, by_b) = (
        started_within(&log, Some("share_a"), minute),
        started_within(&log, Some("share_b"), minute),
    );
    let survivor = started_within(&log, Some("share_b"), after);
    eprintln!("shared pace: {in_minute} requests in the minute ({by_a} + {by_b}); {survivor} by the survivor in 10 s");
    assert!(in_minute <= RPM as usize, "{in_minute} requests in a minute");
    assert!(
        in_minute as f64 >= 0.9 * f64::from(RPM),
        "only {in_minute} of {RPM} requests in the minute both sent ({by_a} + {by_b})"
    );
    assert!(by_a >= 150 && by_b >= 150, "both workers sent: {by_a} and {by_b}");
    // Between 10 s and 20 s after the kill, the survivor alone sends at the whole limit.
    assert!(
        survivor as f64 >= 0.9 * f64::from(RPM) / 6.0,
        "the surviving worker sent {survivor} requests in 10 s, 10 s after the other died"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_during_a_long_backfill_arrive_within_seconds_and_the_backfill_still_completes() {
    const RPM: u32 = 600;
    // 6,000 people, 400 requests of 15 at 600 a minute: about 40 s of sending, in 5 s boxes.
    let wh = Warehouse::new(6_000).await;
    let standin = stand_in_with(StandInConfig {
        rpm: Some(RPM),
        ..StandInConfig::default()
    })
    .await;
    let ws = Workspace::new();
    let dir = mappings_dir(&ws);
    let extra = format!("    concurrency: 2\n    requests_per_minute: {RPM}\n");
    let text = mapping("backfill", "user", "people", "every: 5s\nmax_run: 5s", &standin.url(), &extra);
    std::fs::write(dir.join("people.yml"), text).expect("write");
    let envs = vec![("WAREHOUSE_URL", database_url()), ("WAREHOUSE_SCHEMA", wh.schema.clone())];
    let state_url = ws.state_url();
    let mut worker = WorkerProcess::start(ws.path(), &dir, &state_url, &[], &as_refs(&envs));
    wait_for("the backfill to start", Duration::from_secs(30), async || {
        (!standin.requests().is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    // Ten people the destination already holds change.
    let delivered: Vec<String> = ids(&standin, "users").into_iter().step_by(50).take(10).collect();
    assert_eq!(delivered.len(), 10, "at least 500 delivered in 20 s");
    let list = delivered.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(", ");
    wh.exec(&format!(
        "UPDATE {{s}}.people SET email = 'changed-' || id || '@example.com' WHERE id IN ({list})"
    ))
    .await;
    let changed_at = Instant::now();
    let mut delays = BTreeMap::new();
    let held_then = wait_for("every change at the destination", Duration::from_secs(30), async || {
        let records = standin.records("users");
        for r in records.iter().filter(|r| delivered.contains(&r.id)) {
            if r.attributes.to_string().contains("changed-") {
                delays.entry(r.id.clone()).or_insert_with(|| changed_at.elapsed());
            }
        }
        (delays.len() == delivered.len()).then_some(records.len())
    })
    .await;
    let slowest = delays.values().max().copied().unwrap_or_default();
    assert!(
        slowest <= Duration::from_secs(15),
        "a change took {slowest:?} to arrive: {delays:?}"
    );
    assert!(
        held_then < 6_000,
        "the changes arrived before the backfill ended ({held_then} held)"
    );
    let history = wait_for("the backfill to complete", Duration::from_secs(90), async || {
        let all = runs(&state_url, "backfill").await;
        all.iter().any(|r| r.status == RunStatus::Completed).then_some(all)
    })
    .await;
    worker.signal("TERM");
    worker.wait_exit(Duration::from_secs(15));
    eprintln!(
        "backfill: changes arrived after {delays:?}; {} runs; {held_then} of 6000 held then",
        history.len()
    );
    let records = standin.records("users");
    assert_eq!(records.len(), 6_000);
    for r in &records {
        let want = if delivered.contains(&r.id) { 2 } else { 1 };
        assert_eq!(r.received_count, want, "{} delivered {} times", r.id, r.received_count);
    }
    assert_eq!(standin.stats().by_status.get(&429), None, "{:?}", standin.stats());
}
