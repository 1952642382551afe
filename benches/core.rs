//! The CPU ceiling of the protocol: committed writes per second through an in-memory cluster
//! of replica cores, with no I/O at all (messages and fsyncs complete at once; the WAL
//! framing and encoding still run, as they do in a node). The reference, measured in the same
//! run, is a single voter in the same harness: the ratio is what replication costs.
//!
//! `cargo bench --bench core`. Knobs: `CORE_BENCH_WRITES` (default 200000),
//! `CORE_BENCH_CLIENTS` (64), `CORE_BENCH_PIPELINE` (16).

use quorum::command::Command;
use quorum::replica::{Op, Request, Response};
use quorum::testing::cluster::{Cluster, ClusterConfig};
use std::time::Instant;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn set(client: u64, id: u64) -> Request {
    let key = format!("key:{}", (client * 7919 + id) % 10_000);
    let argv = ["SET", key.as_str(), "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]
        .iter()
        .map(|w| bytes::Bytes::copy_from_slice(w.as_bytes()))
        .collect();
    Request {
        client,
        id,
        op: Op::Command {
            db: 0,
            cmd: Command::parse(argv).unwrap(),
        },
    }
}

/// Committed writes per second with `replicas` replicas; clients write at the leader.
fn run(replicas: usize, writes: u64, clients: u64, pipeline: u64) -> f64 {
    let mut config = ClusterConfig::new(replicas, 7);
    config.check = false;
    let mut cluster = Cluster::new_with(config, |c| {
        c.faults.delay_ms = (0, 0);
        c.faults.fsync_ms = (0, 0);
    });
    let mut until = 0;
    let leader = loop {
        until += 10;
        cluster.run_until(until);
        if let Some(leader) = cluster.stable_leader() {
            break leader;
        }
        assert!(until < 60_000, "no leader");
    };
    let _ = cluster.replies.drain(..);
    let started = Instant::now();
    let mut next_id = vec![0u64; clients as usize];
    let mut issued = 0;
    for client in 0..clients {
        let batch: Vec<Request> = (0..pipeline)
            .map(|_| {
                next_id[client as usize] += 1;
                set(client, next_id[client as usize])
            })
            .collect();
        issued += pipeline;
        cluster.request(leader, batch);
    }
    let mut done = 0;
    while done < writes {
        // Everything due now runs (zero delays); then a millisecond passes, for the ticks.
        cluster.run_until(until);
        until += 1;
        let replies = std::mem::take(&mut cluster.replies);
        let mut more: Vec<Vec<Request>> = vec![Vec::new(); clients as usize];
        for reply in replies {
            assert_eq!(reply.response, Response::Frame(quorum::resp::Frame::ok()));
            done += 1;
            if issued < writes {
                let c = reply.client as usize;
                next_id[c] += 1;
                more[c].push(set(reply.client, next_id[c]));
                issued += 1;
            }
        }
        let batch: Vec<Request> = more.into_iter().flatten().collect();
        if !batch.is_empty() {
            cluster.request(leader, batch);
        }
    }
    done as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    // `cargo test --all-targets` builds and runs benches too, in a debug build: only
    // `cargo bench` (which passes --bench) measures.
    if !std::env::args().any(|a| a == "--bench") {
        println!("core benchmark: skipped (run it with `cargo bench --bench core`)");
        return;
    }
    let writes = env("CORE_BENCH_WRITES", 200_000);
    let clients = env("CORE_BENCH_CLIENTS", 64);
    let pipeline = env("CORE_BENCH_PIPELINE", 16);
    println!(
        "core benchmark: {writes} SETs of 100 bytes, {clients} clients x {pipeline} in flight, no I/O"
    );
    let reference = run(1, writes, clients, pipeline);
    println!("  1 replica  (reference): {reference:>10.0} writes/s");
    for replicas in [3, 5] {
        let rate = run(replicas, writes, clients, pipeline);
        println!(
            "  {replicas} replicas:             {rate:>10.0} writes/s  ratio {:.2} of the single voter",
            rate / reference
        );
    }
}
