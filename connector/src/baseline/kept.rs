//! The records pass 1 keeps for pass 2, so that a run with few changes reads its source once.
//!
//! Pass 1 hashes every row without building a record. A row whose hash is not the one in state
//! (new or changed: a candidate to send) is also mapped into a record and kept, in source
//! order, while the kept records fit a memory budget. Past the budget they are all dropped and
//! pass 2 reads the source again, as it always did: a first sync of a big table costs no more
//! memory than before.

use crate::record::Record;
use crate::state::{IndexLookup, RecordIndex};

/// What a real run may keep: enough for a 1% change of a few million rows, and a first sync of
/// about a hundred thousand.
pub const KEEP_BUDGET_BYTES: usize = 64 << 20;

pub(super) struct Kept<'a> {
    /// The stored index, searched once a row; `None` keeps nothing, and needs no state.
    stored: Option<IndexLookup<'a>>,
    /// Every row is a candidate.
    full: bool,
    budget: usize,
    bytes: usize,
    records: Vec<Record>,
    /// The budget ran out: nothing is kept and pass 2 reads the source.
    overflowed: bool,
    stored_len: Option<usize>,
}

impl<'a> Kept<'a> {
    pub fn new(budget: usize, stored: Option<&'a RecordIndex>, full: bool) -> Kept<'a> {
        let full = full || stored.is_some_and(RecordIndex::is_empty);
        Kept {
            full,
            // Searched only when some rows may be unchanged and there is room to keep any.
            stored: stored.filter(|_| budget > 0 && !full).map(IndexLookup::new),
            budget,
            bytes: 0,
            records: Vec::new(),
            overflowed: budget == 0 || stored.is_none(),
            stored_len: stored.map(RecordIndex::len),
        }
    }

    /// Keeps every record pushed, while they fit `budget`: the warehouse's changed rows,
    /// all of them to send.
    pub fn everything(budget: usize) -> Kept<'static> {
        Kept {
            full: true,
            stored: None,
            budget,
            bytes: 0,
            records: Vec::new(),
            overflowed: budget == 0,
            stored_len: None,
        }
    }

    /// Keeps nothing.
    pub fn none() -> Kept<'static> {
        Kept::new(0, None, false)
    }

    /// Whether a row of this id key and hash should be mapped and kept.
    pub fn wants(&self, key: u128, hash: u128) -> bool {
        !self.overflowed && (self.full || self.stored.as_ref().and_then(|index| index.get(key)) != Some(hash))
    }

    /// The number of records in state, which sizes pass 1's arrays; `None` when unknown.
    pub fn stored_len(&self) -> Option<usize> {
        self.stored_len
    }

    pub fn is_open(&self) -> bool {
        !self.overflowed
    }

    pub fn push(&mut self, record: Record) {
        if self.overflowed {
            return;
        }
        self.bytes += record.memory_bytes();
        if self.bytes > self.budget {
            tracing::debug!(
                budget_mb = self.budget >> 20,
                kept = self.records.len(),
                "the records to send do not fit the memory budget; pass 2 reads the source again"
            );
            self.overflowed = true;
            self.records = Vec::new();
        } else {
            self.records.push(record);
        }
    }

    /// The kept records, in source order, unless the budget ran out.
    pub fn finish(self) -> Option<Vec<Record>> {
        (!self.overflowed).then_some(self.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::IndexEntry;

    #[test]
    fn only_new_and_changed_rows_are_wanted() {
        let stored = RecordIndex::from_entries(vec![IndexEntry { key: 1, hash: 10 }]);
        let kept = Kept::new(1 << 20, Some(&stored), false);
        assert!(!kept.wants(1, 10), "unchanged");
        assert!(kept.wants(1, 11), "changed");
        assert!(kept.wants(2, 10), "new");
        assert!(
            Kept::new(1 << 20, Some(&stored), true).wants(1, 10),
            "a full resync sends everything"
        );
        assert!(!Kept::new(0, Some(&stored), false).wants(2, 10), "no budget, nothing kept");
        assert!(!Kept::none().wants(2, 10), "no state, nothing kept");
    }

    #[test]
    fn past_the_budget_nothing_is_kept() {
        let stored = RecordIndex::from_entries(Vec::new());
        let one = Record::with_id("user-1").memory_bytes();
        let mut kept = Kept::new(one * 2, Some(&stored), false);
        kept.push(Record::with_id("user-1"));
        kept.push(Record::with_id("user-2"));
        assert!(kept.is_open());
        kept.push(Record::with_id("user-3"));
        assert!(!kept.is_open() && !kept.wants(9, 9));
        assert_eq!(kept.finish(), None);
        let mut fits = Kept::new(one * 2, Some(&stored), false);
        fits.push(Record::with_id("user-1"));
        assert_eq!(fits.finish(), Some(vec![Record::with_id("user-1")]));
    }
}
