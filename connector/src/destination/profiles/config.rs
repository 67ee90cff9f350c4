//! The profiles destination's block of a mapping, and its record keys: `email`, `full_name`,
//! `properties`, `segments` and `company`.

use serde::Deserialize;
use serde_saphyr::Spanned;
use url::Url;

use crate::config::raw::{RawAttribute, RawIdentity, RawSource};
use crate::config::secret::SecretString;
use crate::config::{
    AttrType, Attribute, AttributeSource, ColumnRef, DeliveryConfig, DeliveryLimits, IdentitySource, Join, Loc, NullPolicy, RawDelivery,
    RecordShape, Validator, ValueRule,
};
use crate::destination::capabilities::{Capabilities, CreatedAt, Identity, ValueType};
use crate::destination::keys::{RawFields, RawRecord};
use crate::destination::{bare_url, Destination, DestinationError, DestinationSettings};
use crate::quote::quote;

/// Most users in one import request.
pub const MAX_RECORDS: usize = 100;
/// Largest request body.
pub const MAX_BYTES: usize = 1_000_000;
/// Account attributes are properties whose names start with this.
pub const COMPANY_PREFIX: &str = "company.";
const DEFAULT_URL: &str = "https://api.enjoyhq.com/v1";

/// The keys of a mapping that say how a row becomes a profile.
pub const MAPPING_KEYS: &[&str] = &["email", "full_name", "properties", "segments", "company"];

/// The record's field names, which the wire form reads back.
pub(super) const NAME_FIELD: &str = "full_name";
pub(super) const SEGMENTS_FIELD: &str = "segments";
pub(super) const PROPERTY_FIELD: &str = "properties.";

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Profiles")]
pub struct RawProfiles {
    /// The API's base URL.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub url: Option<Spanned<String>>,
    /// Send to an `http://` URL of a host other than this machine: the key and the records
    /// cross the network in clear. Off by default.
    #[serde(default)]
    pub allow_http: bool,
    /// Sent as `Authorization: Token <token>`; usually `${PROFILES_TOKEN}`.
    #[schemars(with = "String")]
    pub token: Spanned<String>,
    /// Users per request, 1..=100.
    #[serde(default)]
    #[schemars(with = "Option<i64>")]
    pub batch_size: Option<Spanned<i64>>,
    /// The most requests a minute, shared by the syncs with the same URL and token.
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

/// `company:`: account attributes, from the row's own columns or from a joined source.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Company")]
pub struct RawCompany {
    /// Where the accounts are, when they are not columns of the row.
    #[serde(default)]
    #[schemars(with = "Option<RawSource>")]
    pub source: Option<Spanned<RawSource>>,
    /// How a row finds its account in `source`.
    #[serde(default)]
    #[schemars(with = "Option<RawJoin>")]
    pub join: Option<Spanned<RawJoin>>,
    /// The account attributes, each sent as a `company.`-prefixed property.
    #[serde(default)]
    #[schemars(with = "Option<crate::destination::keys::RawFieldsSchema>")]
    pub properties: Option<Spanned<RawFields>>,
}

/// `join: { column: account_id, key: id }`: the row's `column` equals the company's `key`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Join")]
pub struct RawJoin {
    /// The row's column that holds the account key.
    #[schemars(with = "String")]
    pub column: Spanned<String>,
    /// The account source's column that the row's column equals.
    #[schemars(with = "String")]
    pub key: Spanned<String>,
}

#[derive(Clone, Debug)]
pub struct ProfilesConfig {
    pub token: SecretString,
    pub url: Url,
    pub delivery: DeliveryConfig,
}

impl RawProfiles {
    /// The block, and the profile that the mapping's profiles keys describe.
    pub fn validate(&self, v: &mut Validator, record: &RawRecord) -> (ProfilesConfig, RecordShape) {
        (self.settings(v), shape(v, record))
    }

    fn settings(&self, v: &mut Validator) -> ProfilesConfig {
        let p = "destination.profiles";
        let token = v.credential(&self.token, &format!("{p}.token"), "token: ${PROFILES_TOKEN}");
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
            default_requests_per_minute: 60,
        };
        ProfilesConfig {
            token,
            url,
            delivery: v.delivery(raw, p, limits),
        }
    }
}

/// An email identity, a required name, scalar properties, `company.` properties and segments.
/// A null property is left out, which removes it at the destination.
fn shape(v: &mut Validator, record: &RawRecord) -> RecordShape {
    record.only(v, "profiles", MAPPING_KEYS);
    let identity = match record.require(
        v,
        record.email,
        "email",
        "profiles",
        "the column (or template) of each profile's email",
    ) {
        Some(email) => identity(v, email),
        None => IdentitySource::Column(ColumnRef {
            name: String::new(),
            loc: record.at.clone(),
        }),
    };
    let mut fields = Vec::new();
    if let Some(name) = record.require(v, record.full_name, "full_name", "profiles", "the column with each person's name") {
        fields.extend(text_field(v, NAME_FIELD, name, ValueRule::Required));
    }
    if let Some(segments) = record.segments {
        fields.extend(text_field(v, SEGMENTS_FIELD, segments, ValueRule::Any));
    }
    for (key, spec) in record.properties.iter().flat_map(|p| p.value.iter()) {
        if key.starts_with(COMPANY_PREFIX) {
            let message = format!(
                "{} starts with `{COMPANY_PREFIX}`, which names company properties; put it under `company.properties`",
                quote(key)
            );
            v.push(&Loc::of(spec, format!("properties.{key}")), message);
            continue;
        }
        fields.extend(v.field("properties", key, &format!("{PROPERTY_FIELD}{key}"), spec, ValueRule::Scalar));
    }
    let join = record.company.as_ref().and_then(|company| self::company(v, company, &mut fields));
    RecordShape {
        identity,
        created_at: None,
        fields,
        nulls: NullPolicy::Skip,
        join,
    }
    .sorted()
}

fn identity(v: &mut Validator, email: &Spanned<RawIdentity>) -> IdentitySource {
    let loc = Loc::of(email, "email");
    match &email.value {
        RawIdentity::Column(column) => IdentitySource::Column(ColumnRef {
            name: v.interpolated_at(column, &loc).unwrap_or_default(),
            loc,
        }),
        RawIdentity::Template(text) => {
            let loc = loc.child("template");
            let text = v.interpolated_at(text, &loc).unwrap_or_default();
            v.template(&text, &loc)
                .map(IdentitySource::Template)
                .unwrap_or(IdentitySource::Column(ColumnRef { name: String::new(), loc }))
        }
    }
}

/// The name and the segments are text; a `type:` other than `string` is refused.
fn text_field(v: &mut Validator, key: &str, spec: &Spanned<RawAttribute>, rule: ValueRule) -> Option<Attribute> {
    let field = v.field(key, "", key, spec, rule)?;
    match &field.source {
        AttributeSource::Column { ty: Some(ty), .. } if *ty != AttrType::String => {
            v.push(&field.loc, format!("is text; `type: {ty}` does not apply"));
            None
        }
        _ => Some(field),
    }
}

/// The company's properties, sent as `company.NAME`, and the joined source if there is one.
fn company(v: &mut Validator, company: &Spanned<crate::destination::profiles::RawCompany>, fields: &mut Vec<Attribute>) -> Option<Join> {
    let at = Loc::of(company, "company");
    let mut props: Vec<Attribute> = company
        .value
        .properties
        .iter()
        .flat_map(|p| p.value.iter())
        .filter_map(|(key, spec)| {
            v.field(
                "company.properties",
                key,
                &format!("{COMPANY_PREFIX}{key}"),
                spec,
                ValueRule::Scalar,
            )
        })
        .collect();
    let join = match (&company.value.source, &company.value.join) {
        (None, None) => None,
        (Some(_), None) => {
            v.push(
                &at,
                "a company `source` needs `join: { column, key }`: the row's column and the company's key that match",
            );
            None
        }
        (None, Some(join)) => {
            v.push(
                &Loc::of(join, "company.join"),
                "`join` needs a company `source`; without one, company columns come from the row itself",
            );
            None
        }
        (Some(source), Some(join)) => {
            let join = Join {
                lookup: v.source_at(source, "company.source"),
                column: v.column_ref(&join.value.column, "company.join.column"),
                key: v.column_ref(&join.value.key, "company.join.key"),
                prefix: COMPANY_PREFIX.to_string(),
            };
            for prop in &mut props {
                if let AttributeSource::Column { column, .. } = &mut prop.source {
                    *column = join.lookup_column(column);
                }
            }
            Some(join)
        }
    };
    fields.extend(props);
    join
}

impl DestinationSettings for ProfilesConfig {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            identity: Identity::Email,
            created_at: CreatedAt::NotUsed,
            value_types: &[ValueType::String, ValueType::Number, ValueType::Date],
            // A property set replaces the profile's previous one, and segments theirs.
            replaces_record: true,
            max_batch_records: self.delivery.batch_size.min(MAX_RECORDS),
            max_request_bytes: MAX_BYTES,
            // `DELETE /users/{email}`, one profile a request.
            can_delete: true,
            deletes_per_request: 1,
        }
    }

    fn delivery(&self) -> &DeliveryConfig {
        &self.delivery
    }

    /// The API's URL; never the token, so a rotated token is the same destination.
    fn fingerprint(&self) -> String {
        format!("profiles at {}", bare_url(&self.url))
    }

    /// The API limits each token, whatever it is used for.
    fn rate_scope(&self) -> u64 {
        crate::destination::rate_scope(&self.fingerprint(), self.token.expose())
    }

    fn build(&self) -> Result<Box<dyn Destination>, DestinationError> {
        Ok(Box::new(super::Profiles::new(self.clone())?))
    }
}
