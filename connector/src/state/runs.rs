//! Run history as the stores keep it: a run's status, origin, counts and rejections.

use serde::Serialize;

use super::StateError;
use crate::folders::SnapshotFolders;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    Interrupted,
    /// A guard stopped the run before anything was sent.
    Blocked,
    /// The run reached its box (`max_run:`): it committed what was acknowledged and left the
    /// rest of its plan to the next run.
    Continued,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Blocked => "blocked",
            RunStatus::Continued => "continued",
        }
    }

    /// `None` for a status this version does not know: never taken for `running`.
    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "running" => RunStatus::Running,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "interrupted" => RunStatus::Interrupted,
            "blocked" => RunStatus::Blocked,
            "continued" => RunStatus::Continued,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    pub source: u64,
    pub invalid: u64,
    pub new: u64,
    pub changed: u64,
    pub unchanged: u64,
    /// In state but no longer in the snapshot; nothing is sent for them.
    pub gone: u64,
    /// Upserts the destination acknowledged.
    pub sent: u64,
    /// Deletes the destination acknowledged (mirror mode).
    pub deleted: u64,
    /// Rows not sent because their identity is suppressed: neither rejected nor gone.
    pub suppressed: u64,
    pub rejected: u64,
    pub failed: u64,
    /// Of a full diff of a cursor sync: rows new or changed whose cursor had not moved past
    /// the last run's watermark, so that cursor runs did not read them. `None` for a run that
    /// did not look (a cursor run, a first run, a sync without a cursor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_without_cursor: Option<u64>,
    /// A cursor run: `source` counts only the rows past the watermark (in mirror mode, every
    /// row's identity was read too, and `source` counts those).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub narrowed: bool,
    /// Of a `continued` run: the records it planned and did not send, left for the next run
    /// (rejected records are not left).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left: Option<u64>,
    /// Of a `continued` run: how long the records left take at the configured pace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_secs: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub sync: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub status: RunStatus,
    pub full_resync: bool,
    pub counts: RunCounts,
    pub error: Option<String>,
    pub origin: RunOrigin,
    /// The schedule slot (Unix seconds) a scheduled run was for.
    pub scheduled_for: Option<i64>,
    /// The worker that ran it, as `host:pid`.
    pub worker: Option<String>,
    /// How far its sending got, as last reported; `None` before it began sending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<RunProgress>,
    /// The snapshot folders it read, when `latest:` or `require_marker:` chose them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folders: Option<SnapshotFolders>,
}

/// How far a run's sending has got, as the run reports it while it goes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunProgress {
    /// Changes planned: upserts and deletes.
    pub planned: u64,
    /// Settled so far: acknowledged, rejected or given up on.
    pub done: u64,
    /// When sending began, and when this was reported, in Unix milliseconds.
    pub since_ms: i64,
    pub at_ms: i64,
}

impl RunProgress {
    /// Records a second so far, once there is a rate to speak of.
    pub fn per_second(&self) -> Option<f64> {
        let secs = (self.at_ms - self.since_ms) as f64 / 1000.0;
        (self.done > 0 && secs > 0.0).then(|| self.done as f64 / secs)
    }
}

/// What started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOrigin {
    /// `ebb sync`.
    Cli,
    /// A worker, on the sync's schedule.
    Schedule,
    /// A worker, on `POST /syncs/NAME/trigger`.
    Trigger,
}

impl RunOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOrigin::Cli => "cli",
            RunOrigin::Schedule => "schedule",
            RunOrigin::Trigger => "trigger",
        }
    }

    pub fn parse(s: &str) -> Option<RunOrigin> {
        Some(match s {
            "cli" => RunOrigin::Cli,
            "schedule" => RunOrigin::Schedule,
            "trigger" => RunOrigin::Trigger,
            _ => return None,
        })
    }
}

/// How a run came about, recorded with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunStart {
    /// Sends every record whatever state says.
    pub full: bool,
    pub origin: RunOrigin,
    pub scheduled_for: Option<i64>,
    pub worker: Option<String>,
}

impl RunStart {
    /// A run started by hand, with `ebb sync`.
    pub fn cli(full: bool) -> RunStart {
        RunStart {
            full,
            origin: RunOrigin::Cli,
            scheduled_for: None,
            worker: None,
        }
    }
}

/// What one retention pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: u64,
    pub rejections: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionStage {
    /// The mapping refused the row.
    Mapping,
    /// The destination refused the record.
    Destination,
}

impl RejectionStage {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionStage::Mapping => "mapping",
            RejectionStage::Destination => "destination",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredRejection {
    pub stage: RejectionStage,
    pub record_id: Option<String>,
    pub position: String,
    pub reason: String,
}

/// How many rejections one run keeps; the count is always exact.
pub const MAX_STORED_REJECTIONS: usize = 1000;

/// A `runs` row as both backends store it; the SQL column names are the field names.
#[derive(sqlx::FromRow)]
pub(crate) struct RunRow {
    id: i64,
    sync: String,
    started_at: i64,
    ended_at: Option<i64>,
    status: String,
    full_resync: bool,
    source_rows: i64,
    invalid: i64,
    new: i64,
    changed: i64,
    unchanged: i64,
    gone: i64,
    sent: i64,
    deleted: i64,
    suppressed: i64,
    rejected: i64,
    failed: i64,
    error: Option<String>,
    origin: String,
    scheduled_for: Option<i64>,
    worker: Option<String>,
    planned: Option<i64>,
    progress_done: Option<i64>,
    sending_since_ms: Option<i64>,
    progress_at_ms: Option<i64>,
    snapshot_folders: Option<String>,
    changed_without_cursor: Option<i64>,
    narrowed: bool,
    left_records: Option<i64>,
    left_eta_secs: Option<i64>,
}

impl TryFrom<RunRow> for RunRecord {
    type Error = StateError;

    /// A run whose status or origin this version does not know is an error, not a guess.
    fn try_from(r: RunRow) -> Result<RunRecord, StateError> {
        let n = |v: i64| v.max(0) as u64;
        let status = RunStatus::parse(&r.status)
            .ok_or_else(|| StateError::Damaged(format!("run {} has an unknown status {}", r.id, crate::quote::quote(&r.status))))?;
        let origin = RunOrigin::parse(&r.origin)
            .ok_or_else(|| StateError::Damaged(format!("run {} has an unknown origin {}", r.id, crate::quote::quote(&r.origin))))?;
        Ok(RunRecord {
            id: r.id,
            sync: r.sync,
            started_at: r.started_at,
            ended_at: r.ended_at,
            status,
            full_resync: r.full_resync,
            counts: RunCounts {
                source: n(r.source_rows),
                invalid: n(r.invalid),
                new: n(r.new),
                changed: n(r.changed),
                unchanged: n(r.unchanged),
                gone: n(r.gone),
                sent: n(r.sent),
                deleted: n(r.deleted),
                suppressed: n(r.suppressed),
                rejected: n(r.rejected),
                failed: n(r.failed),
                changed_without_cursor: r.changed_without_cursor.map(n),
                narrowed: r.narrowed,
                left: r.left_records.map(n),
                eta_secs: r.left_eta_secs.map(n),
            },
            error: r.error,
            origin,
            scheduled_for: r.scheduled_for,
            worker: r.worker,
            progress: match (r.planned, r.progress_done, r.sending_since_ms, r.progress_at_ms) {
                (Some(planned), Some(done), Some(since_ms), Some(at_ms)) => Some(RunProgress {
                    planned: n(planned),
                    done: n(done),
                    since_ms,
                    at_ms,
                }),
                _ => None,
            },
            folders: folders_of(r.id, r.snapshot_folders.as_deref())?,
        })
    }
}

/// A run's stored snapshot folders; text that is not what ebb wrote is damage, not a guess.
fn folders_of(run: i64, json: Option<&str>) -> Result<Option<SnapshotFolders>, StateError> {
    json.map(|text| serde_json::from_str(text).map_err(|e| StateError::Damaged(format!("run {run} has unreadable snapshot folders: {e}"))))
        .transpose()
}

#[derive(sqlx::FromRow)]
pub(crate) struct RejectionRow {
    stage: String,
    record_id: Option<String>,
    position: String,
    reason: String,
}

impl From<RejectionRow> for StoredRejection {
    fn from(r: RejectionRow) -> StoredRejection {
        let stage = if r.stage == RejectionStage::Destination.as_str() {
            RejectionStage::Destination
        } else {
            RejectionStage::Mapping
        };
        StoredRejection {
            stage,
            record_id: r.record_id,
            position: r.position,
            reason: r.reason,
        }
    }
}
