//! What every HTTP destination does the same way: its client, one attempt turned into an
//! [`Attempt`], `Retry-After`, and a secret header that no debug output shows.

use std::time::Duration;

use reqwest::header::{HeaderValue, RETRY_AFTER};
use url::Url;

use super::{truncate, Attempt, DestinationError};
use crate::config::DeliveryConfig;

pub(crate) fn client(delivery: &DeliveryConfig) -> Result<reqwest::Client, DestinationError> {
    reqwest::Client::builder()
        .timeout(delivery.timeout)
        .pool_max_idle_per_host(delivery.concurrency)
        .user_agent(concat!("ebb/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(DestinationError::Client)
}

/// A header value holding a secret, marked sensitive so that no debug output of the request
/// (ours, reqwest's or hyper's) shows it. `None` if it holds characters a header cannot carry:
/// sent without it, the destination answers 401, which says to check the secret, unquoted.
pub(crate) fn secret_header(value: &str) -> Option<HeaderValue> {
    match HeaderValue::from_str(value) {
        Ok(mut value) => {
            value.set_sensitive(true);
            Some(value)
        }
        Err(_) => {
            tracing::warn!("a secret holds characters an HTTP header cannot carry");
            None
        }
    }
}

/// Sends one request and reads what came back.
pub(crate) async fn attempt(request: reqwest::RequestBuilder, timeout: Duration, url: &Url) -> Attempt {
    match request.send().await {
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
        // reqwest's error text names the URL but never the headers, so secrets stay out.
        Err(e) => Attempt::Transport(if e.is_timeout() {
            format!("timed out after {timeout:?}")
        } else if e.is_connect() {
            format!("cannot connect to {}", super::bare_url(url))
        } else {
            e.without_url().to_string()
        }),
    }
}

pub(crate) fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let text = value?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let delta = when.signed_duration_since(chrono::Utc::now()).num_milliseconds().max(0);
    Some(Duration::from_millis(delta as u64))
}
