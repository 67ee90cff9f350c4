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
mod pace;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, Postgres};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, Pool};

use lock::PgHold;

use super::backend::{open_commit, Backend, CLAIM_SLOT, ON_RECORD_CONFLICT};
use super::{now_secs, redact_url, Commit, OpenCause, RunLock, StateError};

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
        source: OpenCause::Url(message),
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
        if let Some(problem) = crate::pg_url::tls_file_problem(url) {
            return Err(StateError::Open {
                url: redact_url(url),
                source: OpenCause::Url(problem),
            });
        }
        // sqlx's messages name the host at most, never the password; the URL is redacted here too.
        let open_err = |e: sqlx::Error| StateError::Open {
            url: redact_url(url),
            source: OpenCause::Database(e),
        };
        if let Some(warning) = crate::pg_url::unverified_tls(&conn_url) {
            tracing::warn!("state: {warning}");
        }
        let options = crate::pg_url::connect_options(&conn_url)
            .map_err(open_err)?
            .options([("search_path", schema.as_str())])
            // A commit of a big window can take a second; that is a debug line, not a warning.
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        // One direct connection first: a pool only reports "timed out", this says why (refused, auth, no such database).
        let probe = options.connect().await.map_err(open_err)?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(open_err)?;
        // Two hosts starting at once would race on CREATE SCHEMA (a unique violation in
        // pg_namespace); a transaction-scoped advisory lock serialises them.
        let mut tx = pool.begin().await.map_err(open_err)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('ebb:create-schema', 0))")
            .execute(&mut *tx)
            .await
            .map_err(open_err)?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .execute(&mut *tx)
            .await
            .map_err(open_err)?;
        tx.commit().await.map_err(open_err)?;
        sqlx::migrate!("connector/migrations/postgres").run(&pool).await?;
        Ok(PostgresStore {
            pool,
            options,
            schema,
            display_url: redact_url(url),
        })
    }
}

/// One commit: the sync's counter and every acknowledged change, in one transaction.
async fn commit_on(conn: &mut PgConnection, sync: &str, changes: &Commit<'_>) -> Result<i64, sqlx::Error> {
    let now = now_secs();
    let ids: Vec<&str> = changes.upserted.iter().map(|(id, _)| id.as_str()).collect();
    let hashes: Vec<Vec<u8>> = changes.upserted.iter().map(|(_, h)| h.to_le_bytes().to_vec()).collect();
    let mut tx = conn.begin().await?;
    let generation = open_commit::<Postgres>(&mut tx, sync, changes, now).await?;
    if !changes.deleted.is_empty() {
        sqlx::query("DELETE FROM records WHERE sync = $1 AND id = ANY($2::text[])")
            .bind(sync)
            .bind(changes.deleted)
            .execute(&mut *tx)
            .await?;
    }
    let payloads: Vec<Option<&[u8]>> = (0..ids.len()).map(|i| changes.payload(i).0).collect();
    let run = changes.sent.map(|sent| sent.run);
    // One statement for the whole commit, whatever its size: arrays, not a VALUES list.
    sqlx::query(&format!(
        "INSERT INTO records (sync, id, hash, synced_at, payload, sent_run) SELECT $1, u.id, u.hash, $4, u.payload, $6 \
         FROM UNNEST($2::text[], $3::bytea[], $5::bytea[]) AS u(id, hash, payload){ON_RECORD_CONFLICT}"
    ))
    .bind(sync)
    .bind(&ids)
    .bind(&hashes)
    .bind(now)
    .bind(&payloads)
    .bind(run)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(generation)
}

#[async_trait::async_trait]
impl Backend for PostgresStore {
    type Db = Postgres;
    const INSERTION_ORDER: &'static str = "seq";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const SNAPSHOT: Option<&'static str> = Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");

    fn pool(&self) -> &Pool<Postgres> {
        &self.pool
    }

    async fn commit(&self, lock: &RunLock, changes: &Commit<'_>) -> Result<i64, StateError> {
        let hold = PgHold::of(lock)?;
        let mut session = hold.session().await?;
        match commit_on(&mut session, lock.sync(), changes).await {
            Ok(generation) => Ok(generation),
            Err(e) => Err(hold.failed(&mut session, e).await),
        }
    }

    async fn claim_slot(&self, lock: &RunLock, slot: i64, worker: &str) -> Result<bool, StateError> {
        let hold = PgHold::of(lock)?;
        let mut session = hold.session().await?;
        // The row lock of the upsert orders concurrent claimers. On the lock's session, so a
        // worker that lost its lock claims nothing.
        let claimed = sqlx::query(CLAIM_SLOT)
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

    async fn try_lock(&self, sync: &str) -> Result<Option<RunLock>, StateError> {
        self.try_lock_session(sync).await
    }

    async fn lock(&self, sync: &str) -> Result<RunLock, StateError> {
        self.lock_session_waiting(sync).await
    }

    fn shared_pace(&self) -> Option<std::sync::Arc<dyn super::pace::SharedPace>> {
        Some(std::sync::Arc::new(pace::PgPace { pool: self.pool.clone() }))
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
