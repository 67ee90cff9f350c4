//! The import body: `{"users":[{"email","name","properties":[{"name","type","value"}],"segments":[…]}]}`.
//! Both `properties` and `segments` are always sent, possibly empty, because what is sent
//! replaces what the profile had and a key left out would keep old values.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::config::{NAME_FIELD, PROPERTY_FIELD, SEGMENTS_FIELD};
use crate::record::{AttrValue, Record};

pub struct Body<'a> {
    pub records: &'a [&'a Record],
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("users", &Users(self.records))?;
        map.end()
    }
}

struct Users<'a>(&'a [&'a Record]);

impl Serialize for Users<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for record in self.0 {
            seq.serialize_element(&User(record))?;
        }
        seq.end()
    }
}

struct User<'a>(&'a Record);

impl User<'_> {
    fn field(&self, name: &str) -> Option<&AttrValue> {
        self.0.attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

impl Serialize for User<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("email", &self.0.id)?;
        let name = match self.field(NAME_FIELD) {
            Some(AttrValue::S(items)) => items.first().map(String::as_str).unwrap_or(""),
            _ => "",
        };
        map.serialize_entry("name", name)?;
        map.serialize_entry("properties", &Properties(&self.0.attributes))?;
        let segments: &[String] = match self.field(SEGMENTS_FIELD) {
            Some(AttrValue::S(items)) => items,
            _ => &[],
        };
        map.serialize_entry("segments", segments)?;
        map.end()
    }
}

/// The property a field is sent as: `properties.X` as `X`, `company.X` as itself.
pub(super) fn property_name(field: &str) -> Option<&str> {
    if field == NAME_FIELD || field == SEGMENTS_FIELD {
        return None;
    }
    Some(field.strip_prefix(PROPERTY_FIELD).unwrap_or(field))
}

struct Properties<'a>(&'a [(String, AttrValue)]);

impl Serialize for Properties<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for (field, value) in self.0 {
            let Some(name) = property_name(field) else { continue };
            // Fields are scalars (the mapping refuses lists); an empty one sends nothing.
            match value {
                AttrValue::S(v) => v.first().map(|x| {
                    seq.serialize_element(&Property {
                        name,
                        kind: "string",
                        value: x,
                    })
                }),
                AttrValue::D(v) => v.first().map(|x| {
                    seq.serialize_element(&Property {
                        name,
                        kind: "date",
                        value: x,
                    })
                }),
                AttrValue::N(v) => v.first().map(|x| {
                    seq.serialize_element(&Property {
                        name,
                        kind: "number",
                        value: x,
                    })
                }),
                // Not a profiles type (the capabilities say so); sent as text if it ever gets here.
                AttrValue::B(v) => v.first().map(|x| {
                    let text = x.to_string();
                    seq.serialize_element(&Property {
                        name,
                        kind: "string",
                        value: &text,
                    })
                }),
            }
            .transpose()?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct Property<'a, T: Serialize> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    value: &'a T,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Number;

    #[test]
    fn a_profile_is_sent_with_its_name_typed_properties_and_segments() {
        let r = Record {
            id: "ada@example.com".into(),
            created_at: 0,
            attributes: vec![
                ("company.size".into(), AttrValue::N(vec![Number::Int(250)])),
                ("full_name".into(), AttrValue::S(vec!["Ada Lovelace".into()])),
                ("properties.last_contact".into(), AttrValue::D(vec!["2024-05-01T12:00:00Z".into()])),
                ("properties.persona".into(), AttrValue::S(vec!["Admin".into()])),
                ("segments".into(), AttrValue::S(vec!["beta".into(), "vip".into()])),
            ],
        };
        assert_eq!(
            serde_json::to_string(&Body { records: &[&r] }).expect("json"),
            concat!(
                r#"{"users":[{"email":"ada@example.com","name":"Ada Lovelace","properties":["#,
                r#"{"name":"company.size","type":"number","value":250},"#,
                r#"{"name":"last_contact","type":"date","value":"2024-05-01T12:00:00Z"},"#,
                r#"{"name":"persona","type":"string","value":"Admin"}],"segments":["beta","vip"]}]}"#
            )
        );
    }

    #[test]
    fn properties_and_segments_are_sent_even_when_empty_so_that_they_replace() {
        let r = Record {
            id: "grace@example.com".into(),
            created_at: 0,
            attributes: vec![("full_name".into(), AttrValue::S(vec!["Grace".into()]))],
        };
        assert_eq!(
            serde_json::to_string(&Body { records: &[&r] }).expect("json"),
            r#"{"users":[{"email":"grace@example.com","name":"Grace","properties":[],"segments":[]}]}"#
        );
    }
}
