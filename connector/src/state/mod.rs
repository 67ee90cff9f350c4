//! Sync state: per-record hashes, run history and rejections.
//!
//! The [`StateStore`] is written to only from destination acknowledgements
//! (`commit`) and run bookkeeping. It never decides what to send; `diff`
//! does, from what `load` returns.

pub mod holder;
mod lock;
pub mod postgres;
mod sql;
pub mod sqlite;

use serde::Serialize;

use crate::column::ColumnType;
pub use lock::{LockLost, LockWatch, RunLock};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: OpenCause,
    },
    #[error("state store: {0}")]
    Query(#[from] sqlx::Error),
    #[error("state store: migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("state store: cannot encode the schema: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("state store: {0}")]
    Damaged(String),
    #[error("cannot take the run lock: {0}")]
    Lock(#[source] LockCause),
    #[error(transparent)]
    LockLost(#[from] LockLost),
    #[error("unsupported state URL `{0}`: use sqlite://PATH or postgres://USER@HOST/DB[?schema=NAME]")]
    Unsupported(String),
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenCause {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The URL itself is wrong (a bad `schema` parameter, say).
    #[error("{0}")]
    Url(String),
}

/// Why a run lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockCause {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("this run lock was taken on another state store")]
    OtherStore,
}

/// What the last runs left for one sync.
#[derive(Debug, Default)]
pub struct StoredState {
    pub index: RecordIndex,
    /// The mapped columns and their types as of the last completed run.
    pub schema: Option<Vec<(String, ColumnType)>>,
    /// The sync's commit counter when `index` was read, if `index` mirrors the
    /// `records` table exactly (it does not when the stored hashes are of
    /// another version). A run passes it back to [`StateStore::save_index`].
    pub generation: Option<i64>,
    /// Whether `index` came from the cache rather than being rebuilt from `records`.
    pub cached: bool,
    /// The destination the records were acknowledged by, as [`Commit::destination`] gave it;
    /// `None` if no commit has recorded one (a new sync, or state older than the fingerprint).
    pub destination: Option<String>,
    /// The stored records cannot be used (another hash version, or another destination): the
    /// run sends everything, and its first commit replaces them.
    pub replace: bool,
}

impl StoredState {
    /// State that cannot be used for this run: it sends everything, and its first commit
    /// replaces what is stored (see [`Commit::replace`]).
    pub fn set_aside(self) -> StoredState {
        StoredState {
            schema: self.schema,
            destination: self.destination,
            replace: true,
            ..StoredState::default()
        }
    }
}

/// One atomic commit of changes the destination acknowledged.
#[derive(Clone, Copy, Debug)]
pub struct Commit<'a> {
    /// Records written, with the payload hash they were written with.
    pub upserted: &'a [(String, u128)],
    /// Ids of records deleted.
    pub deleted: &'a [String],
    /// Who acknowledged them: the destination's fingerprint (type, URL, object; never a
    /// key), stored with the sync so that a run against another destination can tell.
    pub destination: &'a str,
    /// Forget every stored record of the sync first: they were for another destination or
    /// hash version, and this run sends everything.
    pub replace: bool,
}

impl<'a> Commit<'a> {
    /// Upserts only, on top of what is stored.
    pub fn upserts(upserted: &'a [(String, u128)], destination: &'a str) -> Commit<'a> {
        Commit {
            upserted,
            deleted: &[],
            destination,
            replace: false,
        }
    }
}

/// One record in the index: the [`id_key`](crate::hash::id_key) of its id and its payload hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexEntry {
    pub key: u128,
    pub hash: u128,
}

/// A sync's record state in compact form, sorted by key: 32 bytes a record,
/// so a diff is a merge of two sorted arrays rather than a map of strings.
///
/// The `records` table stays the truth and is what commits write; the index
/// is derived from it and cached beside it, tagged with the commit counter it
/// matches. Any commit the index does not include makes the tag stale, and a
/// stale index is rebuilt from the table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordIndex {
    entries: Vec<IndexEntry>,
}

/// The layout of a cached index; another value is rebuilt from `records`.
pub const INDEX_FORMAT: i64 = 1;
const ENTRY_BYTES: usize = 32;

impl RecordIndex {
    /// Sorts by key; of entries with the same key the last one wins.
    pub fn from_entries(mut entries: Vec<IndexEntry>) -> RecordIndex {
        // Stable, so "last wins" holds after the dedup below keeps the last of each run.
        entries.sort_by_key(|e| e.key);
        let mut out: Vec<IndexEntry> = Vec::with_capacity(entries.len());
        for e in entries {
            match out.last_mut() {
                Some(last) if last.key == e.key => *last = e,
                _ => out.push(e),
            }
        }
        RecordIndex { entries: out }
    }

    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: u128) -> Option<u128> {
        self.entries
            .binary_search_by_key(&key, |e| e.key)
            .ok()
            .map(|i| self.entries[i].hash)
    }

    /// This index with `updates` applied, as the `records` table has them after their commits.
    pub fn merged(&self, updates: Vec<IndexEntry>) -> RecordIndex {
        let updates = RecordIndex::from_entries(updates).entries;
        let mut out = Vec::with_capacity(self.entries.len() + updates.len());
        let (old, mut i) = (&self.entries, 0);
        for u in updates {
            while i < old.len() && old[i].key < u.key {
                out.push(old[i]);
                i += 1;
            }
            if i < old.len() && old[i].key == u.key {
                i += 1;
            }
            out.push(u);
        }
        out.extend_from_slice(&old[i..]);
        RecordIndex { entries: out }
    }

    /// Little-endian key then hash, per entry, in key order.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.key.to_le_bytes());
            out.extend_from_slice(&e.hash.to_le_bytes());
        }
        out
    }

    /// `None` for bytes that are not a whole, sorted index: the cache is then rebuilt.
    pub fn from_bytes(bytes: &[u8]) -> Option<RecordIndex> {
        if !bytes.len().is_multiple_of(ENTRY_BYTES) {
            return None;
        }
        let entries: Vec<IndexEntry> = bytes
            .chunks_exact(ENTRY_BYTES)
            .map(|c| {
                let (k, h) = c.split_at(16);
                IndexEntry {
                    key: u128::from_le_bytes(k.try_into().unwrap_or_default()),
                    hash: u128::from_le_bytes(h.try_into().unwrap_or_default()),
                }
            })
            .collect();
        entries.windows(2).all(|w| w[0].key < w[1].key).then_some(RecordIndex { entries })
    }

    /// Builds the index from `records` rows.
    pub fn from_records(rows: impl IntoIterator<Item = (String, u128)>) -> RecordIndex {
        RecordIndex::from_entries(
            rows.into_iter()
                .map(|(id, hash)| IndexEntry {
                    key: crate::hash::id_key(&id),
                    hash,
                })
                .collect(),
        )
    }
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

    /// `None` for a status this version does not know: never taken for `running`.
    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "running" => RunStatus::Running,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "interrupted" => RunStatus::Interrupted,
            _ => return None,
        })
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
    pub origin: RunOrigin,
    /// The schedule slot (Unix seconds) a scheduled run was for.
    pub scheduled_for: Option<i64>,
    /// The worker that ran it, as `host:pid`.
    pub worker: Option<String>,
}

/// What started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOrigin {
    /// `ebb sync`.
    Cli,
    /// A worker, on the sync's schedule.
    Schedule,
    /// A worker, on `POST /syncs/NAME/trigger`.
    Trigger,
}

impl RunOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOrigin::Cli => "cli",
            RunOrigin::Schedule => "schedule",
            RunOrigin::Trigger => "trigger",
        }
    }

    pub fn parse(s: &str) -> Option<RunOrigin> {
        Some(match s {
            "cli" => RunOrigin::Cli,
            "schedule" => RunOrigin::Schedule,
            "trigger" => RunOrigin::Trigger,
            _ => return None,
        })
    }
}

/// How a run came about, recorded with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunStart {
    /// Sends every record whatever state says.
    pub full: bool,
    pub origin: RunOrigin,
    pub scheduled_for: Option<i64>,
    pub worker: Option<String>,
}

impl RunStart {
    /// A run started by hand, with `ebb sync`.
    pub fn cli(full: bool) -> RunStart {
        RunStart {
            full,
            origin: RunOrigin::Cli,
            scheduled_for: None,
            worker: None,
        }
    }
}

/// What one retention pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: u64,
    pub rejections: u64,
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
    /// The record index and schema of a sync; empty if it never ran or its hashes are of another
    /// version. The index comes from the cache when it is current, else from `records`.
    async fn load(&self, sync: &str) -> Result<StoredState, StateError>;
    /// Every stored record id and hash, sorted by id: the table the index derives from.
    async fn records(&self, sync: &str) -> Result<Vec<(String, u128)>, StateError>;
    /// Records, atomically, the upserts and deletes of the lock's sync that the destination
    /// acknowledged, and returns the sync's commit counter after this commit. Commits only while
    /// `lock` is held: a lost lock commits nothing and says so (`StateError::LockLost`).
    async fn commit(&self, lock: &RunLock, changes: &Commit<'_>) -> Result<i64, StateError>;
    /// Caches `index` as the state at commit counter `generation`; does nothing and returns
    /// false if the counter has moved on since.
    async fn save_index(&self, sync: &str, generation: i64, index: &RecordIndex) -> Result<bool, StateError>;
    async fn save_schema(&self, sync: &str, schema: &[(String, ColumnType)]) -> Result<(), StateError>;
    /// Forgets a sync's hashes and schema; returns how many records were forgotten.
    async fn reset(&self, sync: &str) -> Result<u64, StateError>;
    /// Records the start of a run. Called with the sync's lock held, so any run of it still
    /// marked `running` belonged to a process that died: it is marked `interrupted`.
    async fn begin_run(&self, sync: &str, start: &RunStart) -> Result<i64, StateError>;
    async fn add_rejections(&self, run: i64, sync: &str, rejections: &[StoredRejection]) -> Result<(), StateError>;
    async fn finish_run(&self, run: i64, status: RunStatus, counts: &RunCounts, error: Option<&str>) -> Result<(), StateError>;
    /// The latest runs, newest first; of one sync or of all.
    async fn runs(&self, sync: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, StateError>;
    async fn rejections(&self, run: i64, limit: usize) -> Result<Vec<StoredRejection>, StateError>;
    /// Names of every sync that has runs or state.
    async fn syncs(&self) -> Result<Vec<String>, StateError>;
    /// Claims schedule slot `slot` (Unix seconds) of the lock's sync for `worker`; true if no one
    /// had claimed it or a later slot. Workers sharing a store run a slot only after claiming it,
    /// and claim only while holding the sync's lock.
    async fn claim_slot(&self, lock: &RunLock, slot: i64, worker: &str) -> Result<bool, StateError>;
    /// Deletes finished runs that started before `before` (Unix seconds), and their rejections;
    /// the latest run of each sync is always kept.
    async fn prune(&self, before: i64) -> Result<Pruned, StateError>;
    /// One round trip: the store is reachable and answers.
    async fn ping(&self) -> Result<(), StateError>;
    /// Takes the sync's run lock if it is free. The lock is held until the guard is dropped or
    /// released, and is released by the operating system or the database if the process dies.
    async fn try_lock(&self, sync: &str) -> Result<Option<RunLock>, StateError>;
    /// Waits for the sync's run lock.
    async fn lock(&self, sync: &str) -> Result<RunLock, StateError>;
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
    origin: String,
    scheduled_for: Option<i64>,
    worker: Option<String>,
}

impl TryFrom<RunRow> for RunRecord {
    type Error = StateError;

    /// A run whose status or origin this version does not know is an error, not a guess.
    fn try_from(r: RunRow) -> Result<RunRecord, StateError> {
        let n = |v: i64| v.max(0) as u64;
        let status = RunStatus::parse(&r.status)
            .ok_or_else(|| StateError::Damaged(format!("run {} has an unknown status {}", r.id, crate::quote::quote(&r.status))))?;
        let origin = RunOrigin::parse(&r.origin)
            .ok_or_else(|| StateError::Damaged(format!("run {} has an unknown origin {}", r.id, crate::quote::quote(&r.origin))))?;
        Ok(RunRecord {
            id: r.id,
            sync: r.sync,
            started_at: r.started_at,
            ended_at: r.ended_at,
            status,
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
            origin,
            scheduled_for: r.scheduled_for,
            worker: r.worker,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn e(key: u128, hash: u128) -> IndexEntry {
        IndexEntry { key, hash }
    }

    #[test]
    fn index_merge_upserts_and_keeps_order() {
        let base = RecordIndex::from_entries(vec![e(5, 1), e(1, 1), e(9, 1)]);
        assert_eq!(base.entries(), &[e(1, 1), e(5, 1), e(9, 1)]);
        let merged = base.merged(vec![e(9, 2), e(0, 2), e(5, 2), e(7, 2), e(7, 3)]);
        assert_eq!(
            merged.entries(),
            &[e(0, 2), e(1, 1), e(5, 2), e(7, 3), e(9, 2)],
            "the last update of a key wins"
        );
        assert_eq!((merged.get(7), merged.get(8)), (Some(3), None));
        assert_eq!(RecordIndex::default().merged(vec![e(2, 2)]).entries(), &[e(2, 2)]);
    }

    #[test]
    fn index_bytes_round_trip_and_refuse_damage() {
        let index = RecordIndex::from_entries(vec![e(u128::MAX, 7), e(3, u128::MAX), e(0, 0)]);
        let bytes = index.to_bytes();
        assert_eq!(bytes.len(), 3 * 32);
        assert_eq!(RecordIndex::from_bytes(&bytes), Some(index));
        assert_eq!(RecordIndex::from_bytes(&bytes[..40]), None, "a torn cache is rebuilt");
        let mut unsorted = bytes[32..64].to_vec();
        unsorted.extend_from_slice(&bytes[..32]);
        assert_eq!(RecordIndex::from_bytes(&unsorted), None);
        assert_eq!(RecordIndex::from_bytes(&[]), Some(RecordIndex::default()));
    }
}
