//! The peer (bus) port refuses what is not a member of its cluster: garbage, another protocol
//! version, another cluster id, a wrong secret; each closes that connection with a log line,
//! and the node keeps serving.

mod common;

use common::{Node, Raw, temp_dir};
use quorum::codec::{self, Handshake};
use quorum::resp::Frame;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn members(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Sends `bytes` as one peer frame and returns what comes back before the node closes.
fn exchange(peer_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", peer_port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut frame = Vec::new();
    codec::encode_peer_frame(payload, &mut frame);
    stream.write_all(&frame).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

fn refusal(answer: &[u8]) -> Option<String> {
    if answer.len() < 8 {
        return None;
    }
    match codec::decode_handshake(&answer[8..]) {
        Ok(Handshake::Refused { reason }) => Some(reason),
        _ => None,
    }
}

fn wait_for_log(node: &Node, needle: &str, seen: &mut Vec<String>) -> bool {
    for _ in 0..100 {
        seen.extend(node.log_lines());
        if seen.iter().any(|l| l.contains(needle)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn the_peer_port_refuses_strangers_and_keeps_serving() {
    let ports = common::free_cluster_ports();
    let node = Node::try_start_on(
        &temp_dir("peer-strangers"),
        ports[0],
        &["--cluster", &members(&ports)],
    )
    .unwrap();
    let bus = ports[0] + 10_000;
    let mut log = Vec::new();

    // Garbage: an HTTP request.
    let mut stream = TcpStream::connect(("127.0.0.1", bus)).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(wait_for_log(&node, "peer connection refused", &mut log));

    // A protocol version this node does not speak.
    let mut hello = codec::encode_handshake(&Handshake::Hello {
        cluster_id: 1,
        from: 2,
        to: 1,
        nonce: 5,
    });
    hello[8..12].copy_from_slice(&99u32.to_le_bytes());
    let reason = refusal(&exchange(bus, &hello)).expect("a refusal");
    assert!(reason.contains("version 99"), "{reason}");

    // Another cluster.
    let hello = codec::encode_handshake(&Handshake::Hello {
        cluster_id: 12345,
        from: 2,
        to: 1,
        nonce: 5,
    });
    let reason = refusal(&exchange(bus, &hello)).expect("a refusal");
    assert!(reason.contains("cluster id"), "{reason}");

    // A frame whose checksum fails, and one declaring 4 GB.
    let mut bad = Vec::new();
    codec::encode_peer_frame(b"hello", &mut bad);
    bad[4] ^= 0xff;
    let mut stream = TcpStream::connect(("127.0.0.1", bus)).unwrap();
    stream.write_all(&bad).unwrap();
    let mut stream = TcpStream::connect(("127.0.0.1", bus)).unwrap();
    stream
        .write_all(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])
        .unwrap();
    assert!(
        wait_for_log(&node, "checksum mismatch", &mut log),
        "{log:#?}"
    );
    assert!(wait_for_log(&node, "over the limit", &mut log), "{log:#?}");

    // The node still serves clients (no leader: its two peers are not running, so a write
    // waits; PING answers at once).
    let mut raw = Raw::connect(ports[0]);
    assert_eq!(raw.cmd(&["PING"]), Frame::simple("PONG"));
}

#[test]
fn nodes_with_different_secrets_never_form_a_cluster() {
    let ports = common::free_cluster_ports();
    let dir = temp_dir("peer-secret");
    let secret = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (a, b) = (secret("a", "one secret\n"), secret("b", "another secret\n"));
    let cluster = members(&ports);
    let first = Node::try_start_on(
        &dir.join("1"),
        ports[0],
        &["--cluster", &cluster, "--cluster-secret-file", &a],
    )
    .unwrap();
    let second = Node::try_start_on(
        &dir.join("2"),
        ports[1],
        &["--cluster", &cluster, "--cluster-secret-file", &b],
    )
    .unwrap();
    let mut log = Vec::new();
    assert!(
        wait_for_log(&first, "wrong cluster secret", &mut log)
            || wait_for_log(&second, "wrong cluster secret", &mut log),
        "{log:#?}"
    );
    // Without a majority nobody leads: ROLE says so on both.
    std::thread::sleep(Duration::from_millis(1500));
    for node in [&first, &second] {
        let mut raw = Raw::connect(node.port);
        let Frame::Array(role) = raw.cmd(&["ROLE"]) else {
            panic!()
        };
        assert_eq!(role[0], Frame::bulk_str("slave"));
        assert_eq!(role[3], Frame::bulk_str("connecting"));
    }
    // The same secret on both: they form a cluster (two of three is a majority).
    drop(second);
    let second = Node::try_start_on(
        &dir.join("2"),
        ports[1],
        &["--cluster", &cluster, "--cluster-secret-file", &a],
    )
    .unwrap();
    let mut raw = Raw::connect(second.port);
    assert_eq!(raw.cmd(&["SET", "k", "v"]), Frame::ok());
    drop(first);
}
