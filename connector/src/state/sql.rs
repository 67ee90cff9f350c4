//! The SQL both state stores run, written once over sqlx's database type.
//!
//! Placeholders are `$N` in every statement: PostgreSQL's own form, and one that SQLite reads as
//! a numbered parameter. A backend implements [`Backend`] with only what differs between the
//! two: how a commit's records are upserted and on which connection (SQLite's pool, PostgreSQL's
//! run-lock session), schedule claims for the same reason, run locks, and a few words of
//! dialect. Every other [`StateStore`] method is the blanket implementation below.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Type};

use super::backend::{suppress_in, value_rows, Backend, RowsAffected, ROWS_PER_INSERT};
use super::cache;
use super::cursors::{self, StoredCursor};
use super::load::{records_of, stored_schema, SyncMeta};
use super::suppress::SuppressionRow;
use super::{
    now_secs, CachedDeltas, Commit, IndexDelta, Pruned, RecordIndex, RejectionRow, RunCounts, RunLock, RunProgress, RunRecord, RunRow,
    RunStart, RunStatus, StateError, StateStore, StoredRejection, StoredState, SuppressReason, Suppression, TrackedRecord, TrackedRow,
    INDEX_FORMAT, MAX_STORED_REJECTIONS,
};
use crate::column::ColumnType;
use crate::folders::SnapshotFolders;
use crate::hash::HASH_VERSION;

const RUN_COLUMNS: &str = "id, sync, started_at, ended_at, status, full_resync, source_rows, invalid, new, changed, unchanged, gone, \
     sent, deleted, suppressed, rejected, failed, error, origin, scheduled_for, worker, planned, progress_done, sending_since_ms, progress_at_ms, \
     snapshot_folders, changed_without_cursor, narrowed, left_records, left_eta_secs";

/// Runs a retention pass may delete: finished, started before `$1`, and not the latest of their sync.
const PRUNABLE_RUNS: &str =
    "SELECT id FROM runs WHERE started_at < $1 AND status <> 'running' AND id NOT IN (SELECT MAX(id) FROM runs GROUP BY sync)";

#[async_trait::async_trait]
impl<B> StateStore for B
where
    B: Backend,
    for<'c> &'c Pool<B::Db>: Executor<'c, Database = B::Db>,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    for<'q> <B::Db as Database>::Arguments<'q>: IntoArguments<'q, B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> bool: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> Vec<u8>: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db>,
    for<'q> Option<&'q str>: Encode<'q, B::Db>,
    for<'r> &'r [u8]: Decode<'r, B::Db> + Type<B::Db>,
    for<'a> &'a str: ColumnIndex<<B::Db as Database>::Row>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    <B::Db as Database>::QueryResult: RowsAffected,
    for<'r> SyncMeta: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> RunRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> RejectionRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> SuppressionRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> TrackedRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> StoredCursor: FromRow<'r, <B::Db as Database>::Row>,
{
    async fn load(&self, sync: &str) -> Result<StoredState, StateError> {
        // One read transaction, so the counter, the cache and the table agree.
        let mut tx = self.pool().begin().await?;
        if let Some(snapshot) = B::SNAPSHOT {
            sqlx::query::<B::Db>(snapshot).execute(&mut *tx).await?;
        }
        let meta: Option<SyncMeta> = sqlx::query_as("SELECT hash_version, schema_json, generation, destination FROM syncs WHERE name = $1")
            .bind(sync)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(meta) = meta else {
            return Ok(StoredState {
                generation: Some(0),
                ..StoredState::default()
            });
        };
        let schema = stored_schema(sync, meta.schema_json.as_deref())?;
        if meta.hash_version != HASH_VERSION {
            return Ok(StoredState {
                schema,
                destination: meta.destination,
                ..StoredState::default()
            }
            .set_aside());
        }
        let (index, deltas, cached) = match cache::read_cached::<B::Db>(&mut tx, sync, meta.generation).await? {
            Some((index, deltas)) => (index, deltas, true),
            None => {
                tracing::debug!(sync, "record index cache is stale; rebuilding it from the records table");
                let index = RecordIndex::from_records(records_of::<B::Db>(&mut tx, sync).await?);
                (index, CachedDeltas::default(), false)
            }
        };
        tx.commit().await?;
        Ok(StoredState {
            index,
            schema,
            generation: Some(meta.generation),
            cached,
            deltas,
            destination: meta.destination,
            replace: false,
        })
    }

    async fn records(&self, sync: &str) -> Result<Vec<(String, u128)>, StateError> {
        let mut conn = self.pool().acquire().await?;
        records_of::<B::Db>(&mut conn, sync).await
    }

    async fn commit(&self, lock: &RunLock, changes: &Commit<'_>) -> Result<i64, StateError> {
        Backend::commit(self, lock, changes).await
    }

    async fn save_index(&self, sync: &str, generation: i64, index: &RecordIndex) -> Result<bool, StateError> {
        let mut tx = self.pool().begin().await?;
        let current: Option<i64> = sqlx::query_scalar(&format!("SELECT generation FROM syncs WHERE name = $1{}", B::FOR_UPDATE))
            .bind(sync)
            .fetch_optional(&mut *tx)
            .await?;
        if current != Some(generation) {
            return Ok(false);
        }
        sqlx::query::<B::Db>(
            "INSERT INTO record_index (sync, generation, format, entries) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (sync) DO UPDATE SET generation = excluded.generation, format = excluded.format, entries = excluded.entries",
        )
        .bind(sync)
        .bind(generation)
        .bind(INDEX_FORMAT)
        .bind(index.to_bytes())
        .execute(&mut *tx)
        .await?;
        sqlx::query::<B::Db>("DELETE FROM record_index_deltas WHERE sync = $1")
            .bind(sync)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn save_index_delta(&self, sync: &str, (from, to): (i64, i64), delta: &IndexDelta) -> Result<bool, StateError> {
        let mut tx = self.pool().begin().await?;
        let current: Option<i64> = sqlx::query_scalar(&format!("SELECT generation FROM syncs WHERE name = $1{}", B::FOR_UPDATE))
            .bind(sync)
            .fetch_optional(&mut *tx)
            .await?;
        // The cache's end: its last delta's counter, else its whole index's (-1 without one).
        let end: i64 = sqlx::query_scalar(
            "SELECT COALESCE((SELECT MAX(to_generation) FROM record_index_deltas WHERE sync = $1),              (SELECT generation FROM record_index WHERE sync = $1 AND format = $2), -1)",
        )
        .bind(sync)
        .bind(INDEX_FORMAT)
        .fetch_one(&mut *tx)
        .await?;
        if current != Some(to) || end != from {
            return Ok(false);
        }
        let (entries, removed) = delta.to_bytes();
        sqlx::query::<B::Db>(
            "INSERT INTO record_index_deltas (sync, from_generation, to_generation, entries, removed) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(sync)
        .bind(from)
        .bind(to)
        .bind(entries)
        .bind(removed)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn save_schema(&self, sync: &str, schema: &[(String, ColumnType)]) -> Result<(), StateError> {
        let json = serde_json::to_string(schema).map_err(StateError::Encode)?;
        sqlx::query::<B::Db>(
            "INSERT INTO syncs (name, hash_version, schema_json, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET schema_json = excluded.schema_json, updated_at = excluded.updated_at",
        )
        .bind(sync)
        .bind(HASH_VERSION)
        .bind(json)
        .bind(now_secs())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn cursor(&self, sync: &str) -> Result<Option<StoredCursor>, StateError> {
        Ok(sqlx::query_as(cursors::LOAD).bind(sync).fetch_optional(self.pool()).await?)
    }

    async fn save_cursor(&self, lock: &RunLock, c: &StoredCursor) -> Result<(), StateError> {
        lock.check()?;
        sqlx::query::<B::Db>(cursors::SAVE)
            .bind(lock.sync())
            .bind(c.column.as_str())
            .bind(c.fingerprint.as_str())
            .bind(c.watermark)
            .bind(c.full_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn reset(&self, sync: &str) -> Result<u64, StateError> {
        let mut tx = self.pool().begin().await?;
        let forgotten = sqlx::query::<B::Db>("DELETE FROM records WHERE sync = $1")
            .bind(sync)
            .execute(&mut *tx)
            .await?;
        for table in [
            "DELETE FROM record_index WHERE sync = $1",
            "DELETE FROM record_index_deltas WHERE sync = $1",
            "DELETE FROM syncs WHERE name = $1",
            cursors::FORGET,
        ] {
            sqlx::query::<B::Db>(table).bind(sync).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(forgotten.rows())
    }

    async fn begin_run(&self, sync: &str, start: &RunStart) -> Result<i64, StateError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query::<B::Db>(
            "UPDATE runs SET status = 'interrupted', ended_at = COALESCE(ended_at, started_at), \
             error = 'the process running it stopped before the run ended' WHERE sync = $1 AND status = 'running'",
        )
        .bind(sync)
        .execute(&mut *tx)
        .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO runs (sync, started_at, status, full_resync, origin, scheduled_for, worker) \
             VALUES ($1, $2, 'running', $3, $4, $5, $6) RETURNING id",
        )
        .bind(sync)
        .bind(now_secs())
        .bind(start.full)
        .bind(start.origin.as_str())
        .bind(start.scheduled_for)
        .bind(start.worker.as_deref())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn add_rejections(&self, run: i64, sync: &str, rejections: &[StoredRejection]) -> Result<(), StateError> {
        if rejections.is_empty() {
            return Ok(());
        }
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rejections WHERE run_id = $1")
            .bind(run)
            .fetch_one(self.pool())
            .await?;
        let room = MAX_STORED_REJECTIONS.saturating_sub(usize::try_from(stored).unwrap_or(usize::MAX));
        let keep = &rejections[..rejections.len().min(room)];
        if keep.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for chunk in keep.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO rejections (run_id, sync, stage, record_id, position, reason) VALUES {}",
                value_rows(chunk.len(), 6)
            );
            let mut insert = sqlx::query::<B::Db>(&sql);
            for r in chunk {
                insert = insert
                    .bind(run)
                    .bind(sync)
                    .bind(r.stage.as_str())
                    .bind(r.record_id.as_deref())
                    .bind(r.position.as_str())
                    .bind(r.reason.as_str());
            }
            insert.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn finish_run(&self, run: i64, status: RunStatus, c: &RunCounts, error: Option<&str>) -> Result<(), StateError> {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        sqlx::query::<B::Db>(
            "UPDATE runs SET ended_at = $1, status = $2, source_rows = $3, invalid = $4, new = $5, changed = $6, unchanged = $7, \
             gone = $8, sent = $9, rejected = $10, failed = $11, error = $12, deleted = $13, suppressed = $14, \
             changed_without_cursor = $15, narrowed = $16, left_records = $17, left_eta_secs = $18 WHERE id = $19",
        )
        .bind(now_secs())
        .bind(status.as_str())
        .bind(count(c.source))
        .bind(count(c.invalid))
        .bind(count(c.new))
        .bind(count(c.changed))
        .bind(count(c.unchanged))
        .bind(count(c.gone))
        .bind(count(c.sent))
        .bind(count(c.rejected))
        .bind(count(c.failed))
        .bind(error)
        .bind(count(c.deleted))
        .bind(count(c.suppressed))
        .bind(c.changed_without_cursor.map(count))
        .bind(c.narrowed)
        .bind(c.left.map(count))
        .bind(c.eta_secs.map(count))
        .bind(run)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn report_progress(&self, run: i64, p: &RunProgress) -> Result<(), StateError> {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        sqlx::query::<B::Db>("UPDATE runs SET planned = $1, progress_done = $2, sending_since_ms = $3, progress_at_ms = $4 WHERE id = $5")
            .bind(count(p.planned))
            .bind(count(p.done))
            .bind(p.since_ms)
            .bind(p.at_ms)
            .bind(run)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn note_folders(&self, run: i64, folders: &SnapshotFolders) -> Result<(), StateError> {
        let json = serde_json::to_string(folders).map_err(|e| StateError::Damaged(format!("snapshot folders: {e}")))?;
        sqlx::query::<B::Db>("UPDATE runs SET snapshot_folders = $1 WHERE id = $2")
            .bind(json)
            .bind(run)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn note_mapping(&self, run: i64, fingerprint: &str) -> Result<(), StateError> {
        sqlx::query::<B::Db>("UPDATE runs SET mapping = $1 WHERE id = $2")
            .bind(fingerprint)
            .bind(run)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn sent_by_another_mapping(
        &self,
        sync: &str,
        fingerprint: &str,
        payloads: bool,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, StateError> {
        // Two looks at the runs first, so that a sync whose mapping never changed, or whose
        // resend after a change has completed, reads no records.
        let last_other: Option<i64> =
            sqlx::query_scalar::<B::Db, Option<i64>>("SELECT MAX(id) FROM runs WHERE sync = $1 AND mapping IS NOT NULL AND mapping <> $2")
                .bind(sync)
                .bind(fingerprint)
                .fetch_one(self.pool())
                .await?;
        let Some(last_other) = last_other else { return Ok(Vec::new()) };
        let completed_since: Option<i64> = sqlx::query_scalar::<B::Db, i64>(
            "SELECT id FROM runs WHERE sync = $1 AND id > $2 AND mapping = $3 AND status = 'completed' LIMIT 1",
        )
        .bind(sync)
        .bind(last_other)
        .bind(fingerprint)
        .fetch_optional(self.pool())
        .await?;
        if completed_since.is_some() {
            return Ok(Vec::new());
        }
        let payload = if payloads { "r.payload" } else { "NULL" };
        let rows = sqlx::query_as::<B::Db, (String, Option<Vec<u8>>)>(&format!(
            "SELECT r.id, {payload} FROM records r JOIN runs u ON u.id = r.sent_run \
             WHERE r.sync = $1 AND u.mapping IS NOT NULL AND u.mapping <> $2"
        ))
        .bind(sync)
        .bind(fingerprint)
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }

    async fn runs(&self, sync: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, StateError> {
        let rows: Vec<RunRow> = sqlx::query_as(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE (CAST($1 AS TEXT) IS NULL OR sync = $1) ORDER BY id DESC LIMIT $2"
        ))
        .bind(sync)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(RunRecord::try_from).collect()
    }

    async fn latest_runs(&self) -> Result<Vec<RunRecord>, StateError> {
        // The (sync, id) index answers the MAX per sync without reading every run.
        let rows: Vec<RunRow> = sqlx::query_as(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id IN (SELECT MAX(id) FROM runs GROUP BY sync) ORDER BY sync"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(RunRecord::try_from).collect()
    }

    async fn rejections(&self, run: i64, limit: usize) -> Result<Vec<StoredRejection>, StateError> {
        let rows: Vec<RejectionRow> = sqlx::query_as(&format!(
            "SELECT stage, record_id, position, reason FROM rejections WHERE run_id = $1 ORDER BY {} LIMIT $2",
            B::INSERTION_ORDER
        ))
        .bind(run)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(StoredRejection::from).collect())
    }

    async fn syncs(&self) -> Result<Vec<String>, StateError> {
        Ok(
            sqlx::query_scalar("SELECT name FROM syncs UNION SELECT DISTINCT sync FROM runs ORDER BY 1")
                .fetch_all(self.pool())
                .await?,
        )
    }

    async fn claim_slot(&self, lock: &RunLock, slot: i64, worker: &str) -> Result<bool, StateError> {
        Backend::claim_slot(self, lock, slot, worker).await
    }

    async fn suppress(&self, sync: &str, ids: &[String], reason: SuppressReason, run: Option<i64>) -> Result<u64, StateError> {
        let mut tx = self.pool().begin().await?;
        let added = suppress_in::<B::Db>(&mut tx, sync, ids, reason, run, now_secs()).await?;
        tx.commit().await?;
        Ok(added)
    }

    async fn unsuppress(&self, sync: &str, ids: &[String]) -> Result<u64, StateError> {
        let mut tx = self.pool().begin().await?;
        let mut lifted = 0;
        for id in ids {
            let done = sqlx::query::<B::Db>("DELETE FROM suppressions WHERE sync = $1 AND id = $2")
                .bind(sync)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            lifted += done.rows();
        }
        // A lifted identity's row may not have changed since: the next run reads every row.
        if lifted > 0 {
            sqlx::query::<B::Db>(cursors::FORGET).bind(sync).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(lifted)
    }

    async fn suppressions(&self, sync: &str) -> Result<Vec<Suppression>, StateError> {
        let rows: Vec<SuppressionRow> =
            sqlx::query_as("SELECT id, reason, run_id, suppressed_at FROM suppressions WHERE sync = $1 ORDER BY id")
                .bind(sync)
                .fetch_all(self.pool())
                .await?;
        rows.into_iter().map(Suppression::try_from).collect()
    }

    async fn tracked(&self, sync: &str, ids: &[String]) -> Result<Vec<TrackedRecord>, StateError> {
        let mut out = Vec::with_capacity(ids.len());
        // One lookup by primary key per id: callers ask for a record or a preview's few.
        for id in ids {
            let row: Option<TrackedRow> =
                sqlx::query_as(&format!("SELECT {} FROM records WHERE sync = $1 AND id = $2", TrackedRow::COLUMNS))
                    .bind(sync)
                    .bind(id.as_str())
                    .fetch_optional(self.pool())
                    .await?;
            out.extend(row.map(TrackedRecord::from));
        }
        Ok(out)
    }

    async fn prune(&self, before: i64) -> Result<Pruned, StateError> {
        let mut tx = self.pool().begin().await?;
        let rejections = sqlx::query::<B::Db>(&format!("DELETE FROM rejections WHERE run_id IN ({PRUNABLE_RUNS})"))
            .bind(before)
            .execute(&mut *tx)
            .await?;
        let runs = sqlx::query::<B::Db>(&format!("DELETE FROM runs WHERE id IN ({PRUNABLE_RUNS})"))
            .bind(before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Pruned {
            runs: runs.rows(),
            rejections: rejections.rows(),
        })
    }

    fn shared_pace(&self) -> Option<std::sync::Arc<dyn super::pace::SharedPace>> {
        Backend::shared_pace(self)
    }

    async fn ping(&self) -> Result<(), StateError> {
        sqlx::query::<B::Db>("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }

    async fn try_lock(&self, sync: &str) -> Result<Option<RunLock>, StateError> {
        Backend::try_lock(self, sync).await
    }

    async fn lock(&self, sync: &str) -> Result<RunLock, StateError> {
        Backend::lock(self, sync).await
    }
}
