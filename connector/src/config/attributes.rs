//! The attribute sections: names, columns or constants, and their wire types.

use std::fmt;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::issue::Loc;
use super::raw::{RawAttribute, RawAttributeSpec};
use super::validator::Validator;
use crate::quote::{shorten, MAX_QUOTED_CHARS};
use crate::record::{AttrValue, Number};

/// The wire type of an attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttrType {
    String,
    Number,
    Boolean,
}

impl fmt::Display for AttrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttrType::String => "string",
            AttrType::Number => "number",
            AttrType::Boolean => "boolean",
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

#[derive(Clone, Debug)]
pub struct Attribute {
    pub name: String,
    pub source: AttributeSource,
    pub loc: Loc,
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

    pub fn attribute(&mut self, name: &str, spec: &Spanned<RawAttribute>) -> Option<Attribute> {
        let field = format!("attributes.{}", shorten(name, MAX_QUOTED_CHARS));
        let loc = Loc::of(spec, field.clone());
        if name.trim().is_empty() {
            self.push(&loc, "attribute names must not be empty");
            return None;
        }
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
                (Some(column), None) => self.column_attribute(s, column, &loc)?,
                (None, Some(value)) => self.constant_attribute(s, value, &loc)?,
            },
        };
        Some(Attribute {
            name: name.to_string(),
            source,
            loc,
        })
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
        if s.split.is_some() || s.list.is_some() {
            self.push(loc, "`split` and `list` apply to columns, not to a constant `value`");
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
    }
}
