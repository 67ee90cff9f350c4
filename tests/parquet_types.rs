//! Parquet written by pyarrow with every supported Arrow type maps to exactly
//! the expected payloads (tests/fixtures/all_types.parquet, made by
//! scripts/make_data.py).

use crate::common::*;
use serde_json::json;

const MAPPING: &str = r#"name: all-types
source:
  parquet: ${ALL_TYPES}
destination:
  enterpret:
    object: user
    api_key: ${TEST_KEY:-k}
    url: http://127.0.0.1:9
id: id_utf8
created_at: ${CREATED_AT}
nulls: send
attributes:
  s_large: s_large
  s_dict: s_dict
  i8: i8
  i16: i16
  i32: i32
  i64: i64
  u8: u8
  u16: u16
  u32: u32
  u64: u64
  f32: f32
  f64: f64
  dec: dec
  flag: flag
  d32: d32
  d64: d64
  ts_s: ts_s
  ts_ms: ts_ms
  ts_us: ts_us
  ts_ns: ts_ns
  ts_utc: ts_utc
  ts_ny: ts_ny
  l_utf8: l_utf8
  ll_i64: ll_i64
  l_f64: l_f64
  l_bool: l_bool
  csv: { column: csv, split: "," }
  num_text: { column: num_text, type: number }
  bool_text: { column: bool_text, type: boolean }
  i64_as_text: { column: i64, type: string }
  dec_as_text: { column: dec, type: string }
  const_list: { value: [1, 2.5] }
"#;

async fn payloads(created_at: &str) -> Vec<serde_json::Value> {
    let ws = Workspace::new();
    let path = ws.write("all.yml", MAPPING);
    let all_types = fixture("all_types.parquet").display().to_string();
    let sync = load_sync(&path, &[("ALL_TYPES", &all_types), ("CREATED_AT", created_at)]);
    let store = ws.store().await;
    let preview = ebb::sync::preview(&sync, store.as_ref(), 1).await.expect("preview");
    preview.requests[0].body["users"].as_array().cloned().expect("users array")
}

#[tokio::test]
async fn every_supported_type_maps_to_the_expected_payload() {
    let users = payloads("ts_ny").await;
    let ts = |ms: &str| json!({"s": [format!("2021-03-04T05:06:07{ms}Z")]});
    let expected = vec![
        json!({"id": "r1", "createdAt": 1614834367, "attributes": {
            "bool_text": {"b": [true]}, "const_list": {"n": [1, 2.5]}, "csv": {"s": ["x", "y", "z"]},
            "d32": {"s": ["2020-02-29"]}, "d64": {"s": ["2020-02-29"]}, "dec": {"n": [12.5]}, "dec_as_text": {"s": ["12.50"]},
            "f32": {"n": [1.5]}, "f64": {"n": [0.1]}, "flag": {"b": [true]}, "i16": {"n": [-16]}, "i32": {"n": [-32]},
            "i64": {"n": [-1099511627776_i64]}, "i64_as_text": {"s": ["-1099511627776"]}, "i8": {"n": [-8]},
            "l_bool": {"b": [true, false]}, "l_f64": {"n": [0.5]}, "l_utf8": {"s": ["a", "b"]}, "ll_i64": {"n": [1, 2, 3]},
            "num_text": {"n": [42]}, "s_dict": {"s": ["red"]}, "s_large": {"s": ["large"]},
            "ts_ms": ts(".123"), "ts_ns": ts(".123456"), "ts_ny": ts(".123"), "ts_s": ts(""), "ts_us": ts(".123456"), "ts_utc": ts(".123456"),
            "u16": {"n": [16]}, "u32": {"n": [32]}, "u64": {"n": [64]}, "u8": {"n": [8]}}}),
        json!({"id": "r2", "createdAt": 1614834367, "attributes": {
            "bool_text": {"b": [false]}, "const_list": {"n": [1, 2.5]}, "csv": {"s": []},
            "d32": {"s": []}, "d64": {"s": ["2000-01-01"]}, "dec": {"n": [-0.01]}, "dec_as_text": {"s": ["-0.01"]},
            "f32": {"n": [0]}, "f64": {"n": [2]}, "flag": {"b": [false]}, "i16": {"n": [0]}, "i32": {"n": [0]},
            "i64": {"n": [0]}, "i64_as_text": {"s": ["0"]}, "i8": {"n": []},
            "l_bool": {"b": [true]}, "l_f64": {"n": []}, "l_utf8": {"s": []}, "ll_i64": {"n": [4]},
            "num_text": {"n": [3.5]}, "s_dict": {"s": ["blue"]}, "s_large": {"s": []},
            "ts_ms": ts(".123"), "ts_ns": ts(".123456"), "ts_ny": ts(".123"), "ts_s": ts(""), "ts_us": ts(".123456"), "ts_utc": ts(".123456"),
            "u16": {"n": [0]}, "u32": {"n": [0]}, "u64": {"n": [0]}, "u8": {"n": [0]}}}),
        json!({"id": "r3", "createdAt": 1614834367, "attributes": {
            "bool_text": {"b": [true]}, "const_list": {"n": [1, 2.5]}, "csv": {"s": []},
            "d32": {"s": ["2001-01-01"]}, "d64": {"s": []}, "dec": {"n": [100]}, "dec_as_text": {"s": ["100.00"]},
            "f32": {"n": []}, "f64": {"n": [-3.25]}, "flag": {"b": []}, "i16": {"n": [16]}, "i32": {"n": [32]},
            "i64": {"n": [1099511627776_i64]}, "i64_as_text": {"s": ["1099511627776"]}, "i8": {"n": [8]},
            "l_bool": {"b": []}, "l_f64": {"n": [1, 2.5]}, "l_utf8": {"s": []}, "ll_i64": {"n": []},
            "num_text": {"n": [1000]}, "s_dict": {"s": ["red"]}, "s_large": {"s": ["é✓"]},
            "ts_ms": ts(".123"), "ts_ns": ts(".123456"), "ts_ny": ts(".123"), "ts_s": ts(""), "ts_us": ts(".123456"), "ts_utc": ts(".123456"),
            "u16": {"n": [65535]}, "u32": {"n": [4294967295_u64]}, "u64": {"n": [9.223372036854776e18]}, "u8": {"n": [255]}}}),
    ];
    assert_eq!(users.len(), 3);
    for (got, want) in users.iter().zip(&expected) {
        for (name, value) in want["attributes"].as_object().expect("object") {
            assert_eq!(&got["attributes"][name], value, "{} attribute {name}", want["id"]);
        }
        assert_eq!(got, want);
    }
}

#[tokio::test]
async fn created_at_reads_every_time_form() {
    // Seconds, 13-digit milliseconds, RFC 3339 with offsets, a bare date, and each timestamp unit.
    for (column, want) in [
        ("epoch_s", [1614834367, 1614834367, 1614834367]),
        ("epoch_ms", [1614834367, 1614834367, 1614834367]),
        ("created_text", [1614834367, 1614834367, 1614816000]),
        ("ts_s", [1614834367; 3]),
        ("ts_ms", [1614834367; 3]),
        ("ts_us", [1614834367; 3]),
        ("ts_ns", [1614834367; 3]),
        ("ts_utc", [1614834367; 3]),
    ] {
        let users = payloads(column).await;
        let got: Vec<i64> = users.iter().map(|u| u["createdAt"].as_i64().expect("integer")).collect();
        assert_eq!(got, want, "{column}");
    }
}
