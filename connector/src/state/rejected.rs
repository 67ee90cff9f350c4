//! The records a sync rejects now, and for how long they have been rejected.
//!
//! Nothing extra is stored for this. Every completed run maps every row of the source, and a
//! record the destination refused is not committed, so the next run sends it again: the last
//! completed run's rejections are exactly the records rejected now. How long each has been
//! rejected is read off the runs before it, walking back while the record keeps being rejected.

use serde::Serialize;

use super::{RejectionStage, RunStatus, StateError, StateStore, StoredRejection, MAX_STORED_REJECTIONS};

/// How many earlier completed runs are looked at for a rejection's streak.
const MAX_RUNS_LOOKED_AT: usize = 200;

/// One record rejected by the last completed run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RejectedRecord {
    /// The record's identity, when the row had one.
    pub identity: Option<String>,
    /// The identity, or where the row is when it had none (`file row 7`).
    pub position: String,
    pub stage: RejectionStage,
    pub reason: String,
    /// The first completed run of the current streak of runs that rejected it.
    pub first_run: i64,
    pub last_run: i64,
    /// Completed runs in a row that rejected it, up to this one.
    pub runs_in_a_row: u64,
}

/// A sync's current rejections.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RejectedNow {
    /// The last completed run, if the sync has one.
    pub run: Option<i64>,
    /// Rows that run's mapping rejected (every row of a duplicated identity counts); exact.
    pub by_mapping: u64,
    /// Records that run's destination refused; exact.
    pub by_destination: u64,
    /// The rejections that run kept: one per record, at most [`MAX_STORED_REJECTIONS`].
    pub records: Vec<RejectedRecord>,
    /// Whether `records` is every rejection of the run, not only the first kept.
    pub complete: bool,
}

/// What makes two runs' rejections the same record's: its stage and its identity, or its
/// position when the row had no identity.
fn key(r: &StoredRejection) -> (RejectionStage, &str) {
    (r.stage, r.record_id.as_deref().unwrap_or(&r.position))
}

/// The last completed run's rejections, each with the streak of completed runs that rejected
/// it. Runs that did not complete (failed, blocked, interrupted) neither count nor break a
/// streak: they may have stopped before mapping every row.
pub async fn rejected_now(store: &dyn StateStore, sync: &str) -> Result<RejectedNow, StateError> {
    let completed: Vec<_> = store
        .runs(Some(sync), MAX_RUNS_LOOKED_AT)
        .await?
        .into_iter()
        .filter(|r| r.status == RunStatus::Completed)
        .collect();
    let Some(last) = completed.first() else {
        return Ok(RejectedNow {
            complete: true,
            ..RejectedNow::default()
        });
    };
    let current = store.rejections(last.id, MAX_STORED_REJECTIONS).await?;
    let mut records: Vec<RejectedRecord> = current
        .iter()
        .map(|r| RejectedRecord {
            identity: r.record_id.clone(),
            position: r.position.clone(),
            stage: r.stage,
            reason: r.reason.clone(),
            first_run: last.id,
            last_run: last.id,
            runs_in_a_row: 1,
        })
        .collect();
    // Still in a streak, by index into `records`; the walk stops when none is.
    let mut open: Vec<usize> = (0..records.len()).collect();
    for earlier in completed.iter().skip(1) {
        if open.is_empty() {
            break;
        }
        let theirs = store.rejections(earlier.id, MAX_STORED_REJECTIONS).await?;
        let seen: std::collections::HashSet<(RejectionStage, &str)> = theirs.iter().map(key).collect();
        open.retain(|&i| {
            let still = seen.contains(&key(&current[i]));
            if still {
                records[i].first_run = earlier.id;
                records[i].runs_in_a_row += 1;
            }
            still
        });
    }
    Ok(RejectedNow {
        run: Some(last.id),
        by_mapping: last.counts.invalid,
        by_destination: last.counts.rejected,
        complete: records.len() < MAX_STORED_REJECTIONS,
        records,
    })
}

/// How many rows and records the last completed run rejected, without `rejected_now`'s walk.
pub async fn rejected_count(store: &dyn StateStore, sync: &str) -> Result<Option<u64>, StateError> {
    let runs = store.runs(Some(sync), MAX_RUNS_LOOKED_AT).await?;
    Ok(runs
        .iter()
        .find(|r| r.status == RunStatus::Completed)
        .map(|r| r.counts.invalid + r.counts.rejected))
}
