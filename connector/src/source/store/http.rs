//! The object-store client's HTTP: ebb's own reqwest client, behind `object_store`'s
//! [`HttpConnector`] seam.
//!
//! `object_store`'s built-in client is reqwest 0.13 on aws-lc-rs; this one is the reqwest and the
//! ring provider the rest of ebb uses, so the binary carries one HTTP stack and one crypto
//! provider. Two things happen here that the built-in client does not do:
//! - an error response's body is cut down to its error code (`<Code>AccessDenied</Code>`)
//!   before `object_store` sees it, because S3 echoes the access key id, the string it signed and
//!   other request details there, and `object_store` puts bodies into its error messages;
//! - a transport error names the host it was for, so that a failed credential lookup (the
//!   instance metadata address) is told apart from an unreachable store.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use object_store::client::{
    ClientConfigKey, ClientOptions, HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpResponseBody,
    HttpService,
};

/// The longest error body read to find its code; longer ones are not error documents.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Default)]
pub(super) struct Connector;

impl HttpConnector for Connector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let duration = |key: ClientConfigKey| {
            options
                .get_config_value(&key)
                .and_then(|text| humantime::parse_duration(&text).ok())
        };
        let allow_http = options.get_config_value(&ClientConfigKey::AllowHttp).as_deref() == Some("true");
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("ebb/", env!("CARGO_PKG_VERSION")))
            .https_only(!allow_http)
            // Compression would change Content-Length, which object_store reads as the size.
            .no_gzip()
            .connect_timeout(duration(ClientConfigKey::ConnectTimeout).unwrap_or(Duration::from_secs(5)));
        if let Some(timeout) = duration(ClientConfigKey::Timeout) {
            builder = builder.timeout(timeout);
        }
        let client = builder.build().map_err(|e| object_store::Error::Generic {
            store: "HTTP client",
            source: Box::new(e),
        })?;
        Ok(HttpClient::new(Service { client }))
    }
}

#[derive(Debug)]
struct Service {
    client: reqwest::Client,
}

/// A request that did not get a response, with the host it was for.
#[derive(Debug, thiserror::Error)]
#[error("{host}: {cause}")]
pub struct TransportError {
    pub host: String,
    #[source]
    pub cause: reqwest::Error,
}

/// A credential service (the instance metadata service, a token endpoint) that refused: the
/// store was never asked, so the store's terms do not apply.
#[derive(Debug, thiserror::Error)]
#[error("the credential service at {host} answered {status}")]
pub struct CredentialRefused {
    pub host: String,
    pub status: u16,
}

/// Hosts that give out credentials rather than objects: the instance metadata services (AWS,
/// Azure and GCP share the link-local address; ECS has its own) and the token endpoints.
pub(super) fn is_credential_host(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    matches!(
        name,
        "169.254.169.254"
            | "169.254.170.2"
            | "[fd00:ec2::254]"
            | "metadata.google.internal"
            | "oauth2.googleapis.com"
            | "login.microsoftonline.com"
    ) || (name.starts_with("sts.") && name.ends_with(".amazonaws.com"))
}

#[async_trait::async_trait]
impl HttpService for Service {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let url = reqwest::Url::parse(&parts.uri.to_string()).map_err(|e| HttpError::new(HttpErrorKind::Request, e))?;
        let host = format!("{}:{}", url.host_str().unwrap_or("?"), url.port_or_known_default().unwrap_or(0));
        let mut out = reqwest::Request::new(parts.method, url);
        *out.headers_mut() = parts.headers;
        *out.body_mut() = Some(reqwest::Body::wrap(body));
        let response = self
            .client
            .execute(out)
            .await
            .map_err(|cause| transport_error(host.clone(), cause))?;
        let response: http::Response<reqwest::Body> = response.into();
        let (parts, body) = response.into_parts();
        if is_credential_host(&host) && !parts.status.is_success() {
            let status = parts.status.as_u16();
            return Err(HttpError::new(HttpErrorKind::Unknown, CredentialRefused { host, status }));
        }
        if parts.status.is_client_error() || parts.status.is_server_error() {
            let code = error_code(body).await;
            let body = http_body_util::Full::new(Bytes::from(code)).map_err(|never| match never {});
            return Ok(HttpResponse::from_parts(parts, HttpResponseBody::new(body)));
        }
        let body = body.map_err(|e| HttpError::new(HttpErrorKind::Interrupted, e));
        Ok(HttpResponse::from_parts(parts, HttpResponseBody::new(body)))
    }
}

/// A request that got no response, named by its host.
fn transport_error(host: String, cause: reqwest::Error) -> HttpError {
    let kind = if cause.is_timeout() {
        HttpErrorKind::Timeout
    } else if cause.is_connect() {
        HttpErrorKind::Connect
    } else {
        // A connection that dropped mid-request: object_store retries these when idempotent.
        HttpErrorKind::Interrupted
    };
    let cause = cause.without_url();
    HttpError::new(kind, TransportError { host, cause })
}

/// An error response's body, reduced to `<Code>…</Code>`, or to nothing when it has no code.
async fn error_code(body: reqwest::Body) -> String {
    let mut bytes = Vec::new();
    let mut body = std::pin::pin!(body);
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            bytes.extend_from_slice(&data);
            if bytes.len() > MAX_ERROR_BODY_BYTES {
                return String::new();
            }
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    code_in(&text).map(|code| format!("<Code>{code}</Code>")).unwrap_or_default()
}

/// The error code of an S3 or Azure XML error (`<Code>`) or a GCS JSON one (`"reason"`), if it
/// is a plain identifier: nothing else of the body is kept.
pub(super) fn code_in(text: &str) -> Option<&str> {
    let xml = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code);
    let json = || {
        let (_, rest) = text.split_once("\"reason\"")?;
        let (_, rest) = rest.split_once('"')?;
        rest.split_once('"').map(|(code, _)| code)
    };
    xml.or_else(json)
        .map(str::trim)
        .filter(|code| !code.is_empty() && code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'))
}

#[cfg(test)]
mod tests {
    use super::code_in;

    #[test]
    fn only_a_plain_error_code_is_kept() {
        let s3 = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><AWSAccessKeyId>AKIDEXAMPLE</AWSAccessKeyId>\
                  <StringToSign>AWS4-HMAC-SHA256…</StringToSign></Error>";
        assert_eq!(code_in(s3), Some("SignatureDoesNotMatch"));
        let gcs = r#"{"error": {"code": 403, "message": "caller@x.iam does not have storage.objects.list", "errors": [{"reason": "forbidden"}]}}"#;
        assert_eq!(code_in(gcs), Some("forbidden"));
        assert_eq!(code_in("<Code>not a <b>code</b></Code>"), None);
        assert_eq!(code_in("Internal Server Error"), None);
    }
}
