//! A row's identity: a column or a template, normalised as the destination keys its records
//! (an email is trimmed, lower-cased and checked).

use std::borrow::Cow;

use crate::config::Identity;
use crate::quote::{debug, quote};

use super::cells::{Column, Value};
use super::coercion::to_text;

/// The longest email address (RFC 5321's path limit, less the brackets).
const MAX_EMAIL_CHARS: usize = 254;

/// Where a compiled mapping reads the identity.
#[derive(Debug)]
pub(super) enum IdentityFrom {
    Column(usize),
    Template(Vec<Piece>),
}

#[derive(Debug)]
pub(super) enum Piece {
    Text(String),
    Column { col: usize, name: String },
}

/// A piece of a row's key: the identity as the source gives it, before ebb normalises it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPart {
    Text(String),
    Column(String),
}

/// The identity as the source gives it: a column, or the parts of its template. A baseline kept
/// in the warehouse joins its bookkeeping to the source's rows on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowKey {
    pub parts: Vec<KeyPart>,
    /// The destination keys records on an email, which ebb lower-cases: so does the key.
    pub lowercase: bool,
}

/// What the identity is called in rejections.
pub(super) fn label(kind: Identity) -> &'static str {
    match kind {
        Identity::Id => "id",
        Identity::Email => "email",
    }
}

/// The id of a row as text: a string as it is, an integer in decimal.
pub(super) fn row_id<'a>(column: &'a Column, row: usize, scratch: &'a mut String, label: &str) -> Result<&'a str, String> {
    use std::fmt::Write;
    scratch.clear();
    match column.value(row) {
        Value::Null => Err(format!("{label} is null")),
        Value::Str(s) if s.trim().is_empty() => Err(format!("{label} is empty")),
        Value::Str(Cow::Borrowed(s)) => Ok(s),
        Value::Str(Cow::Owned(s)) => {
            scratch.push_str(&s);
            Ok(scratch)
        }
        Value::Int(i) => {
            let _ = write!(scratch, "{i}");
            Ok(scratch)
        }
        Value::UInt(u) => {
            let _ = write!(scratch, "{u}");
            Ok(scratch)
        }
        other => Err(format!("{label} {} is not text or an integer", debug(&other))),
    }
}

/// The template's text for one row; a null column in it has no identity.
pub(super) fn fill(pieces: &[Piece], columns: &[Column], row: usize, out: &mut String) -> Result<(), String> {
    out.clear();
    let mut text = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Column { col, name } => match columns[*col].value(row) {
                Value::Null => return Err(format!("the template's column {} is null", quote(name))),
                value => out.push_str(to_text(&value, &mut text).map_err(|e| format!("the template's column {}: {e}", quote(name)))?),
            },
        }
    }
    Ok(())
}

/// An email trimmed and lower-cased, if it is one: a non-empty local part, one `@`, a domain
/// with a dot, no spaces, at most 254 characters.
pub(super) fn normalise_email(raw: &str) -> Result<String, String> {
    let email = raw.trim().to_lowercase();
    let bad = |why: &str| Err(format!("email {} is not an address: {why}", debug(&email)));
    if email.is_empty() {
        return Err("email is empty".into());
    }
    if email.chars().count() > MAX_EMAIL_CHARS {
        return bad(&format!("it is longer than {MAX_EMAIL_CHARS} characters"));
    }
    if email.chars().any(char::is_whitespace) {
        return bad("it holds a space");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return bad("it has no `@`");
    };
    if domain.contains('@') {
        return bad("it has more than one `@`");
    }
    if local.is_empty() {
        return bad("nothing comes before the `@`");
    }
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return bad("its domain needs a dot between names, as in example.com");
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_lower_cased_and_checked() {
        assert_eq!(normalise_email("  Ada@Example.COM "), Ok("ada@example.com".into()));
        assert_eq!(normalise_email("manager_001@large.org"), Ok("manager_001@large.org".into()));
        assert_eq!(normalise_email("user-7@customers.invalid"), Ok("user-7@customers.invalid".into()));
        let why = |s: &str| normalise_email(s).expect_err(s);
        assert_eq!(why("   "), "email is empty");
        assert!(why("ada.example.com").ends_with("it has no `@`"), "{}", why("ada.example.com"));
        assert!(why("a@b@example.com").ends_with("more than one `@`"));
        assert!(why("@example.com").ends_with("nothing comes before the `@`"));
        assert!(why("ada@localhost").ends_with("needs a dot between names, as in example.com"));
        assert!(why("ada@example.").contains("needs a dot"));
        assert!(why("ada lovelace@example.com").ends_with("it holds a space"));
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(why(&long).ends_with("longer than 254 characters"));
        assert_eq!(
            normalise_email(&format!("{}@example.com", "a".repeat(242))).map(|e| e.len()),
            Ok(254)
        );
    }
}
