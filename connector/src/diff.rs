//! The diff: which records of a snapshot to send, given what state holds. Pure: sorted arrays in,
//! keys and counts out, no I/O. `sync` feeds it from the source and the state store.

use std::collections::HashSet;
use std::fmt;

use crate::column::ColumnType;
use crate::config::Mode;
use crate::quote::quote;
use crate::state::{IndexEntry, RecordIndex};

/// An id that occurs more than once in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate {
    pub key: u128,
    /// How many of its rows were valid.
    pub valid: u32,
    /// How many rows have it, valid or rejected.
    pub occurrences: u32,
}

/// Removes every entry whose key occurs more than once, or also on a rejected row, from
/// `seen` (sorted by key), in place, and returns those keys. `rejected` is sorted by key.
pub fn take_duplicates(seen: &mut Vec<IndexEntry>, rejected: &[(u128, String)]) -> Vec<Duplicate> {
    let mut duplicates = Vec::new();
    let (mut read, mut write) = (0, 0);
    while read < seen.len() {
        let key = seen[read].key;
        let mut end = read + 1;
        while end < seen.len() && seen[end].key == key {
            end += 1;
        }
        let valid = (end - read) as u32;
        let rejected_too = rejected.partition_point(|(k, _)| *k < key)..rejected.partition_point(|(k, _)| *k <= key);
        if valid > 1 || !rejected_too.is_empty() {
            duplicates.push(Duplicate {
                key,
                valid,
                occurrences: valid + rejected_too.len() as u32,
            });
        } else {
            seen[write] = seen[read];
            write += 1;
        }
        read = end;
    }
    seen.truncate(write);
    duplicates
}

/// What [`select`] chose, and the counts of the choice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Keys of the records to send, sorted.
    pub to_send: Vec<u128>,
    /// Of those, the keys whose record the destination holds with other values: stale copies.
    pub stale: Vec<u128>,
    /// Of those, the keys whose record the destination holds as it is (only with `full`).
    pub resend: Vec<u128>,
    pub new: u64,
    pub changed: u64,
    pub unchanged: u64,
}

/// Merges the snapshot (`seen`, sorted by key, one entry per key) with state: a key state lacks
/// is new, one with another hash changed, one with the same hash unchanged. `full` counts every
/// record as new. The mode decides which of them are sent.
pub fn select(seen: &[IndexEntry], stored: &RecordIndex, mode: Mode, full: bool) -> Selection {
    let mut out = Selection::default();
    let stored = stored.entries();
    let mut j = 0;
    for e in seen {
        while j < stored.len() && stored[j].key < e.key {
            j += 1;
        }
        let before = (j < stored.len() && stored[j].key == e.key).then(|| stored[j].hash);
        let is_new = match (full, before) {
            (true, _) | (false, None) => true,
            (false, Some(h)) if h == e.hash => {
                out.unchanged += 1;
                continue;
            }
            (false, Some(_)) => false,
        };
        if is_new {
            out.new += 1;
        } else {
            out.changed += 1;
        }
        let wanted = match mode {
            Mode::Upsert | Mode::Mirror => true,
            Mode::CreateOnly => is_new,
            Mode::UpdateOnly => !is_new,
        };
        if wanted {
            out.to_send.push(e.key);
            match before {
                Some(h) if h == e.hash => out.resend.push(e.key),
                Some(_) => out.stale.push(e.key),
                None => {}
            }
        }
    }
    out
}

/// The keys in state that are absent from the snapshot: sorted. A rejected row or a duplicate
/// id is present (its record stays where it is), so only an identity that left the source is gone.
pub fn gone_keys(stored: &RecordIndex, seen: &[IndexEntry], duplicates: &[Duplicate], rejected_ids: &[(u128, String)]) -> Vec<u128> {
    let mut j = 0;
    let mut gone = Vec::new();
    let dup_keys: HashSet<u128> = duplicates.iter().map(|d| d.key).collect();
    for e in stored.entries() {
        while j < seen.len() && seen[j].key < e.key {
            j += 1;
        }
        let present = (j < seen.len() && seen[j].key == e.key)
            || dup_keys.contains(&e.key)
            || rejected_ids.binary_search_by_key(&e.key, |(k, _)| *k).is_ok();
        if !present {
            gone.push(e.key);
        }
    }
    gone
}

/// A mapped column whose type differs from the last run's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnChange {
    pub column: String,
    pub was: ColumnType,
    pub now: ColumnType,
}

/// The schema drift that stops a run before anything is sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Drift(pub Vec<ColumnChange>);

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "column {} was {} in the last run and is {} now", quote(&c.column), c.was, c.now)?;
        }
        Ok(())
    }
}

/// The mapped columns against the schema the last completed run stored, if any.
pub fn check_drift(stored: Option<&[(String, ColumnType)]>, now: &[(String, ColumnType)]) -> Result<(), Drift> {
    let Some(stored) = stored else { return Ok(()) };
    let changes: Vec<ColumnChange> = now
        .iter()
        .filter_map(|(name, ty)| {
            let (_, before) = stored.iter().find(|(n, _)| n == name)?;
            (!before.compatible(ty)).then(|| ColumnChange {
                column: name.clone(),
                was: before.clone(),
                now: ty.clone(),
            })
        })
        .collect();
    if changes.is_empty() {
        Ok(())
    } else {
        Err(Drift(changes))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// A snapshot and a state over a small key space, so that they overlap often.
    fn snapshot_and_state() -> impl Strategy<Value = (BTreeMap<u128, u128>, BTreeMap<u128, u128>)> {
        let entries = || proptest::collection::btree_map(0u128..64, 0u128..3, 0..40);
        (entries(), entries())
    }

    fn entries(map: &BTreeMap<u128, u128>) -> Vec<IndexEntry> {
        map.iter().map(|(&key, &hash)| IndexEntry { key, hash }).collect()
    }

    const MODES: [Mode; 4] = [Mode::Upsert, Mode::Mirror, Mode::CreateOnly, Mode::UpdateOnly];

    proptest! {
        #[test]
        fn select_classifies_every_record_once_and_sends_what_the_mode_wants(
            (seen, stored) in snapshot_and_state(),
            full in any::<bool>(),
        ) {
            let index = RecordIndex::from_entries(entries(&stored));
            for mode in MODES {
                let s = select(&entries(&seen), &index, mode, full);
                prop_assert_eq!(s.new + s.changed + s.unchanged, seen.len() as u64);
                prop_assert!(s.to_send.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
                for (key, hash) in &seen {
                    let is_new = full || !stored.contains_key(key);
                    let changed = !is_new && stored[key] != *hash;
                    let wanted = match mode {
                        Mode::Upsert | Mode::Mirror => is_new || changed,
                        Mode::CreateOnly => is_new,
                        Mode::UpdateOnly => changed,
                    };
                    prop_assert_eq!(s.to_send.binary_search(key).is_ok(), wanted, "key {} in {:?}", key, mode);
                }
                if full {
                    prop_assert_eq!((s.new, s.unchanged), (seen.len() as u64, 0));
                }
            }
        }

        #[test]
        fn gone_counts_the_stored_keys_no_row_has(
            (seen, stored) in snapshot_and_state(),
            rejected in proptest::collection::btree_set(0u128..64, 0..8),
        ) {
            let rejected: Vec<(u128, String)> = rejected.into_iter().map(|k| (k, k.to_string())).collect();
            let index = RecordIndex::from_entries(entries(&stored));
            let expected = stored
                .keys()
                .filter(|k| !seen.contains_key(k) && rejected.binary_search_by_key(*k, |(r, _)| *r).is_err())
                .count() as u64;
            prop_assert_eq!(gone_keys(&index, &entries(&seen), &[], &rejected).len() as u64, expected);
        }

        #[test]
        fn duplicates_leave_each_key_once_and_count_every_occurrence(
            keys in proptest::collection::vec(0u128..16, 0..40),
            rejected in proptest::collection::btree_set(0u128..16, 0..4),
        ) {
            let mut seen: Vec<IndexEntry> = keys.iter().map(|&key| IndexEntry { key, hash: 0 }).collect();
            seen.sort_by_key(|e| e.key);
            let rejected: Vec<(u128, String)> = rejected.into_iter().map(|k| (k, String::new())).collect();
            let duplicates = take_duplicates(&mut seen, &rejected);
            prop_assert!(seen.windows(2).all(|w| w[0].key < w[1].key));
            for e in &seen {
                prop_assert_eq!(keys.iter().filter(|&&k| k == e.key).count(), 1);
                prop_assert!(rejected.binary_search_by_key(&e.key, |(k, _)| *k).is_err());
            }
            for d in &duplicates {
                let valid = keys.iter().filter(|&&k| k == d.key).count() as u32;
                prop_assert_eq!(d.valid, valid);
                prop_assert!(d.occurrences > 1);
                prop_assert!(seen.iter().all(|e| e.key != d.key));
            }
        }
    }

    #[test]
    fn drift_names_each_retyped_column_and_ignores_new_ones() {
        let stored = vec![("age".to_string(), ColumnType::Int), ("name".to_string(), ColumnType::String)];
        let now = vec![
            ("age".to_string(), ColumnType::String),
            ("name".to_string(), ColumnType::String),
            ("plan".to_string(), ColumnType::String),
        ];
        let drift = check_drift(Some(&stored), &now).expect_err("age was retyped");
        assert_eq!(drift.to_string(), "column `age` was integer in the last run and is string now");
        assert_eq!(check_drift(None, &now), Ok(()));
        assert_eq!(check_drift(Some(&stored), &stored), Ok(()));
    }
}
