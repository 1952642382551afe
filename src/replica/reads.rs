//! Linearizable reads by read-index.
//!
//! On the leader: once an entry of its term is committed, a round records the commit index and
//! sends a heartbeat carrying the round's number. It goes first only to as many followers as
//! make a majority with the leader (those that answered the newest rounds), and to all of them
//! if the round is still unconfirmed a few milliseconds later. When a majority (the leader
//! included) has answered that heartbeat in this term, nobody else can have been leader
//! meanwhile with a newer commit, and every read of the round may be served once the index is
//! applied. One round is in flight at a time; reads arriving meanwhile wait for the next, so
//! one heartbeat serves many reads. A follower asks the leader for an index (`ReadIndex`),
//! then serves the reads itself once it applied it.

use super::seq_map::SeqMap;
use super::{ClientId, Message, NodeId, Op, Replica, Request, Response, Role, db_index};
use crate::command::{Command, CommandId};
use crate::keyspace::ExecContext;
use crate::log::WatchedKey;
use crate::resp::Frame;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// How long a read round waits for the followers it went to before it goes to all of them:
/// well above a round trip under load, well below a heartbeat interval. It is checked at
/// ticks, so the wait is this or up to a tick longer.
const READ_ROUND_BROADCAST_AFTER_MS: u64 = 5;

struct PendingRead {
    request: Request,
    deadline_ms: u64,
}

struct Round {
    id: u64,
    /// When it started, and whether its heartbeat went to every follower (at first it goes to
    /// just enough of them).
    started_ms: u64,
    broadcast: bool,
    index: u64,
    local: Vec<u64>,
    remote: Vec<(NodeId, u64)>,
}

struct Ask {
    sent_at_ms: u64,
    reads: Vec<u64>,
}

#[derive(Default)]
pub(super) struct Reads {
    /// Every read not answered yet, by number; deadlines grow with the number. The other
    /// collections hold numbers, and skip those no longer here.
    pending: SeqMap<PendingRead>,
    next_no: u64,
    /// Reads waiting to join a round (leader) or an ask (follower).
    unsent: Vec<u64>,
    /// Followers' asks waiting to join a round.
    remote_unsent: Vec<(NodeId, u64)>,
    rounds: VecDeque<Round>,
    /// The newest round started; every append carries it.
    pub round_started: u64,
    asks: BTreeMap<u64, Ask>,
    /// Starts at a random number at each start: an answer to an ask of an earlier life of
    /// this replica (still in flight when it crashed) must not match a new ask.
    pub next_ctx: u64,
    /// (index, read): served once the index is applied.
    ready: BTreeSet<(u64, u64)>,
}

impl Reads {
    pub(super) fn mark_rounds_broadcast(&mut self) {
        for round in &mut self.rounds {
            round.broadcast = true;
        }
    }
}

impl Replica {
    pub(super) fn dispatch_read(&mut self, request: Request) {
        if cfg!(feature = "bug-read-without-read-index") {
            // BUG (mutation check): serve from whatever this replica has applied.
            self.serve_read(request);
            return;
        }
        if self.is_single_voter() && self.leader_committed_in_term() {
            // Read-index with a majority of one: the commit index is current (this term's
            // no-op is committed), it is applied (a single voter applies as it commits), and
            // the confirming round is this replica alone. Serve now.
            debug_assert_eq!(self.applied_index, self.commit_index);
            self.serve_read(request);
            return;
        }
        let reads = &mut self.reads;
        reads.next_no += 1;
        let no = reads.next_no;
        reads.pending.insert(
            no,
            PendingRead {
                request,
                deadline_ms: self.now_ms + self.config.request_timeout_ms,
            },
        );
        reads.unsent.push(no);
    }

    /// Starts a round (leader) or asks the leader (follower) for the reads waiting.
    pub(super) fn flush_reads(&mut self) {
        match self.role {
            Role::Leader => {
                let waiting = !self.reads.unsent.is_empty() || !self.reads.remote_unsent.is_empty();
                if waiting && self.reads.rounds.is_empty() && self.leader_committed_in_term() {
                    self.reads.round_started += 1;
                    let round = Round {
                        id: self.reads.round_started,
                        started_ms: self.now_ms,
                        broadcast: false,
                        index: self.commit_index,
                        local: std::mem::take(&mut self.reads.unsent),
                        remote: std::mem::take(&mut self.reads.remote_unsent),
                    };
                    self.reads.rounds.push_back(round);
                    self.send_read_round();
                    self.check_read_rounds();
                }
            }
            Role::Follower => {
                let Some(leader) = self.leader else {
                    return;
                };
                if self.reads.unsent.is_empty() {
                    return;
                }
                self.reads.next_ctx += 1;
                let ctx = self.reads.next_ctx;
                let ask = Ask {
                    sent_at_ms: self.now_ms,
                    reads: std::mem::take(&mut self.reads.unsent),
                };
                self.reads.asks.insert(ctx, ask);
                let term = self.hard.term;
                self.send(leader, Message::ReadIndex { term, ctx });
            }
            Role::PreCandidate | Role::Candidate => {}
        }
    }

    /// A read round still unconfirmed [`READ_ROUND_BROADCAST_AFTER_MS`] after it started (a
    /// follower it went to is slow, down, or lost the message): its heartbeat goes to every
    /// follower.
    pub(super) fn rebroadcast_late_read_rounds(&mut self) {
        let now_ms = self.now_ms;
        let late = self.reads.rounds.iter().any(|round| {
            !round.broadcast && now_ms >= round.started_ms + READ_ROUND_BROADCAST_AFTER_MS
        });
        if late {
            // The newest round number goes out, covering every round started before it.
            self.replicate_to_all(true);
        }
    }

    /// A majority answered heartbeats of these rounds: their reads may go.
    pub(super) fn check_read_rounds(&mut self) {
        let Some(leader) = self.leader_state.as_ref() else {
            return;
        };
        let majority = self.majority();
        let mut confirmed = Vec::new();
        for round in &self.reads.rounds {
            let acks = 1 + leader
                .peers
                .values()
                .filter(|p| p.acked_round >= round.id)
                .count();
            if acks < majority {
                break;
            }
            confirmed.push(round.id);
        }
        for _ in confirmed {
            let round = self.reads.rounds.pop_front().unwrap();
            if round.index <= self.applied_index {
                // The usual case on a leader, which applies as it commits: serve at once
                // (after any reads of earlier rounds still waiting), without queueing.
                self.serve_ready_reads();
                for no in round.local {
                    if let Some(read) = self.reads.pending.remove(no) {
                        self.serve_read(read.request);
                    }
                }
            } else {
                for no in round.local {
                    self.reads.ready.insert((round.index, no));
                }
            }
            for (from, ctx) in round.remote {
                self.answer_read_index(from, ctx, Some(round.index));
            }
        }
        self.serve_ready_reads();
    }

    pub(super) fn on_read_index(&mut self, from: NodeId, ctx: u64) {
        if self.role == Role::Leader {
            self.reads.remote_unsent.push((from, ctx));
        } else {
            self.answer_read_index(from, ctx, None);
        }
    }

    /// Answers a follower's ask: the index to serve its reads at, or `None` ("not the
    /// leader": it asks again, of whoever leads).
    fn answer_read_index(&mut self, from: NodeId, ctx: u64, index: Option<u64>) {
        let term = self.hard.term;
        self.send(from, Message::ReadIndexReply { term, ctx, index });
    }

    pub(super) fn on_read_index_reply(&mut self, ctx: u64, index: Option<u64>) {
        let Some(ask) = self.reads.asks.remove(&ctx) else {
            return; // A duplicate, or an ask given up on.
        };
        match index {
            Some(index) => {
                for no in ask.reads {
                    self.reads.ready.insert((index, no));
                }
                self.serve_ready_reads();
            }
            None => self.reads.unsent.extend(ask.reads),
        }
    }

    /// The leader changed or this replica stopped leading: reads waiting on a round or an ask
    /// go back to wait for the next leader; followers' asks are answered "not the leader".
    pub(super) fn reads_on_leader_change(&mut self) {
        let mut back = Vec::new();
        for round in std::mem::take(&mut self.reads.rounds) {
            back.extend(round.local);
            for (from, ctx) in round.remote {
                self.answer_read_index(from, ctx, None);
            }
        }
        for (from, ctx) in std::mem::take(&mut self.reads.remote_unsent) {
            self.answer_read_index(from, ctx, None);
        }
        for (_, ask) in std::mem::take(&mut self.reads.asks) {
            back.extend(ask.reads);
        }
        back.extend(std::mem::take(&mut self.reads.unsent));
        back.sort_unstable();
        self.reads.unsent = back;
    }

    pub(super) fn serve_ready_reads(&mut self) {
        while let Some(&(index, no)) = self.reads.ready.first() {
            if index > self.applied_index {
                break;
            }
            self.reads.ready.pop_first();
            if let Some(read) = self.reads.pending.remove(no) {
                self.serve_read(read.request);
            }
        }
    }

    /// Answers the reads whose time is up, and asks again for those whose ask got no answer
    /// within an election timeout (the message or the leader may be gone).
    pub(super) fn expire_reads(&mut self) {
        let now_ms = self.now_ms;
        let expired: Vec<u64> = self
            .reads
            .pending
            .iter()
            .take_while(|(_, r)| r.deadline_ms <= now_ms)
            .map(|(no, _)| no)
            .collect();
        let expired_any = !expired.is_empty();
        for no in expired {
            let read = self.reads.pending.remove(no).unwrap();
            let error = if self.leader.is_some() {
                "TRYAGAIN the leader did not confirm the read in time; it was not served"
            } else {
                "CLUSTERDOWN no leader is reachable; the read was not served"
            };
            let Request { client, id, .. } = read.request;
            self.reply(client, id, Response::Frame(Frame::error(error)));
        }
        let stale: Vec<u64> = self
            .reads
            .asks
            .iter()
            .filter(|(_, ask)| {
                now_ms.saturating_sub(ask.sent_at_ms) >= self.config.election_timeout_ms
            })
            .map(|(ctx, _)| *ctx)
            .collect();
        let requeued = !stale.is_empty();
        for ctx in stale {
            let ask = self.reads.asks.remove(&ctx).unwrap();
            self.reads.unsent.extend(ask.reads);
        }
        // Drop the numbers of reads answered meanwhile (skipped anyway, but not carried):
        // only when some were, since this runs at every tick.
        if expired_any || requeued {
            self.reads
                .unsent
                .retain(|no| self.reads.pending.contains_key(*no));
        }
    }

    fn serve_read(&mut self, request: Request) {
        // Reads never see a time before the last applied entry's.
        let now_ms = self.now_ms.max(self.applied_ts_ms);
        let response = match request.op {
            Op::Command { db, cmd } => {
                let ctx = ExecContext {
                    db: db_index(db),
                    now_ms,
                    version: 0,
                };
                let reply = self.keyspace.execute(&cmd, ctx, &mut self.rng);
                self.count_hit_or_miss(&cmd, &reply);
                Response::Frame(reply)
            }
            Op::Watch { db, keys } => Response::Watched(
                keys.into_iter()
                    .map(|key| WatchedKey {
                        db,
                        version: self.keyspace.version_of(db_index(db), &key, now_ms),
                        key,
                    })
                    .collect(),
            ),
            Op::Transaction { commands, watches } => {
                let argvs: Vec<_> = commands.into_iter().map(|(db, c)| (db, c.argv)).collect();
                Response::Frame(self.run_transaction(&watches, &argvs, now_ms, 0))
            }
            Op::Wait { .. } => unreachable!("WAIT is not a read"),
        };
        let client: ClientId = request.client;
        self.reply(client, request.id, response);
    }

    fn count_hit_or_miss(&mut self, cmd: &Command, reply: &Frame) {
        if cmd.id() == CommandId::Get {
            match reply {
                Frame::Null => self.stats.keyspace_misses += 1,
                _ => self.stats.keyspace_hits += 1,
            }
        }
    }

    /// Reads waiting, for the invariants and the harness.
    pub fn pending_reads(&self) -> usize {
        self.reads.pending.len()
    }
}
