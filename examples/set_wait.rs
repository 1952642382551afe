//! A small load generator for Redis's nearest synchronous mode: every SET is followed by
//! `WAIT <replicas> 0` on the same connection, so it is acknowledged only once the replicas
//! have it. redis-benchmark cannot do this; `ci/bench.sh` uses it for the replicated section.
//!
//! `cargo run --release --example set_wait -- PORT CLIENTS REQUESTS PIPELINE REPLICAS [set|incr]`
//! prints `ops_per_s p50_ms p99_ms` (ops are SETs; latency is from a pipeline's send to its
//! last reply, as redis-benchmark counts it).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// Reads one reply (simple string, error or integer: all SET and WAIT answer).
fn read_reply(reader: &mut BufReader<TcpStream>, line: &mut String) {
    line.clear();
    reader.read_line(line).expect("a reply");
    assert!(!line.starts_with('-'), "error reply: {line}");
}

fn main() {
    let port = arg(1, 6379) as u16;
    let clients = arg(2, 50);
    let requests = arg(3, 100_000);
    let pipeline = arg(4, 1).max(1);
    let replicas = arg(5, 2);
    let value = "x".repeat(100);
    let set = match std::env::args().nth(6).as_deref() {
        Some("incr") => "*2\r\n$4\r\nINCR\r\n$12\r\ncounter:wait\r\n".to_string(),
        _ => format!(
            "*3\r\n$3\r\nSET\r\n$12\r\nkey:set_wait\r\n${}\r\n{value}\r\n",
            value.len()
        ),
    };
    let wait = format!(
        "*3\r\n$4\r\nWAIT\r\n${}\r\n{replicas}\r\n$1\r\n0\r\n",
        replicas.to_string().len()
    );
    let batch = (set + &wait).repeat(pipeline as usize);
    let issued = Arc::new(AtomicU64::new(0));
    let latencies_us = Arc::new(Mutex::new(Vec::with_capacity(requests as usize)));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (issued, latencies_us, batch) =
                (issued.clone(), latencies_us.clone(), batch.clone());
            std::thread::spawn(move || {
                let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                stream.set_nodelay(true).unwrap();
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                let mut mine = Vec::new();
                while issued.fetch_add(pipeline, Ordering::Relaxed) < requests {
                    let sent = Instant::now();
                    writer.write_all(batch.as_bytes()).expect("send");
                    for _ in 0..pipeline * 2 {
                        read_reply(&mut reader, &mut line);
                    }
                    let us = sent.elapsed().as_micros() as u64;
                    mine.extend(std::iter::repeat_n(us, pipeline as usize));
                }
                latencies_us.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = latencies_us.lock().unwrap().clone();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)] as f64 / 1000.0
    };
    println!(
        "{:.0} {:.3} {:.3}",
        latencies.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99)
    );
}
