//! The PostgreSQL dialect: plain SQL that PostgreSQL-compatible engines accept.
//!
//! **The canonical text** of a row is `ebb<version>` followed by one piece per mapped column,
//! in the mapping's order. A piece is `N` for NULL, or `V` and the value's canonical text with
//! its length in characters before it (`V5:hello`), so that no value can imitate a delimiter.
//! A list is `L`, its element count, `:`, then one piece per element. Each type's text is
//! chosen so that no session setting changes it (`DateStyle`, `TimeZone`,
//! `extra_float_digits`, `lc_*`):
//!
//! | type | text |
//! |---|---|
//! | string | `x::text` |
//! | integer | `x::int8::text` |
//! | float | the IEEE 754 bits of `x::float8`, as hex (`float8send`) |
//! | decimal | `x::numeric::text` (so `1.50` and `1.5` differ: a record may be sent again, harmlessly) |
//! | boolean | `t` or `f` |
//! | date | days since 2000-01-01, or `infinity` / `-infinity` |
//! | timestamp | `extract(epoch …)` as numeric text, microseconds included (`timestamptz` the instant; `timestamp` its wall time read as UTC) |
//!
//! **The hash** is `md5` of that text, as 32 hex digits: built into every engine of this
//! family, and collisions between one sync's rows are not a concern at 128 bits.

use super::{HashedColumn, WAREHOUSE_HASH_VERSION};
use crate::column::ColumnType;

/// A PostgreSQL identifier, quoted.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The canonical text of a non-NULL scalar `value` (an SQL expression) of type `ty`.
fn scalar_text(value: &str, ty: &ColumnType) -> String {
    match ty {
        ColumnType::String => format!("{value}::text"),
        ColumnType::Int | ColumnType::UInt => format!("{value}::int8::text"),
        ColumnType::Float => format!("encode(float8send({value}::float8), 'hex')"),
        ColumnType::Decimal => format!("{value}::numeric::text"),
        ColumnType::Bool => format!("CASE WHEN {value} THEN 't' ELSE 'f' END"),
        ColumnType::Date => {
            format!("CASE WHEN isfinite({value}) THEN ({value} - DATE '2000-01-01')::text ELSE {value}::text END")
        }
        ColumnType::Timestamp => format!("extract(epoch FROM {value})::text"),
        // Lists of lists are not read (see `ColumnType::from_arrow` and the PostgreSQL source).
        ColumnType::List(inner) => scalar_text(value, inner),
    }
}

/// `N`, or `V<length>:<text>`, of a scalar.
fn piece(value: &str, ty: &ColumnType) -> String {
    let text = scalar_text(value, ty);
    format!("CASE WHEN {value} IS NULL THEN 'N' ELSE 'V' || length({text})::text || ':' || {text} END")
}

/// The piece of one column: a scalar's, or a list's `L<count>:` and its elements' pieces.
fn column_piece(column: &HashedColumn<'_>) -> String {
    let value = quote_ident(column.name);
    match column.ty {
        ColumnType::List(inner) => {
            let element = piece("ebb_e", inner);
            format!(
                "CASE WHEN {value} IS NULL THEN 'N' ELSE 'L' || cardinality({value})::text || ':' || \
                 coalesce((SELECT string_agg({element}, '' ORDER BY ebb_o) FROM unnest({value}) WITH ORDINALITY AS ebb_u(ebb_e, ebb_o)), '') END"
            )
        }
        scalar => piece(&value, scalar),
    }
}

/// The canonical text of a row of `columns`, as one SQL expression.
pub fn canonical_text(columns: &[HashedColumn<'_>]) -> String {
    let mut parts = vec![format!("'ebb{WAREHOUSE_HASH_VERSION}'")];
    parts.extend(columns.iter().map(|c| format!("({})", column_piece(c))));
    parts.join(" || ")
}

/// The row hash, 32 hex digits, as one SQL expression.
pub fn row_hash(columns: &[HashedColumn<'_>]) -> String {
    format!("md5({})", canonical_text(columns))
}

/// The bookkeeping tables in the warehouse's `schema`: one row per acknowledged record, with
/// its id as the source's text so that a person can query it, and one per sync with the hash
/// version and the mapped columns its hashes cover. Idempotent.
pub fn create_state(schema: &str) -> String {
    let s = quote_ident(schema);
    format!(
        "CREATE SCHEMA IF NOT EXISTS {s};\n\
         CREATE TABLE IF NOT EXISTS {s}.ebb_records (sync text NOT NULL, id text NOT NULL, hash text NOT NULL, \
         synced_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (sync, id));\n\
         CREATE TABLE IF NOT EXISTS {s}.ebb_syncs (sync text PRIMARY KEY, hash_version int NOT NULL, columns text NOT NULL, \
         updated_at timestamptz NOT NULL DEFAULT now());"
    )
}

/// Acknowledged upserts, one round trip for a batch. `$1` sync, `$2` ids, `$3` hashes.
pub fn commit_upserts(schema: &str) -> String {
    format!(
        "INSERT INTO {}.ebb_records (sync, id, hash) SELECT $1, u.id, u.hash FROM UNNEST($2::text[], $3::text[]) AS u(id, hash) \
         ON CONFLICT (sync, id) DO UPDATE SET hash = excluded.hash, synced_at = now()",
        quote_ident(schema)
    )
}

/// Acknowledged deletes. `$1` sync, `$2` ids.
pub fn commit_deletes(schema: &str) -> String {
    format!(
        "DELETE FROM {}.ebb_records WHERE sync = $1 AND id = ANY($2::text[])",
        quote_ident(schema)
    )
}

/// Forgets a sync's records and what its hashes covered. `$1` sync.
pub fn reset(schema: &str) -> [String; 2] {
    let s = quote_ident(schema);
    [
        format!("DELETE FROM {s}.ebb_records WHERE sync = $1"),
        format!("DELETE FROM {s}.ebb_syncs WHERE sync = $1"),
    ]
}

/// What a sync's stored hashes cover. `$1` sync; returns `hash_version`, `columns`.
pub fn read_coverage(schema: &str) -> String {
    format!(
        "SELECT hash_version, columns FROM {}.ebb_syncs WHERE sync = $1",
        quote_ident(schema)
    )
}

/// Records what a sync's hashes cover. `$1` sync, `$2` hash version, `$3` columns.
pub fn write_coverage(schema: &str) -> String {
    format!(
        "INSERT INTO {}.ebb_syncs (sync, hash_version, columns) VALUES ($1, $2, $3) \
         ON CONFLICT (sync) DO UPDATE SET hash_version = excluded.hash_version, columns = excluded.columns, updated_at = now()",
        quote_ident(schema)
    )
}

/// The source rows of `base` (a query) with their id as text (`ebb_id`) and row hash
/// (`ebb_hash`), all columns after them.
fn hashed_source(base: &str, id: &str, columns: &[HashedColumn<'_>]) -> String {
    format!(
        "SELECT {}::text AS ebb_id, {} AS ebb_hash, ebb_q.* FROM ({base}) AS ebb_q",
        quote_ident(id),
        row_hash(columns)
    )
}

/// The diff, as one query: the rows of `base` whose id is not stored for sync `$1`, or whose
/// hash differs from the stored one, with `ebb_id`, `ebb_hash`, then the source's columns.
/// A row without an id is among them, for the mapping to reject.
pub fn changed_rows(schema: &str, base: &str, id: &str, columns: &[HashedColumn<'_>]) -> String {
    format!(
        "SELECT ebb_src.* FROM ({}) AS ebb_src LEFT JOIN {}.ebb_records AS ebb_st ON ebb_st.sync = $1 AND ebb_st.id = ebb_src.ebb_id \
         WHERE ebb_st.hash IS DISTINCT FROM ebb_src.ebb_hash",
        hashed_source(base, id, columns),
        quote_ident(schema)
    )
}

/// The ids stored for sync `$1` that `base` no longer has, sorted.
pub fn gone_ids(schema: &str, base: &str, id: &str) -> String {
    format!(
        "SELECT ebb_st.id FROM {}.ebb_records AS ebb_st WHERE ebb_st.sync = $1 \
         AND NOT EXISTS (SELECT 1 FROM ({base}) AS ebb_q WHERE ebb_q.{}::text = ebb_st.id) ORDER BY ebb_st.id",
        quote_ident(schema),
        quote_ident(id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_of_each_kind_of_column_is_pinned() {
        let (text, int, list) = (ColumnType::String, ColumnType::Int, ColumnType::List(Box::new(ColumnType::Float)));
        let sql = row_hash(&[
            HashedColumn {
                name: "e\"mail",
                ty: &text,
            },
            HashedColumn { name: "age", ty: &int },
            HashedColumn { name: "scores", ty: &list },
        ]);
        assert_eq!(
            sql,
            "md5('ebb1' || (CASE WHEN \"e\"\"mail\" IS NULL THEN 'N' ELSE 'V' || length(\"e\"\"mail\"::text)::text || ':' || \"e\"\"mail\"::text END) \
             || (CASE WHEN \"age\" IS NULL THEN 'N' ELSE 'V' || length(\"age\"::int8::text)::text || ':' || \"age\"::int8::text END) \
             || (CASE WHEN \"scores\" IS NULL THEN 'N' ELSE 'L' || cardinality(\"scores\")::text || ':' || coalesce((SELECT string_agg(\
             CASE WHEN ebb_e IS NULL THEN 'N' ELSE 'V' || length(encode(float8send(ebb_e::float8), 'hex'))::text || ':' || \
             encode(float8send(ebb_e::float8), 'hex') END, '' ORDER BY ebb_o) FROM unnest(\"scores\") WITH ORDINALITY AS ebb_u(ebb_e, ebb_o)), '') END))"
        );
    }
}
