//! Client requests inside the core: per-connection ordering, the writes this replica took and
//! has not answered yet, WAIT, and the replies.
//!
//! Order per connection: Redis answers a connection's commands in order, and a read sees the
//! connection's earlier writes. Consecutive writes of one connection are in flight together
//! (their log order is their arrival order), and so are consecutive reads; a read behind a
//! write waits for the write's reply, and a write behind a read for the read's.

use super::seq_map::SeqMap;
use super::{ClientId, Op, Request, Response};
use crate::log::EntryPayload;
use crate::resp::Frame;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::Output;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Read,
    Write,
    /// WAIT: waits for everything before it, and everything after waits for it.
    Barrier,
}

struct ClientQueue {
    kind: Kind,
    in_flight: u32,
    queued: VecDeque<(Kind, Request)>,
}

/// A write this replica took from a client, until its entry is applied or its time is up.
pub(super) struct PendingWrite {
    pub client: ClientId,
    pub id: u64,
    pub deadline_ms: u64,
    /// Kept to send it again; `None` once a single voter appended it (nobody else could
    /// ever need it).
    pub payload: Option<Arc<EntryPayload>>,
    /// When it was last proposed or forwarded; `None` when it waits to be (again).
    pub sent_at_ms: Option<u64>,
    /// Whether it ever left this replica's hands: if so, its outcome may be unknown.
    pub ever_sent: bool,
}

pub(super) struct PendingWait {
    pub client: ClientId,
    pub id: u64,
    pub target_index: u64,
    pub replicas: u64,
    pub deadline_ms: Option<u64>,
}

/// How often connection queues with nothing in them are dropped, in ms of the core's clock.
const IDLE_QUEUES_DROPPED_EVERY_MS: u64 = 1000;

#[derive(Default)]
pub(super) struct Clients {
    /// A queue stays when its connection goes idle (a busy connection would otherwise remove
    /// and insert it at every batch); idle ones are dropped every
    /// [`IDLE_QUEUES_DROPPED_EVERY_MS`], so closed connections do not accumulate.
    queues: BTreeMap<ClientId, ClientQueue>,
    idle_queues_dropped_at_ms: u64,
    /// Requests a reply let through, for the replica to dispatch.
    released: Vec<(Kind, Request)>,
    next_seq: u64,
    /// By proposal sequence number; deadlines grow with it.
    pub writes: SeqMap<PendingWrite>,
    pub waits: Vec<PendingWait>,
    pending: usize,
}

impl Clients {
    /// Takes a request: `Some` if it may run now, `None` if it waits behind its connection's
    /// requests of another kind.
    pub fn admit(&mut self, kind: Kind, request: Request) -> Option<Request> {
        self.pending += 1;
        let queue = self
            .queues
            .entry(request.client)
            .or_insert_with(|| ClientQueue {
                kind,
                in_flight: 0,
                queued: VecDeque::new(),
            });
        let joins = queue.queued.is_empty()
            && (queue.in_flight == 0 || (queue.kind == kind && kind != Kind::Barrier));
        if joins {
            queue.kind = kind;
            queue.in_flight += 1;
            Some(request)
        } else {
            queue.queued.push_back((kind, request));
            None
        }
    }

    pub fn has_released(&self) -> bool {
        !self.released.is_empty()
    }

    /// Requests released by replies since the last call.
    pub fn take_released(&mut self) -> Vec<(Kind, Request)> {
        std::mem::take(&mut self.released)
    }

    /// Every reply to a request goes through here.
    pub fn reply(
        &mut self,
        client: ClientId,
        id: u64,
        response: Response,
        outputs: &mut VecDeque<Output>,
    ) {
        outputs.push_back(Output::Reply {
            client,
            id,
            response,
        });
        self.pending -= 1;
        let queue = self
            .queues
            .get_mut(&client)
            .expect("a reply to a request that was admitted");
        assert!(queue.in_flight > 0, "one reply per request");
        queue.in_flight -= 1;
        // The last in flight answered: the requests queued behind it go, the whole run of
        // the next kind (one barrier alone).
        if queue.in_flight == 0
            && let Some(&(kind, _)) = queue.queued.front()
        {
            queue.kind = kind;
            while queue.queued.front().is_some_and(|(k, _)| *k == kind) {
                self.released.push(queue.queued.pop_front().unwrap());
                queue.in_flight += 1;
                if kind == Kind::Barrier {
                    break;
                }
            }
        }
    }

    /// Drops the queues of connections with nothing in flight, at most once per
    /// [`IDLE_QUEUES_DROPPED_EVERY_MS`].
    pub fn drop_idle_queues(&mut self, now_ms: u64) {
        if now_ms < self.idle_queues_dropped_at_ms + IDLE_QUEUES_DROPPED_EVERY_MS {
            return;
        }
        self.idle_queues_dropped_at_ms = now_ms;
        self.queues
            .retain(|_, queue| queue.in_flight > 0 || !queue.queued.is_empty());
    }

    pub fn new_write(
        &mut self,
        client: ClientId,
        id: u64,
        payload: EntryPayload,
        deadline_ms: u64,
    ) -> u64 {
        self.next_seq += 1;
        self.writes.insert(
            self.next_seq,
            PendingWrite {
                client,
                id,
                deadline_ms,
                payload: Some(Arc::new(payload)),
                sent_at_ms: None,
                ever_sent: false,
            },
        );
        self.next_seq
    }

    /// The entry of write `seq` was applied here, with this result.
    pub fn complete_write(&mut self, seq: u64, response: Response, outputs: &mut VecDeque<Output>) {
        if let Some(write) = self.writes.remove(seq) {
            self.reply(write.client, write.id, response, outputs);
        }
    }

    pub fn fail_write(&mut self, seq: u64, error: Frame, outputs: &mut VecDeque<Output>) {
        self.complete_write(seq, Response::Frame(error), outputs);
    }

    /// Writes forwarded longer ago than `interval_ms` and still not applied are sent again
    /// (the message or the leader may be gone; the state machine drops a second copy).
    pub fn retry_forwarding(&mut self, now_ms: u64, interval_ms: u64) {
        for write in self.writes.values_mut() {
            if write
                .sent_at_ms
                .is_some_and(|at| now_ms.saturating_sub(at) >= interval_ms)
            {
                write.sent_at_ms = None;
            }
        }
    }

    /// Answers the writes whose time is up: `-CLUSTERDOWN` if they never left this replica
    /// (definite), `-UNKNOWN` otherwise.
    pub fn expire_writes(&mut self, now_ms: u64, outputs: &mut VecDeque<Output>) {
        let expired: Vec<u64> = self
            .writes
            .iter()
            .take_while(|(_, w)| w.deadline_ms <= now_ms)
            .map(|(seq, _)| seq)
            .collect();
        for seq in expired {
            let write = self.writes.remove(seq).unwrap();
            let error = if write.ever_sent {
                Frame::error(
                    "UNKNOWN the write was proposed but not committed in time (no leader, or no majority); it may or may not take effect",
                )
            } else {
                Frame::error("CLUSTERDOWN no leader is reachable; the write was not executed")
            };
            self.reply(write.client, write.id, Response::Frame(error), outputs);
        }
    }

    /// Requests taken and not answered yet.
    pub fn pending(&self) -> usize {
        self.pending
    }

    pub fn check_invariants(&self) -> Result<(), String> {
        let in_queues: usize = self
            .queues
            .values()
            .map(|q| q.in_flight as usize + q.queued.len())
            .sum();
        if in_queues != self.pending {
            return Err(format!(
                "{} requests pending but {in_queues} in the connection queues",
                self.pending
            ));
        }
        let mut previous_deadline = 0;
        for write in self.writes.values() {
            if write.deadline_ms < previous_deadline {
                return Err("write deadlines out of order".into());
            }
            previous_deadline = write.deadline_ms;
        }
        Ok(())
    }
}

/// Which kind of request this is, for per-connection ordering and routing.
pub(super) fn kind_of(op: &Op) -> Kind {
    use crate::command::Route;
    match op {
        Op::Command { cmd, .. } if cmd.spec.route == Route::Write => Kind::Write,
        Op::Transaction { commands, .. }
            if commands.iter().any(|(_, c)| c.spec.route == Route::Write) =>
        {
            Kind::Write
        }
        Op::Wait { .. } => Kind::Barrier,
        _ => Kind::Read,
    }
}

use super::{ENTRY_BYTES_MAX, Proposal, Replica, Role, payload_bytes};
use crate::keyspace;
use crate::log::Origin;

impl Replica {
    pub(super) fn on_request(&mut self, request: Request) {
        self.stats.commands_processed += 1;
        let kind = kind_of(&request.op);
        if let Some(request) = self.clients.admit(kind, request) {
            self.dispatch(kind, request);
        }
        self.after_client_replies();
    }

    /// Dispatches the requests that replies let through, until none is left.
    pub(super) fn after_client_replies(&mut self) {
        loop {
            let released = self.clients.take_released();
            if released.is_empty() {
                return;
            }
            for (kind, request) in released {
                self.dispatch(kind, request);
            }
        }
    }

    fn dispatch(&mut self, kind: Kind, request: Request) {
        match kind {
            Kind::Read => self.dispatch_read(request),
            Kind::Write => self.dispatch_write(request),
            Kind::Barrier => self.dispatch_wait(request),
        }
    }

    fn dispatch_write(&mut self, request: Request) {
        let payload = match request.op {
            Op::Command { db, cmd } => {
                if let Err(error) = keyspace::check_write(&cmd) {
                    self.reply(request.client, request.id, Response::Frame(error));
                    return;
                }
                EntryPayload::Command { db, argv: cmd.argv }
            }
            Op::Transaction { commands, watches } => EntryPayload::Transaction {
                watches,
                commands: commands
                    .into_iter()
                    .map(|(db, cmd)| (db, cmd.argv))
                    .collect(),
            },
            Op::Watch { .. } | Op::Wait { .. } => unreachable!("not a write"),
        };
        if payload_bytes(&payload) > ENTRY_BYTES_MAX {
            let error = Frame::error("ERR the write is too large for one WAL record (4 GB)");
            self.reply(request.client, request.id, Response::Frame(error));
            return;
        }
        let deadline_ms = self.now_ms + self.config.request_timeout_ms;
        let seq = self
            .clients
            .new_write(request.client, request.id, payload, deadline_ms);
        self.route_write(seq);
    }

    /// Where a write goes now: into this leader's log, to the leader, or nowhere yet.
    fn route_write(&mut self, seq: u64) {
        let here = self.role == Role::Leader && !self.transferring();
        let leader = self.leader.filter(|l| *l != self.config.id);
        if !here && leader.is_none() {
            return;
        }
        let write = self.clients.writes.get_mut(seq).unwrap();
        write.sent_at_ms = Some(self.now_ms);
        write.ever_sent = true;
        let payload = if self.config.voters.len() == 1 {
            write.payload.take()
        } else {
            write.payload.clone()
        };
        let Some(payload) = payload else {
            return; // A single voter's write, in its log already.
        };
        let origin = Origin {
            node: self.config.id,
            incarnation: self.incarnation,
            seq,
        };
        if here {
            self.append_entry(Some(origin), payload);
        } else {
            self.to_forward.push(Proposal { origin, payload });
        }
    }

    /// Routes the writes that wait to be sent (`all`: every unapplied write, as when the
    /// leader changed and what was sent may be lost).
    pub(super) fn reroute_writes(&mut self, all: bool) {
        let seqs: Vec<u64> = self
            .clients
            .writes
            .iter()
            .filter(|(_, w)| all || w.sent_at_ms.is_none())
            .map(|(seq, _)| seq)
            .collect();
        for seq in seqs {
            self.route_write(seq);
        }
    }

    fn dispatch_wait(&mut self, request: Request) {
        let Op::Wait {
            replicas,
            timeout_ms,
        } = request.op
        else {
            unreachable!("not a WAIT");
        };
        self.clients.waits.push(PendingWait {
            client: request.client,
            id: request.id,
            target_index: self.log.last_index(),
            replicas,
            deadline_ms: (timeout_ms > 0).then(|| self.now_ms + timeout_ms),
        });
        self.check_waits();
    }

    /// How many other replicas are known to hold the log up to `index`, and whether waiting
    /// can raise that count.
    fn replicas_holding(&self, index: u64) -> (u64, bool) {
        match &self.leader_state {
            Some(leader) => {
                let holding = leader.peers.values().filter(|p| p.match_index >= index);
                (holding.count() as u64, true)
            }
            // A follower knows only what a commit guarantees: the connection's writes were
            // answered, so committed, so on a majority.
            None => ((self.majority() - 1) as u64, false),
        }
    }

    /// Answers the WAITs that are satisfied or whose time is up.
    pub(super) fn check_waits(&mut self) {
        if self.clients.waits.is_empty() {
            return;
        }
        let waits = std::mem::take(&mut self.clients.waits);
        for wait in waits {
            let (holding, may_grow) = self.replicas_holding(wait.target_index);
            let timed_out = wait.deadline_ms.is_some_and(|d| d <= self.now_ms);
            if holding >= wait.replicas || timed_out || !may_grow {
                self.reply(
                    wait.client,
                    wait.id,
                    Response::Frame(Frame::Integer(holding as i64)),
                );
            } else {
                self.clients.waits.push(wait);
            }
        }
    }

    pub(super) fn on_applied_for_wait(&mut self) {
        self.check_waits();
    }

    pub(super) fn expire_requests(&mut self) {
        self.clients.expire_writes(self.now_ms, &mut self.outputs);
        self.expire_reads();
        self.check_waits();
        self.after_client_replies();
    }

    pub(super) fn reply(&mut self, client: ClientId, id: u64, response: Response) {
        self.clients.reply(client, id, response, &mut self.outputs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_request(client: ClientId, id: u64) -> Request {
        Request {
            client,
            id,
            op: Op::Wait {
                replicas: 0,
                timeout_ms: 0,
            },
        }
    }

    #[test]
    fn an_idle_connection_keeps_its_queue_until_the_next_drop_of_idle_queues() {
        let mut clients = Clients::default();
        let mut outputs = VecDeque::new();
        for client in [1, 2] {
            let admitted = clients.admit(Kind::Read, wait_request(client, 1));
            assert!(
                admitted.is_some(),
                "an idle connection's request runs at once"
            );
        }
        clients.reply(1, 1, Response::Frame(Frame::ok()), &mut outputs);
        assert_eq!(outputs.len(), 1);
        assert_eq!(
            clients.queues.len(),
            2,
            "client 1's idle queue stays for its next batch"
        );
        clients.check_invariants().unwrap();

        // Not yet a period since the last drop: nothing goes.
        clients.drop_idle_queues(IDLE_QUEUES_DROPPED_EVERY_MS - 1);
        assert_eq!(clients.queues.len(), 2);
        // A period later the idle queue goes; client 2's, with a request in flight, stays.
        clients.drop_idle_queues(IDLE_QUEUES_DROPPED_EVERY_MS);
        assert_eq!(clients.queues.keys().copied().collect::<Vec<_>>(), vec![2]);
        // An idle queue that went comes back with the connection's next request.
        assert!(clients.admit(Kind::Read, wait_request(1, 2)).is_some());
        assert_eq!(clients.pending(), 2);
        clients.check_invariants().unwrap();
    }
}
