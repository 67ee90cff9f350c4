//! The generic sections of a mapping file as written: serde types with source positions.
//!
//! Nothing here is trusted; the validator turns it into typed configuration. The whole file's
//! raw form is in the `spec` module, and each destination's block in its own module.

use std::borrow::Cow;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

use super::AttrType;

/// Where and when to raise alerts about runs.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Alerts")]
pub struct RawAlerts {
    /// Receives each alert as a JSON POST; usually `${ALERT_WEBHOOK_URL}`.
    #[schemars(with = "String")]
    pub webhook_url: Spanned<String>,
    /// Alert when a run fails (default true).
    #[serde(default)]
    pub on_failure: Option<bool>,
    /// Alert when more than this share (0 to 1) of the source rows was rejected.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub rejected_ratio_above: Option<Spanned<f64>>,
    /// Alert when a run sends everything again because state was empty (default true).
    #[serde(default)]
    pub on_full_resync: Option<bool>,
    /// Alert when the source row count moves this much from its recent average.
    #[serde(default)]
    #[schemars(with = "Option<RawRowCountChange>")]
    pub row_count_change: Option<Spanned<RawRowCountChange>>,
    /// Alert when a time-boxed run leaves a backlog that takes longer than this (`2h`) to clear
    /// at the configured pace.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub backlog_over: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RowCountChange")]
pub struct RawRowCountChange {
    /// Percent of the average, above which the change alerts.
    #[schemars(with = "f64")]
    pub percent_above: Spanned<f64>,
    /// How many earlier completed runs make the average (default 5).
    #[serde(default)]
    #[schemars(with = "Option<i64>")]
    pub last_runs: Option<Spanned<i64>>,
}

/// `ebb worker --config FILE`: settings for every sync the worker runs.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "WorkerConfig")]
pub struct RawWorkerConfig {
    /// Alerts for every sync whose mapping has no `alerts:` block of its own.
    #[serde(default)]
    #[schemars(with = "Option<RawAlerts>")]
    pub alerts: Option<Spanned<RawAlerts>>,
    /// How long run history and rejections are kept, such as `14d`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub retention: Option<Spanned<String>>,
}

/// Where rows come from: `parquet` or `postgres`, one of them. `latest`, `require_marker` and
/// `store` go with `parquet`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Source", transform = parquet_or_postgres)]
pub struct RawSource {
    /// A Parquet file, a folder of them, or a glob: a local path, or an object-store URL
    /// (`s3://bucket/users/dt=*/part-*.parquet`, `gs://…`, `az://container/…`, `abfss://…`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub parquet: Option<Spanned<String>>,
    /// A PostgreSQL table or read-only query.
    #[serde(default)]
    pub postgres: Option<Box<RawPostgres>>,
    /// Of the folders that the glob's first wildcard matches, read only the greatest by name
    /// (`dt=2026-11-30/` of the daily exports).
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub latest: Option<Spanned<bool>>,
    /// A folder counts only once this object exists in it (`_SUCCESS`), so an export still
    /// being written is never read.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub require_marker: Option<Spanned<String>>,
    /// How to reach the object store of an `s3://`, `gs://` or `az://` source; never credentials.
    #[serde(default)]
    #[schemars(with = "Option<super::store::RawStore>")]
    pub store: Option<Spanned<super::store::RawStore>>,
    /// A column that moves whenever a row changes (`updated_at`): runs read only the rows past
    /// it, with a full diff on a schedule to stay exact.
    #[serde(default)]
    #[schemars(with = "Option<super::cursor::RawCursor>")]
    pub cursor: Option<Spanned<super::cursor::RawCursor>>,
}

/// `source:` takes one of `parquet` and `postgres`, and the folder and store keys only with
/// `parquet`.
fn parquet_or_postgres(schema: &mut Schema) {
    schema.insert(
        "oneOf".into(),
        serde_json::json!([{ "required": ["parquet"] }, { "required": ["postgres"] }]),
    );
    schema.insert(
        "dependentRequired".into(),
        serde_json::json!({ "latest": ["parquet"], "require_marker": ["parquet"], "store": ["parquet"] }),
    );
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Postgres")]
pub struct RawPostgres {
    /// `postgres://user:pass@host:5432/db?sslmode=verify-full&sslrootcert=/etc/ssl/root.crt`; usually `${WAREHOUSE_URL}`.
    #[schemars(with = "String")]
    pub url: Spanned<String>,
    /// A plain `[schema.]name`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub table: Option<Spanned<String>>,
    /// Any SELECT, run inside a READ ONLY transaction.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub query: Option<Spanned<String>>,
    /// Where the diff against the last sync is computed: `in_process` (the default) reads
    /// every row into ebb; `warehouse` keeps the state in the database and lets it find the
    /// changes, so that only changed rows leave it.
    #[serde(default)]
    #[schemars(with = "Option<RawDiffMode>")]
    pub diff: Option<Spanned<RawDiffMode>>,
    /// With `diff: warehouse`: the schema of the database that holds ebb's bookkeeping tables
    /// (default `ebb_state`). ebb needs to write there only.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub state_schema: Option<Spanned<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "DiffMode")]
pub enum RawDiffMode {
    InProcess,
    Warehouse,
}

/// A one-key choice (`parquet:` or `postgres:`), described as one object whose keys are the
/// choices, at most one of them: schemars' `oneOf` of one-key objects is the same language, but
/// an editor then neither completes the keys nor says which key inside a choice is wrong.
pub fn one_key_of(schema: &mut Schema) {
    let Some(serde_json::Value::Array(choices)) = schema.remove("oneOf") else {
        return;
    };
    let mut properties = serde_json::Map::new();
    for choice in choices {
        let description = choice.get("description").cloned();
        let Some(serde_json::Value::Object(keys)) = choice.get("properties").cloned() else {
            continue;
        };
        for (key, mut body) in keys {
            if let (Some(text), Some(body)) = (&description, body.as_object_mut()) {
                body.entry("description").or_insert(text.clone());
            }
            properties.insert(key, body);
        }
    }
    schema.insert("type".into(), "object".into());
    schema.insert("properties".into(), properties.into());
    schema.insert("additionalProperties".into(), false.into());
    schema.insert("minProperties".into(), 1.into());
    schema.insert("maxProperties".into(), 1.into());
}

/// `Name: column` or `Name: { column | value, type, list, split }`.
#[derive(Debug)]
pub enum RawAttribute {
    Column(String),
    Spec(RawAttributeSpec),
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FieldSpec")]
pub struct RawAttributeSpec {
    /// The source column to read.
    #[serde(default)]
    pub column: Option<String>,
    /// A constant sent with every record instead of a column.
    #[serde(default)]
    pub value: Option<serde_json::Value>,
    /// The wire type; by default it follows the column's type.
    #[serde(default, rename = "type")]
    pub ty: Option<AttrType>,
    /// Send a list column as a list attribute (true), or refuse lists (false).
    #[serde(default)]
    pub list: Option<bool>,
    /// Split a text column on this separator into a list, such as `","`.
    #[serde(default)]
    pub split: Option<String>,
    /// `hmac-sha256`: send each value as its HMAC keyed by the salt instead (needs `salt_env`).
    #[serde(default)]
    pub hash: Option<super::pii::HashAlgorithm>,
    /// The environment variable that holds the hash's salt (32 bytes or more).
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

impl JsonSchema for RawAttribute {
    fn schema_name() -> Cow<'static, str> {
        "Field".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let spec = generator.subschema_for::<RawAttributeSpec>();
        json_schema!({
            "description": "A source column's name, or a map that says where the value comes from and how it is typed.",
            "anyOf": [{ "type": "string", "description": "The source column to read." }, spec]
        })
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

impl JsonSchema for RawIdentity {
    fn schema_name() -> Cow<'static, str> {
        "Identity".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The column that holds the identity, or a template built from columns.",
            "anyOf": [
                { "type": "string", "description": "The source column to read." },
                {
                    "type": "object",
                    "properties": {
                        "template": {
                            "type": "string",
                            "description": "Text with `{column}` placeholders, such as `user-{user_id}@customers.invalid`."
                        }
                    },
                    "required": ["template"],
                    "additionalProperties": false
                }
            ]
        })
    }
}
