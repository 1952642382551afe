//! Clients of the simulated cluster: each one a task on its own simulated host, speaking RESP
//! over madsim's TCP to a random node per operation, with a timeout, and recording what it saw
//! for the linearizability checker. An operation that timed out, or whose connection broke
//! after the request left, has an unknown outcome; one that got `-CLUSTERDOWN`/`-TRYAGAIN` (or
//! never left) did not happen and is left out; `-UNKNOWN` is unknown.

use bytes::Bytes;
use quorum::linearizability::{OpKind, Operation};
use quorum::resp::{self, Frame, Limits};
use quorum::rng::Rng;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a client waits for a reply before giving up on it (outcome unknown).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Everything the clients saw.
#[derive(Default)]
pub struct History {
    pub operations: Vec<Operation>,
    /// Writes a client saw acknowledged, as argv.
    pub acknowledged: Vec<Vec<Bytes>>,
    pub unknown: usize,
    pub failed: usize,
}

/// Microseconds of virtual time since the run started: the history's clock.
fn now_us() -> u64 {
    crate::world::virtual_ns() / 1000
}

/// A connection to one node, kept between operations.
pub struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// What became of one request.
pub enum Reply {
    Frame(Frame),
    /// Sent, then no answer (timeout or a broken connection).
    Lost,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> Option<Connection> {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => Some(Connection {
                stream,
                buffer: Vec::new(),
            }),
            _ => None,
        }
    }

    /// Sends one command and waits for its reply.
    pub async fn call(&mut self, argv: &[Bytes]) -> Reply {
        let mut out = Vec::new();
        let args: Vec<&[u8]> = argv.iter().map(|a| a.as_ref()).collect();
        resp::encode_request(&args, &mut out);
        if self.stream.write_all(&out).await.is_err() || self.stream.flush().await.is_err() {
            return Reply::Lost;
        }
        match tokio::time::timeout(REPLY_TIMEOUT, self.read_reply()).await {
            Ok(Some(frame)) => Reply::Frame(frame),
            _ => Reply::Lost,
        }
    }

    async fn read_reply(&mut self) -> Option<Frame> {
        loop {
            match resp::decode_frame(&self.buffer, &Limits::default()) {
                Ok(Some((frame, used))) => {
                    self.buffer.drain(..used);
                    return Some(frame);
                }
                Ok(None) => {}
                Err(_) => return None,
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

fn words(parts: &[&str]) -> Vec<Bytes> {
    parts
        .iter()
        .map(|p| Bytes::copy_from_slice(p.as_bytes()))
        .collect()
}

/// One client's workload over `registers` SET/GET/DEL keys and `counters` INCR/GET keys.
pub struct Client {
    pub id: u64,
    rng: Rng,
    nodes: Vec<SocketAddr>,
    connections: Vec<Option<Connection>>,
    registers: usize,
    counters: usize,
    next_value: u64,
}

impl Client {
    pub fn new(
        id: u64,
        seed: u64,
        nodes: Vec<SocketAddr>,
        registers: usize,
        counters: usize,
    ) -> Client {
        Client {
            id,
            rng: Rng::new(seed),
            connections: nodes.iter().map(|_| None).collect(),
            nodes,
            registers,
            counters,
            next_value: 0,
        }
    }

    /// Picks an operation: its argv and, for the checker, its key and kind.
    fn pick(&mut self) -> (Vec<Bytes>, Bytes, OpKind) {
        let use_counter = self.counters > 0 && self.rng.below(3) == 0;
        if use_counter {
            let key = format!("c{}", self.rng.below(self.counters as u64));
            let kind = if self.rng.below(3) == 0 {
                OpKind::Read { observed: None }
            } else {
                OpKind::Incr {
                    by: 1,
                    result: None,
                }
            };
            let argv = match kind {
                OpKind::Read { .. } => words(&["GET", &key]),
                _ => words(&["INCR", &key]),
            };
            return (argv, Bytes::from(key), kind);
        }
        let key = format!("r{}", self.rng.below(self.registers as u64));
        match self.rng.below(10) {
            0..=3 => (
                words(&["GET", &key]),
                Bytes::from(key),
                OpKind::Read { observed: None },
            ),
            4 => (words(&["DEL", &key]), Bytes::from(key), OpKind::Delete),
            _ => {
                self.next_value += 1;
                let value = format!("{}-{}", self.id, self.next_value);
                (
                    words(&["SET", &key, &value]),
                    Bytes::from(key),
                    OpKind::Write {
                        value: Bytes::from(value),
                    },
                )
            }
        }
    }

    /// Runs one random operation through a random node and records it.
    pub async fn step(&mut self, history: &Arc<Mutex<History>>) {
        let node = self.rng.below(self.nodes.len() as u64) as usize;
        let (argv, key, kind) = self.pick();
        self.run(node, argv, key, kind, history).await;
    }

    /// Runs `argv` through `node` and records it as `kind` on `key`. True when it got a
    /// definite answer.
    pub async fn run(
        &mut self,
        node: usize,
        argv: Vec<Bytes>,
        key: Bytes,
        kind: OpKind,
        history: &Arc<Mutex<History>>,
    ) -> bool {
        if self.connections[node].is_none() {
            self.connections[node] = Connection::open(self.nodes[node]).await;
        }
        let Some(connection) = self.connections[node].as_mut() else {
            history.lock().unwrap().failed += 1;
            return false;
        };
        let invoked_at = now_us();
        let reply = connection.call(&argv).await;
        let completed_at = now_us();
        let mut op = Operation {
            client: self.id,
            key,
            kind,
            invoked_at,
            completed_at: None,
        };
        let mut history = history.lock().unwrap();
        match reply {
            Reply::Lost => {
                // The connection may be stuck: open a new one next time.
                self.connections[node] = None;
                if let OpKind::Incr { result, .. } = &mut op.kind {
                    *result = None;
                }
                if matches!(op.kind, OpKind::Read { .. }) {
                    return false; // A read that never answered constrains nothing.
                }
                history.unknown += 1;
                history.operations.push(op);
                return false;
            }
            Reply::Frame(Frame::Error(text)) => {
                if text.starts_with("UNKNOWN") && !matches!(op.kind, OpKind::Read { .. }) {
                    history.unknown += 1;
                    history.operations.push(op);
                } else if text.starts_with("CLUSTERDOWN")
                    || text.starts_with("TRYAGAIN")
                    || text.starts_with("UNKNOWN")
                {
                    history.failed += 1;
                } else {
                    panic!(
                        "client {}: {:?} was answered -{text}",
                        self.id,
                        argv_text(&argv)
                    );
                }
                return false;
            }
            Reply::Frame(frame) => {
                op.completed_at = Some(completed_at.max(invoked_at));
                let acknowledged = match (&mut op.kind, frame) {
                    (OpKind::Read { observed }, Frame::Bulk(value)) => {
                        *observed = Some(value);
                        false
                    }
                    (OpKind::Read { observed }, Frame::Null) => {
                        *observed = None;
                        false
                    }
                    (OpKind::Write { .. }, Frame::Simple(ok)) if ok == "OK" => true,
                    (OpKind::Delete, Frame::Integer(_)) => true,
                    (OpKind::Incr { result, .. }, Frame::Integer(n)) => {
                        *result = Some(n);
                        true
                    }
                    (_, frame) => panic!(
                        "client {}: {:?} was answered {frame:?}",
                        self.id,
                        argv_text(&argv)
                    ),
                };
                if acknowledged {
                    history.acknowledged.push(argv);
                }
                history.operations.push(op);
            }
        }
        true
    }

    pub fn registers(&self) -> usize {
        self.registers
    }

    pub fn counters(&self) -> usize {
        self.counters
    }
}

pub fn argv_text(argv: &[Bytes]) -> Vec<String> {
    argv.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}
