//! The `quorum` command line: `quorum node` runs a node, `quorum check-wal` inspects a WAL.

use clap::{Parser, Subcommand};
use quorum::node::{self, NodeConfig};
use quorum::wal::{self, FsDisk};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc, not glibc's malloc: a keyspace of many small values leaves glibc's heap
/// fragmented, and its allocations then search long bin lists (`unlink_chunk`,
/// `malloc_consolidate`). Measured on a single node after 1M LPUSHes (230 MB of list), GET -P 16
/// cost 1.45 us of CPU per read with glibc against 0.87 with mimalloc (0.99 and 0.90 on a fresh
/// node), SET -P 16 4.02 against 2.50 us per write. Redis links jemalloc for the same reason.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "quorum",
    version,
    // A flag given twice keeps its last value: flags from `--config` come first, so the
    // command line overrides the file.
    args_override_self = true,
    about = "A Redis-compatible key-value database whose replicas agree before they answer"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run a node: RESP on --port, data in --dir; with --cluster, one of a cluster.
    Node {
        #[arg(long, default_value_t = 6379)]
        port: u16,
        #[arg(long, default_value = "quorum-data")]
        dir: PathBuf,
        /// Address to listen on. The default accepts local clients only.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        #[arg(long, default_value_t = 10_000)]
        maxclients: usize,
        /// Largest bulk string a client may send, in bytes (Redis's proto-max-bulk-len).
        #[arg(long, default_value_t = 512 * 1024 * 1024)]
        proto_max_bulk_len: usize,
        /// Largest unparsed input kept per client, in bytes (client-query-buffer-limit).
        #[arg(long, default_value_t = 1024 * 1024 * 1024)]
        client_query_buffer_limit: usize,
        /// Most reply bytes kept for one client that does not read them; beyond it the client
        /// is disconnected (a client pipelining more than it reads).
        #[arg(long, default_value_t = 1024 * 1024 * 1024)]
        client_output_buffer_limit: usize,
        /// Size at which a WAL segment is closed and a new one started, in bytes.
        #[arg(long, default_value_t = 64 * 1024 * 1024)]
        wal_segment_bytes_max: u64,
        /// Most memory, in bytes, the replicated log may hold for a node that is down or
        /// behind; past it the oldest entries leave memory, and the leader reads them back
        /// from its WAL when that node returns, half this much at a time. At least 1 MB.
        #[arg(long, default_value_t = 64 * 1024 * 1024, value_parser = parse_log_memory_max)]
        log_memory_max: usize,
        /// Event-loop threads for connections and the core. 1 (the default) runs them all on
        /// one thread, as Redis does; 0 means one per core.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Every node's client address, in the same order on every node
        /// (`127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003`); a node's id is its position. The
        /// peer (bus) port is each client port + 10000. Without it: a cluster of one.
        #[arg(long, value_delimiter = ',')]
        cluster: Vec<String>,
        /// A file holding the cluster's secret: peers must prove they know it (it never
        /// travels). Without it, any node that knows the member list may join.
        #[arg(long)]
        cluster_secret_file: Option<PathBuf>,
        /// Clients must AUTH with this password (or HELLO ... AUTH default PASSWORD) before
        /// any other command, as with Redis's requirepass.
        #[arg(long)]
        requirepass: Option<String>,
        /// This node's disk was lost or replaced (its --dir is empty or new): it asks its
        /// peers what it may have lost and catches up before it votes again. Without it, an
        /// empty --dir is a new member of a new cluster.
        #[arg(long)]
        rejoin: bool,
        /// A TOML file holding any of these flags (`port = 7001`, `cluster = ["h:p", ...]`,
        /// `requirepass = "..."`, `rejoin = true`); flags on the command line override it.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Start a local cluster: `--nodes` `quorum node` processes on consecutive ports from
    /// `--port`, data in DIR/1, DIR/2, ...; Ctrl-C stops them all.
    Cluster {
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        #[arg(long, default_value_t = 7001)]
        port: u16,
        #[arg(long, default_value = "quorum-data")]
        dir: PathBuf,
    },
    /// Inspect a node's WAL: segments, records, torn tail, corruption. Changes nothing
    /// unless --fix, which backs up the last segment and cuts a torn tail (never anything else).
    CheckWal {
        /// The node's data directory (the one given to `quorum node --dir`), or its wal/ directory.
        dir: PathBuf,
        /// Back up the last segment and cut a torn tail (records never acknowledged).
        #[arg(long)]
        fix: bool,
        /// Back up the last segment and cut it where corruption starts, dropping every record
        /// from there on, although some may have been acknowledged (as `redis-check-aof --fix`).
        /// For a single node with no healthy copy elsewhere; refused for earlier segments.
        #[arg(long)]
        truncate_at_corruption: bool,
    },
}

/// The smallest `--log-memory-max`: below it a follower that falls behind would be caught up
/// a few entries per read of the WAL.
const LOG_MEMORY_MAX_MIN: usize = 1024 * 1024;

fn parse_log_memory_max(value: &str) -> Result<usize, String> {
    let bytes: usize = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number of bytes"))?;
    if bytes < LOG_MEMORY_MAX_MIN {
        return Err(format!(
            "{bytes} is below the minimum of {LOG_MEMORY_MAX_MIN} bytes (1 MB)"
        ));
    }
    Ok(bytes)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match args_with_config_file(std::env::args().collect()) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("quorum: {error}");
            return ExitCode::from(2);
        }
    };
    match Cli::parse_from(args).command {
        Commands::Node {
            port,
            dir,
            bind,
            maxclients,
            proto_max_bulk_len,
            client_query_buffer_limit,
            client_output_buffer_limit,
            wal_segment_bytes_max,
            log_memory_max,
            threads,
            cluster,
            cluster_secret_file,
            requirepass,
            rejoin,
            config: _,
        } => {
            let cluster_secret = match cluster_secret_file.map(std::fs::read).transpose() {
                Ok(secret) => secret.map(|s| s.trim_ascii().to_vec()),
                Err(error) => {
                    eprintln!("quorum: cannot read the cluster secret file: {error}");
                    return ExitCode::from(1);
                }
            };
            let config = NodeConfig {
                cluster,
                cluster_secret,
                requirepass: requirepass.map(std::sync::Arc::from),
                bind,
                port,
                dir,
                maxclients,
                proto_max_bulk_len,
                client_query_buffer_limit,
                client_output_buffer_limit,
                segment_bytes_max: wal_segment_bytes_max,
                log_memory_bytes_max: log_memory_max,
                rejoin,
                ..NodeConfig::default()
            };
            // One thread: tokio's current-thread scheduler, not a multi-thread one with one
            // worker. Measured on a single node, SET -P 1 (interleaved runs, 2 cores shared
            // with redis-benchmark): 17.7 against 24.8 us of CPU per write, 41k against 34k
            // ops/s. The multi-thread scheduler pays for stealing and cross-thread wake-ups
            // (the WAL writer's completions) that one worker never needs.
            let mut runtime = if threads == 1 {
                tokio::runtime::Builder::new_current_thread()
            } else {
                tokio::runtime::Builder::new_multi_thread()
            };
            if threads > 1 {
                runtime.worker_threads(threads);
            }
            let runtime = runtime
                .enable_all()
                .build()
                .expect("start the tokio runtime");
            match runtime.block_on(node::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "quorum node stopped");
                    eprintln!("quorum: {error}");
                    ExitCode::from(1)
                }
            }
        }
        Commands::Cluster { nodes, port, dir } => run_cluster(nodes, port, &dir),
        Commands::CheckWal {
            dir,
            fix,
            truncate_at_corruption,
        } => check_wal(dir, fix, truncate_at_corruption),
    }
}

fn check_wal(dir: PathBuf, fix: bool, truncate_at_corruption: bool) -> ExitCode {
    let wal_dir = if dir.join("wal").is_dir() {
        dir.join("wal")
    } else {
        dir
    };
    let report = match wal::check(&FsDisk, &wal_dir) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("quorum check-wal: {error}");
            return ExitCode::from(2);
        }
    };
    for line in &report.lines {
        println!("{line}");
    }
    if fix {
        match wal::fix_torn_tail(&FsDisk, &report) {
            Ok(Some(backup)) => println!(
                "fixed: cut the torn tail; the segment as it was is saved in {}",
                backup.display()
            ),
            Ok(None) => println!("nothing to fix: no torn tail"),
            Err(error) => {
                eprintln!("quorum check-wal --fix: {error}");
                return ExitCode::from(2);
            }
        }
    }
    if truncate_at_corruption {
        match wal::cut_at_corruption(&FsDisk, &report) {
            Ok(Some((backup, offset))) => {
                println!(
                    "cut the last segment at offset {offset}: every record from there on is gone; the segment as it was is saved in {}",
                    backup.display()
                );
                return ExitCode::SUCCESS;
            }
            Ok(None) if report.healthy => println!("nothing to cut: no corruption"),
            Ok(None) => {
                eprintln!(
                    "quorum check-wal: the corruption is not in the last segment (or is in a header); refusing to cut"
                );
                return ExitCode::from(1);
            }
            Err(error) => {
                eprintln!("quorum check-wal --truncate-at-corruption: {error}");
                return ExitCode::from(2);
            }
        }
    }
    if report.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `quorum cluster`: starts the nodes as child processes and stops them on Ctrl-C.
fn run_cluster(nodes: u16, port: u16, dir: &std::path::Path) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => {
            eprintln!("quorum: cannot find this executable: {error}");
            return ExitCode::from(1);
        }
    };
    let members: Vec<String> = (0..nodes)
        .map(|i| format!("127.0.0.1:{}", port + i))
        .collect();
    let mut children = Vec::new();
    for (i, member) in members.iter().enumerate() {
        let node_port = port + i as u16;
        let node_dir = dir.join((i + 1).to_string());
        let child = std::process::Command::new(&exe)
            .arg("node")
            .arg("--port")
            .arg(node_port.to_string())
            .arg("--dir")
            .arg(&node_dir)
            .arg("--cluster")
            .arg(members.join(","))
            .spawn();
        match child {
            Ok(child) => {
                println!(
                    "node {} at {member} (peer port {}), pid {}, data in {}",
                    i + 1,
                    node_port + node::PEER_PORT_OFFSET,
                    child.id(),
                    node_dir.display()
                );
                children.push(child);
            }
            Err(error) => {
                eprintln!("quorum: cannot start node {}: {error}", i + 1);
                for mut child in children {
                    let _ = child.kill();
                }
                return ExitCode::from(1);
            }
        }
    }
    println!("connect with: redis-cli -p {port}   (any node works; Ctrl-C stops the cluster)");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    runtime.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    for child in &mut children {
        // SIGTERM first, so each node stops cleanly; then make sure.
        let _ = std::process::Command::new("kill")
            .arg(child.id().to_string())
            .status();
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    ExitCode::SUCCESS
}

/// `quorum node --config FILE`: the file's keys become flags placed before the command line's
/// own, so that the command line wins. Keys are the flags' names (`client_query_buffer_limit`
/// or `client-query-buffer-limit`); a list becomes a comma-separated value.
fn args_with_config_file(args: Vec<String>) -> Result<Vec<String>, String> {
    let Some(position) = args
        .iter()
        .position(|a| a == "--config" || a.starts_with("--config="))
    else {
        return Ok(args);
    };
    let path = match args[position].strip_prefix("--config=") {
        Some(path) => path.to_string(),
        None => args
            .get(position + 1)
            .cloned()
            .ok_or("--config needs a file")?,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("{path} is not valid TOML: {e}"))?;
    let mut from_file = Vec::new();
    for (key, value) in table {
        let flag = format!("--{}", key.replace('_', "-"));
        let value = match value {
            // A switch: present when true.
            toml::Value::Boolean(true) => {
                from_file.push(flag);
                continue;
            }
            toml::Value::Boolean(false) => continue,
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => Err(format!("{path}: {key} must list strings, not {other}")),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            other => {
                return Err(format!(
                    "{path}: {key} = {other} is not a string, number, boolean or list"
                ));
            }
        };
        from_file.push(flag);
        from_file.push(value);
    }
    // Right after the subcommand, before every flag of the command line.
    let subcommand = args
        .iter()
        .position(|a| a == "node")
        .ok_or("--config applies to `quorum node`")?;
    let mut merged = args[..=subcommand].to_vec();
    merged.extend(from_file);
    merged.extend_from_slice(&args[subcommand + 1..]);
    Ok(merged)
}
