//! Shared helpers: fixture paths, mappings written into a temp dir, a stand-in
//! on a free loopback port, and the `ebb` binary.
#![allow(dead_code)]

pub mod s3;
pub mod tables;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use ebb::config::env::OverlayEnv;
use ebb::standin::{StandIn, StandInConfig};
use ebb::state::{self, RunStatus, StateStore};
use ebb::sync::{self, RunOptions, RunReport, SyncJob};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub async fn stand_in() -> StandIn {
    StandIn::start(SocketAddr::from(([127, 0, 0, 1], 0)), StandInConfig::default())
        .await
        .expect("stand-in starts")
}

pub async fn stand_in_with(config: StandInConfig) -> StandIn {
    StandIn::start(SocketAddr::from(([127, 0, 0, 1], 0)), config)
        .await
        .expect("stand-in starts")
}

/// A users mapping over the fixture users, reading its source from `${USERS_SOURCE}`.
pub fn users_yaml(name: &str, url: &str, extra_destination: &str) -> String {
    let budget = if extra_destination.contains("retry_budget_secs") {
        ""
    } else {
        "    retry_budget_secs: 3\n"
    };
    format!(
        r#"name: {name}
source:
  parquet: ${{USERS_SOURCE}}
destination:
  enterpret:
    object: user
    api_key: ${{TEST_USERS_KEY:-local-users-key}}
    url: {url}
{budget}{extra_destination}
id: user_id
created_at: signup_at
attributes:
  Email: email
  Name: full_name
  AccountId: account_id
  Age: {{ column: age, type: number }}
  Active: {{ column: is_active, type: boolean }}
  Location: {{ column: cities, type: string, list: true }}
  Tags: {{ column: tags, type: string, split: "," }}
"#
    )
}

pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    pub fn state_url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("state.db").display())
    }

    pub async fn store(&self) -> Box<dyn StateStore> {
        state::open(&self.state_url(), false).await.expect("state opens")
    }
}

pub fn env(pairs: &[(&str, &str)]) -> OverlayEnv {
    OverlayEnv(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>())
}

pub fn load_sync(mapping: &Path, pairs: &[(&str, &str)]) -> SyncJob {
    let mapping = ebb::spec::load(mapping, &env(pairs)).unwrap_or_else(|e| panic!("mapping loads: {e}"));
    SyncJob::from_mapping(mapping).expect("sync builds")
}

pub async fn run(sync: &SyncJob, store: &dyn StateStore, full: bool) -> RunReport {
    let options = RunOptions {
        full,
        ..RunOptions::default()
    };
    sync::run(sync, store, &options).await.expect("run is recorded")
}

pub async fn run_ok(sync: &SyncJob, store: &dyn StateStore) -> RunReport {
    let report = run(sync, store, false).await;
    assert_eq!(report.status, RunStatus::Completed, "{report:?}");
    assert_index_cached(store, sync.name()).await;
    report
}

/// After a run that committed, the cached index is current and says exactly what the
/// records table says.
pub async fn assert_index_cached(store: &dyn StateStore, name: &str) {
    let loaded = store.load(name).await.expect("load");
    let records = store.records(name).await.expect("records");
    if records.is_empty() {
        return;
    }
    assert!(loaded.cached, "the run left its index cached and current");
    assert_eq!(
        loaded.index,
        ebb::state::RecordIndex::from_records(records),
        "the cache matches the table"
    );
}

/// Runs the `ebb` binary in `dir` with extra environment variables.
pub fn ebb(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ebb"));
    cmd.current_dir(dir).args(args).env_remove("EBB_STATE").env_remove("EBB_LOG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("ebb runs")
}

pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// PostgreSQL for tests: DATABASE_URL, or the local server's `test` database.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A PostgreSQL schema that belongs to one test and is dropped when this guard is, even if the test fails.
pub struct TempSchema {
    pub name: String,
}

impl TempSchema {
    pub fn new(prefix: &str) -> TempSchema {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        TempSchema {
            name: format!("{prefix}_{}_{n}_{nanos:08x}", std::process::id()),
        }
    }

    /// A state URL that keeps ebb's tables in this schema.
    pub fn state_url(&self) -> String {
        let base = database_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}schema={}", self.name)
    }
}

impl Drop for TempSchema {
    fn drop(&mut self) {
        admin_exec_blocking(format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
    }
}

/// Runs one statement at DATABASE_URL from a thread and a runtime of its own, ignoring failure:
/// for cleanup in `Drop`, which may run inside a runtime, even when a test has failed.
pub fn admin_exec_blocking(sql: String) {
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async {
            if let Ok(pool) = sqlx::PgPool::connect(&database_url()).await {
                let _ = sqlx::query(&sql).execute(&pool).await;
            }
        });
    })
    .join();
}

/// The ids a state store holds for a sync.
pub async fn stored_ids(store: &dyn StateStore, sync: &str) -> BTreeSet<String> {
    store.records(sync).await.expect("records").into_iter().map(|(id, _)| id).collect()
}

/// The ids the stand-in holds for an object (`users` or `accounts`).
pub fn held_ids(si: &StandIn, object: &str) -> BTreeSet<String> {
    si.records(object).into_iter().map(|r| r.id).collect()
}

/// A pool on DATABASE_URL, for setting tests up and looking at the server.
pub async fn admin() -> sqlx::PgPool {
    sqlx::PgPool::connect(&database_url()).await.expect("PostgreSQL at DATABASE_URL")
}

/// A PostgreSQL database of one test's own, dropped with this guard: for tests that must end
/// every session of their state database without touching other tests' connections.
pub struct TempDatabase {
    pub name: String,
}

impl TempDatabase {
    pub async fn new(prefix: &str) -> TempDatabase {
        let name = TempSchema::new(prefix).name.clone();
        let admin = admin().await;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&admin)
            .await
            .expect("create the test database");
        admin.close().await;
        TempDatabase { name }
    }

    /// The database's URL, with `password` in it (trust authentication ignores it) so that
    /// tests can check it is masked.
    pub fn url_with_password(&self, password: &str) -> String {
        let mut url = url::Url::parse(&database_url()).expect("DATABASE_URL is a URL");
        url.set_path(&self.name);
        url.set_password(Some(password)).expect("a URL with a host takes a password");
        url.to_string()
    }

    /// Ends every session of this database but the caller's, as a failover or an administrator would.
    pub async fn terminate_sessions(&self) -> u64 {
        self.count(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()) t",
        )
        .await as u64
    }

    /// Advisory locks held in this database.
    pub async fn advisory_locks(&self) -> i64 {
        self.count(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = $1)",
        )
        .await
    }

    /// A `count(*)` about this database (`$1` is its name), from a session outside it.
    /// Clients connected to this database, the caller aside (not the server's own workers,
    /// such as autovacuum's).
    pub async fn sessions(&self) -> i64 {
        self.count(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
        )
        .await
    }

    async fn count(&self, sql: &str) -> i64 {
        let admin = admin().await;
        let n = sqlx::query_scalar(sql).bind(&self.name).fetch_one(&admin).await.expect(sql);
        admin.close().await;
        n
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        admin_exec_blocking(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name));
    }
}

/// A PostgreSQL schema of one test's own, created empty and dropped with the test. `exec` runs
/// SQL in which `{s}` stands for the schema's quoted name.
pub struct PgSchema {
    pub name: String,
    pub pool: sqlx::PgPool,
    _temp: TempSchema,
}

impl PgSchema {
    pub async fn new(prefix: &str) -> PgSchema {
        let temp = TempSchema::new(prefix);
        let pool = sqlx::PgPool::connect(&database_url()).await.expect("PostgreSQL at DATABASE_URL");
        let schema = PgSchema {
            name: temp.name.clone(),
            pool,
            _temp: temp,
        };
        schema.exec("CREATE SCHEMA {s}").await;
        schema
    }

    pub async fn exec(&self, sql: &str) {
        let sql = sql.replace("{s}", &format!("\"{}\"", self.name));
        sqlx::raw_sql(&sql)
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Writes the benchmark generator's snapshots A and B of `rows` rows into `ws`, and returns
/// their folder and the truth file.
pub fn generate(ws: &Workspace, rows: u64) -> (PathBuf, serde_json::Value) {
    generate_into(ws, rows, None)
}

/// [`generate`], also loading both snapshots into PostgreSQL as `{schema}.users_a` and `users_b`.
pub fn generate_into(ws: &Workspace, rows: u64, postgres_schema: Option<&str>) -> (PathBuf, serde_json::Value) {
    let data = ws.path().join("data");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ebb-bench"));
    command
        .args(["generate", "--rows", &rows.to_string(), "--seed", "7", "--out"])
        .arg(&data);
    if let Some(schema) = postgres_schema {
        command.args(["--postgres", &database_url(), "--schema", schema]);
    }
    let out = command.output().expect("ebb-bench runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let truth = serde_json::from_slice(&std::fs::read(data.join("truth.json")).expect("truth file")).expect("truth is JSON");
    (data, truth)
}

/// What a row becomes: what it is sent with, or words its rejection holds.
pub enum Fate {
    Maps(serde_json::Value),
    Rejects(&'static str),
}

/// Each row's fate, by id, as the test wants it: `got` holds per id what was sent, or the
/// rejection's reason. Rows `got` has beyond `want` are left to the caller.
pub fn check_fates(got: &std::collections::BTreeMap<String, Result<serde_json::Value, String>>, want: &[(&str, Fate)]) {
    for (id, fate) in want {
        let seen = got.get(*id).unwrap_or_else(|| panic!("row {id} is in the preview: {got:#?}"));
        match (fate, seen) {
            (Fate::Maps(sent_as), Ok(sent)) => assert_eq!(sent, sent_as, "row {id}"),
            (Fate::Rejects(words), Err(reason)) => assert!(reason.contains(words), "row {id}: {reason:?} should say {words:?}"),
            (Fate::Maps(_), Err(reason)) => panic!("row {id} should map, but: {reason}"),
            (Fate::Rejects(words), Ok(sent)) => panic!("row {id} should be rejected for {words:?}, but maps to {sent}"),
        }
    }
}

/// The backend pid of the session that holds a sync's run lock in the state schema `schema`.
pub async fn lock_holder_pid(admin: &sqlx::PgPool, schema: &str, sync: &str) -> i32 {
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
         AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)",
    )
    .bind(format!("ebb:{schema}:{sync}"))
    .fetch_one(admin)
    .await
    .expect("the lock is held by a session")
}
