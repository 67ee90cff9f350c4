//! The warehouse-side diff against a real PostgreSQL. So far its row hash: golden vectors of
//! the canonical text and the md5 for every supported type, NULL, empty values, delimiters
//! inside values, unicode and arrays, the same under any session settings.

mod common;

use common::{database_url, TempSchema};
use ebb::column::ColumnType;
use ebb::warehouse::{postgres, HashedColumn};
use sqlx::Connection;

/// Every type the PostgreSQL source reads, as `(column, SQL type, logical type)`.
fn columns() -> Vec<(&'static str, &'static str, ColumnType)> {
    use ColumnType as T;
    let list = |t: T| T::List(Box::new(t));
    vec![
        ("s", "text", T::String),
        ("i", "int4", T::Int),
        ("f4", "float4", T::Float),
        ("f8", "float8", T::Float),
        ("d", "numeric", T::Decimal),
        ("bo", "bool", T::Bool),
        ("dt", "date", T::Date),
        ("ts", "timestamp", T::Timestamp),
        ("tz", "timestamptz", T::Timestamp),
        ("ls", "text[]", list(T::String)),
        ("li", "int8[]", list(T::Int)),
        ("lf", "float8[]", list(T::Float)),
        ("lb", "bool[]", list(T::Bool)),
    ]
}

const ROWS: &str = "
    (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (2, '', 0, 0, 0, 0, false, '2000-01-01', '2000-01-01 00:00:00', '2000-01-01 00:00:00+00', '{}', '{}', '{}', '{}'),
    (3, 'V3:a|N''s', -5, 0.1, -1.5, 1.50, true, '1999-12-31', '2026-11-30 12:34:56.789012', '2026-11-30 12:34:56.5+02',
        '{\"a:b\",NULL,\"\"}', '{1,NULL,-3}', '{0.1,NULL}', '{true,NULL,false}'),
    (4, 'Zoë 🎉 naïve', 2147483647, 'NaN', '-Infinity', 'NaN', false, 'infinity', '-infinity', 'infinity',
        '{\"Zoë\"}', '{9223372036854775807}', '{-0}', '{}')";

/// The canonical text and hash of each row, under the session settings `settings`.
async fn hashed(conn: &mut sqlx::PgConnection, schema: &str, settings: &str) -> Vec<(String, String)> {
    sqlx::raw_sql(settings).execute(&mut *conn).await.expect("settings");
    let cols = columns();
    let hashed: Vec<HashedColumn<'_>> = cols.iter().map(|(name, _, ty)| HashedColumn { name, ty }).collect();
    let sql = format!(
        "SELECT {} AS text, {} AS hash FROM \"{schema}\".golden ORDER BY k",
        postgres::canonical_text(&hashed),
        postgres::row_hash(&hashed)
    );
    sqlx::query_as(&sql).fetch_all(&mut *conn).await.expect("the hash query runs")
}

/// Checked by hand against the table of `ebb::warehouse::postgres`, and the md5s with Python's
/// hashlib over the UTF-8 text.
const GOLDEN: [(&str, &str); 4] = [
    ("ebb1NNNNNNNNNNNNN", "5d5023e80c7b1e5a81f39e9f315e78b2"),
    (
        "ebb1V0:V1:0V16:0000000000000000V16:0000000000000000V1:0V1:fV1:0V16:946684800.000000V16:946684800.000000L0:L0:L0:L0:",
        "76290a97e1634c93cbb2acbbb8dae213",
    ),
    (
        "ebb1V8:V3:a|N'sV2:-5V16:3fb99999a0000000V16:bff8000000000000V4:1.50V1:tV2:-1V17:1796042096.789012V17:1796034896.500000\
         L3:V3:a:bNV0:L3:V1:1NV2:-3L2:V16:3fb999999999999aNL3:V1:tNV1:f",
        "d83feb54a82430be89f3b83c15c29b9c",
    ),
    (
        "ebb1V11:Zoë 🎉 naïveV10:2147483647V16:7ff8000000000000V16:fff0000000000000V3:NaNV1:fV8:infinityV9:-InfinityV8:Infinity\
         L1:V3:ZoëL1:V19:9223372036854775807L1:V16:8000000000000000L0:",
        "2d3a83f2f8dee7c468a6c494df25e648",
    ),
];

#[tokio::test]
async fn every_type_hashes_to_its_golden_vector_whatever_the_session_settings() {
    let temp = TempSchema::new("ebb_wh_hash");
    let schema = temp.name.clone();
    let mut conn = sqlx::PgConnection::connect(&database_url())
        .await
        .expect("PostgreSQL at DATABASE_URL");
    let defs: Vec<String> = columns().iter().map(|(c, t, _)| format!("{c} {t}")).collect();
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA \"{schema}\"; CREATE TABLE \"{schema}\".golden (k int PRIMARY KEY, {}); INSERT INTO \"{schema}\".golden VALUES {ROWS};",
        defs.join(", ")
    ))
    .execute(&mut conn)
    .await
    .expect("golden table");
    let plain = hashed(&mut conn, &schema, "RESET ALL").await;
    assert_eq!(plain.len(), GOLDEN.len());
    for (got, want) in plain.iter().zip(GOLDEN) {
        assert_eq!((got.0.as_str(), got.1.as_str()), want);
    }
    let other = hashed(
        &mut conn,
        &schema,
        "SET DateStyle = 'SQL, DMY'; SET TimeZone = 'Asia/Kathmandu'; SET extra_float_digits = 0; SET IntervalStyle = 'iso_8601'",
    )
    .await;
    assert_eq!(other, plain, "session settings change nothing");
}

#[tokio::test]
async fn values_cannot_imitate_the_delimiters() {
    let mut conn = sqlx::PgConnection::connect(&database_url())
        .await
        .expect("PostgreSQL at DATABASE_URL");
    let text = ColumnType::String;
    let list = ColumnType::List(Box::new(ColumnType::String));
    let two = [HashedColumn { name: "a", ty: &text }, HashedColumn { name: "b", ty: &text }];
    let expression = postgres::row_hash(&two);
    // Pairs that a plain concatenation, or a NULL spelt as text, would confuse.
    let pairs = [
        ("'ab'", "'c'"),
        ("'a'", "'bc'"),
        ("NULL", "'c'"),
        ("'N'", "'c'"),
        ("''", "NULL"),
        ("NULL", "''"),
        ("'V1:x'", "''"),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (a, b) in pairs {
        let hash: String = sqlx::query_scalar(&format!("SELECT {expression} FROM (SELECT {a}::text AS a, {b}::text AS b) t"))
            .fetch_one(&mut conn)
            .await
            .expect("hash");
        assert!(seen.insert(hash), "({a}, {b}) hashes like an earlier pair");
    }
    let one = [HashedColumn { name: "l", ty: &list }];
    let expression = postgres::row_hash(&one);
    let lists = [
        "NULL",
        "'{}'",
        "'{\"\"}'",
        "'{NULL}'",
        "'{\"a\",\"b\"}'",
        "'{\"a,b\"}'",
        "'{\"b\",\"a\"}'",
    ];
    for l in lists {
        let hash: String = sqlx::query_scalar(&format!("SELECT {expression} FROM (SELECT {l}::text[] AS l) t"))
            .fetch_one(&mut conn)
            .await
            .expect("hash");
        assert!(seen.insert(hash), "list {l} hashes like an earlier value");
    }
}

/// `(ebb_id, ebb_hash)` of each row the diff query `changed` returns for `sync`, by id.
async fn diff(conn: &mut sqlx::PgConnection, changed: &str, sync: &str) -> Vec<(Option<String>, String)> {
    sqlx::query_as(&format!("SELECT ebb_id, ebb_hash FROM ({changed}) d ORDER BY ebb_id"))
        .bind(sync)
        .fetch_all(conn)
        .await
        .expect("the diff query runs")
}

/// The bookkeeping tables, a commit through them, and the diff queries, on a table that
/// changes: exactly the new and changed rows come back, and the deleted ids as gone.
#[tokio::test]
async fn the_diff_query_finds_exactly_the_new_and_changed_rows_and_the_gone_ids() {
    let temp = TempSchema::new("ebb_wh_diff");
    let (schema, state) = (temp.name.clone(), format!("{}_state", temp.name));
    let _state_temp = TempSchema { name: state.clone() };
    let mut conn = sqlx::PgConnection::connect(&database_url())
        .await
        .expect("PostgreSQL at DATABASE_URL");
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA \"{schema}\";
         CREATE TABLE \"{schema}\".people (id text, email text, age int, tags text[]);
         INSERT INTO \"{schema}\".people SELECT 'p' || g, 'p' || g || '@example.com', g, ARRAY['t' || (g % 3)] FROM generate_series(1, 1000) g;"
    ))
    .execute(&mut conn)
    .await
    .expect("source table");
    sqlx::raw_sql(&postgres::create_state(&state))
        .execute(&mut conn)
        .await
        .expect("state tables");
    sqlx::raw_sql(&postgres::create_state(&state))
        .execute(&mut conn)
        .await
        .expect("creating twice is harmless");
    let (text, int, list) = (ColumnType::String, ColumnType::Int, ColumnType::List(Box::new(ColumnType::String)));
    let cols = [
        HashedColumn { name: "email", ty: &text },
        HashedColumn { name: "age", ty: &int },
        HashedColumn { name: "tags", ty: &list },
    ];
    let base = format!("SELECT * FROM \"{schema}\".people");
    let changed = postgres::changed_rows(&state, &base, "id", &cols);
    // Empty state: every row is new.
    let first = diff(&mut conn, &changed, "people").await;
    assert_eq!(first.len(), 1000);
    // Commit them all, in one round trip.
    let (ids, hashes): (Vec<String>, Vec<String>) = first.iter().map(|(id, h)| (id.clone().expect("id"), h.clone())).unzip();
    let done = sqlx::query(&postgres::commit_upserts(&state))
        .bind("people")
        .bind(&ids)
        .bind(&hashes)
        .execute(&mut conn)
        .await
        .expect("commit");
    assert_eq!(done.rows_affected(), 1000);
    assert!(diff(&mut conn, &changed, "people").await.is_empty(), "nothing changed");
    assert_eq!(diff(&mut conn, &changed, "other-sync").await.len(), 1000, "state is per sync");
    // Change a value and two lists, delete a row, add one and a row without an id.
    sqlx::raw_sql(&format!(
        "UPDATE \"{schema}\".people SET age = 99 WHERE id = 'p5';
         UPDATE \"{schema}\".people SET tags = ARRAY['t2', 't1'] WHERE id = 'p7';
         UPDATE \"{schema}\".people SET tags = ARRAY['t1', 't2'] WHERE id = 'p8';
         DELETE FROM \"{schema}\".people WHERE id = 'p9';
         INSERT INTO \"{schema}\".people VALUES ('p1001', 'new@example.com', 1, '{{}}'), (NULL, 'no-id@example.com', 2, NULL);"
    ))
    .execute(&mut conn)
    .await
    .expect("changes");
    let after: Vec<Option<String>> = diff(&mut conn, &changed, "people").await.into_iter().map(|(id, _)| id).collect();
    let want: Vec<Option<String>> = vec![Some("p1001".into()), Some("p5".into()), Some("p7".into()), Some("p8".into()), None];
    assert_eq!(after, want);
    let gone: Vec<String> = sqlx::query_scalar(&postgres::gone_ids(&state, &base, "id"))
        .bind("people")
        .fetch_all(&mut conn)
        .await
        .expect("gone");
    assert_eq!(gone, vec!["p9".to_string()]);
    // Deletes and a reset leave nothing of the sync.
    sqlx::query(&postgres::commit_deletes(&state))
        .bind("people")
        .bind(vec!["p9".to_string()])
        .execute(&mut conn)
        .await
        .expect("delete");
    let gone: Vec<String> = sqlx::query_scalar(&postgres::gone_ids(&state, &base, "id"))
        .bind("people")
        .fetch_all(&mut conn)
        .await
        .expect("gone");
    assert!(gone.is_empty());
    sqlx::query(&postgres::write_coverage(&state))
        .bind("people")
        .bind(1_i32)
        .bind("email,age,tags")
        .execute(&mut conn)
        .await
        .expect("coverage");
    let coverage: Option<(i32, String)> = sqlx::query_as(&postgres::read_coverage(&state))
        .bind("people")
        .fetch_optional(&mut conn)
        .await
        .expect("read");
    assert_eq!(coverage, Some((1, "email,age,tags".to_string())));
    for statement in postgres::reset(&state) {
        sqlx::query(&statement).bind("people").execute(&mut conn).await.expect("reset");
    }
    assert_eq!(
        diff(&mut conn, &changed, "people").await.len(),
        1001,
        "after a reset every row is new again"
    );
    let coverage: Option<(i32, String)> = sqlx::query_as(&postgres::read_coverage(&state))
        .bind("people")
        .fetch_optional(&mut conn)
        .await
        .expect("read");
    assert_eq!(coverage, None);
}
