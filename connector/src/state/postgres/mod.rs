//! The PostgreSQL state store: `--state postgres://…`, shared by every host
//! that runs ebb against it.
//!
//! Everything lives in a schema of its own, `ebb` unless the URL says
//! `?schema=NAME`. The schema is created if missing, and the migrations under
//! `connector/migrations/postgres` run on open. They are idempotent, and sqlx
//! serialises concurrent migrators with an advisory lock. Each commit is one
//! round trip for all the records of an acknowledged request, made on the run
//! lock's own session (see `lock.rs`), so it happens only while the lock is held.

mod lock;

use std::str::FromStr;
use std::time::Duration;

use futures::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, Row};

use lock::PgHold;

use super::{close_orphans, prunable_runs, Pruned, RejectionRow, RunRow, RunStart, RUN_COLUMNS};
use super::{
    now_secs, redact_url, RecordIndex, RunCounts, RunLock, RunRecord, RunStatus, StateError, StateStore, StoredRejection, StoredState,
    INDEX_FORMAT, MAX_STORED_REJECTIONS,
};
use crate::hash::HASH_VERSION;
use crate::source::ColumnType;

pub const DEFAULT_SCHEMA: &str = "ebb";

pub struct PostgresStore {
    pool: PgPool,
    /// Connects the dedicated session that holds a run's advisory lock.
    options: PgConnectOptions,
    schema: String,
    /// The store's URL with the password masked, for messages.
    display_url: String,
}

/// Splits ebb's own `schema` parameter off a connection URL.
fn split_schema(url: &str) -> Result<(String, String), StateError> {
    let bad = |message: String| StateError::Open {
        url: redact_url(url),
        message,
    };
    let mut parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    let mut schema = DEFAULT_SCHEMA.to_string();
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(k, v)| {
            if k == "schema" {
                schema = v.into_owned();
                None
            } else {
                Some((k.into_owned(), v.into_owned()))
            }
        })
        .collect();
    parsed.set_query(None);
    if !kept.is_empty() {
        parsed.query_pairs_mut().extend_pairs(kept);
    }
    let valid = !schema.is_empty()
        && schema.len() <= 63
        && schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !schema.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return Err(bad(format!("schema `{schema}` must be lowercase letters, digits and `_`")));
    }
    Ok((parsed.to_string(), schema))
}

impl PostgresStore {
    pub async fn open(url: &str) -> Result<PostgresStore, StateError> {
        let (conn_url, schema) = split_schema(url)?;
        // sqlx's messages name the host at most, never the password; the URL is redacted here too.
        let open_err = |e: &dyn std::fmt::Display| StateError::Open {
            url: redact_url(url),
            message: e.to_string(),
        };
        let options = PgConnectOptions::from_str(&conn_url)
            .map_err(|e| open_err(&e))?
            .options([("search_path", schema.as_str())]);
        // One direct connection first: a pool only reports "timed out", this says why (refused, auth, no such database).
        let probe = options.connect().await.map_err(|e| open_err(&e))?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(|e| open_err(&e))?;
        // Two hosts starting at once would race on CREATE SCHEMA (a unique violation in
        // pg_namespace); a transaction-scoped advisory lock serialises them.
        let mut tx = pool.begin().await.map_err(|e| open_err(&e))?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('ebb:create-schema', 0))")
            .execute(&mut *tx)
            .await
            .map_err(|e| open_err(&e))?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .execute(&mut *tx)
            .await
            .map_err(|e| open_err(&e))?;
        tx.commit().await.map_err(|e| open_err(&e))?;
        sqlx::migrate!("connector/migrations/postgres").run(&pool).await?;
        Ok(PostgresStore {
            pool,
            options,
            schema,
            display_url: redact_url(url),
        })
    }
}

/// Streamed, not fetched whole: at a million records the rows alone would double peak memory.
async fn records_of(conn: &mut PgConnection, sync: &str) -> Result<Vec<(String, u128)>, StateError> {
    let mut rows = sqlx::query("SELECT id, hash FROM records WHERE sync = $1 ORDER BY id")
        .bind(sync)
        .fetch(conn);
    let mut out = Vec::new();
    while let Some(row) = rows.try_next().await? {
        if let Ok(bytes) = <[u8; 16]>::try_from(row.get::<&[u8], _>("hash")) {
            out.push((row.get::<String, _>("id"), u128::from_le_bytes(bytes)));
        }
    }
    Ok(out)
}

/// One commit: the sync's counter and every acknowledged record's hash, in one transaction.
async fn commit_on(conn: &mut PgConnection, sync: &str, acked: &[(String, u128)]) -> Result<i64, sqlx::Error> {
    let now = now_secs();
    let ids: Vec<&str> = acked.iter().map(|(id, _)| id.as_str()).collect();
    let hashes: Vec<Vec<u8>> = acked.iter().map(|(_, h)| h.to_le_bytes().to_vec()).collect();
    let mut tx = conn.begin().await?;
    let generation: i64 = sqlx::query_scalar(
        "INSERT INTO syncs (name, hash_version, updated_at, generation) VALUES ($1, $2, $3, 1) \
         ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at, generation = syncs.generation + 1 \
         RETURNING generation",
    )
    .bind(sync)
    .bind(HASH_VERSION)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO records (sync, id, hash, synced_at) \
         SELECT $1, u.id, u.hash, $4 FROM UNNEST($2::text[], $3::bytea[]) AS u(id, hash) \
         ON CONFLICT (sync, id) DO UPDATE SET hash = excluded.hash, synced_at = excluded.synced_at",
    )
    .bind(sync)
    .bind(&ids)
    .bind(&hashes)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(generation)
}

#[async_trait::async_trait]
impl StateStore for PostgresStore {
    async fn load(&self, sync: &str) -> Result<StoredState, StateError> {
        // One snapshot, so the counter, the cache and the table agree.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let meta = sqlx::query("SELECT hash_version, schema_json, generation FROM syncs WHERE name = $1")
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
        let cached = sqlx::query("SELECT entries FROM record_index WHERE sync = $1 AND generation = $2 AND format = $3")
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
        let hold = PgHold::of(lock)?;
        let mut session = hold.session().await?;
        match commit_on(&mut session, lock.sync(), acked).await {
            Ok(generation) => Ok(generation),
            Err(e) => Err(hold.failed(&mut session, e).await),
        }
    }

    async fn save_index(&self, sync: &str, generation: i64, index: &RecordIndex) -> Result<bool, StateError> {
        let bytes = index.to_bytes();
        let mut tx = self.pool.begin().await?;
        // FOR UPDATE: a commit that lands meanwhile waits, so the tag cannot go stale under us.
        let current: Option<i64> = sqlx::query_scalar("SELECT generation FROM syncs WHERE name = $1 FOR UPDATE")
            .bind(sync)
            .fetch_optional(&mut *tx)
            .await?;
        if current != Some(generation) {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO record_index (sync, generation, format, entries) VALUES ($1, $2, $3, $4) \
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
            "INSERT INTO syncs (name, hash_version, schema_json, updated_at) VALUES ($1, $2, $3, $4) \
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
        let n = sqlx::query("DELETE FROM records WHERE sync = $1")
            .bind(sync)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM record_index WHERE sync = $1")
            .bind(sync)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM syncs WHERE name = $1")
            .bind(sync)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn begin_run(&self, sync: &str, start: &RunStart) -> Result<i64, StateError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&close_orphans("$1")).bind(sync).execute(&mut *tx).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO runs (sync, started_at, status, full_resync, origin, scheduled_for, worker) \
             VALUES ($1, $2, 'running', $3, $4, $5, $6) RETURNING id",
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
        let hold = PgHold::of(lock)?;
        let mut session = hold.session().await?;
        // One statement: the row lock of the upsert orders concurrent claimers, and only the
        // first to move the slot forward sees a row affected. On the lock's session, so a
        // worker that lost its lock claims nothing.
        let claimed = sqlx::query(
            "INSERT INTO schedule_claims (sync, slot, worker, claimed_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (sync) DO UPDATE SET slot = excluded.slot, worker = excluded.worker, claimed_at = excluded.claimed_at \
             WHERE schedule_claims.slot < excluded.slot",
        )
        .bind(lock.sync())
        .bind(slot)
        .bind(worker)
        .bind(now_secs())
        .execute(&mut *session)
        .await;
        match claimed {
            Ok(done) => Ok(done.rows_affected() == 1),
            Err(e) => Err(hold.failed(&mut session, e).await),
        }
    }

    async fn prune(&self, before: i64) -> Result<Pruned, StateError> {
        let mut tx = self.pool.begin().await?;
        let rejections = sqlx::query(&format!("DELETE FROM rejections WHERE run_id IN ({})", prunable_runs("$1")))
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let runs = sqlx::query(&format!("DELETE FROM runs WHERE id IN ({})", prunable_runs("$1")))
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
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rejections WHERE run_id = $1")
            .bind(run)
            .fetch_one(&self.pool)
            .await?;
        let room = MAX_STORED_REJECTIONS.saturating_sub(stored as usize);
        let keep = &rejections[..rejections.len().min(room)];
        if keep.is_empty() {
            return Ok(());
        }
        let stages: Vec<&str> = keep.iter().map(|r| r.stage.as_str()).collect();
        let ids: Vec<Option<&str>> = keep.iter().map(|r| r.record_id.as_deref()).collect();
        let positions: Vec<&str> = keep.iter().map(|r| r.position.as_str()).collect();
        let reasons: Vec<&str> = keep.iter().map(|r| r.reason.as_str()).collect();
        sqlx::query(
            "INSERT INTO rejections (run_id, sync, stage, record_id, position, reason) \
             SELECT $1, $2, u.stage, u.record_id, u.position, u.reason \
             FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS u(stage, record_id, position, reason, n) \
             ORDER BY u.n",
        )
        .bind(run)
        .bind(sync)
        .bind(&stages)
        .bind(&ids)
        .bind(&positions)
        .bind(&reasons)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn finish_run(&self, run: i64, status: RunStatus, c: &RunCounts, error: Option<&str>) -> Result<(), StateError> {
        sqlx::query(
            "UPDATE runs SET ended_at = $1, status = $2, source_rows = $3, invalid = $4, new = $5, changed = $6, unchanged = $7, \
             gone = $8, sent = $9, rejected = $10, failed = $11, error = $12 WHERE id = $13",
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
            "SELECT {RUN_COLUMNS} FROM runs WHERE ($1::text IS NULL OR sync = $1) ORDER BY id DESC LIMIT $2"
        ))
        .bind(sync)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(RunRecord::from).collect())
    }

    async fn rejections(&self, run: i64, limit: usize) -> Result<Vec<StoredRejection>, StateError> {
        let rows: Vec<RejectionRow> =
            sqlx::query_as("SELECT stage, record_id, position, reason FROM rejections WHERE run_id = $1 ORDER BY seq LIMIT $2")
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
        self.try_lock_session(sync).await
    }

    async fn lock(&self, sync: &str) -> Result<RunLock, StateError> {
        self.lock_session_waiting(sync).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_parameter_is_split_off() {
        let (url, schema) = split_schema("postgres://u:p@h:5432/db?schema=ebb_t1&sslmode=disable").expect("valid");
        assert_eq!(
            (url.as_str(), schema.as_str()),
            ("postgres://u:p@h:5432/db?sslmode=disable", "ebb_t1")
        );
        let (url, schema) = split_schema("postgres://h/db").expect("valid");
        assert_eq!((url.as_str(), schema.as_str()), ("postgres://h/db", "ebb"));
        let err = split_schema("postgres://u:secret@h/db?schema=Bad-Name")
            .expect_err("refused")
            .to_string();
        assert!(err.contains("must be lowercase") && !err.contains("secret"), "{err}");
    }
}
