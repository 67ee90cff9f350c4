//! The warehouse-side diff: SQL that lets the warehouse itself find what changed, so that only
//! changed rows leave it. One module per SQL dialect; the rest of ebb speaks to a dialect only
//! through what this module exposes.
//!
//! Its hashes are a domain of their own, apart from the in-process [`crate::hash`]: they are of
//! the columns as the warehouse renders them into ebb's canonical text, not of mapped records.

pub mod postgres;

use crate::column::ColumnType;

/// The version of the canonical text and hash: a change resends every record once.
pub const WAREHOUSE_HASH_VERSION: u32 = 1;

/// A mapped column, as the warehouse's row hash covers it.
#[derive(Clone, Copy, Debug)]
pub struct HashedColumn<'a> {
    pub name: &'a str,
    pub ty: &'a ColumnType,
}
