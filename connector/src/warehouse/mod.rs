//! The warehouse-side diff: SQL that lets the warehouse itself find what changed, so that only
//! changed rows leave it. One module per SQL dialect ([`postgres`]); the pipeline speaks to a
//! dialect only through [`crate::source::WarehouseDiff`], which a source that can run it hands
//! out. A leaf but for the column types: it knows no source.
//!
//! Its hashes are a domain of their own, apart from the in-process [`crate::hash`]: they are of
//! the columns as the warehouse renders them into ebb's canonical text, not of mapped records,
//! salted with the mapping's [`fingerprint`](crate::mapping::CompiledMapping::fingerprint) so
//! that a changed mapping, destination or hash version changes every hash, and resends every
//! record once, even if a run is killed part-way through that resend.

pub mod postgres;

use crate::column::ColumnType;
use crate::quote::{shorten, MAX_QUOTED_CHARS};

/// The version of the canonical text and hash: a change resends every record once.
pub const WAREHOUSE_HASH_VERSION: u32 = 1;

/// The schema of the bookkeeping tables when a mapping names none (the mapping's default).
pub use crate::config::DEFAULT_STATE_SCHEMA;

/// A mapped column, as the warehouse's row hash covers it.
#[derive(Clone, Copy, Debug)]
pub struct HashedColumn<'a> {
    pub name: &'a str,
    pub ty: &'a ColumnType,
}

/// A piece of a row's key: the identity as the source gives it, before ebb normalises it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPart {
    Text(String),
    Column(String),
}

/// The row's key, as the state joins on it: the identity's column, or its template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowKey {
    pub parts: Vec<KeyPart>,
    /// The destination keys records on an email, which ebb lower-cases: so does the key.
    pub lowercase: bool,
}

/// What one run asks of the warehouse's diff.
#[derive(Clone, Debug)]
pub struct DiffQuery {
    pub sync: String,
    pub key: RowKey,
    /// The mapped columns, read and hashed in this order.
    pub columns: Vec<(String, ColumnType)>,
    /// Hashed in front of every row's canonical text (see the module's doc).
    pub salt: String,
    /// Every row, whatever its stored hash (`--full`, or state kept for another destination).
    pub everything: bool,
    /// Keys whose rows are sent whatever their hash: the ids that occur more than once, so
    /// that the mapping can reject every occurrence.
    pub also: Vec<String>,
}

/// What the stored hashes of a sync were made with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coverage {
    pub hash_version: u32,
    /// The mapping's fingerprint, the salt of every hash.
    pub salt: String,
    /// The mapped columns, `name type` joined with `, `: for people reading the table.
    pub columns: String,
    /// The destination's fingerprint (never a key).
    pub destination: String,
}

/// A sync's state in the warehouse, as a run starts.
#[derive(Clone, Debug, Default)]
pub struct Opened {
    pub coverage: Option<Coverage>,
    /// Records stored for the sync.
    pub records: u64,
}

/// A record stored for a sync whose row is no longer in the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gone {
    pub key: String,
    /// The id the destination acknowledged it under.
    pub sent_as: String,
}

/// What one commit window writes back: only acknowledged changes.
#[derive(Debug, Default)]
pub struct WarehouseCommit<'a> {
    /// Written first, once a run: what the hashes are made with.
    pub coverage: Option<&'a Coverage>,
    /// Forget the sync's stored records first (they were for another destination).
    pub replace: bool,
    /// `(key, sent_as, hash)` of acknowledged upserts.
    pub upserts: &'a [(String, String, u128)],
    /// Keys of acknowledged deletes.
    pub deletes: &'a [String],
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WarehouseError {
    #[error("{}: {cause}", shorten(.place, MAX_QUOTED_CHARS))]
    Database {
        place: String,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The state schema cannot be used; `missing` says which privilege, on what.
    #[error("{}: {missing}", shorten(.place, MAX_QUOTED_CHARS))]
    Privilege { place: String, missing: String },
}
