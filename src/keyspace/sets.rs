//! Set commands. A set is a `HashOrderedMap<()>`, so members come out in the same order on
//! every replica, and random picks depend only on the seeded `x.rng`.
//!
//! Handlers that may change nothing (SADD of present members, SREM of absent ones) look first
//! and write only when something changes: a write stamps the key's WATCH version, and Redis
//! does not signal a modification in those cases.
//!
//! The random-sampling helpers here are shared with HRANDFIELD.

use super::lists::parse_positive;
use super::{
    Exec, HashOrderedMap, Reply, Value, glob_match, is_option, kept, parse_int, parse_scan,
    scan_reply, syntax_error,
};
use crate::resp::Frame;
use crate::rng::Rng;
use bytes::Bytes;
use std::collections::BTreeSet;

/// Which combination SINTER, SUNION and SDIFF compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOp {
    Inter,
    Union,
    Diff,
}

/// The largest reply a negative SRANDMEMBER or HRANDFIELD count may ask for. Redis has no cap
/// (it streams the reply), but we build the reply in memory, and one read must not be able to
/// exhaust it: `SRANDMEMBER k -9223372036854775807` would otherwise abort the process.
pub(super) const RANDOM_REPLY_MAX: u64 = 1 << 20;

/// Runs `f` with read access to the keyspace and the seeded random source at once. The
/// random source is copied out and written back, so its sequence advances exactly as if `f`
/// had used `x.rng` directly.
pub(super) fn with_rng<T>(x: &mut Exec, f: impl FnOnce(&Exec, &mut Rng) -> T) -> T {
    let mut rng = x.rng.clone();
    let out = f(x, &mut rng);
    *x.rng = rng;
    out
}

/// Up to `count` distinct entries chosen at random: all of them when `count` covers the map,
/// otherwise by shuffling when `count` is a large share (as Redis does; repeated picks would
/// mostly hit members already chosen), or by repeated picks when it is small.
pub(super) fn sample_distinct<'m, V>(
    map: &'m HashOrderedMap<V>,
    count: usize,
    rng: &mut Rng,
) -> Vec<(&'m Bytes, &'m V)> {
    if count >= map.len() {
        return map.iter().collect();
    }
    if count * 3 > map.len() {
        return shuffled_prefix(map.iter().collect(), count, rng);
    }
    let mut chosen = BTreeSet::new();
    let mut picked = Vec::with_capacity(count);
    while picked.len() < count {
        let (key, value) = map.random(rng).expect("the map is not empty");
        if chosen.insert(key) {
            picked.push((key, value));
        }
    }
    picked
}

/// The first `count` items of a random permutation (a partial Fisher-Yates shuffle).
fn shuffled_prefix<T>(mut items: Vec<T>, count: usize, rng: &mut Rng) -> Vec<T> {
    for i in 0..count {
        let j = i + rng.below((items.len() - i) as u64) as usize;
        items.swap(i, j);
    }
    items.truncate(count);
    items
}

/// The entries a SRANDMEMBER/HRANDFIELD count selects: a positive count picks distinct
/// entries, a negative one `-count` entries that may repeat. `count` has been checked against
/// [`RANDOM_REPLY_MAX`].
pub(super) fn sample<'m, V>(
    map: &'m HashOrderedMap<V>,
    count: i64,
    rng: &mut Rng,
) -> Vec<(&'m Bytes, &'m V)> {
    if count >= 0 {
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        return sample_distinct(map, count, rng);
    }
    (0..count.unsigned_abs())
        .map(|_| map.random(rng).expect("the map is not empty"))
        .collect()
}

/// Parses a SRANDMEMBER/HRANDFIELD count, which Redis takes in `-LONG_MAX..=LONG_MAX`.
pub(super) fn parse_random_count(arg: &[u8]) -> Result<i64, Frame> {
    match parse_int(arg)? {
        i64::MIN => Err(Frame::error(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        )),
        count => Ok(count),
    }
}

/// Rejects a negative count whose reply would exceed [`RANDOM_REPLY_MAX`] entries, with the
/// text Redis uses for HRANDFIELD's own range check.
pub(super) fn check_random_reply(count: i64) -> Result<(), Frame> {
    if count < 0 && count.unsigned_abs() > RANDOM_REPLY_MAX {
        return Err(Frame::error("ERR value is out of range"));
    }
    Ok(())
}

fn members_frame(members: impl IntoIterator<Item = Bytes>) -> Vec<Frame> {
    members.into_iter().map(Frame::Bulk).collect()
}

pub fn sadd(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let (key, members) = (&argv[1], &argv[2..]);
    let all_present = x
        .get_set(key)?
        .is_some_and(|set| members.iter().all(|m| set.contains_key(m)));
    if all_present {
        return Ok(Frame::Integer(0));
    }
    let set = x.set_mut(key, true)?.expect("created on demand");
    let added = members
        .iter()
        .filter(|m| set.insert(kept(m), ()).is_none())
        .count();
    Ok(Frame::Integer(added as i64))
}

pub fn srem(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let (key, members) = (&argv[1], &argv[2..]);
    let any_present = x
        .get_set(key)?
        .is_some_and(|set| members.iter().any(|m| set.contains_key(m)));
    if !any_present {
        return Ok(Frame::Integer(0));
    }
    let set = x.set_mut(key, false)?.expect("the set exists");
    let removed = members.iter().filter(|m| set.remove(m).is_some()).count();
    x.drop_if_empty(key);
    Ok(Frame::Integer(removed as i64))
}

pub fn smembers(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let members = x
        .get_set(&argv[1])?
        .map(|set| set.keys().cloned().collect::<Vec<_>>());
    Ok(Frame::Set(members_frame(members.unwrap_or_default())))
}

pub fn sismember(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let found = x
        .get_set(&argv[1])?
        .is_some_and(|set| set.contains_key(&argv[2]));
    Ok(Frame::Integer(i64::from(found)))
}

pub fn smismember(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let set = x.get_set(&argv[1])?;
    let found = argv[2..]
        .iter()
        .map(|m| Frame::Integer(i64::from(set.is_some_and(|s| s.contains_key(m)))));
    Ok(Frame::Array(found.collect()))
}

pub fn scard(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let len = x.get_set(&argv[1])?.map_or(0, |set| set.len());
    Ok(Frame::Integer(len as i64))
}

/// SPOP `key [count]`: without a count a bulk (or null); with one a set. The members are
/// drawn from `x.rng`, so every replica applying the entry pops the same ones.
pub fn spop(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let count = match argv.len() {
        2 => None,
        3 => Some(parse_positive(&argv[2])?),
        _ => return Err(syntax_error()),
    };
    let key = &argv[1];
    let chosen = with_rng(x, |x, rng| {
        let set = x.get_set(key)?;
        let picked = set.map(|set| sample_distinct(set, count.unwrap_or(1), rng));
        Ok::<_, Frame>(picked.map(|p| p.into_iter().map(|(m, _)| m.clone()).collect::<Vec<_>>()))
    })?;
    let Some(chosen) = chosen else {
        return Ok(match count {
            None => Frame::Null,
            Some(_) => Frame::Set(Vec::new()),
        });
    };
    if !chosen.is_empty() {
        let set = x.set_mut(key, false)?.expect("the set exists");
        for member in &chosen {
            set.remove(member);
        }
        x.drop_if_empty(key);
    }
    Ok(match count {
        None => Frame::Bulk(chosen.into_iter().next().expect("sets are never empty")),
        Some(_) => Frame::Set(members_frame(chosen)),
    })
}

/// SRANDMEMBER `key [count]`: a positive count picks distinct members, a negative one may
/// repeat them; the reply is an array (not a set) because of the repeats.
pub fn srandmember(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let count = match argv.len() {
        2 => None,
        3 => Some(parse_random_count(&argv[2])?),
        _ => return Err(syntax_error()),
    };
    if let Some(count) = count {
        check_random_reply(count)?;
    }
    let key = &argv[1];
    with_rng(x, |x, rng| {
        let set = x.get_set(key)?;
        Ok(match (set, count) {
            (None, None) => Frame::Null,
            (None, Some(_)) => Frame::Array(Vec::new()),
            (Some(set), None) => {
                let (member, _) = set.random(rng).expect("sets are never empty");
                Frame::Bulk(member.clone())
            }
            (Some(set), Some(count)) => {
                let picked = sample(set, count, rng).into_iter().map(|(m, _)| m.clone());
                Frame::Array(members_frame(picked))
            }
        })
    })
}

/// SMOVE `source destination member`: 1 when moved (even if the destination already had
/// it). A missing source answers 0 before any type check, as in Redis.
pub fn smove(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let (source, destination, member) = (&argv[1], &argv[2], &argv[3]);
    if !x.exists(source) {
        return Ok(Frame::Integer(0));
    }
    let present = x
        .get_set(source)?
        .is_some_and(|set| set.contains_key(member));
    x.get_set(destination)?;
    if source == destination || !present {
        return Ok(Frame::Integer(i64::from(present)));
    }
    x.set_mut(source, false)?
        .expect("the set exists")
        .remove(member);
    x.drop_if_empty(source);
    let target = x.set_mut(destination, true)?.expect("created on demand");
    target.insert(kept(member), ());
    Ok(Frame::Integer(1))
}

/// The sets at `keys`, `None` for a missing key; WRONGTYPE if any key holds another type
/// (Redis checks them all, even after a missing one).
fn load_sets<'x>(
    x: &'x Exec,
    keys: &[Bytes],
) -> Result<Vec<Option<&'x HashOrderedMap<()>>>, Frame> {
    keys.iter().map(|key| x.get_set(key)).collect()
}

/// Members of the intersection, in the smallest set's (hash) order, stopping at `limit`.
fn intersect<'m>(sets: &[Option<&'m HashOrderedMap<()>>], limit: usize) -> Vec<&'m Bytes> {
    let Some(mut sets) = sets.iter().copied().collect::<Option<Vec<_>>>() else {
        return Vec::new();
    };
    sets.sort_by_key(|set| set.len());
    let (smallest, others) = sets.split_first().expect("at least one key");
    smallest
        .keys()
        .filter(|m| others.iter().all(|set| set.contains_key(m)))
        .take(limit)
        .collect()
}

/// The members `op` selects, in hash order so that every replica stores and replies alike.
fn combine_sets(sets: &[Option<&HashOrderedMap<()>>], op: SetOp) -> Vec<Bytes> {
    match op {
        SetOp::Inter => intersect(sets, usize::MAX).into_iter().cloned().collect(),
        SetOp::Union => {
            let all = sets.iter().flatten().flat_map(|set| set.keys());
            let union: HashOrderedMap<()> = all.map(|m| (m.clone(), ())).collect();
            union.keys().cloned().collect()
        }
        SetOp::Diff => {
            let Some((Some(first), others)) = sets.split_first() else {
                return Vec::new();
            };
            first
                .keys()
                .filter(|m| !others.iter().flatten().any(|set| set.contains_key(m)))
                .cloned()
                .collect()
        }
    }
}

/// SINTER/SUNION/SDIFF `key...`, and their STORE forms `destination key...`, which overwrite
/// the destination whatever its type (or delete it when the result is empty) and reply with
/// the cardinality.
pub fn combine(x: &mut Exec, argv: &[Bytes], op: SetOp, store: bool) -> Reply {
    let keys = if store { &argv[2..] } else { &argv[1..] };
    let members = combine_sets(&load_sets(x, keys)?, op);
    if !store {
        return Ok(Frame::Set(members_frame(members)));
    }
    let destination = &argv[1];
    let len = members.len();
    if len == 0 {
        x.delete(destination);
    } else {
        let set: HashOrderedMap<()> = members.into_iter().map(|m| (m, ())).collect();
        x.set(destination, Value::Set(Box::new(set)), false);
    }
    Ok(Frame::Integer(len as i64))
}

/// SINTERCARD `numkeys key... [LIMIT limit]`: the intersection's size, counting stopped at
/// `limit` (0 means no limit).
pub fn sintercard(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let numkeys = match parse_int(&argv[1]) {
        Ok(n) if n > 0 => n as u64,
        _ => return Err(Frame::error("ERR numkeys should be greater than 0")),
    };
    if numkeys > (argv.len() - 2) as u64 {
        return Err(Frame::error(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let keys_end = 2 + numkeys as usize;
    let limit = parse_intercard_limit(&argv[keys_end..])?;
    let sets = load_sets(x, &argv[2..keys_end])?;
    let limit = if limit == 0 { usize::MAX } else { limit };
    Ok(Frame::Integer(intersect(&sets, limit).len() as i64))
}

/// Parses SINTERCARD's trailing `[LIMIT limit]` (repeatable; the last one wins, as in Redis).
fn parse_intercard_limit(options: &[Bytes]) -> Result<usize, Frame> {
    let mut limit = 0;
    let mut rest = options.iter();
    while let Some(option) = rest.next() {
        let value = rest.next().filter(|_| is_option(option, "limit"));
        let Some(value) = value else {
            return Err(syntax_error());
        };
        limit = match parse_int(value) {
            Ok(n) if n >= 0 => n as usize,
            _ => return Err(Frame::error("ERR LIMIT can't be negative")),
        };
    }
    Ok(limit)
}

/// SSCAN `key cursor [MATCH pattern] [COUNT count]`. As in Redis, a bad cursor is reported
/// first, then a missing key answers an empty scan before the options are looked at.
pub fn sscan(x: &mut Exec, argv: &[Bytes]) -> Reply {
    parse_scan(&argv[2], &[], false)?;
    let Some(set) = x.get_set(&argv[1])? else {
        return Ok(scan_reply(0, Vec::new()));
    };
    let options = parse_scan(&argv[2], &argv[3..], false)?;
    if options.novalues {
        return Err(Frame::error(
            "ERR NOVALUES option can only be used in HSCAN",
        ));
    }
    let (next, found) = set.scan(options.cursor, options.count);
    let matching = found
        .into_iter()
        .map(|(member, _)| member)
        .filter(|m| options.pattern.as_ref().is_none_or(|p| glob_match(p, m)));
    Ok(scan_reply(next, members_frame(matching.cloned())))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{Harness, arr, bulk, err, int};
    use crate::resp::Frame;

    const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    const NOT_INTEGER: &str = "ERR value is not an integer or out of range";

    /// A harness with set `s` = {a b c} and list `l` (a key of the wrong type).
    fn setup() -> Harness {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SADD", "s", "a", "b", "c"]), int(3));
        assert_eq!(h.run(&["RPUSH", "l", "x"]), int(1));
        h
    }

    fn exists(h: &Harness, key: &str) -> bool {
        h.ks.version_of(0, key.as_bytes(), h.now_ms).is_some()
    }

    /// The members of a set or array reply, sorted (set order is the hash order).
    fn sorted(reply: Frame) -> Vec<String> {
        let (Frame::Set(items) | Frame::Array(items)) = reply else {
            panic!("not a set or array: {reply:?}");
        };
        let mut members: Vec<String> = items
            .into_iter()
            .map(|item| match item {
                Frame::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
                other => panic!("not a bulk: {other:?}"),
            })
            .collect();
        members.sort();
        members
    }

    fn set(members: &[&str]) -> Frame {
        Frame::Set(members.iter().map(|m| bulk(m)).collect())
    }

    fn ints(values: &[i64]) -> Frame {
        Frame::Array(values.iter().map(|&v| Frame::Integer(v)).collect())
    }

    #[test]
    fn sadd_counts_new_members() {
        let mut h = setup();
        assert_eq!(h.run(&["SADD", "s", "c", "d", "d"]), int(1));
        assert_eq!(h.run(&["SCARD", "s"]), int(4));
        assert_eq!(h.run(&["SADD", "new", "x"]), int(1));
        assert_eq!(h.run(&["SADD", "l", "x"]), err(WRONGTYPE));
    }

    #[test]
    fn sadd_of_present_members_does_not_touch_the_watch_version() {
        let mut h = setup();
        let before = h.ks.version_of(0, b"s", h.now_ms);
        assert_eq!(h.run(&["SADD", "s", "a", "b"]), int(0));
        assert_eq!(h.ks.version_of(0, b"s", h.now_ms), before);
    }

    #[test]
    fn srem_counts_removed_members_and_deletes_empty_sets() {
        let mut h = setup();
        assert_eq!(h.run(&["SREM", "s", "a", "a", "zz"]), int(1));
        assert_eq!(h.run(&["SREM", "s", "zz"]), int(0));
        assert_eq!(h.run(&["SREM", "s", "b", "c"]), int(2));
        assert!(!exists(&h, "s"));
        assert_eq!(h.run(&["SREM", "missing", "a"]), int(0));
        assert_eq!(h.run(&["SREM", "l", "a"]), err(WRONGTYPE));
    }

    #[test]
    fn smembers_returns_a_set() {
        let mut h = setup();
        assert_eq!(sorted(h.run(&["SMEMBERS", "s"])), ["a", "b", "c"]);
        assert!(matches!(h.run(&["SMEMBERS", "s"]), Frame::Set(_)));
        assert_eq!(h.run(&["SMEMBERS", "missing"]), set(&[]));
        assert_eq!(h.run(&["SMEMBERS", "l"]), err(WRONGTYPE));
    }

    #[test]
    fn sismember_and_smismember_test_membership() {
        let mut h = setup();
        assert_eq!(h.run(&["SISMEMBER", "s", "a"]), int(1));
        assert_eq!(h.run(&["SISMEMBER", "s", "z"]), int(0));
        assert_eq!(h.run(&["SISMEMBER", "missing", "a"]), int(0));
        assert_eq!(h.run(&["SISMEMBER", "l", "a"]), err(WRONGTYPE));
        assert_eq!(h.run(&["SMISMEMBER", "s", "a", "z", "c"]), ints(&[1, 0, 1]));
        assert_eq!(h.run(&["SMISMEMBER", "missing", "a", "b"]), ints(&[0, 0]));
        assert_eq!(h.run(&["SMISMEMBER", "l", "a"]), err(WRONGTYPE));
    }

    #[test]
    fn scard_counts_members() {
        let mut h = setup();
        assert_eq!(h.run(&["SCARD", "s"]), int(3));
        assert_eq!(h.run(&["SCARD", "missing"]), int(0));
        assert_eq!(h.run(&["SCARD", "l"]), err(WRONGTYPE));
    }

    #[test]
    fn spop_removes_random_members() {
        let mut h = setup();
        let Frame::Bulk(first) = h.run(&["SPOP", "s"]) else {
            panic!("SPOP without count returns a bulk");
        };
        assert!([&b"a"[..], b"b", b"c"].contains(&&first[..]));
        assert_eq!(h.run(&["SCARD", "s"]), int(2));
        assert_eq!(h.run(&["SPOP", "s", "0"]), set(&[]));
        let rest = h.run(&["SPOP", "s", "5"]);
        assert!(matches!(rest, Frame::Set(_)));
        assert_eq!(sorted(rest).len(), 2);
        assert!(!exists(&h, "s"));
        assert_eq!(h.run(&["SPOP", "s"]), Frame::Null);
        assert_eq!(h.run(&["SPOP", "s", "2"]), set(&[]));
        assert_eq!(h.run(&["SPOP", "l"]), err(WRONGTYPE));
        assert_eq!(h.run(&["SPOP", "l", "1"]), err(WRONGTYPE));
    }

    #[test]
    fn spop_count_errors_match_redis() {
        let mut h = setup();
        let positive = err("ERR value is out of range, must be positive");
        assert_eq!(h.run(&["SPOP", "s", "-1"]), positive);
        assert_eq!(h.run(&["SPOP", "s", "abc"]), positive);
        assert_eq!(h.run(&["SPOP", "s", "1", "2"]), err("ERR syntax error"));
    }

    #[test]
    fn spop_is_deterministic_for_a_seed() {
        let run = || {
            let mut h = Harness::new();
            let members: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
            let mut words = vec!["SADD", "s"];
            words.extend(members.iter().map(String::as_str));
            h.run(&words);
            (
                h.run(&["SPOP", "s", "7"]),
                h.run(&["SPOP", "s"]),
                h.ks.digest(),
            )
        };
        assert_eq!(run(), run());
        let (popped, _, _) = run();
        assert_eq!(sorted(popped).len(), 7);
    }

    #[test]
    fn srandmember_follows_redis_count_rules() {
        let mut h = setup();
        let Frame::Bulk(one) = h.run(&["SRANDMEMBER", "s"]) else {
            panic!("SRANDMEMBER without count returns a bulk");
        };
        assert!([&b"a"[..], b"b", b"c"].contains(&&one[..]));
        let two = sorted(h.run(&["SRANDMEMBER", "s", "2"]));
        assert_eq!(two.len(), 2);
        assert_ne!(two[0], two[1]);
        assert_eq!(sorted(h.run(&["SRANDMEMBER", "s", "10"])), ["a", "b", "c"]);
        let repeats = sorted(h.run(&["SRANDMEMBER", "s", "-10"]));
        assert_eq!(repeats.len(), 10);
        assert!(
            repeats
                .iter()
                .all(|m| ["a", "b", "c"].contains(&m.as_str()))
        );
        assert_eq!(h.run(&["SRANDMEMBER", "s", "0"]), arr(&[]));
        assert_eq!(h.run(&["SCARD", "s"]), int(3));
        assert_eq!(h.run(&["SRANDMEMBER", "missing"]), Frame::Null);
        assert_eq!(h.run(&["SRANDMEMBER", "missing", "-1"]), arr(&[]));
        assert_eq!(h.run(&["SRANDMEMBER", "l"]), err(WRONGTYPE));
        assert_eq!(h.run(&["SRANDMEMBER", "l", "1"]), err(WRONGTYPE));
    }

    #[test]
    fn srandmember_count_errors_match_redis() {
        let mut h = setup();
        assert_eq!(h.run(&["SRANDMEMBER", "s", "abc"]), err(NOT_INTEGER));
        assert_eq!(
            h.run(&["SRANDMEMBER", "s", "1", "2"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["SRANDMEMBER", "s", "-9223372036854775808"]),
            err(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
            )
        );
        // Our cap on what one reply may hold (Redis would try to send it all).
        assert_eq!(
            h.run(&["SRANDMEMBER", "s", "-9223372036854775807"]),
            err("ERR value is out of range")
        );
    }

    #[test]
    fn sample_distinct_picks_distinct_members_at_every_ratio() {
        let map: super::HashOrderedMap<()> = (0..30)
            .map(|i| (bytes::Bytes::from(format!("m{i}")), ()))
            .collect();
        let mut rng = crate::rng::Rng::new(9);
        for count in [0, 1, 5, 10, 11, 29, 30, 31] {
            let picked = super::sample_distinct(&map, count, &mut rng);
            let distinct: std::collections::BTreeSet<_> = picked.iter().map(|(k, _)| *k).collect();
            assert_eq!(picked.len(), count.min(30));
            assert_eq!(distinct.len(), picked.len());
        }
    }

    #[test]
    fn smove_moves_a_member() {
        let mut h = setup();
        h.run(&["SADD", "t", "z"]);
        assert_eq!(h.run(&["SMOVE", "s", "t", "a"]), int(1));
        assert_eq!(sorted(h.run(&["SMEMBERS", "t"])), ["a", "z"]);
        assert_eq!(h.run(&["SMOVE", "s", "t", "a"]), int(0));
        assert_eq!(h.run(&["SMOVE", "s", "s", "b"]), int(1));
        assert_eq!(h.run(&["SMOVE", "s", "s", "zz"]), int(0));
        assert_eq!(h.run(&["SMOVE", "s", "new", "b"]), int(1));
        h.run(&["SADD", "t", "c"]);
        // Already in the destination: still 1, and it leaves the source.
        assert_eq!(h.run(&["SMOVE", "s", "t", "c"]), int(1));
        assert!(!exists(&h, "s"));
        assert_eq!(h.run(&["SMOVE", "missing", "t", "a"]), int(0));
        assert_eq!(h.run(&["SMOVE", "missing", "l", "a"]), int(0));
        assert_eq!(h.run(&["SMOVE", "t", "l", "a"]), err(WRONGTYPE));
        assert_eq!(h.run(&["SMOVE", "l", "t", "a"]), err(WRONGTYPE));
        assert_eq!(h.run(&["SCARD", "t"]), int(3));
    }

    #[test]
    fn sinter_sunion_sdiff_combine_sets() {
        let mut h = setup();
        h.run(&["SADD", "t", "b", "c", "d"]);
        h.run(&["SADD", "u", "c", "e"]);
        assert_eq!(sorted(h.run(&["SINTER", "s", "t"])), ["b", "c"]);
        assert_eq!(sorted(h.run(&["SINTER", "s", "t", "u"])), ["c"]);
        assert_eq!(h.run(&["SINTER", "s", "missing"]), set(&[]));
        assert_eq!(
            sorted(h.run(&["SUNION", "s", "u", "missing"])),
            ["a", "b", "c", "e"]
        );
        assert_eq!(sorted(h.run(&["SDIFF", "s", "t"])), ["a"]);
        assert_eq!(sorted(h.run(&["SDIFF", "s", "missing", "u"])), ["a", "b"]);
        assert_eq!(h.run(&["SDIFF", "missing", "s"]), set(&[]));
        assert!(matches!(h.run(&["SUNION", "s"]), Frame::Set(_)));
        // Every key is type-checked, even after a missing one.
        assert_eq!(h.run(&["SINTER", "missing", "l"]), err(WRONGTYPE));
        assert_eq!(h.run(&["SUNION", "s", "l"]), err(WRONGTYPE));
        assert_eq!(h.run(&["SDIFF", "missing", "l"]), err(WRONGTYPE));
    }

    #[test]
    fn store_forms_overwrite_or_delete_the_destination() {
        let mut h = setup();
        h.run(&["SADD", "t", "b", "c", "d"]);
        assert_eq!(h.run(&["SINTERSTORE", "dst", "s", "t"]), int(2));
        assert_eq!(sorted(h.run(&["SMEMBERS", "dst"])), ["b", "c"]);
        // Any type is overwritten.
        assert_eq!(h.run(&["SUNIONSTORE", "l", "s", "t"]), int(4));
        assert_eq!(sorted(h.run(&["SMEMBERS", "l"])), ["a", "b", "c", "d"]);
        assert_eq!(h.run(&["SDIFFSTORE", "dst", "s", "t"]), int(1));
        assert_eq!(sorted(h.run(&["SMEMBERS", "dst"])), ["a"]);
        // A destination that is also a source.
        assert_eq!(h.run(&["SDIFFSTORE", "s", "s", "dst"]), int(2));
        assert_eq!(sorted(h.run(&["SMEMBERS", "s"])), ["b", "c"]);
        assert_eq!(h.run(&["SINTERSTORE", "dst", "s", "missing"]), int(0));
        assert!(!exists(&h, "dst"));
        h.run(&["RPUSH", "list", "x"]);
        assert_eq!(h.run(&["SINTERSTORE", "dst", "s", "list"]), err(WRONGTYPE));
    }

    #[test]
    fn sintercard_counts_up_to_the_limit() {
        let mut h = setup();
        h.run(&["SADD", "t", "a", "b", "c", "d"]);
        assert_eq!(h.run(&["SINTERCARD", "2", "s", "t"]), int(3));
        assert_eq!(h.run(&["SINTERCARD", "2", "s", "t", "LIMIT", "2"]), int(2));
        assert_eq!(h.run(&["SINTERCARD", "2", "s", "t", "limit", "0"]), int(3));
        assert_eq!(h.run(&["SINTERCARD", "1", "s"]), int(3));
        assert_eq!(h.run(&["SINTERCARD", "2", "s", "missing"]), int(0));
        assert_eq!(h.run(&["SINTERCARD", "2", "missing", "l"]), err(WRONGTYPE));
    }

    #[test]
    fn sintercard_errors_match_redis() {
        let mut h = setup();
        let numkeys = err("ERR numkeys should be greater than 0");
        assert_eq!(h.run(&["SINTERCARD", "0", "s"]), numkeys);
        assert_eq!(h.run(&["SINTERCARD", "abc", "s"]), numkeys);
        assert_eq!(
            h.run(&["SINTERCARD", "3", "s"]),
            err("ERR Number of keys can't be greater than number of args")
        );
        let limit = err("ERR LIMIT can't be negative");
        assert_eq!(h.run(&["SINTERCARD", "1", "s", "LIMIT", "-1"]), limit);
        assert_eq!(h.run(&["SINTERCARD", "1", "s", "LIMIT", "abc"]), limit);
        assert_eq!(
            h.run(&["SINTERCARD", "1", "s", "FOO"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["SINTERCARD", "1", "s", "LIMIT"]),
            err("ERR syntax error")
        );
    }

    #[test]
    fn sscan_walks_every_member() {
        let mut h = Harness::new();
        let members: Vec<String> = (0..25).map(|i| format!("m{i}")).collect();
        let mut words = vec!["SADD", "s"];
        words.extend(members.iter().map(String::as_str));
        h.run(&words);
        let mut seen = Vec::new();
        let mut cursor = "0".to_owned();
        loop {
            let Frame::Array(parts) = h.run(&["SSCAN", "s", &cursor, "COUNT", "4"]) else {
                panic!("SSCAN returns an array");
            };
            let [Frame::Bulk(next), items] = &parts[..] else {
                panic!("SSCAN returns [cursor, items]");
            };
            seen.extend(sorted(items.clone()));
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        seen.sort();
        let mut expected = members.clone();
        expected.sort();
        assert_eq!(seen, expected);
    }

    #[test]
    fn sscan_filters_and_reports_errors_like_redis() {
        let mut h = setup();
        h.run(&["SADD", "s", "ab"]);
        let reply = h.run(&["SSCAN", "s", "0", "MATCH", "a*", "COUNT", "100"]);
        let Frame::Array(parts) = reply else { panic!() };
        assert_eq!(parts[0], bulk("0"));
        assert_eq!(sorted(parts[1].clone()), ["a", "ab"]);
        let empty = Frame::Array(vec![bulk("0"), arr(&[])]);
        assert_eq!(h.run(&["SSCAN", "missing", "0"]), empty);
        assert_eq!(h.run(&["SSCAN", "missing", "0", "FOO"]), empty);
        assert_eq!(h.run(&["SSCAN", "missing", "x"]), err("ERR invalid cursor"));
        assert_eq!(h.run(&["SSCAN", "s", "0", "FOO"]), err("ERR syntax error"));
        assert_eq!(
            h.run(&["SSCAN", "s", "0", "NOVALUES"]),
            err("ERR NOVALUES option can only be used in HSCAN")
        );
        assert_eq!(h.run(&["SSCAN", "l", "0"]), err(WRONGTYPE));
    }
}
