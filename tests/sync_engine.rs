//! The sync engine end to end, over real HTTP against the stand-in and real
//! SQLite state.

use crate::common;

use std::collections::BTreeSet;

use crate::common::*;
use ebb::standin::Fault;
use ebb::state::{RejectionStage, RunStatus};

fn users_source() -> String {
    fixture("users/pyarrow.parquet").display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sync_sends_everything_and_rerun_sends_nothing() {
    let ws = Workspace::new();
    let si = stand_in().await;
    let mapping = ws.write("users.yml", &users_yaml("users", &si.url(), ""));
    let store = ws.store().await;
    let sync = load_sync(&mapping, &[("USERS_SOURCE", &users_source())]);

    let first = run_ok(&sync, store.as_ref()).await;
    assert_eq!((first.counts.source, first.counts.new, first.counts.sent), (40, 40, 40));
    assert_eq!(si.records("users").len(), 40);
    // 40 records at 15 per request.
    assert_eq!(si.stats().accepted_requests, 3);

    let second = run_ok(&sync, store.as_ref()).await;
    assert_eq!((second.counts.unchanged, second.counts.sent, second.counts.new), (40, 0, 0));
    assert_eq!(si.stats().accepted_requests, 3, "a rerun sends no request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_changed_rows_send_three_records() {
    let ws = Workspace::new();
    let si = stand_in().await;
    let mapping = ws.write("users.yml", &users_yaml("users", &si.url(), ""));
    let store = ws.store().await;
    run_ok(&load_sync(&mapping, &[("USERS_SOURCE", &users_source())]), store.as_ref()).await;

    let changed = fixture("users_3_changed.parquet").display().to_string();
    let report = run_ok(&load_sync(&mapping, &[("USERS_SOURCE", &changed)]), store.as_ref()).await;
    assert_eq!((report.counts.changed, report.counts.sent, report.counts.unchanged), (3, 3, 37));
    let resent: BTreeSet<String> = si
        .records("users")
        .into_iter()
        .filter(|r| r.received_count == 2)
        .map(|r| r.id)
        .collect();
    assert_eq!(
        resent,
        BTreeSet::from(["u-00003".to_string(), "u-00017".to_string(), "u-00029".to_string()])
    );
    let renamed = si.records("users").into_iter().find(|r| r.id == "u-00003").expect("u-00003 held");
    assert_eq!(renamed.attributes["Name"], serde_json::json!({"s": ["Renamed Person"]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_data_from_other_writers_and_layouts_sends_nothing() {
    let ws = Workspace::new();
    let si = stand_in().await;
    let mapping = ws.write("users.yml", &users_yaml("users", &si.url(), ""));
    let store = ws.store().await;
    run_ok(&load_sync(&mapping, &[("USERS_SOURCE", &users_source())]), store.as_ref()).await;

    for other in ["users_duckdb", "users_duckdb/*.parquet", "users/pyarrow_alt_encodings.parquet"] {
        let source = fixture(other).display().to_string();
        let report = run_ok(&load_sync(&mapping, &[("USERS_SOURCE", &source)]), store.as_ref()).await;
        assert_eq!(
            (report.counts.source, report.counts.unchanged, report.counts.sent),
            (40, 40, 0),
            "{other}: {report:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_rows_are_rejected_with_reasons_and_valid_rows_go() {
    let ws = Workspace::new();
    let si = stand_in().await;
    let mapping = ws.write("users.yml", &users_yaml("bad-users", &si.url(), ""));
    let store = ws.store().await;
    let source = fixture("users_invalid.parquet").display().to_string();
    let report = run_ok(&load_sync(&mapping, &[("USERS_SOURCE", &source)]), store.as_ref()).await;
    assert_eq!(
        (report.counts.source, report.counts.invalid, report.counts.sent),
        (10, 8, 2),
        "{report:?}"
    );
    let held: Vec<String> = si.records("users").into_iter().map(|r| r.id).collect();
    assert_eq!(held, vec!["u-00000".to_string(), "u-00009".to_string()]);

    let rejections = store.rejections(report.run_id.expect("run id"), 100).await.expect("rejections");
    let reasons: Vec<String> = rejections.iter().map(|r| r.reason.clone()).collect();
    let expect = [
        "id is null",
        "id is empty",
        "createdAt 1999-06-01T00:00:00Z is before 2000-01-01",
        "createdAt 2100-01-01T00:00:00Z is in the future",
        "createdAt is null",
        "attribute `Age` (column `age`): cannot read \"not a number\" as a number",
        "id `u-00004` occurs 2 times in the snapshot; every occurrence is rejected",
    ];
    for want in expect {
        assert!(reasons.iter().any(|r| r == want), "missing rejection {want:?} in {reasons:#?}");
    }
    assert!(rejections.iter().all(|r| r.stage == RejectionStage::Mapping));
    let null_id = rejections.iter().find(|r| r.reason == "id is null").expect("null id rejection");
    assert!(null_id.position.ends_with("users_invalid.parquet row 2"), "{}", null_id.position);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_from_429_and_5xx() {
    let ws = Workspace::new();
    let si = stand_in().await;
    si.push_faults([
        Fault {
            status: 429,
            retry_after_secs: Some(1),
        },
        Fault {
            status: 500,
            retry_after_secs: None,
        },
        Fault {
            status: 503,
            retry_after_secs: None,
        },
    ]);
    let mapping = ws.write(
        "users.yml",
        &users_yaml("users", &si.url(), "    concurrency: 1\n    retry_budget_secs: 30"),
    );
    let store = ws.store().await;
    let started = std::time::Instant::now();
    let report = run_ok(&load_sync(&mapping, &[("USERS_SOURCE", &users_source())]), store.as_ref()).await;
    assert_eq!(report.counts.sent, 40);
    let stats = si.stats();
    assert_eq!(stats.requests, 3 + 3, "three faults, then three accepted requests: {stats:?}");
    assert_eq!(stats.by_status.get(&429), Some(&1));
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "Retry-After was honoured");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_too_large_splits_the_batch() {
    let ws = Workspace::new();
    let si = stand_in().await;
    si.push_faults([Fault {
        status: 413,
        retry_after_secs: None,
    }]);
    let mapping = ws.write("users.yml", &users_yaml("users", &si.url(), "    concurrency: 1"));
    let store = ws.store().await;
    let report = run_ok(&load_sync(&mapping, &[("USERS_SOURCE", &users_source())]), store.as_ref()).await;
    assert_eq!((report.counts.sent, report.counts.rejected), (40, 0));
    // The refused 15 went again as 7 + 8, then two more batches: 1 + 2 + 2 accepted.
    assert_eq!(si.stats().accepted_requests, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_record_in_a_batch_rejects_only_that_record() {
    let ws = Workspace::new();
    let si = stand_in().await;
    si.refuse_ids(["u-00007".to_string()]);
    let mapping = ws.write("users.yml", &users_yaml("users", &si.url(), ""));
    let store = ws.store().await;
    let sync = load_sync(&mapping, &[("USERS_SOURCE", &users_source())]);
    let report = run_ok(&sync, store.as_ref()).await;
    assert_eq!((report.counts.sent, report.counts.rejected, report.counts.failed), (39, 1, 0));
    assert!(!si.records("users").iter().any(|r| r.id == "u-00007"));
    let rejections = store.rejections(report.run_id.expect("run id"), 100).await.expect("rejections");
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].record_id.as_deref(), Some("u-00007"));
    assert_eq!(rejections[0].stage, RejectionStage::Destination);
    assert!(
        rejections[0].reason.contains("ErrCodeInvalidRequestArgument") && rejections[0].reason.contains("refused by the stand-in"),
        "{}",
        rejections[0].reason
    );
    // The refused record was not committed, so the next run tries it again, and only it.
    let again = run_ok(&sync, store.as_ref()).await;
    assert_eq!((again.counts.new, again.counts.unchanged, again.counts.rejected), (1, 39, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stand_in_stopped_mid_run_leaves_exact_state_and_next_run_completes() {
    let ws = Workspace::new();
    let si = stand_in_with(ebb::standin::StandInConfig {
        latency: std::time::Duration::from_millis(150),
        ..Default::default()
    })
    .await;
    let addr = si.addr();
    let mapping = ws.write(
        "users.yml",
        &users_yaml(
            "users",
            &si.url(),
            "    concurrency: 1\n    batch_size: 5\n    retry_budget_secs: 2",
        ),
    );
    let store = ws.store().await;
    let sync = load_sync(&mapping, &[("USERS_SOURCE", &users_source())]);

    let run = tokio::spawn({
        let state_url = ws.state_url();
        async move {
            let store = ebb::state::open(&state_url, false).await.expect("state");
            common::run(&sync, store.as_ref(), false).await
        }
    });
    while si.stats().accepted_requests < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let delivered = held_ids(&si, "users");
    si.stop().await;
    let report = run.await.expect("run task");
    assert_eq!(report.status, RunStatus::Failed);
    assert!(report.error.as_deref().unwrap_or("").contains("unreachable"), "{report:?}");

    let committed = stored_ids(store.as_ref(), "users").await;
    assert!(!committed.is_empty());
    assert!(committed.is_subset(&delivered), "state holds only acknowledged records");
    assert_eq!(report.counts.sent as usize, committed.len());
    assert_eq!(report.counts.failed as usize, 40 - committed.len());
    common::assert_index_cached(store.as_ref(), "users").await;

    // The destination comes back on the same address: the next run sends exactly what is missing.
    let si2 = ebb::standin::StandIn::start(addr, Default::default())
        .await
        .expect("restart on the same port");
    let sync = load_sync(&mapping, &[("USERS_SOURCE", &users_source())]);
    let next = run_ok(&sync, store.as_ref()).await;
    assert_eq!(next.counts.sent as usize, 40 - committed.len());
    let all: BTreeSet<String> = si2.records("users").into_iter().map(|r| r.id).chain(committed).collect();
    assert_eq!(all.len(), 40, "nothing lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_fails_the_run_with_a_clear_message() {
    let ws = Workspace::new();
    let si = stand_in().await;
    let mapping = ws.write("users.yml", &users_yaml("users", &si.url(), ""));
    let store = ws.store().await;
    let sync = load_sync(&mapping, &[("USERS_SOURCE", &users_source()), ("TEST_USERS_KEY", "wrong-key")]);
    let report = run(&sync, store.as_ref(), false).await;
    assert_eq!(report.status, RunStatus::Failed);
    let error = report.error.unwrap_or_default();
    assert!(error.contains("HTTP 401") && error.contains("api_key"), "{error}");
    assert_eq!(report.counts.failed, 40);
    assert!(store.load("users").await.expect("load").index.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modes_create_only_and_update_only() {
    let ws = Workspace::new();
    let si = stand_in().await;
    let changed = fixture("users_3_changed.parquet").display().to_string();
    let store = ws.store().await;

    let upsert = ws.write("u.yml", &users_yaml("modes", &si.url(), ""));
    run_ok(&load_sync(&upsert, &[("USERS_SOURCE", &users_source())]), store.as_ref()).await;

    let create_only = ws.write("c.yml", &format!("{}mode: create_only\n", users_yaml("modes", &si.url(), "")));
    let report = run_ok(&load_sync(&create_only, &[("USERS_SOURCE", &changed)]), store.as_ref()).await;
    assert_eq!((report.counts.changed, report.counts.sent), (3, 0));

    let update_only = ws.write("o.yml", &format!("{}mode: update_only\n", users_yaml("modes", &si.url(), "")));
    let report = run_ok(&load_sync(&update_only, &[("USERS_SOURCE", &changed)]), store.as_ref()).await;
    assert_eq!(report.counts.sent, 3);

    // update_only on a fresh sync sends nothing: every record is new.
    let fresh = ws.write("f.yml", &format!("{}mode: update_only\n", users_yaml("fresh", &si.url(), "")));
    let report = run_ok(&load_sync(&fresh, &[("USERS_SOURCE", &users_source())]), store.as_ref()).await;
    assert_eq!((report.counts.new, report.counts.sent), (40, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_left_the_snapshot_are_counted_and_nothing_is_sent() {
    let ws = Workspace::new();
    let si = stand_in().await;
    let mapping = ws.write("users.yml", &users_yaml("users", &si.url(), ""));
    let store = ws.store().await;
    run_ok(&load_sync(&mapping, &[("USERS_SOURCE", &users_source())]), store.as_ref()).await;
    let half = fixture("users_duckdb/part-0.parquet").display().to_string();
    let report = run_ok(&load_sync(&mapping, &[("USERS_SOURCE", &half)]), store.as_ref()).await;
    assert_eq!((report.counts.source, report.counts.gone, report.counts.sent), (20, 20, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retyped_column_stops_the_run_before_anything_is_sent() {
    let ws = Workspace::new();
    let si = stand_in().await;
    let mapping = ws.write("users.yml", &users_yaml("users", &si.url(), ""));
    let store = ws.store().await;
    run_ok(&load_sync(&mapping, &[("USERS_SOURCE", &users_source())]), store.as_ref()).await;
    let before = si.stats().requests;

    let retyped = fixture("users_age_as_text.parquet").display().to_string();
    let report = run(&load_sync(&mapping, &[("USERS_SOURCE", &retyped)]), store.as_ref(), false).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(
        report.error.as_deref(),
        Some("schema drift: column `age` was integer in the last run and is string now")
    );
    assert_eq!(si.stats().requests, before);

    let missing = fixture("users_missing_column.parquet").display().to_string();
    let report = run(&load_sync(&mapping, &[("USERS_SOURCE", &missing)]), store.as_ref(), false).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert!(
        report.error.as_deref().unwrap_or("").contains("column `is_active` not found"),
        "{report:?}"
    );
    assert_eq!(si.stats().requests, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_resends_everything_and_reset_forgets() {
    let ws = Workspace::new();
    let si = stand_in().await;
    let mapping = ws.write("users.yml", &users_yaml("users", &si.url(), ""));
    let store = ws.store().await;
    let sync = load_sync(&mapping, &[("USERS_SOURCE", &users_source())]);
    run_ok(&sync, store.as_ref()).await;
    let full = run(&sync, store.as_ref(), true).await;
    assert_eq!((full.counts.new, full.counts.sent), (40, 40));
    assert_eq!(store.reset("users").await.expect("reset"), 40);
    let after_reset = run_ok(&sync, store.as_ref()).await;
    assert_eq!(after_reset.counts.sent, 40);
    assert!(si.records("users").iter().all(|r| r.received_count == 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_sends_nothing_and_changes_no_state() {
    let ws = Workspace::new();
    // Nothing listens on port 9 of loopback: a preview that sent would fail.
    let mapping = ws.write("users.yml", &users_yaml("users", "http://127.0.0.1:9", ""));
    let store = ws.store().await;
    let sync = load_sync(&mapping, &[("USERS_SOURCE", &users_source())]);
    let preview = ebb::sync::preview(&sync, store.as_ref(), 2).await.expect("preview");
    assert_eq!((preview.counts.new, preview.to_send, preview.requests.len()), (40, 40, 2));
    let first = &preview.requests[0];
    assert_eq!(first.url, "http://127.0.0.1:9/webhook/users/custom");
    assert_eq!(first.body["users"].as_array().map(Vec::len), Some(15));
    assert!(store.load("users").await.expect("load").index.is_empty());
    assert!(store.runs(Some("users"), 10).await.expect("runs").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_send_sends_n_records_and_leaves_state_alone() {
    let ws = Workspace::new();
    let si = stand_in().await;
    let mapping = ws.write("users.yml", &users_yaml("users", &si.url(), ""));
    let store = ws.store().await;
    let sync = load_sync(&mapping, &[("USERS_SOURCE", &users_source())]);
    let exchanges = ebb::sync::test_send(&sync, store.as_ref(), 2).await.expect("test send");
    assert_eq!(exchanges.len(), 1);
    assert_eq!(exchanges[0].status, Some(200));
    assert_eq!(si.records("users").len(), 2);
    assert!(store.load("users").await.expect("load").index.is_empty());
    assert!(
        si.requests().iter().all(|r| r.run.is_none()),
        "a test send is not a run, so it names none"
    );
}

/// Every request of a run names it (`x-ebb-run: sync/run id`), and the stand-in's
/// `GET /requests` shows that with each request's window and status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_names_its_run_and_the_stand_in_logs_it() {
    let ws = Workspace::new();
    let si = stand_in().await;
    let mapping = ws.write("users.yml", &users_yaml("users", &si.url(), "    batch_size: 10"));
    let store = ws.store().await;
    let report = run_ok(&load_sync(&mapping, &[("USERS_SOURCE", &users_source())]), store.as_ref()).await;
    let log: Vec<serde_json::Value> = reqwest::get(format!("{}/requests", si.url()))
        .await
        .expect("stand-in answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(log.len(), 4, "40 records, 10 a request: {log:?}");
    let run = format!("users/{}", report.run_id.expect("a run id"));
    for r in &log {
        assert_eq!(r["run"], run.as_str(), "{r}");
        assert_eq!(r["status"], 200, "{r}");
        assert!(r["started_ms"].as_u64() <= r["ended_ms"].as_u64(), "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_finishes_in_flight_batches_commits_them_and_records_interrupted() {
    let ws = Workspace::new();
    let si = stand_in_with(ebb::standin::StandInConfig {
        latency: std::time::Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let mapping = ws.write(
        "users.yml",
        &users_yaml(
            "users",
            &si.url(),
            "    concurrency: 2\n    batch_size: 5\n    requests_per_minute: 60000",
        ),
    );
    let sync = load_sync(&mapping, &[("USERS_SOURCE", &users_source())]);
    let cancel = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn({
        let state_url = ws.state_url();
        let cancel = cancel.clone();
        async move {
            let store = ebb::state::open(&state_url, false).await.expect("state");
            let options = ebb::sync::RunOptions {
                cancel,
                ..ebb::sync::RunOptions::default()
            };
            ebb::sync::run(&sync, store.as_ref(), &options).await.expect("run recorded")
        }
    });
    while si.stats().requests < 1 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    cancel.cancel();
    let report = run.await.expect("join");
    assert_eq!(report.status, RunStatus::Interrupted, "{report:?}");
    let store = ws.store().await;
    let committed = stored_ids(store.as_ref(), "users").await;
    let delivered = held_ids(&si, "users");
    assert_eq!(committed, delivered, "every in-flight batch finished and was committed");
    assert!(!committed.is_empty() && committed.len() < 40, "{}", committed.len());
    assert_eq!(report.counts.sent as usize + report.counts.failed as usize, 40);
    common::assert_index_cached(store.as_ref(), "users").await;
    let runs = store.runs(Some("users"), 1).await.expect("runs");
    assert_eq!(runs[0].status, RunStatus::Interrupted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_server_errors_are_retried_until_everything_is_delivered() {
    // A quarter of requests fail at random; the 600 s budget makes giving up (about ten failures in a row) vanishingly rare.
    let ws = Workspace::new();
    let si = stand_in_with(ebb::standin::StandInConfig {
        fail_ratio: 0.25,
        ..Default::default()
    })
    .await;
    let mapping = ws.write(
        "users.yml",
        &users_yaml(
            "users",
            &si.url(),
            "    batch_size: 5\n    requests_per_minute: 60000\n    retry_budget_secs: 600",
        ),
    );
    let store = ws.store().await;
    let report = run_ok(&load_sync(&mapping, &[("USERS_SOURCE", &users_source())]), store.as_ref()).await;
    assert_eq!((report.counts.sent, report.counts.failed), (40, 0));
    let stats = si.stats();
    assert_eq!(stats.accepted_requests, 8);
    assert_eq!(stats.requests, 8 + stats.by_status.get(&500).copied().unwrap_or(0));
    assert!(si.records("users").iter().all(|r| r.received_count == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_beyond_the_budget_fails_the_run_without_waiting() {
    let ws = Workspace::new();
    // The stand-in allows one request a minute; its Retry-After is about 60 s, over the 3 s budget.
    let si = stand_in_with(ebb::standin::StandInConfig {
        rpm: Some(1),
        ..Default::default()
    })
    .await;
    let mapping = ws.write(
        "users.yml",
        &users_yaml("users", &si.url(), "    concurrency: 1\n    requests_per_minute: 60000"),
    );
    let store = ws.store().await;
    let started = std::time::Instant::now();
    let report = run(&load_sync(&mapping, &[("USERS_SOURCE", &users_source())]), store.as_ref(), false).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "gave up at once: {:?}",
        started.elapsed()
    );
    assert_eq!(report.status, RunStatus::Failed);
    let error = report.error.unwrap_or_default();
    assert!(error.contains("429 ErrCodeRateLimitExceeded"), "{error}");
    assert_eq!((report.counts.sent, report.counts.failed), (15, 25));
    assert_eq!(store.load("users").await.expect("load").index.len(), 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_pointed_at_another_destination_under_the_same_name_sends_everything_once() {
    let ws = Workspace::new();
    let (first, second) = (stand_in().await, stand_in().await);
    let env = [("USERS_SOURCE", users_source())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mapping = ws.write("users.yml", &users_yaml("users", &first.url(), ""));
    let store = ws.store().await;
    let report = run_ok(&load_sync(&mapping, &env), store.as_ref()).await;
    assert_eq!((report.counts.sent, report.state_was_for.as_deref()), (40, None));
    let stored = store
        .load("users")
        .await
        .expect("load")
        .destination
        .expect("a fingerprint is stored");
    assert_eq!(stored, format!("enterpret users at {}", first.url().trim_end_matches('/')));
    assert!(!stored.contains("local-users-key"), "never the key: {stored}");

    // Same name, another workspace: the state was for the first one.
    ws.write("users.yml", &users_yaml("users", &second.url(), ""));
    let sync = load_sync(&mapping, &env);
    let preview = ebb::sync::preview(&sync, store.as_ref(), 0).await.expect("preview");
    assert_eq!((preview.counts.new, preview.state_was_for.as_deref()), (40, Some(stored.as_str())));
    let state = ws.state_url();
    let path = mapping.to_str().expect("utf-8");
    let out = ebb(ws.path(), &["preview", path, "--state", &state], &env);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("state was for {stored}, not this destination")) && stdout.contains("would send 40 records"),
        "{stdout}"
    );
    let out = ebb(ws.path(), &["sync", path, "--json", "--state", &state], &env);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let report = report.as_array().and_then(|a| a.first()).unwrap_or(&report);
    assert_eq!(report["state_was_for"], serde_json::json!(stored), "{report}");
    assert_eq!(
        (report["full_resync"].as_bool(), report["counts"]["sent"].as_u64()),
        (Some(true), Some(40))
    );
    assert_eq!(held_ids(&second, "users").len(), 40);

    let again = run_ok(&sync, store.as_ref()).await;
    assert_eq!((again.counts.sent, again.counts.unchanged, again.state_was_for), (0, 40, None));

    // Back to the first: its records were replaced, so they all go again.
    ws.write("users.yml", &users_yaml("users", &first.url(), ""));
    let back = run_ok(&load_sync(&mapping, &env), store.as_ref()).await;
    assert_eq!(back.counts.sent, 40);
    assert!(back
        .state_was_for
        .is_some_and(|s| s.contains(&second.url().trim_end_matches('/').to_string())));
    assert!(first.records("users").iter().all(|r| r.received_count == 2));
}
