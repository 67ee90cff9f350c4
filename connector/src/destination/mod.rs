//! Destinations: where records go.
//!
//! A destination is a module of its own: it owns its block of the mapping (the keys, their
//! validation, its limits), its [`Capabilities`], its wire format and how it reads replies.
//! A [`Destination`] turns records into one request and makes one attempt to send it.
//! Batching, splitting, retries and rate limits live in `delivery`, shared by every
//! destination. Adding one is a module plus an arm in [`RawDestination`] and
//! [`DestinationConfig`].

pub mod capabilities;
pub mod enterpret;
mod http;
pub mod http_api;
pub mod keys;
pub mod profiles;
pub mod reply;

use serde::Deserialize;
use url::Url;

use crate::config::{DeliveryConfig, RecordShape, Validator};
use crate::record::{Change, Record};
pub use capabilities::Capabilities;
use keys::RawRecord;
pub use reply::{Attempt, RetryAction};

/// The `destination:` block as written: one key, the destination's type.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[schemars(rename = "Destination", transform = crate::config::raw::one_key_of)]
pub enum RawDestination {
    /// Enterpret's custom user or account webhook.
    Enterpret(enterpret::RawEnterpret),
    /// Customer profiles, identified by email.
    Profiles(profiles::RawProfiles),
}

/// A validated destination block.
#[derive(Clone, Debug)]
pub enum DestinationConfig {
    Enterpret(enterpret::EnterpretConfig),
    Profiles(profiles::ProfilesConfig),
}

impl RawDestination {
    /// The destination's block, and the record its keys of the mapping describe.
    pub fn validate(&self, v: &mut Validator, record: &RawRecord) -> (DestinationConfig, RecordShape) {
        match self {
            RawDestination::Enterpret(raw) => {
                let (config, shape) = raw.validate(v, record);
                (DestinationConfig::Enterpret(config), shape)
            }
            RawDestination::Profiles(raw) => {
                let (config, shape) = raw.validate(v, record);
                (DestinationConfig::Profiles(config), shape)
            }
        }
    }
}

/// What every destination's validated configuration provides; the pipeline asks nothing else.
pub trait DestinationSettings: std::fmt::Debug + Send + Sync {
    /// What the destination can do, from its configuration alone.
    fn capabilities(&self) -> Capabilities;
    /// The delivery settings it embeds.
    fn delivery(&self) -> &DeliveryConfig;
    /// Who the records go to, as stored with a sync's state: the type, the URL without
    /// credentials, query or fragment, and the object. Never a key.
    fn fingerprint(&self) -> String;
    /// What the destination counts its rate limit against, as a digest (see `rate_scope`):
    /// syncs with the same scope share one pace.
    fn rate_scope(&self) -> u64;
    /// The destination itself, ready to send.
    fn build(&self) -> Result<Box<dyn Destination>, DestinationError>;
}

impl DestinationConfig {
    /// The one place that names each destination's settings.
    fn settings(&self) -> &dyn DestinationSettings {
        match self {
            DestinationConfig::Enterpret(c) => c,
            DestinationConfig::Profiles(c) => c,
        }
    }

    pub fn capabilities(&self) -> Capabilities {
        self.settings().capabilities()
    }

    pub fn delivery(&self) -> &DeliveryConfig {
        self.settings().delivery()
    }

    pub fn fingerprint(&self) -> String {
        self.settings().fingerprint()
    }

    pub fn rate_scope(&self) -> u64 {
        self.settings().rate_scope()
    }

    pub fn build(&self) -> Result<Box<dyn Destination>, DestinationError> {
        self.settings().build()
    }
}

/// A rate scope: a digest of where requests go and the credential they carry, so that the
/// credential is not kept a second time in the clear.
pub(crate) fn rate_scope(endpoint: &str, credential: &str) -> u64 {
    let mut text = Vec::with_capacity(endpoint.len() + credential.len() + 1);
    text.extend_from_slice(endpoint.as_bytes());
    text.push(0);
    text.extend_from_slice(credential.as_bytes());
    xxhash_rust::xxh3::xxh3_64(&text)
}

/// `scheme://host[:port]/path`, for naming a destination: no userinfo, query or fragment.
pub(crate) fn bare_url(url: &Url) -> String {
    let mut bare = url.clone();
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    bare.set_query(None);
    bare.set_fragment(None);
    bare.as_str().trim_end_matches('/').to_string()
}

/// A request ready to go. Holds no secret: headers are added by `send`.
#[derive(Clone, Debug)]
pub struct PreparedRequest {
    pub method: &'static str,
    pub url: String,
    pub body: Vec<u8>,
    pub records: usize,
    /// The run that sends it, as `sync/run id`: sent as the [`RUN_HEADER`] header, so that a
    /// request in the destination's logs can be matched with ebb's run history. `None` for
    /// previews and test sends, which are not runs.
    pub run: Option<String>,
}

/// The header that names the run a request belongs to.
pub const RUN_HEADER: &str = "x-ebb-run";

#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("cannot encode the request: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The destination refused the run (a refused key, a request it will never take), in its
    /// own terms; the run stopped.
    #[error("{0}")]
    Refused(String),
    /// A change this destination has no API for (a delete, say).
    #[error("{0} cannot {1}")]
    Unsupported(String, &'static str),
}

#[async_trait::async_trait]
pub trait Destination: Send + Sync {
    /// A short name for messages, such as `enterpret users`.
    fn describe(&self) -> String;
    fn capabilities(&self) -> Capabilities;
    /// The request that would carry these changes. Pure: `preview` shows exactly this. A
    /// destination whose capabilities say it cannot delete refuses a delete here.
    fn prepare(&self, changes: &[&Change]) -> Result<PreparedRequest, DestinationError>;
    /// One attempt, no retries.
    async fn send(&self, request: &PreparedRequest) -> Attempt;
    /// What to do after an attempt at `request`: the shared policy of [`reply::classify`],
    /// unless this destination reads more from its replies (a 2xx or a 4xx body that names the
    /// records it refused, as [`RetryAction::Partial`]; a 404 to a delete, which is done).
    fn classify(&self, request: &PreparedRequest, attempt: &Attempt) -> RetryAction {
        let _ = request;
        reply::classify(attempt)
    }
    /// A one-line account of a failed attempt, in the destination's own terms.
    fn explain(&self, attempt: &Attempt) -> String {
        match attempt {
            Attempt::Response { status, body, .. } => format!("HTTP {status}: {}", truncate(body, 300)),
            Attempt::Transport(e) => e.clone(),
        }
    }
}

/// The records of changes that must all be upserts: a destination that cannot delete refuses
/// a delete (its capabilities say so, and validation refuses `mirror`: this is a bug guard).
pub(crate) fn upserts_only<'a>(
    changes: &[&'a Change],
    destination: String,
    what: &'static str,
) -> Result<Vec<&'a Record>, DestinationError> {
    changes
        .iter()
        .map(|change| match change {
            Change::Upsert(record) => Ok(record),
            Change::Delete { .. } => Err(DestinationError::Unsupported(destination.clone(), what)),
        })
        .collect()
}

pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
