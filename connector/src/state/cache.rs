//! The cached record index as stored: a whole index (`record_index`) and the chain of run deltas
//! on top of it (`record_index_deltas`), read together by `load`.

use futures::TryStreamExt;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::{CachedDeltas, IndexDelta, RecordIndex, StateError, INDEX_FORMAT};

/// How many deltas the cache stacks before a run writes the whole index again.
const MAX_DELTAS: usize = 8;

/// Whether a run's changes go into the cache as a delta on the `loaded` chain, rather than as the
/// whole index again: while the chain is short, and its deltas together stay small beside the
/// index, since every load applies them.
pub fn as_delta(loaded: CachedDeltas, index_len: usize, delta_len: usize) -> bool {
    loaded.count < MAX_DELTAS && (loaded.entries + delta_len).saturating_mul(8) <= index_len
}

/// The cached index at commit counter `generation`, if the cache holds it: the whole index, and
/// every delta from its counter to `generation` with no gap. Anything else (no cache, another
/// format, a torn blob, a chain that stops short) is `None`, and `load` rebuilds the index.
pub(super) async fn read_cached<DB>(
    conn: &mut DB::Connection,
    sync: &str,
    generation: i64,
) -> Result<Option<(RecordIndex, CachedDeltas)>, StateError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> &'r [u8]: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let whole = sqlx::query::<DB>("SELECT generation, entries FROM record_index WHERE sync = $1 AND format = $2")
        .bind(sync)
        .bind(INDEX_FORMAT)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(whole) = whole else { return Ok(None) };
    let at: i64 = whole.try_get("generation")?;
    // Read in place from the row: a copy of the blob would add 32 bytes a record to the peak.
    let index = match at <= generation {
        true => whole.try_get::<&[u8], _>("entries").ok().and_then(RecordIndex::from_bytes),
        false => None,
    };
    drop(whole);
    let Some(index) = index else { return Ok(None) };
    if at == generation {
        return Ok(Some((index, CachedDeltas::default())));
    }
    let mut rows = sqlx::query::<DB>(
        "SELECT from_generation, to_generation, entries, removed FROM record_index_deltas \
         WHERE sync = $1 AND from_generation >= $2 ORDER BY from_generation",
    )
    .bind(sync)
    .bind(at)
    .fetch(&mut *conn);
    let (mut end, mut combined, mut deltas) = (at, IndexDelta::default(), CachedDeltas::default());
    while let Some(row) = rows.try_next().await? {
        if row.try_get::<i64, _>("from_generation")? != end {
            break;
        }
        let delta = IndexDelta::from_bytes(row.try_get("entries")?, row.try_get("removed")?);
        let Some(delta) = delta else { return Ok(None) };
        end = row.try_get("to_generation")?;
        deltas.count += 1;
        deltas.entries += delta.len();
        combined = combined.followed_by(&delta);
    }
    // One pass over the index for the whole chain, however long.
    Ok((end == generation).then(|| (index.applied(&combined), deltas)))
}
