//! Time-boxed runs (`max_run:`, `--max-run`): past the box no batch starts, the batches in
//! flight are committed, and the run ends `continued` with the rest left for the next run,
//! which diffs again and goes on. Against a real PostgreSQL table and the stand-in.

use std::time::Duration;

use ebb::state::RunStatus;
use ebb::sync::{self, RunOptions};

use crate::common::*;

/// Forty people to a stand-in that takes 100 ms a request, one record a request: about 4 s of
/// sending, so that a 1 s box cuts each run short.
async fn slow_sync(max_run: &str) -> (PgSchema, ebb::standin::StandIn, Workspace, std::path::PathBuf) {
    let pg = PgSchema::new("ebb_box").await;
    pg.exec(
        "CREATE TABLE {s}.people (user_id text PRIMARY KEY, name text, signup_at timestamptz DEFAULT '2020-01-01+00');
         INSERT INTO {s}.people SELECT 'p-' || lpad(i::text, 3, '0'), 'Person ' || i FROM generate_series(1, 40) AS i;",
    )
    .await;
    let si = stand_in().await;
    si.set_latency(Duration::from_millis(100));
    let ws = Workspace::new();
    let yaml = format!(
        "name: people\nsource:\n  postgres:\n    url: ${{WAREHOUSE_URL}}\n    table: {}.people\n\
         destination:\n  enterpret:\n    object: user\n    api_key: ${{TEST_USERS_KEY:-local-users-key}}\n    url: {}\n\
         \x20   batch_size: 1\n    concurrency: 1\n    requests_per_minute: 60000\n    retry_budget_secs: 2\n\
         id: user_id\ncreated_at: signup_at\nattributes:\n  Name: name\n{max_run}",
        pg.name,
        si.url()
    );
    let mapping = ws.write("people.yml", &yaml);
    (pg, si, ws, mapping)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boxed_run_ends_continued_and_the_next_runs_go_on_until_every_record_is_sent_once() {
    let (pg, si, ws, mapping) = slow_sync("").await;
    let url = database_url();
    // The CLI's box, as an unattended `ebb sync --max-run 1s` would run: exit 0, and it says so.
    let out = ebb(
        ws.path(),
        &["--state", &ws.state_url(), "sync", "people.yml", "--max-run", "1s", "--json"],
        &[("WAREHOUSE_URL", &url)],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "a continued run is not a failure: {stdout}{stderr}");
    let reports: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let first = &reports[0];
    assert_eq!(first["status"], "continued", "{first}");
    let (sent, left) = (first["counts"]["sent"].as_u64().unwrap(), first["counts"]["left"].as_u64().unwrap());
    assert!(sent >= 1 && left >= 1, "{first}");
    assert_eq!((sent + left, first["counts"]["failed"].as_u64()), (40, Some(0)), "{first}");

    let out = ebb(ws.path(), &["--state", &ws.state_url(), "status", "--json"], &[]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    let latest = &status[0]["runs"][0];
    assert_eq!(
        (latest["status"].as_str(), latest["counts"]["left"].as_u64()),
        (Some("continued"), Some(left))
    );
    assert!(latest["counts"]["eta_secs"].as_u64().is_some(), "{latest}");
    let out = ebb(ws.path(), &["--state", &ws.state_url(), "status"], &[]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains(&format!("backlog: {left} records left for the next run, about")),
        "{stdout}"
    );

    // A record already delivered changes meanwhile; the boxed runs go on from where the last stopped.
    let delivered = held_ids(&si, "users").into_iter().next().expect("one was delivered");
    pg.exec(&format!("UPDATE {{s}}.people SET name = 'Changed' WHERE user_id = '{delivered}'"))
        .await;
    let store = ws.store().await;
    let options = one_second_box();
    let sync = load_sync(&mapping, &[("WAREHOUSE_URL", url.as_str())]);
    let mut runs = 1;
    loop {
        let report = sync::run(&sync, store.as_ref(), &options).await.expect("recorded");
        runs += 1;
        match report.status {
            RunStatus::Continued => assert!(report.counts.left.is_some_and(|l| l > 0), "{report:?}"),
            RunStatus::Completed => {
                assert_eq!(report.counts.left, None);
                break;
            }
            other => panic!("{other:?}: {report:?}"),
        }
        assert!(report.counts.sent >= 1, "every run moves the sync on: {report:?}");
        assert!(runs < 40, "the backlog never cleared");
    }
    let records = si.records("users");
    assert_eq!(records.len(), 40);
    for r in &records {
        let expected = if r.id == delivered { 2 } else { 1 };
        assert_eq!(r.received_count, expected, "{} was sent once, and again only if it changed", r.id);
    }
    let history = store.runs(Some("people"), 100).await.expect("runs");
    assert!(
        history.iter().any(|r| r.status == RunStatus::Continued && r.counts.left.is_some()),
        "kept in the history"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mappings_box_applies_and_a_box_under_a_second_is_refused() {
    let (_pg, _si, ws, mapping) = slow_sync("max_run: 1s\n").await;
    let store = ws.store().await;
    let url = database_url();
    let report = sync::run(
        &load_sync(&mapping, &[("WAREHOUSE_URL", url.as_str())]),
        store.as_ref(),
        &RunOptions::default(),
    )
    .await
    .expect("recorded");
    assert_eq!(report.status, RunStatus::Continued, "{report:?}");

    let yaml = std::fs::read_to_string(&mapping)
        .expect("read")
        .replace("max_run: 1s", "max_run: 250ms");
    ws.write("people.yml", &yaml);
    refused(
        &ws,
        &["validate", "people.yml"],
        "max_run: `250ms`: a run's box must be a whole number of seconds, at least 1s",
    );
    let alerting = yaml.replace(
        "max_run: 250ms",
        "alerts:\n  webhook_url: ${ALERT_WEBHOOK_URL:-http://127.0.0.1:9/hook}\n  backlog_over: soon",
    );
    ws.write("people.yml", &alerting);
    refused(
        &ws,
        &["validate", "people.yml"],
        "alerts.backlog_over: `soon` is not a duration such as `30s`",
    );
    refused(&ws, &["sync", "people.yml", "--max-run", "soon"], "`soon` is not a duration");
}

/// `ebb ARGS` fails and says `expected`.
fn refused(ws: &Workspace, args: &[&str], expected: &str) {
    let out = ebb(ws.path(), args, &[("WAREHOUSE_URL", &database_url())]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{args:?}: {stdout}{stderr}");
    assert!(format!("{stdout}{stderr}").contains(expected), "{args:?}: {stdout}{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_says_how_many_requests_a_run_makes_and_how_long_they_take_at_its_pace() {
    let (_pg, _si, ws, mapping) = slow_sync("max_run: 1s\n").await;
    // Forty records, two a request, at 20 requests a minute: 20 requests, one minute, 60 boxed runs.
    let yaml = std::fs::read_to_string(&mapping)
        .expect("read")
        .replace("batch_size: 1", "batch_size: 2")
        .replace("requests_per_minute: 60000", "requests_per_minute: 20");
    ws.write("people.yml", &yaml);
    let url = database_url();
    let args = ["--state", &ws.state_url(), "preview", "people.yml"];
    let out = ebb(ws.path(), &args, &[("WAREHOUSE_URL", &url)]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("≈ 20 requests · 1 min at 20 requests/min (2 records/request) · 60 boxed runs"),
        "{stdout}"
    );
    assert!(stdout.contains("request 1 of 20:"), "{stdout}");
    let out = ebb(ws.path(), &[&args[..], &["--json"]].concat(), &[("WAREHOUSE_URL", &url)]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        json["cost"],
        serde_json::json!({"requests": 20, "records_per_request": 2, "requests_per_minute": 20, "eta_secs": 60, "runs": 60})
    );
}

/// A run boxed at one second.
fn one_second_box() -> RunOptions {
    RunOptions {
        max_run: Some(Duration::from_secs(1)),
        ..RunOptions::default()
    }
}

/// Twenty people synced by one run of [`slow_sync`]'s mapping, the stand-in answering at once.
async fn twenty_synced() -> (
    PgSchema,
    ebb::standin::StandIn,
    Workspace,
    std::path::PathBuf,
    Box<dyn ebb::state::StateStore>,
) {
    let (pg, si, ws, mapping) = slow_sync("").await;
    pg.exec("DELETE FROM {s}.people WHERE user_id > 'p-020'").await;
    si.set_latency(Duration::ZERO);
    let store = ws.store().await;
    let url = database_url();
    run_ok(&load_sync(&mapping, &[("WAREHOUSE_URL", url.as_str())]), store.as_ref()).await;
    (pg, si, ws, mapping, store)
}

/// Twenty people synced; then ten new rows and five changed ones, which PostgreSQL's heap puts
/// after the new ones (an update writes a new row version at the end).
async fn stale_behind_new() -> (PgSchema, ebb::standin::StandIn, Workspace, std::path::PathBuf, Vec<String>) {
    let (pg, si, ws, mapping, _store) = twenty_synced().await;
    pg.exec(
        "INSERT INTO {s}.people (user_id, name) SELECT 'p-' || lpad(i::text, 3, '0'), 'Person ' || i FROM generate_series(21, 30) AS i;
         UPDATE {s}.people SET name = 'Changed' WHERE user_id IN ('p-002', 'p-006', 'p-011', 'p-015', 'p-019');",
    )
    .await;
    let stale = ["p-002", "p-006", "p-011", "p-015", "p-019"].map(String::from).to_vec();
    (pg, si, ws, mapping, stale)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_copies_are_sent_before_new_records() {
    let (_pg, si, ws, mapping, stale) = stale_behind_new().await;
    let url = database_url();
    // The preview reads the source again for its requests, one group a read.
    let yaml = std::fs::read_to_string(&mapping)
        .expect("read")
        .replace("batch_size: 1", "batch_size: 15");
    ws.write("people.yml", &yaml);
    let out = ebb(
        ws.path(),
        &["--state", &ws.state_url(), "preview", "people.yml", "--json", "--limit", "1"],
        &[("WAREHOUSE_URL", &url)],
    );
    let preview: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let first: Vec<&str> = preview["requests"][0]["body"]["users"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(first.len(), 15);
    assert_eq!(&first[..5], &stale.iter().map(String::as_str).collect::<Vec<_>>()[..], "{first:?}");

    // A boxed sync, one record a request at 300 ms each, sends three or four in its second: the
    // stale copies, not the new records the source lists first.
    ws.write("people.yml", &yaml.replace("batch_size: 15", "batch_size: 1"));
    si.set_latency(Duration::from_millis(300));
    let store = ws.store().await;
    let options = one_second_box();
    let report = sync::run(&load_sync(&mapping, &[("WAREHOUSE_URL", url.as_str())]), store.as_ref(), &options)
        .await
        .expect("recorded");
    assert_eq!(report.status, RunStatus::Continued, "{report:?}");
    let records = si.records("users");
    let sent_again: Vec<&str> = records.iter().filter(|r| r.received_count == 2).map(|r| r.id.as_str()).collect();
    let new_sent = records.iter().filter(|r| r.id.as_str() > "p-020").count();
    assert!(
        !sent_again.is_empty() && sent_again.iter().all(|id| stale.iter().any(|s| s == id)),
        "{sent_again:?}"
    );
    assert_eq!(new_sent, 0, "no new record before every stale copy: {report:?}");
}

/// A thousand people, each last seen at a different minute (scattered across the table), and
/// a hundred never seen, to a stand-in taking fifteen a request, one request at a time.
async fn prioritised(order: &str) -> (PgSchema, ebb::standin::StandIn, Workspace, std::path::PathBuf) {
    let pg = PgSchema::new("ebb_prio").await;
    pg.exec(
        "CREATE TABLE {s}.people (user_id text PRIMARY KEY, name text, last_seen_at timestamptz,
                                  signup_at timestamptz DEFAULT '2020-01-01+00');
         INSERT INTO {s}.people (user_id, name, last_seen_at)
         SELECT 'p-' || lpad(i::text, 4, '0'), 'Person ' || i,
                CASE WHEN i % 10 = 3 THEN NULL ELSE '2026-01-01+00'::timestamptz + ((i * 7919) % 1000) * interval '1 minute' END
         FROM generate_series(1, 1000) AS i;",
    )
    .await;
    let si = stand_in().await;
    let ws = Workspace::new();
    let yaml = format!(
        "name: people\nsource:\n  postgres:\n    url: ${{WAREHOUSE_URL}}\n    table: {}.people\n\
         destination:\n  enterpret:\n    object: user\n    api_key: ${{TEST_USERS_KEY:-local-users-key}}\n    url: {}\n\
         \x20   concurrency: 1\n    requests_per_minute: 600000\n\
         id: user_id\ncreated_at: signup_at\nattributes:\n  Name: name\npriority: {{ column: last_seen_at{order} }}\n",
        pg.name,
        si.url()
    );
    let mapping = ws.write("people.yml", &yaml);
    (pg, si, ws, mapping)
}

/// The ids in the order a query gives them.
async fn ids_by(pg: &PgSchema, order_by: &str) -> Vec<String> {
    let sql = format!("SELECT user_id FROM \"{}\".people ORDER BY {order_by}", pg.name);
    sqlx::query_scalar(&sql).fetch_all(&pg.pool).await.expect("ids")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_sends_the_most_recent_first_and_the_never_seen_last_whether_kept_or_read_again() {
    // Kept by pass 1 (the default budget), and read again from the source (no budget).
    for keep_budget in [ebb::baseline::KEEP_BUDGET_BYTES, 0] {
        let (pg, si, ws, mapping) = prioritised(", order: desc").await;
        let store = ws.store().await;
        let url = database_url();
        let options = RunOptions {
            keep_budget,
            ..RunOptions::default()
        };
        let report = sync::run(&load_sync(&mapping, &[("WAREHOUSE_URL", url.as_str())]), store.as_ref(), &options)
            .await
            .expect("recorded");
        assert_eq!(report.counts.sent, 1000, "{report:?}");
        let arrived = si.arrivals("users");
        let recent = ids_by(&pg, "last_seen_at DESC NULLS LAST").await;
        assert_eq!(arrived[..300], recent[..300], "the 300 most recent first (budget {keep_budget})");
        assert_eq!(arrived[..900], recent[..900], "every one seen in order (budget {keep_budget})");
        let never: Vec<String> = ids_by(&pg, "user_id").await.into_iter().filter(|id| id.ends_with('3')).collect();
        assert_eq!(arrived[900..], never[..], "the never seen last, in source order");
    }
    // Without `order:`, the smallest first, as ORDER BY has it.
    let (pg, si, ws, mapping) = prioritised("").await;
    let store = ws.store().await;
    run_ok(&load_sync(&mapping, &[("WAREHOUSE_URL", database_url().as_str())]), store.as_ref()).await;
    assert_eq!(si.arrivals("users")[..900], ids_by(&pg, "last_seen_at ASC NULLS LAST").await[..900]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_column_must_be_in_the_source_and_order() {
    let (_pg, _si, ws, mapping) = prioritised(", order: desc").await;
    let yaml = std::fs::read_to_string(&mapping).expect("read");
    ws.write("people.yml", &yaml.replace("column: last_seen_at", "column: last_seen"));
    refused(&ws, &["preview", "people.yml"], "priority: column `last_seen` is not in the source");
    ws.write("people.yml", &yaml.replace("column: last_seen_at", "column: name"));
    refused(
        &ws,
        &["preview", "people.yml"],
        "priority: column `name` is string: a priority is a timestamp, date or number column",
    );
    ws.write("people.yml", &yaml.replace("order: desc", "order: newest"));
    refused(
        &ws,
        &["validate", "people.yml"],
        "unknown variant `newest`, expected one of asc, desc",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_resent_because_the_mapping_changed_go_after_new_records_and_stay_behind_them_next_run() {
    let (pg, si, ws, mapping, store) = twenty_synced().await;
    let url = database_url();
    // The mapping renames an attribute: every record's hash changes. Ten people are new.
    let yaml = std::fs::read_to_string(&mapping).expect("read");
    ws.write("people.yml", &yaml.replace("  Name: name", "  FullName: name"));
    pg.exec(
        "INSERT INTO {s}.people (user_id, name) SELECT 'p-' || lpad(i::text, 3, '0'), 'Person ' || i FROM generate_series(21, 30) AS i",
    )
    .await;
    si.set_latency(Duration::from_millis(300));
    let options = one_second_box();
    let job = load_sync(&mapping, &[("WAREHOUSE_URL", url.as_str())]);
    let report = sync::run(&job, store.as_ref(), &options).await.expect("recorded");
    assert_eq!(report.status, RunStatus::Continued, "{report:?}");
    assert_eq!((report.counts.new, report.counts.changed), (10, 20), "{report:?}");
    let boxed = si.arrivals("users")[20..].to_vec();
    assert!(
        !boxed.is_empty() && boxed.iter().all(|id| id.as_str() > "p-020"),
        "new records first: {boxed:?}"
    );
    // The next run goes on with the new records left, still ahead of the resends.
    si.set_latency(Duration::ZERO);
    run_ok(&job, store.as_ref()).await;
    let all = si.arrivals("users");
    let second = &all[20 + boxed.len()..];
    let new_left = 10 - boxed.len();
    assert!(second[..new_left].iter().all(|id| id.as_str() > "p-020"), "{second:?}");
    assert!(second[new_left..].iter().all(|id| id.as_str() <= "p-020"), "{second:?}");
    assert_eq!(second.len(), new_left + 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_mapping_change_a_record_whose_source_changed_too_is_a_stale_copy_by_its_tracked_payload() {
    let (pg, si, ws, mapping, store) = twenty_synced().await;
    let url = database_url();
    // The mapping gains an attribute (every hash changes); three people's names change too, and
    // ten people are new.
    let yaml = std::fs::read_to_string(&mapping).expect("read");
    ws.write("people.yml", &yaml.replace("  Name: name\n", "  Name: name\n  Alias: name\n"));
    pg.exec(
        "UPDATE {s}.people SET name = 'Renamed' WHERE user_id IN ('p-002', 'p-006', 'p-011');
         INSERT INTO {s}.people (user_id, name) SELECT 'p-' || lpad(i::text, 3, '0'), 'Person ' || i FROM generate_series(21, 30) AS i;",
    )
    .await;
    si.set_latency(Duration::from_millis(250));
    let options = one_second_box();
    let job = load_sync(&mapping, &[("WAREHOUSE_URL", url.as_str())]);
    let report = sync::run(&job, store.as_ref(), &options).await.expect("recorded");
    assert_eq!(report.status, RunStatus::Continued, "{report:?}");
    let boxed = si.arrivals("users")[20..].to_vec();
    let renamed = ["p-002", "p-006", "p-011"];
    assert!(boxed.len() >= 3, "{boxed:?}");
    assert_eq!(boxed[..3], renamed, "the renamed people first, as stale copies: {boxed:?}");
    assert!(boxed[3..].iter().all(|id| id.as_str() > "p-020"), "then new people: {boxed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_warehouse_diff_too_stale_copies_go_before_new_records() {
    let (pg, si, ws, mapping) = slow_sync("").await;
    let state = TempSchema::new("ebb_box_whst");
    let yaml = std::fs::read_to_string(&mapping).expect("read").replace(
        &format!("    table: {}.people\n", pg.name),
        &format!(
            "    table: {}.people\n    diff: warehouse\n    state_schema: {}\n",
            pg.name, state.name
        ),
    );
    ws.write("people.yml", &yaml);
    pg.exec("DELETE FROM {s}.people WHERE user_id > 'p-020'").await;
    si.set_latency(Duration::ZERO);
    let store = ws.store().await;
    let url = database_url();
    let job = load_sync(&mapping, &[("WAREHOUSE_URL", url.as_str())]);
    run_ok(&job, store.as_ref()).await;
    // New rows first in the table, the changed ones after them (an update moves its row).
    pg.exec(
        "INSERT INTO {s}.people (user_id, name) SELECT 'p-' || lpad(i::text, 3, '0'), 'Person ' || i FROM generate_series(21, 30) AS i;
         UPDATE {s}.people SET name = 'Changed' WHERE user_id IN ('p-002', 'p-006', 'p-011');",
    )
    .await;
    si.set_latency(Duration::from_millis(250));
    let options = one_second_box();
    let report = sync::run(&job, store.as_ref(), &options).await.expect("recorded");
    assert_eq!(report.status, RunStatus::Continued, "{report:?}");
    let boxed = si.arrivals("users")[20..].to_vec();
    assert!(boxed.len() >= 3, "{boxed:?}");
    assert_eq!(boxed[..3], ["p-002", "p-006", "p-011"], "{boxed:?}");
}
