//! The compact record index: what a diff reads instead of the `records` table.

/// One record in the index: the [`id_key`](crate::hash::id_key) of its id and its payload hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexEntry {
    pub key: u128,
    pub hash: u128,
}

/// A sync's record state in compact form, sorted by key: 32 bytes a record,
/// so a diff is a merge of two sorted arrays rather than a map of strings.
///
/// The `records` table stays the truth and is what commits write; the index
/// is derived from it and cached beside it, tagged with the commit counter it
/// matches. Any commit the index does not include makes the tag stale, and a
/// stale index is rebuilt from the table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordIndex {
    entries: Vec<IndexEntry>,
}

/// The layout of a cached index; another value is rebuilt from `records`.
pub const INDEX_FORMAT: i64 = 1;
const ENTRY_BYTES: usize = 32;

impl RecordIndex {
    /// Sorts by key; of entries with the same key the last one wins.
    pub fn from_entries(mut entries: Vec<IndexEntry>) -> RecordIndex {
        // Stable, so "last wins" holds after the dedup below keeps the last of each run.
        entries.sort_by_key(|e| e.key);
        let mut out: Vec<IndexEntry> = Vec::with_capacity(entries.len());
        for e in entries {
            match out.last_mut() {
                Some(last) if last.key == e.key => *last = e,
                _ => out.push(e),
            }
        }
        RecordIndex { entries: out }
    }

    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: u128) -> Option<u128> {
        self.entries
            .binary_search_by_key(&key, |e| e.key)
            .ok()
            .map(|i| self.entries[i].hash)
    }

    /// This index with `updates` applied, as the `records` table has them after their commits.
    pub fn merged(&self, updates: Vec<IndexEntry>) -> RecordIndex {
        self.merged_sorted(&RecordIndex::from_entries(updates).entries)
    }

    /// This index with a run's changes applied, as the cache stores them.
    pub fn applied(&self, delta: &IndexDelta) -> RecordIndex {
        self.merged_sorted(&delta.upserted).without(&delta.removed)
    }

    /// `updates`: sorted by key, one entry a key.
    fn merged_sorted(&self, updates: &[IndexEntry]) -> RecordIndex {
        let mut out = Vec::with_capacity(self.entries.len() + updates.len());
        let (old, mut i) = (&self.entries, 0);
        for &u in updates {
            while i < old.len() && old[i].key < u.key {
                out.push(old[i]);
                i += 1;
            }
            if i < old.len() && old[i].key == u.key {
                i += 1;
            }
            out.push(u);
        }
        out.extend_from_slice(&old[i..]);
        RecordIndex { entries: out }
    }

    /// This index without the entries of `keys` (in any order).
    pub fn without(self, keys: &[u128]) -> RecordIndex {
        if keys.is_empty() {
            return self;
        }
        let gone: std::collections::HashSet<u128> = keys.iter().copied().collect();
        RecordIndex {
            entries: self.entries.into_iter().filter(|e| !gone.contains(&e.key)).collect(),
        }
    }

    /// Little-endian key then hash, per entry, in key order.
    pub fn to_bytes(&self) -> Vec<u8> {
        entries_to_bytes(&self.entries)
    }

    /// `None` for bytes that are not a whole, sorted index: the cache is then rebuilt.
    pub fn from_bytes(bytes: &[u8]) -> Option<RecordIndex> {
        if !bytes.len().is_multiple_of(ENTRY_BYTES) {
            return None;
        }
        let entries: Vec<IndexEntry> = bytes
            .chunks_exact(ENTRY_BYTES)
            .map(|c| {
                let (k, h) = c.split_at(16);
                IndexEntry {
                    key: u128::from_le_bytes(k.try_into().unwrap_or_default()),
                    hash: u128::from_le_bytes(h.try_into().unwrap_or_default()),
                }
            })
            .collect();
        entries.windows(2).all(|w| w[0].key < w[1].key).then_some(RecordIndex { entries })
    }

    /// Builds the index from `records` rows.
    pub fn from_records(rows: impl IntoIterator<Item = (String, u128)>) -> RecordIndex {
        RecordIndex::from_entries(
            rows.into_iter()
                .map(|(id, hash)| IndexEntry {
                    key: crate::hash::id_key(&id),
                    hash,
                })
                .collect(),
        )
    }
}

/// Little-endian key then hash, per entry: the cache's layout of an index and of a delta's upserts.
fn entries_to_bytes(entries: &[IndexEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    for e in entries {
        out.extend_from_slice(&e.key.to_le_bytes());
        out.extend_from_slice(&e.hash.to_le_bytes());
    }
    out
}

/// What one run's commits changed in a sync's record index. The cache stores a run's changes as
/// a delta on top of the whole index it loaded, rather than writing that index again: a run
/// that changes 1% of a million records writes 1% of 32 MB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexDelta {
    /// Sorted by key, one entry a key (the last commit's).
    pub upserted: Vec<IndexEntry>,
    /// Keys deleted, in any order.
    pub removed: Vec<u128>,
}

impl IndexDelta {
    pub fn new(upserted: Vec<IndexEntry>, removed: Vec<u128>) -> IndexDelta {
        IndexDelta {
            upserted: RecordIndex::from_entries(upserted).entries,
            removed,
        }
    }

    pub fn len(&self) -> usize {
        self.upserted.len() + self.removed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// This delta, then `later`: what applying both in turn does, applied once.
    pub fn followed_by(self, later: &IndexDelta) -> IndexDelta {
        if self.is_empty() {
            return later.clone();
        }
        let touched: std::collections::HashSet<u128> = later.upserted.iter().map(|e| e.key).chain(later.removed.iter().copied()).collect();
        let mut upserted: Vec<IndexEntry> = self.upserted.into_iter().filter(|e| !touched.contains(&e.key)).collect();
        upserted.extend_from_slice(&later.upserted);
        let mut removed: Vec<u128> = self.removed.into_iter().filter(|k| !touched.contains(k)).collect();
        removed.extend_from_slice(&later.removed);
        IndexDelta::new(upserted, removed)
    }

    /// The upserts as an index's bytes, and the removed keys little-endian, 16 bytes each.
    pub fn to_bytes(&self) -> (Vec<u8>, Vec<u8>) {
        let upserted = entries_to_bytes(&self.upserted);
        let removed = self.removed.iter().flat_map(|k| k.to_le_bytes()).collect();
        (upserted, removed)
    }

    /// `None` for bytes that are not a whole delta: the cache is then rebuilt.
    pub fn from_bytes(upserted: &[u8], removed: &[u8]) -> Option<IndexDelta> {
        if !removed.len().is_multiple_of(16) {
            return None;
        }
        let upserted = RecordIndex::from_bytes(upserted)?.entries;
        let removed = removed
            .chunks_exact(16)
            .map(|c| u128::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        Some(IndexDelta { upserted, removed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(key: u128, hash: u128) -> IndexEntry {
        IndexEntry { key, hash }
    }

    #[test]
    fn index_merge_upserts_and_keeps_order() {
        let base = RecordIndex::from_entries(vec![e(5, 1), e(1, 1), e(9, 1)]);
        assert_eq!(base.entries(), &[e(1, 1), e(5, 1), e(9, 1)]);
        let merged = base.merged(vec![e(9, 2), e(0, 2), e(5, 2), e(7, 2), e(7, 3)]);
        assert_eq!(
            merged.entries(),
            &[e(0, 2), e(1, 1), e(5, 2), e(7, 3), e(9, 2)],
            "the last update of a key wins"
        );
        assert_eq!((merged.get(7), merged.get(8)), (Some(3), None));
        assert_eq!(RecordIndex::default().merged(vec![e(2, 2)]).entries(), &[e(2, 2)]);
        assert_eq!(
            merged.clone().without(&[5, 8, 0]).entries(),
            &[e(1, 1), e(7, 3), e(9, 2)],
            "deleted keys leave it"
        );
        assert_eq!(merged.clone().without(&[]), merged);
    }

    #[test]
    fn index_bytes_round_trip_and_refuse_damage() {
        let index = RecordIndex::from_entries(vec![e(u128::MAX, 7), e(3, u128::MAX), e(0, 0)]);
        let bytes = index.to_bytes();
        assert_eq!(bytes.len(), 3 * 32);
        assert_eq!(RecordIndex::from_bytes(&bytes), Some(index));
        assert_eq!(RecordIndex::from_bytes(&bytes[..40]), None, "a torn cache is rebuilt");
        let mut unsorted = bytes[32..64].to_vec();
        unsorted.extend_from_slice(&bytes[..32]);
        assert_eq!(RecordIndex::from_bytes(&unsorted), None);
        assert_eq!(RecordIndex::from_bytes(&[]), Some(RecordIndex::default()));
    }

    #[test]
    fn a_delta_applies_as_the_merge_and_removal_it_records_and_refuses_damage() {
        let base = RecordIndex::from_entries(vec![e(1, 1), e(5, 1), e(9, 1)]);
        let delta = IndexDelta::new(vec![e(9, 2), e(3, 2), e(9, 3)], vec![5, 42]);
        assert_eq!(delta.upserted, vec![e(3, 2), e(9, 3)], "sorted, the last of a key kept");
        assert_eq!(base.applied(&delta).entries(), &[e(1, 1), e(3, 2), e(9, 3)]);
        let (upserted, removed) = delta.to_bytes();
        assert_eq!((upserted.len(), removed.len()), (64, 32));
        assert_eq!(IndexDelta::from_bytes(&upserted, &removed), Some(delta));
        assert_eq!(IndexDelta::from_bytes(&upserted, &removed[..20]), None, "a torn delta is rebuilt");
        assert_eq!(IndexDelta::from_bytes(&upserted[..40], &removed), None);
        assert_eq!(IndexDelta::from_bytes(&[], &[]), Some(IndexDelta::default()));
    }

    #[test]
    fn a_chain_of_deltas_folds_into_one_that_applies_the_same() {
        let base = RecordIndex::from_entries(vec![e(1, 1), e(2, 1), e(3, 1)]);
        let deltas = [
            IndexDelta::new(vec![e(4, 1), e(2, 2)], vec![3]),
            IndexDelta::new(vec![e(3, 5)], vec![4, 1]),
            IndexDelta::new(vec![e(1, 9)], vec![2]),
        ];
        let one_by_one = deltas.iter().fold(base.clone(), |index, d| index.applied(d));
        let folded = deltas.iter().fold(IndexDelta::default(), |all, d| all.followed_by(d));
        assert_eq!(base.applied(&folded), one_by_one);
        assert_eq!(
            one_by_one.entries(),
            &[e(1, 9), e(3, 5)],
            "removed then back, upserted then removed"
        );
    }
}
