//! Checking a mapping against a source schema: every column exists, with a type that can be
//! coerced to the attribute's. This is what `ebb validate` runs; it reads no rows.

use crate::column::ColumnType;
use crate::config::Identity;
use crate::config::Pii;
use crate::config::{
    did_you_mean, AttrType, AttributeSource, ColumnRef, ConfigErrors, ConfigIssue, IdentitySource, TemplatePart, ValueRule,
};
use crate::quote::{quote, shorten, MAX_QUOTED_CHARS};
use crate::source::SourceSchema;
use crate::spec::Mapping;

use super::identity::{IdentityFrom, Piece};
use super::{AttrKind, CompiledAttr, CompiledMapping};

/// A column of no value (Arrow's `null` type) fits wherever a column does: its rows have no
/// value to coerce, and reject or skip as nulls do.
pub(super) fn id_type_ok(t: &ColumnType) -> bool {
    matches!(t, ColumnType::String | ColumnType::Int | ColumnType::UInt | ColumnType::Null)
}

pub(super) fn created_at_type_ok(t: &ColumnType) -> bool {
    matches!(
        t,
        ColumnType::Timestamp | ColumnType::Date | ColumnType::Int | ColumnType::UInt | ColumnType::String | ColumnType::Null
    )
}

/// The wire type a column gets when the mapping does not say: its own kind where the
/// destination has that type, else text.
pub(super) fn inferred_type(t: &ColumnType, types: &[AttrType]) -> AttrType {
    let own = match t.scalar() {
        ColumnType::Int | ColumnType::UInt | ColumnType::Float | ColumnType::Decimal => AttrType::Number,
        ColumnType::Bool => AttrType::Boolean,
        ColumnType::Date | ColumnType::Timestamp => AttrType::Date,
        _ => AttrType::String,
    };
    if types.contains(&own) {
        own
    } else {
        AttrType::String
    }
}

pub(super) fn coercible(from: &ColumnType, to: AttrType) -> bool {
    matches!(
        (from.scalar(), to),
        (_, AttrType::String)
            | (ColumnType::Null, _)
            | (
                ColumnType::String | ColumnType::Int | ColumnType::UInt | ColumnType::Float | ColumnType::Decimal,
                AttrType::Number
            )
            | (
                ColumnType::Bool | ColumnType::String | ColumnType::Int | ColumnType::UInt,
                AttrType::Boolean
            )
            | (ColumnType::Date | ColumnType::Timestamp | ColumnType::String, AttrType::Date)
    )
}

/// Checks a mapping's columns against a schema, collecting the columns to read and every problem.
pub(super) struct Resolver<'a> {
    mapping: &'a Mapping,
    schema: &'a SourceSchema,
    /// The source, as messages name it.
    source: &'a str,
    columns: Vec<(String, ColumnType)>,
    issues: Vec<ConfigIssue>,
}

impl Resolver<'_> {
    pub(super) fn issue(&mut self, col: &ColumnRef, message: String) {
        self.issues.push(self.mapping.issue(&col.loc, message, None));
    }

    /// The column's index among those read, and its type; `None` after recording why not.
    pub(super) fn resolve(&mut self, col: &ColumnRef) -> Option<(usize, ColumnType)> {
        let schema = self.schema;
        if let Some(t) = schema.column(&col.name) {
            let index = match self.columns.iter().position(|(n, _)| n == &col.name) {
                Some(i) => i,
                None => {
                    self.columns.push((col.name.clone(), t.clone()));
                    self.columns.len() - 1
                }
            };
            return Some((index, t.clone()));
        }
        let name = quote(&col.name);
        if let Some((_, ty)) = schema.unsupported.iter().find(|(n, _)| n == &col.name) {
            self.issue(
                col,
                format!(
                    "column {name} has type {ty}, which ebb cannot read (supported: strings, integers, floats, decimals, booleans, dates, timestamps, and lists of these)"
                ),
            );
        } else if let Some((_, detail)) = schema.conflicts.iter().find(|(n, _)| n == &col.name) {
            self.issue(col, format!("column {name} {detail}"));
        } else {
            let names = schema
                .columns
                .iter()
                .map(|(n, _)| n.as_str())
                .chain(schema.unsupported.iter().map(|(n, _)| n.as_str()));
            let hint = did_you_mean(&col.name, names);
            let message = format!("column {name} not found in {}", shorten(self.source, MAX_QUOTED_CHARS));
            self.issues.push(self.mapping.issue(&col.loc, message, hint));
        }
        None
    }

    pub(super) fn attribute(&mut self, attr: &crate::config::Attribute, types: &[AttrType]) -> Option<CompiledAttr> {
        let label = match attr.loc.field.strip_prefix("attributes.") {
            Some(name) => format!("attribute {}", quote(name)),
            None => quote(&attr.loc.field),
        };
        let (column, ty, split, list) = match &attr.source {
            AttributeSource::Constant(v) => {
                return Some(CompiledAttr {
                    name: attr.name.clone(),
                    label,
                    column_name: None,
                    kind: AttrKind::Constant(v.clone()),
                    rule: attr.rule,
                    salt: None,
                    inferred: false,
                })
            }
            AttributeSource::Column { column, ty, split, list } => (column, ty, split, *list),
        };
        let salt = match &attr.pii {
            // Never read, so never in memory, a log or a rejection.
            Pii::Redact => return None,
            Pii::Hash { salt } => Some(salt.clone()),
            Pii::Plain => None,
        };
        let (col, t) = self.resolve(column)?;
        self.shape_fits(attr, &label, column, &t, split.is_some(), list)?;
        let inferred = attr.rule != ValueRule::Required && salt.is_none() && ty.is_none() && split.is_none();
        let target = match attr.rule {
            ValueRule::Required => AttrType::String,
            _ if salt.is_some() => AttrType::String,
            _ if split.is_some() => ty.unwrap_or(AttrType::String),
            _ => ty.unwrap_or_else(|| inferred_type(&t, types)),
        };
        if !coercible(&t, target) {
            self.issue(
                column,
                format!("column {} is {t} and cannot be coerced to {target}", quote(&column.name)),
            );
            return None;
        }
        Some(CompiledAttr {
            name: attr.name.clone(),
            label,
            column_name: Some(column.name.clone()),
            kind: AttrKind::Column {
                col,
                target,
                split: split.clone(),
            },
            rule: attr.rule,
            salt,
            inferred,
        })
    }

    /// Whether the column's shape (a list or not) fits the field's rule, `list:` and `split:`.
    fn shape_fits(
        &mut self,
        attr: &crate::config::Attribute,
        label: &str,
        column: &ColumnRef,
        t: &ColumnType,
        split: bool,
        list: bool,
    ) -> Option<()> {
        let name = quote(&column.name);
        let problem = if attr.rule != ValueRule::Any && t.is_list() {
            format!("{label} takes one value, and column {name} is {t}; a list column cannot be one")
        } else if list && !t.is_list() && *t != ColumnType::Null {
            format!("`list: true` needs a list column, and {name} is {t}; use `split:` for delimited text")
        } else if split && !matches!(t, ColumnType::String | ColumnType::Null) {
            format!("`split` needs a string column, and {name} is {t}")
        } else {
            return Some(());
        };
        self.issue(column, problem);
        None
    }

    /// A column that keys rows (an id, a join key): text or an integer.
    fn key(&mut self, col: &ColumnRef, what: &str) -> Option<usize> {
        let (index, t) = self.resolve(col)?;
        if !id_type_ok(&t) {
            self.issue(
                col,
                format!("column {} is {t}; {what} must be text or an integer", quote(&col.name)),
            );
            return None;
        }
        Some(index)
    }

    fn identity(&mut self, identity: &IdentitySource, kind: Identity) -> Option<IdentityFrom> {
        match identity {
            IdentitySource::Column(col) if kind == Identity::Email => {
                let (index, t) = self.resolve(col)?;
                if !matches!(t, ColumnType::String | ColumnType::Null) {
                    self.issue(col, format!("column {} is {t}; an email must be text", quote(&col.name)));
                    return None;
                }
                Some(IdentityFrom::Column(index))
            }
            IdentitySource::Column(col) => self.key(col, "an id").map(IdentityFrom::Column),
            IdentitySource::Template(template) => {
                let mut pieces = Vec::new();
                for part in &template.parts {
                    pieces.push(match part {
                        TemplatePart::Text(t) => Piece::Text(t.clone()),
                        TemplatePart::Column(col) => {
                            let (index, t) = self.resolve(col)?;
                            if t.is_list() {
                                self.issue(
                                    col,
                                    format!("column {} is {t}; a template takes one value per column", quote(&col.name)),
                                );
                                return None;
                            }
                            Piece::Column {
                                col: index,
                                name: col.name.clone(),
                            }
                        }
                    });
                }
                Some(IdentityFrom::Template(pieces))
            }
        }
    }

    fn created_at(&mut self, col: &ColumnRef) -> Option<usize> {
        let (index, t) = self.resolve(col)?;
        if !created_at_type_ok(&t) {
            let message = format!(
                "column {} is {t}; created_at must be a timestamp, a date, integer seconds or milliseconds, or RFC 3339 text",
                quote(&col.name)
            );
            self.issue(col, message);
            return None;
        }
        Some(index)
    }
}

impl CompiledMapping {
    pub fn compile(mapping: &Mapping, schema: &SourceSchema, source: &str, now: i64) -> Result<CompiledMapping, ConfigErrors> {
        let capabilities = mapping.destination.capabilities();
        let shape = &mapping.record;
        let mut resolver = Resolver {
            mapping,
            schema,
            source,
            columns: Vec::new(),
            issues: Vec::new(),
        };
        let identity = resolver.identity(&shape.identity, capabilities.identity);
        let created_at = shape.created_at.as_ref().map(|c| resolver.created_at(c));
        let attributes: Vec<CompiledAttr> = shape
            .fields
            .iter()
            .filter_map(|a| resolver.attribute(a, capabilities.value_types))
            .collect();
        // The join's columns are read, so that the source can match rows, and kept in the
        // schema, so that a change of their type is drift.
        if let Some(join) = &shape.join {
            resolver.key(&join.column, "a join column");
            resolver.key(&join.lookup_column(&join.key), "a join key");
        }
        match (identity, created_at) {
            (Some(identity), created_at) if resolver.issues.is_empty() => Ok(CompiledMapping {
                columns: resolver.columns,
                identity,
                identity_kind: capabilities.identity,
                created_at: created_at.flatten(),
                attributes,
                nulls: shape.nulls,
                now,
                earliest_created_at: capabilities.earliest_created_at().unwrap_or(i64::MIN),
                value_types: capabilities.value_types,
            }),
            _ => Err(ConfigErrors(resolver.issues)),
        }
    }
}
