//! [`SeqMap`]: requests waiting for an answer, under the consecutive numbers they were given.

use std::collections::{BTreeMap, VecDeque};

/// How many numbers the deque spans at most: a value older than that (one request stuck
/// while thousands after it were answered) moves to a B-tree, so the empty slots behind it
/// cannot pile up.
const WINDOW_SLOTS_MAX: usize = 4096;

/// Values under consecutive sequence numbers, inserted in increasing order and removed in any
/// order. The recent ones sit in a deque from the oldest number still held: insert, look-up
/// and removal are O(1) without an allocation per value, where a B-tree cost a search, a node
/// insert and a node removal for every request (4% of a leader's CPU under a pipelined read
/// load). A value removed out of order leaves an empty slot until the values before it go;
/// the deque spans at most [`WINDOW_SLOTS_MAX`] numbers, and older values wait in a B-tree.
#[derive(Debug)]
pub(super) struct SeqMap<V> {
    /// Values below `first`, which outstayed the window.
    old: BTreeMap<u64, V>,
    /// The number of `slots[0]`.
    first: u64,
    slots: VecDeque<Option<V>>,
    len: usize,
    window_slots_max: usize,
}

impl<V> Default for SeqMap<V> {
    fn default() -> Self {
        SeqMap::with_window(WINDOW_SLOTS_MAX)
    }
}

impl<V> SeqMap<V> {
    fn with_window(window_slots_max: usize) -> Self {
        assert!(window_slots_max > 0);
        SeqMap {
            old: BTreeMap::new(),
            first: 0,
            slots: VecDeque::new(),
            len: 0,
            window_slots_max,
        }
    }

    /// Adds `value` under `seq`, which must be above every number inserted before.
    pub fn insert(&mut self, seq: u64, value: V) {
        if self.slots.is_empty() {
            assert!(
                self.old
                    .last_key_value()
                    .is_none_or(|(last, _)| *last < seq),
                "sequence number {seq} inserted after a higher one"
            );
            self.first = seq;
        }
        let end = self.first + self.slots.len() as u64;
        assert!(seq >= end, "sequence number {seq} inserted after {end}");
        for _ in end..seq {
            self.slots.push_back(None);
        }
        self.slots.push_back(Some(value));
        self.len += 1;
        while self.slots.len() > self.window_slots_max {
            if let Some(value) = self.slots.pop_front().unwrap() {
                self.old.insert(self.first, value);
            }
            self.first += 1;
            self.drop_leading_empty_slots();
        }
    }

    fn drop_leading_empty_slots(&mut self) {
        while self.slots.front().is_some_and(Option::is_none) {
            self.slots.pop_front();
            self.first += 1;
        }
    }

    fn slot(&self, seq: u64) -> Option<usize> {
        let at = seq.checked_sub(self.first)?;
        (at < self.slots.len() as u64).then_some(at as usize)
    }

    pub fn get_mut(&mut self, seq: u64) -> Option<&mut V> {
        match self.slot(seq) {
            Some(at) => self.slots[at].as_mut(),
            None => self.old.get_mut(&seq),
        }
    }

    pub fn contains_key(&self, seq: u64) -> bool {
        match self.slot(seq) {
            Some(at) => self.slots[at].is_some(),
            None => self.old.contains_key(&seq),
        }
    }

    pub fn remove(&mut self, seq: u64) -> Option<V> {
        let value = match self.slot(seq) {
            Some(at) => {
                let value = self.slots[at].take()?;
                self.drop_leading_empty_slots();
                value
            }
            None => self.old.remove(&seq)?,
        };
        self.len -= 1;
        Some(value)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Every value with its number, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        let first = self.first;
        let recent = self
            .slots
            .iter()
            .enumerate()
            .filter_map(move |(at, slot)| Some((first + at as u64, slot.as_ref()?)));
        self.old.iter().map(|(seq, v)| (*seq, v)).chain(recent)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.old.values().chain(self.slots.iter().flatten())
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.old.values_mut().chain(self.slots.iter_mut().flatten())
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
    fn a_stuck_value_moves_out_of_the_window_instead_of_holding_empty_slots() {
        let mut map = SeqMap::default();
        map.insert(1, 1);
        for seq in 2..100_000 {
            map.insert(seq, seq);
            assert_eq!(map.remove(seq), Some(seq));
        }
        assert!(map.slots.len() <= super::WINDOW_SLOTS_MAX);
        assert_eq!(map.iter().collect::<Vec<_>>(), vec![(1, &1)]);
        assert_eq!(map.remove(1), Some(1));
        assert_eq!(map.len(), 0);
    }

    #[test]
    #[should_panic(expected = "inserted after")]
    fn numbers_only_grow() {
        let mut map = SeqMap::default();
        map.insert(3, ());
        map.insert(3, ());
    }

    proptest! {
        /// Any mix of increasing inserts and removals leaves what a B-tree map would, with
        /// windows small enough that values move out of them.
        #[test]
        fn behaves_as_an_ordered_map(
            window in 1usize..6,
            ops in proptest::collection::vec((any::<bool>(), 0u64..4, 0u64..40), 1..200),
        ) {
            let mut map = SeqMap::with_window(window);
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
                    prop_assert_eq!(map.contains_key(seq), false);
                }
                prop_assert!(map.slots.len() <= window);
                prop_assert_eq!(map.len(), model.len());
                let ours: Vec<(u64, u64)> = map.iter().map(|(k, v)| (k, *v)).collect();
                let theirs: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(ours, theirs);
                let values: Vec<u64> = map.values().copied().collect();
                prop_assert_eq!(values, model.values().copied().collect::<Vec<_>>());
                if let Some((&seq, _)) = model.iter().next() {
                    prop_assert_eq!(map.get_mut(seq).copied(), Some(seq));
                }
            }
        }
    }
}
