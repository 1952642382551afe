//! One seeded run: real nodes as madsim hosts, clients recording their history, the nemesis
//! for the safety phase, then healing and the liveness phase, then the end-of-run checks.

use crate::client::{Client, History};
use crate::nemesis::{Nemesis, disk_for};
use crate::world::World;
use bytes::Bytes;
use quorum::invariants::{self, Violation};
use quorum::linearizability::{self, OpKind, Outcome};
use quorum::node::{NodeConfig, NodeEnv, NodeHooks, run_with};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub seed: u64,
    pub nodes: usize,
    /// Faults and workload for this long (simulated).
    pub safety_ms: u64,
    /// After healing, every node must answer a write within this long (simulated).
    pub liveness_ms: u64,
    pub clients: usize,
    pub registers: usize,
    pub counters: usize,
    /// The linearizability search's step budget per key.
    pub budget_steps: u64,
    /// Whether the nemesis injects faults.
    pub faults: bool,
}

impl RunConfig {
    pub fn new(seed: u64, nodes: usize) -> RunConfig {
        RunConfig {
            seed,
            nodes,
            safety_ms: 10_000,
            liveness_ms: 20_000,
            clients: 5,
            registers: 6,
            counters: 3,
            budget_steps: 2_000_000,
            faults: true,
        }
    }
}

#[derive(Debug, Default)]
pub struct RunReport {
    pub seed: u64,
    pub simulated_ms: u64,
    pub operations: usize,
    pub acknowledged: usize,
    pub unknown: usize,
    pub failed: usize,
    pub faults: BTreeMap<&'static str, u64>,
    pub steps: u64,
    pub messages: u64,
    pub trace_hash: u64,
    /// The linearizability search ran out of budget on some key.
    pub inconclusive: bool,
    pub violation: Option<Violation>,
}

/// Runs one seed on a fresh thread (madsim needs one per runtime for determinism).
pub fn run_seed(config: RunConfig) -> RunReport {
    let seed = config.seed;
    let joined = std::thread::Builder::new()
        .name(format!("seed-{seed}"))
        .spawn(move || {
            let mut runtime =
                madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
            runtime.set_time_limit(Duration::from_millis(
                config.safety_ms + config.liveness_ms + 120_000,
            ));
            runtime.block_on(scenario(config))
        })
        .expect("a thread for the seed")
        .join();
    joined.unwrap_or_else(|panic| {
        let detail = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into());
        RunReport {
            seed,
            violation: Some(Violation {
                property: "no panic",
                detail,
            }),
            ..RunReport::default()
        }
    })
}

fn node_ip(node: usize) -> IpAddr {
    IpAddr::from([10, 0, 0, node as u8 + 1])
}

const CLIENT_PORT: u16 = 6379;

/// One node life: a fresh seed for its core, its disk, its skewed clock, the world's hooks.
async fn node_life(world: Arc<World>, node: usize, cluster: Vec<String>) {
    let starts = {
        let mut state = world.lock();
        state.starts[node] += 1;
        state.fatal[node] = None;
        state.starts[node]
    };
    let seed =
        world.seed.rotate_left(17) ^ ((node as u64 + 1) << 56) ^ starts.wrapping_mul(0x9E37_79B9);
    let clock_world = world.clone();
    let fatal_world = world.clone();
    let env = NodeEnv {
        disk: Arc::new(disk_for(&world, node)),
        seed,
        clock_ms: Arc::new(move || {
            let offset = clock_world.lock().clock_offset_ms[node];
            (quorum::node::now_ms() as i64 + offset).max(0) as u64
        }),
        on_fatal: Arc::new(move |error: &str| {
            fatal_world.lock().fatal[node].get_or_insert_with(|| error.to_string());
        }),
        hooks: Some(world.clone() as Arc<dyn NodeHooks>),
    };
    // A node whose disk was wiped restarts as an operator restarts one on a new disk.
    let rejoin = std::mem::take(&mut world.disks[node].lock().unwrap().wiped);
    let config = NodeConfig {
        rejoin,
        bind: node_ip(node).to_string(),
        port: CLIENT_PORT,
        dir: PathBuf::from(format!("/quorum/{}", node + 1)),
        cluster,
        // Small segments, so that runs cross segment boundaries.
        segment_bytes_max: 64 * 1024,
        // On even seeds a small bound on the log in memory, so that a node that is down or
        // cut off makes the others drop entries it lacks and read them back from their WALs
        // for it; odd seeds keep the default, under which the checks that look at the log in
        // memory (leader completeness, committed entries) see all of it.
        log_memory_bytes_max: if world.seed.is_multiple_of(2) {
            8 * 1024
        } else {
            NodeConfig::default().log_memory_bytes_max
        },
        ..NodeConfig::default()
    };
    if let Err(error) = run_with(
        config,
        env,
        Box::new(|_| {}),
        Box::pin(std::future::pending()),
    )
    .await
    {
        use quorum::wal::WalError;
        let corrupt = matches!(
            error.downcast_ref::<WalError>(),
            Some(WalError::Corruption(_) | WalError::Decode { .. })
        );
        let text = error.to_string();
        tracing::warn!(node = node + 1, error = %text, "node stopped");
        let fatal = world.lock().fatal[node].is_some();
        if corrupt && world.corruptible[node] {
            world.count_fault("node refused to start (corrupt WAL)");
            world.lock().refused[node] = Some(text);
        } else if corrupt {
            world.fail(Violation {
                property: "nodes start",
                detail: format!(
                    "node {}, whose disk no fault corrupted, found its WAL corrupt: {text}",
                    node + 1
                ),
            });
        } else if fatal {
            world.count_fault("node stopped on a fatal error");
        } else {
            world.fail(Violation {
                property: "nodes start",
                detail: format!("node {} stopped: {text}", node + 1),
            });
        }
        world.trace(&[20, node as u64]);
    }
    // A node that stopped stays down until the harness restarts it.
    std::future::pending::<()>().await
}

async fn scenario(config: RunConfig) -> RunReport {
    let handle = madsim::runtime::Handle::current();
    let world = Arc::new(World::new(config.seed, config.nodes));
    let cluster: Vec<String> = (0..config.nodes)
        .map(|n| format!("{}:{CLIENT_PORT}", node_ip(n)))
        .collect();
    let addrs: Vec<SocketAddr> = (0..config.nodes)
        .map(|n| SocketAddr::new(node_ip(n), CLIENT_PORT))
        .collect();
    let mut ids = Vec::new();
    for node in 0..config.nodes {
        let world = world.clone();
        let cluster = cluster.clone();
        let host = handle
            .create_node()
            .name(format!("node{}", node + 1))
            .ip(node_ip(node))
            .init(move || node_life(world.clone(), node, cluster.clone()))
            .build();
        ids.push(host.id());
    }
    let history = Arc::new(Mutex::new(History::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = Vec::new();
    for c in 0..config.clients {
        let host = handle
            .create_node()
            .name(format!("client{}", c + 1))
            .ip(IpAddr::from([10, 0, 1, c as u8 + 1]))
            .build();
        let mut client = Client::new(
            c as u64 + 1,
            config.seed ^ ((c as u64 + 1) << 40),
            addrs.clone(),
            config.registers,
            config.counters,
        );
        let history = history.clone();
        let stop = stop.clone();
        running.push(host.spawn(async move {
            // Let the cluster elect its first leader.
            tokio::time::sleep(Duration::from_millis(300)).await;
            while !stop.load(Ordering::SeqCst) {
                client.step(&history).await;
            }
        }));
    }

    // Safety phase.
    let mut nemesis = Nemesis::new(world.clone(), ids);
    if config.faults {
        nemesis.run(config.safety_ms).await;
    } else {
        tokio::time::sleep(Duration::from_millis(config.safety_ms)).await;
    }
    // Liveness phase: the clients finish what they sent, with the faults gone.
    stop.store(true, Ordering::SeqCst);
    nemesis.heal();
    for client in running {
        let _ = client.await;
    }
    if world.violation().is_none() {
        let host = handle
            .create_node()
            .name("checker")
            .ip(IpAddr::from([10, 0, 2, 1]))
            .build();
        let history = history.clone();
        let deadline_ms = crate::world::virtual_ns() / 1_000_000 + config.liveness_ms;
        let liveness_config = config.clone();
        let liveness_world = world.clone();
        let outcome = host
            .spawn(async move {
                liveness(
                    &liveness_world,
                    &liveness_config,
                    addrs,
                    deadline_ms,
                    &history,
                )
                .await
            })
            .await
            .expect("the liveness checker ends");
        if let Err(violation) = outcome {
            world.fail(violation);
        }
    }
    finish(&config, &world, &history)
}

/// After healing, every node must answer a write within the deadline; then the final value
/// of every key is read, so that the history shows what survived.
async fn liveness(
    world: &World,
    config: &RunConfig,
    addrs: Vec<SocketAddr>,
    deadline_ms: u64,
    history: &Arc<Mutex<History>>,
) -> Result<(), Violation> {
    let mut checker = Client::new(
        0,
        config.seed,
        addrs.clone(),
        config.registers,
        config.counters,
    );
    for node in 0..addrs.len() {
        let mut attempt = 0;
        loop {
            // A node that refused to start on a corrupt WAL stays down (an operator's case);
            // only a minority of disks is ever corrupted, and the rest must carry on.
            if world.lock().refused[node].is_some() {
                break;
            }
            attempt += 1;
            let value = format!("{node}-{attempt}");
            let argv = vec![
                Bytes::from_static(b"SET"),
                Bytes::from_static(b"live"),
                Bytes::from(value.clone()),
            ];
            let kind = OpKind::Write {
                value: Bytes::from(value),
            };
            if checker
                .run(node, argv, Bytes::from_static(b"live"), kind, history)
                .await
            {
                break;
            }
            if crate::world::virtual_ns() / 1_000_000 > deadline_ms {
                return Err(Violation {
                    property: "liveness",
                    detail: format!(
                        "node {} answered no write within {} ms of healing",
                        node + 1,
                        config.liveness_ms
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let live: Vec<usize> = (0..addrs.len())
        .filter(|node| world.lock().refused[*node].is_none())
        .collect();
    let keys: Vec<String> = (0..checker.registers())
        .map(|r| format!("r{r}"))
        .chain((0..checker.counters()).map(|c| format!("c{c}")))
        .collect();
    for (i, key) in keys.iter().enumerate() {
        let argv = vec![Bytes::from_static(b"GET"), Bytes::from(key.clone())];
        let kind = OpKind::Read { observed: None };
        let node = live[i % live.len()];
        if !checker
            .run(node, argv, Bytes::from(key.clone()), kind, history)
            .await
        {
            return Err(Violation {
                property: "liveness",
                detail: format!("the final read of {key} through node {} failed", node + 1),
            });
        }
    }
    Ok(())
}

fn finish(config: &RunConfig, world: &World, history: &Arc<Mutex<History>>) -> RunReport {
    let history = history.lock().unwrap();
    for op in &history.operations {
        world.trace(&[30, op.client, op.invoked_at, op.completed_at.unwrap_or(0)]);
    }
    let mut violation = world.violation();
    let mut inconclusive = false;
    if violation.is_none() {
        for (node, disk) in world.disks.iter().enumerate() {
            let writes = disk.lock().unwrap().writes_after_failed_sync;
            if writes > 0 {
                violation = Some(Violation {
                    property: "a failed fsync stops the node",
                    detail: format!(
                        "node {} wrote {writes} times after its fsync failed",
                        node + 1
                    ),
                });
            }
        }
    }
    if violation.is_none() {
        let state = world.lock();
        violation = invariants::durability(state.observer.committed(), &history.acknowledged).err();
    }
    let failed_fsyncs: u64 = world
        .disks
        .iter()
        .map(|d| d.lock().unwrap().failed_fsyncs)
        .sum();
    world.lock().faults.insert("fsync failure", failed_fsyncs);
    if violation.is_none() {
        match linearizability::check(&history.operations, config.budget_steps) {
            Outcome::Linearizable => {}
            Outcome::Violation { key, message } => {
                violation = Some(Violation {
                    property: "linearizability",
                    detail: format!("key {}: {message}", String::from_utf8_lossy(&key)),
                })
            }
            Outcome::Unknown { .. } => inconclusive = true,
        }
    }
    let trace_hash = world.trace_hash();
    let state = world.lock();
    RunReport {
        seed: config.seed,
        simulated_ms: crate::world::virtual_ns() / 1_000_000,
        operations: history.operations.len(),
        acknowledged: history.acknowledged.len(),
        unknown: history.unknown,
        failed: history.failed,
        faults: state.faults.clone(),
        steps: state.steps,
        messages: state.messages_sent,
        trace_hash,
        inconclusive,
        violation,
    }
}
