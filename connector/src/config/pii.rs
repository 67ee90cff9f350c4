//! PII controls per attribute or property: `hash: hmac-sha256` keyed by a salt from the
//! environment (`salt_env: VAR`), or `redact: true`, which leaves the field out and never reads
//! its column.
//!
//! The hash is an HMAC, not SHA-256 of salt and value: an HMAC keyed by a secret of 32 bytes or
//! more cannot be extended or searched without the key, where a plain hash of a known-format
//! value (an email) behind a short salt can. `hash: sha256`, which ebb used to take, is refused
//! with the way over, as the values sent change and no sync should be re-keyed silently.

use serde::Deserialize;

use super::attributes::{AttrType, ValueRule};
use super::issue::Loc;
use super::raw::RawAttributeSpec;
use super::secret::SecretString;
use super::validator::Validator;

/// The shortest salt taken, in bytes: the HMAC key must be as hard to guess as the hash is long.
pub const MIN_SALT_BYTES: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
pub enum HashAlgorithm {
    /// Lowercase hex HMAC-SHA256 of the value, keyed by the salt.
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// No longer taken (SHA-256 of salt and value): `validate` says how to move to `hmac-sha256`.
    #[serde(rename = "sha256")]
    Sha256,
}

/// What happens to a field's values before they are sent.
#[derive(Clone, Debug, Default)]
pub enum Pii {
    #[default]
    Plain,
    /// Each value is sent as the lowercase hex HMAC-SHA256 of the value, keyed by the salt.
    Hash { salt: SecretString },
    /// Never sent, never read.
    Redact,
}

impl Validator<'_> {
    /// The PII settings of a column field; `None` after recording why they are wrong.
    pub fn pii(&mut self, s: &RawAttributeSpec, loc: &Loc, rule: ValueRule) -> Option<Pii> {
        let pii = match (s.hash, s.redact.unwrap_or(false), &s.salt_env) {
            (None, false, None) => return Some(Pii::Plain),
            (Some(_), true, _) => return self.refuse(loc, "give `hash` or `redact: true`, not both"),
            (None, true, None) => Pii::Redact,
            (None, _, Some(_)) => return self.refuse(loc, "`salt_env` goes with `hash: hmac-sha256`"),
            (Some(HashAlgorithm::Sha256), false, _) => return self.refuse(&loc.child("hash"), SHA256_GONE),
            (Some(_), false, None) => {
                return self.refuse(
                    loc,
                    "`hash: hmac-sha256` needs `salt_env: VAR`, the environment variable that holds the salt",
                )
            }
            (Some(HashAlgorithm::HmacSha256), false, Some(var)) => Pii::Hash {
                salt: self.salt(var, loc)?,
            },
        };
        if rule == ValueRule::Required {
            return self.refuse(loc, "this field is required as it is; it cannot be hashed or redacted");
        }
        if matches!(pii, Pii::Hash { .. }) && s.ty.is_some_and(|t| t != AttrType::String) {
            return self.refuse(loc, "a hashed value is text (hex); `type:` can only be `string`");
        }
        Some(pii)
    }

    /// The salt, from the variable `salt_env` names; its value is never quoted back.
    fn salt(&mut self, var: &str, loc: &Loc) -> Option<SecretString> {
        let at = loc.child("salt_env");
        match self.env_var(var) {
            None => self.refuse(&at, format!("names `{var}`, which is not set; the salt comes from the environment")),
            Some(v) if v.is_empty() => self.refuse(&at, format!("names `{var}`, which is empty")),
            Some(v) if v.len() < MIN_SALT_BYTES => self.refuse(
                &at,
                format!(
                    "names `{var}`, which holds fewer than {MIN_SALT_BYTES} bytes: a short salt can be found by trying \
                     guesses against the hashes. Set it to a long random secret (`openssl rand -hex 32`)"
                ),
            ),
            Some(v) => Some(SecretString::new(v)),
        }
    }

    fn refuse<T>(&mut self, loc: &Loc, message: impl Into<String>) -> Option<T> {
        self.push(loc, message);
        None
    }
}

const SHA256_GONE: &str = "`sha256` is no longer taken: use `hash: hmac-sha256` (with a salt of 32 bytes or more). \
     The values sent will change: `ebb reset SYNC` then sends every record under the new values, and with \
     `mode: mirror` the records under the old ones are deleted as they leave";

/// What the state keeps of a salt, to see that it changed: an HMAC of a fixed label keyed by the
/// salt, which, unlike a hash of the salt, cannot be checked against guesses without the salt.
const SALT_CHECK_LABEL: &str = "ebb: salt check";

/// The lowercase hex HMAC-SHA256 of `value`, keyed by the salt's bytes.
pub fn hmac_sha256(salt: &SecretString, value: &str) -> String {
    use hmac::{Hmac, Mac};
    use std::fmt::Write;
    // HMAC takes a key of any length, so `new_from_slice` cannot fail.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(salt.expose().as_bytes()) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(value.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in mac.finalize().into_bytes() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// What may be stored of a salt: see `SALT_CHECK_LABEL`.
pub fn salt_check(salt: &SecretString) -> String {
    hmac_sha256(salt, SALT_CHECK_LABEL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_hmac_sha256_keyed_by_the_salt_in_lowercase_hex() {
        // printf 'ada@example.com' | openssl dgst -sha256 -hmac 'pepper-pepper-pepper-pepper-pepper'
        assert_eq!(
            hmac_sha256(&SecretString::new("pepper-pepper-pepper-pepper-pepper"), "ada@example.com"),
            "525f5824df700fcbef6b0b7b11be6f8bb10fb618791f318936db96294268d0ab"
        );
    }
}
