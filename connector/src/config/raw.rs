//! The generic sections of a mapping file as written: serde types with source positions.
//!
//! Nothing here is trusted; the validator turns it into typed configuration. The whole file's
//! raw form is in the `spec` module, and each destination's block in its own module.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

use super::AttrType;

/// Where and when to raise alerts about runs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    /// Receives each alert as a JSON POST; usually `${ALERT_WEBHOOK_URL}`.
    pub webhook_url: Spanned<String>,
    /// Alert when a run fails (default true).
    #[serde(default)]
    pub on_failure: Option<bool>,
    /// Alert when more than this share (0 to 1) of the source rows was rejected.
    #[serde(default)]
    pub rejected_ratio_above: Option<Spanned<f64>>,
    /// Alert when a run sends everything again because state was empty (default true).
    #[serde(default)]
    pub on_full_resync: Option<bool>,
    /// Alert when the source row count moves this much from its recent average.
    #[serde(default)]
    pub row_count_change: Option<Spanned<RawRowCountChange>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRowCountChange {
    /// Percent of the average, above which the change alerts.
    pub percent_above: Spanned<f64>,
    /// How many earlier completed runs make the average (default 5).
    #[serde(default)]
    pub last_runs: Option<Spanned<i64>>,
}

/// `ebb worker --config FILE`: settings for every sync the worker runs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkerConfig {
    /// Alerts for every sync whose mapping has no `alerts:` block of its own.
    #[serde(default)]
    pub alerts: Option<Spanned<RawAlerts>>,
    /// How long run history and rejections are kept, such as `14d`.
    #[serde(default)]
    pub retention: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawSource {
    /// A Parquet file, a folder of them, or a glob.
    Parquet(Spanned<String>),
    /// A PostgreSQL table or read-only query.
    Postgres(RawPostgres),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgres {
    /// `postgres://user:pass@host:5432/db?sslmode=require`; usually `${WAREHOUSE_URL}`.
    pub url: Spanned<String>,
    /// A plain `[schema.]name`.
    #[serde(default)]
    pub table: Option<Spanned<String>>,
    /// Any SELECT, run inside a READ ONLY transaction.
    #[serde(default)]
    pub query: Option<Spanned<String>>,
}

/// `Name: column` or `Name: { column | value, type, list, split }`.
#[derive(Debug)]
pub enum RawAttribute {
    Column(String),
    Spec(RawAttributeSpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAttributeSpec {
    #[serde(default)]
    pub column: Option<String>,
    #[serde(default)]
    pub value: Option<serde_json::Value>,
    #[serde(default, rename = "type")]
    pub ty: Option<AttrType>,
    #[serde(default)]
    pub list: Option<bool>,
    #[serde(default)]
    pub split: Option<String>,
    /// `sha256`: send the salted hash of each value instead (needs `salt_env`).
    #[serde(default)]
    pub hash: Option<super::pii::HashAlgorithm>,
    /// The environment variable that holds the hash's salt.
    #[serde(default)]
    pub salt_env: Option<String>,
    /// Never send this field (its column is not read either).
    #[serde(default)]
    pub redact: Option<bool>,
}

impl<'de> Deserialize<'de> for RawAttribute {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AttributeVisitor;

        impl<'de> Visitor<'de> for AttributeVisitor {
            type Value = RawAttribute;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a column name, or a map with `column` or `value`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawAttribute::Column(v.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawAttributeSpec::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawAttribute::Spec)
            }
        }

        deserializer.deserialize_any(AttributeVisitor)
    }
}

/// An identity: `email: column` or `email: { template: "user-{user_id}@customers.invalid" }`.
#[derive(Debug)]
pub enum RawIdentity {
    Column(String),
    Template(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    template: String,
}

impl<'de> Deserialize<'de> for RawIdentity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdentityVisitor;

        impl<'de> Visitor<'de> for IdentityVisitor {
            type Value = RawIdentity;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a column name, or a map with `template`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawIdentity::Column(v.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawTemplate::deserialize(de::value::MapAccessDeserializer::new(map)).map(|t| RawIdentity::Template(t.template))
            }
        }

        deserializer.deserialize_any(IdentityVisitor)
    }
}
