//! Hash commands. A hash is a `HashOrderedMap<Bytes>`, so fields come out in the same order
//! on every replica.
//!
//! Handlers that may change nothing (HSETNX of a present field, HDEL of absent ones) look
//! first and write only when something changes: a write stamps the key's WATCH version, and
//! Redis does not signal a modification in those cases.

use super::sets::{check_random_reply, parse_random_count, sample, with_rng};
use super::{
    Exec, Reply, glob_match, is_option, kept, parse_float, parse_int, parse_scan, scan_reply,
    syntax_error,
};
use crate::command::wrong_arity;
use crate::resp::{Frame, format_double};
use bytes::Bytes;

/// HSET and HMSET `key field value [field value ...]`: HSET replies with the number of new
/// fields, HMSET with OK.
pub fn hset(x: &mut Exec, argv: &[Bytes], is_hmset: bool) -> Reply {
    // The table's arity only guarantees one pair; a dangling field is an arity error.
    if !argv.len().is_multiple_of(2) {
        return Err(wrong_arity(if is_hmset { "hmset" } else { "hset" }));
    }
    let hash = x.hash_mut(&argv[1], true)?.expect("created on demand");
    let mut added = 0;
    for pair in argv[2..].chunks_exact(2) {
        if hash.insert(kept(&pair[0]), kept(&pair[1])).is_none() {
            added += 1;
        }
    }
    Ok(if is_hmset {
        Frame::ok()
    } else {
        Frame::Integer(added)
    })
}

pub fn hsetnx(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let (key, field) = (&argv[1], &argv[2]);
    if x.get_hash(key)?
        .is_some_and(|hash| hash.contains_key(field))
    {
        return Ok(Frame::Integer(0));
    }
    let hash = x.hash_mut(key, true)?.expect("created on demand");
    hash.insert(kept(field), kept(&argv[3]));
    Ok(Frame::Integer(1))
}

pub fn hget(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let value = x.get_hash(&argv[1])?.and_then(|hash| hash.get(&argv[2]));
    Ok(value.map_or(Frame::Null, |v| Frame::Bulk(v.clone())))
}

pub fn hmget(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let hash = x.get_hash(&argv[1])?;
    let values = argv[2..].iter().map(|field| {
        let value = hash.and_then(|h| h.get(field));
        value.map_or(Frame::Null, |v| Frame::Bulk(v.clone()))
    });
    Ok(Frame::Array(values.collect()))
}

pub fn hdel(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let (key, fields) = (&argv[1], &argv[2..]);
    let any_present = x
        .get_hash(key)?
        .is_some_and(|hash| fields.iter().any(|f| hash.contains_key(f)));
    if !any_present {
        return Ok(Frame::Integer(0));
    }
    let hash = x.hash_mut(key, false)?.expect("the hash exists");
    let removed = fields.iter().filter(|f| hash.remove(f).is_some()).count();
    x.drop_if_empty(key);
    Ok(Frame::Integer(removed as i64))
}

pub fn hlen(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let len = x.get_hash(&argv[1])?.map_or(0, |hash| hash.len());
    Ok(Frame::Integer(len as i64))
}

pub fn hexists(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let found = x
        .get_hash(&argv[1])?
        .is_some_and(|hash| hash.contains_key(&argv[2]));
    Ok(Frame::Integer(i64::from(found)))
}

pub fn hkeys(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let Some(hash) = x.get_hash(&argv[1])? else {
        return Ok(Frame::Array(Vec::new()));
    };
    Ok(Frame::Array(
        hash.keys().cloned().map(Frame::Bulk).collect(),
    ))
}

pub fn hvals(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let Some(hash) = x.get_hash(&argv[1])? else {
        return Ok(Frame::Array(Vec::new()));
    };
    let values = hash.iter().map(|(_, v)| Frame::Bulk(v.clone()));
    Ok(Frame::Array(values.collect()))
}

/// HGETALL replies with a map: RESP3 clients get a map, RESP2 ones the flat array.
pub fn hgetall(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let Some(hash) = x.get_hash(&argv[1])? else {
        return Ok(Frame::Map(Vec::new()));
    };
    let pairs = hash
        .iter()
        .map(|(f, v)| (Frame::Bulk(f.clone()), Frame::Bulk(v.clone())));
    Ok(Frame::Map(pairs.collect()))
}

/// HINCRBY `key field increment`: a missing field counts as 0.
pub fn hincrby(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let increment = parse_int(&argv[3])?;
    let (key, field) = (&argv[1], &argv[2]);
    let current = match x.get_hash(key)?.and_then(|hash| hash.get(field)) {
        None => 0,
        Some(value) => {
            parse_int(value).map_err(|_| Frame::error("ERR hash value is not an integer"))?
        }
    };
    let sum = current
        .checked_add(increment)
        .ok_or_else(|| Frame::error("ERR increment or decrement would overflow"))?;
    store_field(x, key, field, Bytes::from(sum.to_string()))?;
    Ok(Frame::Integer(sum))
}

/// HINCRBYFLOAT `key field increment`. Redis computes in `long double`; we use `f64`, so
/// results differ from Redis's in the last digits and overflow near 1.8e308 rather than
/// 1.2e4932.
pub fn hincrbyfloat(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let increment = parse_float(&argv[3])?;
    if increment.is_infinite() {
        return Err(Frame::error("ERR value is NaN or Infinity"));
    }
    let (key, field) = (&argv[1], &argv[2]);
    let current = match x.get_hash(key)?.and_then(|hash| hash.get(field)) {
        None => 0.0,
        Some(value) => {
            parse_float(value).map_err(|_| Frame::error("ERR hash value is not a float"))?
        }
    };
    let sum = current + increment;
    if !sum.is_finite() {
        return Err(Frame::error("ERR increment would produce NaN or Infinity"));
    }
    let text = Bytes::from(format_double(sum));
    store_field(x, key, field, text.clone())?;
    Ok(Frame::Bulk(text))
}

fn store_field(x: &mut Exec, key: &Bytes, field: &Bytes, value: Bytes) -> Result<(), Frame> {
    let hash = x.hash_mut(key, true)?.expect("created on demand");
    hash.insert(kept(field), value);
    Ok(())
}

pub fn hstrlen(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let value = x.get_hash(&argv[1])?.and_then(|hash| hash.get(&argv[2]));
    Ok(Frame::Integer(value.map_or(0, |v| v.len()) as i64))
}

/// HSCAN `key cursor [MATCH pattern] [COUNT count] [NOVALUES]`. As in Redis, a bad cursor is
/// reported first, then a missing key answers an empty scan before the options are looked at.
pub fn hscan(x: &mut Exec, argv: &[Bytes]) -> Reply {
    parse_scan(&argv[2], &[], false)?;
    let Some(hash) = x.get_hash(&argv[1])? else {
        return Ok(scan_reply(0, Vec::new()));
    };
    let options = parse_scan(&argv[2], &argv[3..], false)?;
    let (next, found) = hash.scan(options.cursor, options.count);
    let mut items = Vec::new();
    for (field, value) in found {
        if options
            .pattern
            .as_ref()
            .is_some_and(|p| !glob_match(p, field))
        {
            continue;
        }
        items.push(Frame::Bulk(field.clone()));
        if !options.novalues {
            items.push(Frame::Bulk(value.clone()));
        }
    }
    Ok(scan_reply(next, items))
}

/// HRANDFIELD `key [count [WITHVALUES]]`. With WITHVALUES the reply is flat (field, value,
/// ...): handlers do not know the protocol, and RESP2 clients expect it flat.
pub fn hrandfield(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    if argv.len() == 2 {
        return with_rng(x, |x, rng| {
            let field = x.get_hash(key)?.and_then(|hash| hash.random(rng));
            Ok(field.map_or(Frame::Null, |(f, _)| Frame::Bulk(f.clone())))
        });
    }
    let count = parse_random_count(&argv[2])?;
    let with_values = match &argv[3..] {
        [] => false,
        [option] if is_option(option, "withvalues") => true,
        _ => return Err(syntax_error()),
    };
    // Redis's own guard: twice the count must fit in a long.
    if with_values && count.unsigned_abs() > (i64::MAX / 2) as u64 {
        return Err(Frame::error("ERR value is out of range"));
    }
    check_random_reply(count)?;
    with_rng(x, |x, rng| {
        let Some(hash) = x.get_hash(key)? else {
            return Ok(Frame::Array(Vec::new()));
        };
        let mut items = Vec::new();
        for (field, value) in sample(hash, count, rng) {
            items.push(Frame::Bulk(field.clone()));
            if with_values {
                items.push(Frame::Bulk(value.clone()));
            }
        }
        Ok(Frame::Array(items))
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{Harness, arr, bulk, err, int, ok};
    use crate::resp::Frame;

    const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    const NOT_INTEGER: &str = "ERR value is not an integer or out of range";

    /// A harness with hash `h` = {a: 1, b: 2} and list `l` (a key of the wrong type).
    fn setup() -> Harness {
        let mut h = Harness::new();
        assert_eq!(h.run(&["HSET", "h", "a", "1", "b", "2"]), int(2));
        assert_eq!(h.run(&["RPUSH", "l", "x"]), int(1));
        h
    }

    fn exists(h: &Harness, key: &str) -> bool {
        h.ks.version_of(0, key.as_bytes(), h.now_ms).is_some()
    }

    /// The bulk strings of an array or map reply, sorted (hash order is not insertion order).
    fn sorted(reply: Frame) -> Vec<String> {
        let text = |f: Frame| match f {
            Frame::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("not a bulk: {other:?}"),
        };
        let mut items: Vec<String> = match reply {
            Frame::Array(items) => items.into_iter().map(text).collect(),
            Frame::Map(pairs) => pairs
                .into_iter()
                .map(|(f, v)| format!("{}={}", text(f), text(v)))
                .collect(),
            other => panic!("not an array or map: {other:?}"),
        };
        items.sort();
        items
    }

    #[test]
    fn hset_counts_new_fields_and_hmset_says_ok() {
        let mut h = setup();
        assert_eq!(h.run(&["HSET", "h", "a", "10", "c", "3"]), int(1));
        assert_eq!(h.run(&["HGET", "h", "a"]), bulk("10"));
        assert_eq!(h.run(&["HMSET", "h", "d", "4", "a", "11"]), ok());
        assert_eq!(h.run(&["HLEN", "h"]), int(4));
        assert_eq!(h.run(&["HSET", "new", "f", "v"]), int(1));
        assert_eq!(h.run(&["HSET", "l", "f", "v"]), err(WRONGTYPE));
        assert_eq!(h.run(&["HMSET", "l", "f", "v"]), err(WRONGTYPE));
    }

    #[test]
    fn hset_with_a_dangling_field_is_an_arity_error() {
        let mut h = setup();
        assert_eq!(
            h.run(&["HSET", "h", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'hset' command")
        );
        assert_eq!(
            h.run(&["hmset", "h", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'hmset' command")
        );
        assert_eq!(h.run(&["HGET", "h", "a"]), bulk("1"));
    }

    #[test]
    fn hsetnx_sets_only_new_fields() {
        let mut h = setup();
        let before = h.ks.version_of(0, b"h", h.now_ms);
        assert_eq!(h.run(&["HSETNX", "h", "a", "9"]), int(0));
        assert_eq!(h.ks.version_of(0, b"h", h.now_ms), before);
        assert_eq!(h.run(&["HGET", "h", "a"]), bulk("1"));
        assert_eq!(h.run(&["HSETNX", "h", "c", "3"]), int(1));
        assert_eq!(h.run(&["HSETNX", "new", "c", "3"]), int(1));
        assert_eq!(h.run(&["HGET", "new", "c"]), bulk("3"));
        assert_eq!(h.run(&["HSETNX", "l", "a", "1"]), err(WRONGTYPE));
    }

    #[test]
    fn hget_and_hmget_read_fields() {
        let mut h = setup();
        assert_eq!(h.run(&["HGET", "h", "b"]), bulk("2"));
        assert_eq!(h.run(&["HGET", "h", "zz"]), Frame::Null);
        assert_eq!(h.run(&["HGET", "missing", "a"]), Frame::Null);
        assert_eq!(h.run(&["HGET", "l", "a"]), err(WRONGTYPE));
        assert_eq!(
            h.run(&["HMGET", "h", "a", "zz", "b"]),
            Frame::Array(vec![bulk("1"), Frame::Null, bulk("2")])
        );
        assert_eq!(
            h.run(&["HMGET", "missing", "a", "b"]),
            Frame::Array(vec![Frame::Null, Frame::Null])
        );
        assert_eq!(h.run(&["HMGET", "l", "a"]), err(WRONGTYPE));
    }

    #[test]
    fn hdel_removes_fields_and_deletes_empty_hashes() {
        let mut h = setup();
        assert_eq!(h.run(&["HDEL", "h", "a", "a", "zz"]), int(1));
        assert_eq!(h.run(&["HDEL", "h", "zz"]), int(0));
        assert_eq!(h.run(&["HDEL", "h", "b"]), int(1));
        assert!(!exists(&h, "h"));
        assert_eq!(h.run(&["HDEL", "missing", "a"]), int(0));
        assert_eq!(h.run(&["HDEL", "l", "a"]), err(WRONGTYPE));
    }

    #[test]
    fn hlen_hexists_and_hstrlen_describe_the_hash() {
        let mut h = setup();
        h.run(&["HSET", "h", "long", "hello"]);
        assert_eq!(h.run(&["HLEN", "h"]), int(3));
        assert_eq!(h.run(&["HLEN", "missing"]), int(0));
        assert_eq!(h.run(&["HLEN", "l"]), err(WRONGTYPE));
        assert_eq!(h.run(&["HEXISTS", "h", "a"]), int(1));
        assert_eq!(h.run(&["HEXISTS", "h", "zz"]), int(0));
        assert_eq!(h.run(&["HEXISTS", "missing", "a"]), int(0));
        assert_eq!(h.run(&["HEXISTS", "l", "a"]), err(WRONGTYPE));
        assert_eq!(h.run(&["HSTRLEN", "h", "long"]), int(5));
        assert_eq!(h.run(&["HSTRLEN", "h", "zz"]), int(0));
        assert_eq!(h.run(&["HSTRLEN", "missing", "a"]), int(0));
        assert_eq!(h.run(&["HSTRLEN", "l", "a"]), err(WRONGTYPE));
    }

    #[test]
    fn hkeys_hvals_and_hgetall_list_the_hash() {
        let mut h = setup();
        assert_eq!(sorted(h.run(&["HKEYS", "h"])), ["a", "b"]);
        assert_eq!(sorted(h.run(&["HVALS", "h"])), ["1", "2"]);
        assert_eq!(sorted(h.run(&["HGETALL", "h"])), ["a=1", "b=2"]);
        assert_eq!(h.run(&["HKEYS", "missing"]), arr(&[]));
        assert_eq!(h.run(&["HVALS", "missing"]), arr(&[]));
        assert_eq!(h.run(&["HGETALL", "missing"]), Frame::Map(vec![]));
        assert_eq!(h.run(&["HKEYS", "l"]), err(WRONGTYPE));
        assert_eq!(h.run(&["HVALS", "l"]), err(WRONGTYPE));
        assert_eq!(h.run(&["HGETALL", "l"]), err(WRONGTYPE));
    }

    #[test]
    fn hincrby_adds_to_integer_fields() {
        let mut h = setup();
        assert_eq!(h.run(&["HINCRBY", "h", "a", "5"]), int(6));
        assert_eq!(h.run(&["HINCRBY", "h", "new", "-3"]), int(-3));
        assert_eq!(h.run(&["HGET", "h", "new"]), bulk("-3"));
        assert_eq!(h.run(&["HINCRBY", "missing", "f", "2"]), int(2));
        assert_eq!(h.run(&["HINCRBY", "l", "f", "1"]), err(WRONGTYPE));
    }

    #[test]
    fn hincrby_errors_match_redis() {
        let mut h = setup();
        assert_eq!(h.run(&["HINCRBY", "h", "a", "x"]), err(NOT_INTEGER));
        assert_eq!(h.run(&["HINCRBY", "missing", "a", "1.5"]), err(NOT_INTEGER));
        assert!(!exists(&h, "missing"));
        h.run(&[
            "HSET",
            "h",
            "text",
            "abc",
            "spaced",
            " 1",
            "max",
            "9223372036854775807",
        ]);
        let not_integer = err("ERR hash value is not an integer");
        assert_eq!(h.run(&["HINCRBY", "h", "text", "1"]), not_integer);
        assert_eq!(h.run(&["HINCRBY", "h", "spaced", "1"]), not_integer);
        assert_eq!(
            h.run(&["HINCRBY", "h", "max", "1"]),
            err("ERR increment or decrement would overflow")
        );
        assert_eq!(h.run(&["HGET", "h", "max"]), bulk("9223372036854775807"));
    }

    #[test]
    fn hincrbyfloat_adds_and_formats_like_redis() {
        let mut h = setup();
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "a", "0.5"]), bulk("1.5"));
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "new", "1.0e1"]), bulk("10"));
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "new", "0.1"]), bulk("10.1"));
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "new", "-10.1"]), bulk("0"));
        assert_eq!(h.run(&["HGET", "h", "new"]), bulk("0"));
        assert_eq!(h.run(&["HINCRBYFLOAT", "missing", "f", "-2"]), bulk("-2"));
        assert_eq!(h.run(&["HINCRBYFLOAT", "l", "f", "1"]), err(WRONGTYPE));
    }

    #[test]
    fn hincrbyfloat_errors_match_redis() {
        let mut h = setup();
        assert_eq!(
            h.run(&["HINCRBYFLOAT", "h", "a", "abc"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            h.run(&["HINCRBYFLOAT", "h", "a", "inf"]),
            err("ERR value is NaN or Infinity")
        );
        h.run(&["HSET", "h", "text", "abc", "spaced", "1 ", "big", "1e308"]);
        let not_float = err("ERR hash value is not a float");
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "text", "1"]), not_float);
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "spaced", "1"]), not_float);
        assert_eq!(
            h.run(&["HINCRBYFLOAT", "h", "big", "1e308"]),
            err("ERR increment would produce NaN or Infinity")
        );
        assert_eq!(h.run(&["HGET", "h", "big"]), bulk("1e308"));
    }

    #[test]
    fn hscan_walks_every_field() {
        let mut h = Harness::new();
        let mut words = vec!["HSET".to_owned(), "h".to_owned()];
        for i in 0..20 {
            words.push(format!("f{i}"));
            words.push(format!("v{i}"));
        }
        h.run(&words.iter().map(String::as_str).collect::<Vec<_>>());
        let mut seen = Vec::new();
        let mut cursor = "0".to_owned();
        loop {
            let Frame::Array(parts) = h.run(&["HSCAN", "h", &cursor, "COUNT", "3"]) else {
                panic!("HSCAN returns an array");
            };
            let [Frame::Bulk(next), Frame::Array(items)] = &parts[..] else {
                panic!("HSCAN returns [cursor, items]");
            };
            for pair in items.chunks(2) {
                let [Frame::Bulk(f), Frame::Bulk(v)] = pair else {
                    panic!()
                };
                assert_eq!(f[1..], v[1..]);
                seen.push(f.clone());
            }
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 20);
    }

    #[test]
    fn hscan_filters_drops_values_and_reports_errors_like_redis() {
        let mut h = setup();
        h.run(&["HSET", "h", "ab", "3"]);
        assert_eq!(
            sorted(inner(h.run(&["HSCAN", "h", "0", "MATCH", "a*"]))),
            ["1", "3", "a", "ab"]
        );
        assert_eq!(
            sorted(inner(h.run(&["HSCAN", "h", "0", "NOVALUES"]))),
            ["a", "ab", "b"]
        );
        let empty = Frame::Array(vec![bulk("0"), arr(&[])]);
        assert_eq!(h.run(&["HSCAN", "missing", "0"]), empty);
        assert_eq!(h.run(&["HSCAN", "missing", "0", "FOO"]), empty);
        assert_eq!(h.run(&["HSCAN", "missing", "x"]), err("ERR invalid cursor"));
        assert_eq!(h.run(&["HSCAN", "h", "0", "FOO"]), err("ERR syntax error"));
        assert_eq!(
            h.run(&["HSCAN", "h", "0", "COUNT", "0"]),
            err("ERR syntax error")
        );
        assert_eq!(h.run(&["HSCAN", "l", "0"]), err(WRONGTYPE));
    }

    /// The items of a one-step scan reply that finished.
    fn inner(reply: Frame) -> Frame {
        let Frame::Array(mut parts) = reply else {
            panic!()
        };
        assert_eq!(parts[0], bulk("0"));
        parts.pop().unwrap()
    }

    #[test]
    fn hrandfield_follows_redis_count_rules() {
        let mut h = setup();
        let Frame::Bulk(one) = h.run(&["HRANDFIELD", "h"]) else {
            panic!("HRANDFIELD without count returns a bulk");
        };
        assert!(&one[..] == b"a" || &one[..] == b"b");
        assert_eq!(sorted(h.run(&["HRANDFIELD", "h", "5"])), ["a", "b"]);
        assert_eq!(
            sorted(h.run(&["HRANDFIELD", "h", "2", "WITHVALUES"])),
            ["1", "2", "a", "b"]
        );
        let Frame::Array(repeats) = h.run(&["HRANDFIELD", "h", "-6", "withvalues"]) else {
            panic!()
        };
        assert_eq!(repeats.len(), 12);
        for pair in repeats.chunks(2) {
            assert!(pair == [bulk("a"), bulk("1")] || pair == [bulk("b"), bulk("2")]);
        }
        assert_eq!(h.run(&["HRANDFIELD", "h", "0"]), arr(&[]));
        assert_eq!(h.run(&["HRANDFIELD", "missing"]), Frame::Null);
        assert_eq!(h.run(&["HRANDFIELD", "missing", "3"]), arr(&[]));
        assert_eq!(
            h.run(&["HRANDFIELD", "missing", "-3", "WITHVALUES"]),
            arr(&[])
        );
        assert_eq!(h.run(&["HRANDFIELD", "l"]), err(WRONGTYPE));
        assert_eq!(h.run(&["HRANDFIELD", "l", "0"]), err(WRONGTYPE));
    }

    #[test]
    fn hrandfield_errors_match_redis() {
        let mut h = setup();
        assert_eq!(h.run(&["HRANDFIELD", "h", "x"]), err(NOT_INTEGER));
        assert_eq!(
            h.run(&["HRANDFIELD", "missing", "x", "WITHVALUE"]),
            err(NOT_INTEGER)
        );
        assert_eq!(
            h.run(&["HRANDFIELD", "h", "1", "WITHVALUE"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["HRANDFIELD", "h", "1", "WITHVALUES", "x"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["HRANDFIELD", "h", "-5000000000000000000", "WITHVALUES"]),
            err("ERR value is out of range")
        );
        assert_eq!(
            h.run(&["HRANDFIELD", "h", "-9223372036854775808"]),
            err(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
            )
        );
    }
}
