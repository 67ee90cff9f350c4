//! Two runs of one sync never overlap, on one state store or across hosts
//! sharing a PostgreSQL one, and a killed run never leaves its sync locked.

mod common;

use std::time::Duration;

use common::*;
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
