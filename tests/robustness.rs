//! The fuzz targets' invariant (`fuzz/`), as property tests with a fixed seed for CI: Parquet
//! files of random rows at the extremes of every type, and fixture files with random bytes
//! overwritten, read with ebb's reader and mapped column by column, end with every row read
//! mapped or rejected, or an error, and never a panic; and no mapping file, however mangled,
//! makes the parser or the checker panic.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Float32Array, Float64Array, ListArray, NullArray, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Int64Type};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x000e_bb27),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Mostly the extremes and their neighbours, sometimes anything.
fn extreme_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MAX),
        Just(i64::MIN),
        Just(-i64::MAX),
        Just(0),
        (-300_000_000_000i64..300_000_000_000).prop_map(|s| s * 1000),
        any::<i64>(),
    ]
}

fn extreme_i32() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(i32::MAX),
        Just(i32::MIN),
        Just(-i32::MAX),
        -800_000i32..3_000_000,
        any::<i32>()
    ]
}

fn extreme_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        any::<f64>()
    ]
}

fn decimal38() -> impl Strategy<Value = i128> {
    let max = 10i128.pow(38) - 1;
    prop_oneof![Just(max), Just(-max), Just(0), (-max..=max)]
}

/// One row of every type.
#[derive(Clone, Debug)]
struct Row {
    text: Option<String>,
    ms: Option<i64>,
    us: Option<i64>,
    ns: Option<i64>,
    day: Option<i32>,
    dec: Option<i128>,
    f32: Option<f64>,
    f64: Option<f64>,
    ints: Option<Vec<Option<i64>>>,
}

fn row() -> impl Strategy<Value = Row> {
    (
        proptest::option::of(any::<String>()),
        proptest::option::of(extreme_i64()),
        proptest::option::of(extreme_i64()),
        proptest::option::of(extreme_i64()),
        proptest::option::of(extreme_i32()),
        proptest::option::of(decimal38()),
        proptest::option::of(extreme_f64()),
        proptest::option::of(extreme_f64()),
        proptest::option::of(proptest::collection::vec(proptest::option::of(any::<i64>()), 0..4)),
    )
        .prop_map(|(text, ms, us, ns, day, dec, f32, f64, ints)| Row {
            text,
            ms,
            us,
            ns,
            day,
            dec,
            f32,
            f64,
            ints,
        })
}

/// The rows as a Parquet file (arrow-rs's writer), each with an id of its own.
fn parquet(rows: &[Row]) -> Vec<u8> {
    let take = |f: fn(&Row) -> Option<i64>| rows.iter().map(f).collect::<Vec<_>>();
    let ids: Vec<String> = (0..rows.len()).map(|i| format!("r{i}")).collect();
    let f32s: Float32Array = rows.iter().map(|r| r.f32.map(|v| v as f32)).collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(StringArray::from(ids))),
        ("text", Arc::new(rows.iter().map(|r| r.text.clone()).collect::<StringArray>())),
        ("ms", Arc::new(TimestampMillisecondArray::from(take(|r| r.ms)))),
        ("us", Arc::new(TimestampMicrosecondArray::from(take(|r| r.us)).with_timezone("UTC"))),
        ("ns", Arc::new(TimestampNanosecondArray::from(take(|r| r.ns)))),
        ("day", Arc::new(rows.iter().map(|r| r.day).collect::<Date32Array>())),
        (
            "dec",
            Arc::new(
                rows.iter()
                    .map(|r| r.dec)
                    .collect::<Decimal128Array>()
                    .with_precision_and_scale(38, 4)
                    .expect("decimal(38, 4)"),
            ),
        ),
        ("f16", arrow::compute::cast(&f32s, &DataType::Float16).expect("to float16")),
        ("f32", Arc::new(f32s)),
        ("f64", Arc::new(rows.iter().map(|r| r.f64).collect::<Float64Array>())),
        (
            "ints",
            Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(
                rows.iter().map(|r| r.ints.clone()),
            )),
        ),
        ("empty", Arc::new(NullArray::new(rows.len()))),
    ];
    let batch = RecordBatch::try_from_iter_with_nullable(columns.into_iter().map(|(n, a)| (n, a, true))).expect("a batch");
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), None).expect("a writer");
    writer.write(&batch).expect("written");
    writer.close().expect("closed");
    out
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn every_row_of_extreme_values_is_mapped_or_rejected(rows in proptest::collection::vec(row(), 1..40)) {
        let outcome = harness::read_and_map(&parquet(&rows)).expect("a mapping is written for every such file");
        prop_assert_eq!(outcome.error, None);
        prop_assert_eq!(outcome.rows, rows.len() as u64);
        prop_assert_eq!(outcome.mapped + outcome.rejected, outcome.rows);
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)).expect("fixture")
}

proptest! {
    #![proptest_config(config(200))]

    #[test]
    fn a_file_with_bytes_overwritten_is_read_mapped_or_refused(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = fixture(["users/pyarrow.parquet", "edges/pyarrow.parquet", "all_types.parquet"][which]);
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Some(outcome) = harness::read_and_map(&bytes) {
            prop_assert_eq!(outcome.mapped + outcome.rejected, outcome.rows);
        }
    }
}

/// A valid mapping, and values to put in its places.
const MAPPING: &str = "name: n\ntags: [a]\nsource:\n  parquet: p.parquet\ndestination:\n  enterpret:\n    object: user\n    api_key: ${K:-k}\n    batch_size: 15\nmode: upsert\nid: s\ncreated_at: at\nattributes:\n  A: i\n  B: { column: ss, list: true }\n  C: { column: s, split: \",\" }\n  D: { value: [1, 2.5] }\nguards:\n  max_deletes: 3\n";

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn no_mapping_text_makes_the_parser_or_checker_panic(text in ".{0,200}") {
        harness::parse_and_check(&text);
    }

    #[test]
    fn no_mangled_mapping_makes_the_parser_or_checker_panic(
        cut in any::<prop::sample::Index>(),
        insert in prop_oneof![
            Just("${".to_string()), Just("{ column: ".to_string()), Just("\n  - ".to_string()), Just(": [".to_string()),
            Just("1e999".to_string()), Just("-9223372036854775809".to_string()), Just("\u{0}".to_string()),
            Just("!!binary".to_string()), Just("&a *a".to_string()), ".{0,12}"
        ],
    ) {
        let at = cut.index(MAPPING.len() + 1);
        let at = (0..=at).rev().find(|i| MAPPING.is_char_boundary(*i)).unwrap_or(0);
        let text = format!("{}{insert}{}", &MAPPING[..at], &MAPPING[at..]);
        harness::parse_and_check(&text);
    }
}

#[test]
fn the_valid_mapping_checks_against_every_type() {
    harness::parse_and_check(MAPPING);
    let env = ebb::config::env::OverlayEnv(Default::default());
    let mapping = ebb::spec::parse(std::path::Path::new("/m.yml"), MAPPING, &env).expect("parses");
    ebb::mapping::CompiledMapping::compile(&mapping, &harness::every_type(), "t", 2_000_000_000).expect("checks");
}

/// The input the fuzzer found that makes the parquet crate panic: ebb's reader ends in an
/// error that says so, and the caller goes on.
#[test]
fn a_file_that_panics_the_decoder_ends_the_read_in_an_internal_error() {
    let outcome = harness::read_and_map(&fixture("corrupt/decoder_panic.parquet")).expect("its schema reads");
    let error = outcome.error.unwrap_or_default();
    assert!(
        error.starts_with("internal error in reading ") && error.ends_with("offset + len out of bounds (please report)"),
        "{error}"
    );
}
