//! Every legal value of every type the PostgreSQL source reads, through a real PostgreSQL: each
//! maps, or rejects its own row with a reason that names the column and shows the value; none
//! fails the batch or the run. And the run that first showed the problem: a table of 8,200
//! people, one of them with a `timestamptz` at `infinity`, synced in mirror mode.

use std::collections::BTreeMap;

use crate::common::*;
use ebb::state::RunStatus;
use serde_json::{json, Value};

/// One row per case; `made` is the creation time of every row but one.
const TABLE: &str = "CREATE TABLE {s}.vals (
    id text, made timestamptz DEFAULT '2024-01-01 00:00:00+00', ts timestamp, tstz timestamptz, d date,
    num numeric, f4 float4, f8 float8, tags text[], nums int8[], flags bool[], ratios numeric[], txt text);
INSERT INTO {s}.vals (id, ts, tstz, d, num, f4, f8, tags, nums, flags, ratios, txt) VALUES
    ('ok', '2023-11-14 22:13:20.123456', '2023-11-14 22:13:20.123456+00', '2022-01-08', 12.50, 1.5, 0.1,
     '{a,b}', '{1,2}', '{t,f}', '{0.5,1.25}', 'hello');
INSERT INTO {s}.vals (id, ts) VALUES ('ts_inf', 'infinity'), ('ts_neg_inf', '-infinity'),
    ('ts_max', '294276-12-31 23:59:59.999999'), ('ts_bc', '4713-01-01 00:00:00 BC'), ('ts_10000', '10000-01-01 00:00:00');
INSERT INTO {s}.vals (id, tstz) VALUES ('tstz_inf', 'infinity'), ('tstz_neg_inf', '-infinity'),
    ('tstz_max', '294276-12-31 23:59:59+00'), ('tstz_last', '9999-12-31 23:59:59.999999+00');
INSERT INTO {s}.vals (id, d) VALUES ('d_inf', 'infinity'), ('d_neg_inf', '-infinity'),
    ('d_max', '5874897-12-31'), ('d_min', '4714-11-24 BC'), ('d_first', '0001-01-01');
INSERT INTO {s}.vals (id, num) VALUES ('num_nan', 'NaN'), ('num_inf', 'Infinity'), ('num_neg_inf', '-Infinity'),
    ('num_huge', 1e300), ('num_too_big', 1e400), ('num_tiny', 1e-300), ('num_scale', 2.5000000000000000000000000000000000000000000000000);
INSERT INTO {s}.vals (id, f4, f8) VALUES ('f4_nan', 'NaN', NULL), ('f4_inf', 'Infinity', NULL),
    ('f8_nan', NULL, 'NaN'), ('f8_neg_inf', NULL, '-Infinity');
INSERT INTO {s}.vals (id, tags, nums, flags, ratios) VALUES
    ('arrays_empty', '{}', '{}', '{}', '{}'),
    ('arrays_nulls', '{a,NULL,b}', '{1,NULL}', '{NULL,t}', '{NULL,2.5}'),
    ('array_2d', '{{a,b},{c,d}}', NULL, NULL, NULL),
    ('array_lower_bound', '[0:1]={x,y}', '[5:5]={7}', NULL, NULL),
    ('ratio_nan', NULL, NULL, NULL, '{1,NaN}');
INSERT INTO {s}.vals (id, txt) VALUES ('txt_long', repeat('é', 2 * 1024 * 1024));
INSERT INTO {s}.vals (id, made) VALUES ('made_inf', 'infinity'), ('made_bc', '0044-03-15 00:00:00+00 BC');";

const MAPPING: &str = r#"name: vals
source:
  postgres:
    url: ${WAREHOUSE_URL}
    table: "{table}"
destination:
  enterpret:
    object: user
    api_key: ${K:-k}
    url: http://127.0.0.1:9
id: id
created_at: made
attributes:
  ts: { column: ts, type: string }
  tstz: tstz
  d: d
  num_n: { column: num, type: number }
  num_s: { column: num, type: string }
  f4: f4
  f8: { column: f8, type: string }
  tags: { column: tags, list: true }
  nums: { column: nums, list: true }
  flags: { column: flags, list: true }
  ratios: { column: ratios, list: true }
  txt: txt
"#;

use Fate::{Maps, Rejects};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_value_of_every_postgres_type_maps_or_rejects_its_own_row() {
    let pg = PgSchema::new("ebb_values").await;
    pg.exec(TABLE).await;
    let ws = Workspace::new();
    let path = ws.write("m.yml", &MAPPING.replace("{table}", &format!("{}.vals", pg.name)));
    let sync = load_sync(&path, &[("WAREHOUSE_URL", &database_url())]);
    let store = ws.store().await;
    let preview = ebb::sync::preview(&sync, store.as_ref(), 10).await.expect("the preview runs");
    let mut got: BTreeMap<String, Result<Value, String>> = BTreeMap::new();
    for request in &preview.requests {
        for user in request.body["users"].as_array().cloned().unwrap_or_default() {
            got.insert(user["id"].as_str().unwrap_or_default().to_string(), Ok(user["attributes"].clone()));
        }
    }
    for r in &preview.rejections {
        got.insert(r.record_id.clone().unwrap_or_default(), Err(r.reason.clone()));
    }
    assert_eq!(preview.counts.source as usize, got.len(), "every row maps or is rejected");
    let s = |v: &str| json!({ "s": [v] });
    let outside = "is outside 0001-01-01..9999-12-31";
    let huge = format!("1{}", "0".repeat(300));
    let want = [
        (
            "ok",
            Maps(json!({
                "d": s("2022-01-08"), "f4": {"n": [1.5]}, "f8": s("0.1"), "flags": {"b": [true, false]},
                "num_n": {"n": [12.5]}, "num_s": s("12.50"), "nums": {"n": [1, 2]}, "ratios": {"n": [0.5, 1.25]},
                "tags": {"s": ["a", "b"]}, "ts": s("2023-11-14T22:13:20.123456Z"), "tstz": s("2023-11-14T22:13:20.123456Z"),
                "txt": s("hello")
            })),
        ),
        (
            "ts_inf",
            Rejects("attribute `ts` (column `ts`): infinity is outside 0001-01-01..9999-12-31"),
        ),
        ("ts_neg_inf", Rejects("(column `ts`): -infinity is outside")),
        ("ts_max", Rejects("column `ts`: 294276-12-31 23:59:59.999999+00 is outside")),
        ("ts_bc", Rejects("(column `ts`): 4713-01-01 00:00:00+00 BC is outside")),
        ("ts_10000", Rejects("(column `ts`): 10000-01-01 00:00:00+00 is outside")),
        ("tstz_inf", Rejects("(column `tstz`): infinity is outside")),
        ("tstz_neg_inf", Rejects("(column `tstz`): -infinity is outside")),
        ("tstz_max", Rejects("column `tstz`: 294276-12-31 23:59:59+00 is outside")),
        ("tstz_last", Maps(json!({"tstz": s("9999-12-31T23:59:59.999999Z")}))),
        ("d_inf", Rejects("(column `d`): infinity is outside")),
        ("d_neg_inf", Rejects("(column `d`): -infinity is outside")),
        ("d_max", Rejects("(column `d`): 5874897-12-31 is outside")),
        ("d_min", Rejects("(column `d`): 4714-11-24 BC is outside")),
        ("d_first", Maps(json!({"d": s("0001-01-01")}))),
        ("num_nan", Rejects("column `num`: NaN is not a finite number")),
        ("num_inf", Rejects("column `num`: Infinity is not a finite number")),
        ("num_neg_inf", Rejects("column `num`: -Infinity is not a finite number")),
        ("num_huge", Maps(json!({"num_n": {"n": [1e300]}, "num_s": s(&huge)}))),
        (
            "num_too_big",
            Rejects("attribute `num_n` (column `num`): cannot read \"10000000000"),
        ),
        (
            "num_tiny",
            Maps(json!({"num_n": {"n": [1e-300]}, "num_s": s(&format!("0.{}1", "0".repeat(299)))})),
        ),
        (
            "num_scale",
            Maps(json!({"num_n": {"n": [2.5]}, "num_s": s("2.5000000000000000000000000000000000000000000000000")})),
        ),
        ("f4_nan", Rejects("(column `f4`): NaN is not a finite number")),
        ("f4_inf", Rejects("(column `f4`): inf is not a finite number")),
        ("f8_nan", Rejects("(column `f8`): NaN has no JSON form")),
        ("f8_neg_inf", Rejects("(column `f8`): -inf has no JSON form")),
        (
            "arrays_empty",
            Maps(json!({"flags": {"b": []}, "nums": {"n": []}, "ratios": {"n": []}, "tags": {"s": []}})),
        ),
        (
            "arrays_nulls",
            Maps(json!({"flags": {"b": [true]}, "nums": {"n": [1]}, "ratios": {"n": [2.5]}, "tags": {"s": ["a", "b"]}})),
        ),
        ("array_2d", Rejects("column `tags`: is an array of 2 dimensions; a list has one")),
        ("array_lower_bound", Maps(json!({"nums": {"n": [7]}, "tags": {"s": ["x", "y"]}}))),
        ("ratio_nan", Rejects("column `ratios`: NaN is not a finite number")),
        (
            "made_inf",
            Rejects("createdAt (column `made`): infinity is outside 0001-01-01..9999-12-31"),
        ),
        (
            "made_bc",
            Rejects("createdAt (column `made`): 0044-03-15 00:00:00+00 BC is outside"),
        ),
    ];
    check_fates(&got, &want);
    let long = got.get("txt_long").and_then(|f| f.as_ref().ok()).expect("4 MB of text maps");
    assert_eq!(long["txt"]["s"][0].as_str().map(|t| t.chars().count()), Some(2 * 1024 * 1024));
    assert_eq!(got.len(), want.len() + 1, "each row's fate is listed");
    assert!(
        got.values()
            .filter_map(|f| f.as_ref().err())
            .filter(|r| r.contains(outside))
            .count()
            >= 14
    );
}

/// 8,200 people in mirror mode: one gets a `last_seen` of `infinity`.
async fn an_infinite_timestamp_rejects_one_row(diff: &str) {
    let pg = PgSchema::new("ebb_infinity").await;
    pg.exec(
        "CREATE TABLE {s}.people (email text, name text, last_seen timestamptz);
         INSERT INTO {s}.people SELECT 'p' || i || '@example.com', 'Person ' || i, '2024-05-01 12:00:00+00' FROM generate_series(1, 8200) i",
    )
    .await;
    let state = TempSchema::new("ebb_infinity_state");
    let diff = diff.replace("{st}", &state.name);
    let (si, ws) = (stand_in().await, Workspace::new());
    let store = ws.store().await;
    let yaml = format!(
        "name: people\nsource:\n  postgres:\n    url: ${{WAREHOUSE_URL}}\n    table: {}.people\n{diff}destination:\n  profiles:\n    url: {}\n    token: ${{T:-local-profiles-token}}\n    requests_per_minute: 60000\nmode: mirror\nemail: email\nfull_name: name\nproperties:\n  last_seen: {{ column: last_seen, type: date }}\n",
        pg.name,
        si.url()
    );
    let path = ws.write("m.yml", &yaml);
    let sync = || load_sync(&path, &[("WAREHOUSE_URL", &database_url())]);
    assert_eq!(run_ok(&sync(), store.as_ref()).await.counts.sent, 8200);
    pg.exec("UPDATE {s}.people SET last_seen = 'infinity', name = 'Changed' WHERE email IN ('p8195@example.com'); UPDATE {s}.people SET name = 'Also changed' WHERE email = 'p8196@example.com'").await;
    let report = run_ok(&sync(), store.as_ref()).await;
    assert_eq!(
        (
            report.status,
            report.counts.invalid,
            report.counts.sent,
            report.counts.deleted,
            report.counts.gone
        ),
        (RunStatus::Completed, 1, 1, 0, 0),
        "one row rejected, its healthy neighbour sent, nobody deleted: {report:?}"
    );
    let rejections = store.rejections(report.run_id.unwrap_or_default(), 10).await.expect("rejections");
    assert_eq!(rejections.len(), 1);
    assert_eq!(
        rejections[0].reason,
        "`properties.last_seen` (column `last_seen`): infinity is outside 0001-01-01..9999-12-31"
    );
    assert!(store.suppressions("people").await.expect("suppressions").is_empty());
    assert_eq!(si.profiles().len(), 8200, "every profile is still there");
    let again = run_ok(&sync(), store.as_ref()).await;
    assert_eq!(
        (again.counts.invalid, again.counts.sent),
        (1, 0),
        "tried again every run: {again:?}"
    );
    pg.exec("UPDATE {s}.people SET last_seen = '2024-06-01 00:00:00+00' WHERE email = 'p8195@example.com'")
        .await;
    let fixed = run_ok(&sync(), store.as_ref()).await;
    assert_eq!(
        (fixed.counts.invalid, fixed.counts.sent),
        (0, 1),
        "once fixed, it is sent: {fixed:?}"
    );
    let p = si.profiles().into_iter().find(|p| p.email == "p8195@example.com").expect("p8195");
    assert_eq!(p.name, "Changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamp_at_infinity_rejects_its_row_and_deletes_nobody() {
    an_infinite_timestamp_rejects_one_row("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_warehouse_side_diff_too() {
    an_infinite_timestamp_rejects_one_row("    diff: warehouse\n    state_schema: {st}\n").await;
}
