//! The PostgreSQL dialect: plain SQL that PostgreSQL-compatible engines accept.
//!
//! **The canonical text** of a row is `ebb<version>` followed by one piece per mapped column,
//! in the mapping's order. A piece is `N` for NULL, or `V` and the value's canonical text with
//! its length in characters before it (`V5:hello`), so that no value can imitate a delimiter.
//! A list of strings, integers or booleans is `J` and its JSON array (self-delimiting, and a
//! function call rather than a subquery per row: lists were most of the hash's cost); a list of
//! floats is `L`, its element count, `:`, then one piece per element. Each type's text is
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

use super::{DiffQuery, HashedColumn, KeyPart, RowKey, WAREHOUSE_HASH_VERSION};
use crate::column::ColumnType;

/// A PostgreSQL identifier, quoted.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The canonical text of a non-NULL scalar `value` (an SQL expression) of type `ty`.
fn scalar_text(value: &str, ty: &ColumnType) -> String {
    match ty {
        // A column of no type is NULL in every row, so its text is never taken.
        ColumnType::String | ColumnType::Null => format!("{value}::text"),
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

/// The piece of one column: a scalar's, or a list's. A list of strings, integers or booleans is
/// `J` and its JSON text (`array_to_json`, which no setting changes for these types, and which
/// ends where its brackets close); a list of floats, whose JSON would follow
/// `extra_float_digits`, is `L<count>:` and its elements' pieces.
fn column_piece(column: &HashedColumn<'_>) -> String {
    let value = quote_ident(column.name);
    let json = |cast: &str| format!("CASE WHEN {value} IS NULL THEN 'N' ELSE 'J' || array_to_json({value}::{cast})::text END");
    match column.ty {
        ColumnType::List(inner) => match inner.as_ref() {
            ColumnType::String => json("text[]"),
            ColumnType::Int | ColumnType::UInt => json("int8[]"),
            ColumnType::Bool => json("bool[]"),
            _ => {
                let element = piece("ebb_e", inner);
                format!(
                    "CASE WHEN {value} IS NULL THEN 'N' ELSE 'L' || cardinality({value})::text || ':' || \
                     coalesce((SELECT string_agg({element}, '' ORDER BY ebb_o) FROM unnest({value}) WITH ORDINALITY AS ebb_u(ebb_e, ebb_o)), '') END"
                )
            }
        },
        scalar => piece(&value, scalar),
    }
}

/// The canonical text of a row of `columns`, as one SQL expression.
pub fn canonical_text(columns: &[HashedColumn<'_>]) -> String {
    let mut parts = vec![format!("'ebb{WAREHOUSE_HASH_VERSION}'")];
    parts.extend(columns.iter().map(|c| format!("({})", column_piece(c))));
    parts.join(" || ")
}

/// An SQL string literal (`standard_conforming_strings`, on since PostgreSQL 9.1).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The row hash, 32 hex digits, as one SQL expression: the md5 of `salt` and the canonical text.
pub fn row_hash(salt: &str, columns: &[HashedColumn<'_>]) -> String {
    match salt {
        "" => format!("md5({})", canonical_text(columns)),
        salt => format!("md5({} || {})", quote_literal(salt), canonical_text(columns)),
    }
}

/// A row's key as one SQL expression: the identity's column as text, or its template.
pub fn key_expression(key: &RowKey) -> String {
    let parts: Vec<String> = key
        .parts
        .iter()
        .map(|part| match part {
            KeyPart::Text(text) => quote_literal(text),
            KeyPart::Column(name) => format!("{}::text", quote_ident(name)),
        })
        .collect();
    let joined = match parts.len() {
        0 => "NULL::text".to_string(),
        1 => parts[0].clone(),
        _ => format!("({})", parts.join(" || ")),
    };
    match key.lowercase {
        true => format!("lower(btrim({joined}))"),
        false => joined,
    }
}

/// Whether `schema` exists; returns one boolean.
pub fn schema_exists() -> &'static str {
    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)"
}

/// Whether the bookkeeping tables exist in `schema`; returns one boolean.
pub fn tables_exist(schema: &str) -> String {
    let s = quote_literal(&quote_ident(schema));
    format!("SELECT to_regclass({s} || '.ebb_records') IS NOT NULL AND to_regclass({s} || '.ebb_syncs') IS NOT NULL")
}

/// The privileges a run needs, each as `(what, granted)`, where `granted` is an SQL boolean of
/// `$1`, the schema's name. The checks read the catalog only: nothing is created or written.
pub fn privileges(schema: &str, schema_exists: bool, tables_exist: bool) -> Vec<(String, String)> {
    let s = quote_ident(schema);
    if !schema_exists {
        return vec![(
            format!("CREATE on the database, to create schema {s}"),
            "$1::text IS NOT NULL AND has_database_privilege(current_database(), 'CREATE')".to_string(),
        )];
    }
    let mut checks = vec![(format!("USAGE on schema {s}"), "has_schema_privilege($1, 'USAGE')".to_string())];
    if !tables_exist {
        checks.push((
            format!("CREATE on schema {s}, to create its tables"),
            "has_schema_privilege($1, 'CREATE')".to_string(),
        ));
        return checks;
    }
    for table in ["ebb_records", "ebb_syncs"] {
        for privilege in ["SELECT", "INSERT", "UPDATE", "DELETE"] {
            checks.push((
                format!("{privilege} on {s}.{table}"),
                format!("has_table_privilege(quote_ident($1) || '.{table}', '{privilege}')"),
            ));
        }
    }
    checks
}

/// The bookkeeping tables in the warehouse's `schema`: one row per acknowledged record, with
/// its key as the source's text so that a person can query it and the id the destination
/// acknowledged, and one per sync with what its hashes are made with. Idempotent.
pub fn create_state(schema: &str) -> [String; 3] {
    let s = quote_ident(schema);
    [
        format!("CREATE SCHEMA IF NOT EXISTS {s}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.ebb_records (sync text NOT NULL, id text NOT NULL, sent_as text NOT NULL, \
             hash text NOT NULL, synced_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (sync, id))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.ebb_syncs (sync text PRIMARY KEY, hash_version int NOT NULL, salt text NOT NULL, \
             columns text NOT NULL, destination text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
        ),
    ]
}

/// One commit window, in one statement (so one round trip, and atomic): acknowledged upserts,
/// acknowledged deletes, and what the hashes cover when the run has not written it yet.
/// `$1` sync, `$2` keys, `$3` ids as sent, `$4` hashes, `$5` deleted keys, `$6` whether to write
/// the coverage, `$7` hash version, `$8` salt, `$9` columns, `$10` destination.
pub fn commit(schema: &str) -> String {
    let s = quote_ident(schema);
    format!(
        "WITH ebb_up AS (INSERT INTO {s}.ebb_records (sync, id, sent_as, hash) \
         SELECT $1, u.id, u.sent_as, u.hash FROM UNNEST($2::text[], $3::text[], $4::text[]) AS u(id, sent_as, hash) \
         ON CONFLICT (sync, id) DO UPDATE SET sent_as = excluded.sent_as, hash = excluded.hash, synced_at = now() RETURNING 1), \
         ebb_del AS (DELETE FROM {s}.ebb_records WHERE sync = $1 AND id = ANY($5::text[]) RETURNING 1), \
         ebb_cov AS (INSERT INTO {s}.ebb_syncs (sync, hash_version, salt, columns, destination) SELECT $1, $7, $8, $9, $10 WHERE $6 \
         ON CONFLICT (sync) DO UPDATE SET hash_version = excluded.hash_version, salt = excluded.salt, columns = excluded.columns, \
         destination = excluded.destination, updated_at = now() RETURNING 1) \
         SELECT (SELECT count(*) FROM ebb_up), (SELECT count(*) FROM ebb_del), (SELECT count(*) FROM ebb_cov)"
    )
}

/// Forgets a sync's records. `$1` sync.
pub fn forget_records(schema: &str) -> String {
    format!("DELETE FROM {}.ebb_records WHERE sync = $1", quote_ident(schema))
}

/// Forgets what a sync's hashes cover. `$1` sync.
pub fn forget_coverage(schema: &str) -> String {
    format!("DELETE FROM {}.ebb_syncs WHERE sync = $1", quote_ident(schema))
}

/// What a sync's stored hashes cover, and how many there are. `$1` sync; returns
/// `hash_version`, `salt`, `columns`, `destination` (NULL when nothing is recorded), `records`.
pub fn read_coverage(schema: &str) -> String {
    let s = quote_ident(schema);
    format!(
        "SELECT c.hash_version, c.salt, c.columns, c.destination, (SELECT count(*) FROM {s}.ebb_records WHERE sync = $1) \
         FROM (SELECT 1) AS one LEFT JOIN {s}.ebb_syncs AS c ON c.sync = $1"
    )
}

/// The diff, as one query: the rows of `base` (a query) whose key is not stored for sync `$1`
/// or whose hash differs from the stored one, every row if `$2`, and the rows whose key is in
/// `$3`. Returns `ebb_key`, `ebb_hash`, `ebb_stored`, then `select` (expressions over the
/// source's columns). A row without a key is among them, for the mapping to reject.
pub fn changed_rows(schema: &str, base: &str, query: &DiffQuery, select: &[String]) -> String {
    let columns: Vec<HashedColumn<'_>> = query.columns.iter().map(|(name, ty)| HashedColumn { name, ty }).collect();
    format!(
        "SELECT ebb_src.ebb_key, ebb_src.ebb_hash, ebb_st.hash IS NOT NULL AS ebb_stored, {} \
         FROM (SELECT {} AS ebb_key, {} AS ebb_hash, ebb_q.* FROM ({base}) AS ebb_q) AS ebb_src \
         LEFT JOIN {}.ebb_records AS ebb_st ON ebb_st.sync = $1 AND ebb_st.id = ebb_src.ebb_key \
         WHERE $2 OR ebb_st.hash IS DISTINCT FROM ebb_src.ebb_hash OR ebb_src.ebb_key = ANY($3::text[])",
        select.join(", "),
        key_expression(&query.key),
        row_hash(&query.salt, &columns),
        quote_ident(schema)
    )
}

/// Whether column `$2` of table `$1` (a quoted, qualified name) has a unique index of its own
/// (not partial): then no two rows share a key, and the duplicate query can be skipped.
pub fn unique_column() -> &'static str {
    "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
     WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL AND a.attname = $2)"
}

/// The keys that more than one row of `base` has.
pub fn duplicate_keys(base: &str, key: &RowKey) -> String {
    format!(
        "SELECT ebb_key FROM (SELECT {} AS ebb_key FROM ({base}) AS ebb_q) AS ebb_k WHERE ebb_key IS NOT NULL \
         GROUP BY ebb_key HAVING count(*) > 1",
        key_expression(key)
    )
}

/// The keys and sent ids stored for sync `$1` that no row of `base` has, sorted by key.
pub fn gone(schema: &str, base: &str, key: &RowKey) -> String {
    format!(
        "SELECT ebb_st.id, ebb_st.sent_as FROM {}.ebb_records AS ebb_st WHERE ebb_st.sync = $1 \
         AND NOT EXISTS (SELECT 1 FROM ({base}) AS ebb_q WHERE {} = ebb_st.id) ORDER BY ebb_st.id",
        quote_ident(schema),
        key_expression(key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_of_each_kind_of_column_is_pinned() {
        let (text, int, list) = (ColumnType::String, ColumnType::Int, ColumnType::List(Box::new(ColumnType::Float)));
        let sql = row_hash(
            "",
            &[
                HashedColumn {
                    name: "e\"mail",
                    ty: &text,
                },
                HashedColumn { name: "age", ty: &int },
                HashedColumn { name: "scores", ty: &list },
            ],
        );
        assert_eq!(
            sql,
            "md5('ebb1' || (CASE WHEN \"e\"\"mail\" IS NULL THEN 'N' ELSE 'V' || length(\"e\"\"mail\"::text)::text || ':' || \"e\"\"mail\"::text END) \
             || (CASE WHEN \"age\" IS NULL THEN 'N' ELSE 'V' || length(\"age\"::int8::text)::text || ':' || \"age\"::int8::text END) \
             || (CASE WHEN \"scores\" IS NULL THEN 'N' ELSE 'L' || cardinality(\"scores\")::text || ':' || coalesce((SELECT string_agg(\
             CASE WHEN ebb_e IS NULL THEN 'N' ELSE 'V' || length(encode(float8send(ebb_e::float8), 'hex'))::text || ':' || \
             encode(float8send(ebb_e::float8), 'hex') END, '' ORDER BY ebb_o) FROM unnest(\"scores\") WITH ORDINALITY AS ebb_u(ebb_e, ebb_o)), '') END))"
        );
        let tags = ColumnType::List(Box::new(ColumnType::String));
        assert_eq!(
            canonical_text(&[HashedColumn { name: "tags", ty: &tags }]),
            "'ebb1' || (CASE WHEN \"tags\" IS NULL THEN 'N' ELSE 'J' || array_to_json(\"tags\"::text[])::text END)"
        );
    }
}
