//! List commands. A list is a [`ChunkedList`]: O(1) at both ends and to find an index, like
//! Redis's quicklist.
//!
//! Handlers that may change nothing (LREM without a match, LINSERT without the pivot) look
//! first and write only when something changes: a write stamps the key's WATCH version, and
//! Redis does not signal a modification in those cases.

use super::{
    ChunkedList, Exec, Reply, is_option, kept, out_of_range_positive, parse_int, syntax_error,
};
use crate::command::wrong_arity;
use crate::resp::Frame;
use bytes::Bytes;

/// Which end of a list a command works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Left,
    Right,
}

impl End {
    /// Parses LMOVE's `LEFT|RIGHT`.
    fn parse(arg: &[u8]) -> Result<End, Frame> {
        if is_option(arg, "left") {
            Ok(End::Left)
        } else if is_option(arg, "right") {
            Ok(End::Right)
        } else {
            Err(syntax_error())
        }
    }
}

fn push_at(list: &mut ChunkedList, end: End, item: Bytes) {
    match end {
        End::Left => list.push_front(item),
        End::Right => list.push_back(item),
    }
}

fn pop_at(list: &mut ChunkedList, end: End) -> Option<Bytes> {
    match end {
        End::Left => list.pop_front(),
        End::Right => list.pop_back(),
    }
}

/// Parses a count that must be `>= 0`. Redis (`getPositiveLongFromObjectOrReply`) answers
/// "out of range, must be positive" for a negative count and for a non-number alike.
pub(super) fn parse_positive(arg: &[u8]) -> Result<usize, Frame> {
    match parse_int(arg) {
        Ok(n) if n >= 0 => Ok(n as usize),
        _ => Err(out_of_range_positive()),
    }
}

/// Resolves a possibly negative index (counted from the end) to a position in the list.
fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let index = if index < 0 { index + len as i64 } else { index };
    (0..len as i64).contains(&index).then_some(index as usize)
}

/// Redis's rule for LRANGE and LTRIM: negative ends count from the tail, the start is
/// clamped to 0 and the end to the last element. `None` when the range is empty.
fn resolve_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (start + len).max(0)
    } else {
        start
    };
    let end = if end < 0 { end + len } else { end };
    if start > end || start >= len {
        return None;
    }
    Some((start as usize, end.min(len - 1) as usize))
}

/// LPUSH, RPUSH, LPUSHX, RPUSHX: the reply is the new length (0 when an X form finds no key).
pub fn push(x: &mut Exec, argv: &[Bytes], end: End, only_if_exists: bool) -> Reply {
    let Some(list) = x.list_mut(&argv[1], !only_if_exists)? else {
        return Ok(Frame::Integer(0));
    };
    for item in &argv[2..] {
        push_at(list, end, kept(item));
    }
    Ok(Frame::Integer(list.len() as i64))
}

/// LPOP and RPOP `key [count]`: without a count a bulk (or null); with one an array, or a
/// null array when the key is missing.
pub fn pop(x: &mut Exec, argv: &[Bytes], end: End) -> Reply {
    let count = match argv.len() {
        2 => None,
        3 => Some(parse_positive(&argv[2])?),
        _ => return Err(wrong_arity(&command_name(argv))),
    };
    let key = &argv[1];
    if x.get_list(key)?.is_none() {
        return Ok(if count.is_some() {
            Frame::NullArray
        } else {
            Frame::Null
        });
    }
    // Redis answers a zero count without touching the key.
    if count == Some(0) {
        return Ok(Frame::Array(Vec::new()));
    }
    let list = x.list_mut(key, false)?.expect("the list exists");
    let reply = match count {
        None => Frame::Bulk(pop_at(list, end).expect("lists are never empty")),
        Some(count) => {
            let n = count.min(list.len());
            let items = (0..n).filter_map(|_| pop_at(list, end)).map(Frame::Bulk);
            Frame::Array(items.collect())
        }
    };
    x.drop_if_empty(key);
    Ok(reply)
}

/// The name Redis's arity error quotes: the command's own lowercase name.
fn command_name(argv: &[Bytes]) -> String {
    String::from_utf8_lossy(&argv[0]).to_ascii_lowercase()
}

pub fn llen(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let len = x.get_list(&argv[1])?.map_or(0, |l| l.len());
    Ok(Frame::Integer(len as i64))
}

pub fn lrange(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let start = parse_int(&argv[2])?;
    let end = parse_int(&argv[3])?;
    let Some(list) = x.get_list(&argv[1])? else {
        return Ok(Frame::Array(Vec::new()));
    };
    let items = match resolve_range(start, end, list.len()) {
        None => Vec::new(),
        Some((from, to)) => list.range(from, to).cloned().map(Frame::Bulk).collect(),
    };
    Ok(Frame::Array(items))
}

/// LINDEX looks the key up before it parses the index, as Redis does (`LINDEX missing x` is
/// a null, not an error).
pub fn lindex(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let Some(list) = x.get_list(&argv[1])? else {
        return Ok(Frame::Null);
    };
    let index = parse_int(&argv[2])?;
    Ok(resolve_index(index, list.len()).map_or(Frame::Null, |i| Frame::Bulk(list[i].clone())))
}

/// LSET: like Redis 7.0, a missing key is reported before a malformed index.
pub fn lset(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    let Some(list) = x.get_list(key)? else {
        return Err(Frame::error("ERR no such key"));
    };
    let index = parse_int(&argv[2])?;
    let at =
        resolve_index(index, list.len()).ok_or_else(|| Frame::error("ERR index out of range"))?;
    x.list_mut(key, false)?.expect("the list exists")[at] = kept(&argv[3]);
    Ok(Frame::ok())
}

/// LREM `key count element`: removes the first `count` matches from the head (`count > 0`),
/// the last `-count` from the tail (`count < 0`), or all of them (`count == 0`).
pub fn lrem(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let count = parse_int(&argv[2])?;
    let (key, element) = (&argv[1], &argv[3]);
    let Some(list) = x.get_list(key)? else {
        return Ok(Frame::Integer(0));
    };
    // Which matches go, by their order among the matches counted from the head.
    let matches = list.iter().filter(|item| *item == element).count();
    let wanted = usize::try_from(count.unsigned_abs())
        .unwrap_or(usize::MAX)
        .min(matches);
    let doomed = match count {
        0 => 0..matches,
        c if c > 0 => 0..wanted,
        _ => matches - wanted..matches,
    };
    if doomed.is_empty() {
        return Ok(Frame::Integer(0));
    }
    let removed = doomed.len();
    let list = x.list_mut(key, false)?.expect("the list exists");
    let mut seen = 0;
    list.retain(|item| {
        if item != element {
            return true;
        }
        seen += 1;
        !doomed.contains(&(seen - 1))
    });
    x.drop_if_empty(key);
    Ok(Frame::Integer(removed as i64))
}

pub fn ltrim(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let start = parse_int(&argv[2])?;
    let end = parse_int(&argv[3])?;
    let key = &argv[1];
    let Some(list) = x.list_mut(key, false)? else {
        return Ok(Frame::ok());
    };
    match resolve_range(start, end, list.len()) {
        None => list.clear(),
        Some((from, to)) => {
            list.truncate(to + 1);
            list.remove_front(from);
        }
    }
    x.drop_if_empty(key);
    Ok(Frame::ok())
}

/// LINSERT `key BEFORE|AFTER pivot element`: the new length, -1 without the pivot, 0 without
/// the key. The position word is checked first, as Redis does.
pub fn linsert(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let after = if is_option(&argv[2], "after") {
        true
    } else if is_option(&argv[2], "before") {
        false
    } else {
        return Err(syntax_error());
    };
    let (key, pivot) = (&argv[1], &argv[3]);
    let Some(list) = x.get_list(key)? else {
        return Ok(Frame::Integer(0));
    };
    let Some(at) = list.iter().position(|item| item == pivot) else {
        return Ok(Frame::Integer(-1));
    };
    let list = x.list_mut(key, false)?.expect("the list exists");
    list.insert(at + usize::from(after), kept(&argv[4]));
    Ok(Frame::Integer(list.len() as i64))
}

/// LPOS's options. `rank` is never 0; `count` 0 means every match; `maxlen` 0 means the
/// whole list.
struct LposOptions {
    rank: i64,
    count: Option<usize>,
    maxlen: usize,
}

fn parse_lpos_options(args: &[Bytes]) -> Result<LposOptions, Frame> {
    let mut options = LposOptions {
        rank: 1,
        count: None,
        maxlen: 0,
    };
    let mut pairs = args.iter();
    while let Some(name) = pairs.next() {
        let Some(value) = pairs.next() else {
            return Err(syntax_error());
        };
        if is_option(name, "rank") {
            options.rank = parse_rank(value)?;
        } else if is_option(name, "count") {
            options.count = Some(parse_non_negative(value, "ERR COUNT can't be negative")?);
        } else if is_option(name, "maxlen") {
            options.maxlen = parse_non_negative(value, "ERR MAXLEN can't be negative")?;
        } else {
            return Err(syntax_error());
        }
    }
    Ok(options)
}

fn parse_rank(arg: &[u8]) -> Result<i64, Frame> {
    match parse_int(arg)? {
        0 => Err(Frame::error(
            "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
        )),
        // Its negation would overflow; newer Redis rejects it with this text.
        i64::MIN => Err(Frame::error(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        )),
        rank => Ok(rank),
    }
}

/// Redis gives these options their own message for a non-number too.
fn parse_non_negative(arg: &[u8], message: &str) -> Result<usize, Frame> {
    match parse_int(arg) {
        Ok(n) if n >= 0 => Ok(n as usize),
        _ => Err(Frame::error(message)),
    }
}

/// LPOS `key element [RANK rank] [COUNT count] [MAXLEN len]`: indexes are always counted
/// from the head, even when a negative rank scans from the tail.
pub fn lpos(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let options = parse_lpos_options(&argv[3..])?;
    let Some(list) = x.get_list(&argv[1])? else {
        return Ok(match options.count {
            Some(_) => Frame::Array(Vec::new()),
            None => Frame::Null,
        });
    };
    let found = lpos_matches(list, &argv[2], &options);
    Ok(match options.count {
        Some(_) => Frame::Array(
            found
                .into_iter()
                .map(|i| Frame::Integer(i as i64))
                .collect(),
        ),
        None => found
            .first()
            .map_or(Frame::Null, |&i| Frame::Integer(i as i64)),
    })
}

fn lpos_matches(list: &ChunkedList, element: &Bytes, options: &LposOptions) -> Vec<usize> {
    let len = list.len();
    let scanned = if options.maxlen == 0 {
        len
    } else {
        options.maxlen.min(len)
    };
    let wanted = match options.count {
        None => 1,
        Some(0) => usize::MAX,
        Some(n) => n,
    };
    let skip = usize::try_from(options.rank.unsigned_abs() - 1).unwrap_or(usize::MAX);
    let order: Box<dyn Iterator<Item = usize>> = if options.rank > 0 {
        Box::new(0..len)
    } else {
        Box::new((0..len).rev())
    };
    order
        .take(scanned)
        .filter(|&i| list[i] == element)
        .skip(skip)
        .take(wanted)
        .collect()
}

/// LMOVE `source destination LEFT|RIGHT LEFT|RIGHT`.
pub fn lmove(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let from = End::parse(&argv[3])?;
    let to = End::parse(&argv[4])?;
    move_element(x, &argv[1], &argv[2], from, to)
}

/// RPOPLPUSH is LMOVE source destination RIGHT LEFT.
pub fn rpoplpush(x: &mut Exec, argv: &[Bytes]) -> Reply {
    move_element(x, &argv[1], &argv[2], End::Right, End::Left)
}

/// Pops from `source` and pushes onto `destination`. A missing source answers null before
/// the destination's type is checked (as Redis does); a wrong-typed destination fails before
/// anything moves. The source is dropped only after the push, so rotating a one-element list
/// onto itself keeps the key (and its time to live).
fn move_element(x: &mut Exec, source: &Bytes, destination: &Bytes, from: End, to: End) -> Reply {
    if x.get_list(source)?.is_none() {
        return Ok(Frame::Null);
    }
    x.get_list(destination)?;
    let list = x.list_mut(source, false)?.expect("the list exists");
    let item = pop_at(list, from).expect("lists are never empty");
    let target = x.list_mut(destination, true)?.expect("created on demand");
    push_at(target, to, item.clone());
    x.drop_if_empty(source);
    Ok(Frame::Bulk(item))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{Harness, arr, bulk, err, int, ok};
    use crate::resp::Frame;

    const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    const NOT_INTEGER: &str = "ERR value is not an integer or out of range";

    /// Whether a key is stored at all (empty collections must have been deleted).
    fn exists(h: &Harness, key: &str) -> bool {
        h.ks.version_of(0, key.as_bytes(), h.now_ms).is_some()
    }

    fn ints(values: &[i64]) -> Frame {
        Frame::Array(values.iter().map(|&v| Frame::Integer(v)).collect())
    }

    /// A harness with list `l` = [a b c] and hash `h` (a key of the wrong type).
    fn setup() -> Harness {
        let mut h = Harness::new();
        assert_eq!(h.run(&["RPUSH", "l", "a", "b", "c"]), int(3));
        assert_eq!(h.run(&["HSET", "h", "f", "v"]), int(1));
        h
    }

    #[test]
    fn push_prepends_or_appends_and_returns_the_length() {
        let mut h = setup();
        assert_eq!(h.run(&["LPUSH", "l", "x", "y"]), int(5));
        assert_eq!(h.run(&["RPUSH", "l", "z"]), int(6));
        assert_eq!(
            h.run(&["LRANGE", "l", "0", "-1"]),
            arr(&["y", "x", "a", "b", "c", "z"])
        );
        assert_eq!(h.run(&["LPUSH", "h", "x"]), err(WRONGTYPE));
        assert_eq!(h.run(&["RPUSH", "h", "x"]), err(WRONGTYPE));
    }

    #[test]
    fn pushx_only_touches_existing_lists() {
        let mut h = setup();
        assert_eq!(h.run(&["LPUSHX", "missing", "x"]), int(0));
        assert_eq!(h.run(&["RPUSHX", "missing", "x"]), int(0));
        assert!(!exists(&h, "missing"));
        assert_eq!(h.run(&["LPUSHX", "l", "x"]), int(4));
        assert_eq!(h.run(&["RPUSHX", "l", "y", "z"]), int(6));
        assert_eq!(
            h.run(&["LRANGE", "l", "0", "-1"]),
            arr(&["x", "a", "b", "c", "y", "z"])
        );
        assert_eq!(h.run(&["LPUSHX", "h", "x"]), err(WRONGTYPE));
    }

    #[test]
    fn pop_without_count_returns_one_element_and_deletes_empty_lists() {
        let mut h = setup();
        assert_eq!(h.run(&["LPOP", "l"]), bulk("a"));
        assert_eq!(h.run(&["RPOP", "l"]), bulk("c"));
        assert_eq!(h.run(&["RPOP", "l"]), bulk("b"));
        assert!(!exists(&h, "l"));
        assert_eq!(h.run(&["LPOP", "l"]), Frame::Null);
        assert_eq!(h.run(&["LPOP", "h"]), err(WRONGTYPE));
    }

    #[test]
    fn pop_with_count_returns_an_array() {
        let mut h = setup();
        assert_eq!(h.run(&["LPOP", "l", "0"]), arr(&[]));
        assert_eq!(h.run(&["LPOP", "l", "2"]), arr(&["a", "b"]));
        assert_eq!(h.run(&["RPUSH", "l", "d", "e"]), int(3));
        assert_eq!(h.run(&["RPOP", "l", "10"]), arr(&["e", "d", "c"]));
        assert!(!exists(&h, "l"));
        assert_eq!(h.run(&["LPOP", "l", "1"]), Frame::NullArray);
        assert_eq!(h.run(&["LPOP", "l", "0"]), Frame::NullArray);
        assert_eq!(h.run(&["RPOP", "h", "1"]), err(WRONGTYPE));
    }

    #[test]
    fn pop_count_errors_match_redis() {
        let mut h = setup();
        let positive = err("ERR value is out of range, must be positive");
        assert_eq!(h.run(&["LPOP", "l", "-1"]), positive);
        assert_eq!(h.run(&["LPOP", "l", "abc"]), positive);
        assert_eq!(
            h.run(&["LPOP", "l", "1", "2"]),
            err("ERR wrong number of arguments for 'lpop' command")
        );
        assert_eq!(
            h.run(&["rpop", "l", "1", "2"]),
            err("ERR wrong number of arguments for 'rpop' command")
        );
    }

    #[test]
    fn llen_counts_elements() {
        let mut h = setup();
        assert_eq!(h.run(&["LLEN", "l"]), int(3));
        assert_eq!(h.run(&["LLEN", "missing"]), int(0));
        assert_eq!(h.run(&["LLEN", "h"]), err(WRONGTYPE));
    }

    #[test]
    fn lrange_clamps_like_redis() {
        let mut h = setup();
        assert_eq!(h.run(&["LRANGE", "l", "0", "-1"]), arr(&["a", "b", "c"]));
        assert_eq!(h.run(&["LRANGE", "l", "-2", "100"]), arr(&["b", "c"]));
        assert_eq!(h.run(&["LRANGE", "l", "-100", "0"]), arr(&["a"]));
        assert_eq!(h.run(&["LRANGE", "l", "2", "1"]), arr(&[]));
        assert_eq!(h.run(&["LRANGE", "l", "3", "10"]), arr(&[]));
        assert_eq!(h.run(&["LRANGE", "l", "0", "-4"]), arr(&[]));
        assert_eq!(h.run(&["LRANGE", "missing", "0", "-1"]), arr(&[]));
        assert_eq!(h.run(&["LRANGE", "h", "0", "-1"]), err(WRONGTYPE));
        assert_eq!(h.run(&["LRANGE", "l", "a", "1"]), err(NOT_INTEGER));
        assert_eq!(h.run(&["LRANGE", "missing", "0", "x"]), err(NOT_INTEGER));
    }

    #[test]
    fn lindex_reads_by_position() {
        let mut h = setup();
        assert_eq!(h.run(&["LINDEX", "l", "0"]), bulk("a"));
        assert_eq!(h.run(&["LINDEX", "l", "-1"]), bulk("c"));
        assert_eq!(h.run(&["LINDEX", "l", "3"]), Frame::Null);
        assert_eq!(h.run(&["LINDEX", "l", "-4"]), Frame::Null);
        assert_eq!(h.run(&["LINDEX", "missing", "0"]), Frame::Null);
        // Redis looks the key up first: a missing key wins over a bad index.
        assert_eq!(h.run(&["LINDEX", "missing", "abc"]), Frame::Null);
        assert_eq!(h.run(&["LINDEX", "l", "abc"]), err(NOT_INTEGER));
        assert_eq!(h.run(&["LINDEX", "h", "0"]), err(WRONGTYPE));
    }

    #[test]
    fn lset_replaces_an_element() {
        let mut h = setup();
        assert_eq!(h.run(&["LSET", "l", "-1", "z"]), ok());
        assert_eq!(h.run(&["LSET", "l", "0", "y"]), ok());
        assert_eq!(h.run(&["LRANGE", "l", "0", "-1"]), arr(&["y", "b", "z"]));
        assert_eq!(
            h.run(&["LSET", "l", "3", "x"]),
            err("ERR index out of range")
        );
        assert_eq!(
            h.run(&["LSET", "l", "-4", "x"]),
            err("ERR index out of range")
        );
        assert_eq!(
            h.run(&["LSET", "missing", "0", "x"]),
            err("ERR no such key")
        );
        assert_eq!(
            h.run(&["LSET", "missing", "abc", "x"]),
            err("ERR no such key")
        );
        assert_eq!(h.run(&["LSET", "l", "abc", "x"]), err(NOT_INTEGER));
        assert_eq!(h.run(&["LSET", "h", "0", "x"]), err(WRONGTYPE));
    }

    #[test]
    fn lrem_removes_from_the_chosen_end() {
        let mut h = Harness::new();
        h.run(&["RPUSH", "head", "a", "b", "a", "c", "a", "b"]);
        assert_eq!(h.run(&["LREM", "head", "2", "a"]), int(2));
        assert_eq!(
            h.run(&["LRANGE", "head", "0", "-1"]),
            arr(&["b", "c", "a", "b"])
        );
        h.run(&["RPUSH", "l", "a", "b", "a", "c", "a", "b"]);
        assert_eq!(h.run(&["LREM", "l", "-2", "a"]), int(2));
        assert_eq!(
            h.run(&["LRANGE", "l", "0", "-1"]),
            arr(&["a", "b", "c", "b"])
        );
        assert_eq!(h.run(&["LREM", "l", "0", "b"]), int(2));
        assert_eq!(h.run(&["LRANGE", "l", "0", "-1"]), arr(&["a", "c"]));
        assert_eq!(h.run(&["LREM", "l", "-9223372036854775808", "a"]), int(1));
        assert_eq!(h.run(&["LREM", "l", "5", "zz"]), int(0));
        assert_eq!(h.run(&["LREM", "l", "0", "c"]), int(1));
        assert!(!exists(&h, "l"));
        assert_eq!(h.run(&["LREM", "missing", "0", "a"]), int(0));
        assert_eq!(h.run(&["LREM", "missing", "x", "a"]), err(NOT_INTEGER));
        h.run(&["HSET", "h", "f", "v"]);
        assert_eq!(h.run(&["LREM", "h", "0", "a"]), err(WRONGTYPE));
    }

    #[test]
    fn lrem_without_a_match_does_not_touch_the_watch_version() {
        let mut h = setup();
        let before = h.ks.version_of(0, b"l", h.now_ms);
        assert_eq!(h.run(&["LREM", "l", "0", "zz"]), int(0));
        assert_eq!(h.ks.version_of(0, b"l", h.now_ms), before);
    }

    #[test]
    fn ltrim_keeps_a_range() {
        let mut h = setup();
        h.run(&["RPUSH", "l", "d", "e"]);
        assert_eq!(h.run(&["LTRIM", "l", "1", "-2"]), ok());
        assert_eq!(h.run(&["LRANGE", "l", "0", "-1"]), arr(&["b", "c", "d"]));
        assert_eq!(h.run(&["LTRIM", "l", "-100", "100"]), ok());
        assert_eq!(h.run(&["LRANGE", "l", "0", "-1"]), arr(&["b", "c", "d"]));
        assert_eq!(h.run(&["LTRIM", "l", "2", "1"]), ok());
        assert!(!exists(&h, "l"));
        assert_eq!(h.run(&["LTRIM", "missing", "0", "1"]), ok());
        assert_eq!(h.run(&["LTRIM", "missing", "a", "1"]), err(NOT_INTEGER));
        assert_eq!(h.run(&["LTRIM", "h", "0", "1"]), err(WRONGTYPE));
    }

    #[test]
    fn linsert_places_around_the_pivot() {
        let mut h = setup();
        assert_eq!(h.run(&["LINSERT", "l", "BEFORE", "b", "x"]), int(4));
        assert_eq!(h.run(&["LINSERT", "l", "after", "c", "y"]), int(5));
        assert_eq!(
            h.run(&["LRANGE", "l", "0", "-1"]),
            arr(&["a", "x", "b", "c", "y"])
        );
        assert_eq!(h.run(&["LINSERT", "l", "AFTER", "zz", "y"]), int(-1));
        assert_eq!(h.run(&["LINSERT", "missing", "AFTER", "a", "y"]), int(0));
        assert!(!exists(&h, "missing"));
        assert_eq!(
            h.run(&["LINSERT", "l", "MIDDLE", "a", "y"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["LINSERT", "missing", "MIDDLE", "a", "y"]),
            err("ERR syntax error")
        );
        assert_eq!(h.run(&["LINSERT", "h", "BEFORE", "a", "y"]), err(WRONGTYPE));
    }

    #[test]
    fn lpos_finds_matches_with_rank_count_and_maxlen() {
        let mut h = Harness::new();
        h.run(&["RPUSH", "l", "a", "b", "a", "c", "a", "b"]);
        assert_eq!(h.run(&["LPOS", "l", "a"]), int(0));
        assert_eq!(h.run(&["LPOS", "l", "z"]), Frame::Null);
        assert_eq!(h.run(&["LPOS", "l", "a", "RANK", "-1"]), int(4));
        assert_eq!(
            h.run(&["LPOS", "l", "a", "RANK", "-2", "COUNT", "0"]),
            ints(&[2, 0])
        );
        assert_eq!(
            h.run(&["LPOS", "l", "a", "COUNT", "2", "RANK", "2"]),
            ints(&[2, 4])
        );
        assert_eq!(
            h.run(&["LPOS", "l", "a", "COUNT", "0", "MAXLEN", "3"]),
            ints(&[0, 2])
        );
        assert_eq!(
            h.run(&["LPOS", "l", "a", "RANK", "-1", "MAXLEN", "2"]),
            int(4)
        );
        assert_eq!(h.run(&["LPOS", "l", "c", "MAXLEN", "3"]), Frame::Null);
        assert_eq!(h.run(&["LPOS", "l", "z", "COUNT", "0"]), ints(&[]));
        assert_eq!(h.run(&["LPOS", "missing", "a"]), Frame::Null);
        assert_eq!(h.run(&["LPOS", "missing", "a", "COUNT", "0"]), ints(&[]));
        h.run(&["HSET", "h", "f", "v"]);
        assert_eq!(h.run(&["LPOS", "h", "a"]), err(WRONGTYPE));
    }

    #[test]
    fn lpos_option_errors_match_redis() {
        let mut h = setup();
        assert_eq!(
            h.run(&["LPOS", "l", "a", "RANK", "0"]),
            err(
                "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"
            )
        );
        assert_eq!(h.run(&["LPOS", "l", "a", "RANK", "x"]), err(NOT_INTEGER));
        assert_eq!(
            h.run(&["LPOS", "l", "a", "RANK", "-9223372036854775808"]),
            err(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
            )
        );
        assert_eq!(
            h.run(&["LPOS", "l", "a", "COUNT", "-1"]),
            err("ERR COUNT can't be negative")
        );
        assert_eq!(
            h.run(&["LPOS", "l", "a", "COUNT", "x"]),
            err("ERR COUNT can't be negative")
        );
        assert_eq!(
            h.run(&["LPOS", "l", "a", "MAXLEN", "-1"]),
            err("ERR MAXLEN can't be negative")
        );
        assert_eq!(h.run(&["LPOS", "l", "a", "RANK"]), err("ERR syntax error"));
        assert_eq!(
            h.run(&["LPOS", "l", "a", "FOO", "1"]),
            err("ERR syntax error")
        );
        // Options are checked before the key.
        assert!(h.run(&["LPOS", "missing", "a", "RANK", "0"]).is_error());
    }

    #[test]
    fn lmove_moves_between_ends_and_lists() {
        let mut h = setup();
        assert_eq!(h.run(&["LMOVE", "l", "m", "LEFT", "RIGHT"]), bulk("a"));
        assert_eq!(h.run(&["LMOVE", "l", "m", "right", "left"]), bulk("c"));
        assert_eq!(h.run(&["LRANGE", "m", "0", "-1"]), arr(&["c", "a"]));
        assert_eq!(h.run(&["LMOVE", "l", "m", "LEFT", "LEFT"]), bulk("b"));
        assert!(!exists(&h, "l"));
        assert_eq!(h.run(&["LMOVE", "l", "m", "LEFT", "LEFT"]), Frame::Null);
        assert_eq!(
            h.run(&["LMOVE", "l", "m", "LEFT", "UP"]),
            err("ERR syntax error")
        );
        assert_eq!(h.run(&["LMOVE", "m", "h", "LEFT", "LEFT"]), err(WRONGTYPE));
        assert_eq!(h.run(&["LLEN", "m"]), int(3));
        assert_eq!(h.run(&["LMOVE", "h", "m", "LEFT", "LEFT"]), err(WRONGTYPE));
        // A missing source answers null even when the destination has the wrong type.
        assert_eq!(
            h.run(&["LMOVE", "missing", "h", "LEFT", "LEFT"]),
            Frame::Null
        );
    }

    #[test]
    fn lmove_rotates_a_list_onto_itself() {
        let mut h = setup();
        assert_eq!(h.run(&["LMOVE", "l", "l", "LEFT", "RIGHT"]), bulk("a"));
        assert_eq!(h.run(&["LRANGE", "l", "0", "-1"]), arr(&["b", "c", "a"]));
        let mut h = Harness::new();
        h.run(&["RPUSH", "one", "x"]);
        assert_eq!(h.run(&["LMOVE", "one", "one", "LEFT", "RIGHT"]), bulk("x"));
        assert_eq!(h.run(&["LRANGE", "one", "0", "-1"]), arr(&["x"]));
    }

    #[test]
    fn rpoplpush_moves_tail_to_head() {
        let mut h = setup();
        h.run(&["RPUSH", "m", "z"]);
        assert_eq!(h.run(&["RPOPLPUSH", "l", "m"]), bulk("c"));
        assert_eq!(h.run(&["LRANGE", "m", "0", "-1"]), arr(&["c", "z"]));
        assert_eq!(h.run(&["RPOPLPUSH", "missing", "m"]), Frame::Null);
        assert_eq!(h.run(&["RPOPLPUSH", "l", "h"]), err(WRONGTYPE));
        assert_eq!(h.run(&["RPOPLPUSH", "h", "l"]), err(WRONGTYPE));
    }
}
