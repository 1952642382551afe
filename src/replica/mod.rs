//! The replica core: a pure, deterministic state machine over the log and the keyspace.
//!
//! # Call order
//!
//! ```text
//! replica.step(input);                       // one input at a time
//! while let Some(out) = replica.poll_output() { /* carry it out */ }
//! ```
//! Inputs are client requests, storage completions and clock ticks (the core never reads a
//! clock: `Tick` carries the time). Outputs are records to persist and replies to release.
//!
//! # The durability rule
//!
//! A write's reply is produced only when its entry is applied, and an entry is applied only
//! after `Input::Persisted` says it is durable. No adapter can release a write's reply early,
//! because it does not exist before then. In this single-node form a durable entry is a
//! committed entry; replication (majority acknowledgement) extends the same path.
//!
//! # Reads
//!
//! A read is served at a point of the log: once every entry proposed before it has been
//! applied. So a client always reads its own writes, and no read ever sees an entry that is
//! not yet durable.

use crate::command::{Command, CommandId, Route};
use crate::keyspace::{self, ExecContext, Keyspace, KeyspaceLimits};
use crate::log::{EntryPayload, LogEntry, WalRecord, WatchedKey};
use crate::resp::Frame;
use crate::rng::Rng;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;

/// A client connection, as the adapter numbers them.
pub type ClientId = u64;

/// A request from a client connection. `id` is the connection's own sequence number; the
/// reply carries it back.
#[derive(Clone, Debug)]
pub struct Request {
    pub client: ClientId,
    pub id: u64,
    pub op: Op,
}

#[derive(Clone, Debug)]
pub enum Op {
    /// One command (a read or a write) against database `db`.
    Command { db: u8, cmd: Command },
    /// A MULTI/EXEC block: every command with its database, and the WATCHed keys.
    Transaction {
        commands: Vec<(u8, Command)>,
        watches: Vec<WatchedKey>,
    },
    /// WATCH: report the current version of each key.
    Watch { db: u8, keys: Vec<Bytes> },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    Frame(Frame),
    Watched(Vec<WatchedKey>),
}

#[derive(Debug)]
pub enum Input {
    Requests(Vec<Request>),
    /// Every entry up to and including `index` is durable (fsynced).
    Persisted {
        index: u64,
    },
    /// The entries from `first_index` on could not be written and were taken back (e.g. the
    /// disk is full); nothing of them is on disk.
    PersistFailed {
        first_index: u64,
        error: String,
    },
    Tick {
        now_ms: u64,
    },
}

#[derive(Debug)]
pub enum Output {
    /// Append these entries to the log and fsync, then report `Input::Persisted`.
    Persist(Vec<Arc<LogEntry>>),
    Reply {
        client: ClientId,
        id: u64,
        response: Response,
    },
}

#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// Seeds the random choices of reads (RANDOMKEY, SRANDMEMBER, ...).
    pub seed: u64,
    /// Most keys one active-expiry entry deletes.
    pub expiry_batch_keys: usize,
    pub keyspace_limits: KeyspaceLimits,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            seed: 0,
            expiry_batch_keys: 64,
            keyspace_limits: KeyspaceLimits::default(),
        }
    }
}

/// Counters for INFO.
#[derive(Clone, Debug, Default)]
pub struct ReplicaStats {
    pub commands_processed: u64,
    pub entries_applied: u64,
    pub expired_keys: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub persist_failures: u64,
}

/// Who is waiting on an entry's result.
#[derive(Clone, Copy, Debug)]
struct Waiter {
    client: ClientId,
    id: u64,
}

pub struct Replica {
    config: ReplicaConfig,
    keyspace: Keyspace,
    rng: Rng,
    now_ms: u64,
    term: u64,
    /// The last index in the log (durable or not).
    last_index: u64,
    /// The timestamp of the last entry: entry timestamps never go backwards.
    last_ts_ms: u64,
    persisted_index: u64,
    applied_index: u64,
    applied_ts_ms: u64,
    /// Entries after `applied_index`, in order, and who waits on each.
    unapplied: VecDeque<(Arc<LogEntry>, Option<Waiter>)>,
    /// Reads waiting for the log to be applied up to an index, in index order.
    waiting_reads: VecDeque<(u64, Request)>,
    /// The index of the proposed, not yet applied, active-expiry entry.
    expiry_in_flight: Option<u64>,
    to_persist: Vec<Arc<LogEntry>>,
    outputs: VecDeque<Output>,
    pub stats: ReplicaStats,
}

/// The database number of a log entry, checked.
fn db_index(db: u8) -> usize {
    assert!((db as usize) < keyspace::DB_COUNT, "db {db} out of range");
    db as usize
}

impl Replica {
    /// A replica with an empty log.
    pub fn new(config: ReplicaConfig, now_ms: u64) -> Replica {
        let mut keyspace = Keyspace::new();
        keyspace.limits = config.keyspace_limits;
        Replica {
            rng: Rng::new(config.seed),
            config,
            keyspace,
            now_ms,
            term: 1,
            last_index: 0,
            last_ts_ms: 0,
            persisted_index: 0,
            applied_index: 0,
            applied_ts_ms: 0,
            unapplied: VecDeque::new(),
            waiting_reads: VecDeque::new(),
            expiry_in_flight: None,
            to_persist: Vec::new(),
            outputs: VecDeque::new(),
            stats: ReplicaStats::default(),
        }
    }

    /// A replica rebuilt from its recovered WAL: every record on disk is durable, so in the
    /// single-node form every entry is committed and applied.
    pub fn restore(config: ReplicaConfig, now_ms: u64, records: Vec<WalRecord>) -> Replica {
        let mut replica = Replica::new(config, now_ms);
        for record in records {
            let WalRecord::Entry(entry) = record;
            assert_eq!(
                entry.index,
                replica.last_index + 1,
                "the WAL's entries must be consecutive"
            );
            replica.last_index = entry.index;
            replica.last_ts_ms = replica.last_ts_ms.max(entry.ts_ms);
            replica.term = replica.term.max(entry.term);
            replica.persisted_index = entry.index;
            replica.apply(entry, None);
        }
        replica.outputs.clear();
        replica
    }

    pub fn step(&mut self, input: Input) {
        match input {
            Input::Requests(requests) => {
                for request in requests {
                    self.on_request(request);
                }
            }
            Input::Persisted { index } => self.on_persisted(index),
            Input::PersistFailed { first_index, error } => {
                self.on_persist_failed(first_index, &error)
            }
            Input::Tick { now_ms } => self.on_tick(now_ms),
        }
        if !self.to_persist.is_empty() {
            let entries = std::mem::take(&mut self.to_persist);
            self.outputs.push_back(Output::Persist(entries));
        }
        #[cfg(debug_assertions)]
        self.check_invariants().expect("replica invariant");
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    pub fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    pub fn persisted_index(&self) -> u64 {
        self.persisted_index
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    fn on_request(&mut self, request: Request) {
        self.stats.commands_processed += 1;
        let is_write = match &request.op {
            Op::Command { cmd, .. } => cmd.spec.route == Route::Write,
            Op::Transaction { commands, .. } => commands
                .iter()
                .any(|(_, cmd)| cmd.spec.route == Route::Write),
            Op::Watch { .. } => false,
        };
        if !is_write {
            if self.applied_index == self.last_index {
                self.serve_read(request);
            } else {
                self.waiting_reads.push_back((self.last_index, request));
            }
            return;
        }
        let payload = match request.op {
            Op::Command { db, cmd } => {
                if let Err(error) = keyspace::check_write(&cmd) {
                    self.reply(request.client, request.id, Response::Frame(error));
                    return;
                }
                EntryPayload::Command { db, argv: cmd.argv }
            }
            Op::Transaction { commands, watches } => EntryPayload::Transaction {
                watches,
                commands: commands
                    .into_iter()
                    .map(|(db, cmd)| (db, cmd.argv))
                    .collect(),
            },
            Op::Watch { .. } => unreachable!("WATCH is a read"),
        };
        if payload_bytes(&payload) > ENTRY_BYTES_MAX {
            let error = Frame::error("ERR the write is too large for one WAL record (4 GB)");
            self.reply(request.client, request.id, Response::Frame(error));
            return;
        }
        let waiter = Waiter {
            client: request.client,
            id: request.id,
        };
        self.propose(payload, Some(waiter));
    }

    /// Appends an entry to the log and asks the adapter to persist it.
    fn propose(&mut self, payload: EntryPayload, waiter: Option<Waiter>) -> u64 {
        self.last_index += 1;
        self.last_ts_ms = self.last_ts_ms.max(self.now_ms);
        let entry = Arc::new(LogEntry {
            index: self.last_index,
            term: self.term,
            ts_ms: self.last_ts_ms,
            payload,
        });
        self.to_persist.push(entry.clone());
        self.unapplied.push_back((entry, waiter));
        self.last_index
    }

    fn on_persisted(&mut self, index: u64) {
        assert!(
            index <= self.last_index,
            "persisted {index} beyond the log's end {}",
            self.last_index
        );
        if index <= self.persisted_index {
            return;
        }
        self.persisted_index = index;
        // Single node: durable means committed.
        while let Some((entry, _)) = self.unapplied.front() {
            if entry.index > self.persisted_index {
                break;
            }
            let (entry, waiter) = self.unapplied.pop_front().unwrap();
            // The writer has usually let go of its copy by now: take the entry without cloning.
            let entry = Arc::try_unwrap(entry).unwrap_or_else(|shared| (*shared).clone());
            self.apply(entry, waiter);
            self.serve_ready_reads();
        }
    }

    fn on_persist_failed(&mut self, first_index: u64, error: &str) {
        if first_index > self.last_index {
            return; // Already taken back.
        }
        assert!(
            first_index > self.persisted_index,
            "a persisted entry cannot fail later"
        );
        self.stats.persist_failures += 1;
        let text =
            format!("MISCONF Errors writing to the WAL: {error}. The write was not applied.");
        while self
            .unapplied
            .back()
            .is_some_and(|(e, _)| e.index >= first_index)
        {
            let (entry, waiter) = self.unapplied.pop_back().unwrap();
            if self.expiry_in_flight == Some(entry.index) {
                self.expiry_in_flight = None;
            }
            if let Some(w) = waiter {
                self.reply(w.client, w.id, Response::Frame(Frame::error(text.clone())));
            }
        }
        self.to_persist.retain(|e| e.index < first_index);
        self.last_index = first_index - 1;
        for (wait_index, _) in self.waiting_reads.iter_mut() {
            *wait_index = (*wait_index).min(self.last_index);
        }
        self.serve_ready_reads();
    }

    fn on_tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        self.propose_expiry();
    }

    /// Active expiry: the leader (in this form, the only replica) proposes deletions of keys
    /// whose deadline passed, one batch at a time.
    fn propose_expiry(&mut self) {
        if self.expiry_in_flight.is_some() {
            return;
        }
        let keys = self
            .keyspace
            .expired_keys(self.now_ms, self.config.expiry_batch_keys);
        if keys.is_empty() {
            return;
        }
        let index = self.propose(EntryPayload::Expire { keys }, None);
        self.expiry_in_flight = Some(index);
    }

    fn serve_ready_reads(&mut self) {
        while let Some((wait_index, _)) = self.waiting_reads.front() {
            if *wait_index > self.applied_index {
                break;
            }
            let (_, request) = self.waiting_reads.pop_front().unwrap();
            self.serve_read(request);
        }
    }

    fn serve_read(&mut self, request: Request) {
        // Reads never see a time before the last applied entry's.
        let now_ms = self.now_ms.max(self.applied_ts_ms);
        let response = match request.op {
            Op::Command { db, cmd } => {
                let ctx = ExecContext {
                    db: db_index(db),
                    now_ms,
                    version: 0,
                };
                let reply = self.keyspace.execute(&cmd, ctx, &mut self.rng);
                self.count_hit_or_miss(&cmd, &reply);
                Response::Frame(reply)
            }
            Op::Watch { db, keys } => Response::Watched(
                keys.into_iter()
                    .map(|key| WatchedKey {
                        db,
                        version: self.keyspace.version_of(db_index(db), &key, now_ms),
                        key,
                    })
                    .collect(),
            ),
            Op::Transaction { commands, watches } => {
                let argvs = commands.into_iter().map(|(db, c)| (db, c.argv)).collect();
                Response::Frame(self.run_transaction(&watches, argvs, now_ms, 0))
            }
        };
        self.reply(request.client, request.id, response);
    }

    fn count_hit_or_miss(&mut self, cmd: &Command, reply: &Frame) {
        if cmd.id() == CommandId::Get {
            match reply {
                Frame::Null => self.stats.keyspace_misses += 1,
                _ => self.stats.keyspace_hits += 1,
            }
        }
    }

    fn apply(&mut self, entry: LogEntry, waiter: Option<Waiter>) {
        assert_eq!(
            entry.index,
            self.applied_index + 1,
            "entries apply in order"
        );
        assert!(
            entry.index <= self.persisted_index,
            "apply only what is durable"
        );
        // Writes that draw randomness (SPOP) draw it from the entry, so every replica agrees.
        let mut rng = Rng::new(entry.index ^ 0x5157_4f52_554d);
        let reply = match entry.payload {
            EntryPayload::Noop => None,
            EntryPayload::Command { db, argv } => {
                let frame = match Command::parse(argv) {
                    Ok(cmd) => {
                        let ctx = ExecContext {
                            db: db_index(db),
                            now_ms: entry.ts_ms,
                            version: entry.index,
                        };
                        self.keyspace.execute(&cmd, ctx, &mut rng)
                    }
                    Err(error) => error,
                };
                Some(frame)
            }
            EntryPayload::Transaction { watches, commands } => {
                Some(self.run_transaction(&watches, commands, entry.ts_ms, entry.index))
            }
            EntryPayload::Expire { keys } => {
                let deleted = self.keyspace.apply_expiry(&keys, entry.ts_ms);
                self.stats.expired_keys += deleted as u64;
                if self.expiry_in_flight == Some(entry.index) {
                    self.expiry_in_flight = None;
                }
                None
            }
        };
        self.applied_index = entry.index;
        self.applied_ts_ms = self.applied_ts_ms.max(entry.ts_ms);
        self.stats.entries_applied += 1;
        if let (Some(w), Some(frame)) = (waiter, reply) {
            self.reply(w.client, w.id, Response::Frame(frame));
        }
    }

    /// Runs a transaction whole: if any watched key changed, nothing runs and the reply is
    /// a null array, as Redis's EXEC.
    fn run_transaction(
        &mut self,
        watches: &[WatchedKey],
        commands: Vec<(u8, Vec<Bytes>)>,
        now_ms: u64,
        version: u64,
    ) -> Frame {
        let changed = watches
            .iter()
            .any(|w| self.keyspace.version_of(db_index(w.db), &w.key, now_ms) != w.version);
        if changed {
            return Frame::NullArray;
        }
        let mut rng = Rng::new(version ^ 0x004d_554c_5449);
        let replies = commands
            .into_iter()
            .map(|(db, argv)| match Command::parse(argv) {
                Ok(cmd) => match cmd.id() {
                    CommandId::Ping => ping_reply(&cmd.argv),
                    CommandId::Echo => Frame::Bulk(cmd.argv[1].clone()),
                    _ => {
                        let ctx = ExecContext {
                            db: db_index(db),
                            now_ms,
                            version,
                        };
                        self.keyspace.execute(&cmd, ctx, &mut rng)
                    }
                },
                Err(error) => error,
            })
            .collect();
        Frame::Array(replies)
    }

    fn reply(&mut self, client: ClientId, id: u64, response: Response) {
        self.outputs.push_back(Output::Reply {
            client,
            id,
            response,
        });
    }

    /// The core's own invariants; called after every step in debug builds and by tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        if !(self.applied_index <= self.persisted_index && self.persisted_index <= self.last_index)
        {
            return Err(format!(
                "index order broken: applied {} persisted {} last {}",
                self.applied_index, self.persisted_index, self.last_index
            ));
        }
        let mut expected = self.applied_index + 1;
        for (entry, _) in &self.unapplied {
            if entry.index != expected {
                return Err(format!(
                    "unapplied entries not consecutive: {} where {expected} was due",
                    entry.index
                ));
            }
            expected += 1;
        }
        if expected != self.last_index + 1 {
            return Err(format!(
                "unapplied entries end at {} but the log ends at {}",
                expected - 1,
                self.last_index
            ));
        }
        let mut previous = 0;
        for (wait_index, _) in &self.waiting_reads {
            if *wait_index < previous || *wait_index > self.last_index {
                return Err(format!("waiting read at {wait_index} out of order"));
            }
            previous = *wait_index;
        }
        Ok(())
    }
}

/// The most argument bytes one entry may carry: a WAL record's length field is 32 bits, and
/// the encoding adds a few bytes per argument.
const ENTRY_BYTES_MAX: usize = crate::wal::record::RECORD_BYTES_MAX - 64 * 1024;

/// An upper bound on the encoded size of a payload's arguments.
fn payload_bytes(payload: &EntryPayload) -> usize {
    let argv_bytes = |argv: &[Bytes]| argv.iter().map(|a| a.len() + 10).sum::<usize>();
    match payload {
        EntryPayload::Command { argv, .. } => argv_bytes(argv),
        EntryPayload::Transaction { commands, watches } => {
            commands
                .iter()
                .map(|(_, argv)| argv_bytes(argv))
                .sum::<usize>()
                + watches.iter().map(|w| w.key.len() + 20).sum::<usize>()
        }
        EntryPayload::Noop | EntryPayload::Expire { .. } => 0,
    }
}

/// PING's reply: PONG, or its argument as a bulk string.
pub fn ping_reply(argv: &[Bytes]) -> Frame {
    match argv.get(1) {
        None => Frame::simple("PONG"),
        Some(message) => Frame::Bulk(message.clone()),
    }
}

#[cfg(test)]
mod tests;
