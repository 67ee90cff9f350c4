//! The payloads ebb keeps of what each destination acknowledged: sync tracking, in Census's
//! words. Every committed upsert stores its record, compressed, next to its hash, so that a
//! person can ask what a record said when it went out (`ebb record`), and a preview can say
//! what changed since, field by field (`ebb preview --explain`).
//!
//! The stored form is the canonical record (its fields and typed values), not one
//! destination's wire form: the diff is of fields, whatever the destination, and each
//! destination renders its wire form from it on demand.

use std::fmt;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::record::{AttrValue, Number, Record};

/// The first byte of a stored payload: the format it is in. Small records compress little, so
/// each is kept compressed only when that saves a tenth of it.
const ZSTD_JSON: u8 = 1;
const PLAIN_JSON: u8 = 2;
/// zstd's fastest level: on records of a few hundred bytes the higher ones gain almost nothing.
const LEVEL: i32 = 1;

thread_local! {
    /// One compression context per thread: making one costs more than compressing a record.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        std::cell::RefCell::new(zstd::bulk::Compressor::new(LEVEL).ok());
}

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("stored payload is in format {0}, which this ebb does not read")]
    Format(u8),
    #[error("stored payload is empty")]
    Empty,
    #[error("stored payload does not decompress: {0}")]
    Compression(#[source] std::io::Error),
    #[error("stored payload is not a record: {0}")]
    Shape(String),
}

/// The stored form of `record`: a format byte, then the JSON of its creation time and fields
/// (the identity is the row's key), zstd-compressed where that pays.
pub fn encode(record: &Record) -> Vec<u8> {
    let text = match serde_json::to_vec(&Stored(record)) {
        Ok(text) => text,
        // Only a non-finite float fails, and the mapping never makes one: keep nothing.
        Err(_) => return Vec::new(),
    };
    let compressed = COMPRESSOR.with(|c| c.borrow_mut().as_mut().and_then(|c| c.compress(&text).ok()));
    let mut out = Vec::with_capacity(text.len() + 1);
    match compressed {
        Some(small) if small.len() * 10 < text.len() * 9 => {
            out.push(ZSTD_JSON);
            out.extend_from_slice(&small);
        }
        _ => {
            out.push(PLAIN_JSON);
            out.extend_from_slice(&text);
        }
    }
    out
}

/// A record as it is stored: `{"createdAt":…,"fields":{"Age":{"n":[45]}}}`, written from the
/// record without building a JSON tree first.
struct Stored<'a>(&'a Record);

impl Serialize for Stored<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("createdAt", &self.0.created_at)?;
        map.serialize_entry("fields", &Fields(&self.0.attributes))?;
        map.end()
    }
}

struct Fields<'a>(&'a [(String, AttrValue)]);

impl Serialize for Fields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            match value {
                AttrValue::S(v) => map.serialize_entry(name, &Tag("s", v))?,
                AttrValue::N(v) => map.serialize_entry(name, &Tag("n", v))?,
                AttrValue::B(v) => map.serialize_entry(name, &Tag("b", v))?,
                AttrValue::D(v) => map.serialize_entry(name, &Tag("d", v))?,
            }
        }
        map.end()
    }
}

struct Tag<'a, T>(&'static str, &'a T);

impl<T: Serialize> Serialize for Tag<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.0, self.1)?;
        map.end()
    }
}

/// The record `bytes` hold, under identity `id`.
pub fn decode(id: &str, bytes: &[u8]) -> Result<Record, PayloadError> {
    let (&format, body) = bytes.split_first().ok_or(PayloadError::Empty)?;
    let text = match format {
        ZSTD_JSON => zstd::stream::decode_all(body).map_err(PayloadError::Compression)?,
        PLAIN_JSON => body.to_vec(),
        other => return Err(PayloadError::Format(other)),
    };
    let value: Value = serde_json::from_slice(&text).map_err(|e| PayloadError::Shape(e.to_string()))?;
    let created_at = value["createdAt"]
        .as_i64()
        .ok_or_else(|| PayloadError::Shape("no createdAt".into()))?;
    let fields = value["fields"].as_object().ok_or_else(|| PayloadError::Shape("no fields".into()))?;
    let attributes = fields
        .iter()
        .map(|(name, v)| untagged(v).map(|v| (name.clone(), v)))
        .collect::<Result<_, _>>()?;
    Ok(Record {
        id: id.to_string(),
        created_at,
        attributes,
    })
}

fn untagged(value: &Value) -> Result<AttrValue, PayloadError> {
    let shape = || PayloadError::Shape(format!("not a tagged value: {value}"));
    let (tag, items) = value.as_object().and_then(|m| m.iter().next()).ok_or_else(shape)?;
    let items = items.as_array().ok_or_else(shape)?;
    let texts = || {
        items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(shape))
            .collect::<Result<Vec<String>, PayloadError>>()
    };
    Ok(match tag.as_str() {
        "s" => AttrValue::S(texts()?),
        "d" => AttrValue::D(texts()?),
        "b" => AttrValue::B(items.iter().map(|i| i.as_bool().ok_or_else(shape)).collect::<Result<_, _>>()?),
        "n" => AttrValue::N(
            items
                .iter()
                .map(|i| match (i.as_i64(), i.as_f64()) {
                    (Some(int), _) => Ok(Number::Int(int)),
                    (None, Some(float)) => Ok(Number::Float(float)),
                    _ => Err(shape()),
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err(shape()),
    })
}

/// What became of one field between the payload last acknowledged and the record now.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum FieldChange {
    /// A value that was not sent before.
    Added { field: String, to: Value },
    /// A value sent before and not now.
    Removed { field: String, from: Value },
    /// A single value that changed.
    Changed { field: String, from: Value, to: Value },
    /// A list that gained or lost items (order aside), or changed order.
    List {
        field: String,
        added: Vec<Value>,
        removed: Vec<Value>,
    },
}

/// Field by field, what turns `before` into `after`, in field order; `createdAt` is a field
/// too, when the destination takes one.
pub fn field_changes(before: &Record, after: &Record) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    if before.created_at != after.created_at {
        changes.push(FieldChange::Changed {
            field: "createdAt".into(),
            from: json!(before.created_at),
            to: json!(after.created_at),
        });
    }
    let (old, new) = (Map::from_iter(values(before)), Map::from_iter(values(after)));
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        if let Some(change) = one_field(name, old.get(name), new.get(name)) {
            changes.push(change);
        }
    }
    changes
}

/// A record's fields as a person reads them: a single value as itself, a list as a list.
pub fn fields_view(record: &Record) -> Map<String, Value> {
    values(record)
        .map(|(name, items)| match items {
            Value::Array(mut one) if one.len() == 1 => (name, one.remove(0)),
            other => (name, other),
        })
        .collect()
}

/// Each field's items as JSON values.
fn values(record: &Record) -> impl Iterator<Item = (String, Value)> + '_ {
    record.attributes.iter().map(|(name, value)| {
        let items = match value {
            AttrValue::S(v) | AttrValue::D(v) => json!(v),
            AttrValue::N(v) => json!(v),
            AttrValue::B(v) => json!(v),
        };
        (name.clone(), items)
    })
}

fn one_field(name: &str, before: Option<&Value>, after: Option<&Value>) -> Option<FieldChange> {
    let field = name.to_string();
    let items = |v: Option<&Value>| v.and_then(Value::as_array).cloned().unwrap_or_default();
    let (old, new) = (items(before), items(after));
    if old == new {
        return None;
    }
    let scalar = |v: &[Value]| match v {
        [one] => Some(one.clone()),
        _ => None,
    };
    Some(match (old.as_slice(), new.as_slice()) {
        ([], _) => FieldChange::Added {
            field,
            to: scalar(&new).unwrap_or(Value::Array(new)),
        },
        (_, []) => FieldChange::Removed {
            field,
            from: scalar(&old).unwrap_or(Value::Array(old)),
        },
        ([from], [to]) => FieldChange::Changed {
            field,
            from: from.clone(),
            to: to.clone(),
        },
        _ => FieldChange::List {
            field,
            added: new.iter().filter(|v| !old.contains(v)).cloned().collect(),
            removed: old.iter().filter(|v| !new.contains(v)).cloned().collect(),
        },
    })
}

/// A value as a person reads it: text without quotes, lists in brackets.
pub fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => crate::quote::shorten(s, crate::quote::MAX_QUOTED_CHARS).into_owned(),
        Value::Array(items) => format!("[{}]", items.iter().map(plain).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

impl fmt::Display for FieldChange {
    /// `Age: 45 → 46`, `Location: +Dune −Arrakis`, `persona: removed (was dev)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldChange::Added { field, to } => write!(f, "{field}: added {}", plain(to)),
            FieldChange::Removed { field, from } => write!(f, "{field}: removed (was {})", plain(from)),
            FieldChange::Changed { field, from, to } => write!(f, "{field}: {} → {}", plain(from), plain(to)),
            FieldChange::List { field, added, removed } => {
                let parts: Vec<String> = added
                    .iter()
                    .map(|v| format!("+{}", plain(v)))
                    .chain(removed.iter().map(|v| format!("−{}", plain(v))))
                    .collect();
                if parts.is_empty() {
                    write!(f, "{field}: same items, new order")
                } else {
                    write!(f, "{field}: {}", parts.join(" "))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: Vec<(&str, AttrValue)>) -> Record {
        Record {
            id: "u1".into(),
            created_at: 1_600_000_000,
            attributes: fields.into_iter().map(|(n, v)| (n.to_string(), v)).collect(),
        }
    }

    fn s(items: &[&str]) -> AttrValue {
        AttrValue::S(items.iter().map(|i| i.to_string()).collect())
    }

    #[test]
    fn a_payload_round_trips_every_type_and_is_compressed() {
        let r = record(vec![
            ("Age", AttrValue::N(vec![Number::Int(45), Number::Float(1.5)])),
            ("Active", AttrValue::B(vec![true])),
            ("Signed", AttrValue::D(vec!["2024-01-02".into()])),
            ("Bio", s(&[&"lorem ipsum ".repeat(20)])),
        ]);
        let bytes = encode(&r);
        assert_eq!(bytes[0], ZSTD_JSON);
        assert!(bytes.len() < 150, "240 characters of repeated text compress: {}", bytes.len());
        assert_eq!(decode("u1", &bytes).expect("decodes"), r);
        let small = record(vec![("Age", AttrValue::N(vec![Number::Int(7)]))]);
        let bytes = encode(&small);
        assert_eq!(bytes[0], PLAIN_JSON, "a record too small to gain is kept plain");
        assert_eq!(decode("u1", &bytes).expect("decodes"), small);
    }

    #[test]
    fn a_damaged_payload_is_an_error_not_a_record() {
        assert!(matches!(decode("u1", &[]), Err(PayloadError::Empty)));
        assert!(matches!(decode("u1", &[9, 1, 2]), Err(PayloadError::Format(9))));
        assert!(matches!(decode("u1", &[ZSTD_JSON, 1, 2, 3]), Err(PayloadError::Compression(_))));
        assert!(matches!(decode("u1", &[PLAIN_JSON, b'{']), Err(PayloadError::Shape(_))));
    }

    #[test]
    fn field_changes_read_as_a_person_says_them() {
        let before = record(vec![
            ("Age", AttrValue::N(vec![Number::Int(45)])),
            ("Location", s(&["Arrakis"])),
            ("persona", s(&["dev"])),
            ("Tags", s(&["a", "b"])),
        ]);
        let after = record(vec![
            ("Age", AttrValue::N(vec![Number::Int(46)])),
            ("Location", s(&["Arrakis", "Dune"])),
            ("Name", s(&["Ada"])),
            ("Tags", s(&["b", "a"])),
        ]);
        let lines: Vec<String> = field_changes(&before, &after).iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "Age: 45 → 46",
                "Location: +Dune",
                "Name: added Ada",
                "Tags: same items, new order",
                "persona: removed (was dev)"
            ]
        );
        assert_eq!(field_changes(&before, &before), []);
        let mut later = before.clone();
        later.created_at += 1;
        assert_eq!(field_changes(&before, &later)[0].to_string(), "createdAt: 1600000000 → 1600000001");
    }
}
