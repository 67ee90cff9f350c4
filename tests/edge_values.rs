//! Every legal value of every type a Parquet file can hold maps, or rejects its own row with a
//! reason that names the column and shows the value; none fails the batch or the run. The
//! fixtures (tests/fixtures/edges, written by pyarrow, DuckDB, pandas and polars through
//! scripts/make_data.py) hold one extreme per row, every other column null.

use std::collections::BTreeMap;

use crate::common::*;
use ebb::state::RunStatus;
use serde_json::{json, Value};

use Fate::{Maps, Rejects};

/// Runs a preview of a profiles mapping whose email is `{id}@edges.invalid`, and returns per
/// id its properties as sent, or its rejection's reason.
async fn fates(properties: &str, file: &str) -> BTreeMap<String, Result<Value, String>> {
    let ws = Workspace::new();
    let yaml = format!(
        "name: edges\nsource:\n  parquet: ${{EDGES}}\ndestination:\n  profiles:\n    url: http://127.0.0.1:9\n    token: ${{T:-t}}\nemail: {{ template: \"{{id}}@edges.invalid\" }}\nfull_name: id\nproperties:\n{properties}"
    );
    let path = ws.write("m.yml", &yaml);
    let source = fixture(&format!("edges/{file}")).display().to_string();
    let sync = load_sync(&path, &[("EDGES", &source)]);
    let store = ws.store().await;
    let preview = ebb::sync::preview(&sync, store.as_ref(), 100)
        .await
        .expect("a preview of extreme values runs");
    let mut out = BTreeMap::new();
    for request in &preview.requests {
        for user in request.body["users"].as_array().cloned().unwrap_or_default() {
            let id = user["email"]
                .as_str()
                .unwrap_or_default()
                .trim_end_matches("@edges.invalid")
                .to_string();
            let props: serde_json::Map<String, Value> = user["properties"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|p| (p["name"].as_str().unwrap_or_default().to_string(), p["value"].clone()))
                .collect();
            out.insert(id, Ok(Value::Object(props)));
        }
    }
    for rejection in &preview.rejections {
        let id = rejection.record_id.clone().unwrap_or_default();
        out.insert(id.trim_end_matches("@edges.invalid").to_string(), Err(rejection.reason.clone()));
    }
    assert_eq!(preview.counts.source as usize, out.len(), "every row maps or is rejected: {out:#?}");
    out
}

fn check(got: &BTreeMap<String, Result<Value, String>>, want: &[(&str, Fate)]) {
    check_fates(got, want);
    assert_eq!(got.len(), want.len(), "each row's fate is listed: {got:#?}");
}

const PYARROW_PROPERTIES: &str = "  ts_s: { column: ts_s, type: date }
  ts_ms: { column: ts_ms, type: string }
  ts_us: { column: ts_us, type: date }
  ts_ns: { column: ts_ns, type: string }
  d32: { column: d32, type: date }
  d64: { column: d64, type: string }
  dec_n: { column: dec, type: number }
  dec_s: { column: dec, type: string }
  f16: { column: f16, type: number }
  f32: { column: f32, type: string }
  f64: { column: f64, type: number }
  empty: { column: empty, type: number }
";

#[tokio::test]
async fn pyarrow_extremes_of_every_type_map_or_reject_their_own_row() {
    let got = fates(PYARROW_PROPERTIES, "pyarrow.parquet").await;
    let dec = "999999999999999999999999999999999999.99";
    check(
        &got,
        &[
            (
                "ok",
                Maps(json!({
                    "d32": "2022-01-08", "d64": "2022-01-08", "dec_n": 12.5, "dec_s": "12.50", "f16": 1.5, "f32": "2.25",
                    "f64": 0.1, "ts_ms": "2023-11-14T22:13:20.123Z", "ts_ns": "2023-11-14T22:13:20.123456789Z",
                    "ts_s": "2023-11-14T22:13:20Z", "ts_us": "2023-11-14T22:13:20Z"
                })),
            ),
            (
                "ts_ms_min",
                Rejects("`properties.ts_ms` (column `ts_ms`): -infinity is outside 0001-01-01..9999-12-31"),
            ),
            ("ts_ms_max", Rejects("(column `ts_ms`): infinity is outside")),
            ("ts_us_min", Rejects("(column `ts_us`): -infinity is outside")),
            ("ts_us_max", Rejects("(column `ts_us`): infinity is outside")),
            ("ts_ns_min", Rejects("(column `ts_ns`): -infinity is outside")),
            ("ts_ns_max", Rejects("(column `ts_ns`): infinity is outside")),
            ("ts_s_min", Rejects("(column `ts_s`): 292275056-05-16 16:47:05+00 BC is outside")),
            ("ts_s_max", Rejects("(column `ts_s`): 292278994-08-17 07:12:55+00 is outside")),
            ("d32_min", Rejects("(column `d32`): -infinity is outside")),
            ("d32_max", Rejects("(column `d32`): infinity is outside")),
            ("edge_first_day", Maps(json!({"d32": "0001-01-01"}))),
            ("edge_last_day", Maps(json!({"d32": "9999-12-31"}))),
            ("edge_last_second", Maps(json!({"ts_s": "9999-12-31T23:59:59Z"}))),
            ("past_last_second", Rejects("(column `ts_s`): 10000-01-01 00:00:00+00 is outside")),
            ("before_first_day", Rejects("(column `d32`): 0001-12-31 BC is outside")),
            ("dec_max", Maps(json!({"dec_n": 1e36, "dec_s": dec}))),
            ("dec_min", Maps(json!({"dec_n": -1e36, "dec_s": format!("-{dec}")}))),
            ("f16_nan", Rejects("(column `f16`): NaN is not a finite number")),
            ("f16_inf", Rejects("(column `f16`): inf is not a finite number")),
            ("f32_nan", Rejects("(column `f32`): NaN has no JSON form")),
            ("f32_neg_inf", Rejects("(column `f32`): -inf has no JSON form")),
            ("f64_nan", Rejects("(column `f64`): NaN is not a finite number")),
            ("f64_inf", Rejects("(column `f64`): inf is not a finite number")),
        ],
    );
}

#[tokio::test]
async fn duckdb_infinities_bc_dates_far_years_and_long_text_map_or_reject_their_own_row() {
    let properties = "  seen: { column: seen_at, type: date }
  seen_text: { column: seen_at, type: string }
  born: { column: born, type: date }
  arr_n: { column: arr, type: number }
  arr_s: { column: arr, type: string }
  score: { column: score, type: number }
  name: { column: name, type: string }
";
    let got = fates(properties, "duckdb.parquet").await;
    let dec = "999999999999999999999999999999999999.99";
    let mut want = vec![
        (
            "ok",
            Maps(json!({
                "arr_n": 12.5, "arr_s": "12.50", "born": "2022-01-08", "name": "Ada", "score": 0.1,
                "seen": "2023-11-14T22:13:20Z", "seen_text": "2023-11-14T22:13:20.123456Z"
            })),
        ),
        (
            "ts_infinity",
            Rejects("(column `seen_at`): infinity is outside 0001-01-01..9999-12-31"),
        ),
        ("ts_neg_infinity", Rejects("(column `seen_at`): -infinity is outside")),
        ("date_infinity", Rejects("(column `born`): infinity is outside")),
        ("date_neg_infinity", Rejects("(column `born`): -infinity is outside")),
        ("date_bc", Rejects("(column `born`): 0044-03-15 BC is outside")),
        ("date_far", Rejects("(column `born`): 200000-01-01 is outside")),
        ("ts_far", Rejects("(column `seen_at`): 294246-12-31 23:59:59+00 is outside")),
        ("dec_max", Maps(json!({"arr_n": 1e36, "arr_s": dec, "name": "Ivy"}))),
        ("nan", Rejects("(column `score`): NaN is not a finite number")),
        ("inf", Rejects("(column `score`): -inf is not a finite number")),
    ];
    let long = got.get("long_text").and_then(|f| f.as_ref().ok()).expect("3 MB of text maps");
    assert_eq!(long["name"].as_str().map(str::len), Some(3 * 1024 * 1024));
    want.push(("long_text", Maps(long.clone())));
    check(&got, &want);
}

#[tokio::test]
async fn a_created_at_at_infinity_rejects_its_row_naming_the_column() {
    let ws = Workspace::new();
    let path = ws.write(
        "m.yml",
        "name: e\nsource:\n  parquet: ${EDGES}\ndestination:\n  enterpret:\n    object: user\n    api_key: ${K:-k}\n    url: http://127.0.0.1:9\nid: id\ncreated_at: seen_at\nattributes:\n  Name: name\n",
    );
    let source = fixture("edges/duckdb.parquet").display().to_string();
    let sync = load_sync(&path, &[("EDGES", &source)]);
    let store = ws.store().await;
    let preview = ebb::sync::preview(&sync, store.as_ref(), 1).await.expect("preview");
    let reason = |id: &str| {
        preview
            .rejections
            .iter()
            .find(|r| r.record_id.as_deref() == Some(id))
            .map(|r| r.reason.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        reason("ts_infinity"),
        "createdAt (column `seen_at`): infinity is outside 0001-01-01..9999-12-31"
    );
    assert_eq!(
        reason("ts_far"),
        "createdAt (column `seen_at`): 294246-12-31 23:59:59+00 is outside 0001-01-01..9999-12-31"
    );
    assert_eq!(preview.to_send, 1, "the one ordinary row still goes");
}

/// A mapping of people whose `age` may be an empty column.
fn ages(ws: &Workspace, age: &str) -> std::path::PathBuf {
    ws.write(
        "m.yml",
        &format!(
            "name: ages\nsource:\n  parquet: ${{PEOPLE}}\ndestination:\n  profiles:\n    url: ${{URL}}\n    token: ${{T:-local-profiles-token}}\n    requests_per_minute: 60000\nemail: {{ template: \"{{id}}@people.invalid\" }}\nfull_name: name\nproperties:\n  age: {age}\n"
        ),
    )
}

#[tokio::test]
async fn a_column_pyarrow_pandas_or_polars_wrote_as_null_is_nulls_of_any_type_and_not_drift() {
    for writer in ["pyarrow", "pandas", "polars"] {
        let empty = fixture(&format!("edges/empty_column_{writer}.parquet")).display().to_string();
        let typed = fixture("edges/age_typed.parquet").display().to_string();
        let si = stand_in().await;
        let ws = Workspace::new();
        let store = ws.store().await;
        for age in ["{ column: age, type: number }", "age", "{ column: age, type: string }"] {
            let path = ages(&ws, age);
            let env = env(&[("PEOPLE", &empty), ("URL", &si.url())]);
            for (_, checked) in ebb::sync::check::check_files(std::slice::from_ref(&path), &env).await {
                if let Err(e) = checked {
                    panic!("{writer}: `age: {age}` validates over a null column: {e:?}");
                }
            }
        }
        let path = ages(&ws, "age");
        let first = run_ok(&load_sync(&path, &[("PEOPLE", &typed), ("URL", &si.url())]), store.as_ref()).await;
        assert_eq!(first.counts.sent, 3, "{writer}: {first:?}");
        let schema = store.load("ages").await.expect("load").schema;
        let emptied = run_ok(&load_sync(&path, &[("PEOPLE", &empty), ("URL", &si.url())]), store.as_ref()).await;
        assert_eq!(
            (emptied.status, emptied.counts.changed, emptied.counts.unchanged),
            (RunStatus::Completed, 2, 1),
            "{writer}: the two people who had an age lost it; not drift: {emptied:?}"
        );
        assert_eq!(
            store.load("ages").await.expect("load").schema,
            schema,
            "{writer}: state keeps the type age had"
        );
        let again = run_ok(&load_sync(&path, &[("PEOPLE", &typed), ("URL", &si.url())]), store.as_ref()).await;
        assert_eq!(
            again.counts.changed, 2,
            "{writer}: and the type comes back without drift: {again:?}"
        );
        let held = si.profiles();
        let p1 = held.iter().find(|p| p.email == "p1@people.invalid").expect("p1");
        assert!(
            format!("{:?}", p1.properties).contains("31"),
            "{writer}: age is a number again: {p1:?}"
        );
    }
}

#[tokio::test]
async fn a_snapshot_of_a_typed_file_and_an_empty_one_reads_as_the_typed_column() {
    let ws = Workspace::new();
    let dir = ws.path().join("snapshot");
    std::fs::create_dir(&dir).expect("dir");
    std::fs::copy(fixture("edges/empty_column_polars.parquet"), dir.join("a.parquet")).expect("copy");
    std::fs::copy(fixture("edges/others_typed.parquet"), dir.join("b.parquet")).expect("copy");
    let path = ages(&ws, "age");
    let sync = load_sync(&path, &[("PEOPLE", &dir.display().to_string()), ("URL", "http://127.0.0.1:9")]);
    let store = ws.store().await;
    let preview = ebb::sync::preview(&sync, store.as_ref(), 10).await.expect("preview");
    assert_eq!(preview.counts.source, 6);
    let bodies = serde_json::to_string(&preview.requests).expect("json");
    assert!(
        bodies.contains(r#""type":"number","value":7"#),
        "the typed file's ages are numbers: {bodies}"
    );
}
