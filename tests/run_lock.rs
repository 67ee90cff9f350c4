//! Two runs of one sync never overlap, on one state store or across hosts
//! sharing a PostgreSQL one, and a killed run never leaves its sync locked.

use std::time::Duration;

use crate::common::*;
use ebb::standin::StandInConfig;
use ebb::state::{self, RunStatus};
use ebb::sync::RunOptions;

fn users_source() -> String {
    fixture("users/pyarrow.parquet").display().to_string()
}

fn slow_stand_in() -> StandInConfig {
    StandInConfig {
        latency: Duration::from_millis(150),
        ..Default::default()
    }
}

/// Starts two runs of one sync at once, each through its own store (as two hosts would).
async fn two_runs_at_once(state_url: &str, wait: bool) -> (Vec<Result<ebb::sync::RunReport, ebb::Error>>, ebb::standin::StandIn) {
    let ws = Workspace::new();
    let si = stand_in_with(slow_stand_in()).await;
    let mapping = ws.write(
        "users.yml",
        &users_yaml(
            "users",
            &si.url(),
            "    concurrency: 1\n    batch_size: 10\n    requests_per_minute: 60000",
        ),
    );
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let sync = load_sync(&mapping, &[("USERS_SOURCE", &users_source())]);
        let url = state_url.to_string();
        tasks.push(tokio::spawn(async move {
            let store = state::open(&url, false).await.expect("state");
            let options = RunOptions {
                wait_for_lock: wait,
                ..RunOptions::default()
            };
            ebb::sync::run(&sync, store.as_ref(), &options).await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("join"));
    }
    (results, si)
}

fn assert_exactly_one_sent(results: &[Result<ebb::sync::RunReport, ebb::Error>], si: &ebb::standin::StandIn) {
    let completed: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!((completed.len(), refused.len()), (1, 1), "{results:?}");
    assert_eq!(completed[0].counts.sent, 40);
    assert_eq!(
        refused[0].to_string(),
        "sync `users` is already running: another ebb process holds its lock"
    );
    assert_eq!(si.stats().records_received, 40, "exactly one run sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_runs_exactly_one_sends() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    let (results, si) = two_runs_at_once(&url, false).await;
    assert_exactly_one_sent(&results, &si);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_runs_exactly_one_sends() {
    let schema = TempSchema::new("ebb_lock");
    let (results, si) = two_runs_at_once(&schema.state_url(), false).await;
    assert_exactly_one_sent(&results, &si);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_runs_after_the_first_and_sends_nothing_new() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    let (results, si) = two_runs_at_once(&url, true).await;
    let mut sent: Vec<u64> = results.iter().map(|r| r.as_ref().expect("both complete").counts.sent).collect();
    sent.sort_unstable();
    assert_eq!(sent, vec![0, 40], "the second run saw the first one's state");
    assert!(results
        .iter()
        .all(|r| r.as_ref().map(|r| r.status == RunStatus::Completed).unwrap_or(false)));
    assert_eq!(si.stats().records_received, 40);
}

/// Kills an `ebb sync` mid-run with SIGKILL and checks the lock is free afterwards.
async fn killed_run_releases_the_lock(state_url: &str) {
    let ws = Workspace::new();
    let si = stand_in_with(StandInConfig {
        latency: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    ws.write(
        "users.yml",
        &users_yaml(
            "users",
            &si.url(),
            "    concurrency: 1\n    batch_size: 5\n    requests_per_minute: 60000",
        ),
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ebb"))
        .current_dir(ws.path())
        .args(["--state", state_url, "sync", "users.yml"])
        .env("USERS_SOURCE", users_source())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ebb starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while si.stats().requests < 1 {
        assert!(std::time::Instant::now() < deadline, "the run never sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let store = state::open(state_url, false).await.expect("state");
    assert!(
        store.try_lock("users").await.expect("try").is_none(),
        "the running sync holds the lock"
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    // The OS (flock) or the server (session end) releases the lock; the server may take a moment.
    let mut free = None;
    for _ in 0..50 {
        free = store.try_lock("users").await.expect("try");
        if free.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(free.is_some(), "a killed run left the sync locked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_run_does_not_leave_the_sync_locked() {
    let ws = Workspace::new();
    killed_run_releases_the_lock(&ws.state_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_run_does_not_leave_the_sync_locked() {
    let schema = TempSchema::new("ebb_kill");
    killed_run_releases_the_lock(&schema.state_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_says_already_running_and_exits_75() {
    let ws = Workspace::new();
    let si = stand_in_with(StandInConfig {
        latency: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    ws.write(
        "users.yml",
        &users_yaml(
            "users",
            &si.url(),
            "    concurrency: 1\n    batch_size: 5\n    requests_per_minute: 60000",
        ),
    );
    let store = ws.store().await;
    let held = store.try_lock("users").await.expect("try").expect("free");
    let dir = ws.path().to_path_buf();
    let src = users_source();
    let state_url = ws.state_url();
    let out = tokio::task::spawn_blocking(move || ebb(&dir, &["--state", &state_url, "sync", "users.yml"], &[("USERS_SOURCE", &src)]))
        .await
        .expect("join");
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("sync `users` is already running") && err.contains("--wait"), "{err}");
    assert_eq!(si.stats().requests, 0);
    assert!(
        store.runs(Some("users"), 5).await.expect("runs").is_empty(),
        "a refused run records nothing"
    );
    drop(held);
}

/// 3,000 people in a warehouse table of the shared test database (not the state database,
/// whose sessions the test ends), and a mapping of them into the stand-in.
async fn people_table(rows: usize) -> TempSchema {
    let schema = TempSchema::new("ebb_lost_src");
    let pool = sqlx::PgPool::connect(&database_url()).await.expect("PostgreSQL");
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA \"{s}\";
         CREATE TABLE \"{s}\".people (user_id text PRIMARY KEY, name text NOT NULL, signup_at bigint NOT NULL);
         INSERT INTO \"{s}\".people SELECT 'u' || g, 'Person ' || g, 1700000000 + g FROM generate_series(1, {rows}) g;",
        s = schema.name
    ))
    .execute(&pool)
    .await
    .expect("warehouse table");
    schema
}

fn people_mapping(standin_url: &str) -> String {
    format!(
        "name: people\nsource:\n  postgres:\n    url: ${{WAREHOUSE_URL}}\n    table: ${{WAREHOUSE_SCHEMA}}.people\n\
         destination:\n  enterpret:\n    object: user\n    api_key: ${{TEST_USERS_KEY:-local-users-key}}\n    url: {standin_url}\n\
         \x20   batch_size: 15\n    concurrency: 4\n    requests_per_minute: 100000\n    retry_budget_secs: 5\n\
         id: user_id\ncreated_at: signup_at\nattributes:\n  Name: name\n"
    )
}

/// `ebb sync` of the people mapping as a child process, its stderr in a file.
fn spawn_sync(ws: &Workspace, state_url: &str, source: &TempSchema, log: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_ebb"))
        .current_dir(ws.path())
        .args(["--state", state_url, "sync", "people.yml"])
        .env_remove("EBB_STATE")
        .env("EBB_LOG", "warn")
        .env("WAREHOUSE_URL", database_url())
        .env("WAREHOUSE_SCHEMA", &source.name)
        .stdout(std::fs::File::create(ws.path().join(format!("{log}.out"))).expect("stdout file"))
        .stderr(std::fs::File::create(ws.path().join(format!("{log}.err"))).expect("stderr file"))
        .spawn()
        .expect("ebb starts")
}

fn finish(mut child: std::process::Child, ws: &Workspace, log: &str) -> (Option<i32>, String) {
    let status = child.wait().expect("reaped");
    let out = std::fs::read_to_string(ws.path().join(format!("{log}.out"))).unwrap_or_default();
    let err = std::fs::read_to_string(ws.path().join(format!("{log}.err"))).unwrap_or_default();
    (status.code(), format!("{out}{err}"))
}

fn signal(child: &std::process::Child, name: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(ok.success(), "kill -{name}");
}

/// Each run's requests, as `[first arrival, last end]` in the stand-in's clock.
fn request_windows(si: &ebb::standin::StandIn) -> std::collections::BTreeMap<String, (u64, u64)> {
    let mut windows = std::collections::BTreeMap::new();
    for r in si.requests() {
        let run = r.run.expect("every request of a run names its run");
        let w = windows.entry(run).or_insert((r.started_ms, r.ended_ms));
        w.0 = w.0.min(r.started_ms);
        w.1 = w.1.max(r.ended_ms);
    }
    windows
}

/// The four steps: a sync with PostgreSQL state against a slow destination; every
/// session of the state database ended mid-run; the advisory lock is gone; a second run must
/// still not start. Then: the first run fails with a clear error and commits nothing more, no
/// two runs ever have requests in flight at once, and the next run completes the sync with
/// nothing lost and nothing falsely marked as synced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_state_connection_stops_the_run_and_no_two_runs_ever_overlap() {
    let db = TempDatabase::new("ebb_lost").await;
    let state_url = format!("{}?schema=ebb", db.url_with_password("hunter2-state-pw"));
    let source = people_table(3000).await;
    let si = stand_in_with(StandInConfig {
        latency: Duration::from_millis(800),
        ..Default::default()
    })
    .await;
    let ws = Workspace::new();
    ws.write("people.yml", &people_mapping(&si.url()));
    let store = state::open(&state_url, false).await.expect("state");

    let first = spawn_sync(&ws, &state_url, &source, "first");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while store.records("people").await.map(|r| r.len()).unwrap_or(0) < 60 {
        assert!(std::time::Instant::now() < deadline, "the first run never committed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (code, said) = finish(spawn_sync(&ws, &state_url, &source, "second"), &ws, "second");
    assert_eq!(code, Some(75), "a second run exits 75 while the first holds the lock: {said}");
    assert!(said.contains("already running"), "{said}");

    // Frozen, the first run cannot notice the cut before the third run tries: the lease, not
    // luck, must keep the third run out.
    signal(&first, "STOP");
    assert!(db.terminate_sessions().await > 0, "the state store had sessions to end");
    let mut locks = db.advisory_locks().await;
    for _ in 0..50 {
        if locks == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        locks = db.advisory_locks().await;
    }
    assert_eq!(locks, 0, "ending the session freed the advisory lock, as PostgreSQL does");
    let (code, said) = finish(spawn_sync(&ws, &state_url, &source, "third"), &ws, "third");
    assert_eq!(code, Some(75), "the first run may still be sending, so a third run waits: {said}");
    signal(&first, "CONT");

    let (code, said) = finish(first, &ws, "first");
    assert_eq!(code, Some(1), "the first run fails: {said}");
    assert!(said.contains("lost the run lock (state connection dropped)"), "{said}");
    assert!(said.contains("postgres:****@") && !said.contains("hunter2-state-pw"), "{said}");
    let committed = stored_ids(store.as_ref(), "people").await;
    let delivered = held_ids(&si, "users");
    assert!(
        committed.is_subset(&delivered),
        "nothing is marked synced that the stand-in did not get"
    );
    assert!(delivered.len() < 3000, "the first run stopped before the end");
    let failed = store.runs(Some("people"), 10).await.expect("runs");
    assert_eq!(failed.len(), 1, "the refused runs recorded nothing: {failed:?}");
    assert_eq!(failed[0].status, RunStatus::Failed);
    let error = failed[0].error.clone().unwrap_or_default();
    assert!(
        error.starts_with("state: lost the run lock (state connection dropped) on state store postgres://postgres:****@"),
        "{error}"
    );
    assert!(
        failed[0].counts.sent < 3000 && failed[0].counts.failed > 0,
        "{:?}",
        failed[0].counts
    );

    si.set_latency(Duration::ZERO);
    let (code, said) = finish(spawn_sync(&ws, &state_url, &source, "fourth"), &ws, "fourth");
    assert_eq!(code, Some(0), "the lost run released its lease on the way out: {said}");
    let held = si.records("users");
    assert_eq!(held.len(), 3000, "nothing lost");
    let committed = store.records("people").await.expect("records");
    assert_eq!(committed.len(), 3000);
    let again = store.runs(Some("people"), 1).await.expect("runs");
    assert_eq!(again[0].status, RunStatus::Completed);
    assert_eq!(
        again[0].counts.sent as usize + failed[0].counts.sent as usize,
        3000,
        "the next run sent exactly what the lost one had not committed"
    );

    let windows = request_windows(&si);
    assert_eq!(windows.len(), 2, "only the first and the fourth run sent: {windows:?}");
    let spans: Vec<&(u64, u64)> = windows.values().collect();
    let (a, b) = if spans[0].0 <= spans[1].0 {
        (spans[0], spans[1])
    } else {
        (spans[1], spans[0])
    };
    assert!(a.1 <= b.0, "the two runs' requests never interleave: {windows:?}");
}
