//! What outlives a node in one run: its disk, its clock offset, the network faults the harness
//! injects at the transport, the checkers watching every core step, the fault counts and the
//! trace hash. The nodes reach it through [`NodeHooks`]; everything runs on madsim's one
//! thread, so a plain mutex never waits.

use crate::disk::DiskState;
use quorum::invariants::{Observer, Violation};
use quorum::log::LogEntry;
use quorum::node::NodeHooks;
use quorum::replica::{Message, NodeId, Replica};
use quorum::rng::Rng;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Message faults injected at the transport (madsim's TCP only delays).
#[derive(Clone, Copy, Debug, Default)]
pub struct MessageFaults {
    pub loss_per_mille: u64,
    pub duplicate_per_mille: u64,
    /// Each copy is held up to this long, so messages overtake each other.
    pub delay_ms_max: u64,
}

pub struct WorldState {
    pub rng: Rng,
    pub messages: MessageFaults,
    /// Per node (index = id - 1).
    pub clock_offset_ms: Vec<i64>,
    pub disk_delay_ms: Vec<u64>,
    /// Set when a node met a fatal error; it must have stopped.
    pub fatal: Vec<Option<String>>,
    /// Set when a node refused to start on a corrupt WAL: it stays down (the operator's case).
    pub refused: Vec<Option<String>>,
    /// How many times each node was started (its core's seed and its disk handle depend on it).
    pub starts: Vec<u64>,
    pub observer: Observer,
    pub violation: Option<Violation>,
    pub faults: BTreeMap<&'static str, u64>,
    trace: u64,
    pub steps: u64,
    pub messages_sent: u64,
    /// Per node: its core's counters of log entries read back from its WAL and dropped over
    /// the memory bound, as last seen, and the start they belong to (a restart counts anew).
    core_counts: Vec<(u64, u64, u64)>,
}

/// Prefix of the counters in `WorldState::faults` that are the core's doing, not faults.
pub const CORE_EVENT: &str = "(core) ";
const WAL_READS: &str = "(core) WAL reads for a follower";
const DROPPED_OVER_BOUND: &str = "(core) entries dropped over the memory bound";

pub struct World {
    pub seed: u64,
    /// Disks marked corruptible: always a minority.
    pub corruptible: Vec<bool>,
    pub disks: Vec<Arc<Mutex<DiskState>>>,
    pub state: Mutex<WorldState>,
}

/// FNV-style mixing of a few words into the trace hash.
fn mix(hash: &mut u64, words: &[u64]) {
    for word in words {
        *hash = (*hash ^ word).wrapping_mul(0x100_0000_01b3).rotate_left(17);
    }
}

impl World {
    pub fn new(seed: u64, nodes: usize) -> World {
        let mut rng = Rng::new(seed ^ 0x5157_4f52_554d);
        // At most a minority of disks may be corrupted, so that no entry loses a majority of
        // its copies at once (the limit of what replication can survive).
        let corrupt_count = rng.below(nodes as u64 / 2 + 1) as usize;
        let mut corruptible = vec![false; nodes];
        for _ in 0..corrupt_count {
            let at = rng.below(nodes as u64) as usize;
            corruptible[at] = true;
        }
        World {
            seed,
            corruptible,
            disks: (0..nodes).map(|_| Arc::default()).collect(),
            state: Mutex::new(WorldState {
                rng,
                messages: MessageFaults::default(),
                clock_offset_ms: vec![0; nodes],
                disk_delay_ms: vec![0; nodes],
                fatal: vec![None; nodes],
                refused: vec![None; nodes],
                starts: vec![0; nodes],
                observer: Observer::default(),
                violation: None,
                faults: BTreeMap::new(),
                trace: seed,
                steps: 0,
                messages_sent: 0,
                core_counts: vec![(0, 0, 0); nodes],
            }),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, WorldState> {
        self.state.lock().unwrap()
    }

    pub fn count_fault(&self, kind: &'static str) {
        *self.lock().faults.entry(kind).or_default() += 1;
    }

    pub fn fail(&self, violation: Violation) {
        let mut state = self.lock();
        if state.violation.is_none() {
            state.violation = Some(violation);
        }
    }

    pub fn violation(&self) -> Option<Violation> {
        self.lock().violation.clone()
    }

    /// Mixes an event into the trace hash, with the virtual time.
    pub fn trace(&self, words: &[u64]) {
        let now = virtual_ns();
        let mut state = self.lock();
        let mut hash = state.trace;
        mix(&mut hash, &[now]);
        mix(&mut hash, words);
        state.trace = hash;
    }

    pub fn trace_hash(&self) -> u64 {
        self.lock().trace
    }
}

/// Nanoseconds of virtual time since the run started.
pub fn virtual_ns() -> u64 {
    madsim::time::TimeHandle::current().elapsed().as_nanos() as u64
}

impl NodeHooks for World {
    fn on_send(&self, from: NodeId, to: NodeId, message: &Message) -> Vec<Duration> {
        if !matches!(
            message,
            Message::Append { .. } | Message::AppendReply { .. }
        ) {
            tracing::trace!(from, to, ?message, "send");
        }
        let mut state = self.lock();
        state.messages_sent += 1;
        let faults = state.messages;
        let mut delays = Vec::new();
        if faults.loss_per_mille > 0 && state.rng.below(1000) < faults.loss_per_mille {
            *state.faults.entry("message lost").or_default() += 1;
            return delays;
        }
        let copies = if faults.duplicate_per_mille > 0
            && state.rng.below(1000) < faults.duplicate_per_mille
        {
            *state.faults.entry("message duplicated").or_default() += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay_ms = if faults.delay_ms_max > 0 {
                state.rng.below(faults.delay_ms_max + 1)
            } else {
                0
            };
            if delay_ms > 0 {
                *state.faults.entry("message delayed").or_default() += 1;
            }
            delays.push(Duration::from_millis(delay_ms));
        }
        drop(state);
        self.trace(&[1, from, to, delays.len() as u64]);
        delays
    }

    fn on_persist(&self, node: NodeId, entries: &[(Arc<LogEntry>, u64)]) {
        let mut state = self.lock();
        if state.violation.is_some() {
            return;
        }
        for (entry, previous_term) in entries {
            if let Err(violation) = state.observer.on_persist(node, entry, *previous_term) {
                state.violation = Some(violation);
                return;
            }
        }
    }

    fn after_step(&self, replica: &Replica) {
        tracing::trace!(
            node = replica.id(),
            role = ?replica.role(),
            term = replica.term(),
            vote = ?replica.hard_state().vote,
            last = replica.last_index(),
            commit = replica.commit_index(),
            recovering = replica.recovering(),
            "step"
        );
        self.trace(&[
            2,
            replica.id(),
            replica.term(),
            replica.commit_index(),
            replica.applied_index(),
            replica.last_index(),
        ]);
        let mut state = self.lock();
        state.steps += 1;
        let node = replica.id() as usize - 1;
        let start = state.starts[node];
        let (reads, dropped) = (
            replica.stats.log_reads,
            replica.stats.log_entries_dropped_over_bound,
        );
        let (seen_reads, seen_dropped, seen_start) = state.core_counts[node];
        let (seen_reads, seen_dropped) = if seen_start == start {
            (seen_reads, seen_dropped)
        } else {
            (0, 0)
        };
        state.core_counts[node] = (reads, dropped, start);
        *state.faults.entry(WAL_READS).or_default() += reads - seen_reads;
        *state.faults.entry(DROPPED_OVER_BOUND).or_default() += dropped - seen_dropped;
        if state.violation.is_some() {
            return;
        }

        if let Err(violation) = state.observer.after_step(replica) {
            state.violation = Some(violation);
        }
    }

    fn disk_delay(&self, node: NodeId) -> Duration {
        // Every fsync takes 0.2 to 2 ms (a crash in that window loses or tears the write),
        // plus the slow-disk fault's delay.
        let mut state = self.lock();
        let base_us = 200 + state.rng.below(1800);
        Duration::from_micros(base_us)
            + Duration::from_millis(state.disk_delay_ms[node as usize - 1])
    }
}
