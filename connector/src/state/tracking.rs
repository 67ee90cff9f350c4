//! What state keeps of each acknowledged record besides its hash: when it was acknowledged, the
//! runs that sent it, and its payload (see [`crate::payload`]).

use serde::Serialize;

/// One record as state tracks it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrackedRecord {
    pub id: String,
    /// When the destination last acknowledged it, in Unix seconds.
    pub synced_at: i64,
    /// The runs that sent it, newest first: the last one and up to three before it. Empty for
    /// records committed before payloads were kept.
    pub runs: Vec<i64>,
    /// The payload last acknowledged, as stored (compressed); `None` for records committed
    /// before payloads were kept.
    #[serde(skip)]
    pub payload: Option<Vec<u8>>,
}

impl TrackedRecord {
    /// The record as it was last acknowledged, decoded from the kept payload; `None` if state
    /// kept no payload of it.
    pub fn acknowledged(&self) -> Result<Option<crate::record::Record>, super::StateError> {
        let Some(bytes) = &self.payload else { return Ok(None) };
        crate::payload::decode(&self.id, bytes).map(Some).map_err(|e| {
            super::StateError::Damaged(format!(
                "the kept payload of {} cannot be read ({e})",
                crate::quote::quote(&self.id)
            ))
        })
    }
}

/// A `records` row as `tracked` reads it; the SQL column names are the field names.
#[derive(sqlx::FromRow)]
pub(crate) struct TrackedRow {
    id: String,
    synced_at: i64,
    payload: Option<Vec<u8>>,
    sent_run: Option<i64>,
    prev_run_1: Option<i64>,
    prev_run_2: Option<i64>,
    prev_run_3: Option<i64>,
}

impl TrackedRow {
    pub(crate) const COLUMNS: &'static str = "id, synced_at, payload, sent_run, prev_run_1, prev_run_2, prev_run_3";
}

impl From<TrackedRow> for TrackedRecord {
    fn from(row: TrackedRow) -> TrackedRecord {
        TrackedRecord {
            id: row.id,
            synced_at: row.synced_at,
            runs: [row.sent_run, row.prev_run_1, row.prev_run_2, row.prev_run_3]
                .into_iter()
                .flatten()
                .collect(),
            payload: row.payload,
        }
    }
}
