use super::*;

fn cmd(words: &[&str]) -> Command {
    Command::parse(
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect(),
    )
    .unwrap()
}

fn request(client: ClientId, id: u64, words: &[&str]) -> Request {
    Request {
        client,
        id,
        op: Op::Command {
            db: 0,
            cmd: cmd(words),
        },
    }
}

type Replies = Vec<(ClientId, u64, Response)>;

/// The entries of every batch drained, and the replies. The batches' sequence numbers go to
/// `last_seq`.
fn drain_with_seq(r: &mut Replica, last_seq: &mut u64) -> (Vec<Arc<LogEntry>>, Replies) {
    let mut persist = Vec::new();
    let mut replies = Vec::new();
    while let Some(out) = r.poll_output() {
        match out {
            Output::Persist(batch) => {
                *last_seq = batch.seq;
                persist.extend(batch.entries)
            }
            Output::Reply {
                client,
                id,
                response,
            } => replies.push((client, id, response)),
            Output::Send { .. } => panic!("a single voter sends nothing"),
            Output::ReadLog { .. } => panic!("a single voter reads nothing back"),
        }
    }
    (persist, replies)
}

fn drain(r: &mut Replica) -> (Vec<Arc<LogEntry>>, Replies) {
    drain_with_seq(r, &mut 0)
}

fn frame(f: Frame) -> Response {
    Response::Frame(f)
}

/// A single voter that has become leader (term 1) and committed its no-op (index 1): two
/// batches, the hard state and then the no-op.
fn leader(now_ms: u64) -> Replica {
    let mut r = Replica::new(ReplicaConfig::default(), now_ms);
    let mut seq = 0;
    drain_with_seq(&mut r, &mut seq);
    assert_eq!(seq, 1, "the vote is written first");
    assert_eq!(
        r.role(),
        Role::Candidate,
        "not leader before the vote is durable"
    );
    r.step(Input::Persisted { seq: 1 });
    assert_eq!(r.role(), Role::Leader);
    let (persist, _) = drain_with_seq(&mut r, &mut seq);
    assert!(matches!(*persist[0].payload, EntryPayload::Noop));
    r.step(Input::Persisted { seq: 2 });
    assert_eq!(r.commit_index(), 1);
    r
}

#[test]
fn a_write_is_answered_only_after_it_is_persisted() {
    let mut r = leader(1000);
    r.step(Input::Requests(vec![request(1, 1, &["SET", "k", "v"])]));
    let mut seq = 0;
    let (persist, replies) = drain_with_seq(&mut r, &mut seq);
    assert_eq!(persist.len(), 1);
    assert!(replies.is_empty(), "no reply before fsync");
    assert_eq!(persist[0].ts_ms, 1000);
    assert_eq!(persist[0].index, 2, "after the no-op");
    r.step(Input::Persisted { seq });
    let (_, replies) = drain(&mut r);
    assert_eq!(replies, vec![(1, 1, frame(Frame::ok()))]);
}

#[test]
fn a_read_behind_a_pending_write_waits_for_it() {
    let mut r = leader(1000);
    r.step(Input::Requests(vec![
        request(1, 1, &["SET", "k", "v"]),
        request(1, 2, &["GET", "k"]),
    ]));
    r.step(Input::Requests(vec![request(2, 1, &["SET", "k", "w"])]));
    let (persist, replies) = drain(&mut r);
    assert_eq!(persist.len(), 2);
    assert!(replies.is_empty());
    r.step(Input::Persisted { seq: 3 });
    let (_, replies) = drain(&mut r);
    // The read waits for its own connection's write, and is served before client 2's write
    // is durable, so it sees "v".
    assert_eq!(
        replies,
        vec![
            (1, 1, frame(Frame::ok())),
            (1, 2, frame(Frame::bulk_str("v")))
        ]
    );
    r.step(Input::Persisted { seq: 4 });
    let (_, replies) = drain(&mut r);
    assert_eq!(replies, vec![(2, 1, frame(Frame::ok()))]);
}

#[test]
fn a_failed_persist_answers_misconf_and_takes_the_entries_back() {
    let mut r = leader(1000);
    r.step(Input::Requests(vec![request(1, 1, &["SET", "a", "1"])]));
    r.step(Input::Requests(vec![
        request(1, 2, &["SET", "b", "2"]),
        request(1, 3, &["GET", "b"]),
    ]));
    drain(&mut r);
    r.step(Input::Persisted { seq: 3 });
    r.step(Input::PersistFailed {
        seq: 4,
        error: "No space left on device".into(),
    });
    let (_, replies) = drain(&mut r);
    assert_eq!(replies[0], (1, 1, frame(Frame::ok())));
    let Response::Frame(Frame::Error(text)) = &replies[1].2 else {
        panic!("{replies:?}")
    };
    assert!(text.starts_with("MISCONF"), "{text}");
    assert_eq!(replies[2], (1, 3, frame(Frame::Null)));
    assert_eq!(r.last_index(), 2);
    // The next write reuses index 3: nobody else ever saw the entry taken back.
    r.step(Input::Requests(vec![request(1, 4, &["SET", "c", "3"])]));
    let (persist, _) = drain(&mut r);
    assert_eq!(persist[0].index, 3);
}

#[test]
fn a_syntax_error_never_reaches_the_log() {
    let mut r = leader(1000);
    r.step(Input::Requests(vec![request(
        1,
        1,
        &["SET", "k", "v", "BOGUS"],
    )]));
    let (persist, replies) = drain(&mut r);
    assert!(persist.is_empty());
    assert_eq!(
        replies,
        vec![(1, 1, frame(Frame::error("ERR syntax error")))]
    );
}

#[test]
fn a_transaction_is_one_entry_and_a_changed_watch_aborts_it() {
    let mut r = leader(1000);
    r.step(Input::Requests(vec![Request {
        client: 1,
        id: 1,
        op: Op::Watch {
            db: 0,
            keys: vec![Bytes::from("k")],
        },
    }]));
    let (_, replies) = drain(&mut r);
    let Response::Watched(watches) = replies[0].2.clone() else {
        panic!()
    };
    assert_eq!(watches[0].version, None);
    let tx = |id| Request {
        client: 1,
        id,
        op: Op::Transaction {
            commands: vec![(0, cmd(&["INCR", "k"])), (0, cmd(&["INCR", "k"]))],
            watches: watches.clone(),
        },
    };
    r.step(Input::Requests(vec![tx(2)]));
    let (persist, _) = drain(&mut r);
    assert_eq!(persist.len(), 1, "one entry for the whole transaction");
    r.step(Input::Persisted { seq: 3 });
    let (_, replies) = drain(&mut r);
    assert_eq!(
        replies,
        vec![(
            1,
            2,
            frame(Frame::Array(vec![Frame::Integer(1), Frame::Integer(2)]))
        )]
    );
    // The key changed since the watch: the same transaction now aborts.
    r.step(Input::Requests(vec![tx(3)]));
    r.step(Input::Persisted { seq: 4 });
    let (_, replies) = drain(&mut r);
    assert_eq!(replies, vec![(1, 3, frame(Frame::NullArray))]);
}

#[test]
fn active_expiry_goes_through_the_log() {
    let mut r = leader(1000);
    r.step(Input::Requests(vec![request(
        1,
        1,
        &["SET", "k", "v", "PX", "50"],
    )]));
    r.step(Input::Persisted { seq: 3 });
    drain(&mut r);
    r.step(Input::Tick { now_ms: 1040 });
    assert!(drain(&mut r).0.is_empty(), "not expired yet");
    r.step(Input::Tick { now_ms: 1100 });
    let (persist, _) = drain(&mut r);
    assert_eq!(persist.len(), 1);
    assert!(matches!(*persist[0].payload, EntryPayload::Expire { .. }));
    assert_eq!(persist[0].ts_ms, 1100);
    // While it is in flight, no second expiry entry is proposed.
    r.step(Input::Tick { now_ms: 1200 });
    assert!(drain(&mut r).0.is_empty());
    assert_eq!(r.keyspace().db_len(0), 1);
    r.step(Input::Persisted { seq: 4 });
    assert_eq!(r.keyspace().db_len(0), 0);
    assert_eq!(r.stats.expired_keys, 1);
}

#[test]
fn entry_timestamps_never_go_backwards() {
    let mut r = leader(5000);
    r.step(Input::Requests(vec![request(1, 1, &["SET", "a", "1"])]));
    r.step(Input::Tick { now_ms: 3000 });
    r.step(Input::Requests(vec![request(1, 2, &["SET", "b", "1"])]));
    let (persist, _) = drain(&mut r);
    assert_eq!(persist[0].ts_ms, 5000);
    assert_eq!(persist[1].ts_ms, 5000);
}

#[test]
fn restore_replays_the_log_to_the_same_keyspace() {
    let mut r = Replica::new(ReplicaConfig::default(), 1000);
    let mut records = Vec::new();
    let mut take = |r: &mut Replica| {
        let mut seq = 0;
        while let Some(out) = r.poll_output() {
            if let Output::Persist(batch) = out {
                records.extend(batch.records());
                seq = batch.seq;
            }
        }
        seq
    };
    let seq = take(&mut r);
    r.step(Input::Persisted { seq });
    let seq = take(&mut r);
    r.step(Input::Persisted { seq });
    r.step(Input::Requests(vec![
        request(1, 1, &["RPUSH", "l", "a", "b", "c"]),
        request(1, 2, &["SPOP", "l"]),
        request(1, 3, &["SADD", "s", "1", "2", "3", "4"]),
        request(1, 4, &["SPOP", "s"]),
    ]));
    let seq = take(&mut r);
    r.step(Input::Persisted { seq });
    assert_eq!(r.applied_index(), 5);
    let restored = Replica::restore(ReplicaConfig::default(), 2000, records);
    assert_eq!(restored.keyspace().digest(), r.keyspace().digest());
    assert_eq!(restored.last_index(), 5);
    assert_eq!(
        restored.applied_index(),
        5,
        "a single voter's log is all committed"
    );
    assert_eq!(restored.term(), 2, "it campaigns again at once");
}

/// Replica 1 among `voters`, restoring from a WAL whose tail was cut.
fn recovering_config(voters: Vec<NodeId>) -> ReplicaConfig {
    ReplicaConfig {
        id: 1,
        voters,
        recovering: true,
        ..ReplicaConfig::default()
    }
}

/// The sequence number of the last persist batch among `outputs`.
fn last_persist_seq(outputs: Vec<Output>) -> Option<u64> {
    outputs
        .into_iter()
        .filter_map(|o| match o {
            Output::Persist(batch) => Some(batch.seq),
            _ => None,
        })
        .last()
}

/// A no-op WAL entry.
fn entry(index: u64, term: u64) -> WalRecord {
    WalRecord::Entry(LogEntry {
        index,
        term,
        ts_ms: 0,
        origin: None,
        payload: std::sync::Arc::new(EntryPayload::Noop),
    })
}

#[test]
fn restore_replaces_a_suffix_rewritten_later_in_the_wal() {
    let config = ReplicaConfig {
        voters: vec![1, 2, 3],
        ..ReplicaConfig::default()
    };
    let records = vec![
        WalRecord::HardState(HardState {
            term: 3,
            vote: Some(2),
        }),
        entry(1, 1),
        entry(2, 1),
        entry(3, 1),
        entry(2, 3),
    ];
    let r = Replica::restore(config, 0, records);
    assert_eq!(r.last_index(), 2);
    assert_eq!(r.entry(2).unwrap().term, 3);
    assert_eq!(
        r.hard_state(),
        HardState {
            term: 3,
            vote: Some(2)
        }
    );
    assert_eq!(r.applied_index(), 0, "nothing is known committed");
}

#[test]
fn interval_sets_merge_neighbours() {
    let mut set = IntervalSet::default();
    assert!(set.insert(3));
    assert!(set.insert(1));
    assert!(!set.insert(3));
    assert!(set.insert(2));
    assert_eq!(set.ranges.len(), 1, "{:?}", set.ranges);
    assert!(set.contains(1) && set.contains(2) && set.contains(3));
    assert!(!set.contains(0) && !set.contains(4));
    assert!(set.insert(5));
    assert!(set.insert(4));
    assert_eq!(set.ranges.into_iter().collect::<Vec<_>>(), vec![(1, 6)]);
}

#[test]
fn a_single_voter_whose_vote_is_slow_to_persist_campaigns_again_and_then_leads() {
    // The disk takes longer than an election timeout to persist the first vote: the replica
    // campaigns again in the next term, and leads once that vote is durable.
    let mut r = Replica::new(ReplicaConfig::default(), 0);
    let mut seq = 0;
    drain_with_seq(&mut r, &mut seq);
    assert_eq!((seq, r.term()), (1, 1));
    r.step(Input::Tick { now_ms: 2_000 });
    drain_with_seq(&mut r, &mut seq);
    assert_eq!((seq, r.term()), (2, 2), "a second campaign");
    r.step(Input::Persisted { seq: 1 });
    assert_eq!(
        r.role(),
        Role::Candidate,
        "the vote of term 1 is not this term's"
    );
    r.step(Input::Persisted { seq: 2 });
    assert_eq!(r.role(), Role::Leader);
}

#[test]
fn a_replica_whose_wal_tail_was_cut_votes_only_after_its_probes_and_catching_up() {
    // The cut tail may have held entries this replica acknowledged: until it holds again
    // everything a leader has committed, its vote could elect a leader without them.
    let config = recovering_config(vec![1, 2, 3]);
    let records = vec![entry(1, 1), entry(2, 1)];
    let mut r = Replica::restore(config, 0, records);
    assert!(r.recovering());
    assert_eq!(r.term(), 1, "the log's terms bound the lost hard state");
    let outputs = |r: &mut Replica| std::iter::from_fn(|| r.poll_output()).collect::<Vec<_>>();
    outputs(&mut r);
    r.step(Input::Tick { now_ms: 10_000 });
    assert_eq!(r.role(), Role::Follower, "it does not campaign");
    assert!(
        outputs(&mut r).iter().all(|o| matches!(
            o,
            Output::Send {
                message: Message::Probe { .. },
                ..
            }
        )),
        "not even a pre-vote: only probes"
    );
    let vote = |term| Message::Vote {
        term,
        last_index: 2,
        last_term: 1,
        transfer: false,
    };
    r.step(Input::Message {
        from: 2,
        message: vote(2),
    });
    assert_eq!(
        (r.term(), r.hard_state().vote),
        (2, None),
        "it follows the term, and refuses to vote for an up-to-date candidate"
    );
    // Leader 3 of term 3 has committed its own entry 3.
    let entry3 = Arc::new(LogEntry {
        index: 3,
        term: 3,
        ts_ms: 0,
        origin: None,
        payload: std::sync::Arc::new(EntryPayload::Noop),
    });
    r.step(Input::Message {
        from: 3,
        message: Message::Append {
            term: 3,
            prev_index: 2,
            prev_term: 1,
            entries: vec![entry3],
            commit: 3,
            read_round: 0,
            held_by_all: 0,
        },
    });
    assert!(r.recovering(), "entry 3 is not durable yet");
    let seq = last_persist_seq(outputs(&mut r)).expect("entry 3 is persisted");
    r.step(Input::Persisted { seq });
    assert!(
        r.recovering(),
        "a leader's word alone does not end it: the leader could be stale, from a term older \
         than one this replica voted in before its tail was cut"
    );
    // The probes answer: replica 3 is at term 3 with entry 3, replica 2 at term 2.
    for (from, term, last_index, last_term) in [(2, 2, 2, 1), (3, 3, 3, 3)] {
        r.step(Input::Message {
            from,
            message: Message::ProbeReply {
                term,
                last_index,
                last_term,
                recovering: false,
            },
        });
    }
    assert_eq!(
        r.hard_state().vote,
        Some(VOTE_FOR_NO_ONE),
        "fenced in term 3"
    );
    let seq = last_persist_seq(outputs(&mut r)).expect("the fence is persisted");
    r.step(Input::Persisted { seq });
    assert!(!r.recovering(), "it holds the best log the probes reported");
    r.step(Input::Message {
        from: 2,
        message: vote(4),
    });
    assert_ne!(r.hard_state().vote, Some(2), "candidate 2 lacks entry 3");
    r.step(Input::Message {
        from: 2,
        message: Message::Vote {
            term: 5,
            last_index: 3,
            last_term: 3,
            transfer: true,
        },
    });
    assert_eq!(
        r.hard_state().vote,
        Some(2),
        "an up-to-date candidate gets the vote"
    );
}

#[test]
fn a_replica_whose_wal_tail_was_cut_votes_again_once_probes_show_the_cut_was_never_committed() {
    // A power loss tore every node's last write: no leader is left to catch up from. Probes
    // show that no other replica holds an entry past the cut, so nothing cut was committed.
    let config = recovering_config(vec![1, 2, 3]);
    let mut r = Replica::restore(config, 0, vec![entry(1, 1), entry(2, 1)]);
    let outputs = |r: &mut Replica| std::iter::from_fn(|| r.poll_output()).collect::<Vec<_>>();
    outputs(&mut r);
    r.step(Input::Tick { now_ms: 10_000 });
    let probes = outputs(&mut r)
        .into_iter()
        .filter(|o| {
            matches!(
                o,
                Output::Send {
                    message: Message::Probe { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(probes, 2, "it probes both peers");
    r.step(Input::Message {
        from: 2,
        message: Message::ProbeReply {
            term: 4,
            last_index: 3,
            last_term: 1,
            recovering: false,
        },
    });
    r.step(Input::Message {
        from: 3,
        message: Message::ProbeReply {
            term: 4,
            last_index: 2,
            last_term: 1,
            recovering: false,
        },
    });
    assert!(
        r.recovering(),
        "replica 2 holds an entry past the cut: it may be committed"
    );
    let vote = |term, last_index| Message::Vote {
        term,
        last_index,
        last_term: 1,
        transfer: false,
    };
    r.step(Input::Message {
        from: 3,
        message: vote(5, 2),
    });
    assert_eq!(r.hard_state().vote, None, "candidate 3 may lack that entry");
    r.step(Input::Message {
        from: 2,
        message: vote(6, 3),
    });
    assert_eq!(r.hard_state().vote, Some(2), "candidate 2 holds it");
    let config = recovering_config(vec![1, 2, 3]);
    let mut r = Replica::restore(config, 0, vec![entry(1, 1), entry(2, 1)]);
    outputs(&mut r);
    for from in [2, 3] {
        r.step(Input::Message {
            from,
            message: Message::ProbeReply {
                term: 3 + from,
                last_index: 2,
                last_term: 1,
                recovering: false,
            },
        });
    }
    assert_eq!(
        r.hard_state(),
        HardState {
            term: 6,
            vote: Some(VOTE_FOR_NO_ONE)
        },
        "the highest reported term, with no vote left in it"
    );
    assert!(r.recovering(), "until that hard state is durable");
    let seq = last_persist_seq(outputs(&mut r)).expect("the fence is persisted");
    r.step(Input::Persisted { seq });
    assert!(!r.recovering());
}

#[test]
fn replies_of_replicas_recovering_too_count_only_when_every_replica_answered() {
    // Two of five disks lost data: a committed entry may be left on a single sound replica,
    // so the probe must reach it, unless every other replica answered.
    let config = recovering_config(vec![1, 2, 3, 4, 5]);
    let mut r = Replica::restore(config, 0, vec![entry(1, 1)]);
    let reply = |recovering| Message::ProbeReply {
        term: 1,
        last_index: 1,
        last_term: 1,
        recovering,
    };
    for (from, recovering) in [(2, false), (3, false), (4, true)] {
        r.step(Input::Message {
            from,
            message: reply(recovering),
        });
    }
    assert_eq!(
        r.hard_state().vote,
        None,
        "two sound replies are not enough"
    );
    r.step(Input::Message {
        from: 5,
        message: reply(true),
    });
    assert_eq!(
        r.hard_state().vote,
        Some(VOTE_FOR_NO_ONE),
        "every other replica answered"
    );
}

/// Every output: persist batches are acknowledged as durable at once; the messages sent and the
/// replies are returned.
fn step_durably(r: &mut Replica, input: Input) -> (Vec<(NodeId, Message)>, Replies) {
    let mut sent = Vec::new();
    let mut replies = Vec::new();
    let mut pending = vec![input];
    while let Some(input) = pending.pop() {
        r.step(input);
        while let Some(out) = r.poll_output() {
            match out {
                Output::Persist(batch) => pending.push(Input::Persisted { seq: batch.seq }),
                Output::Send { to, message } => sent.push((to, message)),
                Output::Reply {
                    client,
                    id,
                    response,
                } => replies.push((client, id, response)),
                Output::ReadLog { .. } => panic!("these tests drop nothing from memory"),
            }
        }
    }
    (sent, replies)
}

/// Replica 1 of three, elected in term 1 with replica 2's votes, its no-op committed.
fn leader_of_three() -> Replica {
    let config = ReplicaConfig {
        id: 1,
        voters: vec![1, 2, 3],
        ..ReplicaConfig::default()
    };
    let mut r = Replica::new(config, 0);
    step_durably(&mut r, Input::Tick { now_ms: 5_000 });
    let granted = |message| Input::Message { from: 2, message };
    step_durably(
        &mut r,
        granted(Message::PreVoteReply {
            term: 1,
            granted: true,
        }),
    );
    step_durably(
        &mut r,
        granted(Message::VoteReply {
            term: 1,
            granted: true,
        }),
    );
    assert_eq!(r.role(), Role::Leader);
    let accepted = Message::AppendReply {
        term: 1,
        outcome: AppendOutcome::Accepted { match_index: 1 },
        read_round: 0,
    };
    step_durably(&mut r, granted(accepted));
    assert_eq!(r.commit_index(), 1, "the no-op is committed");
    r
}

#[test]
fn a_stale_term_refusal_confirms_no_read_round() {
    let mut r = leader_of_three();
    let (sent, replies) = step_durably(&mut r, Input::Requests(vec![request(7, 1, &["GET", "k"])]));
    assert!(replies.is_empty(), "a read waits for its round");
    // The round goes to one follower: with the leader, a majority.
    let rounds: Vec<u64> = sent
        .iter()
        .filter_map(|(_, m)| match m {
            Message::Append { read_round, .. } => Some(*read_round),
            _ => None,
        })
        .collect();
    assert_eq!(rounds, vec![1], "one heartbeat, carrying round 1: {sent:?}");
    // Replica 3 refuses a delayed append of an earlier life of this leader, whose round
    // numbers ran higher: that says nothing about this round.
    let stale = Message::AppendReply {
        term: 1,
        outcome: AppendOutcome::StaleTerm,
        read_round: 1_000,
    };
    let (_, replies) = step_durably(
        &mut r,
        Input::Message {
            from: 3,
            message: stale,
        },
    );
    assert!(replies.is_empty(), "served on a stale refusal: {replies:?}");
    let answer = Message::AppendReply {
        term: 1,
        outcome: AppendOutcome::Accepted { match_index: 1 },
        read_round: 1,
    };
    let (_, replies) = step_durably(
        &mut r,
        Input::Message {
            from: 2,
            message: answer,
        },
    );
    assert_eq!(
        replies.len(),
        1,
        "served once a majority answered the round"
    );
}

/// No-op entries at `indexes`, of `term`.
fn noops(indexes: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Arc<LogEntry>> {
    indexes
        .map(|index| {
            Arc::new(LogEntry {
                index,
                term,
                ts_ms: 0,
                origin: None,
                payload: std::sync::Arc::new(EntryPayload::Noop),
            })
        })
        .collect()
}

/// The entries of each append in `sent`, by follower: `(to, first index, count)`.
fn appends_sent(sent: &[(NodeId, Message)]) -> Vec<(NodeId, u64, usize)> {
    sent.iter()
        .filter_map(|(to, message)| match message {
            Message::Append { entries, .. } if !entries.is_empty() => {
                Some((*to, entries[0].index, entries.len()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_follower_keeping_up_has_one_append_in_flight_and_one_catching_up_several() {
    // Replica 2 answered the no-op; replica 3 has not (its append is still in flight).
    let mut r = leader_of_three();
    let (sent, _) = step_durably(
        &mut r,
        Input::Requests(vec![request(7, 1, &["SET", "a", "1"])]),
    );
    assert_eq!(
        appends_sent(&sent),
        vec![(2, 2, 1)],
        "3 is still busy with the no-op"
    );
    // Proposed while replica 2 works on entry 2: they wait for its answer.
    let more = vec![
        request(8, 1, &["SET", "b", "2"]),
        request(9, 1, &["SET", "c", "3"]),
    ];
    let (sent, _) = step_durably(&mut r, Input::Requests(more));
    assert_eq!(
        appends_sent(&sent),
        vec![],
        "nothing goes out while appends are in flight"
    );
    let answer = Message::AppendReply {
        term: 1,
        outcome: AppendOutcome::Accepted { match_index: 2 },
        read_round: 0,
    };
    let (sent, replies) = step_durably(
        &mut r,
        Input::Message {
            from: 2,
            message: answer,
        },
    );
    assert_eq!(replies.len(), 1, "entry 2 is committed: {replies:?}");
    assert_eq!(
        appends_sent(&sent),
        vec![(2, 3, 2)],
        "what waited goes out in one append"
    );
    // Replica 3 is now behind by more than a full append: several go out at once.
    let full = ReplicaConfig::default().append_entries_max;
    let burst = (0..full * 2)
        .map(|i| request(10, i as u64 + 1, &["SET", "k", "v"]))
        .collect();
    let (sent, _) = step_durably(&mut r, Input::Requests(burst));
    let to_3: Vec<_> = appends_sent(&sent)
        .into_iter()
        .filter(|(to, _, _)| *to == 3)
        .collect();
    assert_eq!(
        to_3,
        vec![(3, 2, full), (3, 2 + full as u64, full)],
        "full appends are pipelined; the rest waits"
    );
}

#[test]
fn a_leader_of_several_writes_entries_to_its_wal_when_it_sends_them() {
    let mut r = leader_of_three();
    // What one step asks of the adapter: the entries of each persist batch, and the appends.
    let mut step = |input| {
        r.step(input);
        let mut persisted = Vec::new();
        let mut sent = Vec::new();
        while let Some(out) = r.poll_output() {
            match out {
                Output::Persist(batch) => {
                    persisted.push(batch.entries.iter().map(|e| e.index).collect::<Vec<_>>())
                }
                Output::Send { to, message } => sent.push((to, message)),
                Output::Reply { .. } | Output::ReadLog { .. } => {}
            }
        }
        (persisted, appends_sent(&sent))
    };
    let (persisted, appends) = step(Input::Requests(vec![request(7, 1, &["SET", "a", "1"])]));
    assert_eq!(appends, vec![(2, 2, 1)]);
    assert_eq!(persisted, vec![vec![2]], "sent, so written");
    // Replica 2 is busy with entry 2 and replica 3 with the no-op: these wait, unwritten.
    let (persisted, appends) = step(Input::Requests(vec![request(8, 1, &["SET", "b", "2"])]));
    assert_eq!((persisted, appends), (vec![], vec![]));
    let (persisted, appends) = step(Input::Requests(vec![request(9, 1, &["SET", "c", "3"])]));
    assert_eq!((persisted, appends), (vec![], vec![]));
    let answer = Message::AppendReply {
        term: 1,
        outcome: AppendOutcome::Accepted { match_index: 2 },
        read_round: 0,
    };
    let (persisted, appends) = step(Input::Message {
        from: 2,
        message: answer,
    });
    assert_eq!(appends, vec![(2, 3, 2)]);
    assert_eq!(
        persisted,
        vec![vec![3, 4]],
        "one batch, written as they go out"
    );
}

#[test]
fn entries_every_replica_holds_leave_memory_and_come_back_from_the_wal_for_one_that_lost_them() {
    let mut r = leader_of_three();
    let accepted = |match_index| Message::AppendReply {
        term: 1,
        outcome: AppendOutcome::Accepted { match_index },
        read_round: 0,
    };
    step_durably(
        &mut r,
        Input::Requests(vec![request(7, 1, &["SET", "a", "1"])]),
    );
    step_durably(
        &mut r,
        Input::Message {
            from: 2,
            message: accepted(2),
        },
    );
    assert_eq!((r.commit_index(), r.applied_index()), (2, 2));
    assert_eq!(r.first_index(), 1, "replica 3 has not answered: all stays");
    let (sent, _) = step_durably(
        &mut r,
        Input::Message {
            from: 3,
            message: accepted(2),
        },
    );
    assert_eq!(r.first_index(), 3, "every replica holds entries 1 and 2");
    assert_eq!(
        r.term_at(2),
        Some(1),
        "the last dropped entry's term is kept"
    );
    // The next message tells the followers, so that they drop them too.
    let (sent, _) = if sent.is_empty() {
        step_durably(
            &mut r,
            Input::Requests(vec![request(7, 2, &["SET", "b", "2"])]),
        )
    } else {
        (sent, Vec::new())
    };
    assert!(
        sent.iter()
            .any(|(_, m)| matches!(m, Message::Append { held_by_all: 2, .. })),
        "{sent:?}"
    );
    // Replica 3's disk is replaced: it refuses, its log ends before index 1.
    let refused = Message::AppendReply {
        term: 1,
        outcome: AppendOutcome::Rejected {
            prev_index: 2,
            hint_index: 1,
        },
        read_round: 0,
    };
    r.step(Input::Message {
        from: 3,
        message: refused,
    });
    let mut asked = None;
    while let Some(out) = r.poll_output() {
        if let Output::ReadLog {
            from,
            to,
            bytes_max,
        } = out
        {
            asked = Some((from, to, bytes_max));
        }
    }
    assert_eq!(
        asked,
        Some((1, 2, ReplicaConfig::default().log_memory_bytes_max / 2)),
        "the leader asks its WAL for what memory lacks, half the memory bound at a time"
    );
    // The adapter reads them back; they go to replica 3 at once, from the piece read back
    // (the log in memory stays as it was).
    let from_wal = noops(1..=2, 1);
    let (sent, _) = step_durably(&mut r, Input::LogRead { entries: from_wal });
    assert!(
        sent.iter().any(|(to, m)| *to == 3
            && matches!(m, Message::Append { prev_index: 0, entries, .. } if entries.first().is_some_and(|e| e.index == 1))),
        "{sent:?}"
    );
    assert_eq!(r.first_index(), 3);
    assert!(r.catch_up_bytes_in_memory() > 0);
    // Once replica 3 holds them, the piece leaves memory.
    step_durably(
        &mut r,
        Input::Message {
            from: 3,
            message: accepted(3),
        },
    );
    assert_eq!(r.catch_up_bytes_in_memory(), 0);
}

#[test]
fn a_follower_drops_what_its_leader_says_every_replica_holds_once_applied() {
    let config = ReplicaConfig {
        id: 2,
        voters: vec![1, 2, 3],
        ..ReplicaConfig::default()
    };
    let mut r = Replica::new(config, 0);
    let entries = noops(1..=3, 1);
    let append = |entries, commit, held_by_all| Input::Message {
        from: 1,
        message: Message::Append {
            term: 1,
            prev_index: 0,
            prev_term: 0,
            entries,
            commit,
            read_round: 0,
            held_by_all,
        },
    };
    // Held everywhere up to 3, but applied only up to 2: entry 3 stays.
    step_durably(&mut r, append(entries.clone(), 2, 3));
    assert_eq!((r.applied_index(), r.first_index()), (2, 3));
    // The same append again (a retransmission) is accepted over the dropped entries.
    let (sent, _) = step_durably(&mut r, append(entries, 3, 3));
    assert!(
        sent.iter().any(|(_, m)| matches!(
            m,
            Message::AppendReply {
                outcome: AppendOutcome::Accepted { match_index: 3 },
                ..
            }
        )),
        "{sent:?}"
    );
    assert_eq!((r.applied_index(), r.first_index()), (3, 4));
}

/// A persist batch: its seq, and its first and last entry's index.
type BatchRange = (u64, Option<(u64, u64)>);

/// What a follower's outputs hold: its persist batches, and the match indexes it reported as
/// accepted.
fn follower_outputs(r: &mut Replica) -> (Vec<BatchRange>, Vec<u64>) {
    let mut batches = Vec::new();
    let mut accepted = Vec::new();
    while let Some(out) = r.poll_output() {
        match out {
            Output::Persist(batch) => batches.push((
                batch.seq,
                batch
                    .entries
                    .first()
                    .map(|first| (first.index, batch.entries.last().unwrap().index)),
            )),
            Output::Send {
                message:
                    Message::AppendReply {
                        outcome: AppendOutcome::Accepted { match_index },
                        ..
                    },
                ..
            } => accepted.push(match_index),
            _ => {}
        }
    }
    (batches, accepted)
}

#[test]
fn a_follower_whose_persist_failed_acknowledges_nothing_unwritten_and_writes_it_again_first() {
    let config = ReplicaConfig {
        id: 2,
        voters: vec![1, 2, 3],
        ..ReplicaConfig::default()
    };
    let mut r = Replica::new(config, 0);
    let append = |prev_index: u64, entries: Vec<Arc<LogEntry>>| Input::Message {
        from: 1,
        message: Message::Append {
            term: 1,
            prev_index,
            prev_term: if prev_index == 0 { 0 } else { 1 },
            entries,
            commit: 0,
            read_round: 0,
            held_by_all: 0,
        },
    };
    r.step(append(0, noops(1..=3, 1)));
    let (batches, accepted) = follower_outputs(&mut r);
    assert_eq!(accepted, Vec::<u64>::new(), "nothing before the fsync");
    let written = batches.iter().rev().find(|(_, e)| e.is_some()).unwrap().0;
    r.step(Input::Persisted { seq: written });
    assert_eq!(follower_outputs(&mut r).1, vec![3]);
    // 4..=6 fail to be written (a full disk).
    r.step(append(3, noops(4..=6, 1)));
    let (batches, _) = follower_outputs(&mut r);
    assert_eq!(batches.last().unwrap().1, Some((4, 6)));
    r.step(Input::PersistFailed {
        seq: batches.last().unwrap().0,
        error: "No space left on device".into(),
    });
    // Before the retry: a new entry and a heartbeat arrive. Nothing past 3 is acknowledged,
    // and no batch would leave a gap in the WAL after 3.
    r.step(append(6, noops(7..=7, 1)));
    r.step(append(7, Vec::new()));
    let (batches, accepted) = follower_outputs(&mut r);
    assert!(
        accepted.iter().all(|&m| m <= 3),
        "acknowledged {accepted:?}"
    );
    assert!(
        batches.iter().all(|(_, entries)| entries.is_none()),
        "{batches:?}"
    );
    // At the next tick, everything unwritten goes again, in order.
    r.step(Input::Tick { now_ms: 10 });
    let (batches, _) = follower_outputs(&mut r);
    let (seq, entries) = *batches.iter().find(|(_, e)| e.is_some()).unwrap();
    assert_eq!(entries, Some((4, 7)));
    r.step(Input::Persisted { seq });
    let accepted = follower_outputs(&mut r).1;
    assert!(
        !accepted.is_empty() && accepted.iter().all(|&m| m == 7),
        "{accepted:?}"
    );
}
