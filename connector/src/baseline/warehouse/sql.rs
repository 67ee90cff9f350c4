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
//!
//! **Nothing is looked up by name.** A role that may create functions in a schema on the search
//! path could plant `public.cardinality(float8[])`, which PostgreSQL prefers to the catalog's
//! `cardinality(anyarray)` as the closer match, and ebb's query would run it as ebb's role. So
//! every function and operator ebb writes is the catalog's by name (`pg_catalog.md5`,
//! `OPERATOR(pg_catalog.||)`), the statements that touch only ebb's own tables run with
//! `search_path` set to `pg_catalog, pg_temp`, and values (the salt, the identity template's
//! text, the sync's name) are bound as parameters, never written into the SQL.

use super::{DiffQuery, HashedColumn, KeyPart, RowKey, WAREHOUSE_HASH_VERSION};
use crate::column::ColumnType;

/// Text concatenation, the catalog's.
pub(super) const CAT: &str = " OPERATOR(pg_catalog.||) ";
/// Equality, the catalog's.
pub(super) const EQ: &str = " OPERATOR(pg_catalog.=) ";

/// For the statements that read and write only ebb's own tables, as the first of their
/// transaction: nothing is found on a schema another role can create in.
pub use crate::source::postgres::{quote_ident, SAFE_SEARCH_PATH};

/// The SQL of a query and the text values its placeholders stand for, from `$first` on.
#[derive(Debug, Default)]
pub struct Params {
    first: usize,
    pub texts: Vec<String>,
}

impl Params {
    pub fn from(first: usize) -> Params {
        Params { first, texts: Vec::new() }
    }

    /// A placeholder for `text`.
    fn text(&mut self, text: &str) -> String {
        self.texts.push(text.to_string());
        format!("${}::pg_catalog.text", self.first + self.texts.len() - 1)
    }
}

/// The canonical text of a non-NULL scalar `value` (an SQL expression) of type `ty`.
fn scalar_text(value: &str, ty: &ColumnType) -> String {
    match ty {
        // A column of no type is NULL in every row, so its text is never taken.
        ColumnType::String | ColumnType::Null => format!("{value}::pg_catalog.text"),
        ColumnType::Int | ColumnType::UInt => format!("{value}::pg_catalog.int8::pg_catalog.text"),
        ColumnType::Float => {
            format!("pg_catalog.encode(pg_catalog.float8send({value}::pg_catalog.float8), 'hex')")
        }
        ColumnType::Decimal => format!("{value}::pg_catalog.numeric::pg_catalog.text"),
        ColumnType::Bool => format!("CASE WHEN {value} THEN 't' ELSE 'f' END"),
        ColumnType::Date => format!(
            "CASE WHEN pg_catalog.isfinite({value}::pg_catalog.date) THEN ({value}::pg_catalog.date OPERATOR(pg_catalog.-) \
             DATE '2000-01-01')::pg_catalog.text ELSE {value}::pg_catalog.text END"
        ),
        // `EXTRACT(… FROM …)` is syntax: the parser itself names `pg_catalog`'s function.
        ColumnType::Timestamp => format!("EXTRACT(epoch FROM {value})::pg_catalog.text"),
        // Lists of lists are not read (see `ColumnType::from_arrow` and the PostgreSQL source).
        ColumnType::List(inner) => scalar_text(value, inner),
    }
}

/// `N`, or `V<length>:<text>`, of a scalar.
fn piece(value: &str, ty: &ColumnType) -> String {
    let text = scalar_text(value, ty);
    format!("CASE WHEN {value} IS NULL THEN 'N' ELSE 'V'{CAT}pg_catalog.length({text})::pg_catalog.text{CAT}':'{CAT}{text} END")
}

/// The piece of one column: a scalar's, or a list's. A list of strings, integers or booleans is
/// `J` and its JSON text (`array_to_json`, which no setting changes for these types, and which
/// ends where its brackets close); a list of floats, whose JSON would follow
/// `extra_float_digits`, is `L<count>:` and its elements' pieces.
fn column_piece(column: &HashedColumn<'_>) -> String {
    let value = quote_ident(column.name);
    let json = |cast: &str| {
        format!("CASE WHEN {value} IS NULL THEN 'N' ELSE 'J'{CAT}pg_catalog.array_to_json({value}::{cast})::pg_catalog.text END")
    };
    match column.ty {
        ColumnType::List(inner) => match inner.as_ref() {
            ColumnType::String => json("pg_catalog.text[]"),
            ColumnType::Int | ColumnType::UInt => json("pg_catalog.int8[]"),
            ColumnType::Bool => json("pg_catalog.bool[]"),
            _ => {
                let element = piece("ebb_e", inner);
                format!(
                    "CASE WHEN {value} IS NULL THEN 'N' ELSE 'L'{CAT}pg_catalog.cardinality({value})::pg_catalog.text{CAT}':'{CAT}\
                     coalesce((SELECT pg_catalog.string_agg({element}, '' ORDER BY ebb_o) \
                     FROM pg_catalog.unnest({value}) WITH ORDINALITY AS ebb_u(ebb_e, ebb_o)), '') END"
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
    parts.join(CAT)
}

/// An SQL string literal (`standard_conforming_strings`, on since PostgreSQL 9.1).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The row hash, 32 hex digits, as one SQL expression: the md5 of the salt and the canonical
/// text. `salt` is an SQL expression of type text (a placeholder), or empty for none.
pub fn row_hash(salt: &str, columns: &[HashedColumn<'_>]) -> String {
    match salt {
        "" => format!("pg_catalog.md5({})", canonical_text(columns)),
        salt => format!("pg_catalog.md5({salt}{CAT}{})", canonical_text(columns)),
    }
}

/// A row's key as one SQL expression: the identity's column as text, or its template, whose
/// text goes in `params`.
pub fn key_expression(key: &RowKey, params: &mut Params) -> String {
    let parts: Vec<String> = key
        .parts
        .iter()
        .map(|part| match part {
            KeyPart::Text(text) => params.text(text),
            KeyPart::Column(name) => format!("{}::pg_catalog.text", quote_ident(name)),
        })
        .collect();
    let joined = match parts.len() {
        0 => "NULL::pg_catalog.text".to_string(),
        1 => parts[0].clone(),
        _ => format!("({})", parts.join(CAT)),
    };
    match key.lowercase {
        true => format!("pg_catalog.lower(pg_catalog.btrim({joined}))"),
        false => joined,
    }
}

/// The diff, as one query: the rows of `base` (a query) whose key is not stored for sync `$1`
/// or whose hash differs from the stored one, every row if `$2`, and the rows whose key is in
/// `$3`; `$4` is the salt, and the identity template's text follows from `$5`. Returns
/// `ebb_key`, `ebb_hash`, `ebb_stored`, then `select` (expressions over the source's columns).
/// A row without a key is among them, for the mapping to reject.
pub fn changed_rows(schema: &str, base: &str, query: &DiffQuery, select: &[String]) -> (String, Params) {
    let columns: Vec<HashedColumn<'_>> = query.columns.iter().map(|(name, ty)| HashedColumn { name, ty }).collect();
    let mut params = Params::from(5);
    let key = key_expression(&query.key, &mut params);
    // `a IS DISTINCT FROM b` would look `=` up by name; the row's hash is never NULL, so this
    // is the same test with the catalog's operator.
    let sql = format!(
        "SELECT ebb_src.ebb_key, ebb_src.ebb_hash, ebb_st.hash IS NOT NULL AS ebb_stored, {} \
         FROM (SELECT {key} AS ebb_key, {} AS ebb_hash, ebb_q.* FROM ({base}) AS ebb_q{narrowed}) AS ebb_src \
         LEFT JOIN {}.ebb_records AS ebb_st ON ebb_st.sync{EQ}$1 AND ebb_st.id{EQ}ebb_src.ebb_key \
         WHERE $2 OR (ebb_st.hash{EQ}ebb_src.ebb_hash) IS NOT TRUE OR ebb_src.ebb_key{EQ}ANY($3::pg_catalog.text[])",
        select.join(", "),
        row_hash("$4::pg_catalog.text", &columns),
        quote_ident(schema),
        narrowed = query.narrowed.as_ref().map(|c| format!(" WHERE {c}")).unwrap_or_default()
    );
    (sql, params)
}

/// Whether column `$2` of table `$1` (a quoted, qualified name) has a unique index of its own
/// (not partial): then no two rows share a key, and the duplicate query can be skipped.
pub fn unique_column() -> &'static str {
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a \
     ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid AND a.attnum OPERATOR(pg_catalog.=) i.indkey[0] \
     WHERE i.indrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass AND i.indisunique AND i.indnkeyatts OPERATOR(pg_catalog.=) 1 \
     AND i.indpred IS NULL AND a.attname OPERATOR(pg_catalog.=) $2)"
}

/// The keys that more than one row of `base` has; the identity template's text from `$1`.
pub fn duplicate_keys(base: &str, key: &RowKey) -> (String, Params) {
    let mut params = Params::from(1);
    let sql = format!(
        "SELECT ebb_key FROM (SELECT {} AS ebb_key FROM ({base}) AS ebb_q) AS ebb_k WHERE ebb_key IS NOT NULL \
         GROUP BY ebb_key HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 1",
        key_expression(key, &mut params)
    );
    (sql, params)
}

/// The keys and sent ids stored for sync `$1` that no row of `base` has, sorted by key; the
/// identity template's text from `$2`.
pub fn gone(schema: &str, base: &str, key: &RowKey) -> (String, Params) {
    let mut params = Params::from(2);
    let sql = format!(
        "SELECT ebb_st.id, ebb_st.sent_as FROM {}.ebb_records AS ebb_st WHERE ebb_st.sync{EQ}$1 \
         AND NOT EXISTS (SELECT 1 FROM ({base}) AS ebb_q WHERE {}{EQ}ebb_st.id) ORDER BY ebb_st.id",
        quote_ident(schema),
        key_expression(key, &mut params)
    );
    (sql, params)
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
        let c = " OPERATOR(pg_catalog.||) ";
        assert_eq!(
            sql,
            format!(
                "pg_catalog.md5('ebb1'{c}(CASE WHEN \"e\"\"mail\" IS NULL THEN 'N' ELSE 'V'{c}pg_catalog.length(\"e\"\"mail\"::pg_catalog.text)\
                 ::pg_catalog.text{c}':'{c}\"e\"\"mail\"::pg_catalog.text END){c}(CASE WHEN \"age\" IS NULL THEN 'N' ELSE 'V'{c}\
                 pg_catalog.length(\"age\"::pg_catalog.int8::pg_catalog.text)::pg_catalog.text{c}':'{c}\"age\"::pg_catalog.int8::pg_catalog.text END)\
                 {c}(CASE WHEN \"scores\" IS NULL THEN 'N' ELSE 'L'{c}pg_catalog.cardinality(\"scores\")::pg_catalog.text{c}':'{c}\
                 coalesce((SELECT pg_catalog.string_agg(CASE WHEN ebb_e IS NULL THEN 'N' ELSE 'V'{c}pg_catalog.length(pg_catalog.encode(\
                 pg_catalog.float8send(ebb_e::pg_catalog.float8), 'hex'))::pg_catalog.text{c}':'{c}pg_catalog.encode(pg_catalog.float8send(\
                 ebb_e::pg_catalog.float8), 'hex') END, '' ORDER BY ebb_o) FROM pg_catalog.unnest(\"scores\") WITH ORDINALITY AS ebb_u(ebb_e, ebb_o)), '') END))"
            )
        );
        let tags = ColumnType::List(Box::new(ColumnType::String));
        assert_eq!(
            canonical_text(&[HashedColumn { name: "tags", ty: &tags }]),
            format!("'ebb1'{c}(CASE WHEN \"tags\" IS NULL THEN 'N' ELSE 'J'{c}pg_catalog.array_to_json(\"tags\"::pg_catalog.text[])::pg_catalog.text END)")
        );
    }

    #[test]
    fn every_name_the_diff_writes_is_the_catalogs_and_every_value_a_parameter() {
        let query = DiffQuery {
            sync: "users".into(),
            key: RowKey {
                parts: vec![KeyPart::Text("user-'; DROP TABLE x; --".into()), KeyPart::Column("id".into())],
                lowercase: true,
            },
            columns: vec![
                ("tags".into(), ColumnType::List(Box::new(ColumnType::Float))),
                ("born".into(), ColumnType::Date),
                ("seen".into(), ColumnType::Timestamp),
            ],
            salt: "s'alt".into(),
            everything: false,
            also: Vec::new(),
            narrowed: crate::source::postgres::cursor_condition(
                &crate::source::Since {
                    column: "seen".into(),
                    from: 0,
                },
                &[("seen".into(), ColumnType::Timestamp)],
            ),
            cursor: None,
        };
        let (sql, params) = changed_rows("ebb_state", "SELECT * FROM t", &query, &["ebb_src.\"tags\"".into()]);
        assert_eq!(params.texts, vec!["user-'; DROP TABLE x; --".to_string()]);
        assert!(
            sql.contains("$5::pg_catalog.text") && !sql.contains("DROP") && !sql.contains("s'alt"),
            "{sql}"
        );
        // Every call is to a function in pg_catalog, and every operator is the catalog's.
        let words: Vec<&str> = sql
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '('))
            .collect();
        for word in words.iter().filter(|w| w.ends_with('(') && w.len() > 1) {
            let name = word.trim_end_matches('(');
            assert!(
                // Syntax, not a name looked up: the parser turns these into the catalog's own.
                name.starts_with("pg_catalog.") || ["coalesce", "ANY", "OPERATOR", "ebb_u", "AS", "EXTRACT"].contains(&name),
                "{name} is looked up by name in {sql}"
            );
        }
        for bare in [" || ", " = ", " - ", " >= ", " IS DISTINCT FROM "] {
            assert!(!sql.contains(bare), "{bare:?} in {sql}");
        }
    }
}
