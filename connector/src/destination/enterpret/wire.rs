//! Enterpret's JSON: `{"users":[{"id","createdAt","attributes":{"Name":{"s":[…]}}}]}`. Every
//! attribute is a list of one type, tagged `s`, `n` or `b`. The canonical record knows nothing
//! of this form; it is serialised here, without copying.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::config::ObjectKind;
use crate::record::{AttrValue, Record};

/// The body of one request: the object's key and its records.
pub struct Body<'a> {
    pub object: ObjectKind,
    pub records: &'a [&'a Record],
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.object.endpoint().1, &Records(self.records))?;
        map.end()
    }
}

struct Records<'a>(&'a [&'a Record]);

impl Serialize for Records<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for record in self.0 {
            seq.serialize_element(&WireRecord(record))?;
        }
        seq.end()
    }
}

struct WireRecord<'a>(&'a Record);

impl Serialize for WireRecord<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("id", &self.0.id)?;
        map.serialize_entry("createdAt", &self.0.created_at)?;
        map.serialize_entry("attributes", &Attributes(&self.0.attributes))?;
        map.end()
    }
}

struct Attributes<'a>(&'a [(String, AttrValue)]);

impl Serialize for Attributes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, &Tagged(value))?;
        }
        map.end()
    }
}

struct Tagged<'a>(&'a AttrValue);

impl Serialize for Tagged<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        match self.0 {
            // Enterpret has no date type (its capabilities say so); dates are text there.
            AttrValue::S(v) | AttrValue::D(v) => map.serialize_entry("s", v)?,
            AttrValue::N(v) => map.serialize_entry("n", v)?,
            AttrValue::B(v) => map.serialize_entry("b", v)?,
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Number;

    #[test]
    fn record_json_shape() {
        let r = Record {
            id: "u1".into(),
            created_at: 1_600_000_000,
            attributes: vec![
                ("Age".into(), AttrValue::N(vec![Number::Int(31)])),
                ("Tags".into(), AttrValue::S(vec!["a".into(), "b".into()])),
            ],
        };
        let body = Body {
            object: ObjectKind::User,
            records: &[&r],
        };
        assert_eq!(
            serde_json::to_string(&body).expect("json"),
            r#"{"users":[{"id":"u1","createdAt":1600000000,"attributes":{"Age":{"n":[31]},"Tags":{"s":["a","b"]}}}]}"#
        );
        let body = Body {
            object: ObjectKind::Account,
            records: &[],
        };
        assert_eq!(serde_json::to_string(&body).expect("json"), r#"{"accounts":[]}"#);
    }
}
