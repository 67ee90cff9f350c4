//! The `http` destination's `headers:`. A header whose name says it carries a credential
//! (`Authorization`, `Cookie`, `Proxy-Authorization`, or a name ending in `-key`, `-token` or
//! `-secret`, whatever the case) must take its secret from the environment (`${VAR}`), so that
//! no key sits in a mapping file kept in git, and its value is redacted wherever ebb prints it.

use crate::config::secret::header_secret_from_env;
use crate::quote::quote;

/// Whether a header's name says it carries a credential.
pub fn is_credential(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(name.as_str(), "authorization" | "proxy-authorization" | "cookie")
        || ["-key", "-token", "-secret"].iter().any(|end| name.ends_with(end))
}

/// Checks one header as the mapping writes it (before `${VAR}`s are filled in).
pub fn check(name: &str, raw_value: &str) -> Result<(), String> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
        return Err(format!("{} is not an HTTP header name", quote(name)));
    }
    if matches!(
        name.to_ascii_lowercase().as_str(),
        "host" | "content-length" | "transfer-encoding" | "connection"
    ) {
        return Err(format!(
            "{} is set by ebb's HTTP client, from the URL and the body; it cannot be set here",
            quote(name)
        ));
    }
    if is_credential(name) && !header_secret_from_env(raw_value) {
        return Err(format!(
            "{} carries a credential: take it from the environment, as in `Bearer ${{ACME_TOKEN}}`, never write it in the file",
            quote(name)
        ));
    }
    Ok(())
}

/// A header's value as ebb prints it: a credential's redacted.
pub fn shown(name: &str, value: &str) -> String {
    match is_credential(name) {
        true => "**redacted**".to_string(),
        false => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers_are_told_by_name_whatever_the_case() {
        for name in [
            "Authorization",
            "COOKIE",
            "x-api-key",
            "X-Auth-Token",
            "client-secret",
            "Proxy-Authorization",
        ] {
            assert!(is_credential(name), "{name}");
        }
        for name in ["Accept", "Content-Type", "X-Keyring", "tokens", "X-Request-Id"] {
            assert!(!is_credential(name), "{name}");
        }
    }

    #[test]
    fn a_credential_must_come_from_the_environment() {
        assert_eq!(check("Authorization", "Bearer ${ACME_TOKEN}"), Ok(()));
        assert_eq!(check("X-Api-Key", "${ACME_KEY:-local-key}"), Ok(()));
        assert_eq!(check("Authorization", "Token token=\"${T}\""), Ok(()));
        for literal in ["Bearer sk_live_123", "Bearer abc${X}9", "hunter2", ""] {
            let err = check("Authorization", literal).expect_err(literal);
            assert!(err.contains("carries a credential"), "{err}");
            assert!(
                literal.is_empty() || !err.contains(literal),
                "the error never quotes the value: {err}"
            );
        }
        assert_eq!(check("Accept", "application/json"), Ok(()), "any other header may be literal");
        assert!(check("Host", "evil.example").expect_err("refused").contains("cannot be set here"));
        assert!(check("Bad Name", "x").expect_err("refused").contains("not an HTTP header name"));
        assert_eq!(shown("authorization", "Bearer s3cret"), "**redacted**");
        assert_eq!(shown("Accept", "application/json"), "application/json");
    }
}
