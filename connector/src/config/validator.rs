//! The validator every section of a mapping is checked with: it collects every problem, each
//! with its place, instead of stopping at the first. Sections (the source, attributes, alerts,
//! each destination's own keys) are methods or functions over it.

use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;
use url::Url;

use super::env::{interpolate, Env};
use super::issue::{ConfigErrors, ConfigIssue, Loc};
use super::secret::{self, SecretString};

pub struct Validator<'a> {
    file: PathBuf,
    env: &'a dyn Env,
    issues: Vec<ConfigIssue>,
}

impl<'a> Validator<'a> {
    pub fn new(file: &Path, env: &'a dyn Env) -> Validator<'a> {
        Validator {
            file: file.to_path_buf(),
            env,
            issues: Vec::new(),
        }
    }

    /// An environment variable, for a setting that names one (`salt_env:`).
    pub fn env_var(&self, name: &str) -> Option<String> {
        self.env.var(name)
    }

    /// The mapping file, which anchors relative paths.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// `value`, unless a problem was found.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.issues.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.issues))
        }
    }

    pub fn push(&mut self, loc: &Loc, message: impl Into<String>) {
        self.push_hinted(loc, message, None);
    }

    /// A problem with a did-you-mean.
    pub fn push_hinted(&mut self, loc: &Loc, message: impl Into<String>, hint: Option<String>) {
        self.issues.push(ConfigIssue {
            file: self.file.clone(),
            line: loc.line,
            column: loc.column,
            field: loc.field.clone(),
            message: message.into(),
            hint,
        });
    }

    /// How many problems were found so far: a section compares it before and after itself.
    pub fn issue_count(&self) -> usize {
        self.issues.len()
    }

    /// The environment's variables that start with `prefix`, for a cloud's credential chain.
    pub fn env_vars_with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        self.env.vars_with_prefix(prefix)
    }

    /// The value with its `${VAR}`s filled in from the environment.
    pub fn interpolated(&mut self, value: &Spanned<String>, field: &str) -> Option<String> {
        self.interpolated_at(&value.value, &Loc::of(value, field))
    }

    pub fn interpolated_at(&mut self, value: &str, loc: &Loc) -> Option<String> {
        match interpolate(value, self.env) {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(loc, e.to_string());
                None
            }
        }
    }

    /// An integer setting: `default` when absent, an issue (and `default`) when out of range.
    pub fn int_in(&mut self, value: &Option<Spanned<i64>>, field: &str, range: std::ops::RangeInclusive<i64>, default: i64) -> i64 {
        match value {
            None => default,
            Some(v) if range.contains(&v.value) => v.value,
            Some(v) => {
                self.push(
                    &Loc::of(v, field),
                    format!("must be between {} and {}, got {}", range.start(), range.end(), v.value),
                );
                default
            }
        }
    }

    /// A secret field: it must come from the environment, and `fix` shows how. Its value is
    /// never quoted back, in this error or any other.
    pub fn secret(&mut self, value: &Spanned<String>, field: &str, fix: &str) -> Option<SecretString> {
        if secret::written_out(&value.value) {
            self.push(
                &Loc::of(value, field),
                format!(
                    "is a secret, and a secret must not be written in a mapping: take it from the environment, as in \
                     `{fix}` (`${{VAR:-default}}` is allowed for the keys of a local stand-in)"
                ),
            );
            return None;
        }
        self.interpolated(value, field).map(SecretString::new)
    }

    /// An `http://` or `https://` URL with a host.
    pub fn http_url(&mut self, value: &Spanned<String>, field: &str) -> Option<Url> {
        let loc = Loc::of(value, field);
        let text = self.interpolated(value, field)?;
        match Url::parse(&text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Some(url),
            Ok(_) => {
                self.push(&loc, "must be an http:// or https:// URL");
                None
            }
            Err(err) => {
                self.push(&loc, format!("is not a valid URL: {err}"));
                None
            }
        }
    }

    /// A destination's URL: no credential or query in it (those belong in `${VAR}` keys, not
    /// in a URL that is printed and logged), and TLS unless it stays on this machine or the
    /// mapping says `allow_http: true`. The URL is never repeated: it may hold a password.
    fn destination_url(&mut self, value: &Spanned<String>, field: &str, allow_http: bool) -> Option<Url> {
        let url = self.http_url(value, field)?;
        let loc = Loc::of(value, field);
        if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
            self.push(
                &loc,
                "must not hold a user name, password or query string: a URL is printed and logged, so secrets go in the \
                 destination's own `${VAR}` keys (api_key, token)",
            );
            return None;
        }
        let local = match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        if url.scheme() == "http" && !local && !allow_http {
            self.push(
                &loc,
                "is http:// to another machine: the credential and every record would cross the network in clear. Use \
                 https://, or set `allow_http: true` beside it if the network is yours",
            );
            return None;
        }
        Some(url)
    }

    /// A destination's credential: a [`secret`](Self::secret) that must not be empty. An empty
    /// value stands in after an error, which `finish` reports.
    pub fn credential(&mut self, value: &Spanned<String>, field: &str, fix: &str) -> SecretString {
        let secret = self.secret(value, field, fix);
        if secret.as_ref().is_some_and(SecretString::is_empty) {
            self.push(&Loc::of(value, field), "must not be empty");
        }
        secret.unwrap_or_else(|| SecretString::new(""))
    }

    /// A destination's base URL, or its public one when the mapping gives none. A placeholder
    /// stands in after an error, which `finish` reports.
    pub fn base_url(&mut self, value: &Option<Spanned<String>>, field: &str, default: &str, allow_http: bool) -> Url {
        let url = match value {
            None => Url::parse(default).ok(),
            Some(u) => self.destination_url(u, field, allow_http),
        };
        url.unwrap_or_else(|| Url::parse("http://invalid.invalid").expect("static URL"))
    }
}
