//! PII controls per attribute or property: `hash: sha256` with a salt from the environment
//! (`salt_env: VAR`), or `redact: true`, which leaves the field out and never reads its column.

use serde::Deserialize;

use super::attributes::{AttrType, ValueRule};
use super::issue::Loc;
use super::raw::RawAttributeSpec;
use super::secret::SecretString;
use super::validator::Validator;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HashAlgorithm {
    /// Lowercase hex SHA-256 of the salt and the value.
    Sha256,
}

/// What happens to a field's values before they are sent.
#[derive(Clone, Debug, Default)]
pub enum Pii {
    #[default]
    Plain,
    /// Each value is sent as the lowercase hex SHA-256 of `salt + value`.
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
            (None, _, Some(_)) => return self.refuse(loc, "`salt_env` goes with `hash: sha256`"),
            (Some(_), false, None) => {
                return self.refuse(
                    loc,
                    "`hash: sha256` needs `salt_env: VAR`, the environment variable that holds the salt",
                )
            }
            (Some(HashAlgorithm::Sha256), false, Some(var)) => Pii::Hash {
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
            Some(v) => Some(SecretString::new(v)),
        }
    }

    fn refuse<T>(&mut self, loc: &Loc, message: impl Into<String>) -> Option<T> {
        self.push(loc, message);
        None
    }
}

/// The lowercase hex SHA-256 of `salt + value`.
pub fn salted_sha256(salt: &SecretString, value: &str) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write;
    let mut hasher = Sha256::new();
    hasher.update(salt.expose().as_bytes());
    hasher.update(value.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in hasher.finalize() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_sha256_of_the_salt_then_the_value_in_lowercase_hex() {
        // printf 'pepperada@example.com' | sha256sum
        assert_eq!(
            salted_sha256(&SecretString::new("pepper"), "ada@example.com"),
            "f3de2501fc91c4a9ae4d4ed50bef931c9901aabe5ea36979890a69204e7eb2b1"
        );
    }
}
