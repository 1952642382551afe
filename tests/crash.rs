//! Pull the power under load: concurrent writers (SET, INCR, MULTI/EXEC) run against the real
//! binary, it is killed with SIGKILL at several points, restarted on the same directory, and
//! every acknowledged write must be there, and no transaction half-applied.

mod common;

use common::{Node, temp_dir};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What one writer saw acknowledged.
#[derive(Default, Debug)]
struct Acked {
    /// key -> value of every acknowledged SET (each key is written once).
    sets: BTreeMap<String, String>,
    /// The highest acknowledged INCR result of the writer's counter.
    counter: i64,
    /// How many INCRs the writer sent (acknowledged or not).
    counter_attempts: i64,
    /// The highest acknowledged transaction number.
    tx: i64,
    tx_attempts: i64,
}

fn writer(url: String, w: usize, round: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<Acked>>) {
    let Ok(mut con) = redis::Client::open(url).and_then(|c| c.get_connection()) else {
        return;
    };
    let counter = format!("counter:{w}");
    let (tx_a, tx_b) = (format!("tx:{w}:a"), format!("tx:{w}:b"));
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let outcome = match i % 3 {
            0 => {
                let key = format!("set:{w}:{round}:{i}");
                let value = format!("value-{i}");
                let r: redis::RedisResult<()> =
                    redis::cmd("SET").arg(&key).arg(&value).query(&mut con);
                r.map(|()| acked.lock().unwrap().sets.insert(key, value))
                    .map(|_| ())
            }
            1 => {
                acked.lock().unwrap().counter_attempts += 1;
                let r: redis::RedisResult<i64> = redis::cmd("INCR").arg(&counter).query(&mut con);
                r.map(|n| {
                    let mut a = acked.lock().unwrap();
                    a.counter = a.counter.max(n);
                })
            }
            _ => {
                let n = {
                    let mut a = acked.lock().unwrap();
                    a.tx_attempts += 1;
                    a.tx_attempts
                };
                let r: redis::RedisResult<((), ())> = redis::pipe()
                    .atomic()
                    .set(&tx_a, n)
                    .set(&tx_b, n)
                    .query(&mut con);
                r.map(|_| {
                    let mut a = acked.lock().unwrap();
                    a.tx = a.tx.max(n);
                })
            }
        };
        if outcome.is_err() {
            return; // The node died: this request's outcome is unknown.
        }
    }
}

fn check(node: &Node, writers: &[Arc<Mutex<Acked>>]) {
    let mut con = node.client();
    for (w, acked) in writers.iter().enumerate() {
        let acked = acked.lock().unwrap();
        for (key, value) in &acked.sets {
            let got: Option<String> = redis::cmd("GET").arg(key).query(&mut con).unwrap();
            assert_eq!(got.as_ref(), Some(value), "acknowledged SET {key} lost");
        }
        let counter: Option<i64> = redis::cmd("GET")
            .arg(format!("counter:{w}"))
            .query(&mut con)
            .unwrap();
        let counter = counter.unwrap_or(0);
        assert!(
            counter >= acked.counter,
            "acknowledged INCR lost: {counter} < {}",
            acked.counter
        );
        assert!(
            counter <= acked.counter_attempts,
            "INCR applied more often than sent"
        );
        let a: Option<i64> = redis::cmd("GET")
            .arg(format!("tx:{w}:a"))
            .query(&mut con)
            .unwrap();
        let b: Option<i64> = redis::cmd("GET")
            .arg(format!("tx:{w}:b"))
            .query(&mut con)
            .unwrap();
        assert_eq!(a, b, "transaction half-applied for writer {w}");
        assert!(a.unwrap_or(0) >= acked.tx, "acknowledged transaction lost");
        assert!(a.unwrap_or(0) <= acked.tx_attempts);
    }
}

#[test]
fn every_acknowledged_write_survives_sigkill_at_many_points() {
    let dir = temp_dir("crash");
    let writers: Vec<Arc<Mutex<Acked>>> = (0..8).map(|_| Arc::default()).collect();
    // Kill points, in milliseconds of load before the kill: early, mid-stream and late.
    let kill_points_ms = [5, 40, 120, 250, 400, 700];
    let mut total_acked = 0;
    for (round, kill_after_ms) in kill_points_ms.into_iter().enumerate() {
        let node = Node::start(&dir);
        check(&node, &writers);
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = writers
            .iter()
            .enumerate()
            .map(|(w, acked)| {
                let (url, stop, acked) = (node.url(), stop.clone(), acked.clone());
                std::thread::spawn(move || writer(url, w, round, stop, acked))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        node.kill9();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        total_acked = writers
            .iter()
            .map(|a| a.lock().unwrap().sets.len())
            .sum::<usize>();
    }
    let node = Node::start(&dir);
    check(&node, &writers);
    assert!(
        total_acked > 100,
        "the load was real: {total_acked} acknowledged SETs"
    );
}
