//! Enterpret's block of a mapping: its keys as written, their validation, and its limits.

use serde::Deserialize;
use serde_saphyr::Spanned;
use url::Url;

use crate::config::secret::SecretString;
use crate::config::{ColumnRef, DeliveryConfig, DeliveryLimits, IdentitySource, NullPolicy, RawDelivery, RecordShape, Validator};
use crate::destination::capabilities::{Capabilities, CreatedAt, Identity, ValueType};
use crate::destination::keys::RawRecord;
use crate::destination::{bare_url, Destination, DestinationError, DestinationSettings};

/// The keys of a mapping that say how a row becomes an Enterpret record.
pub const MAPPING_KEYS: &[&str] = &["id", "created_at", "attributes", "nulls"];

/// Most records in one request.
pub const MAX_RECORDS: usize = 15;
/// Largest request body.
pub const MAX_BYTES: usize = 1_000_000;
/// 2000-01-01T00:00:00Z, the earliest `createdAt` Enterpret accepts.
pub const EARLIEST_CREATED_AT: i64 = 946_684_800;
const DEFAULT_URL: &str = "https://api.enterpret.com";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// The custom user webhook.
    User,
    /// The custom account webhook.
    Account,
}

impl ObjectKind {
    /// The path and body key of an object's webhook.
    pub fn endpoint(self) -> (&'static str, &'static str) {
        match self {
            ObjectKind::User => ("webhook/users/custom", "users"),
            ObjectKind::Account => ("webhook/accounts/custom", "accounts"),
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Enterpret")]
pub struct RawEnterpret {
    /// Which of Enterpret's objects this sync writes.
    #[schemars(with = "ObjectKind")]
    pub object: Spanned<ObjectKind>,
    /// The object's API key; always a `${VAR}`, such as `${ENTERPRET_USERS_API_KEY}`.
    #[schemars(with = "String")]
    pub api_key: Spanned<String>,
    /// The API's base URL (default `https://api.enterpret.com`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub url: Option<Spanned<String>>,
    /// Send to an `http://` URL of a host other than this machine: the key and the records
    /// cross the network in clear. Off by default.
    #[serde(default)]
    pub allow_http: bool,
    /// Records per request, 1..=15.
    #[serde(default)]
    #[schemars(with = "Option<i64>")]
    pub batch_size: Option<Spanned<i64>>,
    /// The most requests a minute, shared by the syncs with the same URL and key.
    #[serde(default)]
    #[schemars(with = "Option<i64>")]
    pub requests_per_minute: Option<Spanned<i64>>,
    /// Requests in flight at once.
    #[serde(default)]
    #[schemars(with = "Option<i64>")]
    pub concurrency: Option<Spanned<i64>>,
    /// How long one batch may be retried before the run fails.
    #[serde(default)]
    #[schemars(with = "Option<i64>")]
    pub retry_budget_secs: Option<Spanned<i64>>,
    /// Timeout of one HTTP request.
    #[serde(default)]
    #[schemars(with = "Option<i64>")]
    pub timeout_secs: Option<Spanned<i64>>,
}

#[derive(Clone, Debug)]
pub struct EnterpretConfig {
    pub object: ObjectKind,
    pub api_key: SecretString,
    pub url: Url,
    pub delivery: DeliveryConfig,
}

impl RawEnterpret {
    /// The block, and the record that `id`, `created_at`, `attributes` and `nulls` describe.
    pub fn validate(&self, v: &mut Validator, record: &RawRecord) -> (EnterpretConfig, RecordShape) {
        (self.settings(v), shape(v, record))
    }

    fn settings(&self, v: &mut Validator) -> EnterpretConfig {
        let p = "destination.enterpret";
        let fix = match self.object.value {
            ObjectKind::User => "api_key: ${ENTERPRET_USERS_API_KEY}",
            ObjectKind::Account => "api_key: ${ENTERPRET_ACCOUNTS_API_KEY}",
        };
        let api_key = v.credential(&self.api_key, &format!("{p}.api_key"), fix);
        let url = v.base_url(&self.url, &format!("{p}.url"), DEFAULT_URL, self.allow_http);
        let raw = RawDelivery {
            batch_size: &self.batch_size,
            requests_per_minute: &self.requests_per_minute,
            concurrency: &self.concurrency,
            retry_budget_secs: &self.retry_budget_secs,
            timeout_secs: &self.timeout_secs,
        };
        let limits = DeliveryLimits {
            max_batch_size: MAX_RECORDS,
            default_batch_size: MAX_RECORDS,
            default_requests_per_minute: 100,
        };
        EnterpretConfig {
            object: self.object.value,
            api_key,
            url,
            delivery: v.delivery(raw, p, limits),
        }
    }
}

/// An id column, a creation time and attributes; a null attribute is left out unless
/// `nulls: send`, which sends it as an empty list (Enterpret then clears it).
fn shape(v: &mut Validator, record: &RawRecord) -> RecordShape {
    record.only(v, "enterpret", MAPPING_KEYS);
    let mut column =
        |value: &Option<serde_saphyr::Spanned<String>>, key: &str, what: &str| match record.require(v, value, key, "enterpret", what) {
            Some(written) => v.column_ref(written, key),
            None => ColumnRef {
                name: String::new(),
                loc: record.at.clone(),
            },
        };
    let id = column(record.id, "id", "the column that holds each record's id");
    let created_at = column(record.created_at, "created_at", "the column with each record's creation time");
    let fields = record
        .attributes
        .iter()
        .flat_map(|a| a.value.iter())
        .filter_map(|(name, spec)| v.attribute(name, spec))
        .collect();
    RecordShape {
        identity: IdentitySource::Column(id),
        created_at: Some(created_at),
        fields,
        nulls: record.nulls.as_ref().map(|n| n.value).unwrap_or(NullPolicy::Skip),
        join: None,
    }
    .sorted()
}

impl DestinationSettings for EnterpretConfig {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            identity: Identity::Id,
            created_at: CreatedAt::Required {
                earliest: EARLIEST_CREATED_AT,
            },
            value_types: &[ValueType::String, ValueType::Number, ValueType::Boolean],
            // Enterpret merges the attributes it is sent into what it holds.
            replaces_record: false,
            max_batch_records: self.delivery.batch_size.min(MAX_RECORDS),
            max_request_bytes: MAX_BYTES,
            can_delete: false,
            deletes_per_request: 0,
        }
    }

    fn delivery(&self) -> &DeliveryConfig {
        &self.delivery
    }

    /// The workspace URL and the object; never the key, so a rotated key is the same destination.
    fn fingerprint(&self) -> String {
        format!("enterpret {} at {}", self.object.endpoint().1, bare_url(&self.url))
    }

    /// Enterpret limits each key on each webhook.
    fn rate_scope(&self) -> u64 {
        crate::destination::rate_scope(&self.fingerprint(), self.api_key.expose())
    }

    fn build(&self) -> Result<Box<dyn Destination>, DestinationError> {
        Ok(Box::new(super::Enterpret::new(self.clone())?))
    }
}
