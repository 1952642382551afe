//! The replica core: Raft over the log, and the keyspace it applies. A pure, deterministic
//! state machine: no clock (`Tick` carries the time), no network (`Output::Send`), no disk
//! (`Output::Persist` and `Input::Persisted`), and randomness only from the seed it is given.
//!
//! # Call order
//!
//! ```text
//! let mut replica = Replica::restore(config, now_ms, records);   // or Replica::new
//! loop {
//!     while let Some(out) = replica.poll_output() { /* carry it out */ }
//!     replica.step(input);                                       // one input at a time
//! }
//! ```
//! Outputs: `Persist` (append these records and fsync them, in order, then report
//! `Persisted { seq }`), `Send` (a message to a peer; it may be lost), `Reply` (to a client).
//!
//! # The durability rule
//!
//! Everything that depends on a record being on disk waits for the `Persisted` that covers
//! it, here in the core, so no adapter can release it early:
//! - a vote (and a candidate's own vote) waits for the hard state that records it;
//! - an append acknowledgement waits for the entries it acknowledges;
//! - a client's write reply exists only once its entry is applied, which needs it committed:
//!   fsynced by a majority, the leader counting itself only for what it fsynced.
//!
//! # Reads
//!
//! Linearizable by read-index: the leader, once an entry of its term is committed, records
//! its commit index, confirms with a heartbeat round that a majority still follows it, and
//! the read is served on any replica once that replica applied the recorded index. Followers
//! ask the leader for the index. Reads waiting on the same round are batched.
//!
//! # Writes on any replica
//!
//! A write becomes a proposal with an origin (this replica, its incarnation, a sequence
//! number). The leader appends it; a follower forwards it to the leader, and forwards it again
//! when the leader changes. The state machine applies each origin once, so a write sent twice
//! runs once; the replica that took the write answers its client when it applies the entry.
//!
//! # Errors
//!
//! `-CLUSTERDOWN` and `-TRYAGAIN` are definite: the command did not and will not take effect
//! (a write that never left this replica, a read). A write that was proposed or forwarded and
//! is still not applied when its time is up gets `-UNKNOWN`: it may yet take effect.

mod catch_up;
mod clients;
mod election;
pub mod message;
mod raft_log;
mod reads;
mod replication;
mod seq_map;

pub use message::{AppendOutcome, Message, NodeId, Proposal};
use raft_log::RaftLog;

use crate::command::{Command, CommandId};
use crate::keyspace::{self, ExecContext, Keyspace, KeyspaceLimits};
use crate::log::{EntryPayload, HardState, LogEntry, Origin, WalRecord, WatchedKey};
use crate::resp::Frame;
use crate::rng::Rng;
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
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
    /// WAIT numreplicas timeout: how many other replicas hold every entry this replica knew of
    /// when WAIT arrived, waiting up to `timeout_ms` (0: forever) for `replicas` of them.
    Wait { replicas: u64, timeout_ms: u64 },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    Frame(Frame),
    Watched(Vec<WatchedKey>),
}

#[derive(Debug)]
pub enum Input {
    Requests(Vec<Request>),
    /// A message from a peer.
    Message {
        from: NodeId,
        message: Message,
    },
    /// Every `Persist` batch up to and including `seq` is durable (fsynced).
    Persisted {
        seq: u64,
    },
    /// The batches from `seq` on could not be written and were taken back (e.g. the disk is
    /// full): nothing of them is on disk.
    PersistFailed {
        seq: u64,
        error: String,
    },
    Tick {
        now_ms: u64,
    },
    /// Hand leadership to `to` (a graceful shutdown uses this). Ignored unless this replica
    /// leads; gives up after an election timeout.
    TransferLeader {
        to: NodeId,
    },
    /// The entries an `Output::ReadLog` asked for (or the first of them, up to its
    /// `bytes_max`), read back from the WAL in order; empty if the read failed.
    LogRead {
        entries: Vec<Arc<LogEntry>>,
    },
}

/// One batch of records to append, in this order, and fsync: the hard state first (if it
/// changed), then the entries. An entry whose index is not past the log's end replaces the
/// log from that index on (a follower repairing a conflicting suffix); recovery replays it so.
#[derive(Debug)]
pub struct PersistBatch {
    pub seq: u64,
    pub hard_state: Option<HardState>,
    pub entries: Vec<Arc<LogEntry>>,
}

impl PersistBatch {
    /// The batch as WAL records, in the order they are written.
    pub fn records(&self) -> Vec<WalRecord> {
        let hard_state = self.hard_state.map(WalRecord::HardState);
        let entries = self.entries.iter().map(|e| WalRecord::Entry((**e).clone()));
        hard_state.into_iter().chain(entries).collect()
    }
}

#[derive(Debug)]
pub enum Output {
    Persist(PersistBatch),
    Send {
        to: NodeId,
        message: Message,
    },
    Reply {
        client: ClientId,
        id: u64,
        response: Response,
    },
    /// Read the entries `from..=to` back from the WAL and hand them in as `Input::LogRead`,
    /// stopping short of `to` where they would hold more than `bytes_max` of memory (by
    /// `LogEntry::memory_bytes`; always at least the first two). A leader asks when a
    /// follower lacks entries dropped from memory: every replica once held them (its disk was
    /// replaced, or its log cut), or it was away long enough for the bound on the log in
    /// memory to drop them. It is sent them a piece at a time.
    ReadLog {
        from: u64,
        to: u64,
        bytes_max: usize,
    },
}

#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    pub id: NodeId,
    /// Every voting replica, this one included.
    pub voters: Vec<NodeId>,
    /// Seeds every random choice: election timeouts, the incarnation, and reads such as
    /// RANDOMKEY. Give a fresh seed at each start.
    pub seed: u64,
    /// The shortest election timeout; each one is drawn from `[t, 2t)`.
    pub election_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    /// How long a request may wait for a leader, a read confirmation or a commit.
    pub request_timeout_ms: u64,
    /// Most entries in one append message, and most append messages in flight to one peer.
    pub append_entries_max: usize,
    pub appends_in_flight_max: usize,
    /// Most keys one active-expiry entry deletes.
    pub expiry_batch_keys: usize,
    pub keyspace_limits: KeyspaceLimits,
    /// The WAL this replica restores from may have lost entries it had acknowledged (its
    /// recovery cut a damaged tail, which a flipped bit in an fsynced record looks like). It
    /// must not vote or campaign until it has caught up with a leader: its vote could elect a
    /// leader without an entry committed with its help (PAR, FAST'18). Ignored for a single
    /// voter, which has no one to catch up from.
    pub recovering: bool,
    /// The most memory (by `LogEntry::memory_bytes`) the log may hold for a replica that is
    /// down or behind. Past it the oldest applied entries leave memory even though that
    /// replica lacks them, and should it come back, the leader reads them back from its WAL,
    /// half this much at a time. Without it a follower that is down would cost the others
    /// memory in proportion to the writes made meanwhile.
    pub log_memory_bytes_max: usize,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            id: 1,
            voters: vec![1],
            seed: 0,
            election_timeout_ms: 500,
            heartbeat_interval_ms: 100,
            request_timeout_ms: 5_000,
            append_entries_max: 256,
            appends_in_flight_max: 8,
            expiry_batch_keys: 64,
            keyspace_limits: KeyspaceLimits::default(),
            recovering: false,
            log_memory_bytes_max: 64 * 1024 * 1024,
        }
    }
}

/// A replica catching up after its WAL's tail was cut. The cut record may have been an
/// acknowledged entry (a flipped bit in an fsynced record looks like a torn write), or a hard
/// state holding a vote. It does not campaign; it probes the others every election timeout,
/// and works the following out again each time the latest answers (term and last entry) of
/// `ceil(n/2)` of them that are not recovering themselves, or of all of them, are in. Any entry committed with this replica's help is on a majority, so on one of
/// them (while disk faults hit only a minority), and any term it reached is at most one of
/// theirs.
/// So it then moves to the highest term they reported, with a vote for no one in it (the cut
/// may have held a vote in that term), and from there grants votes only to candidates whose
/// log is at least as up to date as the best one they reported: such a candidate holds every
/// entry that log holds committed, as in Raft's own argument for leader completeness. After a
/// power loss that tore every node's last write, that is any candidate up to date by Raft's
/// rule. It votes as any replica once that fence is durable and its durable log is itself that
/// up to date, or matches a leader's through that leader's commit index at an entry of the
/// leader's own term (so past everything committed in earlier terms).
#[derive(Clone, Debug, Default, PartialEq)]
struct Recovery {
    /// Probe replies: replier -> (its term, its last entry's term and index, whether it is
    /// recovering too).
    probed: BTreeMap<NodeId, (u64, (u64, u64), bool)>,
    /// A leader's commit index this replica must hold durably.
    target: Option<u64>,
    /// The best log the latest probe quorum reported, as (last term, last index), once one
    /// answered and this replica moved past their terms.
    best: Option<(u64, u64)>,
    /// When to probe next.
    next_probe_ms: u64,
}

/// A vote for no one: a term in which this replica must not vote again.
const VOTE_FOR_NO_ONE: NodeId = 0;

/// Counters for INFO.
#[derive(Clone, Debug, Default)]
pub struct ReplicaStats {
    pub commands_processed: u64,
    pub entries_applied: u64,
    pub expired_keys: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub persist_failures: u64,
    pub elections_started: u64,
    /// WAL reads for followers that lacked entries dropped from memory: done, and failed.
    pub log_reads: u64,
    pub log_reads_failed: u64,
    /// Entries dropped from memory by `ReplicaConfig::log_memory_bytes_max` before every
    /// replica was known to hold them.
    pub log_entries_dropped_over_bound: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    #[default]
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// A batch handed to the adapter and not yet reported durable.
#[derive(Debug)]
struct BatchInFlight {
    seq: u64,
    /// The entries it holds, `None` if only a hard state; capped when the log is truncated
    /// below them, since those entries no longer count.
    entries: Option<(u64, u64)>,
    hard_state: Option<HardState>,
}

pub struct Replica {
    config: ReplicaConfig,
    keyspace: Keyspace,
    /// Random choices of reads (RANDOMKEY, SRANDMEMBER, ...).
    rng: Rng,
    election_rng: Rng,
    incarnation: u64,
    now_ms: u64,

    // Raft.
    hard: HardState,
    role: Role,
    leader: Option<NodeId>,
    votes: Vec<NodeId>,
    log: RaftLog,
    /// The timestamp of the last entry: entry timestamps never go backwards.
    last_ts_ms: u64,
    commit_index: u64,
    applied_index: u64,
    applied_ts_ms: u64,
    election_deadline_ms: u64,
    /// Set while this replica must not vote (see `ReplicaConfig::recovering`).
    recovering: Option<Recovery>,
    /// When a leader was last heard from (a follower does not grant pre-votes for an election
    /// timeout after that: the leader is alive).
    leader_contact_ms: Option<u64>,
    leader_state: Option<replication::LeaderState>,

    // Persistence.
    persisted_index: u64,
    durable_hard: HardState,
    hard_state_dirty: bool,
    to_persist: Vec<Arc<LogEntry>>,
    next_seq: u64,
    in_flight: VecDeque<BatchInFlight>,
    /// Messages that wait for a batch to be durable.
    gated: VecDeque<(u64, NodeId, Message)>,
    /// A batch failed: write it again at the next tick.
    persist_retry: bool,
    /// A failed batch left entries in the log that are neither on disk nor in flight (a
    /// replica of several keeps them: its peers may commit them). Until the retry writes them
    /// again, no newer entry is written (the WAL would have a gap) and nothing past
    /// `persisted_index` counts as durable.
    entries_unwritten: bool,
    /// Every replica holds the log durably up to here (the leader works it out from what its
    /// followers acknowledged, and tells them): applied entries up to here leave memory.
    held_by_all: u64,
    /// A WAL read asked for and not answered yet: the index after which its entries are
    /// needed (the read starts at it, for its term).
    log_read: Option<u64>,
    /// No WAL read before this time (after a failed one).
    log_read_after_ms: u64,

    // Clients and the state machine.
    clients: clients::Clients,
    reads: reads::Reads,
    /// The origins the state machine applied, per (node, incarnation).
    applied_origins: BTreeMap<(NodeId, u64), IntervalSet>,
    expiry_in_flight: Option<u64>,
    /// The `now_ms` of the last scan of every pending write for ones to send again (retries
    /// are due by time; writes left unsent by a leader change or a transfer are sent again
    /// where those end). The adapter ticks at every batch of events, many times a millisecond
    /// under load: once a millisecond is enough.
    writes_scanned_at_ms: u64,
    to_forward: Vec<Proposal>,
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
        Replica::restore(config, now_ms, Vec::new())
    }

    /// A replica rebuilt from its recovered WAL. Records replay in order: the last hard state
    /// wins, and an entry at or below the log's end replaces the suffix from its index.
    pub fn restore(config: ReplicaConfig, now_ms: u64, records: Vec<WalRecord>) -> Replica {
        assert!(
            config.voters.contains(&config.id),
            "a replica is one of the voters"
        );
        assert!(config.election_timeout_ms > config.heartbeat_interval_ms);
        let mut keyspace = Keyspace::new();
        keyspace.limits = config.keyspace_limits;
        let mut election_rng = Rng::new(config.seed ^ 0x656c_6563_7469_6f6e);
        let incarnation = election_rng.next_u64();
        let mut reads = reads::Reads::default();
        reads.next_ctx = election_rng.next_u64() >> 1;
        let mut replica = Replica {
            rng: Rng::new(config.seed),
            election_rng,
            incarnation,
            keyspace,
            now_ms,
            hard: HardState::default(),
            role: Role::Follower,
            leader: None,
            votes: Vec::new(),
            log: RaftLog::default(),
            last_ts_ms: 0,
            commit_index: 0,
            applied_index: 0,
            applied_ts_ms: 0,
            election_deadline_ms: 0,
            recovering: None,
            leader_contact_ms: None,
            leader_state: None,
            persisted_index: 0,
            durable_hard: HardState::default(),
            hard_state_dirty: false,
            to_persist: Vec::new(),
            next_seq: 1,
            in_flight: VecDeque::new(),
            gated: VecDeque::new(),
            persist_retry: false,
            entries_unwritten: false,
            held_by_all: 0,
            log_read: None,
            log_read_after_ms: 0,
            clients: clients::Clients::default(),
            reads,
            applied_origins: BTreeMap::new(),
            expiry_in_flight: None,
            writes_scanned_at_ms: 0,
            to_forward: Vec::new(),
            outputs: VecDeque::new(),
            stats: ReplicaStats::default(),
            config,
        };
        for record in records {
            match record {
                WalRecord::HardState(hard) => replica.hard = hard,
                WalRecord::Entry(entry) => {
                    assert!(
                        entry.index >= 1 && entry.index <= replica.log.last_index() + 1,
                        "WAL entry {} leaves a gap after {}",
                        entry.index,
                        replica.log.last_index()
                    );
                    if entry.index <= replica.log.last_index() {
                        replica.log.truncate_from(entry.index);
                    }
                    replica.last_ts_ms = replica.last_ts_ms.max(entry.ts_ms);
                    replica.log.push(Arc::new(entry));
                }
            }
        }
        if replica.config.recovering && !replica.is_single_voter() {
            replica.recovering = Some(Recovery::default());
            // A damaged tail may have held the newest hard state: the log's own terms are a
            // lower bound of the term this replica had reached.
            if replica.log.last_term() > replica.hard.term {
                replica.hard = HardState {
                    term: replica.log.last_term(),
                    vote: None,
                };
            }
        }
        replica.durable_hard = replica.hard;
        replica.persisted_index = replica.log.last_index();
        if replica.is_single_voter() {
            // A majority of one: everything on this disk is committed.
            replica.commit_index = replica.log.last_index();
            replica.apply_committed();
        }
        replica.reset_election_deadline();
        if replica.is_single_voter() {
            replica.campaign(false);
        }
        replica.flush();
        replica
    }

    pub fn step(&mut self, input: Input) {
        match input {
            Input::Requests(requests) => {
                for request in requests {
                    self.on_request(request);
                }
            }
            Input::Message { from, message } => self.on_message(from, message),
            Input::Persisted { seq } => self.on_persisted(seq),
            Input::PersistFailed { seq, error } => self.on_persist_failed(seq, &error),
            Input::Tick { now_ms } => self.on_tick(now_ms),
            Input::TransferLeader { to } => self.on_transfer_leader(to),
            Input::LogRead { entries } => self.on_log_read(entries),
        }
        self.flush();
        #[cfg(debug_assertions)]
        self.check_invariants().expect("replica invariant");
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The end of every step: proposals go to the leader, reads join a round or ask the
    /// leader, new records become a persist batch, and the leader sends what followers lack.
    fn flush(&mut self) {
        // A reply may let a connection's next requests through, and those may be served at
        // once (a read) and let more through.
        loop {
            self.after_client_replies();
            self.flush_reads();
            if !self.clients.has_released() {
                break;
            }
        }
        if !self.to_forward.is_empty() {
            let proposals = std::mem::take(&mut self.to_forward);
            match self.leader {
                Some(leader) if leader != self.config.id => self.send(
                    leader,
                    Message::Forward {
                        term: self.hard.term,
                        proposals,
                    },
                ),
                // The leader changed within this step: route them again next time.
                _ => {}
            }
        }
        // A leader of several replicas writes new entries to its WAL when it sends them to a
        // follower, not at every step: a commit needs a follower's fsync too, which starts only
        // when the entries reach it, so the leader's own fsync loses nothing by starting then,
        // and covers a whole append's worth of entries instead of the few of one step.
        let leader_waits = self.role == Role::Leader && !self.is_single_voter();
        let entries_ready = !self.to_persist.is_empty() && !self.entries_unwritten;
        if self.hard_state_dirty || (entries_ready && !leader_waits) {
            self.issue_batch();
        }
        if self.role == Role::Leader {
            // A commit index followers have not heard of goes out now, not at the next
            // heartbeat: they apply sooner, and answer the writes they forwarded sooner.
            let leader = self.leader_state.as_mut().unwrap();
            let announce = self.commit_index > leader.commit_announced;
            leader.commit_announced = self.commit_index;
            self.replicate_to_all(announce);
            let sent_through = self.leader_state.as_ref().unwrap().sent_through;
            let sent = self
                .to_persist
                .first()
                .is_some_and(|first| first.index <= sent_through);
            // A message gated on durability must not wait for the next append.
            let entries_ready = !self.to_persist.is_empty() && !self.entries_unwritten;
            if entries_ready && (sent || !self.gated.is_empty()) {
                self.issue_batch();
            }
        }
        self.release_gated();
        self.compact_log();
    }

    fn issue_batch(&mut self) {
        let seq = self.next_seq;
        self.next_seq += 1;
        // Entries wait behind those a failed batch left unwritten (only the hard state goes).
        let entries = if self.entries_unwritten {
            Vec::new()
        } else {
            std::mem::take(&mut self.to_persist)
        };
        let hard_state = std::mem::take(&mut self.hard_state_dirty).then_some(self.hard);
        self.in_flight.push_back(BatchInFlight {
            seq,
            entries: entries
                .first()
                .map(|first| (first.index, entries.last().unwrap().index)),
            hard_state,
        });
        // BUG (mutation check `bug-vote-without-persist`): the term and vote are counted as
        // durable but never reach the disk.
        let hard_state = hard_state.filter(|_| !cfg!(feature = "bug-vote-without-persist"));
        self.outputs.push_back(Output::Persist(PersistBatch {
            seq,
            hard_state,
            entries,
        }));
    }

    /// Drops from memory the applied entries every replica holds durably: nobody needs them
    /// from this replica's memory any more. (A replica whose disk later loses them gets them
    /// from a leader's WAL: `Output::ReadLog`.) Past `log_memory_bytes_max`, applied entries
    /// leave memory even if some replica lacks them (it is down, or behind), oldest first; it
    /// too gets them from the WAL. A single voter drops each entry as it applies it.
    fn compact_log(&mut self) {
        if self.is_single_voter() {
            return;
        }
        if let Some(leader) = self.leader_state.as_ref() {
            let matched = leader.peers.values().map(|p| p.match_index).min();
            let held = matched.unwrap_or(0).min(self.persisted_index);
            self.held_by_all = self.held_by_all.max(held);
        }
        // Never past what this replica applied and made durable itself (those are the
        // entries a failed persist would write again). A follower that lacks what is dropped
        // is sent it from the WAL, a piece at a time (`LeaderState::catch_up`).
        let limit = self.applied_index.min(self.persisted_index);
        let to = self.held_by_all.min(limit);
        if to > self.log.compacted_index() {
            self.log.compact_to(to);
        }
        if self.log.bytes() > self.config.log_memory_bytes_max {
            let before = self.log.compacted_index();
            self.log
                .compact_to_fit(limit, self.config.log_memory_bytes_max);
            self.stats.log_entries_dropped_over_bound += self.log.compacted_index() - before;
        }
    }

    /// The batch a record added now will be part of.
    fn batch_for_new_records(&self) -> u64 {
        // Entries a failed batch left unwritten go in a batch not issued yet too.
        if self.hard_state_dirty || !self.to_persist.is_empty() || self.entries_unwritten {
            self.next_seq
        } else {
            self.next_seq - 1
        }
    }

    fn persisted_seq(&self) -> u64 {
        self.in_flight
            .front()
            .map_or(self.next_seq - 1, |batch| batch.seq - 1)
    }

    fn send(&mut self, to: NodeId, message: Message) {
        debug_assert_ne!(to, self.config.id);
        self.outputs.push_back(Output::Send { to, message });
    }

    /// Sends `message` once everything recorded so far is durable.
    fn send_when_durable(&mut self, to: NodeId, message: Message) {
        let seq = self.batch_for_new_records();
        if seq <= self.persisted_seq() {
            self.send(to, message);
        } else {
            self.gated.push_back((seq, to, message));
        }
    }

    fn release_gated(&mut self) {
        let durable = self.persisted_seq();
        while self.gated.front().is_some_and(|(seq, ..)| *seq <= durable) {
            let (_, to, message) = self.gated.pop_front().unwrap();
            self.send(to, message);
        }
    }

    fn on_persisted(&mut self, seq: u64) {
        assert!(
            seq < self.next_seq,
            "persisted batch {seq} was never issued"
        );
        while self.in_flight.front().is_some_and(|batch| batch.seq <= seq) {
            let batch = self.in_flight.pop_front().unwrap();
            if let Some((first, last)) = batch.entries
                && first <= self.persisted_index + 1
            {
                self.persisted_index = self.persisted_index.max(last);
            }
            if let Some(hard) = batch.hard_state {
                self.durable_hard = hard;
            }
        }
        self.persisted_index = self.persisted_index.min(self.log.last_index());
        self.check_caught_up();
        self.release_gated();
        self.on_own_vote_durable();
        if self.role == Role::Leader {
            self.advance_commit();
        }
    }

    fn on_persist_failed(&mut self, seq: u64, error: &str) {
        if !self.in_flight.iter().any(|batch| batch.seq >= seq) {
            return; // Already handled.
        }
        self.stats.persist_failures += 1;
        let lost: Vec<BatchInFlight> = {
            let keep = self.in_flight.iter().take_while(|b| b.seq < seq).count();
            self.in_flight.drain(keep..).collect()
        };
        self.gated.retain(|(gate, ..)| *gate < seq);
        if lost.iter().any(|batch| batch.hard_state.is_some()) && self.durable_hard != self.hard {
            self.persist_retry = true;
        }
        let Some(first_lost) = lost
            .iter()
            .filter_map(|batch| batch.entries.map(|(first, _)| first))
            .min()
        else {
            return;
        };
        if first_lost > self.log.last_index() {
            return;
        }
        if self.is_single_voter() {
            // Nobody else has seen these entries: take them back and say so, definitely.
            let text =
                format!("MISCONF Errors writing to the WAL: {error}. The write was not applied.");
            self.take_back_from(first_lost, &text);
        } else {
            // Peers may have these entries and commit them without this replica: keep them,
            // and write them again at the next tick, before any newer entry.
            self.persist_retry = true;
            self.entries_unwritten = true;
        }
    }

    /// Single voter only: removes the entries from `first` on, failing their writes with
    /// `error_text` (nothing of them is anywhere).
    fn take_back_from(&mut self, first: u64, error_text: &str) {
        assert!(first > self.commit_index, "committed entries stay");
        for index in first..=self.log.last_index() {
            let entry = self.log.get(index).unwrap().clone();
            if let Some(origin) = entry.origin
                && self.is_own(origin)
            {
                self.clients
                    .fail_write(origin.seq, Frame::error(error_text), &mut self.outputs);
            }
        }
        self.truncate_log_from(first);
        self.after_client_replies();
    }

    fn truncate_log_from(&mut self, first: u64) {
        assert!(first > self.commit_index, "committed entries never change");
        self.log.truncate_from(first);
        self.to_persist.retain(|entry| entry.index < first);
        self.persisted_index = self.persisted_index.min(first - 1);
        for batch in self.in_flight.iter_mut() {
            if let Some((from, to)) = batch.entries {
                batch.entries = (from < first).then_some((from, to.min(first - 1)));
            }
        }
        if self.expiry_in_flight.is_some_and(|index| index >= first) {
            self.expiry_in_flight = None;
        }
        if let Some(leader) = self.leader_state.as_mut()
            && leader.noop_index >= first
        {
            leader.noop_index = 0;
        }
    }

    fn on_tick(&mut self, now_ms: u64) {
        // The adapter's clock may step back (a skewed clock corrected); the core's never does.
        self.now_ms = self.now_ms.max(now_ms);
        if self.persist_retry {
            self.persist_retry = false;
            if self.durable_hard != self.hard {
                self.hard_state_dirty = true;
            }
            if self.entries_unwritten {
                if self.in_flight.iter().any(|b| b.entries.is_some()) {
                    // Earlier entries are still being written: their outcome comes first.
                    self.persist_retry = true;
                } else {
                    // Everything after what is durable, in order: what the failed batch left
                    // and whatever arrived since (queued behind it).
                    self.entries_unwritten = false;
                    let from = self.persisted_index + 1;
                    let last = self.log.last_index();
                    self.to_persist = if from <= last {
                        self.log.slice(from, last)
                    } else {
                        Vec::new()
                    };
                }
            }
        }
        self.on_election_tick();
        if self.role == Role::Leader {
            self.on_leader_tick();
            self.rebroadcast_late_read_rounds();
            self.propose_expiry();
            if self.is_single_voter() && self.noop_pending_proposal() {
                self.propose_noop();
            }
        }
        if self.now_ms > self.writes_scanned_at_ms {
            self.writes_scanned_at_ms = self.now_ms;
            self.clients
                .retry_forwarding(self.now_ms, self.config.election_timeout_ms);
            self.reroute_writes(false);
        }
        self.expire_requests();
        self.clients.drop_idle_queues(self.now_ms);
    }

    /// Active expiry: the leader proposes deletions of keys whose deadline passed, one batch
    /// at a time, once an entry of its term is committed (so its timestamps are current).
    fn propose_expiry(&mut self) {
        if self.expiry_in_flight.is_some() || !self.leader_committed_in_term() {
            return;
        }
        let keys = self
            .keyspace
            .expired_keys(self.now_ms, self.config.expiry_batch_keys);
        if keys.is_empty() {
            return;
        }
        let index = self.append_entry(None, Arc::new(EntryPayload::Expire { keys }));
        self.expiry_in_flight = Some(index);
    }

    /// Appends an entry to the leader's log and asks the adapter to persist it.
    fn append_entry(&mut self, origin: Option<Origin>, payload: Arc<EntryPayload>) -> u64 {
        assert_eq!(self.role, Role::Leader, "only the leader appends");
        self.last_ts_ms = self.last_ts_ms.max(self.now_ms);
        let entry = Arc::new(LogEntry {
            index: self.log.last_index() + 1,
            term: self.hard.term,
            ts_ms: self.last_ts_ms,
            origin,
            payload,
        });
        self.to_persist.push(entry.clone());
        self.log.push(entry);
        self.log.last_index()
    }

    fn is_single_voter(&self) -> bool {
        self.config.voters.len() == 1
    }

    fn majority(&self) -> usize {
        self.config.voters.len() / 2 + 1
    }

    fn is_own(&self, origin: Origin) -> bool {
        origin.node == self.config.id && origin.incarnation == self.incarnation
    }

    /// Applies committed entries in order (under the mutation `bug-apply-before-commit`, every
    /// entry in the log).
    fn apply_committed(&mut self) {
        #[cfg(not(feature = "bug-apply-before-commit"))]
        let applicable = self.commit_index;
        #[cfg(feature = "bug-apply-before-commit")]
        let applicable = self.log.last_index();
        while self.applied_index < applicable {
            let index = self.applied_index + 1;
            let entry = self.log.get(index).unwrap().clone();
            if self.is_single_voter() {
                // Nobody else needs an applied entry.
                self.log.compact_to(index);
            }
            self.apply(&entry);
        }
        self.after_client_replies();
        self.serve_ready_reads();
        self.on_applied_for_wait();
    }

    fn apply(&mut self, entry: &LogEntry) {
        assert_eq!(
            entry.index,
            self.applied_index + 1,
            "entries apply in order"
        );
        #[cfg(not(feature = "bug-apply-before-commit"))]
        assert!(
            entry.index <= self.commit_index,
            "apply only what is committed"
        );
        self.applied_index = entry.index;
        self.applied_ts_ms = self.applied_ts_ms.max(entry.ts_ms);
        self.stats.entries_applied += 1;
        if let Some(origin) = entry.origin {
            let applied = self
                .applied_origins
                .entry((origin.node, origin.incarnation))
                .or_default();
            if !applied.insert(origin.seq) {
                return; // Sent twice; it ran the first time.
            }
        }
        // Writes that draw randomness (SPOP) draw it from the entry, so every replica agrees.
        let mut rng = Rng::new(entry.index ^ 0x5157_4f52_554d);
        let reply = match &*entry.payload {
            EntryPayload::Noop => None,
            EntryPayload::Command { db, argv } => {
                let frame = match Command::look_up(argv) {
                    Ok(spec) => {
                        let ctx = ExecContext {
                            db: db_index(*db),
                            now_ms: entry.ts_ms,
                            version: entry.index,
                        };
                        self.keyspace.execute_argv(spec.id, argv, ctx, &mut rng)
                    }
                    Err(error) => error,
                };
                Some(frame)
            }
            EntryPayload::Transaction { watches, commands } => {
                Some(self.run_transaction(watches, commands, entry.ts_ms, entry.index))
            }
            EntryPayload::Expire { keys } => {
                let deleted = self.keyspace.apply_expiry(keys, entry.ts_ms);
                self.stats.expired_keys += deleted as u64;
                if self.expiry_in_flight == Some(entry.index) {
                    self.expiry_in_flight = None;
                }
                None
            }
        };
        if let (Some(origin), Some(frame)) = (entry.origin, reply)
            && self.is_own(origin)
        {
            self.clients
                .complete_write(origin.seq, Response::Frame(frame), &mut self.outputs);
        }
    }

    /// Runs a transaction whole: if any watched key changed, nothing runs and the reply is
    /// a null array, as Redis's EXEC.
    fn run_transaction(
        &mut self,
        watches: &[WatchedKey],
        commands: &[(u8, Vec<Bytes>)],
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
            .iter()
            .map(|(db, argv)| match Command::look_up(argv) {
                Ok(spec) => match spec.id {
                    CommandId::Ping => ping_reply(argv),
                    CommandId::Echo => Frame::Bulk(argv[1].clone()),
                    _ => {
                        let ctx = ExecContext {
                            db: db_index(*db),
                            now_ms,
                            version,
                        };
                        self.keyspace.execute_argv(spec.id, argv, ctx, &mut rng)
                    }
                },
                Err(error) => error,
            })
            .collect();
        Frame::Array(replies)
    }

    // Observers, for the adapter, INFO, the harness and its checkers.

    pub fn id(&self) -> NodeId {
        self.config.id
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    pub fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }
    pub fn last_index(&self) -> u64 {
        self.log.last_index()
    }
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }
    pub fn commit_index(&self) -> u64 {
        self.commit_index
    }
    pub fn persisted_index(&self) -> u64 {
        self.persisted_index
    }
    pub fn term(&self) -> u64 {
        self.hard.term
    }
    pub fn hard_state(&self) -> HardState {
        self.hard
    }
    pub fn durable_hard_state(&self) -> HardState {
        self.durable_hard
    }
    /// The entry at `index`, if it is held in memory.
    pub fn entry(&self, index: u64) -> Option<&Arc<LogEntry>> {
        self.log.get(index)
    }
    /// The term of the entry at `index`, if this replica still knows it (0 for index 0).
    pub fn term_at(&self, index: u64) -> Option<u64> {
        self.log.term_at(index)
    }
    /// The first index held in memory (entries before it were applied and dropped).
    /// Whether this replica is still catching up after a damaged WAL tail (it does not vote).
    pub fn recovering(&self) -> bool {
        self.recovering.is_some()
    }

    pub fn first_index(&self) -> u64 {
        self.log.first_index()
    }

    /// About how much memory the log's entries in memory hold (`LogEntry::memory_bytes`).
    pub fn log_bytes_in_memory(&self) -> usize {
        self.log.bytes()
    }

    /// About how much memory the entries read back from the WAL for a follower that lacks
    /// them hold (on a leader; see `LeaderState::catch_up`).
    pub fn catch_up_bytes_in_memory(&self) -> usize {
        self.leader_state
            .as_ref()
            .and_then(|leader| leader.catch_up.as_ref())
            .map_or(0, |window| window.bytes())
    }

    /// On a leader, each follower's matched index (what it holds durably, as far as the
    /// leader knows); empty elsewhere.
    pub fn follower_matches(&self) -> Vec<(NodeId, u64)> {
        self.leader_state
            .as_ref()
            .map(|l| l.peers.iter().map(|(id, p)| (*id, p.match_index)).collect())
            .unwrap_or_default()
    }

    /// Requests taken and not yet answered.
    pub fn pending_requests(&self) -> usize {
        self.clients.pending()
    }

    /// The core's own invariants; called after every step in debug builds and by tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        let last = self.log.last_index();
        if !(self.applied_index <= self.commit_index || cfg!(feature = "bug-apply-before-commit")) {
            return Err(format!(
                "applied {} beyond commit {}",
                self.applied_index, self.commit_index
            ));
        }
        if self.commit_index > last || self.persisted_index > last {
            return Err(format!(
                "commit {} or persisted {} beyond the log's end {last}",
                self.commit_index, self.persisted_index
            ));
        }
        if self.durable_hard.term > self.hard.term {
            return Err("the durable term is ahead of the current term".into());
        }
        if self.role == Role::Leader && self.leader != Some(self.config.id) {
            return Err("a leader that does not know it leads".into());
        }
        if self.role == Role::Leader && self.hard.vote != Some(self.config.id) {
            return Err("a leader that did not vote for itself".into());
        }
        if self.recovering.is_some() && matches!(self.role, Role::Leader | Role::Candidate) {
            return Err("a replica that has not caught up campaigned".into());
        }
        if let Some(window) = self.leader_state.as_ref().and_then(|l| l.catch_up.as_ref()) {
            // A piece read back lies before the log in memory (entries up to the compacted
            // index, which only grows), and holds about half the bound at most: the reader
            // stops there, keeping at least two entries (the first being the one before the
            // piece, when it has one).
            if window.last_index() > self.log.compacted_index() {
                return Err(format!(
                    "the piece read back ends at {}, past the compacted index {}",
                    window.last_index(),
                    self.log.compacted_index()
                ));
            }
            if window.bytes() > self.config.log_memory_bytes_max / 2 && window.len() > 2 {
                return Err(format!(
                    "the piece read back holds {} bytes in {} entries",
                    window.bytes(),
                    window.len()
                ));
            }
        }
        // The newest entries only: this runs after every step, and a whole log would make a
        // long run quadratic. (Entries are checked as they arrive, so every entry is checked
        // while it is among the newest.)
        let mut previous_term = 0;
        let recent = self.log.iter().rev().take(64).collect::<Vec<_>>();
        for entry in recent.into_iter().rev() {
            if entry.term < previous_term || entry.term > self.hard.term {
                return Err(format!(
                    "entry {} has term {} (previous {previous_term}, current {})",
                    entry.index, entry.term, self.hard.term
                ));
            }
            previous_term = entry.term;
        }
        let mut previous_seq = 0;
        for batch in &self.in_flight {
            if batch.seq <= previous_seq || batch.seq >= self.next_seq {
                return Err(format!("batch {} out of order", batch.seq));
            }
            previous_seq = batch.seq;
        }
        self.clients.check_invariants()?;
        Ok(())
    }
}

/// A set of sequence numbers, as ranges: origins are applied mostly in order, so this stays
/// a few ranges long.
#[derive(Clone, Debug, Default)]
pub struct IntervalSet {
    /// start -> end (exclusive), disjoint and not adjacent.
    ranges: BTreeMap<u64, u64>,
}

impl IntervalSet {
    /// Adds `n`; false if it was already there.
    pub fn insert(&mut self, n: u64) -> bool {
        if let Some((&start, &end)) = self.ranges.range(..=n).next_back() {
            if n < end {
                return false;
            }
            if n == end {
                let mut new_end = end + 1;
                if let Some(next_end) = self.ranges.remove(&new_end) {
                    new_end = next_end;
                }
                self.ranges.insert(start, new_end);
                return true;
            }
        }
        let mut end = n + 1;
        if let Some(next_end) = self.ranges.remove(&end) {
            end = next_end;
        }
        self.ranges.insert(n, end);
        true
    }

    pub fn contains(&self, n: u64) -> bool {
        self.ranges
            .range(..=n)
            .next_back()
            .is_some_and(|(_, &end)| n < end)
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
