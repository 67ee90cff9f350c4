//! Cursor-narrowed diffs (`source.cursor:`) against a real PostgreSQL and real Parquet files:
//! cursor runs send exactly the rows that changed with their cursor, a full diff catches (and
//! counts) the rows that changed without it, the watermark moves only with a completed run,
//! mirror deletes are still found, and a narrowed Parquet read decodes fewer rows.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use ebb::standin::StandIn;
use ebb::state::{RunStatus, StateStore};
use ebb::sync::{self, RunOptions, RunReport, SyncJob};

use crate::common::*;

/// 2026-01-01T00:00:00Z in microseconds.
const JAN_1: i64 = 1_767_225_600_000_000;
const HOUR: i64 = 3_600_000_000;

fn people_mapping(schema: &str, url: &str, extra_attributes: &str) -> String {
    format!(
        r#"name: people
source:
  postgres:
    url: ${{WAREHOUSE_URL}}
    table: {schema}.people
  cursor:
    column: updated_at
    lag: 5m
destination:
  enterpret:
    object: user
    api_key: ${{TEST_USERS_KEY:-local-users-key}}
    url: {url}
    requests_per_minute: 60000
    retry_budget_secs: 2
id: user_id
created_at: signup_at
attributes:
  Name: name
  Age: {{ column: age, type: number }}
{extra_attributes}"#
    )
}

/// Forty people, each updated an hour after the one before, starting 2026-01-01.
async fn forty_people() -> PgSchema {
    let pg = PgSchema::new("ebb_cursor").await;
    pg.exec(
        "CREATE TABLE {s}.people (user_id text PRIMARY KEY, name text, age int, updated_at timestamptz, signup_at timestamptz DEFAULT '2020-01-01+00');
         INSERT INTO {s}.people SELECT 'p-' || lpad(i::text, 3, '0'), 'Person ' || i, 20 + i,
           '2026-01-01 00:00:00+00'::timestamptz + (i - 1) * interval '1 hour' FROM generate_series(1, 40) AS i;",
    )
    .await;
    pg
}

struct Setup {
    pg: PgSchema,
    si: StandIn,
    ws: Workspace,
    store: Box<dyn StateStore>,
}

impl Setup {
    async fn new() -> Setup {
        Setup::with(|_| String::new()).await
    }

    /// With `source_keys(schema)` added under `postgres:`.
    async fn with(source_keys: impl Fn(&str) -> String) -> Setup {
        let pg = forty_people().await;
        let si = stand_in().await;
        let ws = Workspace::new();
        let yaml = people_mapping(&pg.name, &si.url(), "").replace("\n  cursor:", &format!("\n{}  cursor:", source_keys(&pg.name)));
        ws.write("people.yml", &yaml);
        let store = ws.store().await;
        Setup { pg, si, ws, store }
    }

    fn sync(&self) -> SyncJob {
        let url = database_url();
        load_sync(&self.ws.path().join("people.yml"), &[("WAREHOUSE_URL", url.as_str())])
    }

    async fn run_with(&self, full_diff: bool) -> RunReport {
        let options = RunOptions {
            full_diff,
            ..RunOptions::default()
        };
        let report = sync::run(&self.sync(), self.store.as_ref(), &options)
            .await
            .expect("run is recorded");
        assert_eq!(report.status, RunStatus::Completed, "{report:?}");
        report
    }

    /// The ids the destination has received exactly `times` times.
    fn received(&self, times: u64) -> BTreeSet<String> {
        self.si
            .records("users")
            .into_iter()
            .filter(|r| r.received_count == times)
            .map(|r| r.id)
            .collect()
    }
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_runs_send_what_moved_and_a_full_diff_finds_what_changed_without_its_cursor() {
    let s = Setup::new().await;
    let first = s.run_with(false).await;
    assert_eq!((first.counts.sent, first.counts.narrowed), (40, false));
    let summary = first.cursor.as_ref().expect("a cursor sync reports its cursor");
    assert_eq!((summary.scope, summary.full_because), ("full", Some("no watermark yet")));
    let stored = s
        .store
        .cursor("people")
        .await
        .expect("read")
        .expect("a completed run leaves a watermark");
    assert_eq!(
        stored.watermark,
        Some(JAN_1 + 39 * HOUR),
        "the largest cursor read, never the clock"
    );

    // Three rows change with their cursor; one changes without it; one is touched (cursor moved,
    // values the same) and must not be sent.
    s.pg.exec(
        "UPDATE {s}.people SET age = age + 1, updated_at = '2026-06-01 00:00:00+00' WHERE user_id IN ('p-003', 'p-017', 'p-029');
         UPDATE {s}.people SET age = 99 WHERE user_id = 'p-005';
         UPDATE {s}.people SET updated_at = '2026-06-01 00:00:01+00' WHERE user_id = 'p-011';",
    )
    .await;
    let cursor_run = s.run_with(false).await;
    let c = &cursor_run.counts;
    assert!(c.narrowed, "{cursor_run:?}");
    // p-003, p-017, p-029 and p-011 moved; p-040 is within the lag of the old watermark.
    assert_eq!((c.source, c.changed, c.sent, c.unchanged), (5, 3, 3, 37), "{c:?}");
    assert_eq!(s.received(2), ids(&["p-003", "p-017", "p-029"]));
    assert_eq!(cursor_run.cursor.as_ref().unwrap().scope, "cursor");
    assert_eq!(c.changed_without_cursor, None, "a cursor run does not look");
    let cache = s.store.load("people").await.expect("load");
    assert_eq!(
        (cache.cached, cache.deltas.count, cache.deltas.entries),
        (true, 1, 3),
        "the run added its three changes to the cached index as a delta"
    );

    let full = s.run_with(true).await;
    let c = &full.counts;
    assert_eq!((c.narrowed, c.source, c.changed, c.sent), (false, 40, 1, 1), "{c:?}");
    assert_eq!(c.changed_without_cursor, Some(1), "p-005 changed without its cursor moving");
    assert_eq!(s.received(2), ids(&["p-003", "p-005", "p-017", "p-029"]));
    let history = s.store.runs(Some("people"), 1).await.expect("runs");
    assert_eq!(history[0].counts.changed_without_cursor, Some(1), "kept in the run history");
    let json = serde_json::to_value(&full).expect("json");
    assert_eq!(json["counts"]["changed_without_cursor"], 1);

    let out = ebb(
        s.ws.path(),
        &["--state", &s.ws.state_url(), "sync", "people.yml", "--full-diff"],
        &[("WAREHOUSE_URL", &database_url())],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("full diff: 0 rows changed without their cursor moving"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_commit_within_the_lag_is_read_and_a_failed_run_leaves_the_watermark() {
    let s = Setup::new().await;
    s.run_with(false).await;
    let before = s.store.cursor("people").await.unwrap().unwrap();
    // Committed after the last run read, with a time two minutes before its watermark.
    s.pg.exec("UPDATE {s}.people SET name = 'Late', updated_at = '2026-01-02 14:58:00+00' WHERE user_id = 'p-002'")
        .await;
    s.pg.exec("UPDATE {s}.people SET name = 'Moved', updated_at = '2026-03-01 00:00:00+00' WHERE user_id = 'p-007'")
        .await;
    // A run against a destination that is down fails and moves nothing.
    let down = people_mapping(&s.pg.name, "http://127.0.0.1:9", "");
    let down = s.ws.write("down.yml", &down);
    let url = database_url();
    let failed = sync::run(
        &load_sync(&down, &[("WAREHOUSE_URL", &url)]),
        s.store.as_ref(),
        &RunOptions::default(),
    )
    .await
    .expect("recorded");
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    assert_eq!(
        s.store.cursor("people").await.unwrap().unwrap(),
        before,
        "the watermark did not move"
    );
    let next = s.run_with(false).await;
    assert!(next.counts.narrowed);
    assert_eq!(next.counts.sent, 2, "{next:?}");
    assert_eq!(s.received(2), ids(&["p-002", "p-007"]));
    let after = s.store.cursor("people").await.unwrap().unwrap();
    assert_eq!(after.watermark, Some(JAN_1 + 59 * 24 * HOUR), "2026-03-01, p-007's cursor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_mapping_and_a_reset_make_the_next_run_a_full_diff() {
    let s = Setup::new().await;
    s.run_with(false).await;
    assert!(s.run_with(false).await.counts.narrowed);
    s.ws.write("people.yml", &people_mapping(&s.pg.name, &s.si.url(), "  Since: updated_at\n"));
    let changed = s.run_with(false).await;
    let summary = changed.cursor.as_ref().unwrap();
    assert_eq!(
        (summary.scope, summary.full_because, changed.counts.sent),
        ("full", Some("the mapping, destination or cursor column changed"), 40)
    );
    // Changing the lag or the schedule changes no payload: still a cursor run.
    let relaxed = people_mapping(&s.pg.name, &s.si.url(), "  Since: updated_at\n").replace("lag: 5m", "lag: 1h\n    full_every: 7d");
    s.ws.write("people.yml", &relaxed);
    assert!(s.run_with(false).await.counts.narrowed);
    s.store.reset("people").await.expect("reset");
    let after_reset = s.run_with(false).await;
    assert_eq!(after_reset.cursor.as_ref().unwrap().full_because, Some("no watermark yet"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_run_in_mirror_mode_finds_the_rows_that_left() {
    let pg = forty_people().await;
    pg.exec("ALTER TABLE {s}.people ADD COLUMN email text; UPDATE {s}.people SET email = user_id || '@example.com'")
        .await;
    let si = stand_in().await;
    let ws = Workspace::new();
    let yaml = format!(
        "name: mirrored\nsource:\n  postgres:\n    url: ${{WAREHOUSE_URL}}\n    table: {}.people\n  cursor: {{ column: updated_at, lag: 1s }}\n\
         destination:\n  profiles:\n    url: {}\n    token: ${{PROFILES_TOKEN:-local-profiles-token}}\n    requests_per_minute: 60000\n    retry_budget_secs: 2\n\
         mode: mirror\nemail: email\nfull_name: name\nguards: {{}}\n",
        pg.name,
        si.url()
    );
    let mapping = ws.write("m.yml", &yaml);
    let store = ws.store().await;
    let url = database_url();
    let sync = || load_sync(&mapping, &[("WAREHOUSE_URL", url.as_str())]);
    assert_eq!(run_ok(&sync(), store.as_ref()).await.counts.sent, 40);
    pg.exec("DELETE FROM {s}.people WHERE user_id IN ('p-004', 'p-020'); UPDATE {s}.people SET name = 'New name', updated_at = '2026-07-01+00' WHERE user_id = 'p-030'")
        .await;
    let report = run_ok(&sync(), store.as_ref()).await;
    let c = &report.counts;
    assert!(c.narrowed, "{report:?}");
    assert_eq!((c.source, c.sent, c.deleted, c.gone), (38, 1, 2, 2), "{c:?}");
    let held: BTreeSet<String> = si.profiles().into_iter().map(|p| p.email).collect();
    assert_eq!(held.len(), 38);
    assert!(!held.contains("p-004@example.com") && !held.contains("p-020@example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_that_cannot_be_one_is_a_clear_error() {
    let pg = forty_people().await;
    let ws = Workspace::new();
    let url = database_url();
    for (cursor, expected) in [
        ("column: updated", "column `updated` is not in the source"),
        (
            "column: name",
            "column `name` is string: a cursor is a timestamp, timestamptz, date or integer column",
        ),
        ("column: age\n    lag: 5m", "is a duration, but the cursor column is int"),
        ("column: updated_at\n    lag: 10", "is a number, but the cursor column is timestamp"),
    ] {
        let yaml = people_mapping(&pg.name, "http://127.0.0.1:9", "").replace("column: updated_at\n    lag: 5m", cursor);
        ws.write("people.yml", &yaml);
        let out = ebb(ws.path(), &["validate", "people.yml"], &[("WAREHOUSE_URL", &url)]);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{cursor}: {stdout}");
        assert!(format!("{stdout}{stderr}").contains(expected), "{cursor}: {stdout}{stderr}");
    }
}

/// A Parquet snapshot of `rows` people in row groups of 100, each updated an hour after the
/// one before, with `changed` given a new name and a cursor in June.
fn write_people(path: &std::path::Path, rows: i64, changed: &[i64]) {
    write_people_with(path, rows, changed, &[]);
}

/// [`write_people`], with `nulled` renamed too but given no cursor at all.
fn write_people_with(path: &std::path::Path, rows: i64, changed: &[i64], nulled: &[i64]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("updated_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("age", DataType::Int64, true),
        Field::new("email", DataType::Utf8, true),
    ]));
    let ids: Vec<String> = (0..rows).map(|i| format!("p-{i:05}")).collect();
    let emails: Vec<String> = ids.iter().map(|id| format!("{id}@customers.invalid")).collect();
    let names: Vec<String> = (0..rows)
        .map(|i| {
            if changed.contains(&i) || nulled.contains(&i) {
                format!("Renamed {i}")
            } else {
                format!("Person {i}")
            }
        })
        .collect();
    let june = JAN_1 + 151 * 24 * HOUR;
    let times: Vec<Option<i64>> = (0..rows)
        .map(|i| match (changed.contains(&i), nulled.contains(&i)) {
            (_, true) => None,
            (true, false) => Some(june + i),
            (false, false) => Some(JAN_1 + i * HOUR),
        })
        .collect();
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(StringArray::from(names)),
            Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
            Arc::new(Int64Array::from((0..rows).map(|i| 20 + i % 50).collect::<Vec<_>>())),
            Arc::new(StringArray::from(emails)),
        ],
    )
    .expect("batch");
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(100))
        .build();
    let file = std::fs::File::create(path).expect("create");
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, Some(props)).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrowed_parquet_read_decodes_only_the_row_groups_and_rows_past_the_cursor() {
    let ws = Workspace::new();
    let si = stand_in().await;
    let data = ws.path().join("people.parquet");
    write_people(&data, 1000, &[]);
    let yaml = format!(
        "name: people\nsource:\n  parquet: people.parquet\n  cursor: {{ column: updated_at, lag: 30m }}\ndestination:\n  enterpret:\n    object: user\n    api_key: ${{TEST_USERS_KEY:-local-users-key}}\n    url: {}\n    requests_per_minute: 60000\n    retry_budget_secs: 2\nid: user_id\ncreated_at: updated_at\nattributes:\n  Name: name\n  Age: {{ column: age, type: number }}\n",
        si.url()
    );
    let mapping = ws.write("people.yml", &yaml);
    let store = ws.store().await;
    assert_eq!(run_ok(&load_sync(&mapping, &[]), store.as_ref()).await.counts.sent, 1000);
    // Three rows scattered over the file change with their cursor: the rows of the groups
    // they are in are decoded for their cursor only, the other groups not at all.
    write_people(&data, 1000, &[5, 450, 998]);
    let loaded = ebb::spec::load(&mapping, &env(&[])).expect("mapping");
    let source = ebb::source::parquet::ParquetSource::local(data.display().to_string(), Default::default());
    let decoded = source.decoded();
    let job = SyncJob {
        baseline: ebb::baseline::for_mapping(&loaded).expect("baseline"),
        destination: Arc::from(loaded.destination.build().expect("destination")),
        source: Arc::new(source),
        mapping: loaded,
    };
    let report = run_ok(&job, store.as_ref()).await;
    assert!(report.counts.narrowed);
    assert_eq!((report.counts.changed, report.counts.sent), (3, 3), "{report:?}");
    // Groups 0, 4 and 9 hold the changed rows; row 999 is within the lag of the old watermark.
    assert_eq!(decoded.cursor_values(), 300, "only three row groups were decoded");
    assert_eq!(decoded.rows(), 4, "only the selected rows were decoded whole");
    let twice: BTreeSet<String> = si
        .records("users")
        .into_iter()
        .filter(|r| r.received_count == 2)
        .map(|r| r.id)
        .collect();
    assert_eq!(twice, ids(&["p-00005", "p-00450", "p-00998"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_warns_when_no_index_leads_with_the_cursor_column() {
    let pg = forty_people().await;
    let ws = Workspace::new();
    let url = database_url();
    ws.write("people.yml", &people_mapping(&pg.name, "http://127.0.0.1:9", ""));
    let validate = || {
        let out = ebb(ws.path(), &["validate", "people.yml"], &[("WAREHOUSE_URL", &url)]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}{stderr}");
        stderr
    };
    let warned = validate();
    assert!(
        warned.contains("source.cursor: no index of") && warned.contains("leads with the cursor column `updated_at`"),
        "{warned}"
    );
    pg.exec("CREATE INDEX ON {s}.people (updated_at, user_id)").await;
    let quiet = validate();
    assert!(!quiet.contains("no index"), "{quiet}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warehouse_side_diff_hashes_only_the_rows_past_the_cursor() {
    let s = Setup::with(|schema| format!("    diff: warehouse\n    state_schema: {schema}\n")).await;
    let first = s.run_with(false).await;
    assert_eq!((first.counts.sent, first.counts.narrowed), (40, false), "{first:?}");
    s.pg.exec(
        "UPDATE {s}.people SET age = age + 1, updated_at = '2026-06-01 00:00:00+00' WHERE user_id IN ('p-003', 'p-017');
         UPDATE {s}.people SET age = 99 WHERE user_id = 'p-005';",
    )
    .await;
    let cursor_run = s.run_with(false).await;
    let c = &cursor_run.counts;
    assert!(c.narrowed, "{cursor_run:?}");
    assert_eq!((c.changed, c.sent, c.unchanged, c.gone), (2, 2, 38, 0), "{c:?}");
    assert_eq!(s.received(2), ids(&["p-003", "p-017"]));
    let stored = s.store.cursor("people").await.unwrap().unwrap();
    assert_eq!(stored.watermark, Some(JAN_1 + 151 * 24 * HOUR), "the changed rows' cursor");
    // Nothing changed since: a cursor run that finds nothing keeps its watermark.
    let quiet = s.run_with(false).await;
    assert_eq!((quiet.counts.narrowed, quiet.counts.sent), (true, 0));
    assert_eq!(s.store.cursor("people").await.unwrap().unwrap().watermark, stored.watermark);
    let full = s.run_with(true).await;
    assert_eq!(
        (full.counts.narrowed, full.counts.sent, full.counts.changed_without_cursor),
        (false, 1, Some(1))
    );
    assert_eq!(s.received(2), ids(&["p-003", "p-005", "p-017"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_send_leaves_the_watermark_and_the_next_run_sends_every_change() {
    let s = Setup::new().await;
    let slow = people_mapping(&s.pg.name, &s.si.url(), "").replace(
        "retry_budget_secs: 2",
        "retry_budget_secs: 2\n    batch_size: 2\n    concurrency: 1",
    );
    s.ws.write("people.yml", &slow);
    s.run_with(false).await;
    let before = s.store.cursor("people").await.unwrap().unwrap();
    s.pg.exec("UPDATE {s}.people SET age = age + 1, updated_at = '2026-06-01+00'::timestamptz + age * interval '1 second' WHERE age <= 50")
        .await;
    let changed: BTreeSet<String> = (1..=30).map(|i| format!("p-{i:03}")).collect();
    s.si.set_latency(std::time::Duration::from_millis(150));
    let url = database_url();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ebb"))
        .current_dir(s.ws.path())
        .args(["--state", &s.ws.state_url(), "sync", "people.yml"])
        .env("WAREHOUSE_URL", &url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ebb starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s.received(2).len() < 6 {
        assert!(std::time::Instant::now() < deadline, "the run never sent");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(s.received(1).len() > 10, "killed mid-run, with changes left to send");
    assert_eq!(
        s.store.cursor("people").await.unwrap().unwrap(),
        before,
        "a killed run moves no watermark"
    );
    s.si.set_latency(std::time::Duration::ZERO);
    let next = s.run_with(false).await;
    assert!(next.counts.narrowed, "{next:?}");
    let sent_again: BTreeSet<String> =
        s.si.records("users")
            .into_iter()
            .filter(|r| r.received_count >= 2)
            .map(|r| r.id)
            .collect();
    assert_eq!(sent_again, changed, "every change reached the destination");
    let after = s.store.cursor("people").await.unwrap().unwrap();
    assert_eq!(
        after.watermark,
        Some(JAN_1 + 151 * 24 * HOUR + 50_000_000),
        "the largest cursor, p-030's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_with_a_null_or_future_cursor_are_read_by_every_run_and_never_move_the_watermark() {
    let s = Setup::new().await;
    // A placeholder far in the future, and PostgreSQL's own infinity: neither is a watermark,
    // or every later cursor run would read nothing until the year 2999.
    s.pg.exec(
        "UPDATE {s}.people SET updated_at = '2999-01-01+00' WHERE user_id = 'p-010';
         UPDATE {s}.people SET updated_at = 'infinity' WHERE user_id = 'p-011';
         UPDATE {s}.people SET updated_at = NULL WHERE user_id = 'p-012';",
    )
    .await;
    let first = s.run_with(false).await;
    assert_eq!(first.counts.sent, 40);
    let summary = first.cursor.as_ref().expect("cursor");
    let ahead = summary.ahead_of_clock.as_ref().expect("the row from the future is reported");
    assert_eq!((ahead.rows, ahead.furthest.as_str()), (1, "2999-01-01 00:00:00+00"));
    assert_eq!(
        s.store.cursor("people").await.unwrap().unwrap().watermark,
        Some(JAN_1 + 39 * HOUR),
        "p-040's cursor, the largest before the run's start"
    );

    // A change with its cursor moved, and a change whose cursor became null: both are read.
    s.pg.exec(
        "UPDATE {s}.people SET age = 1, updated_at = '2026-06-01+00' WHERE user_id = 'p-020';
         UPDATE {s}.people SET name = 'No cursor', updated_at = NULL WHERE user_id = 'p-030';",
    )
    .await;
    let next = s.run_with(false).await;
    let c = &next.counts;
    assert!(c.narrowed, "{next:?}");
    // Read: p-010, p-011, p-012 (past the bound or null, unchanged), p-020, p-030, and p-040 within the lag.
    assert_eq!((c.source, c.changed, c.sent), (6, 2, 2), "{c:?}");
    assert_eq!(s.received(2), ids(&["p-020", "p-030"]));
    assert_eq!(
        s.store.cursor("people").await.unwrap().unwrap().watermark,
        Some(JAN_1 + 151 * 24 * HOUR),
        "p-020's cursor"
    );

    let out = ebb(
        s.ws.path(),
        &["--state", &s.ws.state_url(), "preview", "people.yml"],
        &[("WAREHOUSE_URL", &database_url())],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("cursor: 1 row has updated_at more than a day after the run's start (the furthest 2999-01-01"),
        "{stdout}"
    );
}

/// A Parquet mirror sync of 1,000 people to profiles, made by one full run: the workspace, the
/// stand-in, the mapping's path and the state.
async fn mirrored_parquet() -> (Workspace, StandIn, std::path::PathBuf, Box<dyn StateStore>) {
    let (ws, si) = (Workspace::new(), stand_in().await);
    write_people(&ws.path().join("people.parquet"), 1000, &[]);
    let yaml = format!(
        "name: people\nsource:\n  parquet: people.parquet\n  cursor: {{ column: updated_at, lag: 30m }}\n\
         destination:\n  profiles:\n    url: {}\n    token: ${{PROFILES_TOKEN:-local-profiles-token}}\n    requests_per_minute: 60000\n    retry_budget_secs: 2\n\
         mode: mirror\nemail: email\nfull_name: name\nguards: {{}}\n",
        si.url()
    );
    let mapping = ws.write("people.yml", &yaml);
    let store = ws.store().await;
    assert_eq!(run_ok(&load_sync(&mapping, &[]), store.as_ref()).await.counts.sent, 1000);
    (ws, si, mapping, store)
}

fn profiles_received(si: &StandIn, times: u64) -> BTreeSet<String> {
    si.profiles()
        .into_iter()
        .filter(|p| p.received_count == times)
        .map(|p| p.email.trim_end_matches("@customers.invalid").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_cursor_keeps_its_row_group_from_being_skipped() {
    let (ws, si, mapping, store) = mirrored_parquet().await;
    // Row 5 lost its cursor: its group's statistics are all below the bound, but it has a null.
    write_people_with(&ws.path().join("people.parquet"), 1000, &[450], &[5]);
    let report = run_ok(&load_sync(&mapping, &[]), store.as_ref()).await;
    let c = &report.counts;
    assert!(c.narrowed, "{report:?}");
    assert_eq!((c.changed, c.sent, c.gone, c.deleted), (2, 2, 0, 0), "{c:?}");
    assert_eq!(profiles_received(&si, 2), ids(&["p-00005", "p-00450"]));
}

/// Overwrites the first bytes of `column`'s pages in row group `group` with garbage.
fn damage(path: &std::path::Path, group: usize, column: usize) {
    use std::io::{Seek, Write};
    let file = std::fs::File::open(path).expect("open");
    let meta = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .expect("footer");
    let chunk = meta.row_group(group).column(column);
    let start = chunk.dictionary_page_offset().unwrap_or(chunk.data_page_offset());
    let mut file = std::fs::OpenOptions::new().write(true).open(path).expect("open for writing");
    file.seek(std::io::SeekFrom::Start(start as u64)).expect("seek");
    file.write_all(&[0xff; 64]).expect("damage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrowed_mirror_read_of_a_damaged_file_fails_the_run_and_deletes_no_one() {
    let (ws, si, mapping, store) = mirrored_parquet().await;
    let before = store.cursor("people").await.unwrap().unwrap();
    let data = ws.path().join("people.parquet");
    // The identity (email) of a group the cursor skips, read only to find mirror's gone
    // records, then a mapped column of a group it reads.
    for (group, column, what) in [(2, 4, "email of a skipped group"), (4, 1, "name of a read group")] {
        write_people(&data, 1000, &[450]);
        damage(&data, group, column);
        let report = run(&load_sync(&mapping, &[]), store.as_ref(), false).await;
        assert_eq!(report.status, RunStatus::Failed, "{what}: {report:?}");
        let error = report.error.clone().unwrap_or_default();
        assert!(error.contains("people.parquet"), "{what}: the error names the file: {error}");
        assert_eq!((report.counts.deleted, report.counts.sent), (0, 0), "{what}: {report:?}");
        assert_eq!(si.profiles().len(), 1000, "{what}: no one was deleted");
        assert_eq!(
            store.cursor("people").await.unwrap().unwrap(),
            before,
            "{what}: the watermark did not move"
        );
    }
    write_people(&data, 1000, &[450]);
    let healed = run_ok(&load_sync(&mapping, &[]), store.as_ref()).await;
    assert_eq!((healed.counts.sent, healed.counts.deleted), (1, 0), "{healed:?}");
    assert_eq!(profiles_received(&si, 2), ids(&["p-00450"]));
}
