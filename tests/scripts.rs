//! Script tests for the replica core: each `tests/scripts/*.txt` drives an in-memory cluster
//! step by step and holds the expected transcript (every message, persist and reply) after
//! each command. `QUORUM_REWRITE_GOLDEN=1 cargo test --test scripts` rewrites the expected
//! output from what the code does now; review the diff before committing it.
//!
//! Format: blocks separated by blank lines. `#` lines are comments; then one command; then
//! `----`; then the output.
//!
//! Commands:
//! - `cluster N [max-append=K] [seed=S] [log-memory=BYTES]`: a new cluster; nothing ticks on
//!   its own, messages take 1 ms, fsyncs 0 ms.
//! - `advance MS`: the cluster's clock moves on (no tick is delivered).
//! - `tick ID...`: those replicas get a tick at their clock's time.
//! - `stabilize`: deliver every message and fsync until none is left.
//! - `step N`: deliver the next N events only.
//! - `put ID KEY VALUE`, `get ID KEY`: a client's SET or GET at replica ID.
//! - `partition A B / C`: cut every link between the groups; `cut A B`: one way; `heal`.
//! - `wait ID N TIMEOUT`: a client's WAIT at replica ID.
//! - `crash ID`, `wipe ID` (crash and lose the disk), `restart ID`, `transfer FROM TO`,
//!   `status`, `memory` (each replica's log in memory: its first index and about how many
//!   bytes it holds, entries dropped by the bound, WAL reads, and the bytes a leader holds of
//!   the piece it read back).

use quorum::command::Command;
use quorum::replica::{NodeId, Op, Request};
use quorum::testing::cluster::{Cluster, ClusterConfig};
use std::path::Path;

struct Driver {
    cluster: Option<Cluster>,
    next_client: u64,
}

fn ids(words: &[&str]) -> Vec<NodeId> {
    words
        .iter()
        .map(|w| {
            w.parse()
                .unwrap_or_else(|_| panic!("not a replica id: {w}"))
        })
        .collect()
}

impl Driver {
    fn cluster(&mut self) -> &mut Cluster {
        self.cluster
            .as_mut()
            .expect("no cluster: start with `cluster N`")
    }

    fn run(&mut self, line: &str) -> Vec<String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (command, args) = words.split_first().expect("an empty command");
        let mut extra = Vec::new();
        match *command {
            "cluster" => {
                let replicas = args[0].parse().unwrap();
                let mut config = ClusterConfig::new(replicas, 1);
                config.tick_ms = 0;
                for option in &args[1..] {
                    let (name, value) = option.split_once('=').expect("name=value");
                    let value: u64 = value.parse().unwrap();
                    match name {
                        "max-append" => config.replica.append_entries_max = value as usize,
                        "seed" => config.seed = value,
                        "log-memory" => config.replica.log_memory_bytes_max = value as usize,
                        _ => panic!("unknown option {name}"),
                    }
                }
                let mut cluster = Cluster::new_with(config, |c| {
                    c.transcript = Some(Vec::new());
                    c.faults.delay_ms = (1, 1);
                    c.faults.fsync_ms = (0, 0);
                });
                cluster.take_transcript();
                self.cluster = Some(cluster);
                self.next_client = 0;
                extra.push(self.cluster().describe());
            }
            "advance" => {
                let until = self.cluster().now_ms + args[0].parse::<u64>().unwrap();
                self.cluster().run_until(until);
            }
            "tick" => {
                for id in ids(args) {
                    self.cluster().tick(id);
                }
            }
            "stabilize" => self.cluster().stabilize(),
            "step" => {
                for _ in 0..args[0].parse::<u64>().unwrap() {
                    self.cluster().step_event(u64::MAX);
                }
            }
            "put" | "get" | "wait" => {
                let id = ids(&args[..1])[0];
                let name = match *command {
                    "put" => "SET",
                    "get" => "GET",
                    _ => "WAIT",
                };
                let mut argv = vec![name];
                argv.extend(&args[1..]);
                self.next_client += 1;
                let op = if name == "WAIT" {
                    Op::Wait {
                        replicas: args[1].parse().unwrap(),
                        timeout_ms: args[2].parse().unwrap(),
                    }
                } else {
                    Op::Command {
                        db: 0,
                        cmd: Command::parse(
                            argv.iter()
                                .map(|a| bytes::Bytes::copy_from_slice(a.as_bytes()))
                                .collect(),
                        )
                        .unwrap(),
                    }
                };
                let request = Request {
                    client: self.next_client,
                    id: 1,
                    op,
                };
                self.cluster().request(id, vec![request]);
            }
            "partition" => {
                let split = args.iter().position(|a| *a == "/").expect("A.. / B..");
                let (a, b) = (ids(&args[..split]), ids(&args[split + 1..]));
                self.cluster().partition(&a, &b);
            }
            "cut" => {
                let pair = ids(args);
                self.cluster().faults.cut.insert((pair[0], pair[1]));
            }
            "heal" => self.cluster().heal(),
            "crash" => self.cluster().crash(ids(args)[0]),
            "wipe" => self.cluster().wipe(ids(args)[0]),
            "restart" => self.cluster().start(ids(args)[0]),
            "transfer" => {
                let pair = ids(args);
                self.cluster().transfer_leader(pair[0], pair[1]);
            }
            "status" => extra.push(self.cluster().describe()),
            "memory" => {
                for id in self.cluster().ids() {
                    if let Some(r) = self.cluster().replica(id) {
                        extra.push(format!(
                            "{id}: first_in_memory={} bytes={} dropped_over_bound={} wal_reads={} catch_up_bytes={}",
                            r.first_index(),
                            r.log_bytes_in_memory(),
                            r.stats.log_entries_dropped_over_bound,
                            r.stats.log_reads,
                            r.catch_up_bytes_in_memory()
                        ));
                    }
                }
            }
            other => panic!("unknown command {other}"),
        }
        let cluster = self.cluster();
        let mut output = cluster.take_transcript();
        if let Some(violation) = &cluster.violation {
            panic!("invariant broken: {violation}");
        }
        output.extend(
            extra
                .into_iter()
                .flat_map(|e| e.lines().map(|l| l.trim().to_string()).collect::<Vec<_>>()),
        );
        output
    }
}

/// Runs one script; returns its text with the outputs as they are now.
fn run_script(text: &str) -> String {
    let mut driver = Driver {
        cluster: None,
        next_client: 0,
    };
    let mut out = String::new();
    for block in text.trim_end().split("\n\n") {
        let mut lines = block.lines().peekable();
        while let Some(line) = lines.peek() {
            if line.starts_with('#') {
                out += lines.next().unwrap();
                out += "\n";
            } else {
                break;
            }
        }
        let command = lines
            .next()
            .unwrap_or_else(|| panic!("a block without a command: {block:?}"));
        out += command;
        out += "\n----\n";
        for line in driver.run(command) {
            out += &line;
            out += "\n";
        }
        out += "\n";
    }
    out.trim_end().to_string() + "\n"
}

#[test]
fn scripts_match_their_golden_output() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let rewrite = std::env::var("QUORUM_REWRITE_GOLDEN").is_ok_and(|v| v == "1");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    names.sort();
    assert!(names.len() >= 9, "the scripts are missing: {names:?}");
    let mut mismatches = Vec::new();
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap();
        let actual = run_script(&text);
        if actual != text {
            if rewrite {
                std::fs::write(&path, &actual).unwrap();
            } else {
                mismatches.push(format!(
                    "{}: the output differs (QUORUM_REWRITE_GOLDEN=1 rewrites it; then review the diff)\n{}",
                    path.display(),
                    first_difference(&text, &actual)
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

fn first_difference(expected: &str, actual: &str) -> String {
    for (n, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        if e != a {
            return format!("line {}:\n  expected: {e}\n  actual:   {a}", n + 1);
        }
    }
    format!(
        "lengths differ: {} lines expected, {} actual",
        expected.lines().count(),
        actual.lines().count()
    )
}
