//! Who may use the worker's HTTP API.
//!
//! With a token, every endpoint but `GET /healthz` (and `GET /metrics` with `--metrics-public`)
//! wants it: as `Authorization: Bearer TOKEN`, or as the password of HTTP Basic auth so that a
//! browser prompts for it. Without one the worker listens on loopback only.
//!
//! A browser sends its Basic credentials with any request a page of another site makes it send,
//! so a request authenticated the way a browser is must also carry the CSRF token that only the
//! worker's own pages hold. Bearer calls (`ebb trigger`) cannot be forged by a page: no CSRF.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::hosts::Hosts;
use super::Shared;
use crate::error::Error;

/// The challenge a 401 carries: Basic first, so that a browser asks for the token.
const CHALLENGE: &str = "Basic realm=\"ebb worker\", charset=\"UTF-8\"";
const BEARER_CHALLENGE: &str = "Bearer realm=\"ebb worker\"";
/// The variable the token is read from when `--token-env` does not name another.
pub const DEFAULT_TOKEN_ENV: &str = "EBB_WORKER_TOKEN";

/// The worker token. It is never printed: `Debug` shows only that there is one.
#[derive(Clone)]
pub struct WorkerToken(String);

impl WorkerToken {
    pub fn new(token: String) -> WorkerToken {
        WorkerToken(token)
    }

    /// The token, for the one place it is sent: the `Authorization` header of a request.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `offered` is the token, in a time that depends on neither: both are hashed
    /// first, so the comparison is of two digests of one length.
    fn admits(&self, offered: &[u8]) -> bool {
        let want = Sha256::digest(self.0.as_bytes());
        let got = Sha256::digest(offered);
        want.ct_eq(&got).into()
    }
}

impl std::fmt::Debug for WorkerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkerToken(****)")
    }
}

/// The shortest token a worker takes: at about 89,000 wrong guesses a second, a short one falls
/// to a patient caller.
pub const MIN_TOKEN_CHARS: usize = 24;

/// How the worker's HTTP API is guarded.
#[derive(Clone, Debug, Default)]
pub struct AccessOptions {
    pub token: Option<WorkerToken>,
    /// `GET /metrics` without the token, for a Prometheus that holds none.
    pub metrics_public: bool,
    /// Names besides `localhost` and IP addresses that requests may give as their `Host`
    /// (`--allowed-host`): what a browser or a proxy uses to reach the worker.
    pub allowed_hosts: Vec<String>,
}

/// The guard as the running worker holds it: the options and this process's CSRF token.
#[derive(Debug)]
pub(crate) struct Access {
    options: AccessOptions,
    csrf: String,
    hosts: Hosts,
}

/// How a request was let in, for the handlers that change state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// `Authorization: Bearer`, or no credentials from something that is not a browser.
    Api,
    /// HTTP Basic, or a request with a browser's marks (`Origin`, `Sec-Fetch-Site`, a cookie):
    /// a page of any site could have made it, so a change needs the CSRF token.
    Browser,
}

/// Why a request was turned away; the label of the refusal metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Missing,
    Wrong,
}

impl Refusal {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Wrong => "wrong",
        }
    }
}

impl Access {
    pub(crate) fn new(options: AccessOptions, listen: SocketAddr) -> Access {
        let bytes: [u8; 16] = rand::random();
        let hosts = Hosts::new(listen, &options.allowed_hosts);
        Access {
            options,
            csrf: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            hosts,
        }
    }

    /// The token the page's forms carry.
    pub(crate) fn csrf(&self) -> &str {
        &self.csrf
    }

    pub(crate) fn csrf_matches(&self, offered: &str) -> bool {
        offered.len() == self.csrf.len() && bool::from(offered.as_bytes().ct_eq(self.csrf.as_bytes()))
    }

    fn is_open(&self, method: &Method, path: &str) -> bool {
        method == Method::GET && (path == "/healthz" || (path == "/metrics" && self.options.metrics_public))
    }

    /// Lets a request in, and says how, or says why not.
    fn admit(&self, headers: &HeaderMap) -> Result<Caller, Refusal> {
        let credentials = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let Some(token) = &self.options.token else {
            return Ok(match credentials {
                Some(c) if scheme_is(c, "Bearer") => Caller::Api,
                _ if has_browser_marks(headers) || credentials.is_some() => Caller::Browser,
                _ => Caller::Api,
            });
        };
        let credentials = credentials.ok_or(Refusal::Missing)?;
        if let Some(offered) = strip_scheme(credentials, "Bearer") {
            return token.admits(offered.as_bytes()).then_some(Caller::Api).ok_or(Refusal::Wrong);
        }
        if let Some(encoded) = strip_scheme(credentials, "Basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| Refusal::Wrong)?;
            // `user:password`; the user name is whatever the person typed.
            let password = decoded
                .iter()
                .position(|b| *b == b':')
                .map_or(&decoded[..0], |at| &decoded[at + 1..]);
            return token.admits(password).then_some(Caller::Browser).ok_or(Refusal::Wrong);
        }
        Err(Refusal::Wrong)
    }
}

fn strip_scheme<'a>(credentials: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = credentials.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

fn scheme_is(credentials: &str, scheme: &str) -> bool {
    strip_scheme(credentials, scheme).is_some()
}

fn has_browser_marks(headers: &HeaderMap) -> bool {
    [header::ORIGIN, header::COOKIE, header::HeaderName::from_static("sec-fetch-site")]
        .iter()
        .any(|h| headers.contains_key(h))
}

/// The middleware in front of every endpoint.
pub(crate) async fn guard(State(shared): State<Arc<Shared>>, mut request: Request, next: Next) -> Response {
    let access = &shared.access;
    if let Err(refusal) = access.hosts.check(request.method(), request.headers()) {
        shared.metrics.record_refusal(refusal.label());
        return refusal.into_response();
    }
    if access.is_open(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    match access.admit(request.headers()) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(refusal) => {
            shared.metrics.record_refusal(refusal.as_str());
            unauthorized()
        }
    }
}

/// A browser's change must carry the CSRF token of the worker's own pages; an API call needs
/// none. The answer to a change without it.
pub(crate) fn csrf_refusal(shared: &Shared, caller: Caller, offered: Option<&str>) -> Option<Response> {
    if caller == Caller::Api || offered.is_some_and(|c| shared.access.csrf_matches(c)) {
        return None;
    }
    shared.metrics.record_refusal("csrf");
    Some((
        StatusCode::FORBIDDEN,
        axum::Json(serde_json::json!({"error": "a browser's request must come from the worker's own page: its CSRF token is missing or stale (reload the page)"})),
    )
        .into_response())
}

fn unauthorized() -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        "this worker wants its token: `Authorization: Bearer TOKEN`, or HTTP Basic with the token as the password\n",
    )
        .into_response();
    let headers = response.headers_mut();
    headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
    headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static(BEARER_CHALLENGE));
    response
}

/// Without a token, only this machine may reach the worker: anything else could start runs.
/// A token must be long enough not to be guessed; the refusal never prints it.
pub fn check_listen(listen: SocketAddr, options: &AccessOptions) -> Result<(), Error> {
    if let Some(token) = &options.token {
        if token.0.chars().count() < MIN_TOKEN_CHARS {
            return Err(Error::Usage(format!(
                "the worker token is shorter than {MIN_TOKEN_CHARS} characters: a caller trying tens of thousands \
                 of tokens a second would find it. Set {DEFAULT_TOKEN_ENV} (or the variable --token-env names) to a \
                 long random secret, for example the output of `openssl rand -hex 24`"
            )));
        }
        return Ok(());
    }
    if listen.ip().is_loopback() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "the worker will not listen on {listen} without a token: anyone who can reach that address could read \
         every sync's state and start runs. Set {DEFAULT_TOKEN_ENV} (or the variable --token-env names) to a \
         secret, or listen on 127.0.0.1"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(token: Option<&str>) -> Access {
        let options = AccessOptions {
            token: token.map(|t| WorkerToken::new(t.into())),
            ..AccessOptions::default()
        };
        Access::new(options, "127.0.0.1:9187".parse().expect("addr"))
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    fn basic(user_password: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_password))
    }

    #[test]
    fn the_token_is_taken_as_bearer_or_as_the_basic_password_and_nothing_else() {
        let a = access(Some("s3cret"));
        assert_eq!(a.admit(&headers(&[("authorization", "Bearer s3cret")])), Ok(Caller::Api));
        assert_eq!(a.admit(&headers(&[("authorization", "bearer s3cret")])), Ok(Caller::Api));
        assert_eq!(a.admit(&headers(&[("authorization", &basic("ada:s3cret"))])), Ok(Caller::Browser));
        assert_eq!(a.admit(&headers(&[("authorization", &basic(":s3cret"))])), Ok(Caller::Browser));
        assert_eq!(a.admit(&headers(&[])), Err(Refusal::Missing));
        assert_eq!(a.admit(&headers(&[("authorization", "Bearer s3cre")])), Err(Refusal::Wrong));
        assert_eq!(a.admit(&headers(&[("authorization", "Bearer s3cret ")])), Err(Refusal::Wrong));
        assert_eq!(a.admit(&headers(&[("authorization", &basic("s3cret"))])), Err(Refusal::Wrong));
        assert_eq!(a.admit(&headers(&[("authorization", &basic("s3cret:x"))])), Err(Refusal::Wrong));
        assert_eq!(a.admit(&headers(&[("authorization", "Basic %%%")])), Err(Refusal::Wrong));
        assert_eq!(a.admit(&headers(&[("authorization", "Token s3cret")])), Err(Refusal::Wrong));
    }

    #[test]
    fn without_a_token_browsers_are_told_from_api_calls() {
        let a = access(None);
        assert_eq!(a.admit(&headers(&[])), Ok(Caller::Api));
        assert_eq!(a.admit(&headers(&[("origin", "http://evil.example")])), Ok(Caller::Browser));
        assert_eq!(a.admit(&headers(&[("sec-fetch-site", "cross-site")])), Ok(Caller::Browser));
        assert_eq!(
            a.admit(&headers(&[("authorization", "Bearer x"), ("origin", "x")])),
            Ok(Caller::Api)
        );
    }

    #[test]
    fn healthz_is_always_open_and_metrics_only_when_public() {
        let mut a = access(Some("t"));
        assert!(a.is_open(&Method::GET, "/healthz"));
        assert!(!a.is_open(&Method::POST, "/healthz"));
        assert!(!a.is_open(&Method::GET, "/metrics"));
        a.options.metrics_public = true;
        assert!(a.is_open(&Method::GET, "/metrics"));
        assert!(!a.is_open(&Method::GET, "/syncs"));
    }

    #[test]
    fn the_csrf_token_is_random_per_worker_and_checked_whole() {
        let a = access(None);
        let b = access(None);
        assert_ne!(a.csrf(), b.csrf());
        assert_eq!(a.csrf().len(), 32);
        assert!(a.csrf_matches(a.csrf()));
        assert!(!a.csrf_matches(&a.csrf()[..31]));
        assert!(!a.csrf_matches(""));
        assert!(!a.csrf_matches(b.csrf()));
    }

    #[test]
    fn only_loopback_is_allowed_without_a_token_and_the_refusal_says_why() {
        let none = AccessOptions::default();
        assert!(check_listen("127.0.0.1:9187".parse().expect("addr"), &none).is_ok());
        assert!(check_listen("[::1]:9187".parse().expect("addr"), &none).is_ok());
        let err = check_listen("0.0.0.0:9187".parse().expect("addr"), &none).expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("0.0.0.0:9187") && text.contains("EBB_WORKER_TOKEN") && text.contains("start runs"),
            "{text}"
        );
        let with = AccessOptions {
            token: Some(WorkerToken::new("t".repeat(MIN_TOKEN_CHARS))),
            ..AccessOptions::default()
        };
        assert!(check_listen("0.0.0.0:9187".parse().expect("addr"), &with).is_ok());
        assert_eq!(format!("{:?}", with.token), "Some(WorkerToken(****))");
    }

    #[test]
    fn a_short_token_is_refused_without_being_printed() {
        let short = "Zq9-short-but-secret-ab";
        assert_eq!(short.chars().count(), MIN_TOKEN_CHARS - 1);
        let options = AccessOptions {
            token: Some(WorkerToken::new(short.into())),
            ..AccessOptions::default()
        };
        for listen in ["127.0.0.1:9187", "0.0.0.0:9187"] {
            let text = check_listen(listen.parse().expect("addr"), &options)
                .expect_err("too short")
                .to_string();
            assert!(text.contains("shorter than 24 characters") && !text.contains(short), "{text}");
        }
    }
}
