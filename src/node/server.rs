//! Server state shared by connections, and the server commands that report or change it:
//! INFO, CONFIG, CLIENT, COMMAND, TIME. Observability only: no protocol decision lives here.

use super::NodeConfig;
use super::wal_writer::WalStats;
use crate::command::{COMMANDS, Command, CommandId, CommandSpec, unknown_subcommand, wrong_arity};
use crate::keyspace::{glob_match, parse_int};
use crate::replica::{ClientId, Replica};
use crate::resp::Frame;
use crate::session::{Session, check_client_name};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The version of Redis whose commands and replies quorum follows (HELLO, INFO).
pub const REDIS_COMPAT_VERSION: &str = "7.0.0";

/// What CLIENT LIST shows of a connection; the connection keeps it current.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub id: ClientId,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub name: Option<Bytes>,
    pub db: u8,
    pub resp: u8,
    pub connected_at: Instant,
    pub last_active: Instant,
    pub last_command: &'static str,
    pub multi: Option<usize>,
    pub query_buffer_bytes: usize,
}

/// Settings CONFIG SET may change while running.
#[derive(Debug)]
pub struct LiveConfig {
    pub maxclients: AtomicUsize,
    pub client_query_buffer_limit: AtomicUsize,
    /// Close clients idle for this many seconds (0: never), as Redis's `timeout`.
    pub timeout_s: AtomicU64,
}

#[derive(Debug, Default)]
pub struct ServerStats {
    pub connections_received: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    /// Messages to peers dropped, at a full send queue or while the peer was not connected
    /// (Raft sends what is needed again).
    pub peer_messages_dropped: Arc<AtomicU64>,
}

pub struct Shared {
    pub config: NodeConfig,
    pub live: LiveConfig,
    pub local_addr: SocketAddr,
    pub started: Instant,
    pub stats: ServerStats,
    pub wal: Arc<WalStats>,
    pub clients: Mutex<BTreeMap<ClientId, Arc<Mutex<ClientInfo>>>>,
    next_client_id: AtomicU64,
    /// Connections accepted and not yet closed (counted from the accept, before the
    /// connection's task registers it): a planned shutdown waits for this to reach zero.
    pub open_connections: AtomicUsize,
}

impl Shared {
    pub fn new(config: NodeConfig, local_addr: SocketAddr, wal: Arc<WalStats>) -> Shared {
        Shared {
            live: LiveConfig {
                maxclients: AtomicUsize::new(config.maxclients),
                client_query_buffer_limit: AtomicUsize::new(config.client_query_buffer_limit),
                timeout_s: AtomicU64::new(0),
            },
            config,
            local_addr,
            started: Instant::now(),
            stats: ServerStats::default(),
            wal,
            clients: Mutex::new(BTreeMap::new()),
            next_client_id: AtomicU64::new(1),
            open_connections: AtomicUsize::new(0),
        }
    }

    pub fn next_client_id(&self) -> ClientId {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn connected_clients(&self) -> usize {
        self.clients.lock().unwrap().len()
    }
}

/// What INFO needs from the core, taken by the core loop between steps.
#[derive(Clone, Debug, Default)]
pub struct CoreSnapshot {
    pub db_stats: Vec<(usize, usize, usize)>,
    pub last_index: u64,
    pub applied_index: u64,
    pub term: u64,
    pub commands_processed: u64,
    pub expired_keys: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub persist_failures: u64,
    pub id: u64,
    pub role: crate::replica::Role,
    pub leader: Option<u64>,
    pub commit_index: u64,
    /// On a leader: each follower and its matched index.
    pub followers: Vec<(u64, u64)>,
    /// The first log entry still in memory (those before it are only in the WAL).
    pub first_index_in_memory: u64,
    /// Entries read back from the WAL for followers that lacked them: reads done, failed.
    pub log_reads: u64,
    pub log_reads_failed: u64,
    /// About how much memory the log's entries hold, and how many entries the bound on it
    /// dropped before every replica was known to hold them.
    pub log_bytes_in_memory: usize,
    pub log_entries_dropped_over_bound: u64,
    /// About how much memory the piece of the log read back for lagging followers holds.
    pub catch_up_bytes_in_memory: usize,
}

impl CoreSnapshot {
    pub fn of(replica: &Replica) -> CoreSnapshot {
        CoreSnapshot {
            db_stats: replica.keyspace().db_stats(),
            last_index: replica.last_index(),
            applied_index: replica.applied_index(),
            term: replica.term(),
            commands_processed: replica.stats.commands_processed,
            expired_keys: replica.stats.expired_keys,
            keyspace_hits: replica.stats.keyspace_hits,
            keyspace_misses: replica.stats.keyspace_misses,
            persist_failures: replica.stats.persist_failures,
            id: replica.id(),
            role: replica.role(),
            leader: replica.leader(),
            commit_index: replica.commit_index(),
            followers: replica.follower_matches(),
            first_index_in_memory: replica.first_index(),
            log_reads: replica.stats.log_reads,
            log_reads_failed: replica.stats.log_reads_failed,
            log_bytes_in_memory: replica.log_bytes_in_memory(),
            log_entries_dropped_over_bound: replica.stats.log_entries_dropped_over_bound,
            catch_up_bytes_in_memory: replica.catch_up_bytes_in_memory(),
        }
    }
}

/// Answers a server command. `snapshot` is present for INFO.
pub fn handle(
    cmd: &Command,
    session: &mut Session,
    shared: &Shared,
    snapshot: Option<&CoreSnapshot>,
) -> Frame {
    match cmd.id() {
        CommandId::Info => info(
            &cmd.argv[1..],
            shared,
            snapshot.cloned().unwrap_or_default(),
        ),
        CommandId::Role => role(shared, &snapshot.cloned().unwrap_or_default()),
        CommandId::Time => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            Frame::Array(vec![
                Frame::bulk_str(&now.as_secs().to_string()),
                Frame::bulk_str(&now.subsec_micros().to_string()),
            ])
        }
        CommandId::Command => command(&cmd.argv),
        CommandId::Config => config(&cmd.argv, shared),
        CommandId::Client => client(&cmd.argv, session, shared),
        other => unreachable!("{other:?} is not a server command"),
    }
}

fn sub_is(argv: &[Bytes], name: &str) -> bool {
    argv.get(1)
        .is_some_and(|s| s.eq_ignore_ascii_case(name.as_bytes()))
}

fn command(argv: &[Bytes]) -> Frame {
    if argv.len() == 1 {
        return Frame::Array(COMMANDS.iter().map(CommandSpec::info_frame).collect());
    }
    let names = &argv[2..];
    if sub_is(argv, "count") && argv.len() == 2 {
        Frame::Integer(COMMANDS.len() as i64)
    } else if sub_is(argv, "info") {
        if names.is_empty() {
            return Frame::Array(COMMANDS.iter().map(CommandSpec::info_frame).collect());
        }
        Frame::Array(
            names
                .iter()
                .map(|n| CommandSpec::find(n).map_or(Frame::Null, CommandSpec::info_frame))
                .collect(),
        )
    } else if sub_is(argv, "docs") {
        let specs: Vec<&CommandSpec> = if names.is_empty() {
            COMMANDS.iter().collect()
        } else {
            names.iter().filter_map(|n| CommandSpec::find(n)).collect()
        };
        Frame::Map(
            specs
                .into_iter()
                .map(|s| (Frame::bulk_str(s.name), s.docs_frame()))
                .collect(),
        )
    } else if sub_is(argv, "list") && argv.len() == 2 {
        Frame::Array(COMMANDS.iter().map(|s| Frame::bulk_str(s.name)).collect())
    } else if sub_is(argv, "help") {
        help(&[
            "COMMAND",
            "    Return details about all commands.",
            "COUNT",
            "    Return the total number of commands in this server.",
            "LIST",
            "    Return a list of all commands in this server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple commands.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple commands.",
        ])
    } else {
        unknown_subcommand(&argv[1], "COMMAND")
    }
}

fn help(lines: &[&str]) -> Frame {
    Frame::Array(lines.iter().map(|l| Frame::simple(l)).collect())
}

/// The parameters CONFIG knows: name, current value, whether CONFIG SET may change it.
fn config_params(shared: &Shared) -> Vec<(&'static str, String, bool)> {
    let c = &shared.config;
    vec![
        ("bind", c.bind.clone(), false),
        ("port", c.port.to_string(), false),
        ("dir", c.dir.display().to_string(), false),
        ("databases", crate::keyspace::DB_COUNT.to_string(), false),
        (
            "maxclients",
            shared.live.maxclients.load(Ordering::Relaxed).to_string(),
            true,
        ),
        (
            "proto-max-bulk-len",
            c.proto_max_bulk_len.to_string(),
            false,
        ),
        (
            "client-query-buffer-limit",
            shared
                .live
                .client_query_buffer_limit
                .load(Ordering::Relaxed)
                .to_string(),
            true,
        ),
        (
            "timeout",
            shared.live.timeout_s.load(Ordering::Relaxed).to_string(),
            true,
        ),
        ("hz", c.hz.to_string(), false),
        // quorum's durability is fixed: every write is fsynced to the WAL before its reply.
        ("appendonly", "yes".into(), false),
        ("appendfsync", "always".into(), false),
        ("save", String::new(), false),
        (
            "wal-segment-bytes-max",
            c.segment_bytes_max.to_string(),
            false,
        ),
        ("log-memory-max", c.log_memory_bytes_max.to_string(), false),
    ]
}

fn config(argv: &[Bytes], shared: &Shared) -> Frame {
    if sub_is(argv, "get") {
        if argv.len() < 3 {
            return wrong_arity("config|get");
        }
        let params = config_params(shared);
        let mut found = Vec::new();
        for (name, value, _) in &params {
            if argv[2..]
                .iter()
                .any(|p| glob_match(&p.to_ascii_lowercase(), name.as_bytes()))
            {
                found.push((Frame::bulk_str(name), Frame::bulk_str(value)));
            }
        }
        Frame::Map(found)
    } else if sub_is(argv, "set") {
        if argv.len() < 4 || !argv.len().is_multiple_of(2) {
            return wrong_arity("config|set");
        }
        // Check every pair first: CONFIG SET is all or nothing.
        let params = config_params(shared);
        let mut changes = Vec::new();
        for pair in argv[2..].chunks(2) {
            let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
            let Some((known, _, mutable)) = params.iter().find(|(n, _, _)| *n == name) else {
                return Frame::error(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                ));
            };
            if !mutable {
                return Frame::error(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{known}') - can't set immutable config"
                ));
            }
            let Ok(value) = parse_int(&pair[1]) else {
                return Frame::error(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{known}') - argument couldn't be parsed into an integer"
                ));
            };
            if value < 0 || (*known == "maxclients" && value < 1) {
                return Frame::error(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{known}') - argument must be between 1 and 9223372036854775807 inclusive"
                ));
            }
            changes.push((*known, value as u64));
        }
        for (name, value) in changes {
            match name {
                "maxclients" => shared
                    .live
                    .maxclients
                    .store(value as usize, Ordering::Relaxed),
                "client-query-buffer-limit" => shared
                    .live
                    .client_query_buffer_limit
                    .store(value as usize, Ordering::Relaxed),
                "timeout" => shared.live.timeout_s.store(value, Ordering::Relaxed),
                _ => unreachable!("only mutable parameters get here"),
            }
        }
        Frame::ok()
    } else if sub_is(argv, "help") {
        help(&[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
        ])
    } else {
        unknown_subcommand(&argv[1], "CONFIG")
    }
}

fn client(argv: &[Bytes], session: &mut Session, shared: &Shared) -> Frame {
    // Subcommands with a fixed number of arguments, and their arity errors in Redis's words.
    for (sub, argc) in [("id", 2), ("setname", 3), ("getname", 2), ("info", 2)] {
        if sub_is(argv, sub) && argv.len() != argc {
            return wrong_arity(&format!("client|{sub}"));
        }
    }
    if sub_is(argv, "id") && argv.len() == 2 {
        Frame::Integer(session.id as i64)
    } else if sub_is(argv, "setname") && argv.len() == 3 {
        if let Err(error) = check_client_name(&argv[2]) {
            return error;
        }
        session.name = (!argv[2].is_empty()).then(|| argv[2].clone());
        Frame::ok()
    } else if sub_is(argv, "getname") && argv.len() == 2 {
        session.name.clone().map_or(Frame::Null, Frame::Bulk)
    } else if sub_is(argv, "info") && argv.len() == 2 {
        let info = shared.clients.lock().unwrap().get(&session.id).cloned();
        match info {
            Some(info) => Frame::Verbatim {
                format: *b"txt",
                text: Bytes::from(client_line(&info.lock().unwrap())),
            },
            None => Frame::Null,
        }
    } else if sub_is(argv, "list") {
        let mut ids: Option<Vec<u64>> = None;
        match &argv[2..] {
            [] => {}
            [opt, rest @ ..] if opt.eq_ignore_ascii_case(b"id") && !rest.is_empty() => {
                let mut parsed = Vec::new();
                for id in rest {
                    match parse_int(id) {
                        Ok(n) if n > 0 => parsed.push(n as u64),
                        _ => return Frame::error("ERR Invalid client ID"),
                    }
                }
                ids = Some(parsed);
            }
            [opt, kind] if opt.eq_ignore_ascii_case(b"type") => {
                if !kind.eq_ignore_ascii_case(b"normal") {
                    return Frame::Verbatim {
                        format: *b"txt",
                        text: Bytes::new(),
                    };
                }
            }
            _ => return Frame::error("ERR syntax error"),
        }
        let clients: Vec<_> = shared.clients.lock().unwrap().values().cloned().collect();
        let mut text = String::new();
        for info in clients {
            let info = info.lock().unwrap();
            if ids.as_ref().is_none_or(|ids| ids.contains(&info.id)) {
                text.push_str(&client_line(&info));
            }
        }
        Frame::Verbatim {
            format: *b"txt",
            text: Bytes::from(text),
        }
    } else if sub_is(argv, "help") {
        help(&[
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "LIST [TYPE normal] [ID <id> [<id> ...]]",
            "    Return information about client connections.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "GETNAME",
            "    Return the name of the current connection.",
        ])
    } else {
        unknown_subcommand(&argv[1], "CLIENT")
    }
}

/// One line of CLIENT LIST, with Redis's field names.
fn client_line(c: &ClientInfo) -> String {
    let now = Instant::now();
    format!(
        "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags=N db={} sub=0 psub=0 ssub=0 multi={} qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={}\n",
        c.id,
        c.addr,
        c.laddr,
        c.name
            .as_ref()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default(),
        now.duration_since(c.connected_at).as_secs(),
        now.duration_since(c.last_active).as_secs(),
        c.db,
        c.multi.map_or(-1, |n| n as i64),
        c.query_buffer_bytes,
        c.last_command,
        c.resp,
    )
}

const INFO_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "keyspace",
];

fn info(args: &[Bytes], shared: &Shared, core: CoreSnapshot) -> Frame {
    let wanted: Vec<String> = args
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let everything = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "all" || w == "everything" || w == "default");
    let mut out = String::new();
    for section in INFO_SECTIONS {
        if !everything && !wanted.iter().any(|w| w == section) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        info_section(section, shared, &core, &mut out);
    }
    Frame::Verbatim {
        format: *b"txt",
        text: Bytes::from(out),
    }
}

fn memory_bytes() -> (u64, u64) {
    // resident set size, from /proc (Linux); zero elsewhere.
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: Vec<u64> = statm
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let page = 4096;
    (
        pages.get(1).copied().unwrap_or(0) * page,
        pages.first().copied().unwrap_or(0) * page,
    )
}

fn human_bytes(n: u64) -> String {
    let units = ["B", "K", "M", "G", "T"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else {
        format!("{value:.2}{}", units[unit])
    }
}

fn info_section(section: &str, shared: &Shared, core: &CoreSnapshot, out: &mut String) {
    let uptime = shared.started.elapsed().as_secs();
    let w = out;
    match section {
        "server" => {
            let _ = write!(
                w,
                "# Server\r\nredis_version:{REDIS_COMPAT_VERSION}\r\nquorum_version:{}\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:{}\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nhz:{}\r\nexecutable:{}\r\n",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                std::env::consts::ARCH,
                usize::BITS,
                std::process::id(),
                shared.local_addr.port(),
                uptime / 86400,
                shared.config.hz,
                std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            );
        }
        "clients" => {
            let _ = write!(
                w,
                "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\n",
                shared.connected_clients(),
                shared.live.maxclients.load(Ordering::Relaxed),
            );
        }
        "memory" => {
            let (rss, virt) = memory_bytes();
            let _ = write!(
                w,
                "# Memory\r\nused_memory:{rss}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_vm:{virt}\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n",
                human_bytes(rss),
                human_bytes(rss),
            );
        }
        "persistence" => {
            let wal = &shared.wal;
            let _ = write!(
                w,
                "# Persistence\r\nloading:0\r\naof_enabled:1\r\nappendfsync:always\r\nrdb_changes_since_last_save:0\r\naof_last_write_status:{}\r\nwal_dir:{}\r\nwal_bytes:{}\r\nwal_fsyncs:{}\r\nwal_fsyncs_on_event_loop:{}\r\nwal_last_fsync_us:{}\r\nwal_write_errors:{}\r\nwal_last_index:{}\r\n",
                if wal.write_errors.load(Ordering::Relaxed) > 0 && core.persist_failures > 0 {
                    "err"
                } else {
                    "ok"
                },
                shared.config.dir.join("wal").display(),
                wal.bytes.load(Ordering::Relaxed),
                wal.fsyncs.load(Ordering::Relaxed),
                wal.fsyncs_on_event_loop.load(Ordering::Relaxed),
                wal.last_fsync_us.load(Ordering::Relaxed),
                wal.write_errors.load(Ordering::Relaxed),
                core.last_index,
            );
        }
        "stats" => {
            let s = &shared.stats;
            let _ = write!(
                w,
                "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\n",
                s.connections_received.load(Ordering::Relaxed),
                core.commands_processed,
                s.net_input_bytes.load(Ordering::Relaxed),
                s.net_output_bytes.load(Ordering::Relaxed),
                s.connections_rejected.load(Ordering::Relaxed),
                core.expired_keys,
                core.keyspace_hits,
                core.keyspace_misses,
            );
        }
        "replication" => replication_section(w, shared, core),
        "keyspace" => {
            w.push_str("# Keyspace\r\n");
            for (db, keys, expires) in &core.db_stats {
                let _ = write!(w, "db{db}:keys={keys},expires={expires},avg_ttl=0\r\n");
            }
        }
        _ => unreachable!(),
    }
}

/// A node's client address, by id (its position in `--cluster`), as (host, port).
fn member_address(shared: &Shared, id: u64) -> (String, u16) {
    match shared.config.cluster.get(id as usize - 1) {
        Some(entry) => match entry.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), port.parse().unwrap_or(0)),
            None => (entry.clone(), 0),
        },
        None => (shared.local_addr.ip().to_string(), shared.local_addr.port()),
    }
}

/// INFO replication in Redis's shape (master or slave), plus quorum's own fields. Offsets
/// are log indexes.
fn replication_section(w: &mut String, shared: &Shared, core: &CoreSnapshot) {
    use crate::replica::Role;
    w.push_str("# Replication\r\n");
    if core.role == Role::Leader {
        let _ = write!(
            w,
            "role:master\r\nconnected_slaves:{}\r\n",
            core.followers.len()
        );
        for (n, (id, offset)) in core.followers.iter().enumerate() {
            let (host, port) = member_address(shared, *id);
            let lag = core.commit_index.saturating_sub(*offset);
            let _ = write!(
                w,
                "slave{n}:ip={host},port={port},state=online,offset={offset},lag={lag}\r\n"
            );
        }
    } else {
        let _ = write!(w, "role:slave\r\n");
        match core.leader {
            Some(leader) => {
                let (host, port) = member_address(shared, leader);
                let _ = write!(
                    w,
                    "master_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:up\r\n"
                );
            }
            None => {
                let _ = write!(
                    w,
                    "master_host:?\r\nmaster_port:0\r\nmaster_link_status:down\r\n"
                );
            }
        }
    }
    let _ = write!(
        w,
        "master_repl_offset:{}\r\nquorum_node_id:{}\r\nquorum_role:{:?}\r\nquorum_term:{}\r\nquorum_leader_id:{}\r\nquorum_commit_index:{}\r\nquorum_applied_index:{}\r\nquorum_last_index:{}\r\nquorum_cluster_size:{}\r\nquorum_first_index_in_memory:{}\r\nquorum_log_reads_from_wal:{}\r\nquorum_log_reads_from_wal_failed:{}\r\nquorum_log_bytes_in_memory:{}\r\nquorum_log_entries_dropped_over_bound:{}\r\nquorum_catch_up_bytes_in_memory:{}\r\nquorum_peer_messages_dropped:{}\r\n",
        core.commit_index,
        core.id,
        core.role,
        core.term,
        core.leader.unwrap_or(0),
        core.commit_index,
        core.applied_index,
        core.last_index,
        shared.config.cluster.len().max(1),
        core.first_index_in_memory,
        core.log_reads,
        core.log_reads_failed,
        core.log_bytes_in_memory,
        core.log_entries_dropped_over_bound,
        core.catch_up_bytes_in_memory,
        shared.stats.peer_messages_dropped.load(Ordering::Relaxed),
    );
}

/// ROLE, in Redis's master and slave forms. Offsets are log indexes.
fn role(shared: &Shared, core: &CoreSnapshot) -> Frame {
    use crate::replica::Role;
    if core.role == Role::Leader {
        let replicas = core
            .followers
            .iter()
            .map(|(id, offset)| {
                let (host, port) = member_address(shared, *id);
                Frame::Array(vec![
                    Frame::Bulk(host.into()),
                    Frame::Bulk(port.to_string().into()),
                    Frame::Bulk(offset.to_string().into()),
                ])
            })
            .collect();
        return Frame::Array(vec![
            Frame::bulk_str("master"),
            Frame::Integer(core.commit_index as i64),
            Frame::Array(replicas),
        ]);
    }
    let (host, port, state) = match core.leader {
        Some(leader) => {
            let (host, port) = member_address(shared, leader);
            (host, port as i64, "connected")
        }
        None => ("?".to_string(), -1, "connecting"),
    };
    Frame::Array(vec![
        Frame::bulk_str("slave"),
        Frame::Bulk(host.into()),
        Frame::Integer(port),
        Frame::bulk_str(state),
        Frame::Integer(core.applied_index as i64),
    ])
}
