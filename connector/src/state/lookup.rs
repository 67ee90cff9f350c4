//! Finding a key in a record index many times over, as pass 1 does once per row.
//!
//! A binary search over a million entries takes about twenty steps, most of them cache misses
//! in a 32 MB array, and pass 1 makes one per row. Keys are digests, spread evenly over their
//! range, so their top bits say where an entry is: a table of where each bucket starts (small
//! enough to stay in cache) narrows each search to a few neighbouring entries.

use super::{IndexEntry, RecordIndex};

/// Buckets at most: 256 KB of starts, which stays in a core's cache.
const MAX_BUCKET_BITS: u32 = 16;

pub struct IndexLookup<'a> {
    entries: &'a [IndexEntry],
    /// Where each bucket's entries start, and one past the last.
    starts: Vec<u32>,
    /// Right shift from a key to its bucket.
    shift: u32,
}

impl<'a> IndexLookup<'a> {
    pub fn new(index: &'a RecordIndex) -> IndexLookup<'a> {
        let entries = index.entries();
        // About four entries a bucket, up to the cap.
        let bits = (usize::BITS - entries.len().leading_zeros())
            .saturating_sub(2)
            .clamp(1, MAX_BUCKET_BITS);
        let shift = u128::BITS - bits;
        let buckets = 1usize << bits;
        let mut starts = Vec::with_capacity(buckets + 1);
        let mut at = 0usize;
        for bucket in 0..buckets {
            while at < entries.len() && ((entries[at].key >> shift) as usize) < bucket {
                at += 1;
            }
            starts.push(at as u32);
        }
        starts.push(entries.len() as u32);
        IndexLookup { entries, starts, shift }
    }

    /// The hash stored for `key`, if any.
    pub fn get(&self, key: u128) -> Option<u128> {
        find(self.entries, &self.starts, self.shift, key)
    }
}

fn find(entries: &[IndexEntry], starts: &[u32], shift: u32, key: u128) -> Option<u128> {
    let bucket = (key >> shift) as usize;
    let (from, to) = (starts[bucket] as usize, starts[bucket + 1] as usize);
    let within = &entries[from..to];
    within.binary_search_by_key(&key, |e| e.key).ok().map(|i| within[i].hash)
}

/// [`IndexLookup`] over an index shared with the threads that hash pass 1's batches.
pub struct SharedLookup {
    index: std::sync::Arc<RecordIndex>,
    starts: Vec<u32>,
    shift: u32,
}

impl SharedLookup {
    pub fn new(index: std::sync::Arc<RecordIndex>) -> SharedLookup {
        let IndexLookup { starts, shift, .. } = IndexLookup::new(&index);
        SharedLookup { index, starts, shift }
    }

    /// The hash stored for `key`, if any.
    pub fn get(&self, key: u128) -> Option<u128> {
        find(self.index.entries(), &self.starts, self.shift, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_a_binary_search_finds() {
        let mut x: u128 = 0x2545_F491_4F6C_DD1D_9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 45;
            x ^= x >> 23;
            x ^= x << 61;
            x
        };
        for size in [0usize, 1, 2, 3, 100, 5_000, 70_000] {
            let mut entries: Vec<IndexEntry> = (0..size)
                .map(|i| IndexEntry {
                    key: next(),
                    hash: i as u128,
                })
                .collect();
            // The ends of the key range.
            entries.push(IndexEntry { key: 0, hash: 7 });
            entries.push(IndexEntry { key: u128::MAX, hash: 8 });
            let index = RecordIndex::from_entries(entries.clone());
            let lookup = IndexLookup::new(&index);
            for e in &entries {
                assert_eq!(lookup.get(e.key), index.get(e.key), "size {size}");
            }
            for _ in 0..1000 {
                let absent = next();
                assert_eq!(lookup.get(absent), index.get(absent));
            }
        }
        let empty = RecordIndex::default();
        assert_eq!(IndexLookup::new(&empty).get(42), None);
    }
}
