//! The watermark a run leaves.

use std::sync::Mutex;

use serde::Serialize;

use super::{Decision, Scope, Seen};
use crate::calendar;
use crate::column::ColumnType;
use crate::error::Error;
use crate::hash::id_key;
use crate::panic::lock;
use crate::record::Record;
use crate::state::{RunLock, StateStore, StoredCursor};

/// A pending record's cursor once the destination acknowledged it: past every real value, which
/// are finite (see [`super::Seen::of`]).
const ACKNOWLEDGED: i64 = i64::MAX;

/// One run's cursor, from its plan to its end.
#[derive(Debug)]
pub struct CursorRun {
    decision: Decision,
    /// The largest finite cursor the run read not after its start, and the rows past it.
    seen: Seen,
    /// The cursors of the records the run sends, sorted by id key; an acknowledged one's cursor
    /// becomes `ACKNOWLEDGED`. A first sync sends every record: 24 bytes each, no map's overhead.
    pending: Mutex<Vec<(u128, i64)>>,
    changed_without_cursor: Option<u64>,
}

/// A run's cursor, as `sync --json` and the summary show it.
#[derive(Clone, Debug, Serialize)]
pub struct CursorSummary {
    pub column: String,
    /// `cursor` (only rows past the watermark were read) or `full` (every row).
    pub scope: &'static str,
    /// Why every row was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_because: Option<&'static str>,
    /// The bound of a cursor run's read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_from: Option<String>,
    /// The largest cursor read not after the run's start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub largest_read: Option<String>,
    /// Rows whose cursor is more than a day after the run's start: read by every run, never the
    /// watermark.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ahead_of_clock: Option<AheadOfClock>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AheadOfClock {
    pub rows: u64,
    pub furthest: String,
}

impl CursorRun {
    pub(super) fn new(decision: Decision, seen: Seen, pending: Vec<(u128, i64)>, changed_without_cursor: Option<u64>) -> CursorRun {
        let mut pending = pending;
        pending.sort_unstable_by_key(|(key, _)| *key);
        if let Some(furthest) = seen.furthest {
            tracing::warn!(
                column = %decision.column.name,
                rows = seen.ahead,
                furthest = %shown(furthest, &decision.column.ty),
                "rows whose cursor is more than a day after the run's start are read by every run and never move the watermark: check the column's clock or placeholder values"
            );
        }
        CursorRun {
            decision,
            seen,
            pending: Mutex::new(pending),
            changed_without_cursor,
        }
    }

    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// Of a full diff after cursor runs, the rows that changed without their cursor moving.
    pub fn changed_without_cursor(&self) -> Option<u64> {
        self.changed_without_cursor
    }

    /// The destination acknowledged these records: they no longer hold the watermark back.
    pub fn acknowledged(&self, records: &[&Record]) {
        let mut pending = lock(&self.pending);
        if pending.is_empty() {
            return;
        }
        for record in records {
            if let Ok(i) = pending.binary_search_by_key(&id_key(&record.id), |(key, _)| *key) {
                pending[i].1 = ACKNOWLEDGED;
            }
        }
    }

    /// The watermark a completed run leaves: the largest cursor it read not after its start,
    /// never behind the last one while that one still holds (a baseline may read only the
    /// changed rows past it) and is not itself ahead of the clock, but no further than the
    /// cursor of a record it planned and did not get acknowledged, so that the next run reads
    /// that record again.
    pub fn next_watermark(&self) -> Option<i64> {
        let d = &self.decision;
        let still_holds = matches!(d.scope, Scope::Since(_) | Scope::Full { below: Some(_), .. });
        let clock = d.column.clock(d.started_at);
        let before = d
            .stored
            .as_ref()
            .and_then(|s| s.watermark)
            .filter(|w| clock.is_none_or(|c| *w <= c.now));
        let largest = self.seen.largest;
        let read = match (still_holds, before) {
            (true, Some(before)) => Some(largest.map_or(before, |l| l.max(before))),
            _ => largest,
        };
        let held_back = lock(&self.pending).iter().map(|(_, c)| *c).filter(|c| *c != ACKNOWLEDGED).min();
        match (read, held_back) {
            (Some(w), Some(h)) => Some(w.min(h)),
            (read, _) => read,
        }
    }

    /// Moves the watermark, after a completed run.
    pub async fn save(&self, store: &dyn StateStore, run_lock: &RunLock) -> Result<(), Error> {
        let d = &self.decision;
        let full_at = match (d.is_full(), &d.stored) {
            (false, Some(stored)) => stored.full_at,
            _ => d.started_at,
        };
        let saved = StoredCursor {
            column: d.column.name.clone(),
            fingerprint: d.fingerprint.clone(),
            watermark: self.next_watermark(),
            full_at,
        };
        store.save_cursor(run_lock, &saved).await?;
        Ok(())
    }

    pub fn summary(&self) -> CursorSummary {
        let d = &self.decision;
        let (scope, full_because, read_from) = match d.scope {
            Scope::Full { reason, .. } => ("full", Some(reason.as_str()), None),
            Scope::Since(from) => ("cursor", None, Some(shown(from, &d.column.ty))),
        };
        CursorSummary {
            column: d.column.name.clone(),
            scope,
            full_because,
            read_from,
            largest_read: self.seen.largest.map(|l| shown(l, &d.column.ty)),
            ahead_of_clock: self.seen.furthest.map(|f| AheadOfClock {
                rows: self.seen.ahead,
                furthest: shown(f, &d.column.ty),
            }),
        }
    }
}

/// A cursor value as a person reads it: a UTC time, a date, or the number.
pub fn shown(value: i64, ty: &ColumnType) -> String {
    match ty {
        ColumnType::Timestamp => {
            let (secs, micros) = (value.div_euclid(1_000_000), value.rem_euclid(1_000_000));
            match calendar::secs_in_range(secs) {
                true => calendar::timestamp_text(secs, (micros * 1000) as u32),
                false => format!("{value} µs after 1970"),
            }
        }
        ColumnType::Date if calendar::day_in_range(value) => calendar::date_text(value),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cursor::scope::{decide, Asked};
    use crate::cursor::CursorColumn;

    fn run(pending: Vec<(u128, i64)>, largest: Option<i64>) -> CursorRun {
        let column = CursorColumn::integer("v", 0);
        let stored = StoredCursor {
            column: "v".into(),
            fingerprint: "f".into(),
            watermark: Some(100),
            full_at: 0,
        };
        let decision = decide(column, "f".into(), Some(stored), (Asked::default(), true), 10);
        let seen = Seen {
            largest,
            ..Seen::default()
        };
        CursorRun::new(decision, seen, pending, None)
    }

    #[test]
    fn the_watermark_waits_for_every_planned_record_and_never_goes_back() {
        let (a, b) = (Record::with_id("a"), Record::with_id("b"));
        let cursor = run(vec![(id_key("a"), 150), (id_key("b"), 180)], Some(200));
        assert_eq!(cursor.next_watermark(), Some(150), "held back by both");
        cursor.acknowledged(&[&a]);
        assert_eq!(cursor.next_watermark(), Some(180), "held back by b");
        cursor.acknowledged(&[&b]);
        assert_eq!(cursor.next_watermark(), Some(200), "the largest read");
        assert_eq!(
            run(Vec::new(), None).next_watermark(),
            Some(100),
            "a cursor run that read nothing keeps it"
        );
        assert_eq!(run(Vec::new(), Some(50)).next_watermark(), Some(100), "and never moves it back");
    }
}
