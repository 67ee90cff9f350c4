//! Sync state: per-record hashes, run history and rejections.
//!
//! The [`StateStore`] is written to only from destination acknowledgements
//! (`commit`) and run bookkeeping. It never decides what to send; `diff`
//! does, from what `load` returns.

mod backend;
mod cache;
mod cursors;
pub mod holder;
mod index;
mod load;
mod lock;
mod lookup;
pub mod pace;
pub mod postgres;
mod rejected;
mod runs;
mod sql;
pub mod sqlite;
mod suppress;
mod tracking;
mod warehouse;

use crate::column::ColumnType;
pub use cache::as_delta;
pub use cursors::StoredCursor;
pub use index::{IndexDelta, IndexEntry, RecordIndex, INDEX_FORMAT};
pub use lock::{LockLost, LockWatch, RunLock};
pub use lookup::{IndexLookup, SharedLookup};
pub use rejected::{rejected_count, rejected_now, RejectedNow, RejectedRecord};
pub use runs::{
    Pruned, RejectionStage, RunCounts, RunOrigin, RunProgress, RunRecord, RunStart, RunStatus, StoredRejection, MAX_STORED_REJECTIONS,
};
pub(crate) use runs::{RejectionRow, RunRow};
pub use suppress::{SuppressReason, Suppression};
pub use tracking::TrackedRecord;
pub(crate) use tracking::TrackedRow;
pub use warehouse::WarehouseError;

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

/// The deltas a cached index was read with (see [`IndexDelta`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CachedDeltas {
    pub count: usize,
    /// Their upserts and removals, all told.
    pub entries: usize,
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
    /// The deltas the cache stacked on its whole index to make `index`.
    pub deltas: CachedDeltas,
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
    /// Suppress the deleted ids, in the same transaction, for this reason and run: a record
    /// deleted at the destination is never sent again.
    pub suppress_deleted: Option<(SuppressReason, Option<i64>)>,
    /// The run that sent the upserts, and the payload of each (in `upserted`'s order), kept for
    /// `ebb record` and `ebb preview --explain`. `None` keeps no payload.
    pub sent: Option<Sent<'a>>,
}

/// Who sent a commit's upserts, and what each said.
#[derive(Clone, Copy, Debug)]
pub struct Sent<'a> {
    pub run: i64,
    /// One per upsert, as [`crate::payload::encode`] made it.
    pub payloads: &'a [Vec<u8>],
}

impl<'a> Commit<'a> {
    /// Upserts only, on top of what is stored.
    pub fn upserts(upserted: &'a [(String, u128)], destination: &'a str) -> Commit<'a> {
        Commit {
            upserted,
            deleted: &[],
            destination,
            replace: false,
            suppress_deleted: None,
            sent: None,
        }
    }

    /// The payload of the `i`th upsert, and the run that sent it, if the commit keeps them.
    pub(crate) fn payload(&self, i: usize) -> (Option<&'a [u8]>, Option<i64>) {
        match self.sent {
            // An empty payload is one that could not be encoded: none is kept.
            Some(sent) => (sent.payloads.get(i).filter(|p| !p.is_empty()).map(Vec::as_slice), Some(sent.run)),
            None => (None, None),
        }
    }
}

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
    /// Caches what commits `from` (exclusive) to `to` changed, on top of the cached index at
    /// counter `from`; does nothing and returns false unless the cache ends at `from` and the
    /// counter is `to`.
    async fn save_index_delta(&self, sync: &str, generations: (i64, i64), delta: &IndexDelta) -> Result<bool, StateError>;
    async fn save_schema(&self, sync: &str, schema: &[(String, ColumnType)]) -> Result<(), StateError>;
    /// Forgets a sync's hashes and schema; returns how many records were forgotten.
    async fn reset(&self, sync: &str) -> Result<u64, StateError>;
    /// Records the start of a run. Called with the sync's lock held, so any run of it still
    /// marked `running` belonged to a process that died: it is marked `interrupted`.
    async fn begin_run(&self, sync: &str, start: &RunStart) -> Result<i64, StateError>;
    async fn add_rejections(&self, run: i64, sync: &str, rejections: &[StoredRejection]) -> Result<(), StateError>;
    async fn finish_run(&self, run: i64, status: RunStatus, counts: &RunCounts, error: Option<&str>) -> Result<(), StateError>;
    /// How far a running run's sending has got, for `ebb status` in another process.
    async fn report_progress(&self, run: i64, progress: &RunProgress) -> Result<(), StateError>;
    /// The snapshot folders a run read (and skipped), when a folder rule chose them.
    async fn note_folders(&self, run: i64, folders: &crate::folders::SnapshotFolders) -> Result<(), StateError>;
    /// The fingerprint of the compiled mapping a run sends with, once it has planned.
    async fn note_mapping(&self, run: i64, fingerprint: &str) -> Result<(), StateError>;
    /// The ids of a sync's records last acknowledged in a run of another mapping than
    /// `fingerprint` (runs that recorded none are left out): their hash changes because the
    /// mapping did. None once a run of this mapping has completed since the last run of another.
    /// With `payloads`, each with its last acknowledged payload, where state keeps it.
    async fn sent_by_another_mapping(
        &self,
        sync: &str,
        fingerprint: &str,
        payloads: bool,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, StateError>;
    /// The latest runs, newest first; of one sync or of all.
    async fn runs(&self, sync: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, StateError>;
    /// The latest run of every sync that has one, in one query: what an overview shows.
    async fn latest_runs(&self) -> Result<Vec<RunRecord>, StateError>;
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
    /// Suppresses identities of a sync; returns how many were not suppressed before.
    async fn suppress(&self, sync: &str, ids: &[String], reason: SuppressReason, run: Option<i64>) -> Result<u64, StateError>;
    /// Lifts suppressions; returns how many there were.
    async fn unsuppress(&self, sync: &str, ids: &[String]) -> Result<u64, StateError>;
    /// A sync's suppression list, sorted by identity.
    async fn suppressions(&self, sync: &str) -> Result<Vec<Suppression>, StateError>;
    /// A cursor sync's watermark, if a completed run left one.
    async fn cursor(&self, sync: &str) -> Result<Option<StoredCursor>, StateError>;
    /// Moves the watermark: only after a completed run of the lock's sync. A lost lock saves
    /// nothing and says so.
    async fn save_cursor(&self, lock: &RunLock, cursor: &StoredCursor) -> Result<(), StateError>;
    /// What state holds of these records: when each was last acknowledged, by which runs, and
    /// its payload. Ids not in state are left out.
    async fn tracked(&self, sync: &str, ids: &[String]) -> Result<Vec<TrackedRecord>, StateError>;
    /// The pace every process on this store shares per destination credential, where the store
    /// is shared by hosts (PostgreSQL); `None` where each process keeps its own.
    fn shared_pace(&self) -> Option<std::sync::Arc<dyn pace::SharedPace>> {
        None
    }
}

/// Opens the store named by a URL. `read_only` opens nothing that does not exist yet:
/// a preview must not create state files.
pub async fn open(url: &str, read_only: bool) -> Result<Box<dyn StateStore>, StateError> {
    if url.starts_with("sqlite:") {
        return Ok(Box::new(sqlite::SqliteStore::open(url, read_only).await?));
    }
    if is_plain_path(url) {
        // `--state ./ebb.db`: a file, so SQLite.
        return Ok(Box::new(sqlite::SqliteStore::open(&format!("sqlite://{url}"), read_only).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // A shared store may be written by others at any time; read-only callers simply don't write.
        return Ok(Box::new(postgres::PostgresStore::open(url).await?));
    }
    Err(StateError::Unsupported(redact_url(url)))
}

/// A path rather than a URL: no `scheme://` and no `scheme:` that a URL parser takes.
fn is_plain_path(url: &str) -> bool {
    !url.is_empty() && !url.contains("://") && url::Url::parse(url).is_err_and(|e| e == url::ParseError::RelativeUrlWithoutBase)
}

/// A URL with any password replaced (in its user part or as a `password=` parameter), for
/// messages. One that does not parse is not printed at all: where its password is cannot be
/// told. A plain file path is printed as it is.
pub fn redact_url(url: &str) -> String {
    if is_plain_path(url) {
        return url.to_string();
    }
    let Ok(mut u) = url::Url::parse(url) else {
        return "<a URL that does not parse, not shown: it may hold a password>".to_string();
    };
    let in_query = u.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case("password"));
    if u.password().is_none() && !in_query {
        return url.to_string();
    }
    if u.password().is_some() {
        let _ = u.set_password(Some("****"));
    }
    if in_query {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let masked = if k.eq_ignore_ascii_case("password") {
                    "****".to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), masked)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

pub(crate) fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod redact_tests {
    use super::redact_url;

    #[test]
    fn a_password_is_masked_wherever_it_is_and_an_unparsable_url_is_not_shown() {
        assert_eq!(
            redact_url("postgres://ebb:hunter2@db:5432/x?sslmode=require"),
            "postgres://ebb:****@db:5432/x?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://ebb@db/x?password=hunter2&sslmode=require"),
            "postgres://ebb@db/x?password=****&sslmode=require"
        );
        for broken in ["postgres://ebb:hunter2@db:99999/x", "postgres://ebb:hunter2@[db/x"] {
            let shown = redact_url(broken);
            assert!(!shown.contains("hunter2") && shown.contains("does not parse"), "{shown}");
        }
        assert_eq!(redact_url("./state.db"), "./state.db");
        assert_eq!(redact_url("sqlite://state.db"), "sqlite://state.db");
    }
}
