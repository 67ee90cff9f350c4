//! The order pass 2 sends a run's records in: first the stale copies (records the destination
//! holds that changed in the source: what people notice), then new records, then resends (the
//! records `--full` sends again as they are). Within each group, source order. With a time box
//! (`max_run:`), a long backfill then never keeps a changed record waiting behind new ones.

use std::sync::Arc;

use crate::hash::id_key;
use crate::record::Record;

/// The keys of the records to send, by group, each sorted.
#[derive(Debug, Default)]
pub(super) struct SendOrder {
    groups: [Arc<Vec<u128>>; 3],
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
        }
    }

    fn group(&self, key: u128) -> usize {
        self.groups
            .iter()
            .position(|g| g.binary_search(&key).is_ok())
            .unwrap_or(self.groups.len())
    }

    /// Records kept in memory, in sending order; stable, so source order holds within a group.
    pub fn sort(&self, records: &mut [Record]) {
        records.sort_by_cached_key(|r| self.group(id_key(&r.id)));
    }

    /// The groups with records, in sending order: a read of the source again takes one group a
    /// read, so that no group waits for a later one's rows.
    pub fn phases(&self) -> Vec<Arc<Vec<u128>>> {
        self.groups.iter().filter(|g| !g.is_empty()).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_copies_go_first_then_new_records_then_resends_each_in_source_order() {
        let ids = ["new-1", "stale-1", "resend-1", "new-2", "stale-2"];
        let mut keys: Vec<u128> = ids.iter().map(|id| id_key(id)).collect();
        keys.sort_unstable();
        let sorted = |names: &[&str]| {
            let mut k: Vec<u128> = names.iter().map(|id| id_key(id)).collect();
            k.sort_unstable();
            k
        };
        let order = SendOrder::new(&keys, sorted(&["stale-1", "stale-2"]), sorted(&["resend-1"]));
        let mut records: Vec<Record> = ids.iter().map(|id| Record::with_id(id)).collect();
        order.sort(&mut records);
        let got: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(got, ["stale-1", "stale-2", "new-1", "new-2", "resend-1"]);
        let phases: Vec<usize> = order.phases().iter().map(|p| p.len()).collect();
        assert_eq!(phases, [2, 2, 1]);
        assert_eq!(
            SendOrder::new(&sorted(&["a"]), vec![], vec![]).phases().len(),
            1,
            "empty groups are no read"
        );
    }
}
