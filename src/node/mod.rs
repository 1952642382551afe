//! The node adapter: sockets, files, the fsync thread and the timer around the pure replica
//! core. It makes no protocol decision.
//!
//! The core loop is one task with named steps:
//! 1. `gather`: wait for an event (client requests, a WAL completion, a timer tick), then take
//!    every other event already queued, so that one fsync covers many clients' writes;
//! 2. `step`: feed each to the core;
//! 3. `drain`: hand `Persist` outputs to the WAL writer as one job, and route replies to their
//!    connections, one message per connection.
//!
//! The timer (an interval at `hz`) is one more event source.

mod conn;
pub mod peer;
pub mod server;
pub mod wal_writer;

use crate::log::LogEntry;
use crate::replica::{
    ClientId, Input, Message, NodeId, Output, Replica, ReplicaConfig, Request, Response,
};
use crate::wal::{Disk, FsDisk, Wal, WalOptions};
use server::{CoreSnapshot, Shared};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use wal_writer::{WalStats, WalWriter, WriteJob, WriteOutcome, Written};

/// How a node is started (from the command line).
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub bind: String,
    pub port: u16,
    pub dir: PathBuf,
    pub maxclients: usize,
    pub proto_max_bulk_len: usize,
    pub client_query_buffer_limit: usize,
    /// Most reply bytes waiting for one client; beyond it the client is disconnected.
    pub client_output_buffer_limit: usize,
    pub segment_bytes_max: u64,
    /// See `ReplicaConfig::log_memory_bytes_max`.
    pub log_memory_bytes_max: usize,
    /// Event loop frequency for timers and active expiry, as Redis's `hz`.
    pub hz: u32,
    /// Every node's client address (`host:port`), this one included, in the same order on
    /// every node: a node's id is its position (from 1). Empty: a cluster of one.
    pub cluster: Vec<String>,
    /// The cluster's shared secret: peers must prove they know it.
    pub cluster_secret: Option<Vec<u8>>,
    /// Clients must AUTH with this password before any other command (Redis's requirepass).
    pub requirepass: Option<std::sync::Arc<str>>,
    /// This node's disk was lost or replaced: it must catch up before it votes again.
    pub rejoin: bool,
}

/// A node's peer (bus) port: its client port + 10000, as Redis Cluster's.
pub const PEER_PORT_OFFSET: u16 = 10_000;

/// Where this node is in its cluster.
#[derive(Clone, Debug)]
pub struct Membership {
    pub id: u64,
    pub voters: Vec<u64>,
    /// Every other node's peer address.
    pub peers: BTreeMap<u64, SocketAddr>,
    pub cluster_id: u64,
}

/// Finds this node in `--cluster` by its bind address and port, and the peers' bus addresses.
pub fn membership(config: &NodeConfig) -> Result<Membership, String> {
    use std::net::ToSocketAddrs;
    if config.cluster.is_empty() {
        return Ok(Membership {
            id: 1,
            voters: vec![1],
            peers: BTreeMap::new(),
            cluster_id: 0,
        });
    }
    let mut addrs = Vec::new();
    for entry in &config.cluster {
        let addr = entry
            .to_socket_addrs()
            .map_err(|e| format!("--cluster entry {entry:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("--cluster entry {entry:?} resolves to nothing"))?;
        addrs.push(addr);
    }
    let bind: Option<std::net::IpAddr> = config.bind.parse().ok();
    let unspecified = bind.is_none_or(|ip| ip.is_unspecified());
    let me: Vec<usize> = addrs
        .iter()
        .enumerate()
        .filter(|(_, a)| a.port() == config.port && (unspecified || Some(a.ip()) == bind))
        .map(|(i, _)| i)
        .collect();
    let index = match me.as_slice() {
        [one] => *one,
        [] => {
            return Err(format!(
                "this node ({}:{}) is not in --cluster {}",
                config.bind,
                config.port,
                config.cluster.join(",")
            ));
        }
        _ => {
            return Err(
                "this node matches several --cluster entries: bind a specific address".into(),
            );
        }
    };
    // The cluster id is a hash of the member list: a node of another cluster is refused.
    let mut cluster_id: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in config.cluster.join(",").bytes() {
        cluster_id = (cluster_id ^ byte as u64).wrapping_mul(0x100_0000_01b3);
    }
    let voters: Vec<u64> = (1..=addrs.len() as u64).collect();
    let peers = addrs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(i, a)| {
            let mut bus = *a;
            bus.set_port(a.port() + PEER_PORT_OFFSET);
            (i as u64 + 1, bus)
        })
        .collect();
    Ok(Membership {
        id: index as u64 + 1,
        voters,
        peers,
        cluster_id,
    })
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            bind: "127.0.0.1".into(),
            port: 6379,
            dir: PathBuf::from("quorum-data"),
            maxclients: 10_000,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            client_output_buffer_limit: 1024 * 1024 * 1024,
            segment_bytes_max: 64 * 1024 * 1024,
            log_memory_bytes_max: 64 * 1024 * 1024,
            hz: 10,
            cluster: Vec::new(),
            cluster_secret: None,
            requirepass: None,
            rejoin: false,
        }
    }
}

/// What connections and the WAL writer send the core loop.
pub(crate) enum Event {
    Connected {
        client: ClientId,
        replies: mpsc::UnboundedSender<Vec<(u64, Response)>>,
    },
    Disconnected {
        client: ClientId,
    },
    Requests(Vec<Request>),
    /// A message from a peer, as the transport received it.
    Peer {
        from: u64,
        message: crate::replica::Message,
    },
    /// The WAL writer took some jobs (none of them fatal: those stop the node).
    Wal(Written),
    Snapshot(oneshot::Sender<CoreSnapshot>),
    /// The node must stop (a fatal WAL error, already reported to `NodeEnv::on_fatal`).
    Stop(String),
    /// Entries read back from the WAL for the core (`Output::ReadLog`); empty if the read failed.
    LogRead(Vec<Arc<LogEntry>>),
    /// A planned shutdown: if this node leads, hand leadership to the most up-to-date
    /// follower; answer once it no longer leads (or at once if it never did).
    HandOver(oneshot::Sender<()>),
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What a node takes from its surroundings besides its sockets: its disk, the seed of its
/// core, its clock, and what to do when it must not go on. Production uses [`NodeEnv::real`];
/// the simulation passes a disk that loses unsynced writes, a seed it derives from its own, a
/// skewed clock, and hooks that watch the core and disturb the peer messages.
#[derive(Clone)]
pub struct NodeEnv {
    pub disk: Arc<dyn Disk>,
    /// The seed of the core's randomness (election timeouts, the incarnation, read-index asks).
    pub seed: u64,
    /// The wall clock, in ms since the epoch: the `now` of the core's ticks, so entry
    /// timestamps and TTL deadlines.
    pub clock_ms: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// Called once on an error after which the node must not go on (a failed fsync, a stopped
    /// core loop); the node does nothing more after it. Production exits the process.
    pub on_fatal: Arc<dyn Fn(&str) + Send + Sync>,
    pub hooks: Option<Arc<dyn NodeHooks>>,
}

impl NodeEnv {
    /// The real file system, a seed from the clock and the process id, the system clock, and
    /// exit status 70 on a fatal error.
    pub fn real(disk: Arc<dyn Disk>) -> NodeEnv {
        NodeEnv {
            disk,
            seed: now_ms() ^ (std::process::id() as u64).rotate_left(32),
            clock_ms: Arc::new(now_ms),
            on_fatal: Arc::new(|error: &str| {
                tracing::error!(%error, "stopping the node");
                eprintln!("quorum: {error}");
                std::process::exit(70);
            }),
            hooks: None,
        }
    }
}

/// The simulation's view into a running node. With hooks set, the core loop steps one event
/// at a time and calls `after_step` after each, so every state the core passes through is
/// checked.
pub trait NodeHooks: Send + Sync {
    /// A peer message about to be queued: one delay per copy to deliver (none drops it, two
    /// duplicate it, unequal delays reorder it).
    fn on_send(&self, from: NodeId, to: NodeId, message: &Message) -> Vec<Duration>;
    /// Entries about to be written, each with the term of the entry before it.
    fn on_persist(&self, node: NodeId, entries: &[(Arc<LogEntry>, u64)]);
    /// The core after each step.
    fn after_step(&self, replica: &Replica);
    /// How long the disk takes before the next write and fsync.
    fn disk_delay(&self, node: NodeId) -> Duration;
}

/// Opens the WAL, rebuilds the keyspace from it, and serves clients until the process ends.
pub async fn run(config: NodeConfig) -> Result<(), Box<dyn std::error::Error>> {
    // Two nodes on one directory would interleave their WALs: hold a lock for the node's life.
    std::fs::create_dir_all(&config.dir)?;
    let lock_path = config.dir.join("LOCK");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    if lock.try_lock().is_err() {
        return Err(format!(
            "{} is in use by another quorum node (it holds {})",
            config.dir.display(),
            lock_path.display()
        )
        .into());
    }
    let dir = config.dir.clone();
    let result = run_with(
        config,
        NodeEnv::real(Arc::new(FsDisk)),
        Box::new(move |local| {
            println!(
                "quorum node listening on {local} (data in {})",
                dir.display()
            )
        }),
        Box::pin(std::future::pending()),
    )
    .await;
    drop(lock);
    result
}

/// [`run`] in the given environment (the simulation's disk, seed and clock), calling
/// `on_ready` with the listening address once clients can connect (in-process tests bind port
/// 0 and learn the port this way), and returning when `stop` completes.
pub async fn run_with(
    config: NodeConfig,
    env: NodeEnv,
    on_ready: Box<dyn FnOnce(SocketAddr) + Send>,
    stop: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let wal_dir = config.dir.join("wal");
    let options = WalOptions {
        segment_bytes_max: config.segment_bytes_max,
        ..WalOptions::default()
    };
    let started = std::time::Instant::now();
    let membership = membership(&config)?;
    let in_cluster = membership.voters.len() > 1;
    let tail_cut_marker = wal_dir.join(crate::wal::TAIL_CUT_MARKER);
    if config.rejoin && in_cluster {
        // Written before the WAL is created: a crash in between must not leave a node that
        // looks new.
        env.disk.create_dir_all(&wal_dir)?;
        env.disk
            .create_durable(&tail_cut_marker, b"--rejoin\n")
            .map_err(|e| format!("{}: {e}", tail_cut_marker.display()))?;
    }
    let (wal, records, report) = match Wal::open(env.disk.clone(), &wal_dir, options) {
        Err(crate::wal::WalError::Corruption(corruption)) if in_cluster => {
            // In a cluster the peers hold what the corruption destroyed: cut the log there and
            // catch up from them (not voting until then), rather than stay down.
            match crate::wal::cut_for_repair(env.disk.as_ref(), &wal_dir)? {
                Some((file, offset)) => tracing::error!(
                    %corruption,
                    file = %file.display(),
                    offset,
                    "WAL corruption: cut the log there (backups kept as *.bak); catching up from the peers"
                ),
                None => return Err(corruption.into()),
            }
            Wal::open(env.disk.clone(), &wal_dir, options)?
        }
        opened => opened?,
    };
    // A damaged tail was cut (now or in an earlier life that did not catch up): in a cluster
    // this node waits to catch up with a leader before it votes again.
    let tail_cut = match env.disk.read(&tail_cut_marker) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        // Unreadable is not absent: this node must not vote on a guess.
        Err(e) => return Err(format!("{}: {e}", tail_cut_marker.display()).into()),
    };
    // The marker: recovery cut the log (now or in an earlier life that did not finish
    // catching up), or `--rejoin` said this node's disk was lost or replaced (nothing on disk
    // tells that apart from a new node, yet in its past life it may have voted and
    // acknowledged entries). Either way it recovers before it votes.
    let recovering = in_cluster && tail_cut;
    if tail_cut && !in_cluster {
        // A single node has no one to catch up from.
        env.disk.remove(&tail_cut_marker)?;
    }
    if config.rejoin && !in_cluster {
        tracing::warn!("--rejoin means nothing without --cluster: ignored");
    }
    if recovering {
        tracing::warn!(
            rejoin = config.rejoin,
            "this node may have lost what it acknowledged (its WAL was cut, or --rejoin): it will not vote until its peers show what it may have lost"
        );
    }
    let replica_config = ReplicaConfig {
        id: membership.id,
        voters: membership.voters.clone(),
        seed: env.seed,
        recovering,
        log_memory_bytes_max: config.log_memory_bytes_max,
        keyspace_limits: crate::keyspace::KeyspaceLimits {
            string_len_max: config.proto_max_bulk_len,
        },
        ..ReplicaConfig::default()
    };
    let replica = Replica::restore(replica_config, (env.clock_ms)(), records);
    tracing::info!(
        dir = %wal_dir.display(),
        segments = report.segments,
        records = report.records,
        last_index = replica.last_index(),
        keys = (0..crate::keyspace::DB_COUNT).map(|db| replica.keyspace().db_len(db)).sum::<usize>(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "WAL recovered"
    );

    let listener = TcpListener::bind((config.bind.as_str(), config.port)).await?;
    let local: SocketAddr = listener.local_addr()?;
    let wal_stats = Arc::new(WalStats::default());
    let shared = Arc::new(Shared::new(config.clone(), local, wal_stats.clone()));
    let (events_tx, events_rx) = mpsc::unbounded_channel();

    let peers = if membership.peers.is_empty() {
        None
    } else {
        let bus_port = config.port + PEER_PORT_OFFSET;
        let bus = TcpListener::bind((config.bind.as_str(), bus_port)).await?;
        tracing::info!(id = membership.id, addr = %bus.local_addr()?, "peer port open");
        let setup = peer::PeerSetup {
            id: membership.id,
            peers: membership.peers.clone(),
            cluster_id: membership.cluster_id,
            secret: config.cluster_secret.clone(),
        };
        Some(peer::start(
            setup,
            bus,
            events_tx.clone(),
            peer::queue_bytes_max(config.log_memory_bytes_max),
            shared.stats.peer_messages_dropped.clone(),
        ))
    };
    let writer = WalWriter::new(wal, replica.last_index(), wal_stats);
    let wal = spawn_wal_writer(writer, events_tx.clone(), &env, membership.id);
    // A cluster ticks every 10 ms (heartbeats every 100, elections after 500 to 1000); a
    // single node at `hz`, which only paces active expiry.
    let tick_ms = if peers.is_some() {
        10
    } else {
        1000 / config.hz.max(1) as u64
    };
    let out = Drain {
        wal,
        log_reader: LogReader {
            disk: env.disk.clone(),
            dir: wal_dir.clone(),
            events: events_tx.clone(),
            indexes: Arc::default(),
        },
        peers,
        hooks: env.hooks.clone(),
        on_fatal: env.on_fatal.clone(),
    };
    let core = tokio::spawn(core_loop(
        replica,
        events_rx,
        out,
        tick_ms,
        env.clone(),
        recovering.then_some(tail_cut_marker),
    ));
    tracing::info!(addr = %local, "quorum node ready to accept connections");
    on_ready(local);
    let terminate = terminate_signal();
    let (stop_accepting, accepting_stopped) = oneshot::channel();
    let mut accepting = tokio::spawn(conn::accept_loop(
        listener,
        shared.clone(),
        events_tx.clone(),
        accepting_stopped,
    ));
    tokio::select! {
        _ = &mut accepting => Ok(()),
        _ = stop => {
            accepting.abort();
            Ok(())
        }
        _ = terminate => {
            shut_down_gracefully(&events_tx, &shared, stop_accepting, accepting).await;
            Ok(())
        }
        // The core loop never ends on its own: if it stopped, it panicked (a broken invariant).
        // Stop the process rather than accept clients that would never get an answer.
        ended = core => match ended {
            // Already reported to `on_fatal`.
            Ok(Some(error)) => Err(error.into()),
            other => {
                let error = format!("the core loop stopped: {other:?}");
                (env.on_fatal)(&error);
                Err(error.into())
            }
        }
    }
}

/// Resolves on SIGTERM (never under madsim, which has no signals).
async fn terminate_signal() {
    #[cfg(not(madsim))]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            terminate.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await
}

/// A planned shutdown (SIGTERM): hand leadership over first (a rolling restart then costs no
/// election), then stop accepting connections (taking those already waiting in the backlog),
/// and answer every connection still open until its client closes it, for at most 5 s.
async fn shut_down_gracefully(
    events: &mpsc::UnboundedSender<Event>,
    shared: &Shared,
    stop_accepting: oneshot::Sender<()>,
    accepting: tokio::task::JoinHandle<()>,
) {
    use std::sync::atomic::Ordering;
    tracing::info!("SIGTERM: handing leadership over, then stopping");
    let (tx, rx) = oneshot::channel();
    if events.send(Event::HandOver(tx)).is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(3), rx).await;
    }
    let _ = stop_accepting.send(());
    let _ = accepting.await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while shared.open_connections.load(Ordering::SeqCst) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::info!("stopped on SIGTERM");
}

/// Where the core loop's persist batches go: to the WAL writer's thread, or, for a
/// follower's batch while that thread is idle, through the event loop's own hands
/// ([`WalJobs::write_here`]).
#[cfg(not(madsim))]
struct WalJobs {
    jobs: std::sync::mpsc::Sender<WriteJob>,
    writer: Arc<std::sync::Mutex<WalWriter>>,
    stats: Arc<WalStats>,
    /// Jobs handed to the thread whose outcome the core has not been told yet (see
    /// [`WalJobs::written`]).
    outstanding: std::cell::Cell<u64>,
}

/// A fsync slower than this sends a follower's next batches back to the writer's thread, so
/// that a slow disk does not stall the follower's event loop.
#[cfg(not(madsim))]
const WRITE_HERE_FSYNC_US_MAX: u64 = 2_000;

#[cfg(not(madsim))]
impl WalJobs {
    fn hand(&self, job: WriteJob) -> Result<(), String> {
        self.outstanding.set(self.outstanding.get() + 1);
        self.jobs
            .send(job)
            .map_err(|_| "the WAL writer is gone".to_string())
    }

    /// The core is about to be told what became of `jobs` handed jobs.
    fn written(&self, jobs: u64) {
        let outstanding = self.outstanding.get();
        assert!(jobs <= outstanding, "{jobs} jobs written of {outstanding}");
        self.outstanding.set(outstanding - jobs);
    }

    /// Appends `jobs` and covers them with one fsync on the calling thread, if the core has
    /// been told the outcome of every job handed to the writer's thread (so the WAL and the
    /// core see batches in order; a fatal outcome is never told, so nothing is written after
    /// one) and the last fsync was quick; otherwise gives the jobs back.
    ///
    /// For a follower: its write is on the path of every commit, and its event loop has
    /// nothing to do meanwhile but wait for the writer. Writing here saves the two thread
    /// wake-ups of a handover. Measured on a 3-node cluster on 2 cores, three interleaved
    /// runs each: SET -P 1 41.8-50.1k ops/s through the thread, 49.8-55.2k here; INCR -P 1
    /// 42.6-51.8k against 55.6-59.5k; SET -P 16 300-353k against 313-337k. The event loop
    /// stalls for the fsync, as Redis's does with `appendfsync always`; after a slow one the
    /// thread takes over again.
    fn write_here(&self, jobs: Vec<WriteJob>) -> Result<Vec<WriteOutcome>, Vec<WriteJob>> {
        use std::sync::atomic::Ordering;
        let idle = self.outstanding.get() == 0;
        let quick = self.stats.last_fsync_us.load(Ordering::Relaxed) <= WRITE_HERE_FSYNC_US_MAX;
        if !(idle && quick) {
            return Err(jobs);
        }
        match self.writer.lock() {
            Ok(mut writer) => {
                let outcomes = writer.write_batch(jobs);
                if outcomes
                    .iter()
                    .any(|outcome| matches!(outcome, WriteOutcome::Persisted { .. }))
                {
                    self.stats
                        .fsyncs_on_event_loop
                        .fetch_add(1, Ordering::Relaxed);
                }
                Ok(outcomes)
            }
            // Poisoned: the thread panicked while writing, and is gone; handing the jobs to
            // it fails and stops the node.
            Err(_) => Err(jobs),
        }
    }
}

/// In the simulation the writer is a task, and the core loop never writes itself: the
/// simulated disk's latency falls between the write and its fsync, where crashes happen.
#[cfg(madsim)]
struct WalJobs {
    jobs: mpsc::UnboundedSender<WriteJob>,
}

#[cfg(madsim)]
impl WalJobs {
    fn hand(&self, job: WriteJob) -> Result<(), String> {
        self.jobs
            .send(job)
            .map_err(|_| "the WAL writer is gone".to_string())
    }

    fn written(&self, _jobs: u64) {}

    fn write_here(&self, jobs: Vec<WriteJob>) -> Result<Vec<WriteOutcome>, Vec<WriteJob>> {
        Err(jobs)
    }
}

/// Hands what the writer did to the core loop. A fatal outcome goes to the environment
/// instead (production stops the process): the core loop hears nothing more from the disk.
fn report_written(events: &mpsc::UnboundedSender<Event>, env: &NodeEnv, written: Written) {
    for outcome in &written.outcomes {
        if let WriteOutcome::Fatal { error } = outcome {
            let error = format!("fatal WAL error: {error}");
            (env.on_fatal)(&error);
            // Where `on_fatal` returns (the simulation), the core loop stops too.
            let _ = events.send(Event::Stop(error));
            return;
        }
    }
    let _ = events.send(Event::Wal(written));
}

/// Starts the group-commit writer on its own OS thread, so that fsync does not block the event
/// loop (a follower's may still write itself: [`WalJobs::write_here`]).
#[cfg(not(madsim))]
fn spawn_wal_writer(
    writer: WalWriter,
    events: mpsc::UnboundedSender<Event>,
    env: &NodeEnv,
    _node: NodeId,
) -> WalJobs {
    let (jobs_tx, jobs_rx) = std::sync::mpsc::channel();
    let env = env.clone();
    let stats = writer.stats();
    let writer = Arc::new(std::sync::Mutex::new(writer));
    let thread_writer = writer.clone();
    std::thread::Builder::new()
        .name("wal-writer".into())
        .spawn(move || {
            yield_wakeups_to_the_event_loop();
            wal_writer::run_thread(&thread_writer, jobs_rx, |written| {
                report_written(&events, &env, written)
            })
        })
        .expect("spawn the WAL writer thread");
    WalJobs {
        jobs: jobs_tx,
        writer,
        stats,
        outstanding: std::cell::Cell::new(0),
    }
}

/// Puts the calling thread (the WAL writer) in Linux's `SCHED_BATCH` class: same share of the
/// CPU, but its wake-ups no longer preempt a running thread. The event loop hands the writer a
/// batch and goes on reading requests; with the normal class the writer preempted it on the
/// spot (two context switches, each expensive on a virtual machine), and with this one it
/// starts when the loop blocks, a core is free, or a time slice ends. Measured on a 3-node
/// cluster on 2 cores, SET -P 1, interleaved runs: 23.3k -> 27.1k ops/s in one series of
/// five (INCR 26.4k -> 29.2k), 29.1k -> 32.2k in another; a single node spends 6-10% less
/// CPU per write. The cost: when the loop is busy, the fsync may start up to a time slice
/// later. Failing to switch (another OS, a sandbox) costs only the gain.
#[cfg(not(madsim))]
fn yield_wakeups_to_the_event_loop() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: a plain system call on the calling thread (pid 0) with a valid parameter;
        // SCHED_BATCH needs no privilege.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            tracing::debug!(%error, "WAL writer: cannot switch to SCHED_BATCH; keeping the normal class");
        }
    }
}

/// In the simulation there are no OS threads: the writer is a task, with the same batching,
/// and the simulated disk may be slow.
#[cfg(madsim)]
fn spawn_wal_writer(
    mut writer: WalWriter,
    events: mpsc::UnboundedSender<Event>,
    env: &NodeEnv,
    node: NodeId,
) -> WalJobs {
    let (jobs_tx, mut jobs_rx) = mpsc::unbounded_channel();
    let env = env.clone();
    tokio::spawn(async move {
        while let Some(job) = jobs_rx.recv().await {
            let mut batch = vec![job];
            while let Ok(more) = jobs_rx.try_recv() {
                batch.push(more);
            }
            let jobs = batch.len() as u64;
            let outcome = match writer.append(batch) {
                wal_writer::Appended::Nothing => {
                    report_written(
                        &events,
                        &env,
                        Written {
                            jobs,
                            outcomes: Vec::new(),
                        },
                    );
                    continue;
                }
                wal_writer::Appended::Failed(outcome) => outcome,
                wal_writer::Appended::UpTo(seq) => {
                    // The disk's latency falls between the write and its fsync, where a crash
                    // loses (or tears) what was written.
                    if let Some(hooks) = &env.hooks {
                        let delay = hooks.disk_delay(node);
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                    }
                    writer.sync(seq)
                }
            };
            let fatal = matches!(outcome, WriteOutcome::Fatal { .. });
            report_written(
                &events,
                &env,
                Written {
                    jobs,
                    outcomes: vec![outcome],
                },
            );
            if fatal {
                return;
            }
        }
    });
    WalJobs { jobs: jobs_tx }
}

/// Runs until the events end (`None`) or the node must stop (`Some(why)`).
async fn core_loop(
    mut replica: Replica,
    mut events: mpsc::UnboundedReceiver<Event>,
    out: Drain,
    tick_ms: u64,
    env: NodeEnv,
    mut tail_cut_marker: Option<PathBuf>,
) -> Option<String> {
    // With hooks (the simulation), one event per step, so the hooks see every state.
    let events_per_step_max = if env.hooks.is_some() { 1 } else { 4096 };
    let mut clients: BTreeMap<ClientId, mpsc::UnboundedSender<Vec<(u64, Response)>>> =
        BTreeMap::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(tick_ms));
    let mut replies: BTreeMap<ClientId, Vec<(u64, Response)>> = BTreeMap::new();
    // How many `PersistFailed` the core was told of (see `WriteJob::epoch`).
    let mut failure_epoch = 0;
    let mut seen_role = (replica.role(), replica.term(), replica.leader());
    // A planned shutdown waiting for the hand-over to finish.
    let mut handing_over: Option<oneshot::Sender<()>> = None;
    loop {
        if handing_over.is_some() && replica.role() != crate::replica::Role::Leader {
            let _ = handing_over.take().unwrap().send(());
        }
        if let Some(marker) = tail_cut_marker.take_if(|_| !replica.recovering()) {
            tracing::info!(
                node = replica.id(),
                "recovered what the cut WAL (or the lost disk) may have held: voting again"
            );
            if let Err(error) = env.disk.remove(&marker) {
                // The next start will wait to catch up again: safe, only slower.
                tracing::warn!(%error, marker = %marker.display(), "could not remove the marker");
            }
        }
        let role = (replica.role(), replica.term(), replica.leader());
        if role != seen_role {
            tracing::info!(node = replica.id(), role = ?role.0, term = role.1, leader = ?role.2, "role changed");
            seen_role = role;
        }
        // gather + step
        let first = tokio::select! {
            event = events.recv() => match event {
                Some(event) => event,
                None => return None,
            },
            _ = ticker.tick() => {
                replica.step(Input::Tick { now_ms: (env.clock_ms)() });
                if let Err(error) = out.drain(&mut replica, &mut failure_epoch, &mut replies, &clients) {
                    return Some(error);
                }
                continue;
            }
        };
        // Every gather starts at the current time: entry timestamps (and so TTL deadlines) and
        // reads must not lag by a timer period.
        replica.step(Input::Tick {
            now_ms: (env.clock_ms)(),
        });
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(event) = next.take() {
            if let Event::HandOver(done) = event {
                hand_over(&mut replica, done, &mut handing_over);
            } else if let Event::Stop(error) = event {
                return Some(error);
            } else if let Event::Wal(written) = event {
                out.wal.written(written.jobs);
                for outcome in written.outcomes {
                    step_written(&mut replica, outcome, &mut failure_epoch);
                }
            } else {
                handle_event(&mut replica, event, &mut clients);
            }
            handled += 1;
            if handled < events_per_step_max {
                next = events.try_recv().ok();
            }
        }
        // drain
        if let Err(error) = out.drain(&mut replica, &mut failure_epoch, &mut replies, &clients) {
            return Some(error);
        }
    }
}

/// Starts a leader transfer to the most up-to-date follower (a planned shutdown).
fn hand_over(
    replica: &mut Replica,
    done: oneshot::Sender<()>,
    handing_over: &mut Option<oneshot::Sender<()>>,
) {
    let target = replica
        .follower_matches()
        .into_iter()
        .max_by_key(|(id, matched)| (*matched, std::cmp::Reverse(*id)));
    match target {
        Some((to, _)) => {
            tracing::info!(to, "handing leadership over");
            replica.step(Input::TransferLeader { to });
            *handing_over = Some(done);
        }
        None => {
            let _ = done.send(());
        }
    }
}

fn handle_event(
    replica: &mut Replica,
    event: Event,
    clients: &mut BTreeMap<ClientId, mpsc::UnboundedSender<Vec<(u64, Response)>>>,
) {
    match event {
        Event::Connected { client, replies } => {
            clients.insert(client, replies);
        }
        Event::Disconnected { client } => {
            clients.remove(&client);
        }
        Event::Requests(requests) => replica.step(Input::Requests(requests)),
        Event::Peer { from, message } => replica.step(Input::Message { from, message }),
        Event::Snapshot(reply) => {
            let _ = reply.send(CoreSnapshot::of(replica));
        }
        Event::LogRead(entries) => replica.step(Input::LogRead { entries }),
        Event::HandOver(_) | Event::Stop(_) | Event::Wal(_) => {
            unreachable!("the core loop handles hand-overs, stops and the WAL itself")
        }
    }
}

/// Tells the core what became of its persist batches (a fatal outcome never gets here).
fn step_written(replica: &mut Replica, outcome: WriteOutcome, failure_epoch: &mut u64) {
    match outcome {
        WriteOutcome::Persisted { seq } => replica.step(Input::Persisted { seq }),
        WriteOutcome::Failed { seq, error } => {
            tracing::error!(seq, %error, "WAL append failed; answering those writes with an error");
            replica.step(Input::PersistFailed { seq, error });
            *failure_epoch += 1;
        }
        WriteOutcome::Fatal { error } => unreachable!("a fatal WAL outcome to step: {error}"),
    }
}

/// Reads entries back from this node's WAL when the core asks (`Output::ReadLog`: a follower
/// lacks entries the leader dropped from memory) and hands them in as an event.
struct LogReader {
    disk: Arc<dyn crate::wal::Disk>,
    dir: PathBuf,
    events: mpsc::UnboundedSender<Event>,
    /// What each closed segment holds, learned by earlier reads (the pieces of one catch-up
    /// read mostly different segments).
    indexes: Arc<std::sync::Mutex<crate::wal::SegmentIndexes>>,
}

impl LogReader {
    fn read(&self, from: u64, to: u64, bytes_max: usize) {
        let (disk, dir, events) = (self.disk.clone(), self.dir.clone(), self.events.clone());
        let indexes = self.indexes.clone();
        let read = move || {
            // The core asks for one read at a time: the lock is never waited for. A read that
            // panicked left what it knew of the segments as sound as before (it only adds).
            let mut indexes = indexes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let started = std::time::Instant::now();
            // A read that panics is a failed read: the core must hear of it, or it would wait
            // for it forever and never read for a follower again.
            let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                crate::wal::read_entries(disk.as_ref(), &dir, from, to, bytes_max, &mut indexes)
            }));
            let entries = match read.unwrap_or_else(|_| {
                Err(crate::wal::WalError::Io {
                    path: dir.display().to_string(),
                    source: std::io::Error::other("the WAL read panicked"),
                })
            }) {
                Ok(entries) => {
                    tracing::info!(
                        from,
                        through = entries.last().map_or(0, |e| e.index),
                        to,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "read a piece of the log back from the WAL for a follower that lacks it"
                    );
                    entries.into_iter().map(Arc::new).collect()
                }
                Err(error) => {
                    tracing::error!(from, to, %error, "could not read entries back from the WAL for a follower that lacks them");
                    Vec::new()
                }
            };
            let _ = events.send(Event::LogRead(entries));
        };
        // The read scans the whole WAL: off the event loop, except in the simulation, which
        // has no OS threads and whose disk answers at once.
        #[cfg(not(madsim))]
        if let Err(error) = std::thread::Builder::new()
            .name("wal-reader".into())
            .spawn(read)
        {
            // The core tries again a heartbeat later.
            tracing::error!(%error, "could not start a thread to read the WAL back");
            let _ = self.events.send(Event::LogRead(Vec::new()));
        }
        #[cfg(madsim)]
        read();
    }
}

/// Where the core's outputs go.
struct Drain {
    wal: WalJobs,
    log_reader: LogReader,
    peers: Option<peer::Peers>,
    hooks: Option<Arc<dyn NodeHooks>>,
    on_fatal: Arc<dyn Fn(&str) + Send + Sync>,
}

impl Drain {
    /// Hands every output of the core on: persist batches to the WAL writer, messages to the
    /// peers, replies to their connections (one message per connection). A follower's
    /// batch may be written here and then (see [`WalJobs::write_here`]), its outcome stepped
    /// at once. `Err` when the writer is gone or a write here was fatal, after which nothing
    /// can be acknowledged.
    fn drain(
        &self,
        replica: &mut Replica,
        failure_epoch: &mut u64,
        replies: &mut BTreeMap<ClientId, Vec<(u64, Response)>>,
        clients: &BTreeMap<ClientId, mpsc::UnboundedSender<Vec<(u64, Response)>>>,
    ) -> Result<(), String> {
        if let Some(hooks) = &self.hooks {
            hooks.after_step(replica);
        }
        // Persist batches go on together at the end of each pass over the outputs: one
        // fsync covers them all when the event loop writes them itself.
        let mut jobs = Vec::new();
        loop {
            while let Some(output) = replica.poll_output() {
                match output {
                    Output::Persist(batch) => {
                        if let Some(hooks) = &self.hooks {
                            hooks.on_persist(replica.id(), &with_previous_terms(replica, &batch));
                        }
                        jobs.push(WriteJob {
                            epoch: *failure_epoch,
                            batch,
                        });
                    }
                    Output::Send { to, message } => match &self.peers {
                        Some(peers) => match &self.hooks {
                            None => peers.send(to, message),
                            Some(hooks) => {
                                for delay in hooks.on_send(replica.id(), to, &message) {
                                    peers.send_after(to, message.clone(), delay);
                                }
                            }
                        },
                        None => tracing::warn!(to, "a message for a peer, and no peers configured"),
                    },
                    Output::Reply {
                        client,
                        id,
                        response,
                    } => replies.entry(client).or_default().push((id, response)),
                    Output::ReadLog {
                        from,
                        to,
                        bytes_max,
                    } => self.log_reader.read(from, to, bytes_max),
                }
            }
            if jobs.is_empty() {
                break;
            }
            let mut to_hand = std::mem::take(&mut jobs);
            if replica.role() == crate::replica::Role::Follower {
                match self.wal.write_here(to_hand) {
                    Ok(outcomes) => {
                        for outcome in outcomes {
                            if let WriteOutcome::Fatal { error } = outcome {
                                let error = format!("fatal WAL error: {error}");
                                (self.on_fatal)(&error);
                                return Err(error);
                            }
                            step_written(replica, outcome, failure_epoch);
                        }
                        // The outcomes' outputs (a follower's acknowledgements) in another pass.
                        continue;
                    }
                    Err(given_back) => to_hand = given_back,
                }
            }
            for job in to_hand {
                self.wal.hand(job)?;
            }
        }
        while let Some((client, batch)) = replies.pop_first() {
            if let Some(tx) = clients.get(&client) {
                let _ = tx.send(batch);
            }
        }
        Ok(())
    }
}

/// A batch's entries, each with the term of the entry before it (for the log-matching check);
/// none when that term is no longer known (a single voter drops entries as it applies them).
fn with_previous_terms(
    replica: &Replica,
    batch: &crate::replica::PersistBatch,
) -> Vec<(Arc<LogEntry>, u64)> {
    let Some(first) = batch.entries.first() else {
        return Vec::new();
    };
    let Some(mut previous) = replica.term_at(first.index - 1) else {
        return Vec::new();
    };
    batch
        .entries
        .iter()
        .map(|entry| {
            let pair = (entry.clone(), previous);
            previous = entry.term;
            pair
        })
        .collect()
}
