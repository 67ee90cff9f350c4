//! The SQL of the bookkeeping tables in the warehouse's state schema: creating them, the
//! privileges a run needs there, the fencing token, the one-statement commit, and what a run
//! reads and forgets. Every statement here touches only ebb's own tables and runs with the safe
//! search path ([`super::sql::SAFE_SEARCH_PATH`]); the source's side is [`super::sql`]'s.

use super::sql::{quote_ident, quote_literal, CAT, EQ};

/// Whether `schema` exists; returns one boolean.
pub fn schema_exists() -> &'static str {
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) $1)"
}

/// Whether the bookkeeping tables exist in `schema`; returns one boolean.
pub fn tables_exist(schema: &str) -> String {
    let s = quote_literal(&quote_ident(schema));
    format!(
        "SELECT pg_catalog.to_regclass({s}{CAT}'.ebb_records') IS NOT NULL AND pg_catalog.to_regclass({s}{CAT}'.ebb_syncs') IS NOT NULL \
         AND pg_catalog.to_regclass({s}{CAT}'.ebb_fences') IS NOT NULL"
    )
}

/// The privileges a run needs, each as `(what, granted)`, where `granted` is an SQL boolean of
/// `$1`, the schema's name. The checks read the catalog only: nothing is created or written.
pub fn privileges(schema: &str, schema_exists: bool, tables_exist: bool) -> Vec<(String, String)> {
    let s = quote_ident(schema);
    if !schema_exists {
        return vec![(
            format!("CREATE on the database, to create schema {s}"),
            "$1::pg_catalog.text IS NOT NULL AND pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE')".to_string(),
        )];
    }
    let mut checks = vec![(
        format!("USAGE on schema {s}"),
        "pg_catalog.has_schema_privilege($1, 'USAGE')".to_string(),
    )];
    if !tables_exist {
        checks.push((
            format!("CREATE on schema {s}, to create its tables"),
            "pg_catalog.has_schema_privilege($1, 'CREATE')".to_string(),
        ));
        return checks;
    }
    for table in ["ebb_records", "ebb_syncs", "ebb_fences"] {
        for privilege in ["SELECT", "INSERT", "UPDATE", "DELETE"] {
            checks.push((
                format!("{privilege} on {s}.{table}"),
                format!("pg_catalog.has_table_privilege(pg_catalog.quote_ident($1){CAT}'.{table}', '{privilege}')"),
            ));
        }
    }
    checks
}

/// The bookkeeping tables in the warehouse's `schema`: one row per acknowledged record, with
/// its key as the source's text so that a person can query it and the id the destination
/// acknowledged, one per sync with what its hashes are made with, and one per sync with the
/// newest fencing token a run wrote with. Idempotent, and creates a table added since.
pub fn create_state(schema: &str) -> [String; 4] {
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
        format!("CREATE TABLE IF NOT EXISTS {s}.ebb_fences (sync text PRIMARY KEY, fence bigint NOT NULL)"),
    ]
}

/// Records fencing token `$2` for sync `$1` unless a newer one is recorded; returns a row only
/// when it was recorded.
pub fn record_fence(schema: &str) -> String {
    let s = quote_ident(schema);
    format!(
        "INSERT INTO {s}.ebb_fences AS f (sync, fence) VALUES ($1, $2) ON CONFLICT (sync) DO UPDATE SET fence = excluded.fence \
         WHERE f.fence OPERATOR(pg_catalog.<=) excluded.fence RETURNING 1"
    )
}

/// The newest fencing token recorded for sync `$1`, or 0.
pub fn newest_fence(schema: &str) -> String {
    format!(
        "SELECT COALESCE((SELECT fence FROM {}.ebb_fences WHERE sync{EQ}$1), 0)",
        quote_ident(schema)
    )
}

/// One commit window, in one statement (so one round trip, and atomic), fenced: the run's
/// fencing token is recorded unless a newer one is, and nothing else is written unless it was.
/// Then: the sync's other records forgotten when asked, acknowledged upserts, acknowledged
/// deletes, and what the hashes cover when the run has not written it yet.
/// `$1` sync, `$2` keys, `$3` ids as sent, `$4` hashes, `$5` deleted keys, `$6` whether to write
/// the coverage, `$7` hash version, `$8` salt, `$9` columns, `$10` destination, `$11` the
/// fencing token, `$12` whether to forget the records not upserted. Returns whether the token
/// was recorded, and the newest one before this statement.
pub fn commit(schema: &str) -> String {
    let s = quote_ident(schema);
    let fenced = "EXISTS (SELECT 1 FROM ebb_fence)";
    format!(
        "WITH ebb_fence AS (INSERT INTO {s}.ebb_fences AS f (sync, fence) VALUES ($1, $11) ON CONFLICT (sync) \
         DO UPDATE SET fence = excluded.fence WHERE f.fence OPERATOR(pg_catalog.<=) excluded.fence RETURNING 1), \
         ebb_forget AS (DELETE FROM {s}.ebb_records WHERE sync{EQ}$1 AND $12 AND {fenced} \
         AND id OPERATOR(pg_catalog.<>) ALL($2::pg_catalog.text[]) RETURNING 1), \
         ebb_up AS (INSERT INTO {s}.ebb_records (sync, id, sent_as, hash) \
         SELECT $1, u.id, u.sent_as, u.hash FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.text[]), \
         pg_catalog.unnest($3::pg_catalog.text[]), pg_catalog.unnest($4::pg_catalog.text[])) AS u(id, sent_as, hash) WHERE {fenced} \
         ON CONFLICT (sync, id) DO UPDATE SET sent_as = excluded.sent_as, hash = excluded.hash, synced_at = pg_catalog.now() RETURNING 1), \
         ebb_del AS (DELETE FROM {s}.ebb_records WHERE sync{EQ}$1 AND id{EQ}ANY($5::pg_catalog.text[]) AND NOT $12 AND {fenced} RETURNING 1), \
         ebb_cov AS (INSERT INTO {s}.ebb_syncs (sync, hash_version, salt, columns, destination) SELECT $1, $7, $8, $9, $10 WHERE $6 AND {fenced} \
         ON CONFLICT (sync) DO UPDATE SET hash_version = excluded.hash_version, salt = excluded.salt, columns = excluded.columns, \
         destination = excluded.destination, updated_at = pg_catalog.now() RETURNING 1) \
         SELECT {fenced}, COALESCE((SELECT fence FROM {s}.ebb_fences WHERE sync{EQ}$1), 0), \
         (SELECT pg_catalog.count(*) FROM ebb_forget), (SELECT pg_catalog.count(*) FROM ebb_up), \
         (SELECT pg_catalog.count(*) FROM ebb_del), (SELECT pg_catalog.count(*) FROM ebb_cov)"
    )
}

/// Forgets a sync's records. `$1` sync.
pub fn forget_records(schema: &str) -> String {
    format!("DELETE FROM {}.ebb_records WHERE sync{EQ}$1", quote_ident(schema))
}

/// Forgets what a sync's hashes cover. `$1` sync.
pub fn forget_coverage(schema: &str) -> String {
    format!("DELETE FROM {}.ebb_syncs WHERE sync{EQ}$1", quote_ident(schema))
}

/// What a sync's stored hashes cover, and how many there are. `$1` sync; returns
/// `hash_version`, `salt`, `columns`, `destination` (NULL when nothing is recorded), `records`.
pub fn read_coverage(schema: &str) -> String {
    let s = quote_ident(schema);
    format!(
        "SELECT c.hash_version, c.salt, c.columns, c.destination, (SELECT pg_catalog.count(*) FROM {s}.ebb_records WHERE sync{EQ}$1) \
         FROM (SELECT 1) AS one LEFT JOIN {s}.ebb_syncs AS c ON c.sync{EQ}$1"
    )
}
