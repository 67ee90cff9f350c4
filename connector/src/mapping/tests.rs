#![allow(unused_imports)]

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::datatypes::{
    Date32Type, Date64Type, Decimal128Type, Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type,
    UInt8Type,
};
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

use crate::column::ColumnType;
use crate::config::{did_you_mean, AttrType, AttributeSource, ColumnRef, ConfigErrors, ConfigIssue, NullPolicy, ValueRule};
use crate::hash::Encoder;
use crate::quote::{debug, quote, shorten, MAX_QUOTED_CHARS};
use crate::record::{AttrValue, Number, Record};
use crate::source::{SourceBatch, SourceSchema};
use crate::spec::Mapping;

use super::cells::*;
use super::coercion::*;
use super::writer::*;
use super::*;

#[test]
fn time_text_forms() {
    assert_eq!(parse_time_text("2021-03-04T05:06:07Z"), Some(1_614_834_367));
    assert_eq!(parse_time_text("2021-03-04T06:06:07+01:00"), Some(1_614_834_367));
    assert_eq!(parse_time_text("2021-03-04 05:06:07"), Some(1_614_834_367));
    assert_eq!(parse_time_text("2021-03-04"), Some(1_614_816_000));
    assert_eq!(parse_time_text("1614834367123"), Some(1_614_834_367));
    assert_eq!(parse_time_text("yesterday"), None);
}

fn coerce(v: Value<'_>, target: AttrType, split: Option<&str>, nulls: NullPolicy) -> Result<Option<AttrValue>, String> {
    let mut sink = RecordBuilder::default();
    sink.begin("k", 0);
    super::coerce(v, "v", target, split, nulls, &mut sink, &mut String::new())?;
    Ok(sink.take().attributes.pop().map(|(_, v)| v))
}

#[test]
fn a_huge_value_is_quoted_back_cut_short_in_its_rejection() {
    let huge = "9x".repeat(2_500_000);
    let reason = coerce(Value::Str(Cow::Borrowed(&huge)), AttrType::Number, None, NullPolicy::Skip).expect_err("not a number");
    assert!(reason.len() < 200 && reason.contains("5000002 characters"), "{reason}");
    let reason = coerce(Value::Str(Cow::Borrowed(&huge)), AttrType::Boolean, None, NullPolicy::Skip).expect_err("not a boolean");
    assert!(reason.len() < 200, "{reason}");
}

#[test]
fn coercions() {
    let s = |x: &'static str| Value::Str(Cow::Borrowed(x));
    assert_eq!(
        coerce(s("a, b,,c"), AttrType::String, Some(","), NullPolicy::Skip),
        Ok(Some(AttrValue::S(vec!["a".into(), "b".into(), "c".into()])))
    );
    assert_eq!(coerce(Value::Null, AttrType::Number, None, NullPolicy::Skip), Ok(None));
    assert_eq!(
        coerce(Value::Null, AttrType::Number, None, NullPolicy::Send),
        Ok(Some(AttrValue::N(vec![])))
    );
    assert_eq!(
        coerce(s(" 3.50 "), AttrType::Number, None, NullPolicy::Skip),
        Ok(Some(AttrValue::N(vec![Number::Float(3.5)])))
    );
    assert!(coerce(s("x"), AttrType::Number, None, NullPolicy::Skip)
        .unwrap_err()
        .contains("cannot read \"x\" as a number"));
    assert_eq!(
        coerce(s("No"), AttrType::Boolean, None, NullPolicy::Skip),
        Ok(Some(AttrValue::B(vec![false])))
    );
    assert!(coerce(Value::Int(2), AttrType::Boolean, None, NullPolicy::Skip).is_err());
    assert_eq!(
        coerce(Value::Float(f64::NAN), AttrType::Number, None, NullPolicy::Skip).map(|_| ()),
        Err("NaN is not a finite number".into())
    );
}

/// The one property the diff rests on: hashing a row from its columns gives the hash of
/// the record that would be sent, for every kind of value, and rejects the same rows.
#[test]
fn hashing_from_columns_matches_hashing_the_record() {
    use arrow::array::{
        Date32Array, Decimal128Array, DictionaryArray, Float32Array, Int64Array, ListBuilder, StringArray, StringBuilder,
        TimestampMicrosecondArray,
    };
    use arrow::datatypes::Int32Type;
    use arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    let mut tags = ListBuilder::new(StringBuilder::new());
    for row in [
        Some(vec![Some("a"), None, Some("b")]),
        None,
        Some(vec![]),
        Some(vec![Some("c")]),
        Some(vec![Some("")]),
    ] {
        match row {
            Some(items) => {
                for i in items {
                    tags.values().append_option(i);
                }
                tags.append(true);
            }
            None => tags.append(false),
        }
    }
    let t = 1_600_000_000_000_000i64;
    let batch = RecordBatch::try_from_iter(vec![
        (
            "id",
            Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(4), Some(5)])) as ArrayRef,
        ),
        (
            "at",
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(t),
                Some(t + 1),
                Some(t),
                Some(0),
                Some(t),
            ])) as ArrayRef,
        ),
        (
            "name",
            Arc::new(StringArray::from(vec![Some("Ada"), None, Some("x"), Some("é"), Some("")])) as ArrayRef,
        ),
        (
            "plan",
            Arc::new(
                vec![Some("pro"), Some("free"), None, Some("pro"), Some("free")]
                    .into_iter()
                    .collect::<DictionaryArray<Int32Type>>(),
            ) as ArrayRef,
        ),
        ("tags", Arc::new(tags.finish()) as ArrayRef),
        (
            "csv",
            Arc::new(StringArray::from(vec![Some("a, b,,c"), Some(""), None, Some("x"), Some(" , ")])) as ArrayRef,
        ),
        (
            "f32",
            Arc::new(Float32Array::from(vec![Some(1.1), Some(2.0), None, Some(-0.0), Some(f32::NAN)])) as ArrayRef,
        ),
        (
            "dec",
            Arc::new(
                Decimal128Array::from(vec![Some(1250), Some(100), None, Some(-1), Some(7)])
                    .with_precision_and_scale(10, 2)
                    .expect("decimal"),
            ) as ArrayRef,
        ),
        (
            "day",
            Arc::new(Date32Array::from(vec![Some(18_000), None, Some(0), Some(1), Some(2)])) as ArrayRef,
        ),
    ])
    .expect("batch");
    let sb = SourceBatch {
        batch,
        origin: "test".into(),
        first_row: 0,
        problems: None,
    };
    let attr = |name: &str, col: usize, target: AttrType, split: Option<&str>| CompiledAttr {
        name: name.into(),
        label: format!("attribute `{name}`"),
        column_name: Some(name.into()),
        kind: AttrKind::Column {
            col,
            target,
            split: split.map(String::from),
        },
        rule: ValueRule::Any,
        salt: None,
        inferred: false,
    };
    for nulls in [NullPolicy::Skip, NullPolicy::Send] {
        let mut attributes = vec![
            attr("csv", 5, AttrType::String, Some(",")),
            attr("day", 8, AttrType::String, None),
            attr("dec", 7, AttrType::Number, None),
            attr("decText", 7, AttrType::String, None),
            attr("f32", 6, AttrType::Number, None),
            attr("name", 2, AttrType::String, None),
            attr("plan", 3, AttrType::String, None),
            attr("tags", 4, AttrType::String, None),
            attr("when", 1, AttrType::String, None),
            CompiledAttr {
                name: "zConst".into(),
                label: "attribute `zConst`".into(),
                column_name: None,
                kind: AttrKind::Constant(AttrValue::N(vec![Number::Int(3)])),
                rule: ValueRule::Any,
                salt: None,
                inferred: false,
            },
        ];
        attributes.sort_by(|a, b| a.name.cmp(&b.name));
        let compiled = CompiledMapping {
            columns: ["id", "at", "name", "plan", "tags", "csv", "f32", "dec", "day"]
                .iter()
                .map(|n| (n.to_string(), ColumnType::String))
                .collect(),
            identity: super::identity::IdentityFrom::Column(0),
            identity_kind: crate::config::Identity::Id,
            created_at: Some(1),
            attributes,
            nulls,
            now: 2_000_000_000,
            earliest_created_at: crate::destination::enterpret::EARLIEST_CREATED_AT,
            value_types: &[AttrType::String, AttrType::Number, AttrType::Boolean],
        };
        let mut mapped = Vec::new();
        compiled.map_batch(&sb, |r| mapped.push(r));
        let mut hashed = Vec::new();
        compiled.hash_batch(&sb, |r| hashed.push(r.map(|(id, h)| (id.to_string(), h))));
        let mut selected = Vec::new();
        compiled.map_selected(&sb, |_| true, |_, r| selected.push(r));
        assert_eq!(mapped.len(), 5);
        let (mut ok, mut rejected) = (0, 0);
        for (m, h) in mapped.iter().zip(&hashed) {
            match (m, h) {
                (Ok(record), Ok((id, hash))) => {
                    ok += 1;
                    assert_eq!((id, *hash), (&record.id, crate::hash::record_hash(record)), "{record:?}");
                }
                (Err(a), Err(b)) => {
                    rejected += 1;
                    assert_eq!(a, b);
                }
                other => panic!("the two paths disagree: {other:?}"),
            }
        }
        // Row 3 (null id) and row 4 (createdAt 1970) are rejected, and so is row 5's NaN.
        assert_eq!((ok, rejected), (2, 3), "{mapped:?}");
        let ok_ids: Vec<String> = selected.iter().filter_map(|r| r.as_ref().ok().map(|r| r.id.clone())).collect();
        assert_eq!(ok_ids, vec!["1".to_string(), "2".to_string()]);
    }
}

#[test]
fn dates_are_sent_as_iso_dates_and_times_as_rfc3339_utc_to_the_second() {
    let date = |v: Value<'_>| to_date(&v, &mut String::new()).map(str::to_string);
    assert_eq!(date(Value::Date(19_844)), Ok("2024-05-01".into()));
    assert_eq!(
        date(Value::Timestamp {
            secs: 1_714_564_800,
            nanos: 250_000_000
        }),
        Ok("2024-05-01T12:00:00Z".into())
    );
    let s = |x: &'static str| Value::Str(Cow::Borrowed(x));
    assert_eq!(date(s(" 2024-05-01 ")), Ok("2024-05-01".into()));
    assert_eq!(date(s("2024-05-01T14:00:00+02:00")), Ok("2024-05-01T12:00:00Z".into()));
    assert!(date(s("1714564800")).expect_err("digits").contains("digits alone are not a date"));
    assert!(date(s("May 1"))
        .expect_err("text")
        .contains("cannot read \"May 1\" as a date or a time"));
    assert!(date(Value::Int(3)).expect_err("int").contains("cannot read Int(3) as a date"));
}

/// What each target makes of one cell of `array`: the value sent, or the reason it rejects.
fn each_target(array: ArrayRef) -> Vec<Result<Option<AttrValue>, String>> {
    let column = Column::new(array);
    [AttrType::String, AttrType::Number, AttrType::Boolean, AttrType::Date]
        .into_iter()
        .map(|target| coerce(column.value(0), target, None, NullPolicy::Skip))
        .collect()
}

#[test]
fn date64_and_every_timestamp_unit_at_their_extremes_reject_with_the_value_shown() {
    use arrow::array::{Date64Array, TimestampNanosecondArray, TimestampSecondArray};
    let cases: Vec<(ArrayRef, &str)> = vec![
        (Arc::new(Date64Array::from(vec![i64::MAX])), "infinity"),
        (Arc::new(Date64Array::from(vec![i64::MIN])), "-infinity"),
        (Arc::new(Date64Array::from(vec![-i64::MAX])), "-infinity"),
        (Arc::new(Date64Array::from(vec![i64::MAX - 1])), "292278994-08-17"),
        (
            Arc::new(TimestampSecondArray::from(vec![i64::MAX - 1])),
            "292277026596-12-04 15:30:06+00",
        ),
        (
            Arc::new(TimestampSecondArray::from(vec![i64::MIN + 2])),
            "292277022658-01-27 08:29:54+00 BC",
        ),
        (Arc::new(TimestampNanosecondArray::from(vec![i64::MIN + 2])), "1677-09-21"),
    ];
    for (array, shown) in cases {
        for outcome in each_target(array) {
            match outcome {
                // Nanoseconds end in 1677 and 2262: inside the range, they map as dates do.
                Ok(Some(AttrValue::S(v) | AttrValue::D(v))) if shown == "1677-09-21" => assert!(v[0].starts_with(shown), "{v:?}"),
                Ok(other) if shown == "1677-09-21" => panic!("{other:?}"),
                Err(reason) if shown == "1677-09-21" => assert!(reason.contains("cannot read"), "{reason}"),
                Err(reason) => assert!(
                    reason.starts_with(shown) && reason.ends_with("is outside 0001-01-01..9999-12-31")
                        || reason.contains(&format!("{shown} is outside")),
                    "{shown}: {reason}"
                ),
                Ok(sent) => panic!("{shown} has no form, yet {sent:?} was sent"),
            }
        }
    }
}

#[test]
fn decimals_and_integers_at_their_extremes_map_or_reject_without_overflow() {
    use arrow::array::{Decimal128Array, Int64Array, UInt64Array};
    let decimal =
        |v: i128, scale: i8| -> ArrayRef { Arc::new(Decimal128Array::from(vec![v]).with_precision_and_scale(38, scale).expect("decimal")) };
    for (array, text) in [
        (decimal(i128::MIN, 2), "-1701411834604692317316873037158841057.28"),
        (decimal(i128::MAX, 0), "170141183460469231731687303715884105727"),
        (decimal(i128::MAX, 38), "1.70141183460469231731687303715884105727"),
        (decimal(-(10i128.pow(38) - 1), -2), "-9999999999999999999999999999999999999900"),
    ] {
        let outcomes = each_target(array);
        assert_eq!(
            outcomes[0],
            Ok(Some(AttrValue::S(vec![text.to_string()]))),
            "as text, digit for digit"
        );
        assert!(!matches!(&outcomes[1], Ok(Some(AttrValue::N(n))) if n.is_empty()));
    }
    let created = |v: Value<'_>| created_at_secs(v);
    assert!(created(Value::Int(i64::MIN)).is_ok(), "no overflow reading i64::MIN as a time");
    assert_eq!(created(Value::Int(-1_614_834_367_123)), Ok(-1_614_834_368));
    for array in [
        Arc::new(Int64Array::from(vec![i64::MIN])) as ArrayRef,
        Arc::new(UInt64Array::from(vec![u64::MAX])),
    ] {
        for outcome in each_target(array) {
            assert!(!matches!(outcome, Ok(Some(AttrValue::N(ref n))) if n.is_empty()));
        }
    }
}
