//! The PostgreSQL source against a real server (DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/test). Each test works in a schema of
//! its own and drops it afterwards.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::*;
use ebb::state::RunStatus;
use serde_json::json;

/// A warehouse schema of one test's own, dropped with it.
struct Warehouse {
    schema: String,
    pool: sqlx::PgPool,
    _temp: TempSchema,
}

impl Warehouse {
    async fn new() -> Warehouse {
        let temp = TempSchema::new("ebb_src");
        let schema = temp.name.clone();
        let pool = sqlx::PgPool::connect(&database_url()).await.expect("PostgreSQL at DATABASE_URL");
        // Extensions are per database; concurrent CREATE EXTENSION would race, so serialise it.
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('ebb-test:citext', 0))")
            .execute(&mut *tx)
            .await
            .expect("lock");
        sqlx::query("CREATE EXTENSION IF NOT EXISTS citext")
            .execute(&mut *tx)
            .await
            .expect("citext");
        tx.commit().await.expect("commit");
        sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
            .execute(&pool)
            .await
            .expect("schema");
        Warehouse { schema, pool, _temp: temp }
    }

    async fn exec(&self, sql: &str) {
        let sql = sql.replace("{s}", &self.schema);
        sqlx::raw_sql(&sql)
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

const ALL_TYPES: &str = r#"
CREATE TYPE {s}.plan AS ENUM ('free', 'pro');
CREATE TABLE {s}.users (
  user_id uuid PRIMARY KEY, email citext, name varchar(50), code char(3), bio text,
  age int2, seats int4, big int8, arr numeric(12,2), score float4, ratio float8, active bool,
  birthday date, signup_at timestamp, seen_at timestamptz, props jsonb, raw json, plan {s}.plan,
  tags text[], lucky int[], account_id int8
);
INSERT INTO {s}.users VALUES
 ('6f1c8e4e-1111-4a6b-9c3d-000000000001', 'Ada@Example.com', 'Ada', 'AB', 'hello', 36, 5, 9007199254740993, 1234.50, 1.5, 0.25, true,
  '1990-12-10', '2021-03-04 05:06:07.123456', '2021-03-04 06:06:07+01', '{"b": 1, "a": [true]}', '{"z":1}', 'pro',
  ARRAY['x', NULL, 'y'], ARRAY[1, 2], 1),
 ('6f1c8e4e-1111-4a6b-9c3d-000000000002', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, '2020-01-01 00:00:00', NULL, NULL, NULL, NULL, NULL, NULL, 2);
CREATE TABLE {s}.accounts (account_id int8 PRIMARY KEY, name text NOT NULL, plan {s}.plan NOT NULL, arr numeric(14,2), created date NOT NULL);
INSERT INTO {s}.accounts VALUES (1, 'Acme', 'pro', 120000.00, '2015-06-01'), (2, 'Initech', 'free', NULL, '2016-01-31');
"#;

fn users_mapping(url: &str, source: &str) -> String {
    format!(
        r#"name: pg-users
source:
  postgres:
    url: ${{WAREHOUSE_URL}}
{source}
destination:
  enterpret:
    object: user
    api_key: ${{TEST_USERS_KEY:-local-users-key}}
    url: {url}
    requests_per_minute: 60000
    retry_budget_secs: 3
id: user_id
created_at: signup_at
attributes:
  email: email
  name: name
  code: code
  bio: bio
  age: age
  seats: seats
  big: big
  arr: arr
  arr_text: {{ column: arr, type: string }}
  score: score
  ratio: ratio
  active: active
  birthday: birthday
  seen_at: seen_at
  props: props
  raw: raw
  plan: plan
  tags: tags
  lucky: lucky
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_maps_field_by_field_for_users_and_accounts() {
    let wh = Warehouse::new().await;
    wh.exec(ALL_TYPES).await;
    let ws = Workspace::new();
    let si = stand_in().await;
    let users = ws.write("users.yml", &users_mapping(&si.url(), &format!("    table: {}.users", wh.schema)));
    let accounts = ws.write(
        "accounts.yml",
        &format!(
            "name: pg-accounts\nsource:\n  postgres:\n    url: ${{WAREHOUSE_URL}}\n    table: {}.accounts\ndestination:\n  enterpret:\n    object: account\n    api_key: ${{TEST_ACCOUNTS_KEY:-local-accounts-key}}\n    url: {}\nid: account_id\ncreated_at: created\nattributes:\n  Name: name\n  Plan: plan\n  ARR: arr\n",
            wh.schema,
            si.url()
        ),
    );
    let store = ws.store().await;
    let env = [("WAREHOUSE_URL", database_url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let report = run_ok(&load_sync(&users, &env), store.as_ref()).await;
    assert_eq!((report.counts.source, report.counts.sent), (2, 2));
    run_ok(&load_sync(&accounts, &env), store.as_ref()).await;

    let held = si.records("users");
    let ada = held
        .iter()
        .find(|r| r.id == "6f1c8e4e-1111-4a6b-9c3d-000000000001")
        .expect("uuid id as text");
    assert_eq!(ada.created_at, 1614834367, "timestamp without zone read as UTC");
    let want = json!({
        "active": {"b": [true]}, "age": {"n": [36]}, "arr": {"n": [1234.5]}, "arr_text": {"s": ["1234.50"]},
        "big": {"n": [9007199254740993_i64]}, "bio": {"s": ["hello"]}, "birthday": {"s": ["1990-12-10"]}, "code": {"s": ["AB"]},
        "email": {"s": ["Ada@Example.com"]}, "lucky": {"n": [1, 2]}, "name": {"s": ["Ada"]}, "plan": {"s": ["pro"]},
        "props": {"s": ["{\"a\": [true], \"b\": 1}"]}, "ratio": {"n": [0.25]}, "raw": {"s": ["{\"z\":1}"]}, "score": {"n": [1.5]},
        "seats": {"n": [5]}, "seen_at": {"s": ["2021-03-04T05:06:07Z"]}, "tags": {"s": ["x", "y"]}
    });
    for (name, value) in want.as_object().expect("object") {
        assert_eq!(&ada.attributes[name], value, "attribute {name}");
    }
    assert_eq!(ada.attributes, want);
    let empty = held.iter().find(|r| r.id.ends_with("002")).expect("row of NULLs");
    assert_eq!(empty.attributes, json!({}), "nulls: skip leaves every null attribute out");
    assert_eq!(empty.created_at, 1577836800);

    let accounts: Vec<_> = si.records("accounts");
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts[0].id, "1");
    assert_eq!(
        accounts[0].attributes,
        json!({"ARR": {"n": [120000]}, "Name": {"s": ["Acme"]}, "Plan": {"s": ["pro"]}})
    );
    assert_eq!(accounts[1].created_at, 1454198400);
}

const FORTY_USERS: &str = r#"
CREATE TABLE {s}.people (user_id text PRIMARY KEY, name text, age int4, signup_at timestamptz NOT NULL, account_id int8);
INSERT INTO {s}.people SELECT 'p-' || lpad(i::text, 3, '0'), 'Person ' || i, 20 + i, timestamptz '2020-01-01 00:00:00+00' + i * interval '1 day', i % 4
  FROM generate_series(1, 40) AS i;
CREATE TABLE {s}.orgs (account_id int8 PRIMARY KEY, plan text);
INSERT INTO {s}.orgs VALUES (0, 'free'), (1, 'starter'), (2, 'growth'), (3, 'enterprise');
"#;

/// A warehouse holding the forty people, a workspace and a stand-in: most tests' start.
async fn forty_people() -> (Warehouse, Workspace, ebb::standin::StandIn) {
    let wh = Warehouse::new().await;
    wh.exec(FORTY_USERS).await;
    (wh, Workspace::new(), stand_in().await)
}

fn people_mapping(url: &str, source: &str) -> String {
    format!(
        "name: people\nsource:\n  postgres:\n    url: ${{WAREHOUSE_URL}}\n{source}\ndestination:\n  enterpret:\n    object: user\n    api_key: ${{TEST_USERS_KEY:-local-users-key}}\n    url: {url}\n    requests_per_minute: 60000\n    retry_budget_secs: 3\nid: user_id\ncreated_at: signup_at\nattributes:\n  Name: name\n  Age: age\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_rows_updated_in_sql_send_exactly_those() {
    let (wh, ws, si) = forty_people().await;
    let mapping = ws.write(
        "people.yml",
        &people_mapping(&si.url(), &format!("    table: {}.people", wh.schema)),
    );
    let store = ws.store().await;
    let url = database_url();
    let env = [("WAREHOUSE_URL", url.as_str())];
    assert_eq!(run_ok(&load_sync(&mapping, &env), store.as_ref()).await.counts.sent, 40);
    wh.exec("UPDATE {s}.people SET age = age + 1 WHERE user_id IN ('p-003', 'p-017', 'p-029')")
        .await;
    let report = run_ok(&load_sync(&mapping, &env), store.as_ref()).await;
    assert_eq!((report.counts.changed, report.counts.sent, report.counts.unchanged), (3, 3, 37));
    let twice: BTreeSet<String> = si
        .records("users")
        .into_iter()
        .filter(|r| r.received_count == 2)
        .map(|r| r.id)
        .collect();
    assert_eq!(
        twice,
        BTreeSet::from(["p-003".to_string(), "p-017".to_string(), "p-029".to_string()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_column_refuses_the_run_before_sending() {
    let (wh, ws, si) = forty_people().await;
    let mapping = ws.write(
        "people.yml",
        &people_mapping(&si.url(), &format!("    table: {}.people", wh.schema)),
    );
    let store = ws.store().await;
    let url = database_url();
    let env = [("WAREHOUSE_URL", url.as_str())];
    run_ok(&load_sync(&mapping, &env), store.as_ref()).await;
    wh.exec("ALTER TABLE {s}.people DROP COLUMN age; UPDATE {s}.people SET name = name || '!'")
        .await;
    let before = si.stats().requests;
    let report = run(&load_sync(&mapping, &env), store.as_ref(), false).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert!(
        report.error.as_deref().unwrap_or("").contains("column `age` not found"),
        "{report:?}"
    );
    assert_eq!(si.stats().requests, before, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_source_with_a_join() {
    let (wh, ws, si) = forty_people().await;
    let query = format!(
        "    query: \"select p.user_id, p.name, p.age, p.signup_at, o.plan from {s}.people p join {s}.orgs o using (account_id) where p.age < 30\"",
        s = wh.schema
    );
    let yaml = people_mapping(&si.url(), &query).replace("  Age: age\n", "  Age: age\n  Plan: plan\n");
    let mapping = ws.write("people.yml", &yaml);
    let store = ws.store().await;
    let url = database_url();
    let report = run_ok(&load_sync(&mapping, &[("WAREHOUSE_URL", url.as_str())]), store.as_ref()).await;
    assert_eq!(report.counts.sent, 9);
    let p005 = si.records("users").into_iter().find(|r| r.id == "p-005").expect("p-005");
    assert_eq!(
        p005.attributes,
        json!({"Age": {"n": [25]}, "Name": {"s": ["Person 5"]}, "Plan": {"s": ["starter"]}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_runs_read_only() {
    let wh = Warehouse::new().await;
    wh.exec(FORTY_USERS).await;
    let ws = Workspace::new();
    wh.exec("CREATE SEQUENCE {s}.counter").await;
    // nextval() writes; inside a READ ONLY transaction PostgreSQL refuses it.
    let query = format!(
        "    query: \"select user_id, name, age, signup_at, nextval('{s}.counter') as n from {s}.people\"",
        s = wh.schema
    );
    let mapping = ws.write("people.yml", &people_mapping("http://127.0.0.1:9", &query));
    let store = ws.store().await;
    let url = database_url();
    let report = run(&load_sync(&mapping, &[("WAREHOUSE_URL", url.as_str())]), store.as_ref(), false).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert!(
        report.error.as_deref().unwrap_or("").contains("read-only transaction"),
        "{report:?}"
    );
    let called: bool = sqlx::query_scalar(&format!("select is_called from {}.counter", wh.schema))
        .fetch_one(&wh.pool)
        .await
        .expect("seq");
    assert!(!called, "the sequence was never advanced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_names_bad_tables_unsupported_types_and_missing_relations() {
    let wh = Warehouse::new().await;
    wh.exec("CREATE TABLE {s}.odd (user_id text, signup_at date, blob bytea, spot point)")
        .await;
    let ws = Workspace::new();
    let url = database_url();
    let env = [("WAREHOUSE_URL", url.as_str())];
    let injection = people_mapping("http://127.0.0.1:9", "    table: \"people; drop table x\"");
    ws.write("inj.yml", &injection);
    let (_, err) = text(&ebb(ws.path(), &["validate", "inj.yml"], &env));
    assert!(
        err.contains("inj.yml:5:12: source.postgres.table: `people; drop table x` is not a plain `[schema.]name`"),
        "{err}"
    );

    let odd = format!(
        "name: odd\nsource:\n  postgres:\n    url: ${{WAREHOUSE_URL}}\n    table: {}.odd\ndestination:\n  enterpret:\n    object: user\n    api_key: ${{TEST_KEY:-k}}\nid: user_id\ncreated_at: signup_at\nattributes:\n  Blob: blob\n  Spot: spot\n",
        wh.schema
    );
    ws.write("odd.yml", &odd);
    let out = ebb(ws.path(), &["validate", "odd.yml"], &env);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("column `blob` has type bytea, which ebb cannot read"), "{err}");
    assert!(err.contains("column `spot` has type point, which ebb cannot read"), "{err}");

    ws.write("missing.yml", &odd.replace(".odd", ".nope"));
    let (_, err) = text(&ebb(ws.path(), &["validate", "missing.yml"], &env));
    assert!(
        err.contains("missing.yml:4:10: source.postgres.url:") && err.contains("relation") && err.contains("does not exist"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_one_clear_error_without_the_password() {
    let ws = Workspace::new();
    let si = stand_in().await;
    let mapping = ws.write("people.yml", &people_mapping(&si.url(), "    table: people"));
    let store = ws.store().await;
    let report = run(
        &load_sync(&mapping, &[("WAREHOUSE_URL", "postgres://ebb:s3cret-pw@127.0.0.1:1/warehouse")]),
        store.as_ref(),
        false,
    )
    .await;
    assert_eq!(report.status, RunStatus::Failed);
    let error = report.error.unwrap_or_default();
    assert!(
        error.contains("127.0.0.1:1/warehouse") && error.contains("Connection refused"),
        "{error}"
    );
    assert!(!error.contains("s3cret"), "{error}");
    assert_eq!(si.stats().requests, 0);
    assert!(store.load("people").await.expect("load").index.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_stopping_mid_stream_fails_cleanly_with_state_exact() {
    let (wh, ws, si) = forty_people().await;
    let store = ws.store().await;
    let url = database_url();
    let env = [("WAREHOUSE_URL", url.as_str())];
    let mapping = ws.write(
        "people.yml",
        &people_mapping(&si.url(), &format!("    table: {}.people", wh.schema)),
    );
    run_ok(&load_sync(&mapping, &env), store.as_ref()).await;
    let before = stored_ids(store.as_ref(), "people").await;

    // A slow query (a correlated sleep per row, so it streams for about 2 s), cut off by terminating its backend mid-stream.
    let slow = format!(
        "    query: \"select p.user_id, p.name || '?' as name, (select p.age from pg_sleep(0.05)) as age, p.signup_at from {s}.people p\"",
        s = wh.schema
    );
    let slow_mapping = ws.write("slow.yml", &people_mapping(&si.url(), &slow));
    let sync = load_sync(&slow_mapping, &env);
    let state_url = ws.state_url();
    let task = tokio::spawn(async move {
        let store = ebb::state::open(&state_url, false).await.expect("state");
        run(&sync, store.as_ref(), false).await
    });
    let marker = format!("%pg_sleep(0.05)) as age, p.signup_at from {}.people p%", wh.schema);
    let mut terminated = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let n: i64 = sqlx::query_scalar(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity where query like $1 and pid <> pg_backend_pid() and query not like '%pg_stat_activity%'",
        )
        .bind(&marker)
        .fetch_one(&wh.pool)
        .await
        .expect("terminate");
        if n > 0 {
            terminated = true;
            break;
        }
    }
    assert!(terminated, "the slow query was never seen running");
    let report = task.await.expect("join");
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    let error = report.error.unwrap_or_default();
    assert!(error.starts_with("source: postgres ") && error.contains("terminat"), "{error}");
    let after = stored_ids(store.as_ref(), "people").await;
    assert_eq!(before, after, "state unchanged");
    assert_eq!(si.stats().records_received, 40, "nothing more was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_source_query_prints_no_warning_and_a_plain_state_path_is_sqlite() {
    let (wh, ws, si) = forty_people().await;
    // Over sqlx's one-second "slow statement" threshold, which used to warn with the whole SQL.
    let query = format!(
        "    query: \"select * from {s}.people where (select pg_sleep(1.2)) is not null\"",
        s = wh.schema
    );
    ws.write("people.yml", &people_mapping(&si.url(), &query));
    let url = database_url();
    let out = ebb(
        ws.path(),
        &["--state", "./ebb.db", "sync", "people.yml"],
        &[("WAREHOUSE_URL", url.as_str())],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("sent 40"), "{stdout}");
    assert!(
        !stderr.contains("WARN") && !stderr.contains("slow statement"),
        "a normal run warns of nothing: {stderr}"
    );
    assert!(ws.path().join("ebb.db").is_file(), "a plain path is a SQLite file");
    let status = ebb(ws.path(), &["--state", "ebb.db", "status"], &[]);
    let (stdout, stderr) = text(&status);
    assert!(status.status.success() && stdout.contains("completed"), "{stdout}{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_record_is_sent_again_with_the_sources_data_of_the_next_run() {
    let (wh, ws, si) = forty_people().await;
    // p-007 is rejected by the mapping (a creation time in the future), p-003 by the destination.
    wh.exec("UPDATE {s}.people SET signup_at = '2999-01-01' WHERE user_id = 'p-007'")
        .await;
    si.refuse_ids(["p-003".to_string()]);
    let mapping = ws.write(
        "people.yml",
        &people_mapping(&si.url(), &format!("    table: {}.people", wh.schema)),
    );
    let store = ws.store().await;
    let url = database_url();
    let env = [("WAREHOUSE_URL", url.as_str())];
    let first = run_ok(&load_sync(&mapping, &env), store.as_ref()).await;
    assert_eq!(
        (first.counts.sent, first.counts.rejected, first.counts.invalid),
        (38, 1, 1),
        "{first:?}"
    );

    // Both rows change in the source, and the destination takes p-003 again.
    wh.exec("UPDATE {s}.people SET name = 'Fixed 7', signup_at = '2020-02-02' WHERE user_id = 'p-007'")
        .await;
    wh.exec("UPDATE {s}.people SET name = 'Fixed 3' WHERE user_id = 'p-003'").await;
    si.accept_ids(["p-003".to_string()]);
    let second = run_ok(&load_sync(&mapping, &env), store.as_ref()).await;
    assert_eq!(
        (second.counts.sent, second.counts.rejected, second.counts.invalid),
        (2, 0, 0),
        "{second:?}"
    );
    let held = si.records("users");
    let name = |id: &str| {
        held.iter()
            .find(|r| r.id == id)
            .map(|r| r.attributes["Name"]["s"][0].clone())
            .unwrap_or_default()
    };
    assert_eq!(
        (name("p-003"), name("p-007")),
        (json!("Fixed 3"), json!("Fixed 7")),
        "the source's data of the second run, not a copy from the first"
    );
    assert!(held.iter().all(|r| r.received_count == 1), "nothing else was sent again");
}

/// A run keeps the connection that read the schema for the read of the rows. If the server
/// ended it meanwhile (a restart, a failover, an idle timeout), the read connects again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_the_server_ended_is_replaced_by_a_new_one() {
    use futures::StreamExt;
    let db = TempDatabase::new("ebb_parked").await;
    let url = db.url_with_password("unused");
    use sqlx::Connection;
    let mut setup = sqlx::PgConnection::connect(&url).await.expect("the test database");
    sqlx::raw_sql(
        "CREATE TABLE people (user_id text PRIMARY KEY, name text, age int, signup_at timestamptz DEFAULT '2020-01-01+00');
         INSERT INTO people (user_id, name, age) SELECT 'p-' || i, 'Person ' || i, i FROM generate_series(1, 40) AS i;",
    )
    .execute(&mut setup)
    .await
    .expect("table");
    setup.close().await.expect("the set-up's session ends");
    // The set-up's session leaves the server's list a moment after it closes.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while db.sessions().await > 0 {
        assert!(std::time::Instant::now() < deadline, "the set-up's session never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ws = Workspace::new();
    let mapping = ws.write("people.yml", &people_mapping("http://127.0.0.1:9", "    table: people"));
    let job = load_sync(&mapping, &[("WAREHOUSE_URL", url.as_str())]);
    let schema = job.source.schema().await.expect("schema");
    assert_eq!(db.sessions().await, 1, "the schema read's connection is kept");
    assert!(db.terminate_sessions().await >= 1);
    let mut rows = job.source.stream(std::sync::Arc::new(schema.columns.clone()));
    let mut read = 0;
    while let Some(batch) = rows.next().await {
        read += batch.expect("a new connection reads the rows").batch.num_rows();
    }
    assert_eq!(read, 40);
}
