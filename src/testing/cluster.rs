//! A deterministic in-memory cluster of replica cores: a network that can drop, delay,
//! duplicate, reorder and cut messages (both ways or one way), a disk per replica that keeps
//! only what was fsynced (plus, maybe, a prefix of the rest, its last record possibly torn)
//! when the replica crashes, per-replica clocks with skew, crash and restart. One `u64` seed
//! decides everything: the same seed gives the same run, and the same trace hash.
//!
//! Every step of every replica is followed by the checks of [`crate::invariants`].

use crate::codec;
use crate::invariants::{Observer, Violation};
use crate::log::{LogEntry, WalRecord};
use crate::replica::{
    ClientId, Input, Message, NodeId, Output, PersistBatch, Replica, ReplicaConfig, Request,
    Response,
};
use crate::rng::Rng;
use crate::wal::record::{encode_frame, encode_header};
use crate::wal::recovery::scan_segment;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How the network and the disks behave; the harness changes it while it runs.
#[derive(Clone, Debug)]
pub struct Faults {
    /// Message delay, drawn from this range (milliseconds).
    pub delay_ms: (u64, u64),
    pub drop_per_mille: u64,
    pub duplicate_per_mille: u64,
    /// Directed links that deliver nothing: (from, to).
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// How long an fsync takes, drawn from this range (milliseconds).
    pub fsync_ms: (u64, u64),
    /// How long a WAL read for a follower (`Output::ReadLog`) takes, drawn from this range
    /// (milliseconds; (0, 0): answered within the step that asked), and how many in a
    /// thousand fail (come back empty).
    pub log_read_ms: (u64, u64),
    pub log_read_failure_per_mille: u64,
    /// How many writes in a thousand the disk refuses (a full disk): the batch is not
    /// written, and the replica hears `PersistFailed` after the batches before it. As the real
    /// writer does, batches issued before the replica heard of it are dropped unwritten.
    pub write_failure_per_mille: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            delay_ms: (1, 5),
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            cut: BTreeSet::new(),
            fsync_ms: (0, 2),
            log_read_ms: (0, 0),
            log_read_failure_per_mille: 0,
            write_failure_per_mille: 0,
        }
    }
}

/// A replica's disk: one WAL segment, framed as the real WAL frames it, so that recovery runs
/// the real scanner over what a crash left.
#[derive(Clone, Default)]
pub struct SimDisk {
    bytes: Vec<u8>,
    synced_len: usize,
}

impl SimDisk {
    fn append(&mut self, batch: &PersistBatch) -> usize {
        if self.bytes.is_empty() {
            self.bytes.extend_from_slice(&encode_header(0));
            self.synced_len = self.bytes.len();
        }
        for record in batch.records() {
            let payload = codec::encode_wal_record(&record);
            let offset = self.bytes.len() as u64;
            let mut frame = Vec::new();
            encode_frame(&payload, offset, &mut frame);
            self.bytes.extend_from_slice(&frame);
        }
        self.bytes.len()
    }

    /// A crash: what was fsynced stays; of the rest, a random prefix may have reached the
    /// disk, its last sector possibly garbage (a torn write).
    fn crash(&mut self, rng: &mut Rng) {
        let unsynced = self.bytes.len() - self.synced_len;
        let kept = if unsynced == 0 {
            0
        } else {
            rng.below(unsynced as u64 + 1) as usize
        };
        self.bytes.truncate(self.synced_len + kept);
        if kept > 0 && rng.below(2) == 0 {
            // The last sector written is garbage: only the tail, so that what precedes it is
            // a clean prefix (out-of-order sectors are a fault of their own, which recovery
            // refuses rather than guesses at).
            let at = self.bytes.len() - rng.below(kept.min(16) as u64 + 1) as usize;
            for byte in &mut self.bytes[at..] {
                *byte = rng.next_u64() as u8;
            }
        }
    }

    /// Recovery: the records of the valid prefix; a torn tail is cut, as the real WAL does.
    fn recover(&mut self) -> Result<Vec<WalRecord>, String> {
        let (records, valid_len) = self.records()?;
        self.bytes.truncate(valid_len);
        self.synced_len = self.bytes.len();
        Ok(records)
    }

    /// The records of the valid prefix (written, synced or not), and where that prefix ends.
    fn records(&self) -> Result<(Vec<WalRecord>, usize), String> {
        if self.bytes.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let scan = scan_segment(&self.bytes, true)
            .map_err(|(offset, kind)| format!("corrupt WAL at {offset}: {kind:?}"))?;
        let records = scan
            .records
            .iter()
            .map(|range| codec::decode_wal_record(&self.bytes[range.clone()]))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        Ok((records, scan.valid_len))
    }

    /// The entries `from..=to` the disk holds (up to `bytes_max` of them), for
    /// `Output::ReadLog`; none if it does not decode.
    fn entries(&self, from: u64, to: u64, bytes_max: usize) -> Vec<LogEntry> {
        self.records().map_or(Vec::new(), |(records, _)| {
            crate::wal::entries_between(records, from, to, bytes_max)
        })
    }
}

struct SimNode {
    id: NodeId,
    replica: Option<Replica>,
    disk: SimDisk,
    /// This replica's clock minus the cluster's (milliseconds).
    skew_ms: i64,
    /// Bumped at each crash: events of an earlier life are dropped.
    life: u64,
    /// When the fsync in progress ends.
    fsync_end_ms: u64,
    /// The next fsync, queued behind it: (start, end). Batches written meanwhile all join it,
    /// as the real writer's group commit does.
    fsync_queued: Option<(u64, u64)>,
    /// How many `PersistFailed` the replica heard in this life, and the last count at which
    /// a batch failed: batches issued at that count or before it are dropped (the real
    /// writer's failure epochs).
    failures_heard: u64,
    failed_epoch: Option<u64>,
    /// The index after the last entry written in this life: a batch may replace a suffix,
    /// never leave a gap (the real writer asserts it).
    next_index: Option<u64>,
}

#[derive(Debug)]
enum Event {
    Deliver {
        from: NodeId,
        to: NodeId,
        message: Message,
    },
    Persisted {
        node: NodeId,
        life: u64,
        seq: u64,
        synced_len: usize,
    },
    Tick {
        node: NodeId,
        life: u64,
    },
    /// The disk refused a batch (`Faults::write_failure_per_mille`).
    PersistFailed {
        node: NodeId,
        life: u64,
        seq: u64,
    },
    /// A slow WAL read's answer.
    LogRead {
        node: NodeId,
        life: u64,
        entries: Vec<Arc<LogEntry>>,
    },
}

/// A reply a replica released to a client.
#[derive(Clone, Debug)]
pub struct ClientReply {
    pub node: NodeId,
    pub client: ClientId,
    pub id: u64,
    pub response: Response,
    pub at_ms: u64,
}

pub struct ClusterConfig {
    pub replicas: usize,
    pub seed: u64,
    /// The template for every replica (its `id`, `voters` and `seed` are set per replica).
    pub replica: ReplicaConfig,
    /// How often each replica gets a `Tick`; 0: only when the driver says (scripts).
    pub tick_ms: u64,
    /// Check the invariants after every step (off only for benchmarks).
    pub check: bool,
}

impl ClusterConfig {
    pub fn new(replicas: usize, seed: u64) -> ClusterConfig {
        ClusterConfig {
            replicas,
            seed,
            replica: ReplicaConfig {
                election_timeout_ms: 300,
                heartbeat_interval_ms: 50,
                request_timeout_ms: 3_000,
                // On even seeds small, so that a replica that is down or cut off makes the
                // others drop entries it lacks and read them back from their WALs for it; odd
                // seeds keep the default, under which the checks that look at the log in
                // memory (leader completeness, committed entries) see all of it.
                log_memory_bytes_max: if seed.is_multiple_of(2) {
                    8 * 1024
                } else {
                    ReplicaConfig::default().log_memory_bytes_max
                },
                ..ReplicaConfig::default()
            },
            tick_ms: 10,
            check: true,
        }
    }
}

pub struct Cluster {
    pub now_ms: u64,
    pub faults: Faults,
    rng: Rng,
    nodes: Vec<SimNode>,
    queue: BTreeMap<(u64, u64), Event>,
    next_event: u64,
    config: ClusterConfig,
    pub observer: Observer,
    /// The first invariant broken, if any (the run stops checking after it).
    pub violation: Option<Violation>,
    /// Replies not yet taken by the driver.
    pub replies: Vec<ClientReply>,
    /// A hash of every event, in order: the same seed must give the same hash.
    pub trace_hash: u64,
    /// Script mode: a line per event, for golden files.
    pub transcript: Option<Vec<String>>,
    pub steps: u64,
    /// `Output::ReadLog`s served (a leader reading entries back for a follower), and those
    /// that stopped short of what was asked for at their `bytes_max` (a piece of the gap).
    pub log_reads: u64,
    pub log_reads_cut_short: u64,
    /// Of those, the reads the fault model made slow, and made fail.
    pub log_reads_slow: u64,
    pub log_reads_failed: u64,
    /// Batches the disk refused (`Faults::write_failure_per_mille`).
    pub writes_refused: u64,
}

impl Cluster {
    pub fn new(config: ClusterConfig) -> Cluster {
        Cluster::new_with(config, |_| {})
    }

    /// A cluster set up by `prepare` (faults, transcript) before its replicas start.
    pub fn new_with(config: ClusterConfig, prepare: impl FnOnce(&mut Cluster)) -> Cluster {
        let mut rng = Rng::new(config.seed);
        let mut cluster = Cluster {
            now_ms: 0,
            faults: Faults::default(),
            nodes: Vec::new(),
            queue: BTreeMap::new(),
            next_event: 0,
            observer: Observer::default(),
            violation: None,
            replies: Vec::new(),
            trace_hash: 0xcbf2_9ce4_8422_2325,
            transcript: None,
            steps: 0,
            log_reads: 0,
            log_reads_cut_short: 0,
            log_reads_slow: 0,
            log_reads_failed: 0,
            writes_refused: 0,
            rng: Rng::new(rng.next_u64()),
            config,
        };
        for i in 0..cluster.config.replicas {
            cluster.nodes.push(SimNode {
                id: i as NodeId + 1,
                replica: None,
                disk: SimDisk::default(),
                skew_ms: 0,
                life: 0,
                fsync_end_ms: 0,
                fsync_queued: None,
                failures_heard: 0,
                failed_epoch: None,
                next_index: None,
            });
        }
        prepare(&mut cluster);
        for id in cluster.ids() {
            cluster.start(id);
        }
        cluster
    }

    /// The transcript lines since the last call.
    pub fn take_transcript(&mut self) -> Vec<String> {
        self.transcript
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    fn node(&mut self, id: NodeId) -> &mut SimNode {
        &mut self.nodes[id as usize - 1]
    }

    pub fn replica(&self, id: NodeId) -> Option<&Replica> {
        self.nodes[id as usize - 1].replica.as_ref()
    }

    /// The time on `id`'s clock.
    pub fn clock_of(&self, id: NodeId) -> u64 {
        let node = &self.nodes[id as usize - 1];
        (self.now_ms as i64 + node.skew_ms).max(0) as u64
    }

    pub fn set_skew(&mut self, id: NodeId, skew_ms: i64) {
        self.node(id).skew_ms = skew_ms;
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.next_event += 1;
        self.queue.insert((at_ms, self.next_event), event);
    }

    fn mix(&mut self, values: &[u64]) {
        for v in values {
            self.trace_hash = (self.trace_hash ^ v).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(transcript) = self.transcript.as_mut() {
            transcript.push(line());
        }
    }

    /// Starts (or restarts) replica `id` on what its disk holds.
    pub fn start(&mut self, id: NodeId) {
        assert!(self.replica(id).is_none(), "replica {id} is running");
        let voters = self.ids();
        let seed = self.rng.next_u64();
        let now_ms = self.clock_of(id);
        let mut config = self.config.replica.clone();
        config.id = id;
        config.voters = voters;
        config.seed = seed;
        let records = match self.node(id).disk.recover() {
            Ok(records) => records,
            Err(error) => {
                self.fail(Violation {
                    property: "recovery",
                    detail: format!("replica {id} cannot recover its WAL: {error}"),
                });
                return;
            }
        };
        let restored = std::panic::catch_unwind(|| Replica::restore(config, now_ms, records));
        let replica = match restored {
            Ok(replica) => replica,
            Err(panic) => {
                let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
                self.fail(Violation {
                    property: "replica assertions",
                    detail: format!("replica {id} panicked while restoring: {message}"),
                });
                return;
            }
        };
        let node = self.node(id);
        node.replica = Some(replica);
        node.life += 1;
        node.fsync_end_ms = 0;
        node.fsync_queued = None;
        node.failures_heard = 0;
        node.failed_epoch = None;
        node.next_index = None;
        let life = node.life;
        self.note(|| format!("{id} started"));
        self.drain(id);
        if self.config.tick_ms > 0 {
            let at = self.now_ms + 1 + self.rng.below(self.config.tick_ms);
            self.schedule(at, Event::Tick { node: id, life });
        }
    }

    /// Crashes replica `id`: it loses its memory and every write not fsynced (maybe not all
    /// of them, and the last may be torn).
    pub fn crash(&mut self, id: NodeId) {
        let mut rng = Rng::new(self.rng.next_u64());
        let node = self.node(id);
        if node.replica.take().is_none() {
            return;
        }
        node.disk.crash(&mut rng);
        node.life += 1;
        self.note(|| format!("{id} crashed"));
    }

    /// Crashes replica `id` and wipes its disk: a replaced machine. This is outside the fault
    /// model the invariants assume (it loses acknowledged copies); scripts use it to show how
    /// the leader repairs such a replica.
    pub fn wipe(&mut self, id: NodeId) {
        self.crash(id);
        self.node(id).disk = SimDisk::default();
        self.note(|| format!("{id} disk wiped"));
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.replica(id).is_some()
    }

    /// Cuts every link between the two groups, both ways.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.faults.cut.insert((x, y));
                self.faults.cut.insert((y, x));
            }
        }
    }

    pub fn heal(&mut self) {
        self.faults.cut.clear();
    }

    /// Hands requests to replica `id`, as its clients' connections would.
    pub fn request(&mut self, id: NodeId, requests: Vec<Request>) {
        self.step(id, Input::Requests(requests));
    }

    pub fn transfer_leader(&mut self, from: NodeId, to: NodeId) {
        self.step(from, Input::TransferLeader { to });
    }

    /// Gives replica `id` a tick at its clock's current time.
    pub fn tick(&mut self, id: NodeId) {
        let now_ms = self.clock_of(id);
        self.step(id, Input::Tick { now_ms });
    }

    fn fail(&mut self, violation: Violation) {
        if self.violation.is_none() {
            self.note(|| format!("VIOLATION {violation}"));
            self.violation = Some(violation);
        }
    }

    fn step(&mut self, id: NodeId, input: Input) {
        let Some(replica) = self.nodes[id as usize - 1].replica.as_mut() else {
            return;
        };
        self.steps += 1;
        // A panic (a broken assertion in the core) is a finding like any other: report it
        // with the seed instead of tearing the whole test down.
        let stepped =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| replica.step(input)));
        if let Err(panic) = stepped {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            self.fail(Violation {
                property: "replica assertions",
                detail: format!("replica {id} panicked: {message}"),
            });
            // Its state is not to be trusted any more: it is gone, like a crashed process.
            self.nodes[id as usize - 1].replica = None;
            return;
        }
        if self.config.check && self.violation.is_none() {
            let replica = self.nodes[id as usize - 1].replica.as_ref().unwrap();
            if let Err(violation) = self.observer.after_step(replica) {
                self.fail(violation);
            }
        }
        self.drain(id);
    }

    /// Carries out a replica's outputs.
    fn drain(&mut self, id: NodeId) {
        loop {
            let Some(output) = self.nodes[id as usize - 1]
                .replica
                .as_mut()
                .and_then(|r| r.poll_output())
            else {
                return;
            };
            match output {
                Output::Persist(batch) => self.on_persist(id, batch),
                Output::Send { to, message } => self.on_send(id, to, message),
                Output::ReadLog {
                    from,
                    to,
                    bytes_max,
                } => {
                    let mut entries = self.node(id).disk.entries(from, to, bytes_max);
                    self.log_reads += 1;
                    if entries.last().is_some_and(|e| e.index < to) {
                        self.log_reads_cut_short += 1;
                    }
                    let failure_per_mille = self.faults.log_read_failure_per_mille;
                    if failure_per_mille > 0 && self.rng.below(1000) < failure_per_mille {
                        entries.clear();
                        self.log_reads_failed += 1;
                    }
                    self.mix(&[5, id, from, to, entries.len() as u64]);
                    self.note(|| format!("{id} reads entries {from}..={to} back from its WAL"));
                    let entries = entries.into_iter().map(Arc::new).collect();
                    let (low, high) = self.faults.log_read_ms;
                    if high == 0 {
                        self.step(id, Input::LogRead { entries });
                    } else {
                        // The replica goes on meanwhile: heartbeats, answers, other reads'
                        // requests, a lost leadership.
                        let at = self.now_ms + low + self.rng.below(high - low + 1);
                        self.log_reads_slow += 1;
                        let life = self.node(id).life;
                        self.schedule(
                            at,
                            Event::LogRead {
                                node: id,
                                life,
                                entries,
                            },
                        );
                    }
                }
                Output::Reply {
                    client,
                    id: request_id,
                    response,
                } => {
                    self.mix(&[4, id, client, request_id]);
                    self.note(|| {
                        format!("{id} replies to client {client} #{request_id}: {response:?}")
                    });
                    self.replies.push(ClientReply {
                        node: id,
                        client,
                        id: request_id,
                        response,
                        at_ms: self.now_ms,
                    });
                }
            }
        }
    }

    fn on_persist(&mut self, id: NodeId, batch: PersistBatch) {
        self.mix(&[1, id, batch.seq, batch.entries.len() as u64]);
        self.note(|| describe_batch(id, &batch));
        if self.config.check && self.violation.is_none() {
            let replica = self.nodes[id as usize - 1].replica.as_ref().unwrap();
            let observer = &mut self.observer;
            let mut result = Ok(());
            for entry in &batch.entries {
                let previous_term = if entry.index == 1 {
                    0
                } else {
                    match replica.term_at(entry.index - 1) {
                        Some(term) => term,
                        None => continue,
                    }
                };
                result = result.and_then(|()| observer.on_persist(id, entry, previous_term));
            }
            if let Err(violation) = result {
                self.fail(violation);
            }
        }
        let node = self.node(id);
        if node
            .failed_epoch
            .is_some_and(|failed| node.failures_heard <= failed)
        {
            // Issued before the replica heard of the failure: dropped, as the writer does.
            self.note(|| format!("{id} batch {} dropped behind a failed one", batch.seq));
            return;
        }
        let failure_per_mille = self.faults.write_failure_per_mille;
        if failure_per_mille > 0 && self.rng.below(1000) < failure_per_mille {
            let now_ms = self.now_ms;
            let node = self.node(id);
            node.failed_epoch = Some(node.failures_heard);
            // Told after every batch before it is reported.
            let after = node
                .fsync_queued
                .map_or(node.fsync_end_ms, |(_, end)| end)
                .max(now_ms);
            let life = node.life;
            self.writes_refused += 1;
            self.note(|| format!("{id} batch {} refused (disk full)", batch.seq));
            self.schedule(
                after,
                Event::PersistFailed {
                    node: id,
                    life,
                    seq: batch.seq,
                },
            );
            return;
        }
        if let Some(first) = batch.entries.first() {
            let next = self.node(id).next_index;
            if next.is_some_and(|next| first.index > next) {
                self.fail(Violation {
                    property: "WAL order",
                    detail: format!(
                        "replica {id} wrote entry {} after {}: a gap in its WAL",
                        first.index,
                        next.unwrap() - 1
                    ),
                });
            }
            self.node(id).next_index = Some(batch.entries.last().unwrap().index + 1);
        }
        let fsync_ms = self.draw(self.faults.fsync_ms);
        let synced_len = self.node(id).disk.append(&batch);
        let now_ms = self.now_ms;
        let node = self.node(id);
        if let Some((start, end)) = node.fsync_queued
            && start <= now_ms
        {
            node.fsync_end_ms = end;
            node.fsync_queued = None;
        }
        let done_at = if now_ms >= node.fsync_end_ms {
            node.fsync_end_ms = now_ms + fsync_ms;
            node.fsync_end_ms
        } else if let Some((_, end)) = node.fsync_queued {
            end
        } else {
            let start = node.fsync_end_ms;
            node.fsync_queued = Some((start, start + fsync_ms));
            start + fsync_ms
        };
        let life = node.life;
        self.schedule(
            done_at,
            Event::Persisted {
                node: id,
                life,
                seq: batch.seq,
                synced_len,
            },
        );
    }

    fn draw(&mut self, (low, high): (u64, u64)) -> u64 {
        low + self.rng.below(high - low + 1)
    }

    fn on_send(&mut self, from: NodeId, to: NodeId, message: Message) {
        self.mix(&[2, from, to, message.term()]);
        if self.faults.cut.contains(&(from, to)) {
            self.note(|| format!("{from}->{to} cut: {}", describe_message(&message)));
            return;
        }
        if self.faults.drop_per_mille > 0 && self.rng.below(1000) < self.faults.drop_per_mille {
            return;
        }
        let copies = if self.faults.duplicate_per_mille > 0
            && self.rng.below(1000) < self.faults.duplicate_per_mille
        {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.draw(self.faults.delay_ms);
            self.schedule(
                self.now_ms + delay,
                Event::Deliver {
                    from,
                    to,
                    message: message.clone(),
                },
            );
        }
    }

    /// Runs the next event, if any is due at or before `until_ms`. False when none is.
    pub fn step_event(&mut self, until_ms: u64) -> bool {
        let Some((&(at_ms, _), _)) = self.queue.first_key_value() else {
            return false;
        };
        if at_ms > until_ms {
            return false;
        }
        let ((at_ms, _), event) = self.queue.pop_first().unwrap();
        self.now_ms = self.now_ms.max(at_ms);
        match event {
            Event::Deliver { from, to, message } => {
                if !self.is_up(to) {
                    return true;
                }
                self.mix(&[3, from, to, self.now_ms]);
                self.note(|| format!("{from}->{to} {}", describe_message(&message)));
                self.step(to, Input::Message { from, message });
            }
            Event::Persisted {
                node,
                life,
                seq,
                synced_len,
            } => {
                if self.node(node).life != life {
                    return true;
                }
                let disk = &mut self.node(node).disk;
                disk.synced_len = disk.synced_len.max(synced_len);
                self.mix(&[5, node, seq]);
                self.note(|| format!("{node} persisted batch {seq}"));
                self.step(node, Input::Persisted { seq });
            }
            Event::PersistFailed { node, life, seq } => {
                if self.node(node).life != life {
                    return true;
                }
                self.node(node).failures_heard += 1;
                self.mix(&[8, node, seq]);
                self.note(|| format!("{node} told batch {seq} failed"));
                self.step(
                    node,
                    Input::PersistFailed {
                        seq,
                        error: "No space left on device".into(),
                    },
                );
            }
            Event::Tick { node, life } => {
                if self.node(node).life != life {
                    return true;
                }
                self.mix(&[6, node]);
                self.tick(node);
                let at = self.now_ms + self.config.tick_ms;
                self.schedule(at, Event::Tick { node, life });
            }
            Event::LogRead {
                node,
                life,
                entries,
            } => {
                if self.node(node).life != life {
                    return true;
                }
                self.mix(&[7, node, entries.len() as u64]);
                self.step(node, Input::LogRead { entries });
            }
        }
        true
    }

    /// Runs every event due up to `until_ms`, then sets the time to it.
    pub fn run_until(&mut self, until_ms: u64) {
        while self.step_event(until_ms) {}
        self.now_ms = self.now_ms.max(until_ms);
    }

    /// Runs until no event is left (scripts, where nothing ticks on its own). Bounded, since
    /// a bug could make replicas talk forever.
    pub fn stabilize(&mut self) {
        let mut budget = 100_000;
        while budget > 0 && self.step_event(u64::MAX) {
            budget -= 1;
        }
        assert!(budget > 0, "the cluster did not go quiet");
    }

    /// The leader a majority follows, if any: the newest term's leader, if a majority of
    /// running replicas know it.
    pub fn stable_leader(&self) -> Option<NodeId> {
        let leader = self
            .nodes
            .iter()
            .filter_map(|n| n.replica.as_ref())
            .filter(|r| r.role() == crate::replica::Role::Leader)
            .max_by_key(|r| r.term())?;
        let following = self
            .nodes
            .iter()
            .filter_map(|n| n.replica.as_ref())
            .filter(|r| r.term() == leader.term() && r.leader() == Some(leader.id()))
            .count();
        (following > self.nodes.len() / 2).then_some(leader.id())
    }

    /// Requests taken by running replicas and not answered yet.
    pub fn pending_requests(&self) -> usize {
        self.nodes
            .iter()
            .filter_map(|n| n.replica.as_ref())
            .map(|r| r.pending_requests())
            .sum()
    }

    /// One line per replica: role, term, vote, leader, log end and commit; for failure reports.
    pub fn describe(&self) -> String {
        let mut lines = Vec::new();
        for node in &self.nodes {
            match &node.replica {
                None => lines.push(format!("{}: down", node.id)),
                Some(r) => lines.push(format!(
                    "{}: {:?} term={} vote={:?} leader={:?} last={}/{} commit={} applied={} persisted={} pending={}",
                    node.id,
                    r.role(),
                    r.term(),
                    r.hard_state().vote,
                    r.leader(),
                    r.last_index(),
                    r.term_at(r.last_index()).unwrap_or(0),
                    r.commit_index(),
                    r.applied_index(),
                    r.persisted_index(),
                    r.pending_requests(),
                )),
            }
        }
        lines.join("\n    ")
    }

    /// The entries of `id`'s log, for checks at the end of a run: what its WAL holds before
    /// what it holds in memory (which is newer where they overlap, and may not be written yet;
    /// entries every replica holds leave memory).
    pub fn log_of(&self, id: NodeId) -> Vec<LogEntry> {
        let Some(replica) = self.replica(id) else {
            return Vec::new();
        };
        let first_in_memory = replica.first_index();
        let mut log = self.nodes[id as usize - 1]
            .disk
            .entries(1, first_in_memory - 1, usize::MAX);
        log.extend(
            (first_in_memory..=replica.last_index())
                .filter_map(|i| replica.entry(i).map(|e| (**e).clone())),
        );
        log
    }
}

fn describe_batch(id: NodeId, batch: &PersistBatch) -> String {
    let mut line = format!("{id} persists batch {}:", batch.seq);
    if let Some(hard) = batch.hard_state {
        line += &format!(" term={} vote={:?}", hard.term, hard.vote);
    }
    if !batch.entries.is_empty() {
        line += &format!(" entries={}", describe_entries(&batch.entries));
    }
    line
}

fn describe_entries(entries: &[std::sync::Arc<LogEntry>]) -> String {
    let parts: Vec<String> = entries
        .iter()
        .map(|e| format!("{}/{}:{}", e.index, e.term, describe_payload(&e.payload)))
        .collect();
    format!("[{}]", parts.join(" "))
}

fn describe_payload(payload: &crate::log::EntryPayload) -> String {
    use crate::log::EntryPayload;
    match payload {
        EntryPayload::Noop => "noop".into(),
        EntryPayload::Command { argv, .. } => argv
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
        EntryPayload::Transaction { commands, .. } => format!("multi({})", commands.len()),
        EntryPayload::Expire { keys } => format!("expire({})", keys.len()),
    }
}

/// One line per message, for transcripts.
pub fn describe_message(message: &Message) -> String {
    use crate::replica::AppendOutcome;
    match message {
        Message::PreVote {
            term,
            last_index,
            last_term,
        } => format!("PreVote term={term} last={last_index}/{last_term}"),
        Message::PreVoteReply { term, granted } => {
            format!("PreVoteReply term={term} granted={granted}")
        }
        Message::Vote {
            term,
            last_index,
            last_term,
            transfer,
        } => format!(
            "Vote term={term} last={last_index}/{last_term}{}",
            if *transfer { " transfer" } else { "" }
        ),
        Message::VoteReply { term, granted } => format!("VoteReply term={term} granted={granted}"),
        Message::Append {
            term,
            prev_index,
            prev_term,
            entries,
            commit,
            read_round,
            held_by_all: _,
        } => format!(
            "Append term={term} prev={prev_index}/{prev_term} commit={commit} round={read_round} entries={}",
            describe_entries(entries)
        ),
        Message::AppendReply {
            term,
            outcome,
            read_round,
        } => match outcome {
            AppendOutcome::Accepted { match_index } => {
                format!("AppendReply term={term} accepted match={match_index} round={read_round}")
            }
            AppendOutcome::Rejected {
                prev_index,
                hint_index,
            } => format!(
                "AppendReply term={term} rejected prev={prev_index} hint={hint_index} round={read_round}"
            ),
            AppendOutcome::StaleTerm => format!("AppendReply term={term} stale-term"),
        },
        Message::TimeoutNow { term } => format!("TimeoutNow term={term}"),
        Message::ReadIndex { term, ctx } => format!("ReadIndex term={term} ctx={ctx}"),
        Message::ReadIndexReply { term, ctx, index } => {
            format!("ReadIndexReply term={term} ctx={ctx} index={index:?}")
        }
        Message::Probe { term } => format!("Probe term={term}"),
        Message::ProbeReply {
            term,
            last_index,
            last_term,
            recovering,
        } => format!(
            "ProbeReply term={term} last={last_index}/{last_term}{}",
            if *recovering { " recovering" } else { "" }
        ),
        Message::Forward { term, proposals } => {
            let parts: Vec<String> = proposals
                .iter()
                .map(|p| describe_payload(&p.payload))
                .collect();
            format!("Forward term={term} [{}]", parts.join(", "))
        }
    }
}
