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

fn drain(r: &mut Replica) -> (Vec<Arc<LogEntry>>, Replies) {
    let mut persist = Vec::new();
    let mut replies = Vec::new();
    while let Some(out) = r.poll_output() {
        match out {
            Output::Persist(entries) => persist.extend(entries),
            Output::Reply {
                client,
                id,
                response,
            } => replies.push((client, id, response)),
        }
    }
    (persist, replies)
}

fn frame(f: Frame) -> Response {
    Response::Frame(f)
}

#[test]
fn a_write_is_answered_only_after_it_is_persisted() {
    let mut r = Replica::new(ReplicaConfig::default(), 1000);
    r.step(Input::Requests(vec![request(1, 1, &["SET", "k", "v"])]));
    let (persist, replies) = drain(&mut r);
    assert_eq!(persist.len(), 1);
    assert!(replies.is_empty(), "no reply before fsync");
    assert_eq!(persist[0].ts_ms, 1000);
    r.step(Input::Persisted { index: 1 });
    let (_, replies) = drain(&mut r);
    assert_eq!(replies, vec![(1, 1, frame(Frame::ok()))]);
}

#[test]
fn a_read_behind_a_pending_write_waits_for_it() {
    let mut r = Replica::new(ReplicaConfig::default(), 1000);
    r.step(Input::Requests(vec![
        request(1, 1, &["SET", "k", "v"]),
        request(1, 2, &["GET", "k"]),
        request(2, 1, &["SET", "k", "w"]),
    ]));
    let (persist, replies) = drain(&mut r);
    assert_eq!(persist.len(), 2);
    assert!(replies.is_empty());
    r.step(Input::Persisted { index: 1 });
    let (_, replies) = drain(&mut r);
    // The read came before client 2's write, so it waits for entry 1 only and sees "v".
    assert_eq!(
        replies,
        vec![
            (1, 1, frame(Frame::ok())),
            (1, 2, frame(Frame::bulk_str("v")))
        ]
    );
    r.step(Input::Persisted { index: 2 });
    let (_, replies) = drain(&mut r);
    assert_eq!(replies, vec![(2, 1, frame(Frame::ok()))]);
}

#[test]
fn a_failed_persist_answers_misconf_and_takes_the_entries_back() {
    let mut r = Replica::new(ReplicaConfig::default(), 1000);
    r.step(Input::Requests(vec![request(1, 1, &["SET", "a", "1"])]));
    r.step(Input::Requests(vec![
        request(1, 2, &["SET", "b", "2"]),
        request(1, 3, &["GET", "b"]),
    ]));
    drain(&mut r);
    r.step(Input::Persisted { index: 1 });
    r.step(Input::PersistFailed {
        first_index: 2,
        error: "No space left on device".into(),
    });
    let (_, replies) = drain(&mut r);
    assert_eq!(replies[0], (1, 1, frame(Frame::ok())));
    let Response::Frame(Frame::Error(text)) = &replies[1].2 else {
        panic!("{replies:?}")
    };
    assert!(text.starts_with("MISCONF"), "{text}");
    assert_eq!(replies[2], (1, 3, frame(Frame::Null)));
    assert_eq!(r.last_index(), 1);
    // The next write reuses index 2.
    r.step(Input::Requests(vec![request(1, 4, &["SET", "c", "3"])]));
    let (persist, _) = drain(&mut r);
    assert_eq!(persist[0].index, 2);
}

#[test]
fn a_syntax_error_never_reaches_the_log() {
    let mut r = Replica::new(ReplicaConfig::default(), 1000);
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
    let mut r = Replica::new(ReplicaConfig::default(), 1000);
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
    r.step(Input::Persisted { index: 1 });
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
    r.step(Input::Persisted { index: 2 });
    let (_, replies) = drain(&mut r);
    assert_eq!(replies, vec![(1, 3, frame(Frame::NullArray))]);
}

#[test]
fn active_expiry_goes_through_the_log() {
    let mut r = Replica::new(ReplicaConfig::default(), 1000);
    r.step(Input::Requests(vec![request(
        1,
        1,
        &["SET", "k", "v", "PX", "50"],
    )]));
    r.step(Input::Persisted { index: 1 });
    drain(&mut r);
    r.step(Input::Tick { now_ms: 1040 });
    assert!(drain(&mut r).0.is_empty(), "not expired yet");
    r.step(Input::Tick { now_ms: 1100 });
    let (persist, _) = drain(&mut r);
    assert_eq!(persist.len(), 1);
    assert!(matches!(persist[0].payload, EntryPayload::Expire { .. }));
    assert_eq!(persist[0].ts_ms, 1100);
    // While it is in flight, no second expiry entry is proposed.
    r.step(Input::Tick { now_ms: 1200 });
    assert!(drain(&mut r).0.is_empty());
    assert_eq!(r.keyspace().db_len(0), 1);
    r.step(Input::Persisted { index: 2 });
    assert_eq!(r.keyspace().db_len(0), 0);
    assert_eq!(r.stats.expired_keys, 1);
}

#[test]
fn entry_timestamps_never_go_backwards() {
    let mut r = Replica::new(ReplicaConfig::default(), 5000);
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
    r.step(Input::Requests(vec![
        request(1, 1, &["RPUSH", "l", "a", "b", "c"]),
        request(1, 2, &["SPOP", "l"]),
        request(1, 3, &["SADD", "s", "1", "2", "3", "4"]),
        request(1, 4, &["SPOP", "s"]),
    ]));
    let (persist, _) = drain(&mut r);
    r.step(Input::Persisted { index: 4 });
    let records = persist
        .iter()
        .map(|e| WalRecord::Entry((**e).clone()))
        .collect();
    let restored = Replica::restore(ReplicaConfig::default(), 2000, records);
    assert_eq!(restored.keyspace().digest(), r.keyspace().digest());
    assert_eq!(restored.last_index(), 4);
    assert_eq!(restored.applied_index(), 4);
}
