//! The peer transport: one TCP connection per pair of nodes (the node with the lower id dials),
//! frames `len | crc32 | postcard`, a versioned handshake carrying the cluster id and both node
//! ids, and, when the cluster has a secret, a challenge-response in both directions (HMAC-SHA256
//! of both nonces and both ids: the secret never travels).
//!
//! Each peer has a bounded send queue, in messages and in the bytes of log entries they hold
//! ([`queue_bytes_max`]): a slow or dead peer costs bounded memory, and what is dropped Raft
//! sends again. Reads and writes have application-level timeouts, since a
//! partition may only stall TCP. Bad input (garbage, another version, another cluster, a wrong
//! secret, an oversized frame, a checksum failure, an undecodable message) closes that
//! connection with a log line, and never reaches the core. The transport makes no protocol
//! decision: messages go to the core loop as they came.

use super::Event;
use crate::codec::{self, Handshake, PEER_FRAME_BYTES_MAX};
use crate::replica::{Message, NodeId};
use bytes::BytesMut;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Messages queued for one peer before new ones are dropped.
const SEND_QUEUE_MESSAGES: usize = 4096;
/// What a message costs in a send queue besides the entries it carries.
const MESSAGE_BYTES: usize = 64;
/// The least a send queue may hold: the appends a leader keeps in flight to one follower
/// (8 of up to 256 entries) must fit, for writes of a few hundred bytes, or a follower
/// catching up would see most of them dropped and wait for a heartbeat each time.
const QUEUE_BYTES_MIN: usize = 4 * 1024 * 1024;

/// How much one peer's send queue may hold, for a node with `--log-memory-max` of
/// `log_memory_bytes_max`: a quarter of it (16 MB by default), and at least 4 MB. While a
/// peer is down its queue fills with messages it will never get in time (they hold log
/// entries the log in memory let go of); this is what bounds them.
pub fn queue_bytes_max(log_memory_bytes_max: usize) -> usize {
    (log_memory_bytes_max / 4).max(QUEUE_BYTES_MIN)
}
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes asked of the socket per read once connected: a burst of frames arrives in one read.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Queued messages are coalesced into one write up to about this many bytes: a burst costs one
/// system call instead of one per message.
const WRITE_BATCH_BYTES_MAX: usize = 256 * 1024;
/// A connection's read or write buffer grown past this (by a large message) is let go once
/// empty, so an idle link costs little memory.
const BUFFER_KEPT_BYTES_MAX: usize = 1024 * 1024;
/// A connection that delivers nothing for this long is closed (heartbeats come every 100 ms).
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
const RECONNECT_MIN: Duration = Duration::from_millis(50);
const RECONNECT_MAX: Duration = Duration::from_secs(1);

/// Who the node is in its cluster, and how to reach the others.
#[derive(Clone, Debug)]
pub struct PeerSetup {
    pub id: NodeId,
    /// Every other node's peer (bus) address.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Derived from the member list: nodes of another cluster are refused.
    pub cluster_id: u64,
    pub secret: Option<Vec<u8>>,
}

/// The core loop's handle: queues to each peer.
pub struct Peers {
    queues: BTreeMap<NodeId, SendQueue>,
}

/// One peer's send queue, and about how much memory the messages in it hold.
#[derive(Clone)]
struct SendQueue {
    tx: mpsc::Sender<(Message, usize)>,
    bytes: Arc<AtomicUsize>,
    bytes_max: usize,
    dropped: Arc<AtomicU64>,
}

/// About how much memory a queued message holds: the log entries it carries, which it keeps
/// alive after the log in memory let go of them (`LogEntry::memory_bytes`).
fn queued_bytes(message: &Message) -> usize {
    MESSAGE_BYTES
        + match message {
            Message::Append { entries, .. } => entries.iter().map(|e| e.memory_bytes()).sum(),
            _ => 0,
        }
}

impl SendQueue {
    /// Queues a message, unless the queue is full or would hold more than `bytes_max` with
    /// it (one message always fits in an empty queue). A dropped message is Raft's to send
    /// again.
    fn push(&self, message: Message) {
        let bytes = queued_bytes(&message);
        let held = self.bytes.load(Ordering::Relaxed);
        if held > 0 && held + bytes > self.bytes_max {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if self.tx.try_send((message, bytes)).is_err() {
            self.bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Peers {
    /// Queues a message; drops it if the peer's queue is full (Raft sends again).
    pub fn send(&self, to: NodeId, message: Message) {
        let Some(queue) = self.queues.get(&to) else {
            tracing::warn!(to, "a message for a node that is not a peer");
            return;
        };
        queue.push(message);
    }

    /// Queues a message after `delay` (the simulation's delayed, duplicated and reordered
    /// deliveries).
    pub fn send_after(&self, to: NodeId, message: Message, delay: Duration) {
        if delay.is_zero() {
            return self.send(to, message);
        }
        let Some(queue) = self.queues.get(&to).cloned() else {
            return;
        };
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.push(message);
        });
    }
}

/// Starts the transport: the acceptor on `listener`, and one link task per peer, each with a
/// send queue that holds at most about `queue_bytes_max` of messages. Messages dropped (at a
/// full queue, or while the peer is not connected) are counted in `dropped`.
pub(crate) fn start(
    setup: PeerSetup,
    listener: TcpListener,
    events: mpsc::UnboundedSender<Event>,
    queue_bytes_max: usize,
    dropped: Arc<AtomicU64>,
) -> Peers {
    let setup = Arc::new(setup);
    let mut queues = BTreeMap::new();
    let mut inbound = BTreeMap::new();
    for &peer in setup.peers.keys() {
        let (tx, rx) = mpsc::channel(SEND_QUEUE_MESSAGES);
        let (in_tx, in_rx) = mpsc::channel::<TcpStream>(4);
        let bytes = Arc::new(AtomicUsize::new(0));
        queues.insert(
            peer,
            SendQueue {
                tx,
                bytes: bytes.clone(),
                bytes_max: queue_bytes_max,
                dropped: dropped.clone(),
            },
        );
        inbound.insert(peer, in_tx);
        let queue = QueueReceiver {
            rx,
            bytes,
            dropped: dropped.clone(),
        };
        tokio::spawn(link(setup.clone(), peer, queue, in_rx, events.clone()));
    }
    tokio::spawn(accept_loop(setup, listener, inbound));
    Peers { queues }
}

/// The link's end of a send queue: what it takes out no longer counts against the bound.
struct QueueReceiver {
    rx: mpsc::Receiver<(Message, usize)>,
    bytes: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
}

impl QueueReceiver {
    /// Waits for `wait`, dropping every message queued meanwhile: a peer that is not
    /// connected would get them late, if at all (Raft sends what it needs again once it
    /// answers), and they would hold log entries the log in memory let go of. `None` when the
    /// queue is closed (the node is stopping).
    async fn drop_while<T>(&mut self, wait: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::pin!(wait);
        loop {
            tokio::select! {
                done = &mut wait => return Some(done),
                message = self.recv() => {
                    message?;
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    async fn recv(&mut self) -> Option<Message> {
        let (message, bytes) = self.rx.recv().await?;
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
        Some(message)
    }

    fn try_recv(&mut self) -> Option<Message> {
        let (message, bytes) = self.rx.try_recv().ok()?;
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
        Some(message)
    }
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS's randomness: enough for nonces (the adapter, not the
    // core, may draw unseeded randomness).
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// The MAC a side proves the secret with: over its role, the ids (cluster, dialer, acceptor)
/// and both nonces, each side's own last, so that no proof can be replayed.
fn keyed(secret: &[u8], role: &[u8], ids: (u64, u64, u64), nonces: (u64, u64)) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(role);
    for n in [ids.0, ids.1, ids.2, nonces.0, nonces.1] {
        mac.update(&n.to_le_bytes());
    }
    mac
}

fn mac(secret: &[u8], role: &[u8], ids: (u64, u64, u64), nonces: (u64, u64)) -> Vec<u8> {
    keyed(secret, role, ids, nonces)
        .finalize()
        .into_bytes()
        .to_vec()
}

/// Checks a proof (in constant time).
fn verify(
    secret: &[u8],
    role: &[u8],
    ids: (u64, u64, u64),
    nonces: (u64, u64),
    proof: &[u8],
) -> bool {
    keyed(secret, role, ids, nonces).verify_slice(proof).is_ok()
}

async fn write_frame(
    stream: &mut (impl AsyncWriteExt + Unpin),
    payload: &[u8],
) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(payload.len() + 8);
    codec::encode_peer_frame(payload, &mut frame);
    write_frames(stream, &frame).await
}

/// Frames read from a connected peer in chunks: one read brings every frame that has arrived.
/// Memory follows the bytes received, never a frame's declared length.
struct FrameReader<R> {
    stream: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// The next frame's payload; any failure is a reason to close the connection. `idle` bounds
    /// the wait for each read, not for the whole frame.
    async fn next(&mut self, idle: Duration) -> Result<BytesMut, String> {
        loop {
            if let Some(payload) = codec::take_peer_frame(&mut self.buf)? {
                return Ok(payload);
            }
            if self.buf.is_empty() && self.buf.capacity() > BUFFER_KEPT_BYTES_MAX {
                // A large frame passed: do not keep its memory for small ones.
                self.buf = BytesMut::new();
            }
            self.buf.reserve(READ_CHUNK_BYTES);
            let read = tokio::time::timeout(idle, self.stream.read_buf(&mut self.buf))
                .await
                .map_err(|_| format!("nothing received for {} ms", idle.as_millis()))?
                .map_err(|e| format!("read failed: {e}"))?;
            if read == 0 {
                return Err(match self.buf.len() {
                    0 => "connection closed by the peer".to_string(),
                    partial => format!("connection closed {partial} bytes into a frame"),
                });
            }
        }
    }
}

/// Writes frames already encoded (several, coalesced) with one flush.
async fn write_frames(
    stream: &mut (impl AsyncWriteExt + Unpin),
    frames: &[u8],
) -> std::io::Result<()> {
    // Flushed: madsim's streams send only on flush (tokio's TcpStream has no buffer).
    let write = async {
        stream.write_all(frames).await?;
        stream.flush().await
    };
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))?
}

/// Reads one frame without reading past it (the handshake: what follows is read by a
/// [`FrameReader`]); any failure is a reason to close the connection.
async fn read_frame(
    stream: &mut (impl AsyncReadExt + Unpin),
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let read = async {
        let mut header = [0u8; 8];
        stream
            .read_exact(&mut header)
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().unwrap());
        if len > PEER_FRAME_BYTES_MAX {
            return Err(format!(
                "frame of {len} bytes is over the limit of {PEER_FRAME_BYTES_MAX}"
            ));
        }
        // Grown as the bytes arrive, never sized from the declared length up front: a peer
        // that announces a large frame and sends nothing costs nothing.
        let mut payload = Vec::new();
        let read = (&mut *stream)
            .take(len as u64)
            .read_to_end(&mut payload)
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if read < len {
            return Err(format!(
                "connection closed {read} bytes into a {len}-byte frame"
            ));
        }
        if crc32fast::hash(&payload) != crc {
            return Err("frame checksum mismatch".to_string());
        }
        Ok(payload)
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| format!("nothing received for {} ms", timeout.as_millis()))?
}

/// The accepting side of the handshake: returns the peer's id once it proved itself.
async fn accept_handshake(setup: &PeerSetup, stream: &mut TcpStream) -> Result<NodeId, String> {
    let first = read_frame(stream, HANDSHAKE_TIMEOUT).await?;
    let hello = codec::decode_handshake(&first).map_err(|e| e.to_string());
    let refuse = |reason: String| async move { Err::<NodeId, String>(reason) };
    let (cluster_id, from, to, their_nonce) = match hello {
        Ok(Handshake::Hello {
            cluster_id,
            from,
            to,
            nonce,
        }) => (cluster_id, from, to, nonce),
        Ok(other) => return refuse(format!("expected a hello, got {other:?}")).await,
        Err(reason) => {
            let refusal = codec::encode_handshake(&Handshake::Refused {
                reason: reason.clone(),
            });
            let _ = write_frame(stream, &refusal).await;
            return Err(reason);
        }
    };
    let refusal = if cluster_id != setup.cluster_id {
        Some(format!(
            "cluster id {cluster_id:#x} is not this cluster's ({:#x})",
            setup.cluster_id
        ))
    } else if to != setup.id || !setup.peers.contains_key(&from) {
        Some(format!(
            "node {from} asked for node {to}; this is node {}",
            setup.id
        ))
    } else {
        None
    };
    if let Some(reason) = refusal {
        let _ = write_frame(
            stream,
            &codec::encode_handshake(&Handshake::Refused {
                reason: reason.clone(),
            }),
        )
        .await;
        return Err(reason);
    }
    let nonce = random_u64();
    let ids = (cluster_id, from, setup.id);
    let proof = setup
        .secret
        .as_deref()
        .map(|s| mac(s, b"acceptor", ids, (their_nonce, nonce)))
        .unwrap_or_default();
    write_frame(
        stream,
        &codec::encode_handshake(&Handshake::Challenge { nonce, proof }),
    )
    .await
    .map_err(|e| e.to_string())?;
    let answer = read_frame(stream, HANDSHAKE_TIMEOUT).await?;
    match codec::decode_handshake(&answer) {
        Ok(Handshake::Proof { proof }) => match setup.secret.as_deref() {
            Some(secret) if !verify(secret, b"dialer", ids, (nonce, their_nonce), &proof) => Err(
                format!("node {from} failed the secret challenge (wrong cluster secret)"),
            ),
            None if !proof.is_empty() => Err(format!(
                "node {from} has a cluster secret; this node has none"
            )),
            _ => Ok(from),
        },
        Ok(other) => Err(format!("expected a proof, got {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The dialing side of the handshake.
async fn dial_handshake(
    setup: &PeerSetup,
    peer: NodeId,
    stream: &mut TcpStream,
) -> Result<(), String> {
    let nonce = random_u64();
    let hello = Handshake::Hello {
        cluster_id: setup.cluster_id,
        from: setup.id,
        to: peer,
        nonce,
    };
    write_frame(stream, &codec::encode_handshake(&hello))
        .await
        .map_err(|e| e.to_string())?;
    let answer = read_frame(stream, HANDSHAKE_TIMEOUT).await?;
    let ids = (setup.cluster_id, setup.id, peer);
    match codec::decode_handshake(&answer).map_err(|e| e.to_string())? {
        Handshake::Challenge {
            nonce: their_nonce,
            proof,
        } => {
            match setup.secret.as_deref() {
                Some(secret) if !verify(secret, b"acceptor", ids, (nonce, their_nonce), &proof) => {
                    return Err(format!(
                        "node {peer} failed the secret challenge (wrong cluster secret)"
                    ));
                }
                None if !proof.is_empty() => {
                    return Err(format!(
                        "node {peer} has a cluster secret; this node has none"
                    ));
                }
                _ => {}
            }
            let proof = setup
                .secret
                .as_deref()
                .map(|s| mac(s, b"dialer", ids, (their_nonce, nonce)))
                .unwrap_or_default();
            write_frame(
                stream,
                &codec::encode_handshake(&Handshake::Proof { proof }),
            )
            .await
            .map_err(|e| e.to_string())
        }
        Handshake::Refused { reason } => Err(format!("node {peer} refused: {reason}")),
        other => Err(format!("expected a challenge, got {other:?}")),
    }
}

async fn accept_loop(
    setup: Arc<PeerSetup>,
    listener: TcpListener,
    inbound: BTreeMap<NodeId, mpsc::Sender<TcpStream>>,
) {
    loop {
        let Ok((mut stream, addr)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let setup = setup.clone();
        let inbound = inbound.clone();
        tokio::spawn(async move {
            match accept_handshake(&setup, &mut stream).await {
                Ok(from) => {
                    tracing::info!(peer = from, %addr, "peer connected");
                    if let Some(link) = inbound.get(&from) {
                        let _ = link.send(stream).await;
                    }
                }
                Err(reason) => {
                    tracing::warn!(%addr, %reason, "peer connection refused");
                }
            }
        });
    }
}

/// Keeps one connection to `peer` up, and carries messages both ways over it; while there is
/// none, what is queued for the peer is dropped. Ends (`None`) when the node stops.
async fn link(
    setup: Arc<PeerSetup>,
    peer: NodeId,
    mut queue: QueueReceiver,
    mut inbound: mpsc::Receiver<TcpStream>,
    events: mpsc::UnboundedSender<Event>,
) -> Option<()> {
    let dials = setup.id < peer;
    let addr = setup.peers[&peer];
    let mut backoff = RECONNECT_MIN;
    let mut next: Option<TcpStream> = None;
    loop {
        let stream = match next.take() {
            Some(stream) => stream,
            None if dials => {
                let connected = queue
                    .drop_while(tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        TcpStream::connect(addr),
                    ))
                    .await?;
                let mut stream = match connected {
                    Ok(Ok(stream)) => stream,
                    _ => {
                        queue.drop_while(tokio::time::sleep(backoff)).await?;
                        backoff = (backoff * 2).min(RECONNECT_MAX);
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                if let Err(reason) = dial_handshake(&setup, peer, &mut stream).await {
                    tracing::warn!(peer, %addr, %reason, "peer handshake failed");
                    queue.drop_while(tokio::time::sleep(backoff)).await?;
                    backoff = (backoff * 2).min(RECONNECT_MAX);
                    continue;
                }
                tracing::info!(peer, %addr, "connected to peer");
                stream
            }
            None => match queue.drop_while(inbound.recv()).await? {
                Some(stream) => stream,
                None => return None,
            },
        };
        backoff = RECONNECT_MIN;
        // A generic split (madsim's TcpStream has no into_split).
        let (read_half, mut write_half) = tokio::io::split(stream);
        let reader_events = events.clone();
        let mut reader = tokio::spawn(async move {
            let mut frames = FrameReader {
                stream: read_half,
                buf: BytesMut::new(),
            };
            loop {
                let payload = match frames.next(IDLE_TIMEOUT).await {
                    Ok(payload) => payload,
                    Err(reason) => return reason,
                };
                match codec::decode_message(&payload) {
                    Ok(message) => {
                        if reader_events
                            .send(Event::Peer {
                                from: peer,
                                message,
                            })
                            .is_err()
                        {
                            return "the node is stopping".to_string();
                        }
                    }
                    Err(e) => return format!("undecodable message: {e}"),
                }
            }
        });
        let mut out = Vec::new();
        let reason = loop {
            tokio::select! {
                ended = &mut reader => break ended.unwrap_or_else(|e| e.to_string()),
                message = queue.recv() => {
                    let message = message?;
                    out.clear();
                    codec::encode_message_frame(&message, &mut out);
                    // Whatever else is queued goes in the same write.
                    while out.len() < WRITE_BATCH_BYTES_MAX {
                        let Some(message) = queue.try_recv() else { break };
                        codec::encode_message_frame(&message, &mut out);
                    }
                    if let Err(e) = write_frames(&mut write_half, &out).await {
                        break format!("write failed: {e}");
                    }
                    if out.capacity() > BUFFER_KEPT_BYTES_MAX {
                        // A large message passed: do not keep its memory for small ones.
                        out = Vec::new();
                    }
                }
                replacement = inbound.recv(), if !dials => {
                    // The peer connected again (it restarted): the new connection wins.
                    next = replacement;
                    break "replaced by a new connection".to_string();
                }
            }
        };
        reader.abort();
        tracing::info!(peer, %reason, "peer connection closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        codec::encode_peer_frame(payload, &mut out);
        out
    }

    #[test]
    fn frames_come_out_whole_and_in_order_however_the_bytes_arrive() {
        let mut stream = frame(b"first");
        stream.extend(frame(b""));
        stream.extend(frame(&[7u8; 300]));
        for split in 0..stream.len() {
            let mut buf = BytesMut::new();
            let mut payloads = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                buf.extend_from_slice(part);
                while let Some(payload) = codec::take_peer_frame(&mut buf).unwrap() {
                    payloads.push(payload.to_vec());
                }
            }
            assert_eq!(payloads, [b"first".to_vec(), vec![], vec![7u8; 300]]);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn an_oversized_length_is_refused_before_its_bytes_arrive() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(PEER_FRAME_BYTES_MAX as u32 + 1).to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        let error = codec::take_peer_frame(&mut buf).unwrap_err();
        assert!(error.contains("over the limit"), "{error}");
    }

    #[test]
    fn a_damaged_frame_fails_its_checksum() {
        let mut bytes = frame(b"payload");
        *bytes.last_mut().unwrap() ^= 1;
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(
            codec::take_peer_frame(&mut buf).unwrap_err(),
            "frame checksum mismatch"
        );
    }
}
