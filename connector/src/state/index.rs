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
        let updates = RecordIndex::from_entries(updates).entries;
        let mut out = Vec::with_capacity(self.entries.len() + updates.len());
        let (old, mut i) = (&self.entries, 0);
        for u in updates {
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
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.key.to_le_bytes());
            out.extend_from_slice(&e.hash.to_le_bytes());
        }
        out
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
}
