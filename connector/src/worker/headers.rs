//! The headers every answer of the worker carries, so that a browser never frames a page, runs
//! a script or loads anything a page did not bring, sniffs a type, leaks a URL to another site
//! or keeps a copy of what the token showed.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// Pages are server-rendered with inline styles and no script.
pub(crate) const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'";

pub(crate) async fn secure(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    apply(response.headers_mut());
    response
}

/// Sets the headers on an answer made outside the router (a request refused before it).
pub(crate) fn apply(headers: &mut HeaderMap) {
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Everything but /healthz shows what the token guards; /healthz is the state of now.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
