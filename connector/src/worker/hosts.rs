//! Which `Host` and `Origin` a request to the worker may carry.
//!
//! A page of another site can make a browser talk to a worker on this machine by having its own
//! name re-resolve to 127.0.0.1 (DNS rebinding). The browser then sends that site's name as the
//! `Host`, and treats the worker's pages as the site's own: it can read them (previews show
//! people's data, pages hold the CSRF token) and post with them. The name is the tell: a request
//! is answered only when its `Host` is `localhost`, an IP address the worker can be reached at,
//! or a name given with `--allowed-host`. An IP address cannot be re-resolved, so with an
//! unspecified listen address (`0.0.0.0`, `[::]`) any address is one of this machine's.
//!
//! A change (anything but GET and HEAD) whose `Origin` is present must come from the worker's
//! own origin: the scheme and authority of its `Host`, or an allowed name (a proxy's origin
//! differs in port and scheme from the worker behind it). `Origin: null`, which a browser sends
//! for the worker's own forms because its pages send no referrer, passes unless the browser's
//! `Sec-Fetch-Site` says another site made it; the CSRF token is checked after, either way.

use std::net::{IpAddr, SocketAddr};

use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// The names a request may address the worker by.
#[derive(Debug)]
pub(crate) struct Hosts {
    listen: IpAddr,
    allowed: Vec<String>,
}

/// Why a request's `Host` or `Origin` was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HostRefusal {
    /// No `Host`, or one that does not parse.
    Missing,
    /// A name the worker does not answer to (421 Misdirected Request).
    Host(String),
    /// A change from a page of another origin.
    Origin(String),
}

impl HostRefusal {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            HostRefusal::Missing | HostRefusal::Host(_) => "host",
            HostRefusal::Origin(_) => "origin",
        }
    }
}

impl IntoResponse for HostRefusal {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            HostRefusal::Missing => (StatusCode::BAD_REQUEST, "a request to the worker must name its Host".to_string()),
            HostRefusal::Host(host) => (
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this worker does not answer to {host}: use localhost or its address, or start it with \
                     --allowed-host {host} if that name is meant to reach it"
                ),
            ),
            HostRefusal::Origin(origin) => (
                StatusCode::FORBIDDEN,
                format!("a change must come from the worker's own pages, not from {origin}"),
            ),
        };
        (status, format!("{text}\n")).into_response()
    }
}

impl Hosts {
    pub(crate) fn new(listen: SocketAddr, allowed: &[String]) -> Hosts {
        Hosts {
            listen: listen.ip(),
            allowed: allowed
                .iter()
                .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
                .collect(),
        }
    }

    /// Lets a request through, or says why not.
    pub(crate) fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), HostRefusal> {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .ok_or(HostRefusal::Missing)?;
        let (name, _port) = split_authority(host).ok_or(HostRefusal::Missing)?;
        if !self.accepts(&name) {
            return Err(HostRefusal::Host(shown(host)));
        }
        if method == Method::GET || method == Method::HEAD {
            return Ok(());
        }
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or("");
        // A browser sends `Origin: null` for its own page's form when the page asked for no
        // referrer (as the worker's do): then Fetch Metadata tells where the request came from.
        if origin == "null" && !from_another_site(headers) {
            return Ok(());
        }
        if self.origin_is_ours(origin, host) {
            Ok(())
        } else {
            Err(HostRefusal::Origin(shown(origin)))
        }
    }

    fn accepts(&self, name: &str) -> bool {
        if name == "localhost" || self.allowed.iter().any(|a| a == name) {
            return true;
        }
        match name.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback() || ip == self.listen || self.listen.is_unspecified(),
            Err(_) => false,
        }
    }

    /// `http(s)://` the request's own `Host`, or an allowed name at any port.
    fn origin_is_ours(&self, origin: &str, host: &str) -> bool {
        let Some(authority) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
            return false;
        };
        if authority.eq_ignore_ascii_case(host) {
            return true;
        }
        split_authority(authority).is_some_and(|(name, _)| self.allowed.contains(&name))
    }
}

/// Whether the browser says a page of another site made the request (`Sec-Fetch-Site`).
fn from_another_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| !matches!(site, "same-origin" | "none"))
}

/// `name[:port]` or `[v6][:port]` as a lower-case name without a trailing dot, and the port.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let (name, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (inside, port)
    } else {
        match authority.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    if name.is_empty() || name.contains(['/', '@', ' ']) {
        return None;
    }
    Some((name.trim_end_matches('.').to_ascii_lowercase(), port))
}

/// A header value fit to repeat in an answer: short, printable.
fn shown(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    fn hosts(listen: &str, allowed: &[&str]) -> Hosts {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        Hosts::new(listen.parse().expect("addr"), &allowed)
    }

    #[test]
    fn only_this_machines_names_and_allowed_ones_are_answered() {
        let h = hosts("127.0.0.1:9187", &["ebb.internal"]);
        for ok in [
            "localhost",
            "localhost:9187",
            "LOCALHOST.:80",
            "127.0.0.1:9187",
            "127.9.9.9",
            "[::1]:9187",
            "ebb.internal",
            "EBB.internal:443",
        ] {
            assert_eq!(h.check(&Method::GET, &headers(&[("host", ok)])), Ok(()), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9187",
            "localhost.evil.example",
            "10.0.0.5:9187",
            "ebb.internal.evil",
        ] {
            assert_eq!(
                h.check(&Method::GET, &headers(&[("host", bad)])),
                Err(HostRefusal::Host(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(h.check(&Method::GET, &headers(&[])), Err(HostRefusal::Missing));
        assert_eq!(h.check(&Method::GET, &headers(&[("host", "a b")])), Err(HostRefusal::Missing));
        assert_eq!(h.check(&Method::GET, &headers(&[("host", "x:99999")])), Err(HostRefusal::Missing));
    }

    #[test]
    fn a_worker_on_every_address_answers_any_ip_but_no_unknown_name() {
        let h = hosts("0.0.0.0:9187", &[]);
        assert_eq!(h.check(&Method::GET, &headers(&[("host", "10.0.0.5:9187")])), Ok(()));
        assert!(h.check(&Method::GET, &headers(&[("host", "rebind.evil.example:9187")])).is_err());
        let on = hosts("10.0.0.5:9187", &[]);
        assert_eq!(on.check(&Method::GET, &headers(&[("host", "10.0.0.5")])), Ok(()));
        assert!(on.check(&Method::GET, &headers(&[("host", "10.0.0.6")])).is_err());
    }

    #[test]
    fn a_change_from_another_origin_is_refused() {
        let h = hosts("127.0.0.1:9187", &["ebb.example.com"]);
        let post = |host: &str, origin: Option<&str>| {
            let mut pairs = vec![("host", host)];
            pairs.extend(origin.map(|o| ("origin", o)));
            h.check(&Method::POST, &headers(&pairs))
        };
        assert_eq!(post("127.0.0.1:9187", None), Ok(()));
        assert_eq!(post("127.0.0.1:9187", Some("http://127.0.0.1:9187")), Ok(()));
        assert_eq!(post("localhost:9187", Some("http://LOCALHOST:9187")), Ok(()));
        assert_eq!(post("127.0.0.1:9187", Some("https://ebb.example.com")), Ok(()));
        for bad in ["http://127.0.0.1:3000", "http://evil.example", "file://", "http://localhost:9187"] {
            assert_eq!(post("127.0.0.1:9187", Some(bad)), Err(HostRefusal::Origin(bad.into())), "{bad}");
        }
        // `null`: from the worker's own page (no referrer), unless the browser says otherwise.
        let null = |site: Option<&str>| {
            let mut pairs = vec![("host", "127.0.0.1:9187"), ("origin", "null")];
            pairs.extend(site.map(|s| ("sec-fetch-site", s)));
            h.check(&Method::POST, &headers(&pairs))
        };
        assert_eq!(null(Some("same-origin")), Ok(()));
        assert_eq!(null(None), Ok(()));
        assert_eq!(null(Some("cross-site")), Err(HostRefusal::Origin("null".into())));
        assert_eq!(null(Some("same-site")), Err(HostRefusal::Origin("null".into())));
        // Reading is not a change: a GET's Origin is not checked.
        let get = headers(&[("host", "127.0.0.1:9187"), ("origin", "http://evil.example")]);
        assert_eq!(h.check(&Method::GET, &get), Ok(()));
    }
}
