//! [`HashOrderedMap`]: a map from byte strings ordered by a fixed hash of the key.
//!
//! Why not a plain `HashMap`: iteration order must be the same on every replica and in every
//! run (KEYS, SCAN, SPOP and the keyspace digest depend on it), and SCAN needs an integer cursor
//! that survives inserts and deletes between calls. Ordering by a fixed 64-bit hash gives both:
//! the cursor is the next hash to visit, so an element present for the whole scan is returned at
//! least once whatever else changes, as Redis promises.
//!
//! Layout: point lookups go through hash tables keyed by that hash (a shard's header, then one
//! or two cache misses, where a B-tree of 100k keys costs five levels of them); every ordered
//! walk goes through a B-tree set of the hashes. A hash table is walked only to split a shard,
//! which decides nothing but where entries sit in the new one, so its order cannot leak out.

use crate::rng::Rng;
use bytes::Bytes;
use std::collections::BTreeSet;
use std::collections::HashMap as PointIndex;
use std::hash::{BuildHasherDefault, Hasher};

/// The keys of the point index are already well-mixed hashes: use them as they are.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard<V> = PointIndex<u64, Bucket<V>, BuildHasherDefault<PassThrough>>;

/// Hashes per shard, on average, before one more shard is split off. Chosen for the table
/// sizes std's map picks (7/8 of a power of two): a shard waiting for its split holds up to
/// twice this, 14,000 of 16,384 slots, and each half after one at most 7,000 of 8,192.
/// (A quarter of it, 1,750, took 36% more memory for 1.5 million keys.)
const SHARD_HASHES_MAX: usize = 7000;

/// The lowest hash bit that chooses a shard: below it are the bits a shard's table places an
/// entry by, at the top the bits it tags groups with; every shard must see those vary.
const SHARD_BITS_FROM: u32 = 20;

/// The point index: hash tables (shards) chosen by hash bits, split one at a time as the map
/// grows (linear hashing). One table doubles all at once: at 1.5 million keys a write stopped
/// the event loop for 620-860 ms, longer than a follower waits before it calls an election.
/// A split moves half of one shard's entries, a few thousand.
#[derive(Clone, Debug)]
struct Buckets<V> {
    /// Shard 0, inline: a small map (most hashes and sets) allocates nothing more.
    first: Shard<V>,
    /// Shards 1 and up.
    more: Vec<Shard<V>>,
    /// Shards below `split` have been split at this `level`: they and those from
    /// `2^level` on are chosen by `level + 1` bits, the rest by `level` bits.
    level: u32,
    split: usize,
    /// Distinct hashes held (a bucket of colliding keys counts once).
    hashes: usize,
}

impl<V> Default for Buckets<V> {
    fn default() -> Self {
        Buckets {
            first: Shard::default(),
            more: Vec::new(),
            level: 0,
            split: 0,
            hashes: 0,
        }
    }
}

impl<V> Buckets<V> {
    fn shard_count(&self) -> usize {
        1 + self.more.len()
    }

    fn shard(&self, index: usize) -> &Shard<V> {
        match index {
            0 => &self.first,
            _ => &self.more[index - 1],
        }
    }

    fn shard_mut(&mut self, index: usize) -> &mut Shard<V> {
        match index {
            0 => &mut self.first,
            _ => &mut self.more[index - 1],
        }
    }

    fn shard_of(&self, hash: u64) -> usize {
        let bits = hash >> SHARD_BITS_FROM;
        let shard = (bits & ((1u64 << self.level) - 1)) as usize;
        if shard < self.split {
            (bits & ((1u64 << (self.level + 1)) - 1)) as usize
        } else {
            shard
        }
    }

    fn get(&self, hash: &u64) -> Option<&Bucket<V>> {
        self.shard(self.shard_of(*hash)).get(hash)
    }

    fn get_mut(&mut self, hash: &u64) -> Option<&mut Bucket<V>> {
        let shard = self.shard_of(*hash);
        self.shard_mut(shard).get_mut(hash)
    }

    fn entry(&mut self, hash: u64) -> std::collections::hash_map::Entry<'_, u64, Bucket<V>> {
        let shard = self.shard_of(hash);
        self.shard_mut(shard).entry(hash)
    }

    fn remove(&mut self, hash: &u64) -> Option<Bucket<V>> {
        let shard = self.shard_of(*hash);
        let removed = self.shard_mut(shard).remove(hash);
        self.hashes -= usize::from(removed.is_some());
        removed
    }

    /// After a new hash went in: split the next shard if the shards are full on average.
    fn added(&mut self) {
        self.hashes += 1;
        if self.hashes <= self.shard_count() * SHARD_HASHES_MAX
            || SHARD_BITS_FROM + self.level + 1 >= 57
        {
            return;
        }
        let high_bit = 1u64 << (SHARD_BITS_FROM + self.level);
        let mut new_shard = Shard::with_capacity_and_hasher(SHARD_HASHES_MAX, Default::default());
        let split = self.shard_mut(self.split);
        new_shard.extend(split.extract_if(|hash, _| hash & high_bit != 0));
        // Half the slots are empty now: give them back (a table of half the size).
        split.shrink_to_fit();
        self.more.push(new_shard);
        self.split += 1;
        if self.split == 1 << self.level {
            self.level += 1;
            self.split = 0;
        }
        debug_assert_eq!(self.shard_count(), (1 << self.level) + self.split);
    }
}

impl<V> std::ops::Index<&u64> for Buckets<V> {
    type Output = Bucket<V>;
    fn index(&self, hash: &u64) -> &Bucket<V> {
        self.get(hash).expect("a hash in the order is in the index")
    }
}

/// A fixed, seedless 64-bit hash (FNV-1a with a murmur3 finalizer for the low bits' sake).
///
/// Part of the state machine's definition: SPOP, SRANDMEMBER and RANDOMKEY pick by hash order,
/// and every start replays the WAL, so a different hash would make an old log replay to a
/// different state (and replicas of two versions disagree). Changing it needs a new WAL
/// format and peer protocol version.
pub fn hash_key(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Keys with the same hash: almost always exactly one.
#[derive(Clone, Debug, PartialEq)]
enum Bucket<V> {
    One(Bytes, V),
    Many(Vec<(Bytes, V)>),
}

#[derive(Clone, Debug)]
pub struct HashOrderedMap<V> {
    buckets: Buckets<V>,
    /// Every hash in `buckets`, in order: the only way entries are walked.
    order: BTreeSet<u64>,
    len: usize,
}

impl<V: PartialEq> PartialEq for HashOrderedMap<V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl<V> Default for HashOrderedMap<V> {
    fn default() -> Self {
        HashOrderedMap {
            buckets: Buckets::default(),
            order: BTreeSet::new(),
            len: 0,
        }
    }
}

impl<V> HashOrderedMap<V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, key: &[u8]) -> Option<&V> {
        match self.buckets.get(&hash_key(key))? {
            Bucket::One(k, v) => (k.as_ref() == key).then_some(v),
            Bucket::Many(items) => items
                .iter()
                .find(|(k, _)| k.as_ref() == key)
                .map(|(_, v)| v),
        }
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        match self.buckets.get_mut(&hash_key(key))? {
            Bucket::One(k, v) => (k.as_ref() == key).then_some(v),
            Bucket::Many(items) => items
                .iter_mut()
                .find(|(k, _)| k.as_ref() == key)
                .map(|(_, v)| v),
        }
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Inserts or replaces; returns the value that was there.
    pub fn insert(&mut self, key: Bytes, value: V) -> Option<V> {
        use std::collections::hash_map::Entry;
        let hash = hash_key(&key);
        match self.buckets.entry(hash) {
            Entry::Vacant(slot) => {
                slot.insert(Bucket::One(key, value));
                self.buckets.added();
                self.order.insert(hash);
                self.len += 1;
                None
            }
            Entry::Occupied(mut slot) => {
                let bucket = slot.get_mut();
                if let Bucket::One(k, v) = bucket {
                    if *k == key {
                        return Some(std::mem::replace(v, value));
                    }
                    let Bucket::One(k, v) = std::mem::replace(bucket, Bucket::Many(Vec::new()))
                    else {
                        unreachable!()
                    };
                    *bucket = Bucket::Many(vec![(k, v)]);
                }
                let Bucket::Many(items) = bucket else {
                    unreachable!()
                };
                if let Some((_, v)) = items.iter_mut().find(|(k, _)| *k == key) {
                    return Some(std::mem::replace(v, value));
                }
                items.push((key, value));
                self.len += 1;
                None
            }
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        let hash = hash_key(key);
        let bucket = self.buckets.get_mut(&hash)?;
        let removed = match bucket {
            Bucket::One(k, _) if k.as_ref() == key => {
                let Some(Bucket::One(_, v)) = self.buckets.remove(&hash) else {
                    unreachable!()
                };
                self.order.remove(&hash);
                Some(v)
            }
            Bucket::One(..) => None,
            Bucket::Many(items) => {
                let at = items.iter().position(|(k, _)| k.as_ref() == key)?;
                let (_, v) = items.remove(at);
                if items.is_empty() {
                    self.buckets.remove(&hash);
                    self.order.remove(&hash);
                }
                Some(v)
            }
        };
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Every entry, in hash order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &V)> {
        self.order
            .iter()
            .flat_map(|hash| bucket_items(&self.buckets[hash]))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Bytes> {
        self.iter().map(|(k, _)| k)
    }

    /// One SCAN step: entries from `cursor` on, at least `count` of them unless the map ends
    /// (never splitting a bucket), and the cursor to continue from (0 when done).
    pub fn scan(&self, cursor: u64, count: usize) -> (u64, Vec<(&Bytes, &V)>) {
        let mut found = Vec::new();
        let mut range = self.order.range(cursor..);
        for hash in range.by_ref() {
            found.extend(bucket_items(&self.buckets[hash]));
            if found.len() >= count {
                break;
            }
        }
        let next = range.next().copied().unwrap_or(0);
        (next, found)
    }

    /// A pseudo-random entry: the first at or after a random hash. Keys that follow a wide gap
    /// in hash space come up more often; Redis's own sampling is not uniform either.
    pub fn random(&self, rng: &mut Rng) -> Option<(&Bytes, &V)> {
        if self.is_empty() {
            return None;
        }
        let at = rng.next_u64();
        let hash = self
            .order
            .range(at..)
            .next()
            .or_else(|| self.order.iter().next())?;
        let items: Vec<_> = bucket_items(&self.buckets[hash]).collect();
        let pick = rng.below(items.len() as u64) as usize;
        Some(items[pick])
    }
}

fn bucket_items<V>(bucket: &Bucket<V>) -> Box<dyn Iterator<Item = (&Bytes, &V)> + '_> {
    match bucket {
        Bucket::One(k, v) => Box::new(std::iter::once((k, v))),
        Bucket::Many(items) => Box::new(items.iter().map(|(k, v)| (k, v))),
    }
}

impl<V> FromIterator<(Bytes, V)> for HashOrderedMap<V> {
    fn from_iter<I: IntoIterator<Item = (Bytes, V)>>(iter: I) -> Self {
        let mut map = HashOrderedMap::new();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn behaves_like_a_btreemap(ops in proptest::collection::vec((0u8..3, 0u8..40, any::<u16>()), 0..300)) {
            let mut ours = HashOrderedMap::new();
            let mut model = std::collections::BTreeMap::new();
            for (op, key, value) in ops {
                let key = Bytes::from(vec![key]);
                match op {
                    0 | 1 => prop_assert_eq!(ours.insert(key.clone(), value), model.insert(key, value)),
                    _ => prop_assert_eq!(ours.remove(&key), model.remove(&key)),
                }
                prop_assert_eq!(ours.len(), model.len());
            }
            for (k, v) in &model {
                prop_assert_eq!(ours.get(k), Some(v));
            }
            prop_assert_eq!(ours.iter().count(), model.len());
        }

        #[test]
        fn a_full_scan_returns_every_stable_element(keys in proptest::collection::btree_set(any::<u32>(), 0..200), count in 1usize..20) {
            let map: HashOrderedMap<()> = keys.iter().map(|k| (Bytes::from(k.to_be_bytes().to_vec()), ())).collect();
            let mut seen = std::collections::BTreeSet::new();
            let mut cursor = 0;
            loop {
                let (next, items) = map.scan(cursor, count);
                seen.extend(items.into_iter().map(|(k, _)| k.clone()));
                if next == 0 { break; }
                cursor = next;
            }
            prop_assert_eq!(seen.len(), keys.len());
        }
    }

    #[test]
    fn a_large_map_grows_shard_by_shard_and_finds_everything() {
        let mut map = HashOrderedMap::new();
        let count = 20 * SHARD_HASHES_MAX + 123;
        for i in 0..count {
            assert_eq!(map.insert(Bytes::from(format!("key:{i}")), i), None);
        }
        let shards = map.buckets.shard_count();
        // Split one at a time: never more shards than the hashes call for, nor fewer.
        assert_eq!(shards, count.div_ceil(SHARD_HASHES_MAX));
        let largest = (0..shards)
            .map(|i| map.buckets.shard(i).len())
            .max()
            .unwrap();
        assert!(largest <= 3 * SHARD_HASHES_MAX, "a shard of {largest}");
        for i in (0..count).step_by(7) {
            assert_eq!(map.get(format!("key:{i}").as_bytes()), Some(&i));
        }
        for i in (0..count).filter(|i| i % 3 == 0) {
            assert_eq!(map.remove(format!("key:{i}").as_bytes()), Some(i));
        }
        assert_eq!(map.len(), count - count.div_ceil(3));
        assert_eq!(map.iter().count(), map.len());
        let mut hashes: Vec<u64> = map.iter().map(|(k, _)| hash_key(k)).collect();
        assert!(hashes.is_sorted());
        hashes.dedup();
        assert_eq!(hashes.len(), map.len());
    }

    #[test]
    fn the_hash_is_the_one_old_logs_were_applied_with() {
        // Golden values: if these change, old WALs replay SPOP and friends differently.
        assert_eq!(hash_key(b""), 0xefd0_1f60_ba99_2926);
        assert_eq!(hash_key(b"key:__rand_int__"), 0x71d2_1d6e_d6b4_5e6b);
    }

    #[test]
    fn distinct_keys_get_distinct_hashes() {
        // Trailing zeros must not make "a" and "a\0" one key; nor may the hash ignore any
        // byte position.
        let mut keys: Vec<Vec<u8>> = (0..9)
            .map(|n| [b"a".to_vec(), vec![0; n]].concat())
            .collect();
        keys.push(Vec::new());
        for len in 1..=24 {
            for at in 0..len {
                let mut key = vec![b'x'; len];
                key[at] = b'y';
                keys.push(key);
            }
        }
        keys.extend((0..100_000).map(|i| format!("key:{i}").into_bytes()));
        let hashes: std::collections::BTreeSet<u64> = keys.iter().map(|k| hash_key(k)).collect();
        assert_eq!(hashes.len(), keys.len());
    }

    #[test]
    fn colliding_hashes_share_a_bucket() {
        // Force a collision through the bucket logic by inserting two keys and then checking
        // removal order does not disturb the other.
        let mut map = HashOrderedMap::new();
        map.insert(Bytes::from("a"), 1);
        map.insert(Bytes::from("b"), 2);
        assert_eq!(map.remove(b"a"), Some(1));
        assert_eq!(map.get(b"b"), Some(&2));
        assert_eq!(map.len(), 1);
        let mut rng = crate::rng::Rng::new(3);
        assert_eq!(
            map.random(&mut rng).map(|(k, _)| k.clone()),
            Some(Bytes::from("b"))
        );
    }
}
