//! The order pass 2 sends a run's records in: first the stale copies (records the destination
//! holds that changed in the source: what people notice), then new records, then (after the
//! mirror deletes) resends (the records `--full` sends again as they are). Within each group,
//! by `priority:` when the mapping has one, else source order. With a time box (`max_run:`), a
//! long backfill then never keeps a changed record waiting behind new ones.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::SortOrder;
use crate::hash::id_key;
use crate::record::Record;

/// The groups, in sending order; resends go after the deletes.
const GROUPS: usize = 3;
const RESENDS: usize = 2;

/// How many records of a group pass 2 reads in one read of the source again, with a priority:
/// a band is held in memory to be sorted, so a group bigger than this takes several reads,
/// each of the records next in priority.
pub(super) const PRIORITY_BAND: usize = 50_000;

/// The keys of the records to send, by group, each sorted; with a priority, their places.
#[derive(Debug, Default)]
pub(super) struct SendOrder {
    groups: [Arc<Vec<u128>>; GROUPS],
    /// With `priority:`, each record's place in the sending order, and each group's keys in it.
    ranked: Option<Ranked>,
}

#[derive(Debug, Default)]
struct Ranked {
    places: HashMap<u128, usize>,
    groups: [Vec<u128>; GROUPS],
}

/// One read of the source again: the keys it selects, sorted, and whether its records must be
/// sorted once read (a priority band) or go in source order as they come.
#[derive(Clone, Debug)]
pub(super) struct Phase {
    pub keys: Arc<Vec<u128>>,
    pub sorted_after: bool,
}

impl SendOrder {
    /// `to_send`, `stale` and `resend`: sorted, the last two subsets of the first.
    pub fn new(to_send: &[u128], stale: Vec<u128>, resend: Vec<u128>) -> SendOrder {
        let fresh = to_send
            .iter()
            .copied()
            .filter(|k| stale.binary_search(k).is_err() && resend.binary_search(k).is_err())
            .collect();
        SendOrder {
            groups: [Arc::new(stale), Arc::new(fresh), Arc::new(resend)],
            ranked: None,
        }
    }

    /// Orders each group by priority: `priorities` holds every row's key and value, in source
    /// order (rows not to send are passed over).
    pub fn with_priority(mut self, priorities: &[(u128, Option<i64>)], order: SortOrder) -> SendOrder {
        let mut planned: Vec<(usize, _, u128)> = priorities
            .iter()
            .enumerate()
            .filter_map(|(position, &(key, value))| {
                let group = self.group(key);
                (group < GROUPS).then(|| (group, crate::priority::sort_key(value, order, position), key))
            })
            .collect();
        planned.sort_unstable_by_key(|p| (p.0, p.1));
        let mut ranked = Ranked::default();
        for (place, (group, _, key)) in planned.into_iter().enumerate() {
            ranked.places.entry(key).or_insert(place);
            ranked.groups[group].push(key);
        }
        self.ranked = Some(ranked);
        self
    }

    fn group(&self, key: u128) -> usize {
        self.groups.iter().position(|g| g.binary_search(&key).is_ok()).unwrap_or(GROUPS)
    }

    /// Where a record goes: its group, then its place by priority.
    fn place(&self, key: u128) -> (usize, usize) {
        let place = self.ranked.as_ref().and_then(|r| r.places.get(&key).copied()).unwrap_or(0);
        (self.group(key), place)
    }

    /// Records kept in memory, in sending order; stable, so source order holds within a group
    /// when there is no priority.
    pub fn sort(&self, records: &mut [Record]) {
        records.sort_by_cached_key(|r| self.place(id_key(&r.id)));
    }

    /// Whether a record goes after the deletes.
    pub fn is_resend(&self, record: &Record) -> bool {
        self.groups[RESENDS].binary_search(&id_key(&record.id)).is_ok()
    }

    /// The reads of the source again that give the groups before the deletes, or after them,
    /// in sending order: one a group, each started only once the one before has ended, so that
    /// no group waits for a later one's rows; with a priority, one a band of a group.
    pub fn phases(&self, after_deletes: bool) -> Vec<Phase> {
        let groups = match after_deletes {
            false => 0..RESENDS,
            true => RESENDS..GROUPS,
        };
        groups
            .flat_map(|g| match &self.ranked {
                None => vec![Phase {
                    keys: Arc::clone(&self.groups[g]),
                    sorted_after: false,
                }],
                Some(ranked) => ranked.groups[g]
                    .chunks(PRIORITY_BAND)
                    .map(|band| {
                        let mut keys = band.to_vec();
                        keys.sort_unstable();
                        Phase {
                            keys: Arc::new(keys),
                            sorted_after: true,
                        }
                    })
                    .collect(),
            })
            .filter(|p| !p.keys.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(names: &[&str]) -> Vec<u128> {
        let mut k: Vec<u128> = names.iter().map(|id| id_key(id)).collect();
        k.sort_unstable();
        k
    }

    fn sent(order: &SendOrder, ids: &[&str]) -> Vec<String> {
        let mut records: Vec<Record> = ids.iter().map(|id| Record::with_id(id)).collect();
        order.sort(&mut records);
        records.into_iter().map(|r| r.id).collect()
    }

    #[test]
    fn stale_copies_go_first_then_new_records_then_resends_each_in_source_order() {
        let ids = ["new-1", "stale-1", "resend-1", "new-2", "stale-2"];
        let order = SendOrder::new(&sorted(&ids), sorted(&["stale-1", "stale-2"]), sorted(&["resend-1"]));
        assert_eq!(sent(&order, &ids), ["stale-1", "stale-2", "new-1", "new-2", "resend-1"]);
        let before: Vec<usize> = order.phases(false).iter().map(|p| p.keys.len()).collect();
        assert_eq!(before, [2, 2], "stale, then new, before the deletes");
        let after: Vec<usize> = order.phases(true).iter().map(|p| p.keys.len()).collect();
        assert_eq!(after, [1], "resends after them");
        assert!(order.is_resend(&Record::with_id("resend-1")) && !order.is_resend(&Record::with_id("new-1")));
        assert_eq!(
            SendOrder::new(&sorted(&["a"]), vec![], vec![]).phases(false).len(),
            1,
            "empty groups are no read"
        );
    }

    #[test]
    fn a_priority_orders_within_each_group_with_nulls_last() {
        let ids = ["new-1", "stale-1", "new-2", "stale-2", "new-3", "gone"];
        let order = SendOrder::new(&sorted(&ids[..5]), sorted(&["stale-1", "stale-2"]), vec![]);
        let values = [Some(1), Some(5), None, Some(9), Some(7), Some(100)];
        let priorities: Vec<(u128, Option<i64>)> = ids.iter().map(|id| id_key(id)).zip(values).collect();
        let order = order.with_priority(&priorities, SortOrder::Desc);
        assert_eq!(sent(&order, &ids[..5]), ["stale-2", "stale-1", "new-3", "new-1", "new-2"]);
        let phases = order.phases(false);
        assert!(phases.iter().all(|p| p.sorted_after), "a band's records are sorted once read");
        assert_eq!(phases.iter().map(|p| p.keys.len()).collect::<Vec<_>>(), [2, 3]);
    }

    #[test]
    fn a_group_bigger_than_a_band_is_read_in_bands_of_the_next_in_priority() {
        let ids: Vec<String> = (0..PRIORITY_BAND + 10).map(|i| format!("u{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let order = SendOrder::new(&sorted(&refs), vec![], vec![]);
        // The last rows have the highest values: they make the first band.
        let priorities: Vec<(u128, Option<i64>)> = refs.iter().enumerate().map(|(i, id)| (id_key(id), Some(i as i64))).collect();
        let order = order.with_priority(&priorities, SortOrder::Desc);
        let phases = order.phases(false);
        assert_eq!(phases.len(), 2);
        assert_eq!(phases[1].keys.len(), 10);
        let last = id_key(&ids[PRIORITY_BAND + 9]);
        assert!(phases[0].keys.binary_search(&last).is_ok(), "the highest values are read first");
        assert!(phases[1].keys.binary_search(&id_key("u0")).is_ok());
    }
}
