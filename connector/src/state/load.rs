//! What `load` reads of a sync: its records streamed in id order, its last schema, and the
//! row of `syncs` that says what the records are for.

use futures::TryStreamExt;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::backend::hash_of;
use super::StateError;
use crate::column::ColumnType;

/// Streamed, not fetched whole: at a million records the rows alone would double peak memory.
pub(super) async fn records_of<DB>(conn: &mut DB::Connection, sync: &str) -> Result<Vec<(String, u128)>, StateError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> &'r [u8]: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let mut rows = sqlx::query::<DB>("SELECT id, hash FROM records WHERE sync = $1 ORDER BY id")
        .bind(sync)
        .fetch(conn);
    let mut out = Vec::new();
    while let Some(row) = rows.try_next().await? {
        if let Some(hash) = hash_of(row.try_get::<&[u8], _>("hash")?) {
            out.push((row.try_get::<String, _>("id")?, hash));
        }
    }
    Ok(out)
}

/// The schema a sync last ran with. One that cannot be read is an error: read as none, it
/// would turn the drift check off without a word.
pub(super) fn stored_schema(sync: &str, json: Option<&str>) -> Result<Option<Vec<(String, ColumnType)>>, StateError> {
    let Some(json) = json else { return Ok(None) };
    serde_json::from_str(json).map(Some).map_err(|e| {
        StateError::Damaged(format!(
            "the stored schema of sync {} cannot be read ({e}); `ebb reset` forgets it",
            crate::quote::quote(sync)
        ))
    })
}

/// The part of `syncs` that `load` reads.
#[derive(sqlx::FromRow)]
pub(super) struct SyncMeta {
    pub hash_version: i64,
    pub schema_json: Option<String>,
    pub generation: i64,
    pub destination: Option<String>,
}
