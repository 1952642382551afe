//! Log replication: the leader's view of each follower, appends with pipelining and batching,
//! conflict repair with fast back-off, commit on a majority's fsync, check-quorum, leader
//! transfer, and forwarded writes.

use super::catch_up::CatchUpWindow;
use super::{AppendOutcome, Message, NodeId, Output, Proposal, Replica, Role};
use crate::log::LogEntry;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// What the leader knows of one follower.
#[derive(Debug)]
pub(super) struct Progress {
    /// The follower's log matches the leader's, durably, up to here.
    pub match_index: u64,
    /// The next entry to send.
    pub next_index: u64,
    /// The last index of each append sent and not answered yet.
    pub in_flight: VecDeque<u64>,
    /// The newest read round the follower answered in this term, and when it first did (in
    /// [`LeaderState::round_answers`]): of followers equally up to date, the one that got there
    /// first answers faster.
    pub acked_round: u64,
    pub acked_round_at: u64,
    /// Heard from since the last check-quorum.
    pub active: bool,
    /// While it lacks what memory dropped and the piece read back does not cover it: when the
    /// next empty append (refused, but it tells the follower who leads) may go to it. Once a
    /// heartbeat interval, not at every commit (each refusal costs a message both ways).
    pub placeholder_due_ms: u64,
    /// It refused an append, and has accepted none since: one append at a time goes to it
    /// until one is accepted. Several in flight would each be refused, and each refusal would
    /// send several more (a storm, when a full send queue drops some of them).
    pub probing: bool,
    /// It refused an append that assumed it holds everything this leader dropped from memory
    /// (its disk lost entries, or it was away while the memory bound dropped them): it is
    /// sent entries read back from the WAL ([`LeaderState::catch_up`]) until it holds what
    /// memory has, or is silent for an election timeout.
    pub lacks_compacted: bool,
}

pub(super) struct LeaderState {
    pub peers: BTreeMap<NodeId, Progress>,
    /// This term's no-op (0 until proposed).
    pub noop_index: u64,
    pub heartbeat_due_ms: u64,
    pub check_quorum_due_ms: u64,
    /// Counts answers that moved a follower's `acked_round` forward.
    pub round_answers: u64,
    /// Leader transfer in progress: to whom, until when.
    pub transfer: Option<(NodeId, u64)>,
    /// The newest commit index sent to every follower.
    pub commit_announced: u64,
    /// The last entry sent to any follower.
    pub sent_through: u64,
    /// The piece of the log read back from the WAL last, for the followers that lack what
    /// memory dropped: at most about half of `log_memory_bytes_max`, and let go of as they
    /// acknowledge it. The next piece is read for the follower furthest behind once it has
    /// been sent all of this one (see `send_appends`).
    pub catch_up: Option<CatchUpWindow>,
}

impl LeaderState {
    /// The least of `of` over the followers that lack what memory dropped.
    fn min_over_lacking(&self, of: impl Fn(&Progress) -> u64) -> Option<u64> {
        self.peers
            .values()
            .filter(|p| p.lacks_compacted)
            .map(of)
            .min()
    }

    pub fn new(peers: Vec<NodeId>, last_index: u64, now_ms: u64, election_ms: u64) -> Self {
        LeaderState {
            peers: peers
                .into_iter()
                .map(|p| {
                    (
                        p,
                        Progress {
                            match_index: 0,
                            next_index: last_index + 1,
                            in_flight: VecDeque::new(),
                            acked_round: 0,
                            acked_round_at: 0,
                            active: false,
                            placeholder_due_ms: 0,
                            probing: false,
                            lacks_compacted: false,
                        },
                    )
                })
                .collect(),
            noop_index: 0,
            round_answers: 0,
            heartbeat_due_ms: now_ms,
            check_quorum_due_ms: now_ms + election_ms,
            transfer: None,
            commit_announced: 0,
            sent_through: 0,
            catch_up: None,
        }
    }
}

impl Replica {
    /// Sends every follower what it lacks; with `heartbeat`, every follower gets a message
    /// even if it lacks nothing (and one whose appends may be lost is probed again).
    pub(super) fn replicate_to_all(&mut self, heartbeat: bool) {
        if heartbeat {
            // Every message carries the newest read round: it went to every follower.
            self.reads.mark_rounds_broadcast();
        }
        for peer in self.peers() {
            self.send_appends(peer, heartbeat);
        }
    }

    /// Sends a new read round's heartbeat to just enough followers to make a majority with
    /// this leader: those that answered the newest rounds, and of those equally up to date, the
    /// first to answer (the most responsive). A read round needs nothing from the others, and
    /// each message costs a wake-up on both ends. Should one of them not answer, the round goes
    /// to every follower a few milliseconds later ([`Replica::rebroadcast_late_read_rounds`]).
    pub(super) fn send_read_round(&mut self) {
        let needed = self.majority() - 1;
        let leader = self.leader_state.as_ref().unwrap();
        let mut peers: Vec<(std::cmp::Reverse<u64>, u64, NodeId)> = leader
            .peers
            .iter()
            .map(|(id, p)| (std::cmp::Reverse(p.acked_round), p.acked_round_at, *id))
            .collect();
        peers.sort_unstable();
        for (_, _, peer) in peers.into_iter().take(needed) {
            self.send_appends(peer, true);
        }
    }

    fn send_appends(&mut self, peer: NodeId, heartbeat: bool) {
        let mut sent_any = false;
        loop {
            let last_index = self.log.last_index();
            let leader = self.leader_state.as_mut().unwrap();
            // The follower furthest behind among those that lack what memory dropped.
            let trailing_next = leader.min_over_lacking(|p| p.next_index);
            let progress = leader.peers.get_mut(&peer).unwrap();
            progress.next_index = progress.next_index.min(last_index + 1);
            let unsent = last_index + 1 - progress.next_index;
            // A follower that is keeping up has one append in flight: the entries proposed
            // meanwhile wait for its answer and then go out together, as one message and one
            // fsync on the follower instead of one per step of this leader. Under load that
            // saves the cluster CPU per write (fewer wake-ups, system calls and fsyncs on
            // every node: see the README's benchmark notes), and it adds little latency, since
            // the follower is busy with the first append anyway. A lost append now waits for
            // the next heartbeat's probe. A follower that is behind by a full append or more
            // gets several in flight, so catching up is not held to one round trip per append.
            let in_flight_max = if progress.probing {
                1
            } else {
                self.config.appends_in_flight_max
            };
            let room = progress.in_flight.len() < in_flight_max
                && (progress.in_flight.is_empty()
                    || unsent >= self.config.append_entries_max as u64);
            let has_entries = unsent > 0;
            if !(room && has_entries) && (sent_any || !heartbeat) {
                return;
            }
            let prev_index = progress.next_index - 1;
            let compacted = self.log.compacted_index();
            // What it lacks comes from memory, or from the piece read back from the WAL.
            let window = leader.catch_up.as_ref().filter(|w| w.covers(prev_index));
            if prev_index < compacted {
                if !progress.lacks_compacted {
                    // Every replica held what this leader dropped from memory: assume this
                    // one still does (a refusal says otherwise).
                    progress.next_index = compacted + 1;
                    continue;
                }
                if window.is_none() {
                    // Only the WAL has what it lacks. One piece serves every follower that
                    // lacks what memory dropped: it is read for the one furthest behind (the
                    // others wait until it reaches them, then share its pieces: pieces read
                    // for each in turn would replace each other), and once that one has
                    // acknowledged the appends in flight from the piece it was sent (a lost
                    // one would need that piece read again).
                    let trailing = trailing_next.is_some_and(|next| progress.next_index <= next);
                    let acks_due = !progress.in_flight.is_empty()
                        && leader.catch_up.as_ref().is_some_and(|w| {
                            w.last_index() == prev_index && progress.match_index < prev_index
                        });
                    if trailing && !acks_due {
                        self.request_log_read(prev_index);
                    }
                    // Meanwhile an empty append still goes out once a heartbeat interval, from
                    // the first entry in memory: refused, it still tells the follower who
                    // leads.
                    let leader = self.leader_state.as_mut().unwrap();
                    let progress = leader.peers.get_mut(&peer).unwrap();
                    if !sent_any && heartbeat && self.now_ms >= progress.placeholder_due_ms {
                        progress.placeholder_due_ms =
                            self.now_ms + self.config.heartbeat_interval_ms;
                        let prev_term = self.log.term_at(compacted).unwrap();
                        self.send_append(peer, compacted, prev_term, Vec::new());
                    }
                    return;
                }
            }
            let window = window.filter(|_| prev_index < compacted);
            let entries: Vec<Arc<LogEntry>> = if room && has_entries {
                // From the window, up to its end; the next append goes on from memory, or
                // from the next piece.
                let end = window.map_or(last_index, |w| w.last_index().min(compacted));
                let to = end.min(prev_index + self.config.append_entries_max as u64);
                progress.next_index = to + 1;
                progress.in_flight.push_back(to);
                leader.sent_through = leader.sent_through.max(to);
                match window {
                    Some(window) => window.slice(prev_index + 1, to),
                    None => self.log.slice(prev_index + 1, to),
                }
            } else {
                Vec::new()
            };
            let prev_term = match window {
                Some(window) => window.term_at(prev_index),
                None => self.log.term_at(prev_index),
            }
            .expect("a leader holds its log from its compacted index on, and the window its own");
            self.send_append(peer, prev_index, prev_term, entries);
            sent_any = true;
        }
    }

    fn send_append(
        &mut self,
        peer: NodeId,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Arc<LogEntry>>,
    ) {
        let message = Message::Append {
            term: self.hard.term,
            prev_index,
            prev_term,
            entries,
            commit: self.commit_index,
            read_round: self.reads.round_started,
            held_by_all: self.held_by_all,
        };
        self.send(peer, message);
    }

    /// Asks the adapter for the next piece of the WAL's entries after `prev_index` (up to the
    /// compacted index, and half the memory bound), unless a read is under way (or failed
    /// less than a heartbeat ago).
    fn request_log_read(&mut self, prev_index: u64) {
        if self.log_read.is_some() || self.now_ms < self.log_read_after_ms {
            return;
        }
        self.log_read = Some(prev_index);
        self.outputs.push_back(Output::ReadLog {
            from: prev_index.max(1),
            to: self.log.compacted_index(),
            bytes_max: self.config.log_memory_bytes_max / 2,
        });
    }

    /// Entries read back from the WAL: the next piece for the followers that lack what
    /// memory dropped, which are sent it at once. A read that came back wrong, or is no
    /// longer needed, is dropped (and one that failed is not asked again for a heartbeat
    /// interval).
    pub(super) fn on_log_read(&mut self, entries: Vec<Arc<LogEntry>>) {
        let Some(prev_index) = self.log_read.take() else {
            return;
        };
        let compacted = self.log.compacted_index();
        if self.role != Role::Leader || prev_index >= compacted {
            return;
        }
        let wanted = self
            .leader_state
            .as_ref()
            .is_some_and(|leader| leader.peers.values().any(|p| p.lacks_compacted));
        if !wanted {
            // The follower it was for went silent meanwhile (the bound may have moved the
            // compacted index on since): not a failed read, just one nobody needs now.
            return;
        }
        // From `from` on, one index after another, at least one entry after `prev_index`,
        // none past the compacted index, and the same entry there as memory's.
        let from = prev_index.max(1);
        let last = entries.last().map_or(0, |e| e.index);
        let sound = entries.first().is_some_and(|e| e.index == from)
            && entries.iter().zip(from..).all(|(e, i)| e.index == i)
            && last > prev_index
            && last <= compacted
            && (last < compacted
                || entries.last().unwrap().term == self.log.term_at(compacted).unwrap());
        if !sound {
            self.stats.log_reads_failed += 1;
            self.log_read_after_ms = self.now_ms + self.config.heartbeat_interval_ms;
            return;
        }
        let prev_term = if prev_index == 0 { 0 } else { entries[0].term };
        let piece = entries
            .into_iter()
            .filter(|e| e.index > prev_index)
            .collect();
        let leader = self.leader_state.as_mut().unwrap();
        leader.catch_up = Some(CatchUpWindow::new(prev_index, prev_term, piece));
        self.stats.log_reads += 1;
        let waiting: Vec<NodeId> = leader
            .peers
            .iter()
            .filter(|(_, p)| p.lacks_compacted)
            .map(|(id, _)| *id)
            .collect();
        for peer in waiting {
            self.send_appends(peer, false);
        }
    }

    /// Lets go of the piece read back from the WAL as far as every follower that lacked it
    /// holds it, and of all of it once none lacks anything memory dropped.
    fn release_catch_up(&mut self) {
        let compacted = self.log.compacted_index();
        let leader = self.leader_state.as_mut().unwrap();
        let needed_after = leader.min_over_lacking(|p| p.match_index);
        match needed_after {
            None => leader.catch_up = None,
            Some(index) => {
                if let Some(window) = leader.catch_up.as_mut() {
                    window.release_to(index.min(compacted));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_append(
        &mut self,
        from: NodeId,
        term: u64,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Arc<LogEntry>>,
        commit: u64,
        read_round: u64,
    ) {
        if term < self.hard.term {
            // A stale leader: tell it the term, so it steps down.
            let term = self.hard.term;
            let outcome = AppendOutcome::StaleTerm;
            self.send(
                from,
                Message::AppendReply {
                    term,
                    outcome,
                    read_round,
                },
            );
            return;
        }
        if term > self.hard.term || self.role != Role::Follower || self.leader != Some(from) {
            assert!(
                !(term == self.hard.term && self.role == Role::Leader),
                "two leaders in term {term}"
            );
            self.become_follower(term, Some(from));
        }
        self.leader_contact_ms = Some(self.now_ms);
        self.reset_election_deadline();
        let outcome = match self.log.term_at(prev_index) {
            None if prev_index > self.log.last_index() => AppendOutcome::Rejected {
                prev_index,
                hint_index: self.log.last_index() + 1,
            },
            None => {
                // Before what this replica holds in memory: applied, so it matches.
                self.accept_entries(prev_index, entries, commit)
            }
            Some(t) if t != prev_term => {
                assert!(
                    prev_index > self.commit_index,
                    "a committed entry ({prev_index}) conflicts with the leader's"
                );
                AppendOutcome::Rejected {
                    prev_index,
                    hint_index: self.log.first_index_of_term_at(prev_index),
                }
            }
            Some(_) => self.accept_entries(prev_index, entries, commit),
        };
        let reply = Message::AppendReply {
            term: self.hard.term,
            outcome: outcome.clone(),
            read_round,
        };
        match outcome {
            AppendOutcome::Accepted { match_index }
                if match_index > self.persisted_index
                    && !cfg!(feature = "bug-ack-before-fsync") =>
            {
                self.send_when_durable(from, reply)
            }
            _ => self.send(from, reply),
        }
    }

    /// Appends the entries after `prev_index` that this log lacks, replacing a conflicting
    /// suffix, and follows the leader's commit as far as the log is known to match.
    fn accept_entries(
        &mut self,
        prev_index: u64,
        entries: Vec<Arc<LogEntry>>,
        leader_commit: u64,
    ) -> AppendOutcome {
        let match_index = prev_index + entries.len() as u64;
        for entry in entries {
            match self.log.term_at(entry.index) {
                Some(term) if term == entry.term => continue,
                None if entry.index < self.log.first_index() => continue,
                Some(_) => self.truncate_log_from(entry.index),
                None => {}
            }
            assert_eq!(entry.index, self.log.last_index() + 1);
            self.last_ts_ms = self.last_ts_ms.max(entry.ts_ms);
            self.to_persist.push(entry.clone());
            self.log.push(entry);
        }
        let commit = leader_commit.min(match_index);
        if commit > self.commit_index {
            self.commit_index = commit;
            self.apply_committed();
        }
        if let Some(recovery) = self.recovering.as_mut()
            && recovery.target.is_none()
            && recovery.best.is_some()
            && match_index >= leader_commit
            && self.log.term_at(leader_commit) == Some(self.hard.term)
        {
            // This log now matches the leader's through everything it had committed, and that
            // reaches an entry of the leader's own term, so everything committed in earlier
            // terms too (a new leader's commit index lags until its no-op commits).
            recovery.target = Some(leader_commit);
            self.check_caught_up();
        }
        AppendOutcome::Accepted { match_index }
    }

    pub(super) fn on_append_reply(
        &mut self,
        from: NodeId,
        term: u64,
        outcome: AppendOutcome,
        read_round: u64,
    ) {
        if term > self.hard.term {
            self.become_follower(term, None);
            return;
        }
        if self.role != Role::Leader || term != self.hard.term {
            return;
        }
        let leader = self.leader_state.as_mut().unwrap();
        let progress = leader.peers.get_mut(&from).unwrap();
        progress.active = true;
        // A stale-term refusal answers a message of an earlier term, perhaps sent by this
        // replica's previous life, whose round numbers mean nothing now: it confirms no round.
        if read_round > progress.acked_round && outcome != AppendOutcome::StaleTerm {
            progress.acked_round = read_round;
            leader.round_answers += 1;
            progress.acked_round_at = leader.round_answers;
        }
        match outcome {
            AppendOutcome::Accepted { match_index } => {
                if match_index > progress.match_index {
                    progress.match_index = match_index;
                    progress.next_index = progress.next_index.max(match_index + 1);
                }
                progress.in_flight.retain(|last| *last > match_index);
                progress.probing = false;
                // It holds everything memory dropped: what it lacks is in memory.
                if progress.lacks_compacted && progress.match_index >= self.log.compacted_index() {
                    progress.lacks_compacted = false;
                }
                self.release_catch_up();
                self.advance_commit();
                self.check_waits();
                self.continue_transfer();
            }
            AppendOutcome::Rejected {
                prev_index,
                hint_index,
            } if prev_index >= progress.match_index => {
                if hint_index <= progress.match_index {
                    // The follower lacks entries it acknowledged as durable: its disk lost
                    // them (or this answer is older than its acknowledgements). Believe the
                    // hint: lowering a match never lowers the commit index, and the repair
                    // then converges instead of probing the same index forever.
                    progress.match_index = hint_index - 1;
                }
                // Try again from the hint (never before what is known to match), one append
                // at a time until one is accepted.
                progress.next_index = hint_index.min(prev_index).max(progress.match_index + 1);
                progress.probing = true;
                let compacted = self.log.compacted_index();
                if progress.next_index <= compacted {
                    if prev_index <= compacted {
                        // It refused even the first entry in memory: it lacks what was dropped
                        // before (its disk lost it, or it was away past the memory bound).
                        progress.lacks_compacted = true;
                    } else {
                        // A hint into what was dropped from memory (the first index of a term
                        // that began there, say): first try from the first entry in memory,
                        // which costs a round trip, not a read of the WAL.
                        progress.next_index = compacted + 1;
                    }
                }
                progress.in_flight.clear();
                self.send_appends(from, false);
            }
            // Stale (it matched further since), or a refusal of an earlier term's message.
            AppendOutcome::Rejected { .. } | AppendOutcome::StaleTerm => {}
        }
        self.check_read_rounds();
    }

    /// Commits the newest entry of this term that a majority has fsynced (the leader counts
    /// what it fsynced itself).
    pub(super) fn advance_commit(&mut self) {
        let Some(leader) = self.leader_state.as_ref() else {
            return;
        };
        #[cfg(not(feature = "bug-ack-before-fsync"))]
        let own = self.persisted_index;
        #[cfg(feature = "bug-ack-before-fsync")]
        let own = self.log.last_index();
        let mut matches: Vec<u64> = leader.peers.values().map(|p| p.match_index).collect();
        matches.push(own);
        matches.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matches[self.majority() - 1];
        // Only entries of the current term are committed by counting (Raft §5.4.2); earlier
        // ones commit with them.
        if candidate > self.commit_index && self.log.term_at(candidate) == Some(self.hard.term) {
            self.commit_index = candidate;
            self.apply_committed();
        }
    }

    pub(super) fn leader_committed_in_term(&self) -> bool {
        self.leader_state
            .as_ref()
            .is_some_and(|l| l.noop_index > 0 && self.commit_index >= l.noop_index)
            || (cfg!(feature = "bug-no-noop") && self.role == Role::Leader)
    }

    /// A single voter whose no-op was taken back (a full disk) proposes another.
    pub(super) fn noop_pending_proposal(&self) -> bool {
        self.leader_state
            .as_ref()
            .is_some_and(|l| l.noop_index == 0)
            && !cfg!(feature = "bug-no-noop")
    }

    pub(super) fn on_leader_tick(&mut self) {
        let now_ms = self.now_ms;
        let election_ms = self.config.election_timeout_ms;
        let majority = self.majority();
        let leader = self.leader_state.as_mut().unwrap();
        let mut unflagged = false;
        if now_ms >= leader.check_quorum_due_ms {
            // Check-quorum: a leader that a majority has not answered within an election
            // timeout steps down, so a partitioned leader stops taking writes and reads.
            let active = 1 + leader.peers.values().filter(|p| p.active).count();
            for progress in leader.peers.values_mut() {
                // A follower silent for an election timeout (down again, or cut off) no
                // longer holds the piece read back for it in memory: should it return, it is
                // refused and read for again.
                if !progress.active && progress.lacks_compacted {
                    progress.lacks_compacted = false;
                    unflagged = true;
                }
                progress.active = false;
            }
            leader.check_quorum_due_ms = now_ms + election_ms;
            if active < majority {
                let term = self.hard.term;
                self.become_follower(term, None);
                return;
            }
        }
        if unflagged {
            self.release_catch_up();
        }
        let leader = self.leader_state.as_mut().unwrap();
        if leader
            .transfer
            .is_some_and(|(_, deadline_ms)| now_ms >= deadline_ms)
        {
            leader.transfer = None;
            self.reroute_writes(false);
        }
        let leader = self.leader_state.as_mut().unwrap();
        if now_ms >= leader.heartbeat_due_ms {
            leader.heartbeat_due_ms = now_ms + self.config.heartbeat_interval_ms;
            // Appends in flight for a whole heartbeat interval may be lost: probe again
            // from what is known to match.
            for progress in leader.peers.values_mut() {
                if !progress.in_flight.is_empty() {
                    progress.in_flight.clear();
                    progress.next_index = progress.match_index + 1;
                }
            }
            self.replicate_to_all(true);
        }
    }

    pub(super) fn on_transfer_leader(&mut self, to: NodeId) {
        if self.role != Role::Leader || to == self.config.id || !self.config.voters.contains(&to) {
            return;
        }
        let deadline_ms = self.now_ms + self.config.election_timeout_ms;
        self.leader_state.as_mut().unwrap().transfer = Some((to, deadline_ms));
        self.continue_transfer();
    }

    pub(super) fn transferring(&self) -> bool {
        self.leader_state
            .as_ref()
            .is_some_and(|l| l.transfer.is_some())
    }

    /// Once the transfer's target has the whole log, tell it to start an election.
    fn continue_transfer(&mut self) {
        let last_index = self.log.last_index();
        let Some(leader) = self.leader_state.as_ref() else {
            return;
        };
        let Some((to, _)) = leader.transfer else {
            return;
        };
        if leader.peers[&to].match_index == last_index {
            let term = self.hard.term;
            self.send(to, Message::TimeoutNow { term });
        } else {
            self.send_appends(to, false);
        }
    }

    pub(super) fn on_forward(&mut self, proposals: Vec<Proposal>) {
        if self.role != Role::Leader || self.transferring() {
            return; // The sender sends them again to whoever leads.
        }
        for proposal in proposals {
            // Skip what was applied already; copies still in the log apply as nothing.
            let applied = self
                .applied_origins
                .get(&(proposal.origin.node, proposal.origin.incarnation))
                .is_some_and(|set| set.contains(proposal.origin.seq));
            if !applied {
                self.append_entry(Some(proposal.origin), proposal.payload);
            }
        }
    }
}
