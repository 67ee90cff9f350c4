//! What a destination can do, as data: the mapping and the validator read it, so nothing in the
//! pipeline assumes one destination's shape.

/// What a destination keys its records on (a mapping's notion too, so it lives in `config`).
pub use crate::config::Identity;

/// The value types a destination's attributes or properties can take: the mapping's `type:`.
pub use crate::config::AttrType as ValueType;

/// Whether a destination wants a creation time, and from when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreatedAt {
    /// Every record carries one, no earlier than this (Unix seconds) and not in the future.
    Required {
        earliest: i64,
    },
    NotUsed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub identity: Identity,
    pub created_at: CreatedAt,
    pub value_types: &'static [ValueType],
    /// A write replaces the record's previous attributes wholesale, rather than merging.
    pub replaces_record: bool,
    /// Most records in one request.
    pub max_batch_records: usize,
    /// Largest request body in bytes.
    pub max_request_bytes: usize,
    /// Whether records can be deleted (needed by `mode: mirror`).
    pub can_delete: bool,
    /// Most deletes in one request, where the destination can delete.
    pub deletes_per_request: usize,
}

impl Capabilities {
    /// The earliest creation time the destination accepts, if it takes one.
    pub fn earliest_created_at(&self) -> Option<i64> {
        match self.created_at {
            CreatedAt::Required { earliest } => Some(earliest),
            CreatedAt::NotUsed => None,
        }
    }

    /// A destination of string attributes keyed by id, with no createdAt and no deletes, taking
    /// `max_batch_records` a request: what the delivery tests' stand-in destinations need.
    #[cfg(test)]
    pub(crate) fn plain_for_tests(max_batch_records: usize) -> Capabilities {
        Capabilities {
            identity: Identity::Id,
            created_at: CreatedAt::NotUsed,
            value_types: &[ValueType::String],
            replaces_record: true,
            max_batch_records,
            max_request_bytes: 1_000_000,
            can_delete: false,
            deletes_per_request: 0,
        }
    }
}
