//! Object stores (S3 and S3-compatible stores, GCS, Azure Blob and ADLS): a bucket opened from
//! a mapping's checked [`StoreConfig`], listed and read with `object_store`.
//!
//! Building a [`Bucket`] does no I/O. Credentials come from the cloud's variables that the
//! mapping's loader read (`AWS_*`, `GOOGLE_*`, `AZURE_*`) and from the cloud's credential chain
//! behind them (web identity, instance metadata); the mapping holds none. Every failure is a
//! [`SourceError::Store`] that names the object's URL and a [`StoreProblem`], never a
//! credential.

mod error;
mod http;

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientConfigKey, ObjectMeta, ObjectStore, ObjectStoreExt, RetryConfig};

pub use error::StoreProblem;

use super::SourceError;
use crate::config::store::{StoreConfig, StoreKind};

/// Transient failures (a 503 SlowDown, a dropped connection) are retried this often, over at
/// most `RETRY_WINDOW`; an unreachable endpoint is reported within seconds, not minutes.
const RETRIES: usize = 4;
const RETRY_WINDOW: Duration = Duration::from_secs(60);

/// One bucket (or container) of one store.
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    config: StoreConfig,
}

/// An object: its key in the bucket and its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
}

impl Bucket {
    pub fn open(config: &StoreConfig) -> Result<Bucket, SourceError> {
        let built = match config.kind {
            StoreKind::S3 => s3(config),
            StoreKind::Gcs => gcs(config),
            StoreKind::Azure => azure(config),
        };
        let store = built.map_err(|e| SourceError::Store {
            url: config.url_of(&config.key_pattern),
            problem: StoreProblem::of(&e),
        })?;
        Ok(Bucket {
            store,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The error of an operation on the object at `key`.
    pub fn error(&self, key: &str, e: &object_store::Error) -> SourceError {
        SourceError::Store {
            url: self.config.url_of(key),
            problem: StoreProblem::of(e),
        }
    }

    /// The error of a listing: it names the URL as the mapping wrote it.
    fn listing_error(&self, e: &object_store::Error) -> SourceError {
        self.error(&self.config.key_pattern, e)
    }

    /// The names of the folders right under `dir` (`users/`), sorted.
    pub async fn subfolders(&self, dir: &str) -> Result<Vec<String>, SourceError> {
        let prefix = as_prefix(dir);
        let listed = self
            .store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(|e| self.listing_error(&e))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every object under `dir`, at any depth, sorted by key.
    pub async fn list(&self, dir: &str) -> Result<Vec<Object>, SourceError> {
        let prefix = as_prefix(dir);
        let metas: Vec<ObjectMeta> = self
            .store
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(|e| self.listing_error(&e))?;
        let mut objects: Vec<Object> = metas
            .into_iter()
            .map(|m| Object {
                key: m.location.to_string(),
                size: m.size,
            })
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// The object at `key`, if there is one.
    pub async fn head(&self, key: &str) -> Result<Option<Object>, SourceError> {
        match self.store.head(&Path::from(key)).await {
            Ok(meta) => Ok(Some(Object {
                key: meta.location.to_string(),
                size: meta.size,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(key, &e)),
        }
    }
}

/// `users/` as a listing prefix; the bucket's root is `None`.
fn as_prefix(dir: &str) -> Option<Path> {
    let dir = dir.trim_matches('/');
    (!dir.is_empty()).then(|| Path::from(dir))
}

fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            base: 3.0,
        },
        max_retries: RETRIES,
        retry_timeout: RETRY_WINDOW,
    }
}

/// The cloud's variables that its builder knows, as its config keys (`AWS_REGION` is
/// `AmazonS3ConfigKey::Region`); the others are not its business.
fn cloud_vars<K: std::str::FromStr>(config: &StoreConfig) -> impl Iterator<Item = (K, &str)> {
    config
        .env
        .iter()
        .filter_map(|(name, value)| Some((name.to_ascii_lowercase().parse().ok()?, value.expose())))
}

/// Each builder starts from ebb's client and retries, takes the cloud's own variables, then what
/// the mapping says: `store:` wins over the environment.
fn s3(config: &StoreConfig) -> object_store::Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::new().with_retry(retry()).with_http_connector(http::Connector);
    for (key, value) in cloud_vars::<AmazonS3ConfigKey>(config) {
        builder = builder.with_config(key, value);
    }
    builder = builder.with_url(&config.root).with_allow_http(config.allow_http);
    if let Some(region) = &config.region {
        builder = builder.with_region(region);
    }
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint.as_str().trim_end_matches('/'));
    }
    Ok(Arc::new(builder.build()?))
}

fn gcs(config: &StoreConfig) -> object_store::Result<Arc<dyn ObjectStore>> {
    let mut builder = GoogleCloudStorageBuilder::new()
        .with_retry(retry())
        .with_http_connector(http::Connector);
    for (key, value) in cloud_vars::<GoogleConfigKey>(config) {
        builder = builder.with_config(key, value);
    }
    builder = builder
        .with_url(&config.root)
        .with_config(GoogleConfigKey::Client(ClientConfigKey::AllowHttp), config.allow_http.to_string());
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_config(GoogleConfigKey::BaseUrl, endpoint.as_str().trim_end_matches('/'));
    }
    Ok(Arc::new(builder.build()?))
}

fn azure(config: &StoreConfig) -> object_store::Result<Arc<dyn ObjectStore>> {
    let mut builder = MicrosoftAzureBuilder::new()
        .with_retry(retry())
        .with_http_connector(http::Connector);
    for (key, value) in cloud_vars::<AzureConfigKey>(config) {
        builder = builder.with_config(key, value);
    }
    builder = builder.with_url(&config.root).with_allow_http(config.allow_http);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint.as_str().trim_end_matches('/').to_string());
    }
    Ok(Arc::new(builder.build()?))
}
