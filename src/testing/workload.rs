//! Seeded chaos runs of the in-memory cluster: clients issuing single-key operations and
//! recording what they saw, a random fault schedule (a safety phase), then healing and a
//! liveness phase, then the end-of-run checks (durability, linearizability).

use super::cluster::{ClientReply, Cluster, ClusterConfig};
use crate::command::Command;
use crate::invariants::{self, Violation};
use crate::linearizability::{self, OpKind, Operation};
use crate::replica::{ClientId, NodeId, Op, Request, Response};
use crate::resp::Frame;
use crate::rng::Rng;
use bytes::Bytes;

#[derive(Clone, Debug)]
pub struct ScenarioConfig {
    pub replicas: usize,
    pub seed: u64,
    /// How long faults are injected (simulated milliseconds).
    pub safety_ms: u64,
    /// How long a healed cluster has to elect a leader and answer every request.
    pub liveness_ms: u64,
    pub clients: usize,
    /// Register keys (GET, SET, DEL) and counter keys (GET, INCR).
    pub registers: usize,
    pub counters: usize,
    /// Linearizability search budget per key.
    pub budget_steps: u64,
    /// Keep a transcript of every event, and print its last `trace_lines` lines on failure.
    pub trace_lines: usize,
}

impl ScenarioConfig {
    pub fn new(replicas: usize, seed: u64) -> ScenarioConfig {
        ScenarioConfig {
            replicas,
            seed,
            safety_ms: 6_000,
            liveness_ms: 15_000,
            clients: 5,
            registers: 3,
            counters: 1,
            budget_steps: 2_000_000,
            trace_lines: 0,
        }
    }
}

/// What a run did, for the summary line.
#[derive(Debug, Default)]
pub struct ScenarioReport {
    pub operations: usize,
    pub acknowledged_writes: usize,
    pub unknown: usize,
    pub crashes: usize,
    pub steps: u64,
    pub trace_hash: u64,
    /// The linearizability search ran out of budget on some key.
    pub inconclusive: bool,
    /// WAL reads for followers that lacked entries dropped from memory, and how many of
    /// them were a piece of the gap (see `Cluster::log_reads`).
    pub log_reads: u64,
    pub log_reads_cut_short: u64,
    pub log_reads_slow: u64,
    pub log_reads_failed: u64,
    /// Batches the disk refused (a full disk).
    pub writes_refused: u64,
}

struct InFlight {
    request_id: u64,
    node: NodeId,
    /// Its operation in the history; `None` for a key the checker does not follow.
    op: Option<usize>,
    argv: Vec<Bytes>,
}

struct Client {
    id: ClientId,
    next_request: u64,
    in_flight: Option<InFlight>,
}

pub struct Workload {
    rng: Rng,
    clients: Vec<Client>,
    registers: usize,
    counters: usize,
    pub history: Vec<Operation>,
    /// Operations that failed definitely (never took effect): left out of the history.
    removed: Vec<bool>,
    pub acknowledged: Vec<Vec<Bytes>>,
    next_value: u64,
}

fn argv(words: &[&str]) -> Vec<Bytes> {
    words
        .iter()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

impl Workload {
    pub fn new(seed: u64, clients: usize, registers: usize, counters: usize) -> Workload {
        Workload {
            rng: Rng::new(seed),
            clients: (0..clients)
                .map(|i| Client {
                    id: i as ClientId + 1,
                    next_request: 0,
                    in_flight: None,
                })
                .collect(),
            registers,
            counters,
            history: Vec::new(),
            removed: Vec::new(),
            acknowledged: Vec::new(),
            next_value: 0,
        }
    }

    pub fn idle(&self) -> bool {
        self.clients.iter().all(|c| c.in_flight.is_none())
    }

    /// Each idle client starts an operation with probability `per_mille`/1000, on a random
    /// running replica.
    pub fn issue(&mut self, cluster: &mut Cluster, per_mille: u64) {
        let up: Vec<NodeId> = cluster
            .ids()
            .into_iter()
            .filter(|&id| cluster.is_up(id))
            .collect();
        if up.is_empty() {
            return;
        }
        for c in 0..self.clients.len() {
            if self.clients[c].in_flight.is_some() || self.rng.below(1000) >= per_mille {
                continue;
            }
            let node = up[self.rng.below(up.len() as u64) as usize];
            let (words, checked) = self.next_operation(c);
            let client = &mut self.clients[c];
            client.next_request += 1;
            let request_id = client.next_request;
            let op = checked.map(|(kind, key)| {
                self.history.push(Operation {
                    client: client.id,
                    key: Bytes::from(key),
                    kind,
                    invoked_at: cluster.now_ms,
                    completed_at: None,
                });
                self.removed.push(false);
                self.history.len() - 1
            });
            let argv = argv(&words.iter().map(String::as_str).collect::<Vec<_>>());
            client.in_flight = Some(InFlight {
                request_id,
                node,
                op,
                argv: argv.clone(),
            });
            let request = Request {
                client: client.id,
                id: request_id,
                op: Op::Command {
                    db: 0,
                    cmd: Command::parse(argv).expect("the workload sends valid commands"),
                },
            };
            cluster.request(node, vec![request]);
        }
    }

    /// The next command, and what the checker records of it (`None`: keys with a TTL, which
    /// the register model does not follow; they exercise expiry through the log, which the
    /// state-machine check covers).
    fn next_operation(&mut self, client: usize) -> (Vec<String>, Option<(OpKind, String)>) {
        let keys = self.registers + self.counters;
        if self.rng.below(100) < 8 {
            let ttl_ms = 50 + self.rng.below(450);
            let key = format!("t{}", self.rng.below(3));
            let words = vec![
                "SET".into(),
                key,
                "x".into(),
                "PX".into(),
                ttl_ms.to_string(),
            ];
            return (words, None);
        }
        let k = self.rng.below(keys as u64) as usize;
        let roll = self.rng.below(100);
        let (words, kind, key) = if k < self.registers {
            let key = format!("r{k}");
            if roll < 45 {
                (
                    vec!["GET".into(), key.clone()],
                    OpKind::Read { observed: None },
                    key,
                )
            } else if roll < 92 {
                self.next_value += 1;
                let value = format!("c{client}v{}", self.next_value);
                (
                    vec!["SET".into(), key.clone(), value.clone()],
                    OpKind::Write {
                        value: Bytes::from(value),
                    },
                    key,
                )
            } else {
                (vec!["DEL".into(), key.clone()], OpKind::Delete, key)
            }
        } else {
            let key = format!("n{}", k - self.registers);
            if roll < 40 {
                (
                    vec!["GET".into(), key.clone()],
                    OpKind::Read { observed: None },
                    key,
                )
            } else {
                (
                    vec!["INCR".into(), key.clone()],
                    OpKind::Incr {
                        by: 1,
                        result: None,
                    },
                    key,
                )
            }
        };
        (words, Some((kind, key)))
    }

    /// Takes the cluster's replies to the clients' operations.
    pub fn collect(&mut self, cluster: &mut Cluster) -> Result<(), Violation> {
        for reply in std::mem::take(&mut cluster.replies) {
            self.on_reply(reply)?;
        }
        Ok(())
    }

    fn on_reply(&mut self, reply: ClientReply) -> Result<(), Violation> {
        let Some(client) = self.clients.iter_mut().find(|c| c.id == reply.client) else {
            return Ok(());
        };
        let Some(in_flight) = client.in_flight.as_ref() else {
            return Ok(());
        };
        if in_flight.request_id != reply.id || in_flight.node != reply.node {
            return Ok(()); // An answer to a request given up on (its replica crashed).
        }
        let in_flight = client.in_flight.take().unwrap();
        let Response::Frame(frame) = reply.response else {
            return Err(unexpected(&in_flight.argv, "a WATCH answer"));
        };
        let Some(op_index) = in_flight.op else {
            // A key with a TTL: any definite answer is fine, an error of another kind is not.
            return match frame {
                Frame::Error(text)
                    if !["UNKNOWN", "CLUSTERDOWN", "TRYAGAIN"]
                        .iter()
                        .any(|code| text.starts_with(code)) =>
                {
                    Err(unexpected(&in_flight.argv, &text))
                }
                _ => Ok(()),
            };
        };
        let op = &mut self.history[op_index];
        match (&mut op.kind, frame) {
            (_, Frame::Error(text)) if text.starts_with("UNKNOWN") => {
                if let OpKind::Incr { result, .. } = &mut op.kind {
                    *result = None;
                }
            }
            (_, Frame::Error(text))
                if text.starts_with("CLUSTERDOWN") || text.starts_with("TRYAGAIN") =>
            {
                self.removed[op_index] = true;
            }
            (OpKind::Read { observed }, Frame::Bulk(value)) => {
                *observed = Some(value);
                op.completed_at = Some(reply.at_ms);
            }
            (OpKind::Read { observed }, Frame::Null) => {
                *observed = None;
                op.completed_at = Some(reply.at_ms);
            }
            (OpKind::Write { .. }, frame) if frame == Frame::ok() => {
                op.completed_at = Some(reply.at_ms);
                self.acknowledged.push(in_flight.argv);
            }
            (OpKind::Delete, Frame::Integer(_)) => {
                op.completed_at = Some(reply.at_ms);
                self.acknowledged.push(in_flight.argv);
            }
            (OpKind::Incr { result, .. }, Frame::Integer(n)) => {
                *result = Some(n);
                op.completed_at = Some(reply.at_ms);
                self.acknowledged.push(in_flight.argv);
            }
            (_, frame) => return Err(unexpected(&in_flight.argv, &format!("{frame:?}"))),
        }
        Ok(())
    }

    /// Replica `node` crashed: its clients' operations have unknown outcomes.
    pub fn on_crash(&mut self, node: NodeId) {
        for client in &mut self.clients {
            if client.in_flight.as_ref().is_some_and(|f| f.node == node) {
                client.in_flight = None;
            }
        }
    }

    /// The history for the checker: definite failures left out.
    pub fn final_history(&self) -> Vec<Operation> {
        self.history
            .iter()
            .zip(&self.removed)
            .filter(|(_, removed)| !**removed)
            .map(|(op, _)| op.clone())
            .collect()
    }
}

fn unexpected(argv: &[Bytes], what: &str) -> Violation {
    let words: Vec<String> = argv
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Violation {
        property: "client replies",
        detail: format!("{words:?} was answered {what}"),
    }
}

/// One seeded run: faults for `safety_ms`, then healing and `liveness_ms` to settle, then the
/// end-of-run checks. `Err` names the broken property.
pub fn run_scenario(config: &ScenarioConfig) -> Result<ScenarioReport, Violation> {
    let mut transcript = None;
    let result = run_phases(config, &mut transcript);
    if let (Err(_), Some(lines)) = (&result, transcript) {
        let skip = lines.len().saturating_sub(config.trace_lines);
        for line in &lines[skip..] {
            eprintln!("  | {line}");
        }
    }
    result
}

fn run_phases(
    config: &ScenarioConfig,
    transcript: &mut Option<Vec<String>>,
) -> Result<ScenarioReport, Violation> {
    let mut rng = Rng::new(config.seed ^ 0x0063_6861_6f73);
    let mut cluster = Cluster::new(ClusterConfig::new(config.replicas, rng.next_u64()));
    if config.trace_lines > 0 {
        cluster.transcript = Some(Vec::new());
    }
    let result = drive(config, &mut rng, &mut cluster);
    *transcript = cluster.transcript.take();
    result
}

/// Where a run's fault schedule comes from: a seeded generator, or the bytes of a fuzzer's
/// input.
pub trait Choices {
    /// A number in `0..bound`.
    fn below(&mut self, bound: u64) -> u64;
    fn next_u64(&mut self) -> u64;
    /// Whether the schedule has run out: the safety phase then ends.
    fn exhausted(&self) -> bool {
        false
    }
}

impl Choices for Rng {
    fn below(&mut self, bound: u64) -> u64 {
        Rng::below(self, bound)
    }
    fn next_u64(&mut self) -> u64 {
        Rng::next_u64(self)
    }
}

/// A fault schedule read from bytes, one byte per choice: whether a fault comes in each
/// 10 ms slice, which one, where. Past the last byte, choices come from a seeded generator
/// (so that a choice repeated until it differs ends), and the safety phase is over.
pub struct ScriptedChoices<'a> {
    bytes: &'a [u8],
    at: usize,
    after: Rng,
}

impl Choices for ScriptedChoices<'_> {
    fn below(&mut self, bound: u64) -> u64 {
        match self.bytes.get(self.at) {
            Some(&byte) => {
                self.at += 1;
                byte as u64 * bound / 256
            }
            None => self.after.below(bound),
        }
    }
    fn next_u64(&mut self) -> u64 {
        self.after.next_u64()
    }
    fn exhausted(&self) -> bool {
        self.at >= self.bytes.len()
    }
}

/// A run whose faults follow `schedule` (see [`ScriptedChoices`]) for at most
/// `config.safety_ms`; message timing and the clients' operations come from `config.seed`.
/// The fuzz target `core_schedule` runs this.
pub fn run_scripted(config: &ScenarioConfig, schedule: &[u8]) -> Result<ScenarioReport, Violation> {
    let mut rng = Rng::new(config.seed ^ 0x0063_6861_6f73);
    let mut cluster = Cluster::new(ClusterConfig::new(config.replicas, rng.next_u64()));
    let mut choices = ScriptedChoices {
        bytes: schedule,
        at: 0,
        after: rng,
    };
    drive(config, &mut choices, &mut cluster)
}

fn drive(
    config: &ScenarioConfig,
    rng: &mut impl Choices,
    cluster: &mut Cluster,
) -> Result<ScenarioReport, Violation> {
    let mut workload = Workload::new(
        rng.next_u64(),
        config.clients,
        config.registers,
        config.counters,
    );
    let mut report = ScenarioReport::default();
    let ids = cluster.ids();
    let tolerated = (config.replicas - 1) / 2;
    let slice_ms = 10;
    // Safety phase.
    while cluster.now_ms < config.safety_ms && !rng.exhausted() {
        if rng.below(100) < 4 {
            inject_fault(cluster, &mut workload, rng, &ids, tolerated, &mut report);
        }
        workload.issue(cluster, 300);
        let until = cluster.now_ms + slice_ms;
        cluster.run_until(until);
        workload.collect(cluster)?;
        if let Some(violation) = cluster.violation.take() {
            return Err(violation);
        }
    }
    // Liveness phase: every fault healed, every replica running.
    cluster.heal();
    cluster.faults = Default::default();
    for &id in &ids {
        cluster.set_skew(id, 0);
        if !cluster.is_up(id) {
            cluster.start(id);
        }
    }
    let deadline = cluster.now_ms + config.liveness_ms;
    loop {
        let until = cluster.now_ms + slice_ms;
        cluster.run_until(until);
        workload.collect(cluster)?;
        if let Some(violation) = cluster.violation.take() {
            return Err(violation);
        }
        // Settled: a leader a majority follows has committed its whole log (so its commit
        // index is current, not the zero a restart begins with), and every request is answered.
        let settled = cluster.stable_leader().is_some_and(|leader| {
            let replica = cluster.replica(leader).unwrap();
            replica.commit_index() == replica.last_index()
        });
        if settled && workload.idle() && cluster.pending_requests() == 0 {
            break;
        }
        if cluster.now_ms >= deadline {
            return Err(Violation {
                property: "liveness",
                detail: format!(
                    "{} ms after healing: leader {:?}, {} requests pending, clients idle: {}\n    {}",
                    config.liveness_ms,
                    cluster.stable_leader(),
                    cluster.pending_requests(),
                    workload.idle(),
                    cluster.describe()
                ),
            });
        }
    }
    // Durability: the leader's committed log holds every acknowledged write.
    let leader = cluster.stable_leader().unwrap();
    let commit = cluster.replica(leader).unwrap().commit_index();
    let committed = cluster
        .log_of(leader)
        .into_iter()
        .filter(|e| e.index <= commit)
        .map(|e| (e.index, e))
        .collect();
    invariants::durability(&committed, &workload.acknowledged)?;
    // Linearizability of what the clients saw.
    let history = workload.final_history();
    match linearizability::check(&history, config.budget_steps) {
        linearizability::Outcome::Linearizable => {}
        linearizability::Outcome::Unknown { .. } => report.inconclusive = true,
        linearizability::Outcome::Violation { key, message } => {
            return Err(Violation {
                property: "linearizability",
                detail: format!("key {}: {message}", String::from_utf8_lossy(&key)),
            });
        }
    }
    report.operations = history.len();
    report.acknowledged_writes = workload.acknowledged.len();
    report.unknown = history.iter().filter(|o| o.completed_at.is_none()).count();
    report.steps = cluster.steps;
    report.trace_hash = cluster.trace_hash;
    report.log_reads = cluster.log_reads;
    report.log_reads_cut_short = cluster.log_reads_cut_short;
    report.log_reads_slow = cluster.log_reads_slow;
    report.log_reads_failed = cluster.log_reads_failed;
    report.writes_refused = cluster.writes_refused;
    Ok(report)
}

fn inject_fault<C: Choices>(
    cluster: &mut Cluster,
    workload: &mut Workload,
    rng: &mut C,
    ids: &[NodeId],
    tolerated: usize,
    report: &mut ScenarioReport,
) {
    let pick = |rng: &mut C| ids[rng.below(ids.len() as u64) as usize];
    match rng.below(13) {
        12 => {
            // A leader transfer to a random replica (a graceful shutdown does this).
            if let Some(leader) = cluster.stable_leader() {
                let to = pick(rng);
                cluster.transfer_leader(leader, to);
            }
        }
        10 | 11 => {
            // A process restart: crash, and start again at once on what the disk kept.
            let id = pick(rng);
            if cluster.is_up(id) {
                cluster.crash(id);
                workload.on_crash(id);
                cluster.start(id);
                report.crashes += 1;
            }
        }
        0 | 1 => {
            // Crash a replica, if no more than a minority would be down.
            let down = ids.iter().filter(|&&id| !cluster.is_up(id)).count();
            let id = pick(rng);
            if cluster.is_up(id) && down < tolerated {
                cluster.crash(id);
                workload.on_crash(id);
                report.crashes += 1;
            }
        }
        2 | 3 => {
            let id = pick(rng);
            if !cluster.is_up(id) {
                cluster.start(id);
            }
        }
        4 => {
            // A symmetric partition: a random minority cut off.
            cluster.heal();
            let size = 1 + rng.below(tolerated.max(1) as u64) as usize;
            let mut minority = Vec::new();
            while minority.len() < size {
                let id = pick(rng);
                if !minority.contains(&id) {
                    minority.push(id);
                }
            }
            let rest: Vec<NodeId> = ids
                .iter()
                .copied()
                .filter(|id| !minority.contains(id))
                .collect();
            cluster.partition(&minority, &rest);
        }
        5 => {
            // One link cut one way.
            let (a, b) = (pick(rng), pick(rng));
            if a != b {
                cluster.faults.cut.insert((a, b));
            }
        }
        6 => cluster.heal(),
        7 => {
            cluster.faults.drop_per_mille = [0, 0, 20, 100, 300][rng.below(5) as usize];
            cluster.faults.duplicate_per_mille = [0, 0, 20, 100][rng.below(4) as usize];
            cluster.faults.delay_ms = [(1, 5), (1, 5), (1, 40), (10, 120)][rng.below(4) as usize];
        }
        8 => {
            let id = pick(rng);
            cluster.set_skew(id, rng.below(4_000) as i64 - 2_000);
        }
        _ => {
            cluster.faults.fsync_ms = [(0, 2), (5, 40), (50, 200)][rng.below(3) as usize];
            // The disk's reads too: a read for a follower may take a while (the leader goes on
            // meanwhile), and may fail.
            cluster.faults.log_read_ms = [(0, 0), (1, 20), (20, 300)][rng.below(3) as usize];
            cluster.faults.log_read_failure_per_mille = [0, 0, 100, 500][rng.below(4) as usize];
            // A disk that refuses some writes (full), for a while.
            cluster.faults.write_failure_per_mille = [0, 0, 0, 50, 300][rng.below(5) as usize];
        }
    }
}
