//! Applies a mapping to source rows: Arrow columns in, [`Record`]s or
//! [`Rejection`]s out.
//!
//! `compile` checks a mapping against a source schema (every column exists
//! with a type that can be coerced) and is what `ebb validate` runs.
//! `map_batch` then turns each row into a canonical record, or rejects it with
//! a reason; a bad row never fails the run. Duplicate ids need the whole
//! snapshot and are found by the sync, not here.

mod cells;
mod coercion;
mod compile;
mod identity;
mod writer;

use arrow::datatypes::DataType;
use chrono::{DateTime, Utc};

use crate::column::ColumnType;
use crate::config::secret::SecretString;
use crate::config::Identity;
use crate::config::{AttrType, NullPolicy, ValueRule};
use crate::quote::quote;
use crate::record::{AttrValue, Record};
use crate::source::SourceBatch;
use cells::{normalise, Column, Value};
use coercion::{coerce, created_at_secs, fmt_secs, to_text};
use identity::{fill, normalise_email, row_id, IdentityFrom};
pub use identity::{KeyPart, RowKey};
use writer::{HashWriter, Hashed, RecordBuilder, RowWriter};

/// An identity written by a person or another source (a suppression list), normalised as the
/// mapping's own are; `Err` says why it is not one.
pub fn normalise_identity(kind: Identity, raw: &str) -> Result<String, String> {
    match kind {
        Identity::Email => normalise_email(raw),
        Identity::Id if raw.trim().is_empty() => Err("id is empty".into()),
        Identity::Id => Ok(raw.to_string()),
    }
}

/// A row that could not be mapped, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    pub id: Option<String>,
    /// `file row N` (1-based) or the id, so a person can find the row.
    pub position: String,
    pub reason: String,
}

#[derive(Debug)]
pub(super) enum AttrKind {
    Column {
        col: usize,
        target: AttrType,
        split: Option<String>,
    },
    Constant(AttrValue),
}

#[derive(Debug)]
pub(super) struct CompiledAttr {
    name: String,
    /// How rejections name it: `attribute `Age``, `` `properties.seats` ``.
    label: String,
    column_name: Option<String>,
    kind: AttrKind,
    rule: ValueRule,
    /// Values are sent as their HMAC-SHA256 keyed by this salt (`hash: hmac-sha256`).
    salt: Option<SecretString>,
    /// The target follows the column's type: the mapping names no `type:` (not part of the
    /// fingerprint, which the target already is).
    inferred: bool,
}

/// A column type that holds a `null` the source could not type.
fn untyped(t: &ColumnType) -> bool {
    matches!(t.scalar(), ColumnType::Null)
}

/// A mapping checked against a schema, ready to map rows.
#[derive(Debug)]
pub struct CompiledMapping {
    columns: Vec<(String, ColumnType)>,
    identity: IdentityFrom,
    /// How the destination keys records, which says how the identity is normalised.
    identity_kind: Identity,
    /// `None` where the destination takes no creation time.
    created_at: Option<usize>,
    attributes: Vec<CompiledAttr>,
    nulls: NullPolicy,
    /// Upper bound for `createdAt`: the start of the run.
    now: i64,
    /// Lower bound for `createdAt`: the destination's (a capability).
    earliest_created_at: i64,
    /// The destination's value types, which an attribute without `type:` picks from.
    value_types: &'static [AttrType],
}

impl CompiledMapping {
    /// The names of the fields records get (attributes, properties), as payloads name them.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.attributes.iter().map(|a| a.name.as_str())
    }

    /// The columns to read, with the types the mapping was checked against.
    pub fn columns(&self) -> &[(String, ColumnType)] {
        &self.columns
    }

    /// Whether a column has no value in this snapshot (Arrow's `null` type), so that its type
    /// is not known from the source.
    pub fn has_untyped_columns(&self) -> bool {
        self.columns.iter().any(|(_, t)| untyped(t))
    }

    /// Gives each column that has no value in this snapshot the type state last saw it with,
    /// and an attribute without `type:` over it the type that goes with that: a weekly export
    /// whose column happens to be empty keeps the types it had, and what is sent with them.
    pub fn settle_types(&mut self, stored: Option<&[(String, ColumnType)]>) {
        let Some(stored) = stored else { return };
        for (i, (name, t)) in self.columns.iter_mut().enumerate() {
            let Some((_, before)) = stored.iter().find(|(n, _)| n == name) else {
                continue;
            };
            if !untyped(t) || !t.compatible(before) {
                continue;
            }
            *t = std::mem::replace(t, ColumnType::Null).known(before);
            for attr in &mut self.attributes {
                if let (AttrKind::Column { col, target, .. }, true) = (&mut attr.kind, attr.inferred) {
                    if *col == i {
                        *target = compile::inferred_type(t, self.value_types);
                    }
                }
            }
        }
    }

    /// The identity as the source gives it, before ebb normalises it: what a baseline kept in
    /// the warehouse keys rows on.
    pub fn row_key(&self) -> RowKey {
        let parts = match &self.identity {
            IdentityFrom::Column(col) => vec![KeyPart::Column(self.columns[*col].0.clone())],
            IdentityFrom::Template(pieces) => pieces
                .iter()
                .map(|piece| match piece {
                    identity::Piece::Text(text) => KeyPart::Text(text.clone()),
                    identity::Piece::Column { name, .. } => KeyPart::Column(name.clone()),
                })
                .collect(),
        };
        RowKey {
            parts,
            lowercase: self.identity_kind == Identity::Email,
        }
    }

    /// A digest of everything that decides what record a row becomes: the columns read and
    /// their types, the identity, every field with its rule and salt, the null policy. Not the
    /// run's time, nor where things are written in the file. Of a salt, only its HMAC of a fixed
    /// label goes in, which cannot be checked against guesses without the salt.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut digest = sha2::Sha256::new();
        let mut put = |part: &str| {
            digest.update((part.len() as u64).to_le_bytes());
            digest.update(part.as_bytes());
        };
        put(&format!("{:?}", self.columns));
        put(&format!("{:?} {:?} {:?}", self.identity, self.identity_kind, self.created_at));
        put(&format!("{:?} {}", self.nulls, self.earliest_created_at));
        for attr in &self.attributes {
            put(&format!("{} {:?} {:?}", attr.name, attr.kind, attr.rule));
            // Never the salt, nor a plain hash of it: whoever reads the state could test guesses.
            put(&attr.salt.as_ref().map_or(String::new(), crate::config::pii::salt_check));
        }
        let bytes = digest.finalize();
        bytes[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Maps every row of a batch, in order.
    pub fn map_batch(&self, sb: &SourceBatch, mut emit: impl FnMut(Result<Record, Rejection>)) {
        let columns = self.prepare(sb);
        let mut sink = RecordBuilder::default();
        let mut scratch = String::new();
        for row in 0..sb.batch.num_rows() {
            emit(
                self.map_row(&columns, row, sb.problem(row), &mut sink, &mut scratch)
                    .map(|()| sink.take())
                    .map_err(|(id, reason)| self.rejection(sb, row, id, reason)),
            );
        }
    }

    /// Maps only the rows whose id `select` accepts; the others are not mapped at all. `emit`
    /// gets each mapped row's index in the batch with its record or rejection.
    pub fn map_selected(
        &self,
        sb: &SourceBatch,
        mut select: impl FnMut(&str) -> bool,
        mut emit: impl FnMut(usize, Result<Record, Rejection>),
    ) {
        let columns = self.prepare(sb);
        let mut sink = RecordBuilder::default();
        let (mut scratch, mut id_scratch) = (String::new(), String::new());
        for row in 0..sb.batch.num_rows() {
            if !self.identity(&columns, row, &mut id_scratch).is_ok_and(&mut select) {
                continue;
            }
            emit(
                row,
                self.map_row(&columns, row, sb.problem(row), &mut sink, &mut scratch)
                    .map(|()| sink.take())
                    .map_err(|(id, reason)| self.rejection(sb, row, id, reason)),
            );
        }
    }

    /// Hashes every row of a batch the way [`record_hash`](crate::hash::record_hash) hashes
    /// the mapped record, without building it: `emit` gets the id and the hash, or the rejection.
    pub fn hash_batch(&self, sb: &SourceBatch, mut emit: impl FnMut(Result<(&str, u128), Rejection>)) {
        let columns = self.prepare(sb);
        let mut sink = HashWriter::default();
        let mut scratch = String::new();
        for row in 0..sb.batch.num_rows() {
            match self.map_row(&columns, row, sb.problem(row), &mut sink, &mut scratch) {
                Ok(()) => {
                    let hash = sink.encoder.finish();
                    emit(Ok((&sink.id, hash)));
                }
                Err((id, reason)) => emit(Err(self.rejection(sb, row, id, reason))),
            }
        }
    }

    /// The id of every row, or `None` where it is null or empty; for finding rows again.
    pub fn ids_batch(&self, sb: &SourceBatch, mut emit: impl FnMut(Option<&str>)) {
        let columns = self.prepare(sb);
        let mut scratch = String::new();
        for row in 0..sb.batch.num_rows() {
            emit(self.identity(&columns, row, &mut scratch).ok());
        }
    }

    fn rejection(&self, sb: &SourceBatch, row: usize, id: Option<String>, reason: String) -> Rejection {
        Rejection {
            position: format!("{} row {}", sb.origin, sb.first_row + row as u64 + 1),
            id,
            reason,
        }
    }

    fn prepare(&self, sb: &SourceBatch) -> Vec<Column> {
        let batch = &sb.batch;
        self.columns
            .iter()
            .map(|(name, _)| match batch.column_by_name(name) {
                Some(a) => Column::new(normalise(a)),
                // The source checked the columns; an absent one reads as nulls.
                None => Column::new(arrow::array::new_null_array(&DataType::Null, batch.num_rows())),
            })
            .collect()
    }

    /// The row's identity, normalised as the destination keys its records.
    fn identity<'a>(&self, columns: &'a [Column], row: usize, scratch: &'a mut String) -> Result<&'a str, String> {
        if self.identity_kind == Identity::Email {
            let email = normalise_email(self.raw_identity(columns, row, &mut *scratch)?)?;
            scratch.clear();
            scratch.push_str(&email);
            return Ok(scratch);
        }
        self.raw_identity(columns, row, scratch)
    }

    fn raw_identity<'a>(&self, columns: &'a [Column], row: usize, scratch: &'a mut String) -> Result<&'a str, String> {
        match &self.identity {
            IdentityFrom::Column(col) => row_id(&columns[*col], row, scratch, identity::label(self.identity_kind)),
            IdentityFrom::Template(pieces) => {
                fill(pieces, columns, row, scratch)?;
                Ok(scratch)
            }
        }
    }

    /// The row's creation time, checked against the destination's range; 0 if it takes none.
    fn created_at(&self, columns: &[Column], row: usize) -> Result<i64, String> {
        let Some(col) = self.created_at else { return Ok(0) };
        let column = || format!("createdAt (column {})", quote(&self.columns[col].0));
        let created_at = match columns[col].value(row) {
            Value::Invalid(why) => return Err(format!("{}: {why}", column())),
            value => created_at_secs(value)?,
        };
        if !crate::calendar::secs_in_range(created_at) {
            let shown = crate::calendar::timestamp_text(created_at, 0);
            return Err(format!("{}: {}", column(), crate::calendar::outside(&shown)));
        }
        if created_at < self.earliest_created_at {
            let earliest = DateTime::<Utc>::from_timestamp(self.earliest_created_at, 0)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| self.earliest_created_at.to_string());
            return Err(format!("createdAt {} is before {earliest}", fmt_secs(created_at)));
        }
        if created_at > self.now {
            return Err(format!("createdAt {} is in the future", fmt_secs(created_at)));
        }
        Ok(created_at)
    }

    /// `problem` is what the source found wrong with the row (an ambiguous join), if anything.
    fn map_row(
        &self,
        columns: &[Column],
        row: usize,
        problem: Option<&str>,
        sink: &mut impl RowWriter,
        scratch: &mut String,
    ) -> Result<(), (Option<String>, String)> {
        let id = self.identity(columns, row, scratch).map_err(|reason| (None, reason))?;
        let fail = |reason: String| (Some(id.to_string()), reason);
        if let Some(problem) = problem {
            return Err(fail(problem.to_string()));
        }
        let created_at = self.created_at(columns, row).map_err(fail)?;
        sink.begin(id, created_at);
        let mut text = String::new();
        // Fields are sorted by name already (the shape sorts them).
        for attr in &self.attributes {
            let at = || format!("{} (column {})", attr.label, quote(attr.column_name.as_deref().unwrap_or("")));
            match &attr.kind {
                AttrKind::Constant(v) => sink.constant(&attr.name, v),
                AttrKind::Column { col, .. } if attr.rule == ValueRule::Required => {
                    required_text(columns[*col].value(row), &attr.name, sink, &mut text)
                        .map_err(|reason| fail(format!("{} {reason}", at())))?
                }
                AttrKind::Column { col, target, split } => {
                    let value = columns[*col].value(row);
                    let (split, nulls) = (split.as_deref(), self.nulls);
                    match &attr.salt {
                        None => coerce(value, &attr.name, *target, split, nulls, sink, &mut text),
                        Some(salt) => coerce(
                            value,
                            &attr.name,
                            *target,
                            split,
                            nulls,
                            &mut Hashed { inner: sink, salt },
                            &mut text,
                        ),
                    }
                    .map_err(|reason| fail(format!("{}: {reason}", at())))?
                }
            }
        }
        Ok(())
    }
}

/// A required text field: trimmed, and neither null nor blank.
fn required_text(value: Value<'_>, name: &str, sink: &mut impl RowWriter, text: &mut String) -> Result<(), String> {
    if let Value::Null = value {
        return Err("is null".into());
    }
    let trimmed = to_text(&value, text).map_err(|e| format!("cannot be read as text: {e}"))?.trim();
    if trimmed.is_empty() {
        return Err("is blank".into());
    }
    sink.begin_attr(name, AttrType::String);
    sink.str_item(trimmed);
    sink.end_attr();
    Ok(())
}

#[cfg(test)]
mod tests;
