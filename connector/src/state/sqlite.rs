//! The SQLite state store, the default (`sqlite://.ebb/state.db`).

use std::collections::HashSet;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::ConnectOptions;
use sqlx::{Pool, SqlitePool};

use super::backend::{open_commit, Backend, CLAIM_SLOT, ON_RECORD_CONFLICT, ROWS_PER_INSERT};
use super::lock::{Held, LockWatch};
use super::{now_secs, Commit, LockCause, OpenCause, RunLock, StateError};

pub struct SqliteStore {
    pool: SqlitePool,
    /// Where per-sync lock files live; `None` for an in-memory store.
    lock_dir: Option<PathBuf>,
    /// Locks of an in-memory store, which no other process can see anyway.
    memory_locks: Arc<Mutex<HashSet<String>>>,
}

/// An in-memory store's lock: removes its name when dropped.
struct MemoryLock {
    set: Arc<Mutex<HashSet<String>>>,
    sync: String,
}

impl Drop for MemoryLock {
    fn drop(&mut self) {
        crate::panic::lock(&self.set).remove(&self.sync);
    }
}

#[async_trait::async_trait]
impl Held for MemoryLock {
    async fn release(self: Box<Self>) {}
}

/// A sync's lock file, `flock`ed: the kernel releases it when the file is closed or the process dies.
struct FileLock {
    _file: File,
}

#[async_trait::async_trait]
impl Held for FileLock {
    async fn release(self: Box<Self>) {}
}

fn path_of(url: &str) -> &str {
    url.trim_start_matches("sqlite://").trim_start_matches("sqlite:")
}

impl SqliteStore {
    pub async fn open(url: &str, read_only: bool) -> Result<SqliteStore, StateError> {
        let path = path_of(url);
        let in_memory = path == ":memory:" || path.is_empty();
        let open_err = |e: OpenCause| StateError::Open {
            url: url.to_string(),
            source: e,
        };
        // A preview of a sync that never ran has no state file; it reads an empty store.
        let effective = if read_only && !in_memory && !Path::new(path).exists() {
            ":memory:"
        } else {
            path
        };
        if !in_memory && effective != ":memory:" {
            private_file(Path::new(effective)).map_err(|e| open_err(e.into()))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite:{effective}"))
            .map_err(|e| open_err(e.into()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL never corrupts the file; a power cut may undo the last commits,
            // which re-sends those records next run: allowed, unlike marking unsent ones as sent.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            // Loading a big index can take a second; that is a debug line, not a warning.
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        // One connection for :memory: so every query sees the same database.
        let max = if effective == ":memory:" { 1 } else { 4 };
        let lock_dir = (effective != ":memory:").then(|| PathBuf::from(format!("{effective}-locks")));
        let migrating = match &lock_dir {
            Some(dir) => Some(setup_lock(dir).await.map_err(|e| open_err(e.into()))?),
            None => None,
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(options)
            .await
            .map_err(|e| open_err(e.into()))?;
        sqlx::migrate!("connector/migrations/sqlite").run(&pool).await?;
        drop(migrating);
        Ok(SqliteStore {
            pool,
            lock_dir,
            memory_locks: Arc::default(),
        })
    }
}

/// The state holds every synced identity and hash: readable by its owner only. A folder ebb
/// creates for it is 0700; the database is created 0600 (and an older one narrowed to it), and
/// SQLite gives its `-wal` and `-shm` files the database's own mode.
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent)?;
    }
    File::options().create(true).truncate(false).append(true).mode(0o600).open(path)?;
    for file in [path.to_path_buf(), suffixed(path, "-wal"), suffixed(path, "-shm")] {
        match std::fs::metadata(&file) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(meta.permissions().mode() & 0o700))?
            }
            _ => {}
        }
    }
    Ok(())
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Two processes opening a new state file at once collide: switching it to WAL needs an
/// exclusive lock that the busy timeout does not cover, and SQLite's migrator takes no lock of
/// its own, so both would create the tables. This file lock, held around setup, makes the
/// second wait, then find everything in place.
async fn setup_lock(dir: &Path) -> std::io::Result<File> {
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700).create(dir)?;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("migrate.lock"))?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file)).await?
}

#[async_trait::async_trait]
impl Backend for SqliteStore {
    type Db = Sqlite;
    const INSERTION_ORDER: &'static str = "rowid";
    const FOR_UPDATE: &'static str = "";
    const SNAPSHOT: Option<&'static str> = None;

    fn pool(&self) -> &Pool<Sqlite> {
        &self.pool
    }

    async fn commit(&self, lock: &RunLock, changes: &Commit<'_>) -> Result<i64, StateError> {
        // An flock is held for as long as the process lives, so holding the guard proves it.
        let sync = lock.sync();
        let now = now_secs();
        let mut tx = self.pool.begin().await?;
        let generation = open_commit::<Sqlite>(&mut tx, sync, changes, now).await?;
        for chunk in changes.deleted.chunks(ROWS_PER_INSERT) {
            let mut delete = sqlx::QueryBuilder::new("DELETE FROM records WHERE sync = ");
            delete.push_bind(sync).push(" AND id IN (");
            let mut ids = delete.separated(", ");
            for id in chunk {
                ids.push_bind(id);
            }
            delete.push(")");
            delete.build().execute(&mut *tx).await?;
        }
        for (n, chunk) in changes.upserted.chunks(ROWS_PER_INSERT).enumerate() {
            let mut upsert = sqlx::QueryBuilder::new("INSERT INTO records (sync, id, hash, synced_at, payload, sent_run) ");
            upsert.push_values(chunk.iter().enumerate(), |mut b, (i, (id, hash))| {
                let (payload, run) = changes.payload(n * ROWS_PER_INSERT + i);
                b.push_bind(sync)
                    .push_bind(id)
                    .push_bind(hash.to_le_bytes().to_vec())
                    .push_bind(now)
                    .push_bind(payload)
                    .push_bind(run);
            });
            upsert.push(ON_RECORD_CONFLICT);
            upsert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(generation)
    }

    async fn claim_slot(&self, lock: &RunLock, slot: i64, worker: &str) -> Result<bool, StateError> {
        // One statement under SQLite's write lock orders concurrent claimers.
        let claimed = sqlx::query(CLAIM_SLOT)
            .bind(lock.sync())
            .bind(slot)
            .bind(worker)
            .bind(now_secs())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(claimed == 1)
    }

    async fn try_lock(&self, sync: &str) -> Result<Option<RunLock>, StateError> {
        let Some(file) = self.lock_file(sync)? else {
            if !crate::panic::lock(&self.memory_locks).insert(sync.to_string()) {
                return Ok(None);
            }
            let held = MemoryLock {
                set: self.memory_locks.clone(),
                sync: sync.to_string(),
            };
            let lock = RunLock::new(sync, LockWatch::default(), held);
            return Ok(Some(self.fence(lock).await?));
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(
                self.fence(RunLock::new(sync, LockWatch::default(), FileLock { _file: file }))
                    .await?,
            )),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(StateError::Lock(self.file_cause(sync, e))),
        }
    }

    async fn lock(&self, sync: &str) -> Result<RunLock, StateError> {
        match self.lock_file(sync)? {
            Some(file) => {
                let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|locked| locked)
                    .map_err(|e| StateError::Lock(self.file_cause(sync, e)))?;
                self.fence(RunLock::new(sync, LockWatch::default(), FileLock { _file: file })).await
            }
            None => loop {
                if let Some(lock) = Backend::try_lock(self, sync).await? {
                    return Ok(lock);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            },
        }
    }
}

impl SqliteStore {
    /// Gives a lock just taken its fencing token (see [`RunLock::fence`]).
    async fn fence(&self, lock: RunLock) -> Result<RunLock, StateError> {
        let fence: i64 = sqlx::query_scalar(
            "INSERT INTO run_fences (sync, fence) VALUES (?1, ?2) ON CONFLICT (sync) DO UPDATE SET fence = max(fence + 1, excluded.fence) \
             RETURNING fence",
        )
        .bind(lock.sync())
        .bind(chrono::Utc::now().timestamp_micros())
        .fetch_one(&self.pool)
        .await?;
        Ok(lock.fenced(fence))
    }

    /// The lock file of a sync (an advisory `flock`, released by the kernel when the process dies).
    fn lock_file(&self, sync: &str) -> Result<Option<File>, StateError> {
        let Some(dir) = &self.lock_dir else { return Ok(None) };
        let cause = |path: &Path, source| {
            StateError::Lock(LockCause::File {
                path: path.display().to_string(),
                source,
            })
        };
        std::fs::create_dir_all(dir).map_err(|e| cause(dir, e))?;
        let path = dir.join(format!("{sync}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| cause(&path, e))?;
        Ok(Some(file))
    }

    fn file_cause(&self, sync: &str, source: std::io::Error) -> LockCause {
        let dir = self.lock_dir.clone().unwrap_or_default();
        LockCause::File {
            path: dir.join(format!("{sync}.lock")).display().to_string(),
            source,
        }
    }
}
