//! Enterpret's custom user and account webhooks.
//!
//! `POST {url}/webhook/users/custom` with `{"users":[…]}` and
//! `POST {url}/webhook/accounts/custom` with `{"accounts":[…]}`, authenticated
//! by an `api-key` header that is specific to the object. At most 15 records
//! and 1 MB per request. Errors are `{"msg","code","referenceID"}`.

use reqwest::header::CONTENT_TYPE;

pub mod config;
mod wire;

pub use config::{EnterpretConfig, ObjectKind, RawEnterpret, EARLIEST_CREATED_AT, MAPPING_KEYS, MAX_BYTES, MAX_RECORDS};

use super::{http, truncate, Attempt, Capabilities, Destination, DestinationError, DestinationSettings, PreparedRequest, RUN_HEADER};
use crate::record::Change;

pub struct Enterpret {
    config: EnterpretConfig,
    client: reqwest::Client,
    url: String,
}

impl Enterpret {
    pub fn new(config: EnterpretConfig) -> Result<Self, DestinationError> {
        let client = http::client(&config.delivery)?;
        let (path, _) = config.object.endpoint();
        let url = format!("{}/{path}", config.url.as_str().trim_end_matches('/'));
        Ok(Self { config, client, url })
    }
}

impl Enterpret {
    /// The HTTP request of one attempt. The key is marked sensitive, so that no debug output
    /// of the request (ours, reqwest's or hyper's) shows it.
    fn request(&self, request: &PreparedRequest) -> reqwest::RequestBuilder {
        let mut post = self.client.post(&request.url).header(CONTENT_TYPE, "application/json");
        if let Some(key) = http::secret_header(self.config.api_key.expose()) {
            post = post.header("api-key", key);
        }
        if let Some(run) = &request.run {
            post = post.header(RUN_HEADER, run);
        }
        post.body(request.body.clone())
    }
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    msg: String,
    #[serde(default)]
    code: String,
    #[serde(default, rename = "referenceID")]
    reference_id: String,
}

#[async_trait::async_trait]
impl Destination for Enterpret {
    fn describe(&self) -> String {
        format!("enterpret {}", self.config.object.endpoint().1)
    }

    fn capabilities(&self) -> Capabilities {
        self.config.capabilities()
    }

    fn prepare(&self, changes: &[&Change]) -> Result<PreparedRequest, DestinationError> {
        let records = super::upserts_only(changes, self.describe(), "delete records")?;
        let records = records.as_slice();
        let body = wire::Body {
            object: self.config.object,
            records,
        };
        let body = serde_json::to_vec(&body).map_err(DestinationError::Encode)?;
        Ok(PreparedRequest {
            method: "POST",
            url: self.url.clone(),
            body,
            records: changes.len(),
            run: None,
        })
    }

    async fn send(&self, request: &PreparedRequest) -> Attempt {
        http::attempt(self.request(request), self.config.delivery.timeout, &self.config.url).await
    }

    fn explain(&self, attempt: &Attempt) -> String {
        match attempt {
            Attempt::Response { status, body, .. } => match serde_json::from_str::<ErrorBody>(body) {
                Ok(e) if !e.msg.is_empty() || !e.code.is_empty() => {
                    let reference = if e.reference_id.is_empty() {
                        String::new()
                    } else {
                        format!(" (referenceID {})", e.reference_id)
                    };
                    let hint = if *status == 401 {
                        " — check the mapping's api_key: each object has its own key"
                    } else {
                        ""
                    };
                    format!("HTTP {status} {}: {}{reference}{hint}", e.code, e.msg)
                }
                _ if *status == 401 => {
                    "HTTP 401: the API key was refused — check the mapping's api_key: each object has its own key".to_string()
                }
                _ => format!("HTTP {status}: {}", truncate(body, 300)),
            },
            Attempt::Transport(e) => e.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::secret::SecretString;
    use crate::config::DeliveryConfig;

    fn enterpret(object: ObjectKind, key: &str) -> Enterpret {
        Enterpret::new(EnterpretConfig {
            object,
            api_key: SecretString::new(key),
            url: url::Url::parse("https://api.enterpret.com").expect("url"),
            delivery: DeliveryConfig {
                batch_size: 15,
                requests_per_minute: 100,
                concurrency: 1,
                retry_budget: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
            },
        })
        .expect("client")
    }

    #[test]
    fn the_api_key_header_is_sensitive_and_never_in_debug_output() {
        let enterpret = enterpret(ObjectKind::User, "sk-live-0123456789");
        let prepared = enterpret.prepare(&[]).expect("prepared");
        let request = enterpret.request(&prepared).build().expect("request");
        let key = request.headers().get("api-key").expect("the key is sent");
        assert!(key.is_sensitive());
        let shown = format!("{request:?} {:?}", request.headers());
        assert!(shown.contains("api-key") && !shown.contains("sk-live"), "{shown}");
    }

    #[test]
    fn a_delete_is_refused_by_name_since_enterpret_has_no_delete_api() {
        let enterpret = enterpret(ObjectKind::Account, "k");
        assert!(!enterpret.capabilities().can_delete);
        let delete = Change::Delete { id: "a1".into() };
        let err = enterpret.prepare(&[&delete]).expect_err("no delete API");
        assert_eq!(err.to_string(), "enterpret accounts cannot delete records");
    }
}
