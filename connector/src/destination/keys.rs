//! The keys of a mapping that say how a row becomes a record (`id`, `email`, `attributes`…).
//! Each destination takes its own and turns them into a [`RecordShape`](crate::config::RecordShape); a key written for
//! another destination is an error that says whose it is.

use std::collections::BTreeMap;

use serde_saphyr::Spanned;

use super::{enterpret, profiles};
use crate::config::raw::{RawAttribute, RawIdentity};
use crate::config::{Loc, NullPolicy, Validator};

/// A section of named fields, as written.
pub type RawFields = BTreeMap<String, Spanned<RawAttribute>>;

/// [`RawFields`] as `ebb schema` describes it (positions are not part of the format).
pub type RawFieldsSchema = BTreeMap<String, RawAttribute>;

/// The record keys of a mapping as written; every one is optional here, and each destination
/// says which it needs.
pub struct RawRecord<'a> {
    /// The `destination:` block: a missing key is reported there.
    pub at: Loc,
    pub id: &'a Option<Spanned<String>>,
    pub created_at: &'a Option<Spanned<String>>,
    pub attributes: &'a Option<Spanned<RawFields>>,
    pub nulls: &'a Option<Spanned<NullPolicy>>,
    pub email: &'a Option<Spanned<RawIdentity>>,
    pub full_name: &'a Option<Spanned<RawAttribute>>,
    pub properties: &'a Option<Spanned<RawFields>>,
    pub segments: &'a Option<Spanned<RawAttribute>>,
    pub company: &'a Option<Spanned<profiles::RawCompany>>,
}

/// Which destination each record key belongs to.
const OWNERS: &[(&str, &[&str])] = &[("enterpret", enterpret::MAPPING_KEYS), ("profiles", profiles::MAPPING_KEYS)];

impl RawRecord<'_> {
    /// The keys written, with where.
    fn written(&self) -> Vec<(&'static str, Loc)> {
        fn at<T>(key: &'static str, value: &Option<Spanned<T>>) -> Option<(&'static str, Loc)> {
            value.as_ref().map(|v| (key, Loc::of(v, key)))
        }
        [
            at("id", self.id),
            at("created_at", self.created_at),
            at("attributes", self.attributes),
            at("nulls", self.nulls),
            at("email", self.email),
            at("full_name", self.full_name),
            at("properties", self.properties),
            at("segments", self.segments),
            at("company", self.company),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Refuses every key written that is not one of `keys`, `destination`'s own.
    pub fn only(&self, v: &mut Validator, destination: &str, keys: &[&str]) {
        for (key, loc) in self.written() {
            if keys.contains(&key) {
                continue;
            }
            let owner = OWNERS.iter().find(|(_, owned)| owned.contains(&key)).map(|(name, _)| *name);
            let whose = owner
                .map(|o| format!("a key of the {o} destination"))
                .unwrap_or_else(|| "not a key of any destination".into());
            let own = keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
            v.push(
                &loc,
                format!("`{key}` is {whose}, and this mapping sends to {destination}, which takes {own}"),
            );
        }
    }

    /// A key `destination` needs, or an error at the destination block that says what it is for.
    pub fn require<'b, T>(
        &self,
        v: &mut Validator,
        value: &'b Option<Spanned<T>>,
        key: &str,
        destination: &str,
        what: &str,
    ) -> Option<&'b Spanned<T>> {
        if value.is_none() {
            v.push(&self.at, format!("{destination} needs `{key}`: {what}"));
        }
        value.as_ref()
    }
}
