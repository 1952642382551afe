//! String commands: GET SET SETNX SETEX PSETEX MGET MSET MSETNX GETSET GETDEL GETEX APPEND
//! STRLEN INCR DECR INCRBY DECRBY INCRBYFLOAT GETRANGE SETRANGE.

use super::{
    Exec, Reply, Value, is_option, kept, not_float, not_integer, parse_float, parse_int,
    syntax_error,
};
use crate::command::wrong_arity;
use crate::resp::{Frame, format_double};
use bytes::{Bytes, BytesMut};

fn bulk_or_null(value: Option<&Bytes>) -> Frame {
    value.map_or(Frame::Null, |v| Frame::Bulk(v.clone()))
}

pub fn get(x: &mut Exec, argv: &[Bytes]) -> Reply {
    Ok(bulk_or_null(x.get_str(&argv[1])?))
}

/// A deadline given to SET, GETEX or SETEX, before it is made absolute.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Deadline {
    RelativeMs(i64),
    AbsoluteMs(i64),
}

/// Turns `amount` in `unit_ms` units into a deadline, refusing what Redis refuses: zero,
/// negative, or a value that overflows milliseconds.
fn deadline(amount: &[u8], unit_ms: i64, absolute: bool, cmd: &str) -> Result<Deadline, Frame> {
    let invalid = || Frame::error(format!("ERR invalid expire time in '{cmd}' command"));
    let n = parse_int(amount)?;
    if n <= 0 {
        return Err(invalid());
    }
    let ms = n.checked_mul(unit_ms).ok_or_else(invalid)?;
    Ok(if absolute {
        Deadline::AbsoluteMs(ms)
    } else {
        Deadline::RelativeMs(ms)
    })
}

impl Deadline {
    /// The absolute deadline, computed with the entry's timestamp so every replica agrees.
    fn at_ms(self, now_ms: u64, cmd: &str) -> Result<u64, Frame> {
        match self {
            Deadline::AbsoluteMs(ms) => Ok(ms as u64),
            Deadline::RelativeMs(ms) => (now_ms as i64)
                .checked_add(ms)
                .map(|at| at as u64)
                .ok_or_else(|| Frame::error(format!("ERR invalid expire time in '{cmd}' command"))),
        }
    }
}

#[derive(Default)]
struct SetOptions {
    nx: bool,
    xx: bool,
    get: bool,
    keep_ttl: bool,
    deadline: Option<Deadline>,
}

fn parse_set_options(args: &[Bytes]) -> Result<SetOptions, Frame> {
    let mut o = SetOptions::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let next = args.get(i + 1);
        if is_option(a, "nx") && !o.xx {
            o.nx = true;
        } else if is_option(a, "xx") && !o.nx {
            o.xx = true;
        } else if is_option(a, "get") {
            o.get = true;
        } else if is_option(a, "keepttl") && o.deadline.is_none() {
            o.keep_ttl = true;
        } else if let Some(amount) = next.filter(|_| o.deadline.is_none() && !o.keep_ttl) {
            let (unit, absolute) = if is_option(a, "ex") {
                (1000, false)
            } else if is_option(a, "px") {
                (1, false)
            } else if is_option(a, "exat") {
                (1000, true)
            } else if is_option(a, "pxat") {
                (1, true)
            } else {
                return Err(syntax_error());
            };
            o.deadline = Some(deadline(amount, unit, absolute, "set")?);
            i += 1;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    Ok(o)
}

/// Checks SET's options without running it: a write with a syntax error never reaches the log.
pub fn check_set(argv: &[Bytes]) -> Result<(), Frame> {
    parse_set_options(&argv[3..]).map(|_| ())
}

pub fn set(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let o = parse_set_options(&argv[3..])?;
    let key = &argv[1];
    let old = if o.get {
        x.get_str(key)?.cloned()
    } else {
        None
    };
    let exists = x.exists(key);
    if (o.nx && exists) || (o.xx && !exists) {
        return Ok(if o.get {
            bulk_or_null(old.as_ref())
        } else {
            Frame::Null
        });
    }
    let at = o.deadline.map(|d| d.at_ms(x.now_ms, "set")).transpose()?;
    store_string(x, key, kept(&argv[2]), at, o.keep_ttl);
    Ok(if o.get {
        bulk_or_null(old.as_ref())
    } else {
        Frame::ok()
    })
}

/// Stores a string with an optional absolute deadline; a deadline already past deletes the
/// key, as Redis does.
fn store_string(x: &mut Exec, key: &Bytes, value: Bytes, at_ms: Option<u64>, keep_ttl: bool) {
    match at_ms {
        Some(at) if at <= x.now_ms => {
            x.delete(key);
        }
        Some(at) => {
            x.set(key, Value::Str(value), false);
            x.set_expiry(key, Some(at));
        }
        None => x.set(key, Value::Str(value), keep_ttl),
    }
}

pub fn setnx(x: &mut Exec, argv: &[Bytes]) -> Reply {
    if x.exists(&argv[1]) {
        return Ok(Frame::Integer(0));
    }
    x.set(&argv[1], Value::Str(kept(&argv[2])), false);
    Ok(Frame::Integer(1))
}

/// SETEX (seconds, `unit_ms` 1000) and PSETEX (milliseconds, `unit_ms` 1).
pub fn setex(x: &mut Exec, argv: &[Bytes], unit_ms: i64) -> Reply {
    let cmd = if unit_ms == 1 { "psetex" } else { "setex" };
    let at = deadline(&argv[2], unit_ms, false, cmd)?.at_ms(x.now_ms, cmd)?;
    store_string(x, &argv[1], kept(&argv[3]), Some(at), false);
    Ok(Frame::ok())
}

pub fn mget(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let values = argv[1..]
        .iter()
        .map(|key| match x.get(key).map(|e| &e.value) {
            Some(Value::Str(s)) => Frame::Bulk(s.clone()),
            _ => Frame::Null,
        })
        .collect();
    Ok(Frame::Array(values))
}

pub fn check_mset(argv: &[Bytes]) -> Result<(), Frame> {
    if argv.len().is_multiple_of(2) {
        let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
        return Err(wrong_arity(&name));
    }
    Ok(())
}

pub fn mset(x: &mut Exec, argv: &[Bytes]) -> Reply {
    check_mset(argv)?;
    for pair in argv[1..].chunks(2) {
        x.set(&pair[0], Value::Str(kept(&pair[1])), false);
    }
    Ok(Frame::ok())
}

pub fn msetnx(x: &mut Exec, argv: &[Bytes]) -> Reply {
    check_mset(argv)?;
    if argv[1..].chunks(2).any(|pair| x.exists(&pair[0])) {
        return Ok(Frame::Integer(0));
    }
    for pair in argv[1..].chunks(2) {
        x.set(&pair[0], Value::Str(kept(&pair[1])), false);
    }
    Ok(Frame::Integer(1))
}

pub fn getset(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let old = x.get_str(&argv[1])?.cloned();
    x.set(&argv[1], Value::Str(kept(&argv[2])), false);
    Ok(bulk_or_null(old.as_ref()))
}

pub fn getdel(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let old = x.get_str(&argv[1])?.cloned();
    if old.is_some() {
        x.delete(&argv[1]);
    }
    Ok(bulk_or_null(old.as_ref()))
}

enum GetexChange {
    Keep,
    Persist,
    Expire(Deadline),
}

fn parse_getex_options(args: &[Bytes]) -> Result<GetexChange, Frame> {
    let mut change = GetexChange::Keep;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let unset = matches!(change, GetexChange::Keep);
        if is_option(a, "persist") && unset {
            change = GetexChange::Persist;
        } else if unset && i + 1 < args.len() {
            let (unit, absolute) = if is_option(a, "ex") {
                (1000, false)
            } else if is_option(a, "px") {
                (1, false)
            } else if is_option(a, "exat") {
                (1000, true)
            } else if is_option(a, "pxat") {
                (1, true)
            } else {
                return Err(syntax_error());
            };
            change = GetexChange::Expire(deadline(&args[i + 1], unit, absolute, "getex")?);
            i += 1;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    Ok(change)
}

pub fn check_getex(argv: &[Bytes]) -> Result<(), Frame> {
    parse_getex_options(&argv[2..]).map(|_| ())
}

pub fn getex(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let change = parse_getex_options(&argv[2..])?;
    let key = &argv[1];
    let Some(value) = x.get_str(key)?.cloned() else {
        return Ok(Frame::Null);
    };
    match change {
        GetexChange::Keep => {}
        GetexChange::Persist => x.set_expiry(key, None),
        GetexChange::Expire(d) => {
            let at = d.at_ms(x.now_ms, "getex")?;
            if at <= x.now_ms {
                x.delete(key);
            } else {
                x.set_expiry(key, Some(at));
            }
        }
    }
    Ok(Frame::Bulk(value))
}

fn too_big() -> Frame {
    Frame::error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
}

pub fn append(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    let old = x.get_str(key)?.cloned().unwrap_or_default();
    if old.len() + argv[2].len() > x.limits().string_len_max {
        return Err(too_big());
    }
    let mut joined = BytesMut::with_capacity(old.len() + argv[2].len());
    joined.extend_from_slice(&old);
    joined.extend_from_slice(&argv[2]);
    let len = joined.len();
    x.set(key, Value::Str(joined.freeze()), true);
    Ok(Frame::Integer(len as i64))
}

pub fn strlen(x: &mut Exec, argv: &[Bytes]) -> Reply {
    Ok(Frame::Integer(
        x.get_str(&argv[1])?.map_or(0, |s| s.len()) as i64
    ))
}

pub fn incrby(x: &mut Exec, argv: &[Bytes], negate: bool) -> Reply {
    let by = parse_int(&argv[2])?;
    let by = if negate {
        by.checked_neg()
            .ok_or_else(|| Frame::error("ERR decrement would overflow"))?
    } else {
        by
    };
    incr_by(x, &argv[1], by)
}

pub fn incr_by(x: &mut Exec, key: &Bytes, by: i64) -> Reply {
    let current = match x.get_str(key)? {
        None => 0,
        Some(s) => parse_int(s).map_err(|_| not_integer())?,
    };
    let next = current
        .checked_add(by)
        .ok_or_else(|| Frame::error("ERR increment or decrement would overflow"))?;
    x.set(key, Value::Str(Bytes::from(next.to_string())), true);
    Ok(Frame::Integer(next))
}

pub fn incrbyfloat(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    let by = parse_float(&argv[2])?;
    let current = match x.get_str(key)? {
        None => 0.0,
        Some(s) => parse_float(s).map_err(|_| not_float())?,
    };
    let next = current + by;
    if !next.is_finite() {
        return Err(Frame::error("ERR increment would produce NaN or Infinity"));
    }
    let text = Bytes::from(format_double(next));
    x.set(key, Value::Str(text.clone()), true);
    Ok(Frame::Bulk(text))
}

pub fn getrange(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let start = parse_int(&argv[2])?;
    let end = parse_int(&argv[3])?;
    let value = x.get_str(&argv[1])?.cloned().unwrap_or_default();
    let len = value.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Ok(Frame::Bulk(Bytes::new()));
    }
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let mut end = if end < 0 { (len + end).max(0) } else { end };
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Ok(Frame::Bulk(Bytes::new()));
    }
    Ok(Frame::Bulk(value.slice(start as usize..=end as usize)))
}

pub fn setrange(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    let offset = parse_int(&argv[2])?;
    if offset < 0 {
        return Err(Frame::error("ERR offset is out of range"));
    }
    let offset = offset as usize;
    let patch = &argv[3];
    let old = x.get_str(key)?.cloned();
    if patch.is_empty() {
        return Ok(Frame::Integer(old.map_or(0, |s| s.len()) as i64));
    }
    if offset.saturating_add(patch.len()) > x.limits().string_len_max {
        return Err(too_big());
    }
    let mut value = BytesMut::from(old.as_deref().unwrap_or_default());
    if value.len() < offset + patch.len() {
        value.resize(offset + patch.len(), 0);
    }
    value[offset..offset + patch.len()].copy_from_slice(patch);
    let len = value.len();
    x.set(key, Value::Str(value.freeze()), true);
    Ok(Frame::Integer(len as i64))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use crate::resp::Frame;

    #[test]
    fn set_options_follow_redis() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SET", "k", "v"]), ok());
        assert_eq!(h.run(&["SET", "k", "w", "NX"]), Frame::Null);
        assert_eq!(h.run(&["SET", "k", "w", "XX", "GET"]), bulk("v"));
        assert_eq!(h.run(&["SET", "n", "w", "XX"]), Frame::Null);
        assert_eq!(
            h.run(&["SET", "k", "w", "NX", "XX"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["SET", "k", "w", "EX", "10", "PX", "5"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["SET", "k", "w", "EX", "10", "KEEPTTL"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["SET", "k", "w", "EX", "0"]),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(
            h.run(&["SET", "k", "w", "EX", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(h.run(&["SET", "k", "w", "EX"]), err("ERR syntax error"));
        h.run(&["RPUSH", "l", "a"]);
        assert_eq!(
            h.run(&["SET", "l", "v", "GET"]),
            err("WRONGTYPE Operation against a key holding the wrong kind of value")
        );
        assert_eq!(h.run(&["SET", "l", "v"]), ok());
        assert_eq!(h.run(&["GET", "l"]), bulk("v"));
    }

    #[test]
    fn ttls_are_made_absolute_with_the_entry_time() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v", "EX", "10"]);
        assert_eq!(h.run(&["PTTL", "k"]), int(10_000));
        h.now_ms += 4_000;
        assert_eq!(h.run(&["TTL", "k"]), int(6));
        h.run(&["SET", "k", "v2", "KEEPTTL"]);
        assert_eq!(h.run(&["TTL", "k"]), int(6));
        h.run(&["SET", "k", "v3"]);
        assert_eq!(h.run(&["TTL", "k"]), int(-1));
        let past = (h.now_ms / 1000 - 1).to_string();
        assert_eq!(h.run(&["SET", "k", "v", "EXAT", &past]), ok());
        assert_eq!(h.run(&["EXISTS", "k"]), int(0));
        h.run(&["PSETEX", "p", "1500", "v"]);
        assert_eq!(h.run(&["PTTL", "p"]), int(1500));
        assert_eq!(
            h.run(&["SETEX", "p", "-1", "v"]),
            err("ERR invalid expire time in 'setex' command")
        );
    }

    #[test]
    fn counters_check_types_and_overflow() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["INCR", "c"]), int(1));
        assert_eq!(h.run(&["INCRBY", "c", "10"]), int(11));
        assert_eq!(h.run(&["DECRBY", "c", "20"]), int(-9));
        assert_eq!(h.run(&["DECR", "c"]), int(-10));
        h.run(&["SET", "c", "9223372036854775807"]);
        assert_eq!(
            h.run(&["INCR", "c"]),
            err("ERR increment or decrement would overflow")
        );
        h.run(&["SET", "s", "abc"]);
        assert_eq!(
            h.run(&["INCR", "s"]),
            err("ERR value is not an integer or out of range")
        );
        h.run(&["SET", "s", " 1"]);
        assert_eq!(
            h.run(&["INCR", "s"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["DECRBY", "c", "-9223372036854775808"]),
            err("ERR decrement would overflow")
        );
        assert_eq!(h.run(&["INCRBYFLOAT", "f", "10.5"]), bulk("10.5"));
        assert_eq!(h.run(&["INCRBYFLOAT", "f", "0.1"]), bulk("10.6"));
        assert_eq!(h.run(&["INCRBYFLOAT", "f", "-5e0"]), bulk("5.6"));
        assert_eq!(
            h.run(&["INCRBYFLOAT", "f", "inf"]),
            err("ERR increment would produce NaN or Infinity")
        );
        assert_eq!(
            h.run(&["INCRBYFLOAT", "s", "1"]),
            err("ERR value is not a valid float")
        );
    }

    #[test]
    fn multi_key_string_commands() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["MSET", "a", "1", "b", "2"]), ok());
        assert_eq!(
            h.run(&["MSET", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'mset' command")
        );
        h.run(&["RPUSH", "l", "x"]);
        assert_eq!(
            h.run(&["MGET", "a", "nope", "l", "b"]),
            Frame::Array(vec![bulk("1"), Frame::Null, Frame::Null, bulk("2")])
        );
        assert_eq!(h.run(&["MSETNX", "a", "9", "c", "3"]), int(0));
        assert_eq!(h.run(&["GET", "c"]), Frame::Null);
        assert_eq!(h.run(&["MSETNX", "c", "3", "d", "4"]), int(1));
        assert_eq!(h.run(&["SETNX", "c", "x"]), int(0));
        assert_eq!(h.run(&["GETSET", "c", "x"]), bulk("3"));
        assert_eq!(h.run(&["GETDEL", "c"]), bulk("x"));
        assert_eq!(h.run(&["GETDEL", "c"]), Frame::Null);
    }

    #[test]
    fn getex_changes_the_deadline() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v"]);
        assert_eq!(h.run(&["GETEX", "k", "PX", "500"]), bulk("v"));
        assert_eq!(h.run(&["PTTL", "k"]), int(500));
        assert_eq!(h.run(&["GETEX", "k", "PERSIST"]), bulk("v"));
        assert_eq!(h.run(&["PTTL", "k"]), int(-1));
        assert_eq!(
            h.run(&["GETEX", "k", "PERSIST", "EX", "1"]),
            err("ERR syntax error")
        );
        assert_eq!(h.run(&["GETEX", "missing", "EX", "1"]), Frame::Null);
    }

    #[test]
    fn ranges_and_append() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["APPEND", "s", "Hello"]), int(5));
        assert_eq!(h.run(&["APPEND", "s", " World"]), int(11));
        assert_eq!(h.run(&["STRLEN", "s"]), int(11));
        assert_eq!(h.run(&["GETRANGE", "s", "0", "4"]), bulk("Hello"));
        assert_eq!(h.run(&["GETRANGE", "s", "-5", "-1"]), bulk("World"));
        assert_eq!(h.run(&["GETRANGE", "s", "5", "1"]), bulk(""));
        assert_eq!(h.run(&["GETRANGE", "s", "-1", "-5"]), bulk(""));
        assert_eq!(h.run(&["GETRANGE", "s", "0", "100"]), bulk("Hello World"));
        assert_eq!(h.run(&["SETRANGE", "s", "6", "Redis"]), int(11));
        assert_eq!(h.run(&["GET", "s"]), bulk("Hello Redis"));
        assert_eq!(h.run(&["SETRANGE", "z", "3", "ab"]), int(5));
        assert_eq!(
            h.run(&["GET", "z"]),
            Frame::Bulk(bytes::Bytes::from_static(b"\0\0\0ab"))
        );
        assert_eq!(h.run(&["SETRANGE", "e", "3", ""]), int(0));
        assert_eq!(h.run(&["EXISTS", "e"]), int(0));
        assert_eq!(
            h.run(&["SETRANGE", "s", "-1", "x"]),
            err("ERR offset is out of range")
        );
        assert_eq!(
            h.run(&["SETRANGE", "s", "536870911", "xx"]),
            err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        );
    }
}
