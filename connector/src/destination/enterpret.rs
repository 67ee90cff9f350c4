//! Enterpret's custom user and account webhooks.
//!
//! `POST {url}/webhook/users/custom` with `{"users":[…]}` and
//! `POST {url}/webhook/accounts/custom` with `{"accounts":[…]}`, authenticated
//! by an `api-key` header that is specific to the object. At most 15 records
//! and 1 MB per request. Errors are `{"msg","code","referenceID"}`.

use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};

use super::{truncate, Attempt, Capabilities, Destination, DestinationError, PreparedRequest, RUN_HEADER};
use crate::config::{EnterpretConfig, ObjectKind};
use crate::record::{Record, RecordList};

pub const MAX_RECORDS: usize = 15;
pub const MAX_BYTES: usize = 1_000_000;

pub fn capabilities(config: &EnterpretConfig) -> Capabilities {
    Capabilities {
        max_batch_records: config.delivery.batch_size.min(MAX_RECORDS),
        max_request_bytes: MAX_BYTES,
        can_delete: false,
    }
}

/// The path and body key of an object.
pub fn endpoint(object: ObjectKind) -> (&'static str, &'static str) {
    match object {
        ObjectKind::User => ("webhook/users/custom", "users"),
        ObjectKind::Account => ("webhook/accounts/custom", "accounts"),
    }
}

pub struct Enterpret {
    config: EnterpretConfig,
    client: reqwest::Client,
    url: String,
}

impl Enterpret {
    pub fn new(config: EnterpretConfig) -> Result<Self, DestinationError> {
        let client = reqwest::Client::builder()
            .timeout(config.delivery.timeout)
            .pool_max_idle_per_host(config.delivery.concurrency)
            .user_agent(concat!("ebb/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DestinationError::Client(e.to_string()))?;
        let (path, _) = endpoint(config.object);
        let url = format!("{}/{path}", config.url.as_str().trim_end_matches('/'));
        Ok(Self { config, client, url })
    }
}

#[derive(serde::Serialize)]
struct Body<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    users: Option<RecordList<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accounts: Option<RecordList<'a>>,
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

fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let text = value?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let delta = when.signed_duration_since(chrono::Utc::now()).num_milliseconds().max(0);
    Some(Duration::from_millis(delta as u64))
}

#[async_trait::async_trait]
impl Destination for Enterpret {
    fn describe(&self) -> String {
        format!("enterpret {}", endpoint(self.config.object).1)
    }

    fn capabilities(&self) -> Capabilities {
        capabilities(&self.config)
    }

    fn prepare(&self, records: &[&Record]) -> Result<PreparedRequest, DestinationError> {
        let list = Some(RecordList(records));
        let body = match self.config.object {
            ObjectKind::User => Body {
                users: list,
                accounts: None,
            },
            ObjectKind::Account => Body {
                users: None,
                accounts: list,
            },
        };
        let body = serde_json::to_vec(&body).map_err(|e| DestinationError::Encode(e.to_string()))?;
        Ok(PreparedRequest {
            method: "POST",
            url: self.url.clone(),
            body,
            records: records.len(),
            run: None,
        })
    }

    async fn send(&self, request: &PreparedRequest) -> Attempt {
        let mut post = self
            .client
            .post(&request.url)
            .header("api-key", self.config.api_key.expose())
            .header(CONTENT_TYPE, "application/json");
        if let Some(run) = &request.run {
            post = post.header(RUN_HEADER, run);
        }
        let result = post.body(request.body.clone()).send().await;
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = retry_after(response.headers().get(RETRY_AFTER));
                let body = response.text().await.unwrap_or_default();
                Attempt::Response {
                    status,
                    retry_after,
                    body: truncate(&body, 4096).to_string(),
                }
            }
            // reqwest's error text names the URL but never the headers, so the key stays out.
            Err(e) => Attempt::Transport(if e.is_timeout() {
                format!("timed out after {:?}", self.config.delivery.timeout)
            } else if e.is_connect() {
                format!("cannot connect to {}", self.config.url)
            } else {
                e.without_url().to_string()
            }),
        }
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
