//! What differs between the SQLite and the PostgreSQL state store ([`Backend`]), and the
//! statements and helpers both backends' own code shares: the start of every commit, schedule
//! claims, the records upsert's tail, suppressions, and multi-row inserts. The rest of the SQL
//! is written once, over both, in `sql.rs`.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

use super::suppress::SUPPRESS;
use super::{Commit, RunLock, StateError, SuppressReason};
use crate::hash::HASH_VERSION;

/// What differs between the SQLite and the PostgreSQL store.
#[async_trait::async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    type Db: Database;
    /// The column that orders a run's rejections as they were added (`rowid`, a sequence).
    const INSERTION_ORDER: &'static str;
    /// Appended to the `syncs` read of `save_index`: PostgreSQL locks the row, so a commit that
    /// lands meanwhile waits; SQLite's one writer needs nothing.
    const FOR_UPDATE: &'static str;
    /// Run first in `load`'s transaction, so that its reads see one snapshot.
    const SNAPSHOT: Option<&'static str>;

    fn pool(&self) -> &Pool<Self::Db>;
    /// See [`StateStore::commit`]; the statements are [`BUMP_GENERATION`] and a bulk upsert.
    async fn commit(&self, lock: &RunLock, changes: &Commit<'_>) -> Result<i64, StateError>;
    /// See [`StateStore::claim_slot`]; the statement is [`CLAIM_SLOT`].
    async fn claim_slot(&self, lock: &RunLock, slot: i64, worker: &str) -> Result<bool, StateError>;
    async fn try_lock(&self, sync: &str) -> Result<Option<RunLock>, StateError>;
    async fn lock(&self, sync: &str) -> Result<RunLock, StateError>;
    /// See [`super::StateStore::shared_pace`].
    fn shared_pace(&self) -> Option<std::sync::Arc<dyn super::pace::SharedPace>> {
        None
    }
}

/// The first statement of every commit: the sync's commit counter moves on by one, and the sync
/// records which destination and hash version its records are for.
/// `$1` sync, `$2` hash version, `$3` destination, `$4` now.
const BUMP_GENERATION: &str = "INSERT INTO syncs (name, hash_version, destination, updated_at, generation) \
     VALUES ($1, $2, $3, $4, 1) ON CONFLICT (name) DO UPDATE SET hash_version = excluded.hash_version, \
     destination = excluded.destination, updated_at = excluded.updated_at, generation = syncs.generation + 1 \
     RETURNING generation";

/// A commit that replaces the stored state forgets every record first. `$1` sync.
const FORGET_RECORDS: &str = "DELETE FROM records WHERE sync = $1";

/// Only the first claimer to move a sync's slot forward sees a row affected.
/// `$1` sync, `$2` slot, `$3` worker, `$4` now.
pub(crate) const CLAIM_SLOT: &str = "INSERT INTO schedule_claims (sync, slot, worker, claimed_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (sync) DO UPDATE SET slot = excluded.slot, worker = excluded.worker, claimed_at = excluded.claimed_at \
     WHERE schedule_claims.slot < excluded.slot";

/// The tail of a records upsert, for both backends' bulk forms.
/// The runs that sent a record shift along, newest first (SET reads the row as it was).
pub(crate) const ON_RECORD_CONFLICT: &str = " ON CONFLICT (sync, id) DO UPDATE SET hash = excluded.hash, synced_at = excluded.synced_at, \
     payload = excluded.payload, sent_run = excluded.sent_run, prev_run_1 = records.sent_run, \
     prev_run_2 = records.prev_run_1, prev_run_3 = records.prev_run_2";

/// The part of a commit both backends run alike, in the commit's transaction: the counter moves
/// on (see [`BUMP_GENERATION`]), for a commit that replaces the state every stored record is
/// forgotten, and deleted ids are suppressed where the commit says so. Returns the counter
/// after the commit.
pub(crate) async fn open_commit<DB>(conn: &mut DB::Connection, sync: &str, changes: &Commit<'_>, now: i64) -> Result<i64, sqlx::Error>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    usize: ColumnIndex<DB::Row>,
    DB::QueryResult: RowsAffected,
{
    let generation: i64 = sqlx::query_scalar::<DB, i64>(BUMP_GENERATION)
        .bind(sync)
        .bind(HASH_VERSION)
        .bind(changes.destination)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
    if changes.replace {
        sqlx::query::<DB>(FORGET_RECORDS).bind(sync).execute(&mut *conn).await?;
    }
    if let Some((reason, run)) = changes.suppress_deleted {
        suppress_in::<DB>(conn, sync, changes.deleted, reason, run, now).await?;
    }
    Ok(generation)
}

/// Suppresses `ids` on `conn` (a commit's transaction, or a transaction of its own); returns
/// how many were not suppressed before.
pub(crate) async fn suppress_in<DB>(
    conn: &mut DB::Connection,
    sync: &str,
    ids: &[String],
    reason: SuppressReason,
    run: Option<i64>,
    now: i64,
) -> Result<u64, sqlx::Error>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
    let mut added = 0;
    for id in ids {
        let done = sqlx::query::<DB>(SUPPRESS)
            .bind(sync)
            .bind(id.as_str())
            .bind(reason.as_str())
            .bind(run)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        added += done.rows();
    }
    Ok(added)
}

/// Rows per multi-row INSERT, so that one statement stays under SQLite's variable limit.
pub(crate) const ROWS_PER_INSERT: usize = 150;

/// `($1, $2), ($3, $4)`: the placeholders of a multi-row VALUES list. (sqlx's `QueryBuilder` ties
/// its arguments to its own lifetime in a way generic code cannot shorten.)
pub(crate) fn value_rows(rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        out.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", row * columns + column + 1));
        }
        out.push(')');
    }
    out
}

/// A stored payload hash, or `None` for a value that is not one (never written by ebb).
pub(crate) fn hash_of(bytes: &[u8]) -> Option<u128> {
    Some(u128::from_le_bytes(bytes.try_into().ok()?))
}

/// How many rows a statement touched: sqlx's result types differ per database, with no trait for it.
pub(crate) trait RowsAffected {
    fn rows(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn value_rows_number_every_placeholder_once() {
        assert_eq!(super::value_rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::value_rows(1, 1), "($1)");
    }
}
