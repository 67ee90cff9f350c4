//! What every HTTP destination does the same way: its client, one attempt turned into an
//! [`Attempt`], `Retry-After`, and a secret header that no debug output shows.

use std::time::Duration;

use reqwest::header::{HeaderValue, LOCATION, RETRY_AFTER};
use url::Url;

use super::{truncate, Attempt, DestinationError};
use crate::config::DeliveryConfig;

/// The most of a reply that is read; the rest is left unread and the connection dropped, so a
/// 50 MB error page costs no more memory than a small one.
pub(crate) const MAX_REPLY_BYTES: usize = 1 << 20;
/// The longest `Retry-After` honoured, in either of its forms.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A destination's client. It never follows a redirect: reqwest would send custom credential
/// headers (Enterpret's `api-key`) and, on 307 and 308, the body to whatever host the
/// redirect names. A 3xx is an answer like any other, explained by [`redirect_refused`].
pub(crate) fn client(delivery: &DeliveryConfig) -> Result<reqwest::Client, DestinationError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
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
            if response.status().is_redirection() {
                let body = redirect_refused(status, response.headers().get(LOCATION), url);
                return Attempt::Response { status, retry_after, body };
            }
            let body = read_capped(response, MAX_REPLY_BYTES).await;
            Attempt::Response {
                status,
                retry_after,
                body: truncate(&String::from_utf8_lossy(&body), 4096).to_string(),
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

/// Up to `cap` bytes of a reply's body; a body that fails part-way keeps what came.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < cap {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(cap - body.len())]),
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// What a 3xx says: its status and where it pointed, by host only (a `Location` may carry a
/// token in its path or query).
fn redirect_refused(status: u16, location: Option<&HeaderValue>, url: &Url) -> String {
    let to = location
        .and_then(|l| l.to_str().ok())
        .and_then(|l| url.join(l).ok())
        .and_then(|l| l.host_str().map(str::to_string))
        .unwrap_or_else(|| "nowhere it says".to_string());
    format!(
        "the destination answered {status}, a redirect to {to}: ebb never follows redirects (they would carry the \
         API key and the records elsewhere); set the destination's url to where it should send"
    )
}

pub(crate) fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let text = value?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs).min(MAX_RETRY_AFTER));
    }
    let when = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let delta = when.signed_duration_since(chrono::Utc::now()).num_milliseconds().max(0);
    Some(Duration::from_millis(delta as u64).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_capped_at_an_hour_in_either_form() {
        let header = |v: &str| HeaderValue::from_str(v).expect("value");
        assert_eq!(retry_after(Some(&header("120"))), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(Some(&header("86400"))), Some(MAX_RETRY_AFTER));
        let in_a_year = (chrono::Utc::now() + chrono::Duration::days(365)).to_rfc2822();
        assert_eq!(retry_after(Some(&header(&in_a_year))), Some(MAX_RETRY_AFTER));
        let past = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc2822();
        assert_eq!(retry_after(Some(&header(&past))), Some(Duration::ZERO));
        assert_eq!(retry_after(Some(&header("soon"))), None);
        assert_eq!(retry_after(Some(&header("-5"))), None);
    }
}
