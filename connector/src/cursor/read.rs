//! What pass 1 learns of the cursor as it reads.

use arrow::array::Int64Array;

use super::run::CursorRun;
use super::{Decision, Scope};

/// The run's clock in a time cursor's unit. A cursor past it is a row from the future (a
/// placeholder such as `2999-01-01`, a bad import, a skewed clock): taken as the watermark, it
/// would narrow every later read to nothing until the clock caught up, and every change made
/// meanwhile would wait for a full diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// When the run started.
    pub now: i64,
    /// A day: a cursor further ahead than this is worth a warning, not just clock skew.
    pub day: i64,
}

/// What a batch's cursor values tell the watermark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The largest finite value not after the run's clock.
    pub largest: Option<i64>,
    /// Rows whose cursor is more than a day after the run's start, and the furthest of them.
    pub ahead: u64,
    pub furthest: Option<i64>,
}

impl Seen {
    /// `infinity` (`i64::MAX`, and `-infinity`) is past every bound already and is never a
    /// watermark; a value past `clock` is read by every run, as a null one is, and never one either.
    pub fn of(values: &Int64Array, clock: Option<Clock>) -> Seen {
        let mut seen = Seen::default();
        for v in values.iter().flatten().filter(|v| *v != i64::MAX && *v != i64::MIN) {
            match clock {
                Some(c) if v > c.now => {
                    if v > c.now.saturating_add(c.day) {
                        seen.ahead += 1;
                        seen.furthest = seen.furthest.max(Some(v));
                    }
                }
                _ => seen.largest = seen.largest.max(Some(v)),
            }
        }
        seen
    }

    fn add(&mut self, other: Seen) {
        self.largest = self.largest.max(other.largest);
        self.ahead += other.ahead;
        self.furthest = self.furthest.max(other.furthest);
    }
}

/// The cursor side of one pass 1.
#[derive(Debug, Default)]
pub struct CursorRead {
    /// Of a full diff after cursor runs: the bound under which they took rows as unchanged.
    below: Option<i64>,
    clock: Option<Clock>,
    seen: Seen,
    /// The cursors of the rows whose record differs from the baseline's, by id key.
    differing: Vec<(u128, i64)>,
    /// Of those, the keys whose cursor is under `below`.
    under: Vec<u128>,
}

impl CursorRead {
    pub fn new(decision: &Decision) -> CursorRead {
        let below = match decision.scope {
            Scope::Full { below, .. } => below,
            Scope::Since(_) => None,
        };
        CursorRead {
            below,
            clock: decision.column.clock(decision.started_at),
            ..CursorRead::default()
        }
    }

    /// What [`Seen::of`] compares a batch's cursors with.
    pub fn clock(&self) -> Option<Clock> {
        self.clock
    }

    /// A batch was read; see [`Seen::of`].
    pub fn saw(&mut self, seen: Seen) {
        self.seen.add(seen);
    }

    /// A valid row whose record is not the baseline's (new or changed), with its cursor; a
    /// row without one is read by every run and needs no note.
    pub fn differs(&mut self, key: u128, cursor: Option<i64>) {
        let Some(cursor) = cursor else { return };
        self.differing.push((key, cursor));
        if self.below.is_some_and(|below| cursor < below) {
            self.under.push(key);
        }
    }

    /// The run's cursor, once the diff chose `to_send` (sorted keys): only records the run
    /// sends can hold the watermark back, and only those count as changed without their cursor.
    pub fn finish(self, decision: Decision, to_send: &[u128]) -> CursorRun {
        self.finish_with(decision, |key| to_send.binary_search(key).is_ok())
    }

    /// [`CursorRead::finish`] for a baseline that noted only the records it sends.
    pub fn finish_noted(self, decision: Decision) -> CursorRun {
        self.finish_with(decision, |_| true)
    }

    fn finish_with(self, decision: Decision, sent: impl Fn(&u128) -> bool) -> CursorRun {
        let changed_without_cursor = self.below.map(|_| self.under.iter().filter(|k| sent(k)).count() as u64);
        let pending = self.differing.into_iter().filter(|(key, _)| sent(key)).collect();
        CursorRun::new(decision, self.seen, pending, changed_without_cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_past_the_clock_or_infinite_is_never_the_watermark_and_a_day_ahead_is_counted() {
        let clock = Some(Clock { now: 1_000, day: 100 });
        let values = Int64Array::from(vec![
            Some(900),
            None,
            Some(i64::MAX),
            Some(1_050),
            Some(1_101),
            Some(5_000),
            Some(1_000),
        ]);
        assert_eq!(
            Seen::of(&values, clock),
            Seen {
                largest: Some(1_000),
                ahead: 2,
                furthest: Some(5_000),
            },
            "1,050 is within a day: clock skew, not counted, but not the watermark either"
        );
        let integer = Seen::of(&values, None);
        assert_eq!((integer.largest, integer.ahead), (Some(5_000), 0), "an integer cursor has no clock");
        let mut read = CursorRead::default();
        read.saw(Seen::of(&values, clock));
        read.saw(Seen::of(&Int64Array::from(vec![Some(950), Some(9_000)]), clock));
        assert_eq!(
            read.seen,
            Seen {
                largest: Some(1_000),
                ahead: 3,
                furthest: Some(9_000),
            }
        );
    }
}
