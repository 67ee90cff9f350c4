//! The attribute sections: names, columns or constants, and their wire types.

use std::fmt;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::issue::Loc;
use super::pii::Pii;
use super::raw::{RawAttribute, RawAttributeSpec};
use super::validator::Validator;
use crate::quote::{shorten, MAX_QUOTED_CHARS};
use crate::record::{AttrValue, Number};

/// The wire type of an attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttrType {
    /// Text.
    String,
    /// A number; numeric text is parsed.
    Number,
    /// true or false.
    Boolean,
    /// A date or a time, sent as ISO text.
    Date,
}

impl fmt::Display for AttrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttrType::String => "string",
            AttrType::Number => "number",
            AttrType::Boolean => "boolean",
            AttrType::Date => "date",
        })
    }
}

/// A reference to a source column, with where the mapping names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnRef {
    pub name: String,
    pub loc: Loc,
}

#[derive(Clone, Debug)]
pub enum AttributeSource {
    Column {
        column: ColumnRef,
        ty: Option<AttrType>,
        split: Option<String>,
        list: bool,
    },
    Constant(AttrValue),
}

/// What a field's value may be, as its destination's block says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRule {
    /// Any value, a list included; a null leaves the field out (or sends it empty, by `nulls:`).
    Any,
    /// At most one value: a list column or `split:` is refused.
    Scalar,
    /// Exactly one text value, trimmed: a null or blank cell rejects the row.
    Required,
}

/// A field of the record: its name as the destination reads it back, and where its value
/// comes from.
#[derive(Clone, Debug)]
pub struct Attribute {
    pub name: String,
    pub source: AttributeSource,
    pub loc: Loc,
    pub rule: ValueRule,
    /// Hashed or redacted before it is sent.
    pub pii: Pii,
}

impl Validator<'_> {
    /// A reference to a column, which must be named.
    pub fn column_ref(&mut self, value: &Spanned<String>, field: &str) -> ColumnRef {
        let loc = Loc::of(value, field);
        let name = self.interpolated(value, field).unwrap_or_default();
        if name.trim().is_empty() {
            self.push(&loc, "must name a column");
        }
        ColumnRef { name, loc }
    }

    /// An Enterpret-style attribute under `attributes:`.
    pub fn attribute(&mut self, name: &str, spec: &Spanned<RawAttribute>) -> Option<Attribute> {
        self.field("attributes", name, name, spec, ValueRule::Any)
    }

    /// A field written as `key: column` or `key: { column | value, type, list, split }` at
    /// `section.key` of the mapping, kept under `name` in the record.
    pub fn field(&mut self, section: &str, key: &str, name: &str, spec: &Spanned<RawAttribute>, rule: ValueRule) -> Option<Attribute> {
        let field = if key.is_empty() {
            section.to_string()
        } else {
            format!("{section}.{}", shorten(key, MAX_QUOTED_CHARS))
        };
        let loc = Loc::of(spec, field.clone());
        if name.trim().is_empty() || (!key.is_empty() && key.trim().is_empty()) {
            self.push(&loc, "names must not be empty");
            return None;
        }
        let mut pii = Pii::Plain;
        let source = match &spec.value {
            RawAttribute::Column(column) => {
                let name = self.interpolated_at(column, &loc)?;
                AttributeSource::Column {
                    column: ColumnRef { name, loc: loc.clone() },
                    ty: None,
                    split: None,
                    list: false,
                }
            }
            RawAttribute::Spec(s) => match (&s.column, &s.value) {
                (Some(_), Some(_)) => {
                    self.push(&loc, "give either `column` or `value`, not both");
                    return None;
                }
                (None, None) => {
                    self.push(&loc, "needs `column` (a source column) or `value` (a constant)");
                    return None;
                }
                (Some(column), None) => {
                    pii = self.pii(s, &loc, rule)?;
                    self.column_attribute(s, column, &loc)?
                }
                (None, Some(value)) => self.constant_attribute(s, value, &loc)?,
            },
        };
        if rule != ValueRule::Any {
            self.check_scalar(&source, &loc)?;
        }
        Some(Attribute {
            name: name.to_string(),
            source,
            loc,
            rule,
            pii,
        })
    }

    /// A scalar field has no `split:`, `list:` or list constant.
    fn check_scalar(&mut self, source: &AttributeSource, loc: &Loc) -> Option<()> {
        let many = match source {
            AttributeSource::Column { split, list, .. } => split.is_some() || *list,
            AttributeSource::Constant(v) => constant_len(v) != 1,
        };
        if many {
            self.push(loc, "takes one value: `split`, `list` and list constants make lists");
            return None;
        }
        Some(())
    }

    /// `{ column, type, split, list }`.
    fn column_attribute(&mut self, s: &RawAttributeSpec, column: &str, loc: &Loc) -> Option<AttributeSource> {
        if s.split.is_some() && s.list == Some(true) {
            self.push(loc, "`split` makes a list from text; it cannot be combined with `list: true`");
            return None;
        }
        if s.split.as_deref() == Some("") {
            self.push(loc, "`split` needs a non-empty delimiter");
            return None;
        }
        let col_loc = Loc {
            field: format!("{}.column", loc.field),
            ..loc.clone()
        };
        let name = self.interpolated_at(column, &col_loc)?;
        Some(AttributeSource::Column {
            column: ColumnRef { name, loc: col_loc },
            ty: s.ty,
            split: s.split.clone(),
            list: s.list.unwrap_or(false),
        })
    }

    /// `{ value, type }`.
    fn constant_attribute(&mut self, s: &RawAttributeSpec, value: &serde_json::Value, loc: &Loc) -> Option<AttributeSource> {
        if s.split.is_some() || s.list.is_some() || s.hash.is_some() || s.salt_env.is_some() || s.redact.is_some() {
            self.push(
                loc,
                "`split`, `list`, `hash`, `salt_env` and `redact` apply to columns, not to a constant `value`",
            );
            return None;
        }
        match constant(value, s.ty) {
            Ok(v) => Some(AttributeSource::Constant(v)),
            Err(msg) => {
                let value_loc = Loc {
                    field: format!("{}.value", loc.field),
                    ..loc.clone()
                };
                self.push(&value_loc, msg);
                None
            }
        }
    }
}

fn constant_len(v: &AttrValue) -> usize {
    match v {
        AttrValue::S(items) | AttrValue::D(items) => items.len(),
        AttrValue::N(items) => items.len(),
        AttrValue::B(items) => items.len(),
    }
}

/// A constant attribute: a scalar or a list of one kind, checked against `type` if given.
fn constant(value: &serde_json::Value, ty: Option<AttrType>) -> Result<AttrValue, String> {
    use serde_json::Value as J;
    let items: Vec<&J> = match value {
        J::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let inferred = match items.first() {
        Some(J::Bool(_)) => AttrType::Boolean,
        Some(J::Number(_)) => AttrType::Number,
        _ => AttrType::String,
    };
    let target = ty.unwrap_or(inferred);
    let bad = |item: &J| format!("cannot use {} as a {target} constant", shorten(&item.to_string(), MAX_QUOTED_CHARS));
    match target {
        AttrType::String => items
            .iter()
            .map(|i| match i {
                J::String(s) => Ok(s.clone()),
                J::Number(n) => Ok(n.to_string()),
                J::Bool(b) => Ok(b.to_string()),
                other => Err(bad(other)),
            })
            .collect::<Result<_, _>>()
            .map(AttrValue::S),
        AttrType::Number => items
            .iter()
            .map(|i| match i {
                J::Number(n) => n
                    .as_i64()
                    .map(Number::Int)
                    .or_else(|| n.as_f64().and_then(Number::from_f64))
                    .ok_or_else(|| bad(i)),
                J::String(s) => s.trim().parse::<f64>().ok().and_then(Number::from_f64).ok_or_else(|| bad(i)),
                other => Err(bad(other)),
            })
            .collect::<Result<_, _>>()
            .map(AttrValue::N),
        AttrType::Boolean => items
            .iter()
            .map(|i| match i {
                J::Bool(b) => Ok(*b),
                other => Err(bad(other)),
            })
            .collect::<Result<_, _>>()
            .map(AttrValue::B),
        AttrType::Date => items
            .iter()
            .map(|i| match i {
                J::String(s) if chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").is_ok() => Ok(s.trim().to_string()),
                J::String(s) => chrono::DateTime::parse_from_rfc3339(s.trim())
                    .map(|t| t.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .map_err(|_| bad(i)),
                other => Err(bad(other)),
            })
            .collect::<Result<_, _>>()
            .map(AttrValue::D),
    }
}
