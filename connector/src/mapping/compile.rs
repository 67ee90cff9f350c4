//! Checking a mapping against a source schema: every column exists, with a type that can be
//! coerced to the attribute's. This is what `ebb validate` runs; it reads no rows.

use crate::column::ColumnType;
use crate::config::{did_you_mean, AttrType, AttributeSource, ColumnRef, ConfigErrors, ConfigIssue};
use crate::quote::{quote, shorten, MAX_QUOTED_CHARS};
use crate::source::SourceSchema;
use crate::spec::Mapping;

use super::{AttrKind, CompiledAttr, CompiledMapping};

pub(super) fn id_type_ok(t: &ColumnType) -> bool {
    matches!(t, ColumnType::String | ColumnType::Int | ColumnType::UInt)
}

pub(super) fn created_at_type_ok(t: &ColumnType) -> bool {
    matches!(
        t,
        ColumnType::Timestamp | ColumnType::Date | ColumnType::Int | ColumnType::UInt | ColumnType::String
    )
}

/// The wire type a column gets when the mapping does not say.
pub(super) fn inferred_type(t: &ColumnType) -> AttrType {
    match t.scalar() {
        ColumnType::Int | ColumnType::UInt | ColumnType::Float | ColumnType::Decimal => AttrType::Number,
        ColumnType::Bool => AttrType::Boolean,
        _ => AttrType::String,
    }
}

pub(super) fn coercible(from: &ColumnType, to: AttrType) -> bool {
    matches!(
        (from.scalar(), to),
        (_, AttrType::String)
            | (
                ColumnType::String | ColumnType::Int | ColumnType::UInt | ColumnType::Float | ColumnType::Decimal,
                AttrType::Number
            )
            | (
                ColumnType::Bool | ColumnType::String | ColumnType::Int | ColumnType::UInt,
                AttrType::Boolean
            )
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

    pub(super) fn attribute(&mut self, attr: &crate::config::Attribute) -> Option<CompiledAttr> {
        let (column, ty, split, list) = match &attr.source {
            AttributeSource::Constant(v) => {
                return Some(CompiledAttr {
                    name: attr.name.clone(),
                    column_name: None,
                    kind: AttrKind::Constant(v.clone()),
                })
            }
            AttributeSource::Column { column, ty, split, list } => (column, ty, split, *list),
        };
        let (col, t) = self.resolve(column)?;
        let name = quote(&column.name);
        if list && !t.is_list() {
            self.issue(
                column,
                format!("`list: true` needs a list column, and {name} is {t}; use `split:` for delimited text"),
            );
            return None;
        }
        if split.is_some() && t != ColumnType::String {
            self.issue(column, format!("`split` needs a string column, and {name} is {t}"));
            return None;
        }
        let target = ty.unwrap_or_else(|| if split.is_some() { AttrType::String } else { inferred_type(&t) });
        if !coercible(&t, target) {
            self.issue(column, format!("column {name} is {t} and cannot be coerced to {target}"));
            return None;
        }
        Some(CompiledAttr {
            name: attr.name.clone(),
            column_name: Some(column.name.clone()),
            kind: AttrKind::Column {
                col,
                target,
                split: split.clone(),
            },
        })
    }
}

impl CompiledMapping {
    pub fn compile(mapping: &Mapping, schema: &SourceSchema, source: &str, now: i64) -> Result<CompiledMapping, ConfigErrors> {
        let mut resolver = Resolver {
            mapping,
            schema,
            source,
            columns: Vec::new(),
            issues: Vec::new(),
        };
        let id = resolver.resolve(&mapping.id);
        if let Some((_, t)) = &id {
            if !id_type_ok(t) {
                let message = format!("column {} is {t}; an id must be text or an integer", quote(&mapping.id.name));
                resolver.issue(&mapping.id, message);
            }
        }
        let created_at = resolver.resolve(&mapping.created_at);
        if let Some((_, t)) = &created_at {
            if !created_at_type_ok(t) {
                let message = format!(
                    "column {} is {t}; created_at must be a timestamp, a date, integer seconds or milliseconds, or RFC 3339 text",
                    quote(&mapping.created_at.name)
                );
                resolver.issue(&mapping.created_at, message);
            }
        }
        let attributes: Vec<CompiledAttr> = mapping.attributes.iter().filter_map(|a| resolver.attribute(a)).collect();
        match (id, created_at) {
            (Some((id, _)), Some((created_at, _))) if resolver.issues.is_empty() => Ok(CompiledMapping {
                columns: resolver.columns,
                id,
                created_at,
                attributes,
                nulls: mapping.nulls,
                now,
                earliest_created_at: mapping.destination.capabilities().earliest_created_at().unwrap_or(i64::MIN),
            }),
            _ => Err(ConfigErrors(resolver.issues)),
        }
    }
}
