//! A cursor sync's watermark, as the stores keep it (`cursors`).

/// What the last completed run of a cursor sync left for the next.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredCursor {
    #[sqlx(rename = "column_name")]
    pub column: String,
    /// The mapping, destination and cursor column it was read with: another makes the next run
    /// a full diff.
    pub fingerprint: String,
    /// The largest cursor value the run read, in the column's unit; `None` when no row had one.
    pub watermark: Option<i64>,
    /// When the last completed full diff started, in Unix seconds.
    pub full_at: i64,
}

pub(super) const LOAD: &str = "SELECT column_name, fingerprint, watermark, full_at FROM cursors WHERE sync = $1";
pub(super) const SAVE: &str = "INSERT INTO cursors (sync, column_name, fingerprint, watermark, full_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (sync) DO UPDATE SET column_name = excluded.column_name, fingerprint = excluded.fingerprint, \
     watermark = excluded.watermark, full_at = excluded.full_at";
pub(super) const FORGET: &str = "DELETE FROM cursors WHERE sync = $1";
