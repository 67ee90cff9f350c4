//! The warehouse-side diff's row hash against a real PostgreSQL: golden vectors of the
//! canonical text and the md5 for every supported type, NULL, empty values, delimiters inside
//! values, unicode and arrays, the same under any session settings, and the salt in front.
//! Whole syncs with `diff: warehouse` are in `warehouse_sync.rs`.

use crate::common::{database_url, TempSchema};
use ebb::baseline::warehouse::{sql as postgres, HashedColumn};
use ebb::column::ColumnType;
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
        postgres::row_hash("", &hashed)
    );
    sqlx::query_as(&sql).fetch_all(&mut *conn).await.expect("the hash query runs")
}

/// Checked by hand against the table of `ebb::baseline::warehouse::sql`, and the md5s with Python's
/// hashlib over the UTF-8 text.
const GOLDEN: [(&str, &str); 4] = [
    ("ebb1NNNNNNNNNNNNN", "5d5023e80c7b1e5a81f39e9f315e78b2"),
    (
        "ebb1V0:V1:0V16:0000000000000000V16:0000000000000000V1:0V1:fV1:0V16:946684800.000000V16:946684800.000000J[]J[]L0:J[]",
        "1573bccb67d02008a84436cc397a2cd4",
    ),
    (
        "ebb1V8:V3:a|N'sV2:-5V16:3fb99999a0000000V16:bff8000000000000V4:1.50V1:tV2:-1V17:1796042096.789012V17:1796034896.500000\
         J[\"a:b\",null,\"\"]J[1,null,-3]L2:V16:3fb999999999999aNJ[true,null,false]",
        "2658b333a66be0c5a738d2d6d201f6a1",
    ),
    (
        "ebb1V11:Zoë 🎉 naïveV10:2147483647V16:7ff8000000000000V16:fff0000000000000V3:NaNV1:fV8:infinityV9:-InfinityV8:Infinity\
         J[\"Zoë\"]J[9223372036854775807]L1:V16:8000000000000000J[]",
        "e1742f0c0c0c87e0321082ac18bc7570",
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

    // The salt (the mapping's fingerprint) goes in front of the text: md5 of it and row 1's text, by hashlib.
    let cols = columns();
    let hashed: Vec<HashedColumn<'_>> = cols.iter().map(|(name, _, ty)| HashedColumn { name, ty }).collect();
    let salted: String = sqlx::query_scalar(&format!(
        "SELECT {} FROM \"{schema}\".golden WHERE k = 1",
        postgres::row_hash("$1::text", &hashed)
    ))
    .bind("a'salt")
    .fetch_one(&mut conn)
    .await
    .expect("salted hash");
    assert_eq!(salted, "6a9f8c540a2fe6906c9a48b2e13b00d5");
}

#[tokio::test]
async fn values_cannot_imitate_the_delimiters() {
    let mut conn = sqlx::PgConnection::connect(&database_url())
        .await
        .expect("PostgreSQL at DATABASE_URL");
    let text = ColumnType::String;
    let list = ColumnType::List(Box::new(ColumnType::String));
    let two = [HashedColumn { name: "a", ty: &text }, HashedColumn { name: "b", ty: &text }];
    let expression = postgres::row_hash("", &two);
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
    let expression = postgres::row_hash("", &one);
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
