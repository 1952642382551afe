//! A full disk, end to end: a node whose disk stops growing answers writes with MISCONF,
//! acknowledges nothing it could not persist, keeps serving reads, and takes writes again once
//! there is space. After a restart exactly the acknowledged writes are there.

use quorum::testing::{FaultyDisk, start_in_process as start};
use redis::Commands;
use std::sync::atomic::Ordering;

#[test]
fn a_full_disk_refuses_writes_without_losing_or_inventing_any() {
    let dir = std::env::temp_dir().join(format!("quorum-full-disk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let disk = FaultyDisk::default();
    let (port, stop) = start(&dir, disk.clone());
    let mut con = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = con.set("before", "1").unwrap();
    disk.full.store(true, Ordering::SeqCst);
    // Fill what the WAL had preallocated; then every write is refused.
    let value = "x".repeat(64 * 1024);
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    for i in 0..64 {
        let key = format!("big{i}");
        match con.set::<_, _, ()>(&key, &value) {
            Ok(()) => acknowledged.push(key),
            Err(e) => {
                assert_eq!(e.code(), Some("MISCONF"), "{e}");
                assert!(e.to_string().contains("No space left on device"), "{e}");
                refused.push(key);
            }
        }
    }
    assert!(!refused.is_empty(), "the disk filled up");
    assert!(
        refused.len() >= 40,
        "once full, writes keep failing: {}",
        refused.len()
    );
    // Reads go on, and a refused write is not there.
    assert_eq!(con.get::<_, String>("before").unwrap(), "1");
    for key in &refused {
        assert_eq!(con.get::<_, Option<String>>(key).unwrap(), None);
    }
    // Space comes back: writes work again.
    disk.full.store(false, Ordering::SeqCst);
    let _: () = con.set("after", "2").unwrap();
    drop(con);
    // Stop the node and start a new one on the same directory.
    stop.send(()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (port, _stop) = start(&dir, FaultyDisk::default());
    let mut con = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    assert_eq!(con.get::<_, String>("before").unwrap(), "1");
    assert_eq!(con.get::<_, String>("after").unwrap(), "2");
    for key in &acknowledged {
        assert_eq!(
            con.get::<_, Option<String>>(key).unwrap().as_deref(),
            Some(&value[..])
        );
    }
    for key in &refused {
        assert_eq!(
            con.get::<_, Option<String>>(key).unwrap(),
            None,
            "{key} was never acknowledged"
        );
    }
}
