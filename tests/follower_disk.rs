//! A follower's disk going bad under a 3-node cluster whose nodes run in this process, each on
//! a disk with injected faults. While its fsyncs are quick, a follower writes its appends on
//! its own event loop (`node::WalJobs::write_here`); these tests show what a slow disk, a
//! failed fsync and a full disk do to it then, and that the cluster goes on acknowledging
//! writes through all of them.

mod common;

use quorum::node::{NodeConfig, NodeEnv, now_ms};
use quorum::testing::{FaultyDisk, start_node_in_process};
use redis::Commands;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct InProcessCluster {
    ports: Vec<u16>,
    disks: Vec<FaultyDisk>,
    /// What each node's `on_fatal` was called with.
    fatal: Vec<Arc<Mutex<Option<String>>>>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    dir: std::path::PathBuf,
}

impl InProcessCluster {
    fn start(name: &str) -> InProcessCluster {
        let dir = common::temp_dir(name);
        let ports = common::free_cluster_ports();
        let members: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let disks: Vec<FaultyDisk> = (0..3).map(|_| FaultyDisk::default()).collect();
        let fatal: Vec<Arc<Mutex<Option<String>>>> = (0..3).map(|_| Arc::default()).collect();
        let mut stops = Vec::new();
        for i in 0..3 {
            let config = NodeConfig {
                port: ports[i],
                dir: dir.join((i + 1).to_string()),
                cluster: members.clone(),
                ..NodeConfig::default()
            };
            let seen = fatal[i].clone();
            let env = NodeEnv {
                disk: Arc::new(disks[i].clone()),
                seed: 1000 + i as u64,
                clock_ms: Arc::new(now_ms),
                // The node stops when this returns, and the test process goes on.
                on_fatal: Arc::new(move |error: &str| {
                    *seen.lock().unwrap() = Some(error.to_string());
                }),
                hooks: None,
            };
            let (_, stop) = start_node_in_process(config, env);
            stops.push(stop);
        }
        InProcessCluster {
            ports,
            disks,
            fatal,
            stops,
            dir,
        }
    }

    /// A cluster with one write through its leader that a follower holds too: (the
    /// cluster, the leader, that follower, a connection to the leader).
    fn with_a_follower(name: &str) -> (InProcessCluster, usize, usize, redis::Connection) {
        let cluster = InProcessCluster::start(name);
        let leader = cluster.leader();
        let follower = (leader + 1) % 3;
        let mut writes = cluster.client(leader);
        let _: () = writes.set("before", 1).unwrap();
        cluster.wait_caught_up(leader, follower, Duration::from_secs(10));
        (cluster, leader, follower, writes)
    }

    fn client(&self, i: usize) -> redis::Connection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.ports[i])).unwrap();
        let con = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap();
        con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        con
    }

    fn leader(&self) -> usize {
        let started = Instant::now();
        loop {
            for i in 0..3 {
                let role: Option<Vec<redis::Value>> =
                    redis::Client::open(format!("redis://127.0.0.1:{}/", self.ports[i]))
                        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
                        .and_then(|mut c| redis::cmd("ROLE").query(&mut c))
                        .ok();
                if let Some(redis::Value::BulkString(kind)) = role.as_ref().and_then(|r| r.first())
                    && kind == b"master"
                {
                    return i;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(20), "no leader");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A field of `INFO section` on node `i`.
    fn info_field(&self, i: usize, section: &str, field: &str) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg(section)
            .query(&mut self.client(i))
            .unwrap();
        info.lines()
            .find_map(|line| line.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in {info}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Waits until the leader sees node `i`'s WAL hold every entry of its log (the `offset`
    /// of its `slaveN` line: the follower's match index, which counts only what it fsynced).
    fn wait_caught_up(&self, leader: usize, i: usize, limit: Duration) {
        let started = Instant::now();
        loop {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut self.client(leader))
                .unwrap();
            let last: u64 = self.info_field(leader, "replication", "quorum_last_index");
            let port = format!("port={},", self.ports[i]);
            let matched: Option<u64> = info
                .lines()
                .find(|line| line.starts_with("slave") && line.contains(&port))
                .and_then(|line| line.split(",offset=").nth(1))
                .and_then(|rest| rest.split(',').next())
                .and_then(|offset| offset.parse().ok());
            if matched.is_some_and(|matched| matched >= last) {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "node {} did not catch up: {matched:?} of {last}",
                i + 1
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for InProcessCluster {
    fn drop(&mut self) {
        // Stop the nodes first (their runtimes end once told), then remove their files.
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        std::thread::sleep(Duration::from_millis(200));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_follower_whose_fsyncs_turn_slow_hands_them_to_its_writer_thread_and_keeps_answering() {
    let (cluster, leader, follower, mut writes) =
        InProcessCluster::with_a_follower("follower-slow-disk");
    let on_loop = |cluster: &InProcessCluster| {
        cluster.info_field(follower, "persistence", "wal_fsyncs_on_event_loop")
    };
    // The follower writes on its event loop once an fsync of its was quick (at most 2 ms,
    // which a loaded machine may take a few tries to see).
    let mut key = 0;
    let mut write_until = |done: &dyn Fn() -> bool, what: &str| {
        let started = Instant::now();
        while !done() {
            assert!(started.elapsed() < Duration::from_secs(30), "never {what}");
            for _ in 0..20 {
                let _: () = writes.set(format!("quick{key}"), key).unwrap();
                key += 1;
            }
            cluster.wait_caught_up(leader, follower, Duration::from_secs(10));
        }
    };
    write_until(&|| on_loop(&cluster) > 0, "on the event loop");
    let quick = on_loop(&cluster);
    let all_fsyncs =
        |cluster: &InProcessCluster| cluster.info_field(follower, "persistence", "wal_fsyncs");
    let before_slow = all_fsyncs(&cluster);
    let fsync_ms = 1000;
    cluster.disks[follower]
        .sync_delay_ms
        .store(fsync_ms, Ordering::SeqCst);
    // Writes go on meanwhile, acknowledged by the leader and the other follower.
    let ports = cluster.ports.clone();
    let writer = std::thread::spawn(move || {
        let mut con = redis::Client::open(format!("redis://127.0.0.1:{}/", ports[leader]))
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap();
        con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let started = Instant::now();
        let mut acknowledged = 0;
        while started.elapsed() < Duration::from_secs(4) {
            let _: () = con
                .set(format!("during{acknowledged}"), acknowledged)
                .unwrap();
            acknowledged += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        acknowledged
    });
    // The follower's first slow fsync may hold its event loop (it was quick until then);
    // after it, the writer thread takes them, and the loop answers at once.
    std::thread::sleep(Duration::from_millis(fsync_ms * 3 / 2));
    let mut con = cluster.client(follower);
    for _ in 0..10 {
        let asked = Instant::now();
        let pong: String = redis::cmd("PING").query(&mut con).unwrap();
        let waited = asked.elapsed();
        assert_eq!(pong, "PONG");
        assert!(
            waited < Duration::from_millis(fsync_ms / 2),
            "the follower's event loop waited for its disk: PING took {waited:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let last_fsync_us = cluster.info_field(follower, "persistence", "wal_last_fsync_us");
    assert!(last_fsync_us >= fsync_ms * 1000, "{last_fsync_us} us");
    let acknowledged = writer.join().unwrap();
    assert!(acknowledged > 100, "writes went on: {acknowledged}");
    let slow = on_loop(&cluster);
    assert!(
        slow <= quick + 1,
        "one slow fsync at most on the event loop: {quick} -> {slow}"
    );
    let by_thread = (all_fsyncs(&cluster) - before_slow) - (slow - quick);
    assert!(
        by_thread >= 2,
        "the writer thread took the slow fsyncs: {by_thread}"
    );
    // The disk recovers, the follower catches up and holds every write, and its event loop
    // writes again.
    cluster.disks[follower]
        .sync_delay_ms
        .store(0, Ordering::SeqCst);
    cluster.wait_caught_up(leader, follower, Duration::from_secs(20));
    // Back on the event loop once one of the thread's fsyncs is quick again.
    write_until(&|| on_loop(&cluster) > slow, "back on the event loop");
    let mut reads = cluster.client(follower);
    for i in 0..acknowledged {
        let value: Option<u64> = reads.get(format!("during{i}")).unwrap();
        assert_eq!(value, Some(i), "during{i}");
    }
    assert!(cluster.fatal.iter().all(|f| f.lock().unwrap().is_none()));
}

#[test]
fn a_follower_whose_fsync_fails_stops_and_the_cluster_goes_on() {
    let (cluster, _leader, follower, mut writes) =
        InProcessCluster::with_a_follower("follower-failed-fsync");
    cluster.disks[follower]
        .fail_sync
        .store(true, Ordering::SeqCst);
    for i in 0..50 {
        let _: () = writes.set(format!("after{i}"), i).unwrap();
    }
    let started = Instant::now();
    let error = loop {
        if let Some(error) = cluster.fatal[follower].lock().unwrap().clone() {
            break error;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the follower did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(error.contains("fsync failed"), "{error}");
    // It stopped: nothing answers on its port.
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", cluster.ports[follower])).is_ok() {
        assert!(started.elapsed() < Duration::from_secs(10), "still serving");
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 0..50 {
        let value: Option<u64> = writes.get(format!("after{i}")).unwrap();
        assert_eq!(value, Some(i));
    }
    let _: () = writes.set("later", 1).unwrap();
    let others: Vec<usize> = (0..3).filter(|&i| i != follower).collect();
    for i in others {
        assert!(cluster.fatal[i].lock().unwrap().is_none());
    }
}

#[test]
fn a_follower_whose_disk_fills_up_refuses_appends_and_catches_up_once_there_is_space() {
    let (cluster, leader, follower, mut writes) =
        InProcessCluster::with_a_follower("follower-full-disk");
    cluster.disks[follower].full.store(true, Ordering::SeqCst);
    // Past what the follower's WAL had preallocated: its appends start failing.
    let value = "v".repeat(64 * 1024);
    for i in 0..40 {
        let _: () = writes.set(format!("big{i}"), &value).unwrap();
    }
    let started = Instant::now();
    while cluster.info_field(follower, "persistence", "wal_write_errors") == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no write error"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.disks[follower].full.store(false, Ordering::SeqCst);
    cluster.wait_caught_up(leader, follower, Duration::from_secs(20));
    // Its WAL holds every entry, in order, without a gap: all 40 values are on its disk.
    let last = cluster.info_field(leader, "replication", "quorum_last_index");
    let wal_dir = cluster.dir.join((follower + 1).to_string()).join("wal");
    let entries = quorum::wal::read_entries(
        &quorum::wal::FsDisk,
        &wal_dir,
        1,
        last,
        usize::MAX,
        &mut Default::default(),
    )
    .unwrap();
    let indexes: Vec<u64> = entries.iter().map(|e| e.index).collect();
    assert_eq!(indexes, (1..=last).collect::<Vec<u64>>());
    let big_values = entries
        .iter()
        .filter(|e| {
            matches!(&*e.payload, quorum::log::EntryPayload::Command { argv, .. }
                if argv.len() > 1 && argv[1].starts_with(b"big"))
        })
        .count();
    assert_eq!(big_values, 40);
    let mut reads = cluster.client(follower);
    for i in 0..40 {
        let read: Option<String> = reads.get(format!("big{i}")).unwrap();
        assert_eq!(read.as_deref(), Some(value.as_str()), "big{i}");
    }
    assert!(cluster.fatal.iter().all(|f| f.lock().unwrap().is_none()));
}
