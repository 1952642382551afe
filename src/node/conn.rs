//! Client connections: accept, read, decode, hand requests to the session and the core, and
//! write the replies back in request order. One task per connection; it reads a batch (every
//! complete request in its buffer, which is how pipelining arrives), waits for that batch's
//! replies, writes them with one flush, and reads again.

use super::Event;
use super::server::{self, ClientInfo, Shared};
use crate::command::CommandId;
use crate::replica::{Op, Response};
use crate::resp::{self, Frame, Limits, Protocol, ProtocolError};
use crate::session::{Action, HelloInfo, Session};
use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// Most requests taken from one read before their replies are written.
const BATCH_REQUESTS_MAX: usize = 1024;

/// Most requests whose batch buffers a connection keeps for its next batch.
const BATCH_BUFFERS_KEPT_MAX: usize = 64;

static HELLO: HelloInfo = HelloInfo {
    server: "quorum",
    version: server::REDIS_COMPAT_VERSION,
    mode: "standalone",
    role: "master",
};

/// Accepts connections until `stop` fires; then takes every connection already waiting in the
/// listen backlog (closing the listener would reset them, and their clients may have sent a
/// request already), and returns, closing the listener.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Event>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut stopping = false;
    loop {
        let accepted = if stopping {
            match tokio::time::timeout(Duration::from_millis(5), listener.accept()).await {
                Ok(accepted) => accepted,
                Err(_) => {
                    // The backlog looks empty; but a connection that arrived just now may not
                    // have reached the event loop yet, and closing the listener would reset
                    // it: a client whose request was never read would see an error. Take
                    // what the kernel holds, without waiting.
                    #[cfg(not(madsim))]
                    if let Ok(listener) = listener.into_std() {
                        let _ = listener.set_nonblocking(true);
                        while let Ok((stream, addr)) = listener.accept() {
                            let _ = stream.set_nonblocking(true);
                            if let Ok(stream) = TcpStream::from_std(stream) {
                                spawn_connection(stream, addr, &shared, &events);
                            }
                        }
                    }
                    return;
                }
            }
        } else {
            tokio::select! {
                accepted = listener.accept() => accepted,
                _ = &mut stop => {
                    stopping = true;
                    continue;
                }
            }
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        spawn_connection(stream, addr, &shared, &events);
    }
}

/// Serves one accepted connection on a task of its own.
fn spawn_connection(
    stream: TcpStream,
    addr: SocketAddr,
    shared: &Arc<Shared>,
    events: &mpsc::UnboundedSender<Event>,
) {
    shared
        .stats
        .connections_received
        .fetch_add(1, Ordering::Relaxed);
    let shared = shared.clone();
    let events = events.clone();
    shared.open_connections.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        /// Counts the connection closed however its task ends.
        struct Open(Arc<Shared>);
        impl Drop for Open {
            fn drop(&mut self) {
                self.0.open_connections.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _open = Open(shared.clone());
        let mut stream = stream;
        if shared.connected_clients() >= shared.live.maxclients.load(Ordering::Relaxed) {
            shared
                .stats
                .connections_rejected
                .fetch_add(1, Ordering::Relaxed);
            let _ = stream
                .write_all(b"-ERR max number of clients reached\r\n")
                .await;
            let _ = stream.flush().await;
            return;
        }
        let _ = stream.set_nodelay(true);
        serve(stream, addr, shared, events).await;
    });
}

/// One slot of a batch's replies, in request order.
enum Slot {
    Ready(Frame),
    /// Waits for the core's response to this request id.
    Core(u64),
    /// A server command, answered when the batch is written.
    Server(crate::command::Command),
}

async fn serve(
    mut stream: TcpStream,
    addr: SocketAddr,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Event>,
) {
    let id = shared.next_client_id();
    let now = Instant::now();
    let info = Arc::new(Mutex::new(ClientInfo {
        id,
        addr,
        laddr: stream.local_addr().unwrap_or(shared.local_addr),
        name: None,
        db: 0,
        resp: 2,
        connected_at: now,
        last_active: now,
        last_command: "NULL",
        multi: None,
        query_buffer_bytes: 0,
    }));
    shared.clients.lock().unwrap().insert(id, info.clone());
    let (replies_tx, mut replies_rx) = mpsc::unbounded_channel();
    if events
        .send(Event::Connected {
            client: id,
            replies: replies_tx,
        })
        .is_ok()
    {
        let mut conn = Connection {
            session: Session::with_password(id, shared.config.requirepass.clone()),
            shared: shared.clone(),
            events: events.clone(),
            info,
            buf: BytesMut::with_capacity(16 * 1024),
            parser: resp::RequestParser::default(),
            out: Vec::with_capacity(16 * 1024),
            slots: Vec::new(),
            responses: Vec::new(),
        };
        if let Err(reason) = conn.run(&mut stream, &mut replies_rx).await {
            tracing::debug!(client = id, %addr, reason, "connection closed");
        }
    }
    let _ = events.send(Event::Disconnected { client: id });
    shared.clients.lock().unwrap().remove(&id);
}

struct Connection {
    session: Session,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Event>,
    info: Arc<Mutex<ClientInfo>>,
    buf: BytesMut,
    parser: resp::RequestParser,
    out: Vec<u8>,
    /// The batch's reply slots, and the core's responses by request, kept between batches
    /// (cleared) so that a batch allocates neither.
    slots: Vec<(Slot, Protocol)>,
    responses: Vec<Option<Response>>,
}

impl Connection {
    fn limits(&self) -> Limits {
        Limits {
            bulk_len_max: self.shared.config.proto_max_bulk_len,
            ..Limits::default()
        }
    }

    async fn run(
        &mut self,
        stream: &mut TcpStream,
        replies: &mut mpsc::UnboundedReceiver<Vec<(u64, Response)>>,
    ) -> Result<(), String> {
        loop {
            let (close, protocol_error, need_more) = self.take_batch();
            if !self.slots.is_empty() {
                self.answer(replies).await?;
            }
            if let Some(error) = protocol_error {
                let frame = Frame::error(format!("ERR Protocol error: {error}"));
                resp::encode(&frame, self.session.protocol, &mut self.out);
                self.flush(stream).await?;
                return Err(format!("protocol error: {error}"));
            }
            self.flush(stream).await?;
            if close {
                return Ok(());
            }
            if need_more {
                self.read_more(stream).await?;
            }
        }
    }

    async fn read_more(&mut self, stream: &mut TcpStream) -> Result<(), String> {
        let limit = self
            .shared
            .live
            .client_query_buffer_limit
            .load(Ordering::Relaxed);
        if self.buf.len() >= limit {
            tracing::warn!(
                client = self.session.id,
                bytes = self.buf.len(),
                "closing a client whose query buffer reached client-query-buffer-limit"
            );
            return Err("query buffer limit".into());
        }
        self.buf.reserve(16 * 1024);
        let timeout_s = self.shared.live.timeout_s.load(Ordering::Relaxed);
        let read = stream.read_buf(&mut self.buf);
        let n = if timeout_s > 0 {
            match tokio::time::timeout(Duration::from_secs(timeout_s), read).await {
                Ok(result) => result,
                Err(_) => return Err("idle timeout".into()),
            }
        } else {
            read.await
        }
        .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed by the client".into());
        }
        self.shared
            .stats
            .net_input_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Decodes every complete request in the buffer (up to a bound) and turns each into a
    /// reply slot in `self.slots`. Returns whether to close after answering, a protocol error,
    /// and whether the buffer ends in an incomplete request (read more before the next batch).
    fn take_batch(&mut self) -> (bool, Option<ProtocolError>, bool) {
        let limits = self.limits();
        let mut slots = std::mem::take(&mut self.slots);
        debug_assert!(slots.is_empty(), "the last batch was answered");
        let mut requests = Vec::new();
        let mut close = false;
        let mut error = None;
        let mut need_more = false;
        while slots.len() < BATCH_REQUESTS_MAX && !close {
            let argv = match self.parser.parse(&self.buf, &limits) {
                Ok(Some((argv, used))) => {
                    self.buf.advance(used);
                    argv
                }
                Ok(None) => {
                    need_more = true;
                    break;
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            };
            if argv.is_empty() {
                continue;
            }
            let action = self.session.handle(argv, &HELLO);
            // Each reply is encoded in the protocol in force when its command ran (HELLO may
            // switch it halfway through a pipeline).
            let protocol = self.session.protocol;
            match action {
                Action::Reply(frame) => slots.push((Slot::Ready(frame), protocol)),
                Action::ReplyAndClose(frame) => {
                    slots.push((Slot::Ready(frame), protocol));
                    close = true;
                }
                Action::Core(request) => {
                    // WATCH's versions must be known before anything after it runs (an EXEC
                    // in the same pipeline carries them), so the batch ends here.
                    let watch = matches!(request.op, Op::Watch { .. });
                    slots.push((Slot::Core(request.id), protocol));
                    requests.push(request);
                    if watch {
                        break;
                    }
                }
                Action::Server(cmd) => slots.push((Slot::Server(cmd), protocol)),
            }
        }
        if !requests.is_empty() {
            // The core loop is gone only when the node is stopping.
            let _ = self.events.send(Event::Requests(requests));
        }
        self.slots = slots;
        (close, error, need_more)
    }

    /// Waits for the core's responses to the batch in `self.slots`, then encodes every reply
    /// in order.
    async fn answer(
        &mut self,
        replies: &mut mpsc::UnboundedReceiver<Vec<(u64, Response)>>,
    ) -> Result<(), String> {
        let mut slots = std::mem::take(&mut self.slots);
        let mut responses = std::mem::take(&mut self.responses);
        // The session numbers a connection's core requests consecutively: a response's place
        // in the batch is its id less the first one's.
        let core_ids = || {
            slots.iter().filter_map(|(s, _)| match s {
                Slot::Core(id) => Some(*id),
                _ => None,
            })
        };
        let first_id = core_ids().next().unwrap_or(0);
        let mut missing = core_ids().count();
        responses.clear();
        responses.resize(missing, None);
        while missing > 0 {
            let Some(batch) = replies.recv().await else {
                return Err("the core loop stopped".into());
            };
            for (id, response) in batch {
                let at = (id - first_id) as usize;
                assert!(responses[at].is_none(), "one response per request");
                responses[at] = Some(response);
                missing -= 1;
            }
        }
        let mut next_response = responses.drain(..);
        for (slot, protocol) in slots.drain(..) {
            let frame = match slot {
                Slot::Ready(frame) => frame,
                Slot::Core(_) => {
                    let response = next_response
                        .next()
                        .flatten()
                        .expect("every response arrived");
                    self.session.on_response(response)
                }
                Slot::Server(cmd) => {
                    let snapshot = if matches!(cmd.id(), CommandId::Info | CommandId::Role) {
                        self.core_snapshot().await
                    } else {
                        None
                    };
                    server::handle(&cmd, &mut self.session, &self.shared, snapshot.as_ref())
                }
            };
            resp::encode(&frame, protocol, &mut self.out);
            if self.out.len() > self.shared.config.client_output_buffer_limit {
                // A client that pipelines requests for more than it reads would make this
                // buffer grow without bound: disconnect it instead, as Redis's
                // client-output-buffer-limit does.
                tracing::warn!(
                    client = self.session.id,
                    bytes = self.out.len(),
                    limit = self.shared.config.client_output_buffer_limit,
                    "closing a client over the output buffer limit"
                );
                return Err("output buffer limit reached".into());
            }
        }
        drop(next_response);
        // Keep the buffers of ordinary batches; not those of a huge pipeline.
        if slots.capacity() <= BATCH_BUFFERS_KEPT_MAX {
            self.slots = slots;
            self.responses = responses;
        }
        self.update_info();
        Ok(())
    }

    async fn core_snapshot(&self) -> Option<server::CoreSnapshot> {
        let (tx, rx) = oneshot::channel();
        self.events.send(Event::Snapshot(tx)).ok()?;
        rx.await.ok()
    }

    fn update_info(&self) {
        let mut info = self.info.lock().unwrap();
        info.last_active = Instant::now();
        info.db = self.session.db;
        info.name = self.session.name.clone();
        info.resp = if self.session.protocol == Protocol::Resp3 {
            3
        } else {
            2
        };
        info.last_command = self.session.last_command;
        info.query_buffer_bytes = self.buf.len();
        info.multi = self.session.in_multi().then_some(0);
    }

    async fn flush(&mut self, stream: &mut TcpStream) -> Result<(), String> {
        if self.out.is_empty() {
            return Ok(());
        }
        stream
            .write_all(&self.out)
            .await
            .map_err(|e| e.to_string())?;
        stream.flush().await.map_err(|e| e.to_string())?;
        self.shared
            .stats
            .net_output_bytes
            .fetch_add(self.out.len() as u64, Ordering::Relaxed);
        // Do not keep a huge buffer around after one big reply.
        if self.out.capacity() > 1024 * 1024 {
            self.out = Vec::with_capacity(16 * 1024);
        } else {
            self.out.clear();
        }
        Ok(())
    }
}
