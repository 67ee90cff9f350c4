//! The warehouse's bookkeeping tables and the queries over them, behind [`WarehouseTables`]:
//! one implementation per SQL dialect ([`super::postgres`], its SQL in [`super::sql`]).
//!
//! Their hashes are a domain of their own, apart from the in-process [`crate::hash`]: they are of
//! the columns as the warehouse renders them into ebb's canonical text, not of mapped records,
//! salted with the mapping's [`fingerprint`](crate::mapping::CompiledMapping::fingerprint) so
//! that a changed mapping, destination or hash version changes every hash, and resends every
//! record once, even if a run is killed part-way through that resend.

use std::sync::Arc;

use futures::stream::BoxStream;

use crate::column::ColumnType;
use crate::mapping::RowKey;
use crate::source::{SourceBatch, SourceError};
pub use crate::state::WarehouseError;

/// The version of the canonical text and hash: a change resends every record once.
pub const WAREHOUSE_HASH_VERSION: u32 = 1;

/// The schema of the bookkeeping tables when a mapping names none (the mapping's default).
pub use crate::config::DEFAULT_STATE_SCHEMA;

/// The columns the diff query puts before the source's own: the row's key and hash, and
/// whether the bookkeeping holds its key.
pub const KEY_COLUMN: &str = "ebb_key";
pub const HASH_COLUMN: &str = "ebb_hash";
pub const STORED_COLUMN: &str = "ebb_stored";

/// A mapped column, as the warehouse's row hash covers it.
#[derive(Clone, Copy, Debug)]
pub struct HashedColumn<'a> {
    pub name: &'a str,
    pub ty: &'a ColumnType,
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
    /// A cursor run's condition on the source's rows (`source.cursor:`): only rows that pass it
    /// are hashed.
    pub narrowed: Option<String>,
    /// The cursor column, returned after the hashed columns (not hashed) when the mapping does
    /// not read it.
    pub cursor: Option<(String, ColumnType)>,
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
#[derive(Debug)]
pub struct WarehouseCommit<'a> {
    /// Written first, once a run: what the hashes are made with.
    pub coverage: Option<&'a Coverage>,
    /// Forget the sync's stored records first (they were for another destination).
    pub replace: bool,
    /// `(key, sent_as, hash)` of acknowledged upserts.
    pub upserts: &'a [(String, String, u128)],
    /// Keys of acknowledged deletes.
    pub deletes: &'a [String],
    /// The run lock's fencing token ([`crate::state::RunLock::fence`]): the commit is refused,
    /// whole, when the tables have seen a newer one.
    pub fence: i64,
}

/// A warehouse that keeps a sync's state and diffs against it in SQL.
#[async_trait::async_trait]
pub trait WarehouseTables: Send + Sync {
    /// Where the state lives, for messages: the database and schema, never a credential.
    fn describe(&self) -> String;

    /// Checks, creating and writing nothing, that the state schema can be used (or created),
    /// and names the privilege that is missing.
    async fn check_access(&self) -> Result<(), WarehouseError>;

    /// Creates the bookkeeping tables if need be, and reads what is stored for `sync`. With a
    /// fencing token (a run, not a preview), first records it, refusing one older than the
    /// newest recorded: from then on, no run that held the lock before can commit.
    async fn open(&self, sync: &str, fence: Option<i64>) -> Result<Opened, WarehouseError>;

    /// The keys that more than one source row has.
    async fn duplicate_keys(&self, key: &RowKey) -> Result<Vec<String>, WarehouseError>;

    /// Streams the source rows whose key is not stored for the sync or whose hash differs, in
    /// batches of the query's columns after [`KEY_COLUMN`], [`HASH_COLUMN`] and [`STORED_COLUMN`].
    fn changed(&self, query: Arc<DiffQuery>) -> BoxStream<'static, Result<SourceBatch, SourceError>>;

    /// The stored records of `sync` whose key no source row has, sorted by key.
    async fn gone(&self, sync: &str, key: &RowKey) -> Result<Vec<Gone>, WarehouseError>;

    /// Writes one window of acknowledged changes, in one statement, unless the commit's fencing
    /// token is older than the newest the tables have seen.
    async fn commit(&self, sync: &str, commit: &WarehouseCommit<'_>) -> Result<(), WarehouseError>;

    /// Forgets `sync`'s records and coverage; returns how many records were forgotten.
    async fn reset(&self, sync: &str) -> Result<u64, WarehouseError>;
}
