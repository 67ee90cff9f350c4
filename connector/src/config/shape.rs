//! The record a mapping builds, whatever its destination: where the identity comes from, the
//! creation time if the destination takes one, the named fields, and a source to join. Each
//! destination turns its own keys of the mapping into this shape; the mapping engine reads
//! only the shape.

use super::attributes::{Attribute, ColumnRef};
use super::issue::Loc;
use super::source::SourceConfig;
use super::validator::Validator;
use super::NullPolicy;
use crate::quote::quote;

/// What a destination keys its records on: the mapping normalises the identity by it (an email
/// is trimmed and lower-cased), and the destination declares it among its capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A column holding an id the destination stores as is.
    Id,
    /// An email address.
    Email,
}

#[derive(Clone, Debug)]
pub struct RecordShape {
    pub identity: IdentitySource,
    /// `None` where the destination takes no creation time.
    pub created_at: Option<ColumnRef>,
    /// Sorted by name.
    pub fields: Vec<Attribute>,
    pub nulls: NullPolicy,
    /// Columns of another source, matched to each row by a key.
    pub join: Option<Join>,
}

impl RecordShape {
    /// Sorts the fields by name, as the record and its hash keep them.
    pub fn sorted(mut self) -> RecordShape {
        self.fields.sort_by(|a, b| a.name.cmp(&b.name));
        self
    }
}

/// Where a row's identity comes from.
#[derive(Clone, Debug)]
pub enum IdentitySource {
    Column(ColumnRef),
    /// Text with `{column}` placeholders, such as `user-{user_id}@customers.invalid`.
    Template(Template),
}

#[derive(Clone, Debug)]
pub struct Template {
    pub parts: Vec<TemplatePart>,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplatePart {
    Text(String),
    Column(ColumnRef),
}

/// A source joined to every row: `row.column = lookup.key`. Its columns are read as
/// `prefix` + their name (see [`SourceConfig::Joined`]).
#[derive(Clone, Debug)]
pub struct Join {
    pub lookup: SourceConfig,
    /// In the row's source.
    pub column: ColumnRef,
    /// In the lookup source, by its own name.
    pub key: ColumnRef,
    pub prefix: String,
}

impl Join {
    /// A lookup column as the joined rows name it.
    pub fn lookup_column(&self, column: &ColumnRef) -> ColumnRef {
        ColumnRef {
            name: format!("{}{}", self.prefix, column.name),
            loc: column.loc.clone(),
        }
    }
}

impl Validator<'_> {
    /// `{column}` placeholders in literal text; `{{` and `}}` are literal braces.
    pub fn template(&mut self, text: &str, loc: &Loc) -> Option<Template> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed || name.trim().is_empty() || name.contains('{') {
                        self.push(loc, format!("{} has an empty or unclosed `{{column}}`", quote(text)));
                        return None;
                    }
                    if !literal.is_empty() {
                        parts.push(TemplatePart::Text(std::mem::take(&mut literal)));
                    }
                    let column = ColumnRef {
                        name: name.trim().to_string(),
                        loc: loc.clone(),
                    };
                    parts.push(TemplatePart::Column(column));
                }
                '}' => {
                    self.push(
                        loc,
                        format!("{} has a `}}` without its `{{`; write `}}}}` for a brace", quote(text)),
                    );
                    return None;
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(TemplatePart::Text(literal));
        }
        if !parts.iter().any(|p| matches!(p, TemplatePart::Column(_))) {
            self.push(loc, "a template needs at least one `{column}`");
            return None;
        }
        Some(Template { parts, loc: loc.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env::OverlayEnv;

    fn parse(text: &str) -> Result<Vec<TemplatePart>, String> {
        let env = OverlayEnv(std::collections::HashMap::new());
        let mut v = Validator::new(std::path::Path::new("m.yml"), &env);
        let loc = Loc {
            line: 1,
            column: 1,
            field: "email".into(),
        };
        let parsed = v.template(text, &loc);
        match v.finish(()) {
            Ok(()) => Ok(parsed.expect("parsed").parts),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn templates_name_columns_in_braces() {
        let col = |n: &str| {
            TemplatePart::Column(ColumnRef {
                name: n.into(),
                loc: Loc {
                    line: 1,
                    column: 1,
                    field: "email".into(),
                },
            })
        };
        assert_eq!(
            parse("user-{user_id}@customers.invalid"),
            Ok(vec![
                TemplatePart::Text("user-".into()),
                col("user_id"),
                TemplatePart::Text("@customers.invalid".into())
            ])
        );
        assert_eq!(parse("{a}{{x}}"), Ok(vec![col("a"), TemplatePart::Text("{x}".into())]));
        assert!(parse("user-{}@x.y").expect_err("empty").contains("empty or unclosed"));
        assert!(parse("user-{id@x.y").expect_err("unclosed").contains("empty or unclosed"));
        assert!(parse("user}@x.y").expect_err("stray").contains("without its"));
        assert!(parse("plain@x.y").expect_err("no column").contains("at least one"));
    }
}
