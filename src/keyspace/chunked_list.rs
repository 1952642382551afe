//! [`ChunkedList`]: what a list value is. A sequence of chunks of at most [`CHUNK_LEN`]
//! elements, every chunk full but the first and the last, so that:
//! - pushing and popping at either end is O(1) and moves no element, only (rarely) the chunks'
//!   headers, a 128th of the list. A single `VecDeque` doubles instead: at a million elements
//!   one push copied 32 MB and faulted in 64 MB, a stall every client waited out (LPUSH -P 16
//!   on a growing list, worst latency 22-156 ms in four rounds of 300,000, 13-22 ms chunked);
//! - an element's place is found in O(1): the first chunk may be short, the others are not;
//! - an insertion in the middle moves one element per later chunk.
//!
//! Redis's quicklist makes the same trade.

use bytes::Bytes;
use std::collections::VecDeque;

/// Elements per chunk: 4 KiB of element handles.
pub const CHUNK_LEN: usize = 128;

#[derive(Clone, Debug, Default)]
pub struct ChunkedList {
    /// Never an empty chunk; all but the first and the last hold exactly `CHUNK_LEN`.
    chunks: VecDeque<VecDeque<Bytes>>,
    len: usize,
}

impl PartialEq for ChunkedList {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl ChunkedList {
    pub fn new() -> ChunkedList {
        ChunkedList::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push_front(&mut self, item: Bytes) {
        self.reserve_first_chunk();
        if self.chunks.front().is_none_or(|c| c.len() == CHUNK_LEN) {
            self.chunks.push_front(self.new_chunk());
        }
        self.chunks[0].push_front(item);
        self.len += 1;
    }

    pub fn push_back(&mut self, item: Bytes) {
        self.reserve_first_chunk();
        if self.chunks.back().is_none_or(|c| c.len() == CHUNK_LEN) {
            self.chunks.push_back(self.new_chunk());
        }
        self.chunks.back_mut().unwrap().push_back(item);
        self.len += 1;
    }

    /// A short list has one chunk: room for one header, not the four a `VecDeque` starts with.
    fn reserve_first_chunk(&mut self) {
        if self.chunks.capacity() == 0 {
            self.chunks.reserve_exact(1);
        }
    }

    /// A chunk for a new end: grown on demand while the list is small (a short list costs
    /// what it holds), full-sized at once when the list already filled one.
    fn new_chunk(&self) -> VecDeque<Bytes> {
        if self.len >= CHUNK_LEN {
            VecDeque::with_capacity(CHUNK_LEN)
        } else {
            VecDeque::new()
        }
    }

    pub fn pop_front(&mut self) -> Option<Bytes> {
        let first = self.chunks.front_mut()?;
        let item = first.pop_front();
        if first.is_empty() {
            self.chunks.pop_front();
        }
        self.len -= 1;
        item
    }

    pub fn pop_back(&mut self) -> Option<Bytes> {
        let last = self.chunks.back_mut()?;
        let item = last.pop_back();
        if last.is_empty() {
            self.chunks.pop_back();
        }
        self.len -= 1;
        item
    }

    /// The chunk and the place in it of element `index` (`< len`).
    fn locate(&self, index: usize) -> (usize, usize) {
        debug_assert!(index < self.len, "index {index} of {}", self.len);
        let first = self.chunks[0].len();
        if index < first {
            (0, index)
        } else {
            let rest = index - first;
            (1 + rest / CHUNK_LEN, rest % CHUNK_LEN)
        }
    }

    pub fn get(&self, index: usize) -> Option<&Bytes> {
        (index < self.len).then(|| {
            let (chunk, at) = self.locate(index);
            &self.chunks[chunk][at]
        })
    }

    pub fn get_mut(&mut self, index: usize) -> Option<&mut Bytes> {
        (index < self.len).then(|| {
            let (chunk, at) = self.locate(index);
            &mut self.chunks[chunk][at]
        })
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Bytes> {
        self.chunks.iter().flatten()
    }

    /// Elements `from..=to` (both `< len`).
    pub fn range(&self, from: usize, to: usize) -> impl Iterator<Item = &Bytes> {
        (from..=to).map(|i| &self[i])
    }

    /// Inserts `item` so that it becomes element `index` (`<= len`).
    pub fn insert(&mut self, index: usize, item: Bytes) {
        assert!(index <= self.len, "insert at {index} of {}", self.len);
        if index == 0 {
            return self.push_front(item);
        }
        if index == self.len {
            return self.push_back(item);
        }
        let (mut chunk, at) = self.locate(index);
        self.chunks[chunk].insert(at, item);
        self.len += 1;
        // Carry the overflow towards the back, one element per chunk.
        while self.chunks[chunk].len() > CHUNK_LEN {
            let moved = self.chunks[chunk].pop_back().unwrap();
            if chunk + 1 == self.chunks.len() {
                self.chunks.push_back(VecDeque::new());
            }
            self.chunks[chunk + 1].push_front(moved);
            chunk += 1;
        }
    }

    /// Keeps the elements `keep` says yes to, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&Bytes) -> bool) {
        let old = std::mem::take(self);
        for item in old.chunks.into_iter().flatten() {
            if keep(&item) {
                self.push_back(item);
            }
        }
    }

    pub fn clear(&mut self) {
        *self = ChunkedList::new();
    }

    /// Keeps the first `len` elements.
    pub fn truncate(&mut self, len: usize) {
        while self.len > len {
            let last = self.chunks.back_mut().unwrap();
            let excess = self.len - len;
            if last.len() <= excess {
                self.len -= last.len();
                self.chunks.pop_back();
            } else {
                last.truncate(last.len() - excess);
                self.len = len;
            }
        }
    }

    /// Drops the first `count` elements (all of them if there are fewer).
    pub fn remove_front(&mut self, count: usize) {
        let mut left = count.min(self.len);
        while left > 0 {
            let first = self.chunks.front_mut().unwrap();
            if first.len() <= left {
                left -= first.len();
                self.len -= first.len();
                self.chunks.pop_front();
            } else {
                first.drain(..left);
                self.len -= left;
                left = 0;
            }
        }
    }

    /// The layout's invariant, for tests.
    #[cfg(test)]
    fn check(&self) {
        let chunks = self.chunks.len();
        for (i, chunk) in self.chunks.iter().enumerate() {
            assert!(!chunk.is_empty(), "chunk {i} is empty");
            assert!(chunk.len() <= CHUNK_LEN, "chunk {i} holds {}", chunk.len());
            if i > 0 && i + 1 < chunks {
                assert_eq!(chunk.len(), CHUNK_LEN, "inner chunk {i} is not full");
            }
        }
        assert_eq!(
            self.chunks.iter().map(VecDeque::len).sum::<usize>(),
            self.len
        );
    }
}

impl std::ops::Index<usize> for ChunkedList {
    type Output = Bytes;
    fn index(&self, index: usize) -> &Bytes {
        self.get(index)
            .unwrap_or_else(|| panic!("index {index} of a list of {}", self.len))
    }
}

impl std::ops::IndexMut<usize> for ChunkedList {
    fn index_mut(&mut self, index: usize) -> &mut Bytes {
        let len = self.len;
        self.get_mut(index)
            .unwrap_or_else(|| panic!("index {index} of a list of {len}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        PushFront,
        PushBack,
        PopFront,
        PopBack,
        Insert(usize),
        Set(usize),
        Retain(u8),
        Truncate(usize),
        RemoveFront(usize),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => Just(Op::PushFront),
            6 => Just(Op::PushBack),
            3 => Just(Op::PopFront),
            3 => Just(Op::PopBack),
            3 => any::<usize>().prop_map(Op::Insert),
            2 => any::<usize>().prop_map(Op::Set),
            1 => any::<u8>().prop_map(Op::Retain),
            1 => any::<usize>().prop_map(Op::Truncate),
            1 => any::<usize>().prop_map(Op::RemoveFront),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        /// Every operation does to the list what it does to a `VecDeque`, and every chunk but
        /// the ends stays full (so indexing stays O(1)).
        #[test]
        fn behaves_like_a_vecdeque(
            ops in proptest::collection::vec((op(), 1usize..400), 1..60)
        ) {
            let mut ours = ChunkedList::new();
            let mut model: VecDeque<Bytes> = VecDeque::new();
            let mut next = 0u64;
            for (op, repeat) in ops {
                // The ends and single places are exercised in runs; the whole-list
                // operations once.
                let single_place = matches!(
                    op,
                    Op::PushFront | Op::PushBack | Op::PopFront | Op::PopBack | Op::Insert(_) | Op::Set(_)
                );
                for _ in 0..if single_place { repeat } else { 1 } {
                    next += 1;
                    let item = Bytes::from(next.to_string());
                    match &op {
                        Op::PushFront => {
                            ours.push_front(item.clone());
                            model.push_front(item);
                        }
                        Op::PushBack => {
                            ours.push_back(item.clone());
                            model.push_back(item);
                        }
                        Op::PopFront => prop_assert_eq!(ours.pop_front(), model.pop_front()),
                        Op::PopBack => prop_assert_eq!(ours.pop_back(), model.pop_back()),
                        Op::Insert(at) => {
                            let at = at % (model.len() + 1);
                            ours.insert(at, item.clone());
                            model.insert(at, item);
                        }
                        Op::Set(at) if !model.is_empty() => {
                            let at = at % model.len();
                            ours[at] = item.clone();
                            model[at] = item;
                        }
                        Op::Set(_) => {}
                        Op::Retain(modulus) => {
                            let modulus = u64::from(*modulus % 7 + 2);
                            let keep = |b: &Bytes| {
                                std::str::from_utf8(b).unwrap().parse::<u64>().unwrap() % modulus != 0
                            };
                            ours.retain(keep);
                            model.retain(keep);
                        }
                        Op::Truncate(len) => {
                            let len = len % (model.len() + 1);
                            ours.truncate(len);
                            model.truncate(len);
                        }
                        Op::RemoveFront(count) => {
                            let count = count % (model.len() + 2);
                            ours.remove_front(count);
                            model.drain(..count.min(model.len()));
                        }
                        Op::Clear => {
                            ours.clear();
                            model.clear();
                        }
                    }
                }
                ours.check();
                prop_assert_eq!(ours.len(), model.len());
                prop_assert!(ours.iter().eq(model.iter()));
                prop_assert!(ours.iter().rev().eq(model.iter().rev()));
                for i in (0..model.len()).step_by(37) {
                    prop_assert_eq!(&ours[i], &model[i]);
                }
                if !model.is_empty() {
                    let (from, to) = (model.len() / 3, model.len() - 1);
                    prop_assert!(ours.range(from, to).eq(model.range(from..=to)));
                }
                prop_assert_eq!(ours.get(model.len()), None);
            }
        }
    }
}
