//! Elections: randomized timeouts from the seeded RNG, pre-vote, votes persisted before they
//! are sent, check-quorum's lease, and leader transfer's `TimeoutNow`.

use super::{Message, NodeId, Replica, Role, VOTE_FOR_NO_ONE};
use crate::log::EntryPayload;

impl Replica {
    pub(super) fn reset_election_deadline(&mut self) {
        let base = self.config.election_timeout_ms;
        self.election_deadline_ms = self.now_ms + base + self.election_rng.below(base);
    }

    pub(super) fn on_election_tick(&mut self) {
        if let Some(recovery) = self.recovering.as_mut() {
            // Not caught up: it must not campaign. It asks what the others hold, every election
            // timeout whether or not a leader is heard (a leader's word alone does not end a
            // recovery), and again and again, since what they hold changes (a replica that
            // answered may lose data later, and then says it is recovering).
            if self.now_ms >= recovery.next_probe_ms {
                recovery.next_probe_ms = self.now_ms + self.config.election_timeout_ms;
                let term = self.hard.term;
                for peer in self.peers() {
                    self.send(peer, Message::Probe { term });
                }
            }
            if self.now_ms >= self.election_deadline_ms {
                self.reset_election_deadline();
            }
            return;
        }
        if self.role == Role::Leader || self.now_ms < self.election_deadline_ms {
            return;
        }
        if self.is_single_voter() {
            self.campaign(false);
        } else {
            self.pre_campaign();
        }
    }

    /// Asks for pre-votes in the next term without moving to it.
    fn pre_campaign(&mut self) {
        self.role = Role::PreCandidate;
        self.votes = vec![self.config.id];
        self.reset_election_deadline();
        let message = Message::PreVote {
            term: self.hard.term + 1,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        };
        for peer in self.peers() {
            self.send(peer, message.clone());
        }
    }

    /// Moves to the next term and asks for votes. The candidate's own vote, and its requests,
    /// wait for the hard state to be durable.
    pub(super) fn campaign(&mut self, transfer: bool) {
        self.stats.elections_started += 1;
        let was_leader = self.leader.take();
        self.hard.term += 1;
        self.hard.vote = Some(self.config.id);
        self.hard_state_dirty = true;
        self.role = Role::Candidate;
        self.leader_state = None;
        self.votes = Vec::new();
        self.reset_election_deadline();
        if was_leader.is_some() {
            self.on_leader_lost();
        }
        let message = Message::Vote {
            term: self.hard.term,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            transfer,
        };
        for peer in self.peers() {
            self.send_when_durable(peer, message.clone());
        }
    }

    /// After a `Persisted`: a candidate whose vote for itself is now durable counts it.
    pub(super) fn on_own_vote_durable(&mut self) {
        if self.role == Role::Candidate
            && self.durable_hard.term == self.hard.term
            && self.durable_hard.vote == Some(self.config.id)
            && !self.votes.contains(&self.config.id)
        {
            self.votes.push(self.config.id);
            self.check_election_won();
        }
    }

    /// Ends a recovery (see `Recovery`) whose conditions hold.
    pub(super) fn check_caught_up(&mut self) {
        let Some(recovery) = &self.recovering else {
            return;
        };
        // Both ways out need the probes' answer: it is what moved this replica past any term
        // it may have voted in (a stale leader's word alone could end it in an old term).
        let Some(best) = recovery.best else {
            return;
        };
        let fenced = self.durable_hard == self.hard;
        let caught_up = recovery.target.is_some_and(|t| self.persisted_index >= t);
        let durable_log = (self.log.last_term(), self.persisted_index);
        let as_good = self.persisted_index == self.log.last_index() && durable_log >= best;
        if fenced && (caught_up || as_good) {
            self.recovering = None;
        }
    }

    /// Whether a recovering replica may vote for a candidate with this log (see `Recovery`).
    fn recovery_allows_vote(&self, last_index: u64, last_term: u64) -> bool {
        match &self.recovering {
            None => true,
            Some(recovery) => recovery
                .best
                .is_some_and(|best| (last_term, last_index) >= best),
        }
    }

    fn on_probe_reply(&mut self, from: NodeId, term: u64, last: (u64, u64), recovering: bool) {
        let needed = self.config.voters.len().div_ceil(2);
        let others = self.config.voters.len() - 1;
        let Some(recovery) = self.recovering.as_mut() else {
            return;
        };
        // The latest answer of each replica counts; each time they make a quorum, the best
        // log and the fence are worked out again from them.
        recovery.probed.insert(from, (term, last, recovering));
        // Replicas recovering too may have lost the same entries: they count only when every
        // other replica answered (a power loss that tore every node's last write).
        let sound = recovery.probed.values().filter(|(_, _, r)| !r).count();
        if sound < needed && recovery.probed.len() < others {
            return;
        }
        let highest = recovery
            .probed
            .values()
            .map(|(t, _, _)| *t)
            .max()
            .unwrap_or(0);
        let best = recovery
            .probed
            .values()
            .map(|(_, l, _)| *l)
            .max()
            .unwrap_or((0, 0));
        recovery.best = Some(best);
        let term = highest.max(self.hard.term);
        if term > self.hard.term {
            self.become_follower(term, None);
            // A leader matched in an older term does not count.
            if let Some(recovery) = self.recovering.as_mut() {
                recovery.target = None;
            }
        }
        if self.hard.vote.is_none() {
            self.hard.vote = Some(VOTE_FOR_NO_ONE);
            self.hard_state_dirty = true;
        }
        self.check_caught_up();
    }

    fn check_election_won(&mut self) {
        if self.role == Role::Candidate && self.votes.len() >= self.majority() {
            self.become_leader();
        }
    }

    fn become_leader(&mut self) {
        assert_eq!(self.hard.vote, Some(self.config.id));
        self.role = Role::Leader;
        self.leader = Some(self.config.id);
        self.leader_contact_ms = None;
        self.leader_state = Some(super::replication::LeaderState::new(
            self.peers(),
            self.log.last_index(),
            self.now_ms,
            self.config.election_timeout_ms,
        ));
        // The no-op commits the entries of earlier terms with it, and lets reads be served:
        // without it, a new leader cannot know its commit index is current.
        if !cfg!(feature = "bug-no-noop") {
            self.propose_noop();
        }
        self.reads_on_leader_change();
        self.reroute_writes(true);
    }

    pub(super) fn propose_noop(&mut self) {
        let index = self.append_entry(None, std::sync::Arc::new(EntryPayload::Noop));
        self.leader_state.as_mut().unwrap().noop_index = index;
    }

    /// Follows `leader` (if known) in `term`, which is not older than the current term.
    pub(super) fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        assert!(term >= self.hard.term, "terms never go back");
        if term > self.hard.term {
            self.hard.term = term;
            self.hard.vote = None;
            self.hard_state_dirty = true;
        }
        let was_leader = self.role == Role::Leader;
        self.role = Role::Follower;
        self.leader_state = None;
        self.votes.clear();
        if self.leader != leader || was_leader {
            self.leader = leader;
            self.on_leader_lost();
            if leader.is_some() {
                self.reroute_writes(true);
            }
        }
    }

    /// Whatever waited on the old leader is sent again, or waits for the next.
    fn on_leader_lost(&mut self) {
        self.reads_on_leader_change();
        for write in self.clients.writes.values_mut() {
            write.sent_at_ms = None;
        }
    }

    /// Whether this replica heard from a live leader within an election timeout (or leads):
    /// it then refuses to help start an election.
    fn in_lease(&self) -> bool {
        self.role == Role::Leader
            || (self.leader.is_some()
                && self.leader_contact_ms.is_some_and(|at| {
                    self.now_ms.saturating_sub(at) < self.config.election_timeout_ms
                }))
    }

    fn log_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        (last_term, last_index) >= (self.log.last_term(), self.log.last_index())
    }

    pub(super) fn on_message(&mut self, from: NodeId, message: Message) {
        if from == self.config.id || !self.config.voters.contains(&from) {
            return; // Not a member: dropped.
        }
        match message {
            Message::PreVote {
                term,
                last_index,
                last_term,
            } => {
                let granted = term > self.hard.term
                    && self.recovery_allows_vote(last_index, last_term)
                    && !self.in_lease()
                    && self.log_up_to_date(last_index, last_term);
                let term = if granted { term } else { self.hard.term };
                self.send(from, Message::PreVoteReply { term, granted });
            }
            Message::PreVoteReply { term, granted } => {
                if self.role == Role::PreCandidate && granted && term == self.hard.term + 1 {
                    if !self.votes.contains(&from) {
                        self.votes.push(from);
                    }
                    if self.votes.len() >= self.majority() {
                        self.campaign(false);
                    }
                } else if !granted && term > self.hard.term {
                    self.become_follower(term, None);
                }
            }
            Message::Vote {
                term,
                last_index,
                last_term,
                transfer,
            } => self.on_vote(from, term, last_index, last_term, transfer),
            Message::VoteReply { term, granted } => {
                if term > self.hard.term {
                    self.become_follower(term, None);
                } else if self.role == Role::Candidate && term == self.hard.term && granted {
                    if !self.votes.contains(&from) {
                        self.votes.push(from);
                    }
                    self.check_election_won();
                }
            }
            Message::TimeoutNow { term } => {
                if term == self.hard.term && self.leader == Some(from) && self.recovering.is_none()
                {
                    self.campaign(true);
                }
            }
            Message::Append {
                term,
                prev_index,
                prev_term,
                entries,
                commit,
                read_round,
                held_by_all,
            } => {
                // A fact about durable logs when it was sent, whatever the sender's term: a
                // stale leader's figure is as true as a current one's.
                self.held_by_all = self.held_by_all.max(held_by_all);
                self.on_append(
                    from, term, prev_index, prev_term, entries, commit, read_round,
                )
            }
            Message::AppendReply {
                term,
                outcome,
                read_round,
            } => self.on_append_reply(from, term, outcome, read_round),
            Message::ReadIndex { term, ctx } => {
                if term > self.hard.term {
                    // A follower of a newer leader: this replica is stale.
                    self.become_follower(term, None);
                }
                self.on_read_index(from, ctx)
            }
            Message::ReadIndexReply { term, ctx, index } => {
                let index = index.filter(|_| term == self.hard.term);
                self.on_read_index_reply(ctx, index)
            }
            Message::Forward { proposals, .. } => self.on_forward(proposals),
            Message::Probe { .. } => {
                let reply = Message::ProbeReply {
                    term: self.hard.term,
                    last_index: self.log.last_index(),
                    last_term: self.log.last_term(),
                    recovering: self.recovering.is_some(),
                };
                self.send(from, reply);
            }
            Message::ProbeReply {
                term,
                last_index,
                last_term,
                recovering,
            } => self.on_probe_reply(from, term, (last_term, last_index), recovering),
        }
    }

    fn on_vote(
        &mut self,
        from: NodeId,
        term: u64,
        last_index: u64,
        last_term: u64,
        transfer: bool,
    ) {
        if term < self.hard.term {
            let term = self.hard.term;
            self.send(
                from,
                Message::VoteReply {
                    term,
                    granted: false,
                },
            );
            return;
        }
        if term > self.hard.term {
            if self.in_lease() && !transfer {
                return; // The leader is alive: ignore a disruptive candidate.
            }
            self.become_follower(term, None);
        }
        let granted = self.recovery_allows_vote(last_index, last_term)
            && self.hard.vote.is_none_or(|v| v == from)
            && self.log_up_to_date(last_index, last_term);
        if granted {
            if self.hard.vote.is_none() {
                self.hard.vote = Some(from);
                self.hard_state_dirty = true;
            }
            self.reset_election_deadline();
        }
        let term = self.hard.term;
        self.send_when_durable(from, Message::VoteReply { term, granted });
    }

    pub(super) fn peers(&self) -> Vec<NodeId> {
        self.config
            .voters
            .iter()
            .copied()
            .filter(|v| *v != self.config.id)
            .collect()
    }
}
