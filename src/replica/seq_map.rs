//! [`SeqMap`]: requests waiting for an answer, under the consecutive numbers they were given.

use std::collections::VecDeque;

/// Values under consecutive sequence numbers, inserted in increasing order and removed in any
/// order. A deque from the oldest number still held: insert, look-up and removal are O(1)
/// without an allocation per value, where a B-tree cost a search, a node insert and a node
/// removal for every request (4% of a leader's CPU under a pipelined read load). A value
/// removed out of order leaves an empty slot until the values before it go; every request
/// has a deadline, so the slots held are bounded by the requests of one timeout.
#[derive(Debug)]
pub(super) struct SeqMap<V> {
    /// The number of `slots[0]`.
    first: u64,
    slots: VecDeque<Option<V>>,
    len: usize,
}

impl<V> Default for SeqMap<V> {
    fn default() -> Self {
        SeqMap {
            first: 0,
            slots: VecDeque::new(),
            len: 0,
        }
    }
}

impl<V> SeqMap<V> {
    /// Adds `value` under `seq`, which must be above every number inserted before.
    pub fn insert(&mut self, seq: u64, value: V) {
        if self.slots.is_empty() {
            self.first = seq;
        }
        let end = self.first + self.slots.len() as u64;
        assert!(seq >= end, "sequence number {seq} inserted after {end}");
        for _ in end..seq {
            self.slots.push_back(None);
        }
        self.slots.push_back(Some(value));
        self.len += 1;
    }

    fn slot(&self, seq: u64) -> Option<usize> {
        let at = seq.checked_sub(self.first)?;
        (at < self.slots.len() as u64).then_some(at as usize)
    }

    pub fn get_mut(&mut self, seq: u64) -> Option<&mut V> {
        let at = self.slot(seq)?;
        self.slots[at].as_mut()
    }

    pub fn contains_key(&self, seq: u64) -> bool {
        self.slot(seq).is_some_and(|at| self.slots[at].is_some())
    }

    pub fn remove(&mut self, seq: u64) -> Option<V> {
        let at = self.slot(seq)?;
        let value = self.slots[at].take()?;
        self.len -= 1;
        while self.slots.front().is_some_and(Option::is_none) {
            self.slots.pop_front();
            self.first += 1;
        }
        Some(value)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Every value with its number, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        let first = self.first;
        self.slots
            .iter()
            .enumerate()
            .filter_map(move |(at, slot)| Some((first + at as u64, slot.as_ref()?)))
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().flatten()
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.slots.iter_mut().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::SeqMap;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn removal_out_of_order_keeps_the_rest_reachable_and_frees_the_front() {
        let mut map = SeqMap::default();
        for seq in 5..10 {
            map.insert(seq, seq * 10);
        }
        assert_eq!(map.remove(7), Some(70));
        assert_eq!(map.remove(7), None);
        assert_eq!(map.remove(5), Some(50));
        assert_eq!(map.remove(6), Some(60));
        assert_eq!(map.slots.len(), 2, "the slots before 8 are gone");
        assert_eq!(map.iter().collect::<Vec<_>>(), vec![(8, &80), (9, &90)]);
        map.insert(12, 120);
        assert!(!map.contains_key(10) && !map.contains_key(4) && map.contains_key(12));
        assert_eq!(map.len(), 3);
    }

    #[test]
    #[should_panic(expected = "inserted after")]
    fn numbers_only_grow() {
        let mut map = SeqMap::default();
        map.insert(3, ());
        map.insert(3, ());
    }

    proptest! {
        /// Any mix of increasing inserts and removals leaves what a B-tree map would.
        #[test]
        fn behaves_as_an_ordered_map(ops in proptest::collection::vec((any::<bool>(), 0u64..4, 0u64..40), 1..200)) {
            let mut map = SeqMap::default();
            let mut model = BTreeMap::new();
            let mut next = 1;
            for (insert, gap, pick) in ops {
                if insert {
                    next += gap;
                    map.insert(next, next);
                    model.insert(next, next);
                    next += 1;
                } else {
                    let seq = next.saturating_sub(pick);
                    prop_assert_eq!(map.remove(seq), model.remove(&seq));
                }
                prop_assert_eq!(map.len(), model.len());
                let ours: Vec<(u64, u64)> = map.iter().map(|(k, v)| (k, *v)).collect();
                let theirs: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(ours, theirs);
            }
        }
    }
}
