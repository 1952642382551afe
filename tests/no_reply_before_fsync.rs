//! The durability rule, end to end through the real node adapter: while the disk's fsync is
//! stalled, a write gets no reply (and neither does a read queued behind it); the reply comes
//! only after the fsync completed.

use quorum::testing::{FaultyDisk, start_in_process};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[test]
fn a_write_is_answered_only_after_its_fsync() {
    let dir = std::env::temp_dir().join(format!("quorum-fsync-gate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let disk = FaultyDisk::default();
    let (port, _stop) = start_in_process(&dir, disk.clone());
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut reply = [0u8; 64];

    stream.write_all(b"SET before 1\r\n").unwrap();
    let n = stream.read(&mut reply).unwrap();
    assert_eq!(&reply[..n], b"+OK\r\n");

    disk.stall_sync.store(true, Ordering::SeqCst);
    let syncs_before = disk.syncs.load(Ordering::SeqCst);
    stream.write_all(b"SET k v\r\nGET k\r\n").unwrap();
    let early = stream.read(&mut reply);
    assert!(
        early.is_err(),
        "a reply left while the fsync was stalled: {:?}",
        early.map(|n| String::from_utf8_lossy(&reply[..n]).into_owned())
    );
    assert_eq!(disk.syncs.load(Ordering::SeqCst), syncs_before);

    disk.stall_sync.store(false, Ordering::SeqCst);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    while got.len() < b"+OK\r\n$1\r\nv\r\n".len() {
        let n = stream.read(&mut reply).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&reply[..n]);
    }
    assert_eq!(got, b"+OK\r\n$1\r\nv\r\n");
    assert!(
        disk.syncs.load(Ordering::SeqCst) > syncs_before,
        "the fsync came first"
    );
}
