//! PostgreSQL connection URLs, as both the source and the state store take them: the checks ebb
//! makes before sqlx connects, so that a mistake is named instead of surfacing as a bare
//! "No such file or directory" from deep inside the TLS setup.

use std::net::IpAddr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::quote::quote;

/// The URL parameters that name files sqlx reads when it connects over TLS.
const TLS_FILES: [&str; 3] = ["sslrootcert", "sslcert", "sslkey"];

/// What is wrong with a TLS file the URL names, if anything: it must exist and be readable.
pub fn tls_file_problem(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed
        .query_pairs()
        .filter(|(key, _)| TLS_FILES.contains(&key.as_ref()))
        .find_map(|(key, path)| match std::fs::File::open(path.as_ref()) {
            Ok(_) => None,
            Err(e) => Some(format!("cannot read {key} {}: {e}", quote(&path))),
        })
}

/// The connection options of a URL, with libpq's reading of `sslmode=require`: when the URL
/// names a root certificate (`sslrootcert`), the server's chain is verified against it, as
/// libpq does; sqlx alone would encrypt and check nothing.
pub fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    let Ok(parsed) = url::Url::parse(url) else { return Ok(options) };
    if param(&parsed, "sslmode").as_deref() == Some("require") && param(&parsed, "sslrootcert").is_some() {
        return Ok(options.ssl_mode(PgSslMode::VerifyCa));
    }
    Ok(options)
}

/// A URL parameter's value.
fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// A warning for a URL whose TLS checks no certificate of a server on another machine
/// (`sslmode` `prefer`, `allow`, `require` without a root, or none): whoever sits on the
/// network between can pose as the server and take the password. Names the host only.
pub fn unverified_tls(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str().filter(|h| !h.is_empty())?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let local = host.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let param = |name: &str| param(&parsed, name);
    // A socket path given as `host=/run/postgresql` never crosses a network.
    if local || param("host").is_some_and(|h| h.starts_with('/')) {
        return None;
    }
    let mode = param("sslmode").unwrap_or_else(|| "prefer".to_string());
    let checked = match mode.as_str() {
        "verify-ca" | "verify-full" => true,
        "require" => param("sslrootcert").is_some(),
        _ => false,
    };
    if checked {
        return None;
    }
    let what = if mode == "disable" {
        "sends the password and the data in clear"
    } else {
        "checks no certificate"
    };
    Some(format!(
        "the PostgreSQL connection to {host} {what} (sslmode={mode}): whoever sits on the network between can read or \
         take the password; use sslmode=verify-full with sslrootcert"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unverified_tls_to_another_machine_is_named_by_host() {
        for url in [
            "postgres://u:pw@db.example.com/x",
            "postgres://u:pw@db.example.com/x?sslmode=require",
            "postgres://u:pw@db.example.com/x?sslmode=prefer",
            "postgres://u:pw@10.1.2.3/x?sslmode=disable",
        ] {
            let warning = unverified_tls(url).unwrap_or_else(|| panic!("{url}"));
            assert!(warning.contains("verify-full") && !warning.contains("pw"), "{warning}");
        }
        for url in [
            "postgres://u:pw@localhost/x",
            "postgres://u@127.0.0.1:5432/x?sslmode=require",
            "postgres://u@[::1]/x",
            "postgres://u@db.example.com/x?sslmode=verify-full&sslrootcert=/r.pem",
            "postgres://u@db.example.com/x?sslmode=verify-ca&sslrootcert=/r.pem",
            "postgres://u@db.example.com/x?sslmode=require&sslrootcert=/r.pem",
            "postgres:///x?host=/run/postgresql",
        ] {
            assert_eq!(unverified_tls(url), None, "{url}");
        }
    }

    #[test]
    fn require_with_a_root_verifies_the_chain_as_libpq_does() {
        let mode = |url: &str| format!("{:?}", connect_options(url).expect("parses").get_ssl_mode());
        assert_eq!(mode("postgres://h/db?sslmode=require&sslrootcert=/r.pem"), "VerifyCa");
        assert_eq!(mode("postgres://h/db?sslmode=require"), "Require");
        assert_eq!(mode("postgres://h/db?sslmode=verify-full&sslrootcert=/r.pem"), "VerifyFull");
    }

    #[test]
    fn a_missing_tls_file_is_named_with_its_parameter() {
        let problem = tls_file_problem("postgres://u:pw@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        let problem = problem.expect("a problem");
        assert!(problem.starts_with("cannot read sslrootcert `/nonexistent/ca.pem`: "), "{problem}");
        assert!(!problem.contains("pw"));
        assert_eq!(tls_file_problem("postgres://h/db?sslmode=require"), None);
        assert_eq!(tls_file_problem("postgres://h/db"), None);
    }
}
