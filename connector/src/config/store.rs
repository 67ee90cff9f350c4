//! Object-store locations of a Parquet source (`s3://`, `gs://`, `az://`, `abfss://`) and the
//! `store:` block that goes with them.
//!
//! Credentials never come from the mapping: `store:` holds only where the store is and how to
//! talk to it, and a credential written there is an error that names the environment variable
//! to use. The cloud's own variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`) are read when the mapping
//! is loaded, through the same [`Env`](super::env::Env) as `${VAR}`s, and kept as secrets.

use std::borrow::Cow;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;
use url::Url;

use super::issue::{did_you_mean, Loc};
use super::secret::SecretString;
use super::validator::Validator;
use crate::quote::quote;

/// The settings `store:` takes.
pub const STORE_KEYS: [&str; 3] = ["region", "endpoint", "allow_http"];

/// `store:` as written: its settings, and any other key with where it was written.
#[derive(Debug, Default)]
pub struct RawStore {
    pub region: Option<Spanned<String>>,
    pub endpoint: Option<Spanned<String>>,
    /// `true`, `false` or a `${VAR}` that gives one.
    pub allow_http: Option<Spanned<String>>,
    /// Keys that are not settings: a credential or a typo, each reported by the validator.
    pub other: Vec<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawStore {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StoreVisitor;

        impl<'de> Visitor<'de> for StoreVisitor {
            type Value = RawStore;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of `region`, `endpoint` and `allow_http`")
            }

            // Unknown keys are collected, not refused by serde, so that a credential written
            // here gets an error that says where credentials go instead of "unknown field".
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawStore, A::Error> {
                let mut store = RawStore::default();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let slot = match key.value.as_str() {
                        "region" => &mut store.region,
                        "endpoint" => &mut store.endpoint,
                        "allow_http" => &mut store.allow_http,
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                            store.other.push(key);
                            continue;
                        }
                    };
                    if slot.is_some() {
                        return Err(de::Error::custom(format!("duplicate field `{}`", key.value)));
                    }
                    *slot = Some(map.next_value()?);
                }
                Ok(store)
            }
        }

        deserializer.deserialize_map(StoreVisitor)
    }
}

impl JsonSchema for RawStore {
    fn schema_name() -> Cow<'static, str> {
        "Store".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "How to reach an object store. No credentials: they come from the cloud's environment \
                            variables and credential chain. Every value may use `${VAR}`.",
            "type": "object",
            "properties": {
                "region": { "type": "string", "description": "The S3 region, such as `${AWS_REGION:-us-east-1}`." },
                "endpoint": {
                    "type": "string",
                    "description": "Another endpoint than the cloud's own: an S3-compatible store (MinIO, R2, Ceph), \
                                    an emulator, or a local test server."
                },
                "allow_http": {
                    "type": ["boolean", "string"],
                    "description": "Allow an http:// endpoint (default false)."
                }
            },
            "additionalProperties": false
        })
    }
}

/// Which cloud's store a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    S3,
    Gcs,
    Azure,
}

impl StoreKind {
    fn of_scheme(scheme: &str) -> Option<StoreKind> {
        match scheme {
            "s3" | "s3a" => Some(StoreKind::S3),
            "gs" => Some(StoreKind::Gcs),
            "az" | "azure" | "adl" | "abfs" | "abfss" => Some(StoreKind::Azure),
            _ => None,
        }
    }

    /// The prefix of the environment variables its credential chain reads.
    pub fn env_prefix(self) -> &'static str {
        match self {
            StoreKind::S3 => "AWS_",
            StoreKind::Gcs => "GOOGLE_",
            StoreKind::Azure => "AZURE_",
        }
    }

    /// Where this cloud's credentials go, for messages.
    pub fn credential_variables(self) -> &'static str {
        match self {
            StoreKind::S3 => "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_SESSION_TOKEN, a web identity, or instance metadata)",
            StoreKind::Gcs => "GOOGLE_APPLICATION_CREDENTIALS (or the instance's service account)",
            StoreKind::Azure => "AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_KEY or AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_TENANT_ID",
        }
    }
}

/// An object-store location, checked: the store, its settings and the key pattern inside it.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub kind: StoreKind,
    /// `scheme://bucket`, as the mapping wrote it: what messages name.
    pub root: String,
    /// The key pattern inside the bucket, without a leading `/` (`users/dt=*/part-*.parquet`).
    pub key_pattern: String,
    pub region: Option<String>,
    pub endpoint: Option<Url>,
    pub allow_http: bool,
    /// The cloud's variables (`AWS_*` …) as they were when the mapping was loaded.
    pub env: Vec<(String, SecretString)>,
}

impl StoreConfig {
    /// The URL of a key, as messages show it.
    pub fn url_of(&self, key: &str) -> String {
        format!("{}/{key}", self.root)
    }
}

/// True if `text` names an object store rather than a local path.
pub fn is_store_url(text: &str) -> bool {
    text.split_once("://")
        .is_some_and(|(scheme, _)| StoreKind::of_scheme(scheme).is_some())
}

/// A key written in `store:` that is a credential, with the variable it belongs in.
fn credential_variable(key: &str, kind: StoreKind) -> Option<&'static str> {
    let key = key.to_ascii_lowercase();
    let key = key
        .trim_start_matches("aws_")
        .trim_start_matches("google_")
        .trim_start_matches("azure_storage_");
    let variable = match key {
        "access_key_id" | "key_id" => "AWS_ACCESS_KEY_ID",
        "secret_access_key" | "secret_key" => "AWS_SECRET_ACCESS_KEY",
        "session_token" => "AWS_SESSION_TOKEN",
        "service_account_key" | "service_account" | "service_account_path" | "application_credentials" | "credentials" => {
            "GOOGLE_APPLICATION_CREDENTIALS"
        }
        "account_key" | "access_key" | "master_key" => "AZURE_STORAGE_ACCOUNT_KEY",
        "sas_key" | "sas_token" => "AZURE_STORAGE_SAS_KEY",
        "client_secret" => "AZURE_CLIENT_SECRET",
        "token" | "bearer_token" | "password" | "secret" => match kind {
            StoreKind::S3 => "AWS_SESSION_TOKEN",
            StoreKind::Gcs => "GOOGLE_APPLICATION_CREDENTIALS",
            StoreKind::Azure => "AZURE_STORAGE_TOKEN",
        },
        _ => return None,
    };
    Some(variable)
}

/// A pre-signed URL or an Azure SAS in the query: a credential. (A bare `?` is a glob's.)
fn signed_query(text: &str) -> bool {
    ["sig=", "X-Amz-", "x-amz-", "?sv=", "&sv="]
        .iter()
        .any(|marker| text.contains(marker))
}

/// `scheme://authority/key pattern`, split; `None` when it is not that shape.
fn split_url(text: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    let (authority, key) = rest.split_once('/').unwrap_or((rest, ""));
    Some((scheme, authority, key))
}

impl Validator<'_> {
    /// An object-store URL and its `store:` block. Reports every problem; returns the location
    /// when there was none in the URL itself.
    pub fn store_location(&mut self, text: &str, loc: &Loc, store: Option<&Spanned<RawStore>>, at: &str) -> Option<StoreConfig> {
        let (scheme, authority, key) = split_url(text)?;
        let kind = StoreKind::of_scheme(scheme)?;
        let mut fine = true;
        // Checked first, and the URL is not quoted: `user:password@` may be in it.
        if authority.contains(':') || (authority.contains('@') && !matches!(scheme, "abfs" | "abfss")) {
            self.push(
                loc,
                format!("holds credentials; they come from the environment: {}", kind.credential_variables()),
            );
            return None;
        }
        if signed_query(text) {
            self.push(
                loc,
                format!(
                    "holds a signed query; credentials come from the environment: {}",
                    kind.credential_variables()
                ),
            );
            return None;
        }
        if authority.is_empty() || authority.contains(['*', '?', '[']) {
            self.push(
                loc,
                format!("{} names no bucket or container: write `{scheme}://BUCKET/path`", quote(text)),
            );
            fine = false;
        }
        if key.trim_matches('/').is_empty() {
            self.push(loc, "names a whole bucket: give the path of the files, a folder or a glob in it");
            fine = false;
        } else if let Err(e) = glob::Pattern::new(key) {
            self.push(loc, format!("bad glob: {}", e.msg));
            fine = false;
        }
        let settings = self.store_settings(kind, store, at);
        let env = self
            .env_vars_with_prefix(kind.env_prefix())
            .into_iter()
            .map(|(name, value)| (name, SecretString::new(value)))
            .collect();
        let (region, endpoint, allow_http) = settings?;
        fine.then(|| StoreConfig {
            kind,
            root: format!("{scheme}://{authority}"),
            key_pattern: key.trim_start_matches('/').to_string(),
            region,
            endpoint,
            allow_http,
            env,
        })
    }

    /// `store:`'s region, endpoint and allow_http, each checked against the store's kind.
    fn store_settings(
        &mut self,
        kind: StoreKind,
        store: Option<&Spanned<RawStore>>,
        at: &str,
    ) -> Option<(Option<String>, Option<Url>, bool)> {
        let Some(store) = store else {
            return Some((None, None, false));
        };
        let field = |name: &str| format!("{at}.store.{name}");
        let raw = &store.value;
        let count = self.issue_count();
        self.store_other_keys(kind, raw, at);
        let region = raw.region.as_ref().and_then(|r| self.interpolated(r, &field("region")));
        if let (Some(r), false) = (&raw.region, kind == StoreKind::S3) {
            self.push(
                &Loc::of(r, field("region")),
                "is for s3:// sources; GCS and Azure find the region themselves",
            );
        }
        let allow_http = match &raw.allow_http {
            None => false,
            Some(a) => match self.interpolated(a, &field("allow_http")).as_deref().map(str::trim) {
                Some("true") => true,
                Some("false") | None => false,
                Some(other) => {
                    self.push(
                        &Loc::of(a, field("allow_http")),
                        format!("must be true or false, got {}", quote(other)),
                    );
                    false
                }
            },
        };
        let endpoint = raw
            .endpoint
            .as_ref()
            .and_then(|e| self.store_endpoint(e, &field("endpoint"), allow_http));
        (self.issue_count() == count).then_some((region.filter(|r| !r.is_empty()), endpoint, allow_http))
    }

    fn store_other_keys(&mut self, kind: StoreKind, raw: &RawStore, at: &str) {
        for key in &raw.other {
            let loc = Loc::of(key, format!("{at}.store.{}", key.value));
            match credential_variable(&key.value, kind) {
                Some(variable) => self.push(
                    &loc,
                    format!(
                        "is a credential, and credentials never go in a mapping: ebb reads them from the environment, \
                         here {variable} (the store's chain: {})",
                        kind.credential_variables()
                    ),
                ),
                None => self.push_hinted(
                    &loc,
                    format!(
                        "unknown field {}, expected one of `region`, `endpoint`, `allow_http`",
                        quote(&key.value)
                    ),
                    did_you_mean(&key.value, STORE_KEYS),
                ),
            }
        }
    }

    fn store_endpoint(&mut self, value: &Spanned<String>, field: &str, allow_http: bool) -> Option<Url> {
        let loc = Loc::of(value, field);
        let text = self.interpolated(value, field)?;
        if text.trim().is_empty() {
            // `${S3_ENDPOINT:-}`: no endpoint, the cloud's own.
            return None;
        }
        match Url::parse(text.trim()) {
            Ok(url) if !matches!(url.scheme(), "http" | "https") || url.host().is_none() => {
                self.push(&loc, "must be an http:// or https:// URL");
                None
            }
            Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                self.push(&loc, "holds credentials; they come from the environment, not the endpoint");
                None
            }
            Ok(url) if url.scheme() == "http" && !allow_http => {
                self.push(
                    &loc,
                    "is http://: set `allow_http: true` to allow a store without TLS (a local test server)",
                );
                None
            }
            Ok(url) => Some(url),
            Err(e) => {
                self.push(&loc, format!("is not a valid URL: {e}"));
                None
            }
        }
    }
}
