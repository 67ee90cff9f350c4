//! Long runs at the destination's limit, against the stand-in over real HTTP: no 429 from a
//! sliding-minute limit, slowing down on 429s and speeding up again, one pace for two syncs
//! with one key, a `Retry-After` that holds every request, and a killed paced run that resumes.
//!
//! These run in real time (the stand-in counts real minutes), so each is paced to take a few
//! seconds, but the first, which must fill a whole sliding minute.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{generate, load_sync, stand_in, stand_in_with, Workspace};
use ebb::standin::{Fault, LoggedRequest, StandIn, StandInConfig};
use ebb::state::{RunStatus, StateStore};
use ebb::sync::{self, RunOptions, RunReport, SyncJob};

/// The benchmark mapping at a pace of `rpm` with `concurrency` requests in flight.
fn mapping(ws: &Workspace, name: &str, rpm: u32, concurrency: u32) -> PathBuf {
    let text = include_str!("../mappings/bench/users.yml")
        .replace("name: bench_users", &format!("name: {name}"))
        .replace("requests_per_minute: 1000000", &format!("requests_per_minute: {rpm}"))
        .replace("concurrency: 8", &format!("concurrency: {concurrency}"));
    ws.write(&format!("{name}.yml"), &text)
}

fn job(mapping: &Path, snapshot: &Path, si: &StandIn) -> SyncJob {
    let snapshot = snapshot.display().to_string();
    load_sync(mapping, &[("SNAPSHOT", &snapshot), ("STANDIN_URL", &si.url())])
}

async fn completed(sync: &SyncJob, store: &dyn StateStore, options: &RunOptions) -> RunReport {
    let report = sync::run(sync, store, options).await.expect("run is recorded");
    assert_eq!(report.status, RunStatus::Completed, "{report:?}");
    report
}

/// Start times of the stand-in's requests, in milliseconds, sorted.
fn starts(log: &[LoggedRequest]) -> Vec<u64> {
    let mut at: Vec<u64> = log.iter().map(|r| r.started_ms).collect();
    at.sort_unstable();
    at
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_longer_than_a_minute_at_the_limit_gets_no_429_and_uses_97_percent_of_it() {
    const RPM: u32 = 1200;
    let ws = Workspace::new();
    // 1,334 requests of 15: a little over 66 s at 1,200 a minute.
    let (data, _) = generate(&ws, 20_000);
    let si = stand_in_with(StandInConfig {
        rpm: Some(RPM),
        ..StandInConfig::default()
    })
    .await;
    let store = ws.store().await;
    let sync = job(&mapping(&ws, "long", RPM, 4), &data.join("a.parquet"), &si);
    let report = completed(&sync, store.as_ref(), &RunOptions::default()).await;
    assert_eq!(report.counts.sent, 20_000);
    let stats = si.stats();
    assert_eq!(stats.by_status.get(&429), None, "{stats:?}");
    let at = starts(&si.requests());
    // The busiest sliding minute the stand-in saw.
    let busiest = (0..at.len())
        .map(|i| at[i..].iter().take_while(|&&t| t < at[i] + 60_000).count())
        .max()
        .unwrap_or(0);
    assert!(busiest <= RPM as usize, "{busiest} requests in a minute");
    assert!(
        busiest as f64 >= 0.97 * f64::from(RPM),
        "only {busiest} of {RPM} requests in the busiest minute"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_without_retry_after_slows_the_pace_down_and_it_climbs_back_to_the_limit() {
    let ws = Workspace::new();
    let (data, _) = generate(&ws, 900);
    let si = stand_in().await;
    si.push_faults([Fault {
        status: 429,
        retry_after_secs: None,
    }]);
    let store = ws.store().await;
    // 60 requests at 600 a minute, one at a time.
    let sync = job(&mapping(&ws, "aimd", 600, 1), &data.join("a.parquet"), &si);
    let report = completed(&sync, store.as_ref(), &RunOptions::default()).await;
    assert_eq!(report.counts.sent, 900);
    let at = starts(&si.requests());
    assert_eq!(at.len(), 61, "60 requests and one retry");
    let gaps: Vec<u64> = at.windows(2).map(|w| w[1] - w[0]).collect();
    // Gap 0 is the retry's backoff; then half the pace, climbing back 2% of the limit a request.
    let slowed = median(gaps[1..6].to_vec());
    let recovered = median(gaps[gaps.len() - 10..].to_vec());
    assert!(slowed >= 170, "after the 429 requests were {slowed} ms apart: {gaps:?}");
    assert!(
        (95..=130).contains(&recovered),
        "at the end they were {recovered} ms apart: {gaps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_syncs_with_one_key_share_one_pace() {
    let ws = Workspace::new();
    let (data, _) = generate(&ws, 750);
    let si = stand_in().await;
    let store = ws.store().await;
    let snapshot = data.join("a.parquet");
    let left = job(&mapping(&ws, "left", 600, 4), &snapshot, &si);
    let right = job(&mapping(&ws, "right", 600, 4), &snapshot, &si);
    // As a worker's runs, or the mappings of one `ebb sync`, share them.
    let options = RunOptions::default();
    let (l, r) = tokio::join!(
        completed(&left, store.as_ref(), &options),
        completed(&right, store.as_ref(), &options)
    );
    assert_eq!((l.counts.sent, r.counts.sent), (750, 750));
    let at = starts(&si.requests());
    assert_eq!(at.len(), 100);
    // 100 requests at 600 a minute between them: 99 intervals of about 100 ms, not 50 ms each.
    let span = at[99] - at[0];
    assert!(span >= 9_500, "100 requests in {span} ms: each sync went at the full pace");
    let gaps: Vec<u64> = at.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(median(gaps) >= 90, "requests of the two syncs interleave at one pace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_holds_every_request_of_the_destination_not_just_the_one_that_got_it() {
    let ws = Workspace::new();
    let (data, _) = generate(&ws, 600);
    let si = stand_in().await;
    si.push_faults([Fault {
        status: 429,
        retry_after_secs: Some(2),
    }]);
    let store = ws.store().await;
    let sync = job(&mapping(&ws, "held", 1_000_000, 4), &data.join("a.parquet"), &si);
    let report = completed(&sync, store.as_ref(), &RunOptions::default()).await;
    assert_eq!(report.counts.sent, 600);
    let log = si.requests();
    let throttled = log.iter().find(|r| r.status == Some(429)).expect("the scripted 429");
    // Requests that left before ebb read the 429 may start a little after it at the stand-in.
    let (heard, over) = (throttled.ended_ms + 150, throttled.ended_ms + 1_950);
    let during: Vec<u64> = starts(&log).into_iter().filter(|&t| t > heard && t < over).collect();
    assert!(during.is_empty(), "requests started during the 2 s the 429 asked for: {during:?}");
    let after = log.iter().filter(|r| r.started_ms >= over).count();
    assert!(after >= 30, "the rest went after the wait: {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_first_sync_killed_midway_resumes_with_only_what_was_not_acknowledged() {
    const ROWS: u64 = 900;
    let ws = Workspace::new();
    let (data, _) = generate(&ws, ROWS);
    let si = stand_in().await;
    let path = mapping(&ws, "resumed", 600, 2);
    let snapshot = data.join("a.parquet");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ebb"))
        .current_dir(ws.path())
        .args(["--state", &ws.state_url(), "sync"])
        .arg(&path)
        .env("SNAPSHOT", &snapshot)
        .env("STANDIN_URL", si.url())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ebb starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while si.stats().records_received < 300 {
        assert!(std::time::Instant::now() < deadline, "the run never got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Meanwhile `ebb status`, another process, shows how far it got, the rate and the time left.
    let status = loop {
        let out = common::ebb(ws.path(), &["--state", &ws.state_url(), "status"], &[]);
        let (stdout, stderr) = common::text(&out);
        assert!(out.status.success(), "{stderr}");
        if stdout.contains("left") {
            break stdout;
        }
        assert!(std::time::Instant::now() < deadline, "no progress in `ebb status`: {stdout}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let line = status.lines().find(|l| l.contains("sending:")).unwrap_or_default();
    assert!(line.contains("/900 records, ") && line.contains("/s, about "), "{status}");
    assert!(status.contains("running"), "{status}");
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let store = ws.store().await;
    let committed = store.records("resumed").await.expect("records").len() as u64;
    let before = si.stats().records_received;
    assert!(committed > 0 && committed < ROWS, "killed midway, {committed} committed");
    let sync = job(&path, &snapshot, &si);
    let report = completed(&sync, store.as_ref(), &RunOptions::default()).await;
    assert_eq!(report.counts.sent, ROWS - committed, "{report:?}");
    assert_eq!(si.records("users").len() as u64, ROWS);
    // Sent twice: at most what was acknowledged and not yet committed when the process died,
    // the requests in flight and one commit window, a few requests at this pace.
    let twice = si.stats().records_received - ROWS;
    assert!(
        twice <= 5 * 15,
        "{twice} records sent twice ({before} received before the kill, {committed} committed)"
    );
}

/// Two processes' pacers on one PostgreSQL state store (two sets of pacers, as two processes
/// hold), for the credential `scope`.
async fn shared_pacers(limits: (u32, u32)) -> (common::TempSchema, [std::sync::Arc<ebb::ship::pacing::Pacer>; 2]) {
    let schema = common::TempSchema::new("ebb_pace");
    let store = ebb::state::open(&schema.state_url(), false).await.expect("PostgreSQL state");
    let shared = store.shared_pace();
    assert!(shared.is_some(), "PostgreSQL state shares the pace");
    let (one, two) = (ebb::ship::pacing::Pacers::default(), ebb::ship::pacing::Pacers::default());
    let pacers = [one.get(42, limits.0, shared.clone()), two.get(42, limits.1, shared)];
    (schema, pacers)
}

/// When each request of `tasks` concurrent senders started, by pacer, for `for_how_long`.
async fn turns(pacers: &[std::sync::Arc<ebb::ship::pacing::Pacer>], tasks: usize, for_how_long: Duration) -> Vec<Vec<Duration>> {
    let t0 = tokio::time::Instant::now();
    let mut handles = Vec::new();
    for pacer in pacers {
        let senders: Vec<_> = (0..tasks)
            .map(|_| {
                let pacer = std::sync::Arc::clone(pacer);
                tokio::spawn(async move {
                    let mut at = Vec::new();
                    loop {
                        pacer.ready().await;
                        if t0.elapsed() >= for_how_long {
                            return at;
                        }
                        at.push(t0.elapsed());
                    }
                })
            })
            .collect();
        handles.push(senders);
    }
    let mut out = Vec::new();
    for senders in handles {
        let mut all = Vec::new();
        for s in senders {
            all.extend(s.await.expect("sender"));
        }
        all.sort();
        out.push(all);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_on_one_postgres_state_share_one_pace_per_key_and_use_it_all() {
    let (_schema, pacers) = shared_pacers((1200, 1200)).await;
    // 1,200 a minute is 20 a second between both processes, not 20 each.
    let by_process = turns(&pacers, 3, Duration::from_secs(4)).await;
    let (one, two) = (by_process[0].len(), by_process[1].len());
    let total = one + two;
    assert!(total <= 82, "{one} + {two} turns in 4 s at 20 a second");
    assert!(total >= 72, "only {one} + {two} turns in 4 s at 20 a second");
    assert!(one >= 20 && two >= 20, "both processes take turns: {one} and {two}");
    let mut all: Vec<Duration> = by_process.concat();
    all.sort();
    let tenth_second = all.windows(2).filter(|w| w[1] - w[0] < Duration::from_millis(20)).count();
    assert!(tenth_second <= total / 10, "turns are spaced, not bunched: {all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_pace_is_the_lowest_limit_of_the_processes_sending_and_a_hold_holds_them_all() {
    let (_schema, [slow, fast]) = shared_pacers((300, 6000)).await;
    // The slow process joins by taking a turn; from then on the fast one goes at its pace.
    slow.ready().await;
    let t0 = tokio::time::Instant::now();
    for _ in 0..6 {
        fast.ready().await;
    }
    let six = t0.elapsed();
    // Five intervals of 200 ms at 300 a minute (the first turn may come at once).
    assert!(
        six >= Duration::from_millis(950),
        "six turns in {six:?}: the lower limit did not hold"
    );
    // A Retry-After the slow process got holds the fast one.
    slow.hold(Duration::from_secs(2)).await;
    let t1 = tokio::time::Instant::now();
    fast.ready().await;
    let held = t1.elapsed();
    assert!(held >= Duration::from_millis(1_900), "the other process waited only {held:?}");
}
