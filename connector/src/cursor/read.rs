//! What pass 1 learns of the cursor as it reads.

use super::run::CursorRun;
use super::{Decision, Scope};

/// The cursor side of one pass 1.
#[derive(Debug, Default)]
pub struct CursorRead {
    /// Of a full diff after cursor runs: the bound under which they took rows as unchanged.
    below: Option<i64>,
    largest: Option<i64>,
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
            ..CursorRead::default()
        }
    }

    /// A batch was read whose largest finite cursor is `largest`.
    pub fn saw(&mut self, largest: Option<i64>) {
        self.largest = self.largest.max(largest);
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
        CursorRun::new(decision, self.largest, pending, changed_without_cursor)
    }
}
