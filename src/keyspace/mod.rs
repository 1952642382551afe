//! The keyspace: the deterministic state machine that committed commands are applied to.
//!
//! It never reads a clock. Every call carries `now_ms`: for a write, the timestamp its log
//! entry carries (so every replica computes the same thing); for a read, the serving replica's
//! current time. A logically expired key reads as absent; it is removed only when a write
//! applied from the log touches it, or by an expiry entry the leader proposed
//! ([`Keyspace::apply_expiry`]), never by a replica on its own.
//!
//! Command handlers live in one module per data type and share the helpers of [`Exec`].

mod chunked_list;
mod hashes;
mod keys;
mod lists;
mod sets;
mod strings;
pub mod table;

use crate::command::{Command, CommandId};
use crate::resp::Frame;
use crate::rng::Rng;
use bytes::Bytes;
pub use chunked_list::ChunkedList;
use std::collections::BTreeSet;
pub use table::HashOrderedMap;

/// What the keyspace keeps of a request's argument (a key, a value, a member, a field): a
/// small one gets a buffer of its own. The arguments of a small request share one copy of it
/// (see `resp`), so a kept slice would hold the whole request: a list of 100-byte values took
/// 263 bytes per element, and Redis 118 (600,000 LPUSHes, resident memory). A larger
/// argument was copied on its own already and is shared as it is.
pub(crate) fn kept(arg: &Bytes) -> Bytes {
    if arg.len() <= crate::resp::SHARED_REQUEST_BYTES_MAX {
        Bytes::copy_from_slice(arg)
    } else {
        arg.clone()
    }
}

/// Databases per keyspace, as Redis's default `databases 16`.
pub const DB_COUNT: usize = 16;

/// A value and its metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub value: Value,
    expire_at_ms: Option<u64>,
    /// Log index of the last write to this key: what WATCH compares.
    version: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(Bytes),
    List(ChunkedList),
    // Boxed: a map is several times the size of a string or list, and every slot of the
    // keyspace's table is as big as the largest variant.
    Hash(Box<HashOrderedMap<Bytes>>),
    Set(Box<HashOrderedMap<()>>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
        }
    }
}

/// Limits the keyspace enforces, from the server's configuration.
#[derive(Clone, Copy, Debug)]
pub struct KeyspaceLimits {
    /// Longest string APPEND and SETRANGE may build (`proto-max-bulk-len`).
    pub string_len_max: usize,
}

impl Default for KeyspaceLimits {
    fn default() -> Self {
        KeyspaceLimits {
            string_len_max: 512 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Keyspace {
    dbs: Vec<HashOrderedMap<Entry>>,
    /// Every key with a time to live, by deadline: what active expiry walks.
    expiries: BTreeSet<(u64, u8, Bytes)>,
    expires_per_db: [usize; DB_COUNT],
    pub limits: KeyspaceLimits,
}

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace {
            dbs: (0..DB_COUNT).map(|_| HashOrderedMap::new()).collect(),
            expiries: BTreeSet::new(),
            expires_per_db: [0; DB_COUNT],
            limits: KeyspaceLimits::default(),
        }
    }
}

/// How a command is being run: applied from the log, or served as a read.
#[derive(Clone, Copy, Debug)]
pub struct ExecContext {
    pub db: usize,
    pub now_ms: u64,
    /// The log index of the entry being applied, stamped on every key it writes; 0 for reads.
    pub version: u64,
}

impl Keyspace {
    pub fn new() -> Keyspace {
        Keyspace::default()
    }

    /// Runs one command. Reads must be [`crate::command::Route::Read`] commands; writes are
    /// applied only from committed log entries, with the entry's timestamp and index.
    pub fn execute(&mut self, cmd: &Command, ctx: ExecContext, rng: &mut Rng) -> Frame {
        self.execute_argv(cmd.id(), &cmd.argv, ctx, rng)
    }

    /// [`Keyspace::execute`] on borrowed arguments (`id` looked up from `argv`, arity
    /// checked): a replica applies its log's entries without copying them.
    pub fn execute_argv(
        &mut self,
        id: CommandId,
        argv: &[Bytes],
        ctx: ExecContext,
        rng: &mut Rng,
    ) -> Frame {
        assert!(ctx.db < DB_COUNT, "db index {} out of range", ctx.db);
        let mut x = Exec {
            ks: self,
            db: ctx.db,
            now_ms: ctx.now_ms,
            version: ctx.version,
            rng,
        };
        dispatch(&mut x, id, argv)
    }

    /// The WATCH version of a key: the index of its last write, `None` when absent or expired.
    pub fn version_of(&self, db: usize, key: &[u8], now_ms: u64) -> Option<u64> {
        self.dbs[db]
            .get(key)
            .filter(|e| !is_expired(e, now_ms))
            .map(|e| e.version)
    }

    /// Keys whose deadline passed before `now_ms`, oldest first, at most `limit`: what the
    /// leader proposes to delete.
    pub fn expired_keys(&self, now_ms: u64, limit: usize) -> Vec<(u8, Bytes)> {
        self.expiries
            .iter()
            .take_while(|(at, _, _)| *at < now_ms)
            .take(limit)
            .map(|(_, db, key)| (*db, key.clone()))
            .collect()
    }

    /// Applies an expiry entry: deletes each key that is still expired at the entry's time
    /// (a key rewritten since the leader proposed it is left alone). Returns how many went.
    pub fn apply_expiry(&mut self, keys: &[(u8, Bytes)], now_ms: u64) -> usize {
        let mut deleted = 0;
        for (db, key) in keys {
            let db = *db as usize;
            if db >= DB_COUNT {
                continue;
            }
            if self.dbs[db].get(key).is_some_and(|e| is_expired(e, now_ms)) {
                self.remove_entry(db, key);
                deleted += 1;
            }
        }
        deleted
    }

    /// Number of keys in a database, counting keys that expired but are not deleted yet (as
    /// Redis's DBSIZE does).
    pub fn db_len(&self, db: usize) -> usize {
        self.dbs[db].len()
    }

    /// `(keys, keys with a deadline)` for each non-empty database: INFO's keyspace section.
    pub fn db_stats(&self) -> Vec<(usize, usize, usize)> {
        (0..DB_COUNT)
            .filter(|&db| !self.dbs[db].is_empty())
            .map(|db| (db, self.dbs[db].len(), self.expires_per_db[db]))
            .collect()
    }

    /// A digest of the whole keyspace: replicas that applied the same prefix of the log have
    /// the same digest (state-machine safety).
    pub fn digest(&self) -> u64 {
        let mut h = crc32fast::Hasher::new();
        let mut wide: u64 = 0;
        for (db, map) in self.dbs.iter().enumerate() {
            for (key, entry) in map.iter() {
                h.update(&[db as u8]);
                h.update(&(key.len() as u64).to_le_bytes());
                h.update(key);
                h.update(&entry.expire_at_ms.unwrap_or(0).to_le_bytes());
                digest_value(&mut h, &entry.value);
                wide = wide.rotate_left(5) ^ table::hash_key(key) ^ h.clone().finalize() as u64;
            }
        }
        wide ^ ((h.finalize() as u64) << 32)
    }

    fn remove_entry(&mut self, db: usize, key: &[u8]) -> Option<Entry> {
        let entry = self.dbs[db].remove(key)?;
        if let Some(at) = entry.expire_at_ms {
            self.expiries
                .remove(&(at, db as u8, Bytes::copy_from_slice(key)));
            self.expires_per_db[db] -= 1;
        }
        Some(entry)
    }

    fn set_expiry(&mut self, db: usize, key: &[u8], at_ms: Option<u64>) {
        let Some(entry) = self.dbs[db].get_mut(key) else {
            return;
        };
        let old = std::mem::replace(&mut entry.expire_at_ms, at_ms);
        let key = Bytes::copy_from_slice(key);
        if let Some(old) = old {
            self.expiries.remove(&(old, db as u8, key.clone()));
            self.expires_per_db[db] -= 1;
        }
        if let Some(at) = at_ms {
            self.expiries.insert((at, db as u8, key));
            self.expires_per_db[db] += 1;
        }
    }

    fn flush_db(&mut self, db: usize) {
        self.dbs[db] = HashOrderedMap::new();
        self.expiries.retain(|(_, d, _)| *d as usize != db);
        self.expires_per_db[db] = 0;
    }
}

fn digest_value(h: &mut crc32fast::Hasher, value: &Value) {
    let mut item = |tag: u8, bytes: &[u8]| {
        h.update(&[tag]);
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    match value {
        Value::Str(s) => item(0, s),
        Value::List(l) => l.iter().for_each(|e| item(1, e)),
        Value::Hash(m) => m.iter().for_each(|(k, v)| {
            item(2, k);
            item(3, v);
        }),
        Value::Set(m) => m.keys().for_each(|k| item(4, k)),
    }
}

/// Redis's rule: a key is expired once the clock is past its deadline.
fn is_expired(entry: &Entry, now_ms: u64) -> bool {
    entry.expire_at_ms.is_some_and(|at| now_ms > at)
}

/// What a handler sees: the keyspace, the selected database, the time, the version to stamp on
/// writes, and the seeded random source.
pub struct Exec<'a> {
    ks: &'a mut Keyspace,
    pub db: usize,
    pub now_ms: u64,
    version: u64,
    pub rng: &'a mut Rng,
}

impl Exec<'_> {
    /// The live entry at `key`; expired keys read as absent.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.get_in(self.db, key)
    }

    pub fn get_in(&self, db: usize, key: &[u8]) -> Option<&Entry> {
        self.ks.dbs[db]
            .get(key)
            .filter(|e| !is_expired(e, self.now_ms))
    }

    /// The live entry at `key`, for a change: an expired key is deleted first (this runs only
    /// while applying a log entry, with the entry's time, so every replica does the same), and
    /// the entry is stamped with this write's version.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.get_mut_in(self.db, key)
    }

    pub fn get_mut_in(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        self.reap_if_expired(db, key);
        let version = self.version;
        let entry = self.ks.dbs[db].get_mut(key)?;
        entry.version = version;
        Some(entry)
    }

    fn reap_if_expired(&mut self, db: usize, key: &[u8]) {
        let expired = self.ks.dbs[db]
            .get(key)
            .is_some_and(|e| is_expired(e, self.now_ms));
        if expired {
            self.ks.remove_entry(db, key);
        }
    }

    pub fn exists(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Stores `value` at `key`, dropping any time to live unless `keep_ttl`.
    pub fn set(&mut self, key: &Bytes, value: Value, keep_ttl: bool) {
        self.set_in(self.db, key, value, keep_ttl)
    }

    pub fn set_in(&mut self, db: usize, key: &Bytes, value: Value, keep_ttl: bool) {
        self.reap_if_expired(db, key);
        let version = self.version;
        if let Some(entry) = self.ks.dbs[db].get_mut(key) {
            entry.value = value;
            entry.version = version;
            if !keep_ttl && entry.expire_at_ms.is_some() {
                self.ks.set_expiry(db, key, None);
            }
            return;
        }
        self.ks.dbs[db].insert(
            kept(key),
            Entry {
                value,
                expire_at_ms: None,
                version,
            },
        );
    }

    /// Deletes `key`; true if it was there (and not expired).
    pub fn delete(&mut self, key: &[u8]) -> bool {
        self.delete_in(self.db, key)
    }

    pub fn delete_in(&mut self, db: usize, key: &[u8]) -> bool {
        self.reap_if_expired(db, key);
        self.ks.remove_entry(db, key).is_some()
    }

    /// Removes and returns the whole entry (value and deadline), e.g. for RENAME.
    pub fn take_in(&mut self, db: usize, key: &[u8]) -> Option<(Value, Option<u64>)> {
        self.reap_if_expired(db, key);
        self.ks
            .remove_entry(db, key)
            .map(|e| (e.value, e.expire_at_ms))
    }

    /// Deletes `key` if it holds an empty collection: Redis never keeps empty lists, hashes or
    /// sets.
    pub fn drop_if_empty(&mut self, key: &[u8]) {
        let empty = match self.ks.dbs[self.db].get(key).map(|e| &e.value) {
            Some(Value::List(l)) => l.is_empty(),
            Some(Value::Hash(h)) => h.is_empty(),
            Some(Value::Set(s)) => s.is_empty(),
            _ => false,
        };
        if empty {
            self.ks.remove_entry(self.db, key);
        }
    }

    /// The absolute deadline of a live key: `None` if absent, `Some(None)` if it has none.
    pub fn expiry(&self, key: &[u8]) -> Option<Option<u64>> {
        self.get(key).map(|e| e.expire_at_ms)
    }

    /// Sets or clears the deadline of a live key.
    pub fn set_expiry(&mut self, key: &[u8], at_ms: Option<u64>) {
        self.set_expiry_in(self.db, key, at_ms)
    }

    pub fn set_expiry_in(&mut self, db: usize, key: &[u8], at_ms: Option<u64>) {
        if self.get_mut_in(db, key).is_some() {
            self.ks.set_expiry(db, key, at_ms);
        }
    }

    pub fn db_map(&self) -> &HashOrderedMap<Entry> {
        &self.ks.dbs[self.db]
    }

    pub fn is_live(&self, entry: &Entry) -> bool {
        !is_expired(entry, self.now_ms)
    }

    pub fn limits(&self) -> KeyspaceLimits {
        self.ks.limits
    }

    pub fn get_str(&self, key: &[u8]) -> Result<Option<&Bytes>, Frame> {
        match self.get(key).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(_) => Err(wrongtype()),
        }
    }

    pub fn get_list(&self, key: &[u8]) -> Result<Option<&ChunkedList>, Frame> {
        match self.get(key).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::List(l)) => Ok(Some(l)),
            Some(_) => Err(wrongtype()),
        }
    }

    pub fn get_hash(&self, key: &[u8]) -> Result<Option<&HashOrderedMap<Bytes>>, Frame> {
        match self.get(key).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Hash(h)) => Ok(Some(h)),
            Some(_) => Err(wrongtype()),
        }
    }

    pub fn get_set(&self, key: &[u8]) -> Result<Option<&HashOrderedMap<()>>, Frame> {
        match self.get(key).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Set(s)) => Ok(Some(s)),
            Some(_) => Err(wrongtype()),
        }
    }

    /// The list at `key` for a change; with `create`, an absent key becomes an empty list
    /// (the caller must fill it or call [`Exec::drop_if_empty`]).
    pub fn list_mut(
        &mut self,
        key: &Bytes,
        create: bool,
    ) -> Result<Option<&mut ChunkedList>, Frame> {
        self.check_type(key, "list")?;
        if create && !self.exists(key) {
            self.set(key, Value::List(ChunkedList::new()), false);
        }
        Ok(match self.get_mut(key).map(|e| &mut e.value) {
            Some(Value::List(l)) => Some(l),
            _ => None,
        })
    }

    pub fn hash_mut(
        &mut self,
        key: &Bytes,
        create: bool,
    ) -> Result<Option<&mut HashOrderedMap<Bytes>>, Frame> {
        self.check_type(key, "hash")?;
        if create && !self.exists(key) {
            self.set(key, Value::Hash(Box::default()), false);
        }
        Ok(match self.get_mut(key).map(|e| &mut e.value) {
            Some(Value::Hash(h)) => Some(h),
            _ => None,
        })
    }

    pub fn set_mut(
        &mut self,
        key: &Bytes,
        create: bool,
    ) -> Result<Option<&mut HashOrderedMap<()>>, Frame> {
        self.check_type(key, "set")?;
        if create && !self.exists(key) {
            self.set(key, Value::Set(Box::default()), false);
        }
        Ok(match self.get_mut(key).map(|e| &mut e.value) {
            Some(Value::Set(s)) => Some(s),
            _ => None,
        })
    }

    fn check_type(&self, key: &[u8], type_name: &str) -> Result<(), Frame> {
        match self.get(key) {
            Some(e) if e.value.type_name() != type_name => Err(wrongtype()),
            _ => Ok(()),
        }
    }
}

fn dispatch(x: &mut Exec, id: CommandId, argv: &[Bytes]) -> Frame {
    use CommandId::*;
    let result = match id {
        Get => strings::get(x, argv),
        Set => strings::set(x, argv),
        Setnx => strings::setnx(x, argv),
        Setex => strings::setex(x, argv, 1000),
        Psetex => strings::setex(x, argv, 1),
        Mget => strings::mget(x, argv),
        Mset => strings::mset(x, argv),
        Msetnx => strings::msetnx(x, argv),
        Getset => strings::getset(x, argv),
        Getdel => strings::getdel(x, argv),
        Getex => strings::getex(x, argv),
        Append => strings::append(x, argv),
        Strlen => strings::strlen(x, argv),
        Incr => strings::incr_by(x, &argv[1], 1),
        Decr => strings::incr_by(x, &argv[1], -1),
        Incrby => strings::incrby(x, argv, false),
        Decrby => strings::incrby(x, argv, true),
        Incrbyfloat => strings::incrbyfloat(x, argv),
        Getrange => strings::getrange(x, argv),
        Setrange => strings::setrange(x, argv),
        Del | Unlink => keys::del(x, argv),
        Exists => keys::exists(x, argv),
        Type => keys::type_of(x, argv),
        Expire => keys::expire(x, argv, 1000, false),
        Pexpire => keys::expire(x, argv, 1, false),
        Expireat => keys::expire(x, argv, 1000, true),
        Pexpireat => keys::expire(x, argv, 1, true),
        Ttl => keys::ttl(x, argv, 1000, false),
        Pttl => keys::ttl(x, argv, 1, false),
        Expiretime => keys::ttl(x, argv, 1000, true),
        Pexpiretime => keys::ttl(x, argv, 1, true),
        Persist => keys::persist(x, argv),
        Keys => keys::keys(x, argv),
        Scan => keys::scan(x, argv),
        Rename => keys::rename(x, argv, false),
        Renamenx => keys::rename(x, argv, true),
        Randomkey => keys::randomkey(x),
        Copy => keys::copy(x, argv),
        Dbsize => Ok(Frame::Integer(x.ks.dbs[x.db].len() as i64)),
        Flushdb => keys::flushdb(x, argv),
        Flushall => keys::flushall(x, argv),
        Lpush => lists::push(x, argv, lists::End::Left, false),
        Rpush => lists::push(x, argv, lists::End::Right, false),
        Lpushx => lists::push(x, argv, lists::End::Left, true),
        Rpushx => lists::push(x, argv, lists::End::Right, true),
        Lpop => lists::pop(x, argv, lists::End::Left),
        Rpop => lists::pop(x, argv, lists::End::Right),
        Llen => lists::llen(x, argv),
        Lrange => lists::lrange(x, argv),
        Lindex => lists::lindex(x, argv),
        Lset => lists::lset(x, argv),
        Lrem => lists::lrem(x, argv),
        Ltrim => lists::ltrim(x, argv),
        Linsert => lists::linsert(x, argv),
        Lpos => lists::lpos(x, argv),
        Lmove => lists::lmove(x, argv),
        Rpoplpush => lists::rpoplpush(x, argv),
        Hset | Hmset => hashes::hset(x, argv, id == Hmset),
        Hsetnx => hashes::hsetnx(x, argv),
        Hget => hashes::hget(x, argv),
        Hmget => hashes::hmget(x, argv),
        Hdel => hashes::hdel(x, argv),
        Hlen => hashes::hlen(x, argv),
        Hexists => hashes::hexists(x, argv),
        Hkeys => hashes::hkeys(x, argv),
        Hvals => hashes::hvals(x, argv),
        Hgetall => hashes::hgetall(x, argv),
        Hincrby => hashes::hincrby(x, argv),
        Hincrbyfloat => hashes::hincrbyfloat(x, argv),
        Hstrlen => hashes::hstrlen(x, argv),
        Hscan => hashes::hscan(x, argv),
        Hrandfield => hashes::hrandfield(x, argv),
        Sadd => sets::sadd(x, argv),
        Srem => sets::srem(x, argv),
        Smembers => sets::smembers(x, argv),
        Sismember => sets::sismember(x, argv),
        Smismember => sets::smismember(x, argv),
        Scard => sets::scard(x, argv),
        Spop => sets::spop(x, argv),
        Srandmember => sets::srandmember(x, argv),
        Smove => sets::smove(x, argv),
        Sinter => sets::combine(x, argv, sets::SetOp::Inter, false),
        Sinterstore => sets::combine(x, argv, sets::SetOp::Inter, true),
        Sunion => sets::combine(x, argv, sets::SetOp::Union, false),
        Sunionstore => sets::combine(x, argv, sets::SetOp::Union, true),
        Sdiff => sets::combine(x, argv, sets::SetOp::Diff, false),
        Sdiffstore => sets::combine(x, argv, sets::SetOp::Diff, true),
        Sintercard => sets::sintercard(x, argv),
        Sscan => sets::sscan(x, argv),
        other => unreachable!("{other:?} is not a keyspace command"),
    };
    result.unwrap_or_else(|error| error)
}

/// Checks a write's options before it is proposed, so that a write with a syntax error gets
/// its error at once and never reaches the log. Commands without options pass.
pub fn check_write(cmd: &Command) -> Result<(), Frame> {
    use CommandId::*;
    let argv = &cmd.argv;
    match cmd.id() {
        Set => strings::check_set(argv),
        Mset | Msetnx => strings::check_mset(argv),
        Getex => strings::check_getex(argv),
        Expire | Pexpire | Expireat | Pexpireat => keys::check_expire(argv),
        Copy => keys::check_copy(argv),
        Flushdb | Flushall => keys::check_flush(argv),
        _ => Ok(()),
    }
}

/// What a handler returns: a reply, or an error reply (`Err` only to use `?` on parsers).
pub type Reply = Result<Frame, Frame>;

// Redis's error texts, shared by the handlers.
pub fn wrongtype() -> Frame {
    Frame::error("WRONGTYPE Operation against a key holding the wrong kind of value")
}
pub fn syntax_error() -> Frame {
    Frame::error("ERR syntax error")
}
pub fn not_integer() -> Frame {
    Frame::error("ERR value is not an integer or out of range")
}
pub fn not_float() -> Frame {
    Frame::error("ERR value is not a valid float")
}
pub fn out_of_range_positive() -> Frame {
    Frame::error("ERR value is out of range, must be positive")
}

/// Parses an integer argument the way Redis's `string2ll` does: optional `-`, digits, no
/// spaces, no `+`, no leading zeros, within i64.
pub fn parse_int(arg: &[u8]) -> Result<i64, Frame> {
    let ok = matches!(arg, [b'0'] | [b'-', b'1'..=b'9', ..] | [b'1'..=b'9', ..]);
    if !ok {
        return Err(not_integer());
    }
    crate::resp::parse_i64(arg).ok_or_else(not_integer)
}

/// Parses a float argument as Redis's `strtold`-based parser does: no spaces, no NaN.
pub fn parse_float(arg: &[u8]) -> Result<f64, Frame> {
    let text = std::str::from_utf8(arg).map_err(|_| not_float())?;
    if text.is_empty()
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace)
    {
        return Err(not_float());
    }
    let lower = text.to_ascii_lowercase();
    let value = match lower.trim_start_matches(['+', '-']) {
        "inf" | "infinity" => {
            if lower.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }
        }
        _ => text.parse::<f64>().map_err(|_| not_float())?,
    };
    if value.is_nan() {
        return Err(not_float());
    }
    Ok(value)
}

/// Case-insensitive comparison of an argument with an option name.
pub fn is_option(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

/// Redis's glob matcher (`stringmatchlen`): `*`, `?`, `[...]` with ranges and `^`, `\` escapes.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((true, next)) = match_class(pattern, p, text[t]) {
                        p = next;
                        t += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == text[t] {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if c == text[t] {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[start] == b'['`; returns whether it
/// matched and where the pattern continues.
fn match_class(pattern: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    loop {
        match pattern.get(i) {
            // Redis treats an unterminated class as ending at the pattern's end.
            None => break,
            Some(b']') => {
                i += 1;
                break;
            }
            Some(b'\\') if i + 1 < pattern.len() => {
                matched |= pattern[i + 1] == c;
                i += 2;
            }
            Some(&lo)
                if pattern.get(i + 1) == Some(&b'-')
                    && i + 2 < pattern.len()
                    && pattern[i + 2] != b']' =>
            {
                let hi = pattern[i + 2];
                let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                matched |= (lo..=hi).contains(&c);
                i += 3;
            }
            Some(&other) => {
                matched |= other == c;
                i += 1;
            }
        }
    }
    Some((matched != negate, i))
}

/// Parses `[MATCH pattern] [COUNT count]` (and `[TYPE type]` when `allow_type`) from a SCAN
/// family command's options; `cursor` is the argument before them.
pub struct ScanOptions {
    pub cursor: u64,
    pub pattern: Option<Bytes>,
    pub count: usize,
    pub type_name: Option<String>,
    pub novalues: bool,
}

pub fn parse_scan(
    cursor: &[u8],
    options: &[Bytes],
    allow_type: bool,
) -> Result<ScanOptions, Frame> {
    let cursor = std::str::from_utf8(cursor)
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
        .ok_or_else(|| Frame::error("ERR invalid cursor"))?;
    let mut parsed = ScanOptions {
        cursor,
        pattern: None,
        count: 10,
        type_name: None,
        novalues: false,
    };
    let mut i = 0;
    while i < options.len() {
        let option = &options[i];
        let value = options.get(i + 1);
        if let Some(value) = value.filter(|_| is_option(option, "count")) {
            let count = parse_int(value)?;
            if count < 1 {
                return Err(syntax_error());
            }
            parsed.count = count as usize;
            i += 2;
        } else if let Some(value) = value.filter(|_| is_option(option, "match")) {
            parsed.pattern = Some(value.clone());
            i += 2;
        } else if let Some(value) = value.filter(|_| allow_type && is_option(option, "type")) {
            parsed.type_name = Some(String::from_utf8_lossy(value).to_ascii_lowercase());
            i += 2;
        } else if !allow_type && is_option(option, "novalues") {
            parsed.novalues = true;
            i += 1;
        } else {
            return Err(syntax_error());
        }
    }
    Ok(parsed)
}

/// The reply of every SCAN-family command: `[next cursor, [items...]]`.
pub fn scan_reply(next: u64, items: Vec<Frame>) -> Frame {
    Frame::Array(vec![
        Frame::Bulk(Bytes::from(next.to_string())),
        Frame::Array(items),
    ])
}

#[cfg(test)]
pub(crate) mod testkit {
    //! Runs commands against a keyspace in tests, as the replica core would.
    use super::*;

    pub struct Harness {
        pub ks: Keyspace,
        pub now_ms: u64,
        pub db: usize,
        pub rng: Rng,
        version: u64,
    }

    impl Harness {
        pub fn new() -> Harness {
            Harness {
                ks: Keyspace::new(),
                now_ms: 1_700_000_000_000,
                db: 0,
                rng: Rng::new(1),
                version: 0,
            }
        }

        /// Runs a command given as words; writes get a fresh version as if from a new entry.
        pub fn run(&mut self, words: &[&str]) -> Frame {
            let argv = words
                .iter()
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect();
            let cmd = match Command::parse(argv) {
                Ok(cmd) => cmd,
                Err(e) => return e,
            };
            self.version += 1;
            let ctx = ExecContext {
                db: self.db,
                now_ms: self.now_ms,
                version: self.version,
            };
            self.ks.execute(&cmd, ctx, &mut self.rng)
        }
    }

    pub fn bulk(s: &str) -> Frame {
        Frame::bulk_str(s)
    }
    pub fn int(n: i64) -> Frame {
        Frame::Integer(n)
    }
    pub fn ok() -> Frame {
        Frame::ok()
    }
    pub fn err(s: &str) -> Frame {
        Frame::error(s)
    }
    pub fn arr(items: &[&str]) -> Frame {
        Frame::Array(items.iter().map(|s| bulk(s)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;

    #[test]
    fn glob_matches_like_redis() {
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"h?llo", b"hello"));
        assert!(glob_match(b"h[ae]llo", b"hallo"));
        assert!(!glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"h[a-b]llo", b"hbllo"));
        assert!(glob_match(b"h\\*llo", b"h*llo"));
        assert!(!glob_match(b"h\\*llo", b"hello"));
        assert!(glob_match(b"*:*:x", b"a:b:c:x"));
        assert!(!glob_match(b"a*b", b"acbd"));
    }

    #[test]
    fn integers_parse_strictly() {
        assert_eq!(parse_int(b"-12"), Ok(-12));
        assert!(parse_int(b"+1").is_err());
        assert!(parse_int(b" 1").is_err());
        assert!(parse_int(b"01").is_err());
        assert!(parse_int(b"9223372036854775808").is_err());
        assert!(parse_float(b"nan").is_err());
        assert_eq!(parse_float(b"1e3"), Ok(1000.0));
    }

    #[test]
    fn expired_keys_read_as_absent_and_only_writes_or_expiry_entries_delete_them() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SET", "k", "v", "PX", "100"]), ok());
        h.now_ms += 101;
        assert_eq!(h.run(&["GET", "k"]), Frame::Null);
        // The read did not delete it: DBSIZE still counts it, as Redis does until expiry runs.
        assert_eq!(h.ks.db_len(0), 1);
        let due = h.ks.expired_keys(h.now_ms, 10);
        assert_eq!(due, vec![(0, Bytes::from("k"))]);
        assert_eq!(h.ks.apply_expiry(&due, h.now_ms), 1);
        assert_eq!(h.ks.db_len(0), 0);
        assert!(h.ks.expired_keys(h.now_ms, 10).is_empty());
    }

    #[test]
    fn an_expiry_entry_spares_a_key_rewritten_since_it_was_proposed() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v", "PX", "10"]);
        h.now_ms += 20;
        let due = h.ks.expired_keys(h.now_ms, 10);
        h.run(&["SET", "k", "new"]);
        assert_eq!(h.ks.apply_expiry(&due, h.now_ms), 0);
        assert_eq!(h.run(&["GET", "k"]), bulk("new"));
    }

    #[test]
    fn digests_match_for_equal_histories_and_differ_otherwise() {
        let mut a = Harness::new();
        let mut b = Harness::new();
        for h in [&mut a, &mut b] {
            h.run(&["SET", "x", "1"]);
            h.run(&["RPUSH", "l", "a", "b"]);
        }
        assert_eq!(a.ks.digest(), b.ks.digest());
        b.run(&["SET", "x", "2"]);
        assert_ne!(a.ks.digest(), b.ks.digest());
    }

    /// Runs one request as the RESP parser hands it over, and returns its arguments.
    fn run_parsed(h: &mut Harness, words: &[&str]) -> Vec<Bytes> {
        let mut wire = format!("*{}\r\n", words.len());
        let mut offsets = Vec::new();
        for w in words {
            wire.push_str(&format!("${}\r\n", w.len()));
            offsets.push(wire.len());
            wire.push_str(&format!("{w}\r\n"));
        }
        let (argv, _) = crate::resp::decode_request(wire.as_bytes(), &Default::default())
            .unwrap()
            .unwrap();
        if wire.len() <= crate::resp::SHARED_REQUEST_BYTES_MAX {
            // The premise: a small request's arguments are slices of one copy of it.
            let base = argv[0].as_ptr() as usize;
            for (arg, offset) in argv.iter().zip(&offsets) {
                assert_eq!(arg.as_ptr() as usize - base, offset - offsets[0]);
            }
        }
        let cmd = Command::parse(argv.clone()).unwrap();
        let ctx = ExecContext {
            db: 0,
            now_ms: h.now_ms,
            version: 1,
        };
        h.ks.execute(&cmd, ctx, &mut h.rng);
        argv
    }

    /// Whether `kept` lies inside the bytes that `argv`'s arguments span.
    fn inside(kept: &Bytes, argv: &[Bytes]) -> bool {
        let start = argv[0].as_ptr() as usize;
        let last = argv.last().unwrap();
        let end = last.as_ptr() as usize + last.len();
        (start..end).contains(&(kept.as_ptr() as usize))
    }

    #[test]
    fn what_the_keyspace_keeps_of_a_small_request_is_its_own_copy() {
        let mut h = Harness::new();
        let value = "v".repeat(100);
        let set = run_parsed(&mut h, &["SET", "str", &value]);
        let push = run_parsed(&mut h, &["LPUSH", "list", &value]);
        let hset = run_parsed(&mut h, &["HSET", "hash", "field", &value]);
        let sadd = run_parsed(&mut h, &["SADD", "set", &value]);
        let db = &h.ks.dbs[0];
        let (key, entry) = db.iter().find(|(k, _)| &k[..] == b"str").unwrap();
        let Value::Str(stored) = &entry.value else {
            panic!("a string")
        };
        // None of what the keyspace kept points into the request's copy.
        assert!(!inside(key, &set) && !inside(stored, &set));
        let Value::List(list) = &db.get(b"list").unwrap().value else {
            panic!("a list")
        };
        assert!(!inside(&list[0], &push));
        let Value::Hash(hash) = &db.get(b"hash").unwrap().value else {
            panic!("a hash")
        };
        let (field, stored) = hash.iter().next().unwrap();
        assert!(!inside(field, &hset) && !inside(stored, &hset));
        let Value::Set(members) = &db.get(b"set").unwrap().value else {
            panic!("a set")
        };
        assert!(!inside(members.keys().next().unwrap(), &sadd));
        assert_eq!(h.run(&["LINDEX", "list", "0"]), bulk(&value));
    }

    #[test]
    fn a_large_argument_is_kept_without_another_copy() {
        let mut h = Harness::new();
        let value = "v".repeat(crate::resp::SHARED_REQUEST_BYTES_MAX + 1);
        let push = run_parsed(&mut h, &["RPUSH", "list", &value]);
        let Value::List(list) = &h.ks.dbs[0].get(b"list").unwrap().value else {
            panic!("a list")
        };
        assert_eq!(list[0].as_ptr(), push[2].as_ptr());
    }

    #[test]
    fn watch_versions_change_on_write() {
        let mut h = Harness::new();
        assert_eq!(h.ks.version_of(0, b"k", h.now_ms), None);
        h.run(&["SET", "k", "1"]);
        let v1 = h.ks.version_of(0, b"k", h.now_ms);
        h.run(&["GET", "k"]);
        assert_eq!(h.ks.version_of(0, b"k", h.now_ms), v1);
        h.run(&["INCR", "k"]);
        assert_ne!(h.ks.version_of(0, b"k", h.now_ms), v1);
    }
}
