//! Whole syncs with `diff: warehouse` against the real PostgreSQL and the stand-ins: the diff
//! finds exactly the generator's truth, only changed rows leave the database, a changed mapping
//! resends everything once, a killed run loses nothing and commits nothing unacknowledged,
//! mirror deletes and suppression behave as in process, `validate` names a missing privilege
//! without creating anything, and `reset` clears the warehouse's state.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::*;
use ebb::standin::StandIn;
use ebb::state::{RunStatus, StateStore};
use ebb::sync::{self, RunOptions, RunReport};

const ROWS: u64 = 100_000;

/// The bench mapping's fields, over `table`, diffed in the warehouse with state in `state`.
fn bench_mapping(table: &str, state: &str, diff: &str, extra: &str) -> String {
    format!(
        r#"name: wh_users
source:
  postgres:
    url: ${{WAREHOUSE_URL}}
    table: {table}
    diff: {diff}
    state_schema: {state}
destination:
  enterpret:
    object: user
    api_key: ${{STANDIN_USERS_KEY:-local-users-key}}
    url: ${{STANDIN_URL}}
    batch_size: 15
    requests_per_minute: 1000000
    concurrency: 8
id: id
created_at: signup_at
attributes:
  email: email
  name: name
  plan: plan
  arr: {{ column: arr, type: number }}
  seats: {{ column: seats, type: number }}
  active: {{ column: active, type: boolean }}
  tags: {{ column: tags, type: string, list: true }}
{extra}"#
    )
}

/// The generator's snapshots A and B of `rows` rows as `{schema}.users_a` and `users_b`, and its truth.
fn generate_into_postgres(ws: &Workspace, rows: u64, schema: &str) -> serde_json::Value {
    generate_into(ws, rows, Some(schema)).1
}

/// A source schema and a state schema of one test's own.
struct Schemas {
    source: TempSchema,
    state: TempSchema,
}

impl Schemas {
    fn new() -> Schemas {
        Schemas {
            source: TempSchema::new("ebb_whsrc"),
            state: TempSchema::new("ebb_whst"),
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        let pool = admin().await;
        let sql = sql.replace("{st}", &format!("\"{}\"", self.state.name));
        let sql = sql.replace("{s}", &format!("\"{}\"", self.source.name));
        let n = sqlx::query_scalar(&sql)
            .fetch_one(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        pool.close().await;
        n
    }

    async fn exec(&self, sql: &str) {
        let pool = admin().await;
        let sql = sql.replace("{st}", &format!("\"{}\"", self.state.name));
        let sql = sql.replace("{s}", &format!("\"{}\"", self.source.name));
        sqlx::raw_sql(&sql).execute(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        pool.close().await;
    }
}

async fn run_with(path: &Path, si: &StandIn, store: &dyn StateStore, full: bool) -> RunReport {
    let sync = load_sync(path, &[("WAREHOUSE_URL", &database_url()), ("STANDIN_URL", &si.url())]);
    let options = RunOptions {
        full,
        ..RunOptions::default()
    };
    let report = sync::run(&sync, store, &options).await.expect("run is recorded");
    assert_eq!(report.status, RunStatus::Completed, "{report:?}");
    report
}

/// A run of `path` whose bookkeeping counts the rows the warehouse's diff returns; the report
/// and that count.
async fn counted_run(path: &Path, si: &StandIn, store: &dyn StateStore) -> (RunReport, u64) {
    let mut sync = load_sync(path, &[("WAREHOUSE_URL", &database_url()), ("STANDIN_URL", &si.url())]);
    let tapped = tables::Tapped::install(&mut sync, false);
    let report = sync::run(&sync, store, &RunOptions::default()).await.expect("run is recorded");
    assert_eq!(report.status, RunStatus::Completed, "{report:?}");
    (report, tapped.rows.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_row_warehouse_diff_matches_the_generators_truth() {
    let ws = Workspace::new();
    let schemas = Schemas::new();
    let truth = generate_into_postgres(&ws, ROWS, &schemas.source.name);
    let t = |k: &str| truth[k].as_u64().unwrap_or_else(|| panic!("truth has {k}"));
    let si = stand_in().await;
    let store = ws.store().await;
    let table = |t: &str| format!("{}.{t}", schemas.source.name);
    let a = ws.write("a.yml", &bench_mapping(&table("users_a"), &schemas.state.name, "warehouse", ""));
    let b = ws.write("b.yml", &bench_mapping(&table("users_b"), &schemas.state.name, "warehouse", ""));

    let first = run_with(&a, &si, store.as_ref(), false).await;
    assert_eq!(
        (first.counts.source, first.counts.new, first.counts.sent),
        (ROWS, ROWS, ROWS),
        "{first:?}"
    );
    assert!(first.full_resync);
    assert_eq!(si.stats().records_received, ROWS);
    assert_eq!(
        schemas.count("SELECT count(*) FROM {st}.ebb_records WHERE sync = 'wh_users'").await,
        ROWS as i64,
        "the warehouse holds a hash for every acknowledged record"
    );
    assert!(stored_ids(store.as_ref(), "wh_users").await.is_empty(), "and the local state none");

    let second = run_with(&b, &si, store.as_ref(), false).await;
    let c = &second.counts;
    assert_eq!(
        (c.source, c.new, c.changed, c.unchanged, c.gone, c.invalid),
        (t("rows_b"), t("new"), t("changed"), t("unchanged"), t("deleted"), 0),
        "{second:?} against {truth}"
    );
    assert_eq!(c.sent, t("new") + t("changed"));
    assert!(!second.full_resync);
    let held = si.records("users");
    assert_eq!(held.len() as u64, ROWS + t("new"), "deleted records stay where they are");
    let twice = held.iter().filter(|r| r.received_count == 2).count() as u64;
    assert_eq!(twice, t("changed"), "what was sent again is exactly the changed rows");

    // A no-change run reads no row out of the database: the diff query returns none.
    let sent_before = si.stats().records_received;
    let third = run_with(&b, &si, store.as_ref(), false).await;
    assert_eq!(
        (third.counts.sent, third.counts.unchanged, third.counts.source),
        (0, t("rows_b"), t("rows_b"))
    );
    assert_eq!(si.stats().records_received, sent_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_changed_rows_leave_the_database_and_a_changed_mapping_resends_everything_once() {
    let ws = Workspace::new();
    let schemas = Schemas::new();
    generate_into_postgres(&ws, 2_000, &schemas.source.name);
    let si = stand_in().await;
    let store = ws.store().await;
    let table = format!("{}.users_a", schemas.source.name);
    let path = ws.write("m.yml", &bench_mapping(&table, &schemas.state.name, "warehouse", ""));
    run_with(&path, &si, store.as_ref(), false).await;

    // Three rows change.
    schemas
        .exec("UPDATE {s}.users_a SET name = name || ' (edited)' WHERE id IN (SELECT id FROM {s}.users_a ORDER BY id LIMIT 3)")
        .await;
    let (changed, read) = counted_run(&path, &si, store.as_ref()).await;
    assert_eq!(
        (changed.counts.changed, changed.counts.sent, changed.counts.unchanged),
        (3, 3, 1_997)
    );
    assert_eq!(read, 3, "the rows read out of the database are the changed ones, not the table");
    let (unchanged, read) = counted_run(&path, &si, store.as_ref()).await;
    assert_eq!((unchanged.counts.sent, read), (0, 0), "a run without changes reads no row");

    // A new attribute changes every record: all are sent once, then none.
    let more = ws.write(
        "m.yml",
        &bench_mapping(&table, &schemas.state.name, "warehouse", "  region: { value: eu }\n"),
    );
    let resend = run_with(&more, &si, store.as_ref(), false).await;
    assert_eq!((resend.counts.sent, resend.counts.changed), (2_000, 2_000), "{resend:?}");
    assert!(resend.full_resync, "the summary says everything was sent again");
    let again = run_with(&more, &si, store.as_ref(), false).await;
    assert_eq!(again.counts.sent, 0);
    let coverage = schemas
        .count("SELECT count(*) FROM {st}.ebb_syncs WHERE columns LIKE 'id string, %'")
        .await;
    assert_eq!(coverage, 1, "the mapped columns are stored with the sync");

    // `--full` sends everything whatever the hashes say.
    let full = run_with(&more, &si, store.as_ref(), true).await;
    assert_eq!(full.counts.sent, 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_loses_nothing_and_commits_nothing_unacknowledged() {
    const KILLED_ROWS: u64 = 900;
    let ws = Workspace::new();
    let schemas = Schemas::new();
    generate_into_postgres(&ws, KILLED_ROWS, &schemas.source.name);
    let si = stand_in().await;
    let table = format!("{}.users_a", schemas.source.name);
    // Paced at 600 requests a minute, two in flight: about 150 records a second.
    let text = bench_mapping(&table, &schemas.state.name, "warehouse", "")
        .replace("requests_per_minute: 1000000", "requests_per_minute: 600")
        .replace("concurrency: 8", "concurrency: 2");
    let path = ws.write("m.yml", &text);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ebb"))
        .current_dir(ws.path())
        .args(["--state", &ws.state_url(), "sync"])
        .arg(&path)
        .env("WAREHOUSE_URL", database_url())
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
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    // Every key the warehouse holds was acknowledged by the stand-in, with the record it holds.
    let pool = admin().await;
    let committed: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT id, sent_as FROM \"{}\".ebb_records WHERE sync = 'wh_users'",
        schemas.state.name
    ))
    .fetch_all(&pool)
    .await
    .expect("records");
    pool.close().await;
    let held = held_ids(&si, "users");
    assert!(
        !committed.is_empty() && (committed.len() as u64) < KILLED_ROWS,
        "{} committed",
        committed.len()
    );
    assert!(
        committed.iter().all(|(key, sent_as)| key == sent_as && held.contains(sent_as)),
        "only acknowledged records are committed"
    );

    let store = ws.store().await;
    let rest = run_with(&path, &si, store.as_ref(), false).await;
    assert_eq!(rest.counts.sent, KILLED_ROWS - committed.len() as u64, "{rest:?}");
    assert_eq!(si.records("users").len() as u64, KILLED_ROWS, "nothing was lost");
    let twice = si.stats().records_received - KILLED_ROWS;
    assert!(twice <= 5 * 15, "{twice} records sent twice");
}

/// A profiles mapping over `{schema}.people`, mirrored, diffed in the warehouse.
fn people_mapping(schemas: &Schemas, url: &str) -> String {
    format!(
        r#"name: wh_people
source:
  postgres:
    url: ${{WAREHOUSE_URL}}
    table: {s}.people
    diff: warehouse
    state_schema: {st}
destination:
  profiles:
    url: {url}
    token: ${{PROFILES_TOKEN:-local-profiles-token}}
    requests_per_minute: 60000
    retry_budget_secs: 2
mode: mirror
guards: {{}}
email: email
full_name: name
properties:
  plan: plan
"#,
        s = schemas.source.name,
        st = schemas.state.name
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_deletes_what_left_and_a_deleted_profile_is_never_imported_again() {
    let ws = Workspace::new();
    let schemas = Schemas::new();
    schemas
        .exec(
            "CREATE SCHEMA {s}; CREATE TABLE {s}.people (email text, name text, plan text);
             INSERT INTO {s}.people SELECT 'P' || i || '@Example.com', 'Person ' || i, 'free' FROM generate_series(1, 6) i;
             INSERT INTO {s}.people VALUES ('dup@example.com', 'One', 'free'), ('DUP@example.com', 'Two', 'pro'), (NULL, 'Nobody', 'free');",
        )
        .await;
    let si = stand_in().await;
    let store = ws.store().await;
    let path = ws.write("m.yml", &people_mapping(&schemas, &si.url()));
    let first = run_with(&path, &si, store.as_ref(), false).await;
    // The two spellings of one email are one identity: both rows are rejected, as in process.
    assert_eq!(
        (first.counts.sent, first.counts.invalid, first.counts.source),
        (6, 3, 9),
        "{first:?}"
    );
    let held: BTreeSet<String> = si.profiles().into_iter().map(|p| p.email).collect();
    assert_eq!(held.len(), 6);
    assert!(held.contains("p1@example.com"), "{held:?}");

    schemas
        .exec("DELETE FROM {s}.people WHERE email IN ('P1@Example.com', 'P2@Example.com')")
        .await;
    let second = run_with(&path, &si, store.as_ref(), false).await;
    assert_eq!(
        (second.counts.gone, second.counts.deleted, second.counts.unchanged),
        (2, 2, 4),
        "{second:?}"
    );
    let held: BTreeSet<String> = si.profiles().into_iter().map(|p| p.email).collect();
    assert!(!held.contains("p1@example.com") && !held.contains("p2@example.com") && held.len() == 4);

    // P1 comes back to the source: a deleted profile is never imported again.
    schemas
        .exec("INSERT INTO {s}.people VALUES ('P1@Example.com', 'Person 1', 'pro')")
        .await;
    let third = run_with(&path, &si, store.as_ref(), false).await;
    assert_eq!((third.counts.sent, third.counts.suppressed), (0, 1), "{third:?}");
    assert!(!si.profiles().into_iter().any(|p| p.email == "p1@example.com"));
}

/// A role of one test's own that may read the source but not create anything, dropped with it.
struct Role {
    name: String,
}

impl Role {
    async fn new(schemas: &Schemas) -> Role {
        let name = TempSchema::new("ebb_ro").name.clone();
        schemas
            .exec(&format!(
                "CREATE ROLE \"{name}\" LOGIN; GRANT CONNECT ON DATABASE test TO \"{name}\";
                 GRANT USAGE ON SCHEMA {{s}} TO \"{name}\"; GRANT SELECT ON ALL TABLES IN SCHEMA {{s}} TO \"{name}\";
                 REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
            ))
            .await;
        Role { name }
    }

    fn url(&self) -> String {
        let mut url = url::Url::parse(&database_url()).expect("DATABASE_URL is a URL");
        url.set_username(&self.name).expect("a URL with a host takes a user");
        url.to_string()
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        admin_exec_blocking(format!("DROP OWNED BY \"{}\"", self.name));
        admin_exec_blocking(format!("DROP ROLE \"{}\"", self.name));
    }
}

fn validate(ws: &Workspace, path: &Path, url: &str) -> (bool, String) {
    let out = ebb(
        ws.path(),
        &["validate", &path.display().to_string()],
        &[("WAREHOUSE_URL", url), ("STANDIN_URL", "http://127.0.0.1:9")],
    );
    let (stdout, stderr) = text(&out);
    (out.status.success(), format!("{stdout}{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_names_the_missing_privilege_and_creates_nothing() {
    let ws = Workspace::new();
    let schemas = Schemas::new();
    generate_into_postgres(&ws, 100, &schemas.source.name);
    let role = Role::new(&schemas).await;
    let table = format!("{}.users_a", schemas.source.name);
    let path: PathBuf = ws.write("m.yml", &bench_mapping(&table, &schemas.state.name, "warehouse", ""));
    let exists = format!("SELECT count(*) FROM pg_namespace WHERE nspname = '{}'", schemas.state.name);

    let (ok, said) = validate(&ws, &path, &role.url());
    assert!(!ok, "{said}");
    assert!(said.contains("the state needs CREATE on the database, to create schema"), "{said}");
    assert!(
        said.contains(&schemas.state.name) && !said.contains(&role.name),
        "names the schema, not the user: {said}"
    );
    assert_eq!(schemas.count(&exists).await, 0, "validate created nothing");

    // The schema exists but the user may not create tables in it.
    schemas
        .exec(&format!("CREATE SCHEMA {{st}}; GRANT USAGE ON SCHEMA {{st}} TO \"{}\"", role.name))
        .await;
    let (ok, said) = validate(&ws, &path, &role.url());
    assert!(!ok && said.contains("CREATE on schema"), "{said}");

    // The tables exist, readable but not writable.
    schemas.exec(&format!("GRANT CREATE ON SCHEMA {{st}} TO \"{}\"", role.name)).await;
    let sync_url = database_url();
    let store = ws.store().await;
    let si = stand_in().await;
    run_with(&path, &si, store.as_ref(), false).await;
    schemas
        .exec(&format!(
            "REVOKE CREATE ON SCHEMA {{st}} FROM \"{0}\"; GRANT SELECT ON ALL TABLES IN SCHEMA {{st}} TO \"{0}\"",
            role.name
        ))
        .await;
    let (ok, said) = validate(&ws, &path, &role.url());
    assert!(!ok && said.contains("INSERT on"), "{said}");
    schemas
        .exec(&format!(
            "GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {{st}} TO \"{}\"",
            role.name
        ))
        .await;
    let (ok, said) = validate(&ws, &path, &role.url());
    assert!(ok, "every privilege granted: {said}");
    let (ok, said) = validate(&ws, &path, &sync_url);
    assert!(ok, "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_clears_the_warehouse_state_and_a_join_is_refused() {
    let ws = Workspace::new();
    let schemas = Schemas::new();
    generate_into_postgres(&ws, 300, &schemas.source.name);
    let si = stand_in().await;
    let store = ws.store().await;
    let table = format!("{}.users_a", schemas.source.name);
    let path = ws.write("m.yml", &bench_mapping(&table, &schemas.state.name, "warehouse", ""));
    run_with(&path, &si, store.as_ref(), false).await;
    let out = ebb(
        ws.path(),
        &["--state", &ws.state_url(), "reset", &path.display().to_string()],
        &[("WAREHOUSE_URL", &database_url()), ("STANDIN_URL", &si.url())],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("forgot 300 records") && stdout.contains(&schemas.state.name),
        "{stdout}"
    );
    assert_eq!(schemas.count("SELECT count(*) FROM {st}.ebb_records").await, 0);
    assert_eq!(schemas.count("SELECT count(*) FROM {st}.ebb_syncs").await, 0);
    let again = run_with(&path, &si, store.as_ref(), false).await;
    assert_eq!(again.counts.sent, 300, "the next sync sends everything");

    // Switching to the in-process diff sends everything once, then diffs locally.
    let local = ws.write("m.yml", &bench_mapping(&table, &schemas.state.name, "in_process", ""));
    assert_eq!(run_with(&local, &si, store.as_ref(), false).await.counts.sent, 300);
    assert_eq!(run_with(&local, &si, store.as_ref(), false).await.counts.sent, 0);

    // A company joined in ebb cannot be diffed in the warehouse: validate says so, and how.
    let joined = ws.write(
        "j.yml",
        &(people_mapping(&schemas, &si.url())
            + "company:\n  source: { parquet: c.parquet }\n  join: { column: plan, key: id }\n  properties:\n    name: name\n"),
    );
    let (ok, said) = validate(&ws, &joined, &database_url());
    assert!(!ok, "{said}");
    assert!(
        said.contains("`diff: warehouse` diffs one table or query") && said.contains("write the join in `query:`"),
        "{said}"
    );
}

/// A role that may create functions in a schema on ebb's search path plants look-alikes of the
/// catalog's functions, which PostgreSQL would prefer as closer matches; the diff calls none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_planted_on_the_search_path_are_never_called_by_the_diff() {
    let ws = Workspace::new();
    let schemas = Schemas::new();
    schemas
        .exec(
            "CREATE SCHEMA {s}; CREATE TABLE {s}.people (id int, signup_at timestamptz, tags text[], scores float8[], seats int8[]);
             INSERT INTO {s}.people SELECT i, '2024-01-01', ARRAY['a', 'b'], ARRAY[1.5, i], ARRAY[i] FROM generate_series(1, 5) i;
             CREATE FUNCTION {s}.cardinality(float8[]) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'planted cardinality ran'; END $$;
             CREATE FUNCTION {s}.unnest(float8[]) RETURNS SETOF float8 LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'planted unnest ran'; END $$;
             CREATE FUNCTION {s}.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'planted unnest ran'; END $$;
             CREATE FUNCTION {s}.array_to_json(text[]) RETURNS json LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'planted array_to_json ran'; END $$;
             CREATE FUNCTION {s}.array_to_json(int8[]) RETURNS json LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'planted array_to_json ran'; END $$;",
        )
        .await;
    let si = stand_in().await;
    let store = ws.store().await;
    let mapping = format!(
        r#"name: wh_planted
source:
  postgres:
    url: ${{WAREHOUSE_URL}}
    table: people
    diff: warehouse
    state_schema: {st}
destination:
  enterpret:
    object: user
    api_key: ${{STANDIN_USERS_KEY:-local-users-key}}
    url: ${{STANDIN_URL}}
    requests_per_minute: 1000000
id: id
created_at: signup_at
attributes:
  tags: {{ column: tags, type: string, list: true }}
  scores: {{ column: scores, type: number, list: true }}
  seats: {{ column: seats, type: number, list: true }}
"#,
        st = schemas.state.name
    );
    let path = ws.write("m.yml", &mapping);
    // The planting schema first on the search path, as a role's default would put it; the table
    // is named without its schema, so ebb finds it there.
    let separator = if database_url().contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{separator}options=-c%20search_path%3D{}%2Cpublic",
        database_url(),
        schemas.source.name
    );
    let sync = load_sync(&path, &[("WAREHOUSE_URL", &url), ("STANDIN_URL", &si.url())]);
    for round in 0..2 {
        let report = sync::run(&sync, store.as_ref(), &RunOptions::default()).await.expect("recorded");
        assert_eq!(report.status, RunStatus::Completed, "round {round}: {report:?}");
        assert_eq!(report.counts.sent, if round == 0 { 5 } else { 0 }, "{report:?}");
    }
    let ids: BTreeSet<String> = si.records("users").into_iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
}
