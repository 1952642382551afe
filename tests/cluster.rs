//! Real `quorum node` processes on loopback forming a 3-node cluster: writes and reads through
//! every node, ROLE and INFO replication, a follower catching up after a restart, and leader
//! failover under concurrent load with SIGKILL, checked for linearizability and lost writes.
//!
//! `QUORUM_FAILOVERS` sets how many times the leader is killed (default 20).

mod common;

use common::{Node, Raw, bulk, temp_dir};
use quorum::linearizability::{self, OpKind, Operation};
use quorum::resp::{self, Frame, Limits};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Cluster {
    ports: Vec<u16>,
    dirs: Vec<PathBuf>,
    nodes: Vec<Option<Node>>,
    members: String,
    /// Flags every node starts with (restarts included).
    flags: Vec<String>,
}

impl Cluster {
    fn start(name: &str) -> Cluster {
        Cluster::start_with(name, &[])
    }

    fn start_with(name: &str, flags: &[&str]) -> Cluster {
        let ports = common::free_cluster_ports();
        let members = ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let base = temp_dir(name);
        let dirs: Vec<PathBuf> = (1..=3).map(|i| base.join(i.to_string())).collect();
        let mut cluster = Cluster {
            ports,
            dirs,
            nodes: vec![None, None, None],
            members,
            flags: flags.iter().map(|f| f.to_string()).collect(),
        };
        for i in 0..3 {
            cluster.start_node(i);
        }
        cluster.wait_for_leader(Duration::from_secs(20));
        cluster
    }

    fn start_node(&mut self, i: usize) {
        self.start_node_with(i, &[]);
    }

    fn start_node_with(&mut self, i: usize, extra: &[&str]) {
        let mut args = vec!["--cluster", &self.members];
        args.extend(self.flags.iter().map(String::as_str));
        args.extend_from_slice(extra);
        let node = Node::try_start_on(&self.dirs[i], self.ports[i], &args)
            .unwrap_or_else(|e| panic!("node {} did not start:\n{e}", i + 1));
        self.nodes[i] = Some(node);
    }

    /// SIGTERM: the node hands leadership over and stops; true if it exited cleanly.
    fn terminate(&mut self, i: usize) -> bool {
        self.nodes[i].take().is_some_and(|node| node.terminate())
    }

    fn kill(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.kill9();
        }
    }

    /// The index of the node that says it is the master, once every running node agrees.
    fn leader(&self) -> Option<usize> {
        let mut leader = None;
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(node) = node else { continue };
            let Some(Frame::Array(role)) = try_cmd(node.port, &["ROLE"]) else {
                return None;
            };
            match role.first() {
                Some(Frame::Bulk(kind)) if kind.as_ref() == b"master" => {
                    if leader.is_some() {
                        return None;
                    }
                    leader = Some(i);
                }
                Some(Frame::Bulk(kind)) if kind.as_ref() == b"slave" => {
                    if role.get(3) != Some(&bulk("connected")) {
                        return None;
                    }
                }
                _ => return None,
            }
        }
        leader
    }

    fn wait_for_leader(&self, limit: Duration) -> usize {
        let started = Instant::now();
        loop {
            if let Some(leader) = self.leader() {
                return leader;
            }
            assert!(started.elapsed() < limit, "no leader within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One command on a fresh connection, with timeouts; `None` if the node is unreachable or
/// gave no answer.
fn try_cmd(port: u16, args: &[&str]) -> Option<Frame> {
    exchange(port, args).ok()
}

/// A numeric field of `INFO replication` on the node at `port`, if it answers.
fn replication_field(port: u16, field: &str) -> Option<u64> {
    let Some(Frame::Bulk(info)) = try_cmd(port, &["INFO", "replication"]) else {
        return None;
    };
    let info = String::from_utf8_lossy(&info).into_owned();
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

/// One command on a fresh connection: its reply (errors included), `Err(None)` if nothing
/// listens there, `Err(Some(why))` if the node took the connection but gave no answer.
fn exchange(port: u16, args: &[&str]) -> Result<Frame, Option<String>> {
    let Ok(mut stream) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
    else {
        return Err(None);
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    let mut out = Vec::new();
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    resp::encode_request(&args, &mut out);
    if stream.write_all(&out).is_err() {
        return Err(Some(
            "the connection was closed before the request was sent".into(),
        ));
    }
    let mut buf = Vec::new();
    loop {
        if let Ok(Some((frame, _))) = resp::decode_frame(&buf, &Limits::default()) {
            return Ok(frame);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(Some("the connection closed without a reply".into())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn every_node_takes_writes_and_serves_linearizable_reads() {
    let cluster = Cluster::start("cluster-rw");
    let ports = cluster.ports.clone();
    for (i, port) in ports.iter().enumerate() {
        let mut raw = Raw::connect(*port);
        assert_eq!(
            raw.cmd(&["SET", &format!("k{i}"), &format!("v{i}")]),
            Frame::ok()
        );
        assert_eq!(raw.cmd(&["INCR", "counter"]), Frame::Integer(i as i64 + 1));
    }
    // Every write is visible through every node at once: reads are linearizable.
    for port in &ports {
        let mut raw = Raw::connect(*port);
        for i in 0..3 {
            assert_eq!(raw.cmd(&["GET", &format!("k{i}")]), bulk(&format!("v{i}")));
        }
        assert_eq!(raw.cmd(&["GET", "counter"]), bulk("3"));
    }
    // ROLE and INFO replication agree across nodes.
    let leader = cluster.leader().expect("one leader");
    let Some(Frame::Array(role)) = try_cmd(ports[leader], &["ROLE"]) else {
        panic!()
    };
    assert_eq!(role[0], bulk("master"));
    let Frame::Array(replicas) = &role[2] else {
        panic!()
    };
    assert_eq!(replicas.len(), 2);
    for (i, port) in ports.iter().enumerate() {
        let Some(Frame::Bulk(info)) = try_cmd(*port, &["INFO", "replication"]) else {
            panic!()
        };
        let info = String::from_utf8_lossy(&info).into_owned();
        let expected_role = if i == leader {
            "role:master"
        } else {
            "role:slave"
        };
        assert!(info.contains(expected_role), "{info}");
        assert!(
            info.contains(&format!("quorum_leader_id:{}", leader + 1)),
            "{info}"
        );
        if i != leader {
            assert!(
                info.contains(&format!("master_port:{}", ports[leader])),
                "{info}"
            );
        }
    }
    // WAIT on the leader: both other nodes hold the writes.
    let mut raw = Raw::connect(ports[leader]);
    assert_eq!(raw.cmd(&["WAIT", "2", "1000"]), Frame::Integer(2));
}

#[test]
fn a_stopped_follower_catches_up_when_it_restarts() {
    let mut cluster = Cluster::start("cluster-catch-up");
    let leader = cluster.leader().unwrap();
    let follower = (leader + 1) % 3;
    cluster.kill(follower);
    let mut raw = Raw::connect(cluster.ports[leader]);
    for i in 0..50 {
        assert_eq!(
            raw.cmd(&["SET", &format!("c{i}"), &i.to_string()]),
            Frame::ok()
        );
    }
    cluster.start_node(follower);
    cluster.wait_for_leader(Duration::from_secs(20));
    let mut raw = Raw::connect(cluster.ports[follower]);
    for i in 0..50 {
        assert_eq!(raw.cmd(&["GET", &format!("c{i}")]), bulk(&i.to_string()));
    }
}

/// Sends `count` commands made by `command`, 100 at a time, and checks each reply with
/// `check` (its number, the reply).
fn pipelined(
    raw: &mut Raw,
    count: usize,
    command: impl Fn(usize) -> Vec<String>,
    check: impl Fn(usize, Frame),
) {
    for start in (0..count).step_by(100) {
        let end = (start + 100).min(count);
        let mut out = Vec::new();
        for i in start..end {
            let args = command(i);
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            resp::encode_request(&args, &mut out);
        }
        raw.send(&out);
        for i in start..end {
            check(i, raw.read().expect("a reply"));
        }
    }
}

#[test]
fn a_follower_away_past_the_log_memory_bound_catches_up_from_the_wal() {
    // The smallest bound the flag takes.
    const BOUND_BYTES: u64 = 1024 * 1024;
    let mut cluster = Cluster::start_with(
        "cluster-log-bound",
        &["--log-memory-max", &BOUND_BYTES.to_string()],
    );
    let leader = cluster.leader().unwrap();
    let follower = (leader + 1) % 3;
    cluster.kill(follower);
    // About 1.2 KB of log each, over nine times the bound in all: more than the leader's
    // memory and its appends queued for the follower while it is away hold.
    let value = "v".repeat(1000);
    let writes = 8000;
    let mut raw = Raw::connect(cluster.ports[leader]);
    pipelined(
        &mut raw,
        writes,
        |i| vec![format!("SET"), format!("b{i}"), format!("{i}{value}")],
        |_, reply| assert_eq!(reply, Frame::ok()),
    );
    let port = cluster.ports[leader];
    let held = replication_field(port, "quorum_log_bytes_in_memory").unwrap();
    assert!(held <= BOUND_BYTES, "the leader holds {held} bytes of log");
    assert!(replication_field(port, "quorum_log_entries_dropped_over_bound").unwrap() > 0);
    let wal_reads = |cluster: &Cluster| -> u64 {
        cluster
            .ports
            .iter()
            .filter_map(|p| replication_field(*p, "quorum_log_reads_from_wal"))
            .sum()
    };
    let reads_before = wal_reads(&cluster);
    cluster.start_node(follower);
    cluster.wait_for_leader(Duration::from_secs(20));
    let mut raw = Raw::connect(cluster.ports[follower]);
    pipelined(
        &mut raw,
        writes,
        |i| vec![format!("GET"), format!("b{i}")],
        |i, reply| assert_eq!(reply, bulk(&format!("{i}{value}"))),
    );
    // What it lacked beyond the leader's memory, over twice the bound, came from the
    // leader's WAL in pieces of half the bound.
    let reads = wal_reads(&cluster) - reads_before;
    println!("the follower was caught up with {reads} reads of the leader's WAL");
    assert!(reads >= 3, "{reads} reads of the WAL");
    // Caught up: no node holds any of it in memory any more.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let held: Vec<Option<u64>> = cluster
            .ports
            .iter()
            .map(|p| replication_field(*p, "quorum_catch_up_bytes_in_memory"))
            .collect();
        if held.iter().all(|h| *h == Some(0)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still held after catch-up: {held:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a client of the failover test saw.
struct Recorder {
    started: Instant,
    history: Mutex<Vec<Operation>>,
    acknowledged: Mutex<Vec<(String, String)>>,
}

fn client_loop(
    client: u64,
    ports: Vec<u16>,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    counter: Arc<AtomicU64>,
) {
    let mut rng = quorum::rng::Rng::new(client * 7919 + 1);
    while !stop.load(Ordering::Relaxed) {
        let port = ports[rng.below(ports.len() as u64) as usize];
        let key = format!("r{}", rng.below(3));
        let write = rng.below(2) == 0;
        let value = format!("c{client}n{}", counter.fetch_add(1, Ordering::Relaxed));
        let invoked_at = recorder.started.elapsed().as_micros() as u64;
        let reply = if write {
            try_cmd(port, &["SET", &key, &value])
        } else {
            try_cmd(port, &["GET", &key])
        };
        let completed = recorder.started.elapsed().as_micros() as u64;
        let (kind, completed_at) = match (&reply, write) {
            (Some(Frame::Simple(ok)), true) if ok == "OK" => {
                recorder
                    .acknowledged
                    .lock()
                    .unwrap()
                    .push((key.clone(), value.clone()));
                (
                    OpKind::Write {
                        value: value.clone().into(),
                    },
                    Some(completed),
                )
            }
            (Some(Frame::Bulk(v)), false) => (
                OpKind::Read {
                    observed: Some(v.clone()),
                },
                Some(completed),
            ),
            (Some(Frame::Null), false) => (OpKind::Read { observed: None }, Some(completed)),
            (Some(Frame::Error(e)), _)
                if e.starts_with("CLUSTERDOWN") || e.starts_with("TRYAGAIN") =>
            {
                continue; // Definitely not executed.
            }
            (Some(Frame::Error(e)), _) if !e.starts_with("UNKNOWN") => {
                panic!("unexpected error {e:?}")
            }
            // Unknown outcome: an UNKNOWN error, or the node died with the request.
            (_, true) => (
                OpKind::Write {
                    value: value.clone().into(),
                },
                None,
            ),
            (_, false) => continue,
        };
        recorder.history.lock().unwrap().push(Operation {
            client,
            key: key.into(),
            kind,
            invoked_at,
            completed_at,
        });
    }
}

#[test]
fn killing_the_leader_loses_no_acknowledged_write() {
    let rounds: usize = std::env::var("QUORUM_FAILOVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut cluster = Cluster::start("cluster-failover");
    let recorder = Arc::new(Recorder {
        started: Instant::now(),
        history: Mutex::new(Vec::new()),
        acknowledged: Mutex::new(Vec::new()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..6)
        .map(|c| {
            let (ports, recorder, stop, counter) = (
                cluster.ports.clone(),
                recorder.clone(),
                stop.clone(),
                counter.clone(),
            );
            std::thread::spawn(move || client_loop(c, ports, recorder, stop, counter))
        })
        .collect();
    let mut failovers_ms = Vec::new();
    for round in 0..rounds {
        std::thread::sleep(Duration::from_millis(300));
        let leader = cluster.wait_for_leader(Duration::from_secs(30));
        cluster.kill(leader);
        let killed = Instant::now();
        // The first write that succeeds through a surviving node.
        let survivor = cluster.ports[(leader + 1) % 3];
        loop {
            if try_cmd(survivor, &["SET", "probe", &round.to_string()]) == Some(Frame::ok()) {
                break;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(30),
                "no write for 30 s after the kill"
            );
        }
        failovers_ms.push(killed.elapsed().as_millis() as u64);
        cluster.start_node(leader);
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    failovers_ms.sort_unstable();
    let median = failovers_ms[failovers_ms.len() / 2];
    let max = *failovers_ms.last().unwrap();
    println!(
        "failover, kill to first write: median {median} ms, max {max} ms over {rounds} kills: {failovers_ms:?}"
    );
    // No acknowledged write is lost: a final read of every key through every node joins the
    // history, and the whole history must be linearizable (a lost write would leave some read
    // unexplained).
    cluster.wait_for_leader(Duration::from_secs(30));
    for port in cluster.ports.clone() {
        for k in 0..3 {
            let key = format!("r{k}");
            let invoked_at = recorder.started.elapsed().as_micros() as u64;
            let observed = match try_cmd(port, &["GET", &key]) {
                Some(Frame::Bulk(v)) => Some(v),
                Some(Frame::Null) => None,
                other => panic!("final read of {key}: {other:?}"),
            };
            let completed_at = Some(recorder.started.elapsed().as_micros() as u64);
            recorder.history.lock().unwrap().push(Operation {
                client: 1000,
                key: key.into(),
                kind: OpKind::Read { observed },
                invoked_at,
                completed_at,
            });
        }
    }
    let history = recorder.history.lock().unwrap().clone();
    let acknowledged = recorder.acknowledged.lock().unwrap().len();
    println!(
        "{} operations, {acknowledged} acknowledged writes",
        history.len()
    );
    assert!(acknowledged > 50, "the load made progress");
    match linearizability::check(&history, 5_000_000) {
        linearizability::Outcome::Violation { key, message } => {
            panic!(
                "not linearizable on {}: {message}",
                String::from_utf8_lossy(&key)
            )
        }
        outcome => println!("linearizability: {outcome:?}"),
    }
    assert!(median < 3_000, "median failover {median} ms");
    assert!(max < 15_000, "max failover {max} ms");
}

/// [`exchange`], with an error reply counted as a failure: `Err(None)` if nothing listens there
/// (the client goes elsewhere: not an error), `Err(Some(what))` otherwise.
fn command_outcome(port: u16, args: &[&str]) -> Result<Frame, Option<String>> {
    match exchange(port, args)? {
        Frame::Error(text) => Err(Some(text)),
        frame => Ok(frame),
    }
}

#[test]
fn sigterm_on_the_leader_hands_over_without_a_client_error() {
    let mut cluster = Cluster::start("cluster-sigterm");
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4u64)
        .map(|c| {
            let (ports, stop, errors, done) = (
                cluster.ports.clone(),
                stop.clone(),
                errors.clone(),
                done.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = quorum::rng::Rng::new(c + 11);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let port = ports[rng.below(3) as usize];
                    n += 1;
                    let value = format!("{c}-{n}");
                    let args: Vec<&str> = if n % 2 == 0 {
                        vec!["SET", "k", &value]
                    } else {
                        vec!["GET", "k"]
                    };
                    match command_outcome(port, &args) {
                        Ok(_) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(None) => {} // Nothing listens there now: another node, next time.
                        Err(Some(error)) => errors
                            .lock()
                            .unwrap()
                            .push(format!("{args:?} on {port}: {error}")),
                    }
                }
            })
        })
        .collect();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(400));
        let leader = cluster.wait_for_leader(Duration::from_secs(30));
        assert!(
            cluster.terminate(leader),
            "the node exits cleanly on SIGTERM"
        );
        cluster.start_node(leader);
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let errors = errors.lock().unwrap();
    println!(
        "{} commands answered across 3 planned leader restarts",
        done.load(Ordering::Relaxed)
    );
    assert!(errors.is_empty(), "client errors: {errors:#?}");
    assert!(done.load(Ordering::Relaxed) > 100);
}

/// A cluster with keys `{prefix}0` to `{prefix}19` written through its leader, and then a
/// follower killed: the cluster, a connection to the leader, the follower, and the follower's
/// WAL segments in order (for the test to damage).
fn a_killed_follower(name: &str, prefix: &str) -> (Cluster, Raw, usize, Vec<PathBuf>) {
    let mut cluster = Cluster::start(name);
    let leader = cluster.leader().unwrap();
    let mut raw = Raw::connect(cluster.ports[leader]);
    for i in 0..20 {
        let key = format!("{prefix}{i}");
        assert_eq!(raw.cmd(&["SET", &key, &i.to_string()]), Frame::ok());
    }
    let follower = (leader + 1) % 3;
    cluster.kill(follower);
    let mut segments: Vec<PathBuf> = std::fs::read_dir(cluster.dirs[follower].join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    (cluster, raw, follower, segments)
}

/// The cluster moves on without the damaged follower (keys 20 to 39), then the follower
/// restarts (with `extra` flags) and must serve all 40 keys. Returns its log.
fn rejoin_and_read(
    cluster: &mut Cluster,
    leader: &mut Raw,
    follower: usize,
    prefix: &str,
    extra: &[&str],
) -> String {
    for i in 20..40 {
        let key = format!("{prefix}{i}");
        assert_eq!(leader.cmd(&["SET", &key, &i.to_string()]), Frame::ok());
    }
    cluster.start_node_with(follower, extra);
    cluster.wait_for_leader(Duration::from_secs(20));
    let mut raw = Raw::connect(cluster.ports[follower]);
    for i in 0..40 {
        assert_eq!(
            raw.cmd(&["GET", &format!("{prefix}{i}")]),
            bulk(&i.to_string())
        );
    }
    cluster.nodes[follower]
        .as_ref()
        .unwrap()
        .log_lines()
        .join("\n")
}

#[test]
fn a_torn_wal_tail_on_one_node_heals_by_rejoining() {
    let (mut cluster, mut raw, follower, mut segments) = a_killed_follower("cluster-torn", "t");
    // Tear its tail: where its records end, a frame header promising 1000 bytes, with a wrong
    // checksum and only three bytes after it (a write cut short by the crash).
    let segment = segments.pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let end = quorum::wal::recovery::scan_segment(&bytes, true)
        .unwrap()
        .valid_len;
    let torn = [0xe8, 0x03, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3];
    if bytes.len() < end + torn.len() {
        bytes.resize(end + torn.len(), 0);
    }
    bytes[end..end + torn.len()].copy_from_slice(&torn);
    std::fs::write(&segment, &bytes).unwrap();
    // It restarts: recovery cuts the torn tail, and the leader brings it up to date.
    let log = rejoin_and_read(&mut cluster, &mut raw, follower, "t", &[]);
    assert!(
        log.contains("torn"),
        "the node says it cut a torn tail:\n{log}"
    );
}

#[test]
fn a_corrupt_record_mid_log_on_one_node_is_repaired_from_its_peers() {
    let (mut cluster, mut raw, follower, segments) = a_killed_follower("cluster-corrupt", "c");
    // Flip a bit in the payload of its third record: valid records follow it, so this is
    // corruption, not a torn tail. A single node would refuse to start; a cluster node cuts
    // its log there and catches up from its peers.
    let segment = segments[0].clone();
    let mut bytes = std::fs::read(&segment).unwrap();
    let scan = quorum::wal::recovery::scan_segment(&bytes, segments.len() == 1).unwrap();
    assert!(scan.records.len() > 10, "{} records", scan.records.len());
    bytes[scan.records[2].start] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();
    let log = rejoin_and_read(&mut cluster, &mut raw, follower, "c", &[]);
    assert!(
        log.contains("WAL corruption: cut the log there"),
        "the node says it cut its log at the corruption:\n{log}"
    );
    let wal_dir = cluster.dirs[follower].join("wal");
    let backups = std::fs::read_dir(&wal_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .to_string_lossy()
                .contains(".bak")
        })
        .count();
    assert!(backups >= 1, "the damaged segment is kept as a backup");
    wait_until_recovered(&wal_dir, &log);
}

/// Caught up, a recovering node votes again: its marker is gone once it holds what it may
/// have lost.
fn wait_until_recovered(wal_dir: &std::path::Path, log: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while wal_dir.join(quorum::wal::TAIL_CUT_MARKER).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the node never finished catching up:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_follower_on_a_new_disk_started_with_rejoin_catches_up_before_it_votes() {
    let (mut cluster, mut raw, follower, _) = a_killed_follower("cluster-rejoin", "w");
    // Every node held the first writes, so the leader dropped them from memory: they come
    // back from its WAL for the new disk.
    let leader = cluster.leader().unwrap();
    let first_in_memory = replication_field(cluster.ports[leader], "quorum_first_index_in_memory");
    assert!(
        first_in_memory.is_some_and(|first| first > 1),
        "the leader keeps entries every node holds in memory: {first_in_memory:?}"
    );
    // Its disk is lost: an empty data directory. `--rejoin` says so.
    std::fs::remove_dir_all(&cluster.dirs[follower]).unwrap();
    let log = rejoin_and_read(&mut cluster, &mut raw, follower, "w", &["--rejoin"]);
    assert!(
        log.contains("it will not vote until its peers show what it may have lost"),
        "the node says it recovers first:\n{log}"
    );
    wait_until_recovered(&cluster.dirs[follower].join("wal"), &log);
    let reads: u64 = (0..3)
        .filter_map(|node| replication_field(cluster.ports[node], "quorum_log_reads_from_wal"))
        .sum();
    assert!(reads >= 1, "no entries were read back from a WAL");
}
