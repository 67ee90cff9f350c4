//! The seam between a source and the warehouse-side diff (`diff: warehouse`): a source that can
//! diff in its own database hands one out ([`super::Source::warehouse_diff`]); the SQL of each
//! dialect and the types it speaks in are [`crate::warehouse`]'s.

use std::sync::Arc;

use futures::stream::BoxStream;

use super::{SourceBatch, SourceError};
use crate::warehouse::{DiffQuery, Gone, Opened, RowKey, WarehouseCommit, WarehouseError};

/// A warehouse that keeps a sync's state and diffs against it in SQL.
#[async_trait::async_trait]
pub trait WarehouseDiff: Send + Sync {
    /// Where the state lives, for messages: the database and schema, never a credential.
    fn describe(&self) -> String;

    /// Checks, creating and writing nothing, that the state schema can be used (or created),
    /// and names the privilege that is missing.
    async fn check_access(&self) -> Result<(), WarehouseError>;

    /// Creates the bookkeeping tables if need be, and reads what is stored for `sync`.
    async fn open(&self, sync: &str) -> Result<Opened, WarehouseError>;

    /// The keys that more than one source row has.
    async fn duplicate_keys(&self, key: &RowKey) -> Result<Vec<String>, WarehouseError>;

    /// Streams the source rows whose key is not stored for the sync or whose hash differs, in
    /// batches of the query's columns, each row with its [`super::WarehouseRow`].
    fn changed(&self, query: Arc<DiffQuery>) -> BoxStream<'static, Result<SourceBatch, SourceError>>;

    /// The stored records of `sync` whose key no source row has, sorted by key.
    async fn gone(&self, sync: &str, key: &RowKey) -> Result<Vec<Gone>, WarehouseError>;

    /// Writes one window of acknowledged changes, in one round trip where it can.
    async fn commit(&self, sync: &str, commit: &WarehouseCommit<'_>) -> Result<(), WarehouseError>;

    /// Forgets `sync`'s records and coverage; returns how many records were forgotten.
    async fn reset(&self, sync: &str) -> Result<u64, WarehouseError>;
}
