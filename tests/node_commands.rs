//! The real `quorum node` binary on loopback, driven by the `redis` crate and by raw RESP.

mod common;

use common::{Node, bulk, err, temp_dir};
use quorum::resp::Frame;
use redis::Commands;
use std::collections::HashSet;

#[test]
fn the_redis_crate_drives_every_data_type() {
    let node = Node::start(&temp_dir("types"));
    let mut con = node.client();
    let _: () = con.set("s", "hello").unwrap();
    assert_eq!(con.get::<_, String>("s").unwrap(), "hello");
    assert_eq!(con.incr::<_, _, i64>("n", 5).unwrap(), 5);
    assert_eq!(con.rpush::<_, _, i64>("l", &["a", "b", "c"]).unwrap(), 3);
    assert_eq!(
        con.lrange::<_, Vec<String>>("l", 0, -1).unwrap(),
        vec!["a", "b", "c"]
    );
    let _: () = con
        .hset_multiple("h", &[("f1", "v1"), ("f2", "v2")])
        .unwrap();
    let all: std::collections::HashMap<String, String> = con.hgetall("h").unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(con.sadd::<_, _, i64>("set", &["x", "y", "x"]).unwrap(), 2);
    let members: HashSet<String> = con.smembers("set").unwrap();
    assert_eq!(members, HashSet::from(["x".to_owned(), "y".to_owned()]));
    let keys: HashSet<String> = con.keys("*").unwrap();
    assert_eq!(keys.len(), 5);
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 5);
    // An atomic pipeline is MULTI/EXEC.
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .incr("n", 1)
        .incr("n", 1)
        .query(&mut con)
        .unwrap();
    assert_eq!((a, b), (6, 7));
    let wrong: redis::RedisResult<i64> = con.incr("l", 1);
    let wrong = wrong.unwrap_err();
    assert_eq!(wrong.code(), Some("WRONGTYPE"));
}

#[test]
fn replies_and_errors_match_redis_byte_for_byte() {
    let node = Node::start(&temp_dir("errors"));
    let mut raw = node.raw();
    assert_eq!(raw.cmd(&["PING"]), Frame::simple("PONG"));
    assert_eq!(raw.cmd(&["SET", "k", "v"]), Frame::ok());
    assert_eq!(raw.cmd(&["GET", "k"]), bulk("v"));
    assert_eq!(raw.cmd(&["GET", "missing"]), Frame::Null);
    assert_eq!(
        raw.cmd(&["GET"]),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        raw.cmd(&["FOO", "bar"]),
        err("ERR unknown command 'FOO', with args beginning with: 'bar' ")
    );
    assert_eq!(
        raw.cmd(&["SET", "k", "v", "NX", "XX"]),
        err("ERR syntax error")
    );
    assert_eq!(
        raw.cmd(&["INCR", "k"]),
        err("ERR value is not an integer or out of range")
    );
    raw.cmd(&["LPUSH", "list", "a"]);
    assert_eq!(
        raw.cmd(&["GET", "list"]),
        err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
    assert_eq!(
        raw.cmd(&["SELECT", "99"]),
        err("ERR DB index is out of range")
    );
    // Inline commands, as typed into telnet.
    raw.send(b"SET inline \"a b\"\r\nGET inline\r\n");
    assert_eq!(raw.read(), Some(Frame::ok()));
    assert_eq!(raw.read(), Some(bulk("a b")));
    // The exact wire bytes of a RESP2 integer and a null.
    raw.send(b"*2\r\n$6\r\nEXISTS\r\n$1\r\nk\r\n");
    assert_eq!(raw.read(), Some(Frame::Integer(1)));
}

#[test]
fn hello_3_switches_to_resp3_replies() {
    let node = Node::start(&temp_dir("resp3"));
    let mut raw = node.raw();
    let Frame::Map(fields) = raw.cmd(&["HELLO", "3"]) else {
        panic!("HELLO 3 replies with a map")
    };
    assert!(fields.contains(&(bulk("proto"), Frame::Integer(3))));
    raw.cmd(&["HSET", "h", "f", "v"]);
    assert_eq!(
        raw.cmd(&["HGETALL", "h"]),
        Frame::Map(vec![(bulk("f"), bulk("v"))])
    );
    assert_eq!(raw.cmd(&["GET", "missing"]), Frame::Null);
    raw.send(b"GET missing\r\n");
    // RESP3's null is `_`.
    let mut byte = [0u8; 3];
    std::io::Read::read_exact(&mut raw.stream, &mut byte).unwrap();
    assert_eq!(&byte, b"_\r\n");
}

#[test]
fn pipelines_keep_their_order_across_writes_and_reads() {
    let node = Node::start(&temp_dir("pipeline"));
    let mut raw = node.raw();
    let mut batch = Vec::new();
    for i in 0..500 {
        let value = i.to_string();
        let args = [b"SET".as_ref(), b"p", value.as_bytes()];
        quorum::resp::encode_request(&args, &mut batch);
        quorum::resp::encode_request(&[b"GET", b"p"], &mut batch);
        quorum::resp::encode_request(&[b"PING"], &mut batch);
    }
    raw.send(&batch);
    for i in 0..500 {
        assert_eq!(raw.read(), Some(Frame::ok()));
        assert_eq!(
            raw.read(),
            Some(bulk(&i.to_string())),
            "read {i} sees its own write"
        );
        assert_eq!(raw.read(), Some(Frame::simple("PONG")));
    }
    // The same connection goes on with small batches after the large ones (a connection keeps
    // the buffers of small batches and drops those of a large one).
    for i in 0..20 {
        let mut small = Vec::new();
        let value = format!("small{i}");
        quorum::resp::encode_request(&[b"SET".as_ref(), b"p", value.as_bytes()], &mut small);
        quorum::resp::encode_request(&[b"GET", b"p"], &mut small);
        raw.send(&small);
        assert_eq!(raw.read(), Some(Frame::ok()));
        assert_eq!(raw.read(), Some(bulk(&value)));
    }
}

#[test]
fn many_concurrent_clients_each_see_their_own_writes() {
    let node = Node::start(&temp_dir("concurrent"));
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let url = node.url();
            std::thread::spawn(move || {
                let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
                for i in 0..50 {
                    let key = format!("c{t}:{i}");
                    let _: () = con.set(&key, i).unwrap();
                    assert_eq!(con.get::<_, i64>(&key).unwrap(), i);
                    let _: i64 = con.incr("shared", 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut con = node.client();
    assert_eq!(con.get::<_, i64>("shared").unwrap(), 32 * 50);
}

#[test]
fn malformed_resp_gets_a_protocol_error_and_only_that_client_is_closed() {
    let node = Node::start(&temp_dir("protocol"));
    let mut bystander = node.raw();
    bystander.cmd(&["SET", "safe", "1"]);
    for garbage in [
        &b"*1\r\n:5\r\n"[..],
        b"*abc\r\n",
        b"*1\r\n$-7\r\n",
        b"*1\r\n$3\r\nabcde\r\n",
        b"get \"unbalanced\r\n",
    ] {
        let mut victim = node.raw();
        victim.send(garbage);
        let Some(Frame::Error(text)) = victim.read() else {
            panic!("{garbage:?} gets an error reply")
        };
        assert!(text.starts_with("ERR Protocol error: "), "{text}");
        assert!(
            victim.is_closed(),
            "the connection is closed after {garbage:?}"
        );
    }
    assert_eq!(bystander.cmd(&["GET", "safe"]), bulk("1"));
}

#[test]
fn declared_lengths_are_refused_before_any_allocation() {
    let node = Node::start(&temp_dir("limits"));
    // 512 MB + 1: refused from the header alone, no bytes of it ever sent.
    let mut raw = node.raw();
    raw.send(b"*2\r\n$3\r\nGET\r\n$536870913\r\n");
    assert_eq!(
        raw.read(),
        Some(err("ERR Protocol error: invalid bulk length"))
    );
    let mut raw = node.raw();
    raw.send(b"*3000000000\r\n");
    assert_eq!(
        raw.read(),
        Some(err("ERR Protocol error: invalid multibulk length"))
    );
    // A huge but legal declared count does not reserve memory up front: the node stays well.
    let mut raw = node.raw();
    raw.send(b"*2000000000\r\n$3\r\nSET\r\n");
    let mut other = node.raw();
    assert_eq!(other.cmd(&["PING"]), Frame::simple("PONG"));
}

#[test]
fn the_query_buffer_is_bounded() {
    let dir = temp_dir("qbuf");
    let node = Node::try_start(&dir, &["--client-query-buffer-limit", "1048576"]).unwrap();
    let mut raw = node.raw();
    // A 4 MB bulk against a 1 MB query buffer limit: the client is dropped, the server is fine.
    raw.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4194304\r\n");
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..64 {
        if std::io::Write::write_all(&mut raw.stream, &chunk).is_err() {
            break;
        }
    }
    assert!(raw.is_closed());
    assert_eq!(node.raw().cmd(&["PING"]), Frame::simple("PONG"));
}

#[test]
fn a_client_pipelining_more_than_it_reads_is_disconnected() {
    let dir = temp_dir("obuf");
    let node = Node::try_start(&dir, &["--client-output-buffer-limit", "1048576"]).unwrap();
    let mut raw = node.raw();
    let value = "x".repeat(100 * 1024);
    assert_eq!(raw.cmd(&["SET", "big", &value]), Frame::ok());
    // 50 GETs of 100 KB in one pipeline: 5 MB of replies against a 1 MB limit. The client is
    // dropped before any of it is buffered past the limit; the server goes on.
    let mut pipeline = Vec::new();
    for _ in 0..50 {
        quorum::resp::encode_request(&[b"GET", b"big"], &mut pipeline);
    }
    raw.send(&pipeline);
    assert!(raw.is_closed(), "disconnected at the output buffer limit");
    let mut other = node.raw();
    assert_eq!(other.cmd(&["STRLEN", "big"]), Frame::Integer(100 * 1024));
}

#[test]
fn server_commands_answer_in_redis_shapes() {
    let node = Node::start(&temp_dir("server"));
    let mut raw = node.raw();
    raw.cmd(&["SET", "k", "v"]);
    let Frame::Bulk(info) = raw.cmd(&["INFO"]) else {
        panic!("INFO is a bulk string in RESP2")
    };
    let info = String::from_utf8(info.to_vec()).unwrap();
    for field in [
        "# Server",
        "redis_version:",
        "connected_clients:1",
        "used_memory:",
        "aof_enabled:1",
        "wal_fsyncs:",
        "total_commands_processed:",
        "role:master",
        "db0:keys=1,expires=0",
    ] {
        assert!(info.contains(field), "INFO lacks {field}:\n{info}");
    }
    let Frame::Bulk(keyspace) = raw.cmd(&["INFO", "keyspace"]) else {
        panic!()
    };
    assert!(!String::from_utf8_lossy(&keyspace).contains("# Server"));
    assert_eq!(
        raw.cmd(&["CONFIG", "GET", "maxclients"]),
        Frame::Array(vec![bulk("maxclients"), bulk("10000")])
    );
    assert_eq!(
        raw.cmd(&["CONFIG", "GET", "log-memory-max"]),
        Frame::Array(vec![bulk("log-memory-max"), bulk("67108864")])
    );
    assert_eq!(raw.cmd(&["CONFIG", "SET", "maxclients", "50"]), Frame::ok());
    assert_eq!(
        raw.cmd(&["CONFIG", "SET", "port", "1"]),
        err(
            "ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config"
        )
    );
    assert_eq!(raw.cmd(&["CLIENT", "SETNAME", "tester"]), Frame::ok());
    assert_eq!(raw.cmd(&["CLIENT", "GETNAME"]), bulk("tester"));
    let Frame::Integer(id) = raw.cmd(&["CLIENT", "ID"]) else {
        panic!()
    };
    let Frame::Bulk(list) = raw.cmd(&["CLIENT", "LIST"]) else {
        panic!()
    };
    let list = String::from_utf8_lossy(&list).into_owned();
    assert!(
        list.contains(&format!("id={id} ")) && list.contains("name=tester"),
        "{list}"
    );
    let Frame::Integer(count) = raw.cmd(&["COMMAND", "COUNT"]) else {
        panic!()
    };
    assert!(count > 100);
    let Frame::Array(docs) = raw.cmd(&["COMMAND", "DOCS", "get"]) else {
        panic!()
    };
    assert_eq!(docs[0], bulk("get"));
    let Frame::Array(time) = raw.cmd(&["TIME"]) else {
        panic!()
    };
    assert_eq!(time.len(), 2);
    assert_eq!(
        raw.cmd(&["CLIENT", "NOPE"]),
        err("ERR unknown subcommand 'NOPE'. Try CLIENT HELP.")
    );
    assert_eq!(raw.cmd(&["QUIT"]), Frame::ok());
    assert!(raw.is_closed());
}

#[test]
fn watch_aborts_exec_when_another_client_writes() {
    let node = Node::start(&temp_dir("watch"));
    let mut a = node.raw();
    let mut b = node.raw();
    a.cmd(&["SET", "w", "1"]);
    assert_eq!(a.cmd(&["WATCH", "w"]), Frame::ok());
    b.cmd(&["SET", "w", "2"]);
    a.cmd(&["MULTI"]);
    assert_eq!(a.cmd(&["SET", "w", "3"]), Frame::simple("QUEUED"));
    assert_eq!(a.cmd(&["EXEC"]), Frame::NullArray);
    assert_eq!(a.cmd(&["GET", "w"]), bulk("2"));
    // Without interference the same transaction runs.
    a.cmd(&["WATCH", "w"]);
    a.cmd(&["MULTI"]);
    a.cmd(&["SET", "w", "3"]);
    assert_eq!(a.cmd(&["EXEC"]), Frame::Array(vec![Frame::ok()]));
}

#[test]
fn keys_expire_through_the_log_and_stay_expired_after_restart() {
    let dir = temp_dir("expiry");
    let node = Node::start(&dir);
    let mut raw = node.raw();
    raw.cmd(&["SET", "short", "v", "PX", "150"]);
    raw.cmd(&["SET", "long", "v", "EX", "1000"]);
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(raw.cmd(&["GET", "short"]), Frame::Null);
    // Active expiry removed it (DBSIZE counts keys not yet deleted, as Redis does).
    assert_eq!(raw.cmd(&["DBSIZE"]), Frame::Integer(1));
    node.kill9();
    let node = Node::start(&dir);
    let mut raw = node.raw();
    assert_eq!(raw.cmd(&["GET", "short"]), Frame::Null);
    let Frame::Integer(ttl) = raw.cmd(&["TTL", "long"]) else {
        panic!()
    };
    assert!(
        (990..=1000).contains(&ttl),
        "the absolute deadline survived: {ttl}"
    );
}

#[test]
fn a_second_node_on_the_same_directory_refuses_to_start() {
    let dir = temp_dir("lock");
    let _first = Node::start(&dir);
    let stderr = Node::try_start(&dir, &[])
        .err()
        .expect("the second node must not start");
    assert!(stderr.contains("in use by another quorum node"), "{stderr}");
}

#[test]
fn maxclients_refuses_extra_connections() {
    let node = Node::start(&temp_dir("maxclients"));
    let mut admin = node.raw();
    admin.cmd(&["CONFIG", "SET", "maxclients", "2"]);
    let mut second = node.raw();
    assert_eq!(second.cmd(&["PING"]), Frame::simple("PONG"));
    let mut third = node.raw();
    assert_eq!(third.read(), Some(err("ERR max number of clients reached")));
}

#[test]
fn a_pipelined_watch_guards_the_exec_that_follows_it() {
    let node = Node::start(&temp_dir("pipelined-watch"));
    let mut a = node.raw();
    let mut b = node.raw();
    a.cmd(&["SET", "w", "1"]);
    // WATCH, then another client writes, then MULTI/SET/EXEC in one pipeline: EXEC must abort.
    assert_eq!(a.cmd(&["WATCH", "w"]), Frame::ok());
    b.cmd(&["SET", "w", "2"]);
    let mut batch = Vec::new();
    for args in [&["MULTI"][..], &["SET", "w", "3"], &["EXEC"]] {
        let args: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        quorum::resp::encode_request(&args, &mut batch);
    }
    a.send(&batch);
    assert_eq!(a.read(), Some(Frame::ok()));
    assert_eq!(a.read(), Some(Frame::simple("QUEUED")));
    assert_eq!(a.read(), Some(Frame::NullArray));
    // WATCH and EXEC in the same pipeline: the versions are known before EXEC runs, and an
    // UNWATCH in the pipeline is not undone by a late WATCH reply.
    let mut batch = Vec::new();
    for args in [
        &["WATCH", "w"][..],
        &["UNWATCH"],
        &["MULTI"],
        &["INCR", "n"],
        &["EXEC"],
    ] {
        let args: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        quorum::resp::encode_request(&args, &mut batch);
    }
    a.send(&batch);
    for expected in [
        Frame::ok(),
        Frame::ok(),
        Frame::ok(),
        Frame::simple("QUEUED"),
    ] {
        assert_eq!(a.read(), Some(expected));
    }
    assert_eq!(a.read(), Some(Frame::Array(vec![Frame::Integer(1)])));
    b.cmd(&["SET", "w", "4"]);
    a.cmd(&["MULTI"]);
    a.cmd(&["INCR", "n"]);
    assert_eq!(
        a.cmd(&["EXEC"]),
        Frame::Array(vec![Frame::Integer(2)]),
        "nothing is watched"
    );
}

#[test]
fn hello_in_a_pipeline_switches_only_the_replies_after_it() {
    let node = Node::start(&temp_dir("hello-pipeline"));
    let mut raw = node.raw();
    raw.send(b"GET missing\r\nHELLO 3\r\nGET missing\r\n");
    let mut bytes = Vec::new();
    // HELLO's map ends with `modules` (an empty array); the second GET's null follows it.
    while !bytes.ends_with(b"*0\r\n_\r\n") {
        let mut chunk = [0u8; 4096];
        let n = std::io::Read::read(&mut raw.stream, &mut chunk).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&bytes));
        bytes.extend_from_slice(&chunk[..n]);
    }
    assert!(
        bytes.starts_with(b"$-1\r\n%7\r\n"),
        "the first GET answers in RESP2, HELLO in RESP3"
    );
    assert!(
        bytes.ends_with(b"_\r\n"),
        "the GET after HELLO 3 answers in RESP3"
    );
}

#[test]
fn ttls_count_from_the_moment_of_the_write() {
    let node = Node::start(&temp_dir("ttl-precision"));
    let mut raw = node.raw();
    // The node's timer ticks every 100 ms; the deadline must still come from the write's time.
    for _ in 0..5 {
        raw.cmd(&["SET", "k", "v", "PX", "300"]);
        let Frame::Integer(left) = raw.cmd(&["PTTL", "k"]) else {
            panic!()
        };
        assert!(
            (250..=300).contains(&left),
            "PTTL right after SET PX 300 is {left}"
        );
        std::thread::sleep(std::time::Duration::from_millis(37));
    }
}

#[test]
fn error_replies_never_carry_line_breaks_from_client_input() {
    let node = Node::start(&temp_dir("crlf"));
    let mut raw = node.raw();
    assert_eq!(
        raw.cmd(&["NOPE\r\n+OK", "x"]),
        err("ERR unknown command 'NOPE  +OK', with args beginning with: 'x' ")
    );
    assert_eq!(
        raw.cmd(&["PING"]),
        Frame::simple("PONG"),
        "the stream is still in sync"
    );
}

#[test]
fn wait_answers_as_a_master_without_replicas() {
    // A single node has no other replica: WAIT answers 0, at once when 0 are asked for, after
    // the timeout otherwise, as Redis does on a master with no replicas.
    let node = Node::start(&temp_dir("wait"));
    let mut raw = node.raw();
    raw.cmd(&["SET", "k", "v"]);
    assert_eq!(raw.cmd(&["WAIT", "0", "0"]), Frame::Integer(0));
    let started = std::time::Instant::now();
    assert_eq!(raw.cmd(&["WAIT", "1", "200"]), Frame::Integer(0));
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    assert_eq!(
        raw.cmd(&["WAIT", "1", "-1"]),
        Frame::error("ERR timeout is negative")
    );
    assert_eq!(
        raw.cmd(&["WAIT", "x", "0"]),
        Frame::error("ERR value is not an integer or out of range")
    );
    assert_eq!(
        raw.cmd(&["WAIT", "1"]),
        Frame::error("ERR wrong number of arguments for 'wait' command")
    );
}
