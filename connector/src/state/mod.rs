//! Sync state: per-record hashes, run history and rejections.
//!
//! The [`StateStore`] is written to only from destination acknowledgements
//! (`commit`) and run bookkeeping. It never decides what to send; `diff`
//! does, from what `load` returns.

pub mod postgres;
pub mod sqlite;

use std::collections::HashMap;

use serde::Serialize;

use crate::source::ColumnType;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store {url}: {message}")]
    Open { url: String, message: String },
    #[error("state store: {0}")]
    Query(String),
    #[error("cannot take the run lock: {0}")]
    Lock(String),
    #[error("unsupported state URL `{0}`: use sqlite://PATH or postgres://USER@HOST/DB[?schema=NAME]")]
    Unsupported(String),
}

impl From<sqlx::Error> for StateError {
    fn from(e: sqlx::Error) -> Self {
        StateError::Query(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StateError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StateError::Query(format!("migration failed: {e}"))
    }
}

/// What the last runs left for one sync.
#[derive(Debug, Default)]
pub struct StoredState {
    pub hashes: HashMap<String, u128>,
    /// The mapped columns and their types as of the last completed run.
    pub schema: Option<Vec<(String, ColumnType)>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> RunStatus {
        match s {
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "interrupted" => RunStatus::Interrupted,
            _ => RunStatus::Running,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    pub source: u64,
    pub invalid: u64,
    pub new: u64,
    pub changed: u64,
    pub unchanged: u64,
    /// In state but no longer in the snapshot; nothing is sent for them.
    pub gone: u64,
    pub sent: u64,
    pub rejected: u64,
    pub failed: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub sync: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub status: RunStatus,
    pub full_resync: bool,
    pub counts: RunCounts,
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionStage {
    /// The mapping refused the row.
    Mapping,
    /// The destination refused the record.
    Destination,
}

impl RejectionStage {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionStage::Mapping => "mapping",
            RejectionStage::Destination => "destination",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredRejection {
    pub stage: RejectionStage,
    pub record_id: Option<String>,
    pub position: String,
    pub reason: String,
}

/// How many rejections one run keeps; the count is always exact.
pub const MAX_STORED_REJECTIONS: usize = 1000;

#[async_trait::async_trait]
pub trait StateStore: Send + Sync {
    /// Hashes and schema of a sync; empty if it never ran or its hashes are of another version.
    async fn load(&self, sync: &str) -> Result<StoredState, StateError>;
    /// Records that `acked` records were acknowledged with these payload hashes, atomically.
    async fn commit(&self, sync: &str, acked: &[(String, u128)]) -> Result<(), StateError>;
    async fn save_schema(&self, sync: &str, schema: &[(String, ColumnType)]) -> Result<(), StateError>;
    /// Forgets a sync's hashes and schema; returns how many records were forgotten.
    async fn reset(&self, sync: &str) -> Result<u64, StateError>;
    async fn begin_run(&self, sync: &str, full: bool) -> Result<i64, StateError>;
    async fn add_rejections(&self, run: i64, sync: &str, rejections: &[StoredRejection]) -> Result<(), StateError>;
    async fn finish_run(&self, run: i64, status: RunStatus, counts: &RunCounts, error: Option<&str>) -> Result<(), StateError>;
    /// The latest runs, newest first; of one sync or of all.
    async fn runs(&self, sync: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, StateError>;
    async fn rejections(&self, run: i64, limit: usize) -> Result<Vec<StoredRejection>, StateError>;
    /// Names of every sync that has runs or state.
    async fn syncs(&self) -> Result<Vec<String>, StateError>;
    /// Takes the sync's run lock if it is free. The lock is held until the guard is dropped,
    /// and is released by the operating system or the database if the process dies.
    async fn try_lock(&self, sync: &str) -> Result<Option<RunLock>, StateError>;
    /// Waits for the sync's run lock.
    async fn lock(&self, sync: &str) -> Result<RunLock, StateError>;
}

/// Proof that this process is the only one running a sync; dropping it releases the lock.
pub struct RunLock {
    _held: Box<dyn Send + Sync>,
}

impl RunLock {
    pub(crate) fn new(held: impl Send + Sync + 'static) -> RunLock {
        RunLock { _held: Box::new(held) }
    }
}

/// Opens the store named by a URL. `read_only` opens nothing that does not exist yet:
/// a preview must not create state files.
pub async fn open(url: &str, read_only: bool) -> Result<Box<dyn StateStore>, StateError> {
    if url.starts_with("sqlite:") {
        return Ok(Box::new(sqlite::SqliteStore::open(url, read_only).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // A shared store may be written by others at any time; read-only callers simply don't write.
        return Ok(Box::new(postgres::PostgresStore::open(url).await?));
    }
    Err(StateError::Unsupported(redact_url(url)))
}

/// A URL with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

pub(crate) fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A `runs` row as both backends store it; the SQL column names are the field names.
#[derive(sqlx::FromRow)]
pub(crate) struct RunRow {
    id: i64,
    sync: String,
    started_at: i64,
    ended_at: Option<i64>,
    status: String,
    full_resync: bool,
    source_rows: i64,
    invalid: i64,
    new: i64,
    changed: i64,
    unchanged: i64,
    gone: i64,
    sent: i64,
    rejected: i64,
    failed: i64,
    error: Option<String>,
}

/// The columns `RunRow` reads, for both backends' SELECTs.
pub(crate) const RUN_COLUMNS: &str =
    "id, sync, started_at, ended_at, status, full_resync, source_rows, invalid, new, changed, unchanged, gone, sent, rejected, failed, error";

impl From<RunRow> for RunRecord {
    fn from(r: RunRow) -> RunRecord {
        let n = |v: i64| v.max(0) as u64;
        RunRecord {
            id: r.id,
            sync: r.sync,
            started_at: r.started_at,
            ended_at: r.ended_at,
            status: RunStatus::parse(&r.status),
            full_resync: r.full_resync,
            counts: RunCounts {
                source: n(r.source_rows),
                invalid: n(r.invalid),
                new: n(r.new),
                changed: n(r.changed),
                unchanged: n(r.unchanged),
                gone: n(r.gone),
                sent: n(r.sent),
                rejected: n(r.rejected),
                failed: n(r.failed),
            },
            error: r.error,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RejectionRow {
    stage: String,
    record_id: Option<String>,
    position: String,
    reason: String,
}

impl From<RejectionRow> for StoredRejection {
    fn from(r: RejectionRow) -> StoredRejection {
        let stage = if r.stage == RejectionStage::Destination.as_str() {
            RejectionStage::Destination
        } else {
            RejectionStage::Mapping
        };
        StoredRejection {
            stage,
            record_id: r.record_id,
            position: r.position,
            reason: r.reason,
        }
    }
}
