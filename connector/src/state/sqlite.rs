//! The SQLite state store, the default (`sqlite://.ebb/state.db`).

use std::collections::HashSet;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::lock::{Held, LockWatch};
use super::{close_orphans, prunable_runs, Pruned, RejectionRow, RunRow, RunStart, RUN_COLUMNS};
use super::{
    now_secs, RecordIndex, RunCounts, RunLock, RunRecord, RunStatus, StateError, StateStore, StoredRejection, StoredState, INDEX_FORMAT,
    MAX_STORED_REJECTIONS,
};
use crate::hash::HASH_VERSION;
use crate::source::ColumnType;

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
        self.set.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.sync);
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

/// Commits go in chunks so one statement stays under SQLite's variable limit.
const COMMIT_CHUNK: usize = 300;

fn path_of(url: &str) -> &str {
    url.trim_start_matches("sqlite://").trim_start_matches("sqlite:")
}

impl SqliteStore {
    pub async fn open(url: &str, read_only: bool) -> Result<SqliteStore, StateError> {
        let path = path_of(url);
        let in_memory = path == ":memory:" || path.is_empty();
        let open_err = |e: &dyn std::fmt::Display| StateError::Open {
            url: url.to_string(),
            message: e.to_string(),
        };
        // A preview of a sync that never ran has no state file; it reads an empty store.
        let effective = if read_only && !in_memory && !Path::new(path).exists() {
            ":memory:"
        } else {
            path
        };
        if !in_memory && effective != ":memory:" {
            if let Some(parent) = Path::new(effective).parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| open_err(&e))?;
            }
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite:{effective}"))
            .map_err(|e| open_err(&e))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL never corrupts the file; a power cut may undo the last commits,
            // which re-sends those records next run: allowed, unlike marking unsent ones as sent.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        // One connection for :memory: so every query sees the same database.
        let max = if effective == ":memory:" { 1 } else { 4 };
        let lock_dir = (effective != ":memory:").then(|| PathBuf::from(format!("{effective}-locks")));
        let migrating = match &lock_dir {
            Some(dir) => Some(setup_lock(dir).await.map_err(|e| open_err(&e))?),
            None => None,
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(options)
            .await
            .map_err(|e| open_err(&e))?;
        sqlx::migrate!("connector/migrations/sqlite").run(&pool).await?;
        drop(migrating);
        Ok(SqliteStore {
            pool,
            lock_dir,
            memory_locks: Arc::default(),
        })
    }
}

/// Two processes opening a new state file at once collide: switching it to WAL needs an
/// exclusive lock that the busy timeout does not cover, and SQLite's migrator takes no lock of
/// its own, so both would create the tables. This file lock, held around setup, makes the
/// second wait, then find everything in place.
async fn setup_lock(dir: &Path) -> std::io::Result<File> {
    std::fs::create_dir_all(dir)?;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("migrate.lock"))?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file)).await?
}

fn hash_from_blob(blob: &[u8]) -> Option<u128> {
    Some(u128::from_le_bytes(blob.try_into().ok()?))
}

/// Streamed, not fetched whole: at a million records the rows alone would double peak memory.
async fn records_of(conn: &mut sqlx::SqliteConnection, sync: &str) -> Result<Vec<(String, u128)>, StateError> {
    let mut rows = sqlx::query("SELECT id, hash FROM records WHERE sync = ? ORDER BY id")
        .bind(sync)
        .fetch(conn);
    let mut out = Vec::new();
    while let Some(row) = rows.try_next().await? {
        if let Some(h) = hash_from_blob(row.get::<&[u8], _>("hash")) {
            out.push((row.get::<String, _>("id"), h));
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl StateStore for SqliteStore {
    async fn load(&self, sync: &str) -> Result<StoredState, StateError> {
        // One read transaction, so the counter, the cache and the table agree.
        let mut tx = self.pool.begin().await?;
        let meta = sqlx::query("SELECT hash_version, schema_json, generation FROM syncs WHERE name = ?")
            .bind(sync)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(meta) = meta else {
            return Ok(StoredState {
                generation: Some(0),
                ..StoredState::default()
            });
        };
        let schema: Option<Vec<(String, ColumnType)>> = meta
            .get::<Option<String>, _>("schema_json")
            .and_then(|s| serde_json::from_str(&s).ok());
        if meta.get::<i64, _>("hash_version") != HASH_VERSION {
            return Ok(StoredState {
                schema,
                ..StoredState::default()
            });
        }
        let generation: i64 = meta.get("generation");
        let cached = sqlx::query("SELECT entries FROM record_index WHERE sync = ? AND generation = ? AND format = ?")
            .bind(sync)
            .bind(generation)
            .bind(INDEX_FORMAT)
            .fetch_optional(&mut *tx)
            .await?;
        let (index, cached) = match cached.and_then(|row| RecordIndex::from_bytes(row.get::<&[u8], _>("entries"))) {
            Some(index) => (index, true),
            None => {
                tracing::debug!(sync, "record index cache is stale; rebuilding it from the records table");
                (RecordIndex::from_records(records_of(&mut tx, sync).await?), false)
            }
        };
        tx.commit().await?;
        Ok(StoredState {
            index,
            schema,
            generation: Some(generation),
            cached,
        })
    }

    async fn records(&self, sync: &str) -> Result<Vec<(String, u128)>, StateError> {
        let mut conn = self.pool.acquire().await?;
        records_of(&mut conn, sync).await
    }

    async fn commit(&self, lock: &RunLock, acked: &[(String, u128)]) -> Result<i64, StateError> {
        // An flock is held for as long as the process lives, so holding the guard proves it.
        let sync = lock.sync();
        let now = now_secs();
        let mut tx = self.pool.begin().await?;
        let generation: i64 = sqlx::query_scalar(
            "INSERT INTO syncs (name, hash_version, updated_at, generation) VALUES (?, ?, ?, 1) \
             ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at, generation = syncs.generation + 1 \
             RETURNING generation",
        )
        .bind(sync)
        .bind(HASH_VERSION)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        for chunk in acked.chunks(COMMIT_CHUNK) {
            let mut qb = sqlx::QueryBuilder::new("INSERT INTO records (sync, id, hash, synced_at) ");
            qb.push_values(chunk, |mut b, (id, hash)| {
                b.push_bind(sync)
                    .push_bind(id)
                    .push_bind(hash.to_le_bytes().to_vec())
                    .push_bind(now);
            });
            qb.push(" ON CONFLICT (sync, id) DO UPDATE SET hash = excluded.hash, synced_at = excluded.synced_at");
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(generation)
    }

    async fn save_index(&self, sync: &str, generation: i64, index: &RecordIndex) -> Result<bool, StateError> {
        let bytes = index.to_bytes();
        let mut tx = self.pool.begin().await?;
        let current: Option<i64> = sqlx::query_scalar("SELECT generation FROM syncs WHERE name = ?")
            .bind(sync)
            .fetch_optional(&mut *tx)
            .await?;
        if current != Some(generation) {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO record_index (sync, generation, format, entries) VALUES (?, ?, ?, ?) \
             ON CONFLICT (sync) DO UPDATE SET generation = excluded.generation, format = excluded.format, entries = excluded.entries",
        )
        .bind(sync)
        .bind(generation)
        .bind(INDEX_FORMAT)
        .bind(bytes)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn save_schema(&self, sync: &str, schema: &[(String, ColumnType)]) -> Result<(), StateError> {
        let json = serde_json::to_string(schema).map_err(|e| StateError::Query(e.to_string()))?;
        sqlx::query(
            "INSERT INTO syncs (name, hash_version, schema_json, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET schema_json = excluded.schema_json, updated_at = excluded.updated_at",
        )
        .bind(sync)
        .bind(HASH_VERSION)
        .bind(json)
        .bind(now_secs())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn reset(&self, sync: &str) -> Result<u64, StateError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM records WHERE sync = ?")
            .bind(sync)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM record_index WHERE sync = ?")
            .bind(sync)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM syncs WHERE name = ?").bind(sync).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn begin_run(&self, sync: &str, start: &RunStart) -> Result<i64, StateError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&close_orphans("?1")).bind(sync).execute(&mut *tx).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO runs (sync, started_at, status, full_resync, origin, scheduled_for, worker) \
             VALUES (?, ?, 'running', ?, ?, ?, ?) RETURNING id",
        )
        .bind(sync)
        .bind(now_secs())
        .bind(start.full)
        .bind(start.origin)
        .bind(start.scheduled_for)
        .bind(start.worker.as_deref())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn claim_slot(&self, lock: &RunLock, slot: i64, worker: &str) -> Result<bool, StateError> {
        let sync = lock.sync();
        // One statement under SQLite's write lock: only the first to move the slot forward sees a row affected.
        let claimed = sqlx::query(
            "INSERT INTO schedule_claims (sync, slot, worker, claimed_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (sync) DO UPDATE SET slot = excluded.slot, worker = excluded.worker, claimed_at = excluded.claimed_at \
             WHERE schedule_claims.slot < excluded.slot",
        )
        .bind(sync)
        .bind(slot)
        .bind(worker)
        .bind(now_secs())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(claimed == 1)
    }

    async fn prune(&self, before: i64) -> Result<Pruned, StateError> {
        let mut tx = self.pool.begin().await?;
        let rejections = sqlx::query(&format!("DELETE FROM rejections WHERE run_id IN ({})", prunable_runs("?1")))
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let runs = sqlx::query(&format!("DELETE FROM runs WHERE id IN ({})", prunable_runs("?1")))
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(Pruned { runs, rejections })
    }

    async fn ping(&self) -> Result<(), StateError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn add_rejections(&self, run: i64, sync: &str, rejections: &[StoredRejection]) -> Result<(), StateError> {
        if rejections.is_empty() {
            return Ok(());
        }
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rejections WHERE run_id = ?")
            .bind(run)
            .fetch_one(&self.pool)
            .await?;
        let room = MAX_STORED_REJECTIONS.saturating_sub(stored as usize);
        let keep = &rejections[..rejections.len().min(room)];
        if keep.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for chunk in keep.chunks(COMMIT_CHUNK / 2) {
            let mut qb = sqlx::QueryBuilder::new("INSERT INTO rejections (run_id, sync, stage, record_id, position, reason) ");
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(run)
                    .push_bind(sync)
                    .push_bind(r.stage.as_str())
                    .push_bind(&r.record_id)
                    .push_bind(&r.position)
                    .push_bind(&r.reason);
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn finish_run(&self, run: i64, status: RunStatus, c: &RunCounts, error: Option<&str>) -> Result<(), StateError> {
        sqlx::query(
            "UPDATE runs SET ended_at = ?, status = ?, source_rows = ?, invalid = ?, new = ?, changed = ?, unchanged = ?, \
             gone = ?, sent = ?, rejected = ?, failed = ?, error = ? WHERE id = ?",
        )
        .bind(now_secs())
        .bind(status.as_str())
        .bind(c.source as i64)
        .bind(c.invalid as i64)
        .bind(c.new as i64)
        .bind(c.changed as i64)
        .bind(c.unchanged as i64)
        .bind(c.gone as i64)
        .bind(c.sent as i64)
        .bind(c.rejected as i64)
        .bind(c.failed as i64)
        .bind(error)
        .bind(run)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn runs(&self, sync: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, StateError> {
        let rows: Vec<RunRow> = sqlx::query_as(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR sync = ?1) ORDER BY id DESC LIMIT ?2"
        ))
        .bind(sync)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(RunRecord::from).collect())
    }

    async fn rejections(&self, run: i64, limit: usize) -> Result<Vec<StoredRejection>, StateError> {
        let rows: Vec<RejectionRow> =
            sqlx::query_as("SELECT stage, record_id, position, reason FROM rejections WHERE run_id = ? ORDER BY rowid LIMIT ?")
                .bind(run)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(StoredRejection::from).collect())
    }

    async fn syncs(&self) -> Result<Vec<String>, StateError> {
        Ok(
            sqlx::query_scalar("SELECT name FROM syncs UNION SELECT DISTINCT sync FROM runs ORDER BY 1")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn try_lock(&self, sync: &str) -> Result<Option<RunLock>, StateError> {
        let Some(file) = self.lock_file(sync)? else {
            let mut held = self.memory_locks.lock().unwrap_or_else(|p| p.into_inner());
            if !held.insert(sync.to_string()) {
                return Ok(None);
            }
            let held = MemoryLock {
                set: self.memory_locks.clone(),
                sync: sync.to_string(),
            };
            return Ok(Some(RunLock::new(sync, LockWatch::default(), held)));
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(RunLock::new(sync, LockWatch::default(), FileLock { _file: file }))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(StateError::Lock(e.to_string())),
        }
    }

    async fn lock(&self, sync: &str) -> Result<RunLock, StateError> {
        match self.lock_file(sync)? {
            Some(file) => {
                let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
                    .await
                    .map_err(|e| StateError::Lock(e.to_string()))?
                    .map_err(|e| StateError::Lock(e.to_string()))?;
                Ok(RunLock::new(sync, LockWatch::default(), FileLock { _file: file }))
            }
            None => loop {
                if let Some(lock) = self.try_lock(sync).await? {
                    return Ok(lock);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            },
        }
    }
}

impl SqliteStore {
    /// The lock file of a sync (an advisory `flock`, released by the kernel when the process dies).
    fn lock_file(&self, sync: &str) -> Result<Option<File>, StateError> {
        let Some(dir) = &self.lock_dir else { return Ok(None) };
        std::fs::create_dir_all(dir).map_err(|e| StateError::Lock(format!("{}: {e}", dir.display())))?;
        let path = dir.join(format!("{sync}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StateError::Lock(format!("{}: {e}", path.display())))?;
        Ok(Some(file))
    }
}
