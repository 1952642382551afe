//! The replica's log in memory: entries after a compacted prefix, with their terms.

use crate::log::LogEntry;
use std::collections::VecDeque;
use std::sync::Arc;

#[derive(Default)]
pub struct RaftLog {
    /// The index of the last entry dropped from memory (0: none). Only applied entries are
    /// dropped (see `Replica::compact_log` for which).
    compacted_index: u64,
    compacted_term: u64,
    entries: VecDeque<Arc<LogEntry>>,
    /// What the entries in memory hold, by [`LogEntry::memory_bytes`].
    bytes: usize,
}

impl RaftLog {
    pub fn last_index(&self) -> u64 {
        self.compacted_index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> u64 {
        self.entries
            .back()
            .map_or(self.compacted_term, |entry| entry.term)
    }

    pub fn first_index(&self) -> u64 {
        self.compacted_index + 1
    }

    /// The term of the entry at `index`: 0 for index 0, `None` past the end or compacted.
    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.compacted_index {
            return Some(self.compacted_term);
        }
        self.get(index).map(|entry| entry.term)
    }

    pub fn get(&self, index: u64) -> Option<&Arc<LogEntry>> {
        if index <= self.compacted_index {
            return None;
        }
        self.entries
            .get((index - self.compacted_index - 1) as usize)
    }

    pub fn push(&mut self, entry: Arc<LogEntry>) {
        assert_eq!(entry.index, self.last_index() + 1, "the log grows by one");
        assert!(entry.term >= self.last_term(), "terms never decrease");
        self.bytes += entry.memory_bytes();
        self.entries.push_back(entry);
    }

    /// Drops every entry from `index` on (a conflicting suffix, or appends taken back).
    pub fn truncate_from(&mut self, index: u64) {
        assert!(
            index > self.compacted_index,
            "compacted entries are applied"
        );
        let keep = (index - self.compacted_index - 1) as usize;
        for entry in self.entries.range(keep.min(self.entries.len())..) {
            self.bytes -= entry.memory_bytes();
        }
        self.entries.truncate(keep);
    }

    /// Entries `from..=to`, clones of the shared pointers.
    pub fn slice(&self, from: u64, to: u64) -> Vec<Arc<LogEntry>> {
        (from..=to).filter_map(|i| self.get(i).cloned()).collect()
    }

    /// Forgets entries up to `index` (they are applied everywhere they are needed).
    pub fn compact_to(&mut self, index: u64) {
        while self.compacted_index < index && self.pop_front() {}
    }

    /// Forgets the oldest entries, never past `index`, until the rest hold at most
    /// `bytes_max`.
    pub fn compact_to_fit(&mut self, index: u64, bytes_max: usize) {
        while self.bytes > bytes_max && self.compacted_index < index && self.pop_front() {}
    }

    fn pop_front(&mut self) -> bool {
        let Some(entry) = self.entries.pop_front() else {
            return false;
        };
        self.bytes -= entry.memory_bytes();
        self.compacted_index = entry.index;
        self.compacted_term = entry.term;
        true
    }

    /// About how much memory the entries in memory take (see [`LogEntry::memory_bytes`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The last entry dropped from memory (0: none).
    pub fn compacted_index(&self) -> u64 {
        self.compacted_index
    }

    /// The first index of the term of the entry at `index` (for fast back-off).
    pub fn first_index_of_term_at(&self, index: u64) -> u64 {
        let Some(term) = self.term_at(index) else {
            return index;
        };
        let mut first = index;
        while first > self.first_index() && self.term_at(first - 1) == Some(term) {
            first -= 1;
        }
        first
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Arc<LogEntry>> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::EntryPayload;

    fn log_of_terms(terms: &[u64]) -> RaftLog {
        let mut log = RaftLog::default();
        for (i, &term) in terms.iter().enumerate() {
            log.push(Arc::new(LogEntry {
                index: i as u64 + 1,
                term,
                ts_ms: 0,
                origin: None,
                payload: std::sync::Arc::new(EntryPayload::Noop),
            }));
        }
        log
    }

    #[test]
    fn the_back_off_hint_is_the_first_index_of_the_conflicting_term() {
        let log = log_of_terms(&[1, 1, 2, 2, 2, 4]);
        assert_eq!(log.first_index_of_term_at(5), 3);
        assert_eq!(log.first_index_of_term_at(2), 1);
        assert_eq!(log.first_index_of_term_at(6), 6);
        assert_eq!(log.term_at(0), Some(0));
        assert_eq!(log.term_at(7), None);
    }

    #[test]
    fn truncation_and_compaction_keep_indexes() {
        let mut log = log_of_terms(&[1, 1, 2, 2]);
        log.truncate_from(3);
        assert_eq!((log.last_index(), log.last_term()), (2, 1));
        log.compact_to(1);
        assert_eq!(log.first_index(), 2);
        assert_eq!(
            log.term_at(1),
            Some(1),
            "the compacted entry's term is kept"
        );
        assert!(log.get(1).is_none());
        assert_eq!(log.slice(2, 2).len(), 1);
        assert_eq!(
            log.first_index_of_term_at(2),
            2,
            "never before what is held"
        );
    }

    /// A log whose entry `i` (from 1) is a SET with a value of `sizes[i - 1]` bytes.
    fn log_of_sizes(sizes: &[usize]) -> RaftLog {
        let mut log = RaftLog::default();
        for (i, &size) in sizes.iter().enumerate() {
            log.push(Arc::new(LogEntry {
                index: i as u64 + 1,
                term: 1,
                ts_ms: 0,
                origin: None,
                payload: std::sync::Arc::new(EntryPayload::Command {
                    db: 0,
                    argv: vec![
                        bytes::Bytes::from_static(b"SET"),
                        bytes::Bytes::from(format!("k{i}")),
                        bytes::Bytes::from(vec![b'v'; size]),
                    ],
                }),
            }));
        }
        log
    }

    fn counted(log: &RaftLog) -> usize {
        log.iter().map(|e| e.memory_bytes()).sum()
    }

    #[test]
    fn the_bytes_held_follow_every_change_and_the_bound_drops_the_oldest_first() {
        let sizes = [10, 1000, 20, 3000, 5, 400, 70];
        let mut log = log_of_sizes(&sizes);
        assert_eq!(log.bytes(), counted(&log));
        assert!(log.get(2).unwrap().memory_bytes() > 1000);
        log.truncate_from(7);
        assert_eq!((log.bytes(), log.last_index()), (counted(&log), 6));
        log.compact_to(1);
        assert_eq!(log.bytes(), counted(&log));
        // Never past the limit index, however far over the bound.
        log.compact_to_fit(2, 0);
        assert_eq!(log.compacted_index(), 2);
        assert_eq!(log.bytes(), counted(&log));
        // Oldest first, only as far as the bound needs: dropping entry 3 is not enough,
        // dropping entry 4 (3000 bytes of value) is.
        let bound = counted(&log) - log.get(3).unwrap().memory_bytes() - 1;
        log.compact_to_fit(6, bound);
        assert_eq!(log.compacted_index(), 4);
        assert!(log.bytes() <= bound);
        assert_eq!(log.bytes(), counted(&log));
        // Already under the bound: nothing goes.
        log.compact_to_fit(6, bound);
        assert_eq!(log.compacted_index(), 4);
    }
}
