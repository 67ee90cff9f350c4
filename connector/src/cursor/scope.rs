//! Whether a run reads every row or only the rows past the watermark.

use std::sync::Arc;

use super::CursorColumn;
use crate::column::ColumnType;
use crate::source::Since;
use crate::state::StoredCursor;

/// Why a cursor sync's run reads every row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullReason {
    /// `--full`: every record is sent again.
    Resend,
    /// No completed run left a watermark (a first run, a reset, a lifted suppression).
    First,
    /// The mapping, the destination or the cursor column changed since the watermark was read.
    Changed,
    /// The stored state cannot be used (another destination or hash version): everything is sent.
    SetAside,
    /// The last run read no row with a cursor value.
    NoWatermark,
    /// The watermark is after the run's start: a run from before ebb ignored future cursors,
    /// or the clock went back. A narrowed read would see nothing until the clock caught up.
    AheadOfClock,
    /// `--full-diff`.
    Requested,
    /// The last full diff is older than `full_every`.
    Scheduled,
}

impl FullReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FullReason::Resend => "--full",
            FullReason::First => "no watermark yet",
            FullReason::Changed => "the mapping, destination or cursor column changed",
            FullReason::SetAside => "the stored state is for another destination or hash version",
            FullReason::NoWatermark => "no row had a cursor value",
            FullReason::AheadOfClock => "the watermark is after the run's start",
            FullReason::Requested => "--full-diff",
            FullReason::Scheduled => "full_every",
        }
    }
}

/// Which rows a run reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every row. `below`: the last watermark less the lag, under which cursor runs took rows
    /// as unchanged; this diff counts those that were not (`changed_without_cursor`).
    Full { reason: FullReason, below: Option<i64> },
    /// Only rows whose cursor is at or past this value, or null.
    Since(i64),
}

/// A run's cursor, decided before it reads a row.
#[derive(Clone, Debug)]
pub struct Decision {
    pub column: CursorColumn,
    pub fingerprint: String,
    pub scope: Scope,
    /// What the last completed run left.
    pub stored: Option<StoredCursor>,
    /// When the run started, in Unix seconds: a full diff's time.
    pub started_at: i64,
}

/// What the run was asked for: `--full` (send everything), `--full-diff` (read everything).
#[derive(Clone, Copy, Debug, Default)]
pub struct Asked {
    pub full: bool,
    pub full_diff: bool,
}

/// Decides the run's scope. `state_usable`: the baseline holds records for this destination
/// (a narrowed read of state set aside would send only the rows it read).
pub fn decide(
    column: CursorColumn,
    fingerprint: String,
    stored: Option<StoredCursor>,
    (asked, state_usable): (Asked, bool),
    now: i64,
) -> Decision {
    let full_every = i64::try_from(column.config.full_every.as_secs()).unwrap_or(i64::MAX);
    let clock = column.clock(now);
    let scope = match &stored {
        _ if asked.full => Scope::Full {
            reason: FullReason::Resend,
            below: None,
        },
        None => full(FullReason::First, None),
        Some(s) if s.fingerprint != fingerprint => full(FullReason::Changed, None),
        Some(_) if !state_usable => full(FullReason::SetAside, None),
        Some(StoredCursor { watermark: None, .. }) => full(FullReason::NoWatermark, None),
        Some(StoredCursor { watermark: Some(w), .. }) if clock.is_some_and(|c| *w > c.now) => full(FullReason::AheadOfClock, None),
        Some(StoredCursor {
            watermark: Some(w),
            full_at,
            ..
        }) => {
            let bound = w.saturating_sub(column.lag);
            if asked.full_diff {
                full(FullReason::Requested, Some(bound))
            } else if now.saturating_sub(*full_at) >= full_every {
                full(FullReason::Scheduled, Some(bound))
            } else {
                Scope::Since(bound)
            }
        }
    };
    Decision {
        column,
        fingerprint,
        scope,
        stored,
        started_at: now,
    }
}

fn full(reason: FullReason, below: Option<i64>) -> Scope {
    Scope::Full { reason, below }
}

impl Decision {
    /// The narrowing to ask the source for, on a cursor run.
    pub fn since(&self) -> Option<Since> {
        match self.scope {
            Scope::Since(from) => Some(Since {
                column: self.column.name.clone(),
                from,
            }),
            Scope::Full { .. } => None,
        }
    }

    /// The columns a run reads: the mapping's, and the cursor's if the mapping does not read it.
    pub fn read_columns(&self, mapped: &[(String, ColumnType)]) -> Arc<Vec<(String, ColumnType)>> {
        let mut columns = mapped.to_vec();
        if !columns.iter().any(|(n, _)| *n == self.column.name) {
            columns.push((self.column.name.clone(), self.column.ty.clone()));
        }
        Arc::new(columns)
    }

    pub fn is_full(&self) -> bool {
        matches!(self.scope, Scope::Full { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column() -> CursorColumn {
        CursorColumn::integer("updated_at", 10)
    }

    fn stored(watermark: Option<i64>, full_at: i64) -> Option<StoredCursor> {
        Some(StoredCursor {
            column: "updated_at".into(),
            fingerprint: "f".into(),
            watermark,
            full_at,
        })
    }

    fn scope(stored: Option<StoredCursor>, asked: Asked, usable: bool, now: i64) -> Scope {
        decide(column(), "f".into(), stored, (asked, usable), now).scope
    }

    #[test]
    fn a_run_is_narrowed_only_by_a_watermark_it_can_trust() {
        let none = Asked::default();
        assert_eq!(scope(stored(Some(100), 0), none, true, 10), Scope::Since(90));
        assert_eq!(scope(None, none, true, 10), full(FullReason::First, None));
        let mut other = stored(Some(100), 0);
        other.as_mut().unwrap().fingerprint = "g".into();
        assert_eq!(scope(other, none, true, 10), full(FullReason::Changed, None));
        assert_eq!(scope(stored(Some(100), 0), none, false, 10), full(FullReason::SetAside, None));
        assert_eq!(scope(stored(None, 0), none, true, 10), full(FullReason::NoWatermark, None));
        let full_diff = Asked {
            full: false,
            full_diff: true,
        };
        assert_eq!(
            scope(stored(Some(100), 0), full_diff, true, 10),
            full(FullReason::Requested, Some(90))
        );
        assert_eq!(scope(stored(Some(100), 0), none, true, 3600), full(FullReason::Scheduled, Some(90)));
        let resend = Asked {
            full: true,
            full_diff: false,
        };
        assert_eq!(scope(stored(Some(100), 0), resend, true, 10), full(FullReason::Resend, None));
        assert_eq!(scope(stored(Some(i64::MIN + 3), 0), none, true, 10), Scope::Since(i64::MIN));
    }

    #[test]
    fn a_time_cursors_watermark_after_the_runs_start_is_not_trusted() {
        let mut day = column();
        day.ty = ColumnType::Date;
        let stored = || stored(Some(20_000), 20_000 * 86_400);
        // 20,000 days after 1970 is 2024-10-04; a run on 2024-10-05 narrows, one on 2024-10-03 does not.
        let on = |day_number: i64| {
            decide(
                day.clone(),
                "f".into(),
                stored(),
                (Asked::default(), true),
                day_number * 86_400 + 60,
            )
            .scope
        };
        assert_eq!(on(20_000), Scope::Since(20_000 - 10));
        assert_eq!(on(19_999), full(FullReason::AheadOfClock, None));
        let integer = decide(column(), "f".into(), stored(), (Asked::default(), true), 5).scope;
        assert_eq!(integer, Scope::Since(19_990), "an integer cursor has no clock");
    }
}
