//! Secrets: API keys, tokens, webhook URLs, passwords.
//!
//! A secret never sits in a mapping file, which teams commit to git: a secret
//! field must be a `${VAR}` reference ([`written_out`]), and a URL's password
//! must be one ([`password_written_out`]). `${VAR:-default}` stays allowed, so
//! that sample mappings can name the keys of a local stand-in.
//!
//! Once read, a secret is a [`SecretString`]. `Debug` and `Display` both redact,
//! so a secret that ends up in a log line, an error or a `{:?}` of a config
//! shows `**redacted**`. The only way to the value is [`SecretString::expose`],
//! which makes every use greppable.

use std::fmt;

use super::env::{pieces, Piece};

#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call this only where the value leaves the process
    /// (an HTTP header), never to format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(**redacted**)")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**redacted**")
    }
}

/// True if a secret field's text is not wholly one `${VAR}` reference (with or without a
/// default): the secret, or part of it, is written in the file. Text that is empty or not a
/// valid reference is left to the other checks.
pub fn written_out(raw: &str) -> bool {
    match pieces(raw) {
        Ok(pieces) => !matches!(pieces.as_slice(), [] | [Piece::Var { .. }]),
        Err(_) => false,
    }
}

/// True if a credential header's value, as written in the file, takes its secret from the
/// environment: it has a `${VAR}` reference, and around the references at most an
/// authentication scheme (`Bearer `, `Token token="…"`): letters, spaces, `-`, `=`, `"` and `,`.
/// A digit or any other sign in the text is taken for a secret written out.
pub fn header_secret_from_env(raw: &str) -> bool {
    let Ok(pieces) = pieces(raw) else { return false };
    let has_reference = pieces.iter().any(|p| matches!(p, Piece::Var { .. }));
    let scheme_only = pieces.iter().all(|p| match p {
        Piece::Literal(text) => text
            .chars()
            .all(|c| c.is_ascii_alphabetic() || matches!(c, ' ' | '-' | '=' | '"' | ',')),
        Piece::Var { .. } => true,
    });
    has_reference && scheme_only
}

/// True if a URL, as written in the file, has a password that is not wholly made of `${VAR}`
/// references. A URL that is one reference, or has no password, is fine.
pub fn password_written_out(raw: &str) -> bool {
    let Ok(pieces) = pieces(raw) else { return false };
    // Each reference becomes a token that URL parsing keeps as it is, so the password can be
    // told apart from what the environment will put there.
    let token = |n: usize| format!("EBBREF{n}FER");
    let mut shape = String::new();
    let mut tokens = Vec::new();
    for (n, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Literal(text) => shape.push_str(text),
            Piece::Var { .. } => {
                shape.push_str(&token(n));
                tokens.push(token(n));
            }
        }
    }
    let Ok(url) = url::Url::parse(&shape) else { return false };
    let written = |text: &str| !tokens.iter().fold(text.to_string(), |left, t| left.replace(t, "")).is_empty();
    // `user:password@`, or `?password=` (which libpq and sqlx take too).
    url.password().is_some_and(written) || url.query_pairs().any(|(k, v)| k.eq_ignore_ascii_case("password") && written(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_must_be_one_reference() {
        for fine in ["${KEY}", "${KEY:-local-users-key}", "", "${BAD"] {
            assert!(!written_out(fine), "{fine}");
        }
        for written in ["sk-live-123", "sk-${REST}", "${A}${B}", "$${KEY}", " ${KEY}"] {
            assert!(written_out(written), "{written}");
        }
    }

    #[test]
    fn a_url_password_must_come_from_the_environment() {
        for fine in [
            "${WAREHOUSE_URL}",
            "${WAREHOUSE_URL:-postgres://postgres@127.0.0.1/test}",
            "postgres://ebb@db:5432/analytics?sslmode=require",
            "postgres://ebb:${PGPASS}@db/analytics",
            "postgres://${PGUSER}:${PGPASS}@db/analytics",
            "postgres://${CREDENTIALS}@db/analytics",
            "postgres://ebb@db/analytics?password=${PGPASS}",
            "not a url",
        ] {
            assert!(!password_written_out(fine), "{fine}");
        }
        for written in [
            "postgres://ebb:hunter2@db/analytics",
            "postgresql://ebb:p%40ss@db/analytics",
            "postgres://ebb:pre${PGPASS}@db/analytics",
            "postgres://${PGUSER}:hunter2@${HOST}/analytics",
            "postgres://ebb@db/analytics?sslmode=require&password=hunter2",
            "postgres://ebb@db/analytics?PASSWORD=hunter2",
        ] {
            assert!(password_written_out(written), "{written}");
        }
    }

    #[test]
    fn debug_and_display_redact() {
        let s = SecretString::new("sk-live-123");
        assert!(!format!("{s:?}").contains("sk-live"));
        assert!(!format!("{s}").contains("sk-live"));
        assert_eq!(s.expose(), "sk-live-123");
    }
}
