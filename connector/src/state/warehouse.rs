//! The errors of the state a baseline keeps in the warehouse (`diff: warehouse`, see
//! [`crate::baseline::warehouse`]): here, beside the state store's own, so that the crate's
//! top-level error can name them without depending on the baseline.

use crate::quote::{shorten, MAX_QUOTED_CHARS};

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
    /// A newer run of the sync took its lock over: this run may no longer write the state.
    #[error(
        "{}: lost the run lock: a newer run of this sync (fencing token {newest}) has written its state; nothing of this run's (token {ours}) was written",
        shorten(.place, MAX_QUOTED_CHARS)
    )]
    Fenced { place: String, ours: i64, newest: i64 },
    /// A row of the diff query that ebb cannot read back.
    #[error("{}: {detail}", shorten(.place, MAX_QUOTED_CHARS))]
    BadRow { place: String, detail: String },
}
