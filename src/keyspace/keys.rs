//! Generic key commands: DEL UNLINK EXISTS TYPE EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL
//! EXPIRETIME PEXPIRETIME PERSIST KEYS SCAN RENAME RENAMENX RANDOMKEY COPY FLUSHDB FLUSHALL.

use super::{
    DB_COUNT, Exec, Reply, glob_match, is_option, parse_int, parse_scan, scan_reply, syntax_error,
};
use crate::resp::Frame;
use bytes::Bytes;

pub fn del(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let deleted = argv[1..].iter().filter(|key| x.delete(key)).count();
    Ok(Frame::Integer(deleted as i64))
}

pub fn exists(x: &mut Exec, argv: &[Bytes]) -> Reply {
    // Redis counts a key named twice twice.
    Ok(Frame::Integer(
        argv[1..].iter().filter(|key| x.exists(key)).count() as i64,
    ))
}

pub fn type_of(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let name = x.get(&argv[1]).map_or("none", |e| e.value.type_name());
    Ok(Frame::simple(name))
}

/// EXPIRE NX|XX|GT|LT conditions.
#[derive(Default)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn parse_expire_flags(args: &[Bytes]) -> Result<ExpireFlags, Frame> {
    let mut f = ExpireFlags::default();
    for a in args {
        if is_option(a, "nx") {
            f.nx = true;
        } else if is_option(a, "xx") {
            f.xx = true;
        } else if is_option(a, "gt") {
            f.gt = true;
        } else if is_option(a, "lt") {
            f.lt = true;
        } else {
            return Err(Frame::error(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(a)
            )));
        }
    }
    if f.nx && (f.xx || f.gt || f.lt) {
        return Err(Frame::error(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if f.gt && f.lt {
        return Err(Frame::error(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(f)
}

pub fn check_expire(argv: &[Bytes]) -> Result<(), Frame> {
    parse_expire_flags(&argv[3..]).map(|_| ())
}

/// EXPIRE/PEXPIRE (relative) and EXPIREAT/PEXPIREAT (absolute), in `unit_ms` units.
pub fn expire(x: &mut Exec, argv: &[Bytes], unit_ms: i64, absolute: bool) -> Reply {
    let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
    let invalid = || Frame::error(format!("ERR invalid expire time in '{name}' command"));
    let amount = parse_int(&argv[2])?;
    let flags = parse_expire_flags(&argv[3..])?;
    let ms = amount.checked_mul(unit_ms).ok_or_else(invalid)?;
    let at = if absolute {
        ms
    } else {
        (x.now_ms as i64).checked_add(ms).ok_or_else(invalid)?
    };
    let key = &argv[1];
    let Some(current) = x.expiry(key) else {
        return Ok(Frame::Integer(0));
    };
    // A key without a deadline counts as an infinite one for GT and LT, as in Redis.
    let allowed = match current {
        Some(cur) => {
            !(flags.nx || (flags.gt && at <= cur as i64) || (flags.lt && at >= cur as i64))
        }
        None => !flags.xx && !flags.gt,
    };
    if !allowed {
        return Ok(Frame::Integer(0));
    }
    if at <= x.now_ms as i64 {
        x.delete(key);
    } else {
        x.set_expiry(key, Some(at as u64));
    }
    Ok(Frame::Integer(1))
}

/// TTL/PTTL (remaining, `absolute` false) and EXPIRETIME/PEXPIRETIME (deadline).
pub fn ttl(x: &mut Exec, argv: &[Bytes], unit_ms: u64, absolute: bool) -> Reply {
    let reply = match x.expiry(&argv[1]) {
        None => -2,
        Some(None) => -1,
        Some(Some(at)) if absolute => (at / unit_ms) as i64,
        Some(Some(at)) => {
            let left = at.saturating_sub(x.now_ms);
            // Redis rounds TTL to the nearest second.
            if unit_ms == 1 {
                left as i64
            } else {
                ((left + 500) / unit_ms) as i64
            }
        }
    };
    Ok(Frame::Integer(reply))
}

pub fn persist(x: &mut Exec, argv: &[Bytes]) -> Reply {
    match x.expiry(&argv[1]) {
        Some(Some(_)) => {
            x.set_expiry(&argv[1], None);
            Ok(Frame::Integer(1))
        }
        _ => Ok(Frame::Integer(0)),
    }
}

pub fn keys(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let pattern = &argv[1];
    let all = pattern.as_ref() == b"*";
    let found = x
        .db_map()
        .iter()
        .filter(|(k, e)| x.is_live(e) && (all || glob_match(pattern, k)))
        .map(|(k, _)| Frame::Bulk(k.clone()))
        .collect();
    Ok(Frame::Array(found))
}

pub fn scan(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let o = parse_scan(&argv[1], &argv[2..], true)?;
    let (next, items) = x.db_map().scan(o.cursor, o.count);
    let found = items
        .into_iter()
        .filter(|(k, e)| {
            x.is_live(e)
                && o.pattern.as_ref().is_none_or(|p| glob_match(p, k))
                && o.type_name
                    .as_ref()
                    .is_none_or(|t| e.value.type_name() == t)
        })
        .map(|(k, _)| Frame::Bulk(k.clone()))
        .collect();
    Ok(scan_reply(next, found))
}

pub fn rename(x: &mut Exec, argv: &[Bytes], only_if_new: bool) -> Reply {
    let (src, dst) = (&argv[1], &argv[2]);
    if !x.exists(src) {
        return Err(Frame::error("ERR no such key"));
    }
    if src == dst {
        return Ok(if only_if_new {
            Frame::Integer(0)
        } else {
            Frame::ok()
        });
    }
    if only_if_new && x.exists(dst) {
        return Ok(Frame::Integer(0));
    }
    let db = x.db;
    let (value, at) = x.take_in(db, src).expect("checked above");
    x.delete(dst);
    x.set(dst, value, false);
    x.set_expiry(dst, at);
    Ok(if only_if_new {
        Frame::Integer(1)
    } else {
        Frame::ok()
    })
}

pub fn randomkey(x: &mut Exec) -> Reply {
    // Skip keys that are logically expired; give up after a bounded number of draws, as a
    // keyspace of expired keys would otherwise loop.
    for _ in 0..100 {
        let Some((key, entry)) = x.ks.dbs[x.db].random(x.rng) else {
            return Ok(Frame::Null);
        };
        if !super::is_expired(entry, x.now_ms) {
            return Ok(Frame::Bulk(key.clone()));
        }
    }
    Ok(Frame::Null)
}

struct CopyOptions {
    db: usize,
    replace: bool,
}

fn parse_copy_options(args: &[Bytes], current_db: usize) -> Result<CopyOptions, Frame> {
    let mut o = CopyOptions {
        db: current_db,
        replace: false,
    };
    let mut i = 0;
    while i < args.len() {
        if is_option(&args[i], "replace") {
            o.replace = true;
        } else if is_option(&args[i], "db") && i + 1 < args.len() {
            let db = parse_int(&args[i + 1])?;
            if !(0..DB_COUNT as i64).contains(&db) {
                return Err(Frame::error("ERR DB index is out of range"));
            }
            o.db = db as usize;
            i += 1;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    Ok(o)
}

pub fn check_copy(argv: &[Bytes]) -> Result<(), Frame> {
    parse_copy_options(&argv[3..], 0).map(|_| ())
}

pub fn copy(x: &mut Exec, argv: &[Bytes]) -> Reply {
    let o = parse_copy_options(&argv[3..], x.db)?;
    let (src, dst) = (&argv[1], &argv[2]);
    if o.db == x.db && src == dst {
        return Err(Frame::error(
            "ERR source and destination objects are the same",
        ));
    }
    let Some(entry) = x.get(src) else {
        return Ok(Frame::Integer(0));
    };
    let (value, at) = (entry.value.clone(), entry.expire_at_ms);
    if x.get_in(o.db, dst).is_some() {
        if !o.replace {
            return Ok(Frame::Integer(0));
        }
        x.delete_in(o.db, dst);
    }
    x.set_in(o.db, dst, value, false);
    x.set_expiry_in(o.db, dst, at);
    Ok(Frame::Integer(1))
}

fn check_flush_options(argv: &[Bytes]) -> Result<(), Frame> {
    match &argv[1..] {
        [] => Ok(()),
        [mode] if is_option(mode, "async") || is_option(mode, "sync") => Ok(()),
        _ => Err(syntax_error()),
    }
}

pub fn check_flush(argv: &[Bytes]) -> Result<(), Frame> {
    check_flush_options(argv)
}

pub fn flushdb(x: &mut Exec, argv: &[Bytes]) -> Reply {
    check_flush_options(argv)?;
    x.ks.flush_db(x.db);
    Ok(Frame::ok())
}

pub fn flushall(x: &mut Exec, argv: &[Bytes]) -> Reply {
    check_flush_options(argv)?;
    for db in 0..DB_COUNT {
        x.ks.flush_db(db);
    }
    Ok(Frame::ok())
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use crate::resp::Frame;

    #[test]
    fn del_exists_type() {
        let mut h = Harness::new();
        h.run(&["SET", "a", "1"]);
        h.run(&["RPUSH", "l", "x"]);
        assert_eq!(h.run(&["EXISTS", "a", "a", "nope"]), int(2));
        assert_eq!(h.run(&["TYPE", "l"]), Frame::simple("list"));
        assert_eq!(h.run(&["TYPE", "nope"]), Frame::simple("none"));
        assert_eq!(h.run(&["DEL", "a", "l", "nope"]), int(2));
        assert_eq!(h.run(&["UNLINK", "a"]), int(0));
    }

    #[test]
    fn expire_family_and_conditions() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v"]);
        assert_eq!(h.run(&["EXPIRE", "missing", "10"]), int(0));
        assert_eq!(h.run(&["EXPIRE", "k", "10", "XX"]), int(0));
        assert_eq!(h.run(&["EXPIRE", "k", "10", "GT"]), int(0));
        assert_eq!(h.run(&["EXPIRE", "k", "10", "NX"]), int(1));
        assert_eq!(h.run(&["EXPIRE", "k", "20", "NX"]), int(0));
        assert_eq!(h.run(&["EXPIRE", "k", "5", "GT"]), int(0));
        assert_eq!(h.run(&["EXPIRE", "k", "5", "LT"]), int(1));
        assert_eq!(h.run(&["TTL", "k"]), int(5));
        assert_eq!(
            h.run(&["EXPIRE", "k", "5", "NX", "XX"]),
            err("ERR NX and XX, GT or LT options at the same time are not compatible")
        );
        assert_eq!(
            h.run(&["EXPIRE", "k", "5", "GT", "LT"]),
            err("ERR GT and LT options at the same time are not compatible")
        );
        assert_eq!(
            h.run(&["EXPIRE", "k", "5", "FOO"]),
            err("ERR Unsupported option FOO")
        );
        let at_s = h.now_ms / 1000 + 100;
        assert_eq!(h.run(&["EXPIREAT", "k", &at_s.to_string()]), int(1));
        assert_eq!(h.run(&["EXPIRETIME", "k"]), int(at_s as i64));
        assert_eq!(h.run(&["PEXPIRETIME", "k"]), int(at_s as i64 * 1000));
        assert_eq!(h.run(&["PERSIST", "k"]), int(1));
        assert_eq!(h.run(&["PERSIST", "k"]), int(0));
        assert_eq!(h.run(&["TTL", "k"]), int(-1));
        assert_eq!(h.run(&["TTL", "missing"]), int(-2));
        assert_eq!(h.run(&["EXPIRETIME", "k"]), int(-1));
        assert_eq!(h.run(&["PEXPIRE", "k", "-1"]), int(1));
        assert_eq!(h.run(&["EXISTS", "k"]), int(0));
        h.run(&["SET", "k", "v"]);
        assert_eq!(
            h.run(&["PEXPIRE", "k", "9223372036854775807"]),
            err("ERR invalid expire time in 'pexpire' command")
        );
    }

    #[test]
    fn keys_and_scan() {
        let mut h = Harness::new();
        for k in ["user:1", "user:2", "order:1"] {
            h.run(&["SET", k, "v"]);
        }
        h.run(&["SADD", "user:set", "m"]);
        let Frame::Array(mut found) = h.run(&["KEYS", "user:?"]) else {
            panic!()
        };
        found.sort_by_key(|f| format!("{f:?}"));
        assert_eq!(found, vec![bulk("user:1"), bulk("user:2")]);
        let mut seen = Vec::new();
        let mut cursor = "0".to_owned();
        loop {
            let Frame::Array(reply) = h.run(&["SCAN", &cursor, "COUNT", "1", "TYPE", "string"])
            else {
                panic!()
            };
            let Frame::Bulk(next) = &reply[0] else {
                panic!()
            };
            let Frame::Array(items) = &reply[1] else {
                panic!()
            };
            seen.extend(items.iter().cloned());
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(h.run(&["SCAN", "x"]), err("ERR invalid cursor"));
        assert_eq!(h.run(&["SCAN", "0", "COUNT", "0"]), err("ERR syntax error"));
        assert_eq!(h.run(&["SCAN", "0", "BOGUS"]), err("ERR syntax error"));
    }

    #[test]
    fn rename_copy_randomkey_flush() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["RENAME", "a", "b"]), err("ERR no such key"));
        h.run(&["SET", "a", "1", "EX", "100"]);
        assert_eq!(h.run(&["RENAME", "a", "b"]), ok());
        assert_eq!(h.run(&["TTL", "b"]), int(100));
        assert_eq!(h.run(&["RENAME", "b", "b"]), ok());
        h.run(&["SET", "c", "3"]);
        assert_eq!(h.run(&["RENAMENX", "b", "c"]), int(0));
        assert_eq!(h.run(&["RENAMENX", "b", "d"]), int(1));
        assert_eq!(h.run(&["COPY", "d", "c"]), int(0));
        assert_eq!(h.run(&["COPY", "d", "c", "REPLACE"]), int(1));
        assert_eq!(h.run(&["GET", "c"]), bulk("1"));
        assert_eq!(
            h.run(&["COPY", "d", "d"]),
            err("ERR source and destination objects are the same")
        );
        assert_eq!(h.run(&["COPY", "d", "d", "DB", "1"]), int(1));
        assert_eq!(
            h.run(&["COPY", "d", "d", "DB", "16"]),
            err("ERR DB index is out of range")
        );
        assert!(matches!(h.run(&["RANDOMKEY"]), Frame::Bulk(_)));
        assert_eq!(h.run(&["FLUSHDB", "LAZY"]), err("ERR syntax error"));
        assert_eq!(h.run(&["FLUSHDB"]), ok());
        assert_eq!(h.run(&["RANDOMKEY"]), Frame::Null);
        h.db = 1;
        assert_eq!(h.run(&["DBSIZE"]), int(1));
        assert_eq!(h.run(&["FLUSHALL", "ASYNC"]), ok());
        assert_eq!(h.run(&["DBSIZE"]), int(0));
    }
}
