//! Entries read back from the WAL for a follower that lacks what the log in memory dropped:
//! one piece of the gap at a time, sent from here, so that a follower far behind costs the
//! leader a piece of memory while it catches up, not its whole gap.

use crate::log::LogEntry;
use std::collections::VecDeque;
use std::sync::Arc;

/// A window of the log before the log in memory: the entries after `prev_index`.
#[derive(Debug)]
pub(super) struct CatchUpWindow {
    /// The entry before the first one held, and its term.
    prev_index: u64,
    prev_term: u64,
    entries: VecDeque<Arc<LogEntry>>,
    /// What the entries hold, by [`LogEntry::memory_bytes`].
    bytes: usize,
}

impl CatchUpWindow {
    /// `entries` run from `prev_index + 1` on, one index after another.
    pub fn new(prev_index: u64, prev_term: u64, entries: Vec<Arc<LogEntry>>) -> Self {
        for (entry, index) in entries.iter().zip(prev_index + 1..) {
            assert_eq!(entry.index, index, "a window is contiguous");
        }
        let bytes = entries.iter().map(|e| e.memory_bytes()).sum();
        CatchUpWindow {
            prev_index,
            prev_term,
            entries: entries.into(),
            bytes,
        }
    }

    pub fn last_index(&self) -> u64 {
        self.prev_index + self.entries.len() as u64
    }

    /// Whether it holds entries after `index`, and the term of `index` (for an append that
    /// starts after it).
    pub fn covers(&self, index: u64) -> bool {
        index >= self.prev_index && index < self.last_index()
    }

    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.prev_index {
            return Some(self.prev_term);
        }
        let position = index.checked_sub(self.prev_index + 1)?;
        self.entries.get(position as usize).map(|e| e.term)
    }

    /// Entries `from..=to`, both held.
    pub fn slice(&self, from: u64, to: u64) -> Vec<Arc<LogEntry>> {
        assert!(
            from > self.prev_index && to <= self.last_index(),
            "a slice of what the window holds"
        );
        let start = (from - self.prev_index - 1) as usize;
        let end = (to - self.prev_index) as usize;
        self.entries.range(start..end).cloned().collect()
    }

    /// Lets go of the entries up to `index` (every follower that needed them holds them).
    pub fn release_to(&mut self, index: u64) {
        while self.prev_index < index
            && let Some(entry) = self.entries.pop_front()
        {
            self.bytes -= entry.memory_bytes();
            self.prev_index = entry.index;
            self.prev_term = entry.term;
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::EntryPayload;

    fn noops(terms: &[(u64, u64)]) -> Vec<Arc<LogEntry>> {
        terms
            .iter()
            .map(|&(index, term)| {
                Arc::new(LogEntry {
                    index,
                    term,
                    ts_ms: 0,
                    origin: None,
                    payload: Arc::new(EntryPayload::Noop),
                })
            })
            .collect()
    }

    #[test]
    fn a_window_serves_appends_after_its_entries_and_lets_go_of_the_front() {
        let mut window = CatchUpWindow::new(4, 1, noops(&[(5, 1), (6, 2), (7, 2)]));
        assert!(!window.covers(3), "before the window");
        assert!(window.covers(4) && window.covers(6));
        assert!(!window.covers(7), "nothing after the last entry");
        assert_eq!(
            (window.term_at(4), window.term_at(6), window.term_at(8)),
            (Some(1), Some(2), None)
        );
        assert_eq!(
            window
                .slice(6, 7)
                .iter()
                .map(|e| e.index)
                .collect::<Vec<_>>(),
            vec![6, 7]
        );
        let one = window.bytes() / 3;
        window.release_to(5);
        assert_eq!((window.term_at(5), window.bytes()), (Some(1), 2 * one));
        assert!(!window.covers(4) && window.covers(5));
        window.release_to(9);
        assert_eq!((window.last_index(), window.bytes()), (7, 0));
        assert!(!window.covers(7));
    }
}
