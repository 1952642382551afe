//! WAL recovery through the real binary, one test per row of the decision table documented in
//! `src/wal/recovery.rs`, and `quorum check-wal` (with and without `--fix`).

mod common;

use common::{BIN, Node, bulk, temp_dir};
use quorum::resp::Frame;
use quorum::wal::recovery::scan_segment;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The records a node writes when it starts, before any client write: its vote (the hard
/// state) and its term's no-op.
const STARTUP_RECORDS: usize = 2;

/// Writes `count` keys, kills the node, and returns the data dir and its last segment.
fn node_with_keys(name: &str, count: usize) -> (PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let node = Node::start(&dir);
    let mut raw = node.raw();
    for i in 0..count {
        assert_eq!(
            raw.cmd(&["SET", &format!("k{i}"), &format!("v{i}")]),
            Frame::ok()
        );
    }
    node.kill9();
    let segment = last_segment(&dir);
    (dir, segment)
}

fn last_segment(dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    segments.pop().expect("a segment")
}

/// Where the records end, and where each record starts.
fn layout(segment: &Path) -> (usize, Vec<usize>) {
    let bytes = std::fs::read(segment).unwrap();
    let scan = scan_segment(&bytes, true).unwrap();
    (
        scan.valid_len,
        scan.records.iter().map(|r| r.start - 8).collect(),
    )
}

fn rewrite(segment: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(segment).unwrap();
    edit(&mut bytes);
    std::fs::write(segment, bytes).unwrap();
}

fn present(node: &Node, count: usize) -> usize {
    let mut raw = node.raw();
    (0..count)
        .filter(|i| raw.cmd(&["GET", &format!("k{i}")]) == bulk(&format!("v{i}")))
        .count()
}

fn check_wal(dir: &Path, fix: bool) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("check-wal").arg(dir);
    if fix {
        cmd.arg("--fix");
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn clean_end_keeps_everything() {
    let (dir, _) = node_with_keys("clean", 20);
    let (code, text) = check_wal(&dir, false);
    assert_eq!(code, 0, "{text}");
    let records = format!("{} records", 20 + STARTUP_RECORDS);
    assert!(text.contains(&records) && text.contains("OK"), "{text}");
    let node = Node::start(&dir);
    assert_eq!(present(&node, 20), 20);
}

#[test]
fn torn_length_at_the_tail_is_cut_and_logged() {
    let (dir, segment) = node_with_keys("torn-length", 20);
    let (valid, _) = layout(&segment);
    // The file ends 3 bytes into a new record's length field.
    rewrite(&segment, |b| {
        b.truncate(valid);
        b.extend_from_slice(&[0x2a, 0x00, 0x00]);
    });
    let (code, text) = check_wal(&dir, false);
    assert_eq!(code, 0, "a torn tail is not corruption: {text}");
    assert!(text.contains("torn tail at offset"), "{text}");
    let node = Node::start(&dir);
    assert_eq!(present(&node, 20), 20);
    let log = node.log_lines().join("\n");
    assert!(log.contains("truncating a torn tail"), "{log}");
}

#[test]
fn checksum_mismatch_in_the_last_record_is_cut() {
    let (dir, segment) = node_with_keys("torn-checksum", 20);
    let (valid, starts) = layout(&segment);
    let last = *starts.last().unwrap();
    rewrite(&segment, |b| {
        b.truncate(valid);
        b[last + 10] ^= 0x55;
    });
    let node = Node::start(&dir);
    // A torn last record is indistinguishable from a write that never finished: it goes, and
    // everything before it stays.
    assert_eq!(present(&node, 19), 19);
    assert_eq!(node.raw().cmd(&["GET", "k19"]), Frame::Null);
}

#[test]
fn zero_filled_tail_is_free_space() {
    let (dir, segment) = node_with_keys("zero-fill", 20);
    let (valid, _) = layout(&segment);
    rewrite(&segment, |b| {
        b.truncate(valid);
        b.extend_from_slice(&vec![0u8; 100_000]);
    });
    let (code, text) = check_wal(&dir, false);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("zero-filled"), "{text}");
    let node = Node::start(&dir);
    assert_eq!(present(&node, 20), 20);
    // And it keeps working on top of it.
    assert_eq!(node.raw().cmd(&["SET", "k20", "v20"]), Frame::ok());
    node.kill9();
    let node = Node::start(&dir);
    assert_eq!(present(&node, 21), 21);
}

#[test]
fn corruption_before_the_tail_refuses_to_start_and_fix_does_not_touch_it() {
    let (dir, segment) = node_with_keys("mid-log", 20);
    let (_, starts) = layout(&segment);
    let victim = starts[STARTUP_RECORDS + 5];
    rewrite(&segment, |b| b[victim + 12] ^= 0x01);
    let before = std::fs::read(&segment).unwrap();
    let stderr = Node::try_start(&dir, &[])
        .err()
        .expect("the node must refuse to start");
    let name = segment.display().to_string();
    assert!(stderr.contains(&name), "names the file: {stderr}");
    assert!(
        stderr.contains(&format!("offset {victim}")),
        "names the offset: {stderr}"
    );
    assert!(stderr.contains("check-wal"), "says what to do: {stderr}");
    let (code, text) = check_wal(&dir, false);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("CORRUPT"), "{text}");
    let (code, _) = check_wal(&dir, true);
    assert_eq!(code, 1);
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        before,
        "--fix never cuts corruption"
    );
    // The operator's explicit decision: cut at the corruption, keeping a backup.
    let out = Command::new(BIN)
        .arg("check-wal")
        .arg(&dir)
        .arg("--truncate-at-corruption")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("offset {victim}")), "{text}");
    let mut backup = segment.clone().into_os_string();
    backup.push(".bak");
    assert_eq!(std::fs::read(&backup).unwrap(), before);
    let node = Node::start(&dir);
    assert_eq!(
        present(&node, 5),
        5,
        "the records before the corruption are kept"
    );
    assert_eq!(
        present(&node, 20),
        5,
        "everything from the corruption on is gone"
    );
}

#[test]
fn check_wal_fix_backs_up_and_cuts_only_a_torn_tail() {
    let (dir, segment) = node_with_keys("fix", 10);
    let (valid, _) = layout(&segment);
    rewrite(&segment, |b| {
        b.truncate(valid);
        b.extend_from_slice(b"\x40\x00\x00\x00garbage");
    });
    let (code, text) = check_wal(&dir, true);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("fixed"), "{text}");
    let mut backup = segment.clone().into_os_string();
    backup.push(".bak");
    assert_eq!(std::fs::read(&backup).unwrap().len(), valid + 11);
    assert_eq!(std::fs::read(&segment).unwrap().len(), valid);
    let (code, text) = check_wal(&dir, false);
    assert_eq!(code, 0);
    assert!(!text.contains("torn tail"), "{text}");
    let node = Node::start(&dir);
    assert_eq!(present(&node, 10), 10);
}

#[test]
fn segments_roll_over_and_recover_in_order() {
    let dir = temp_dir("segments");
    let node = Node::try_start(&dir, &["--wal-segment-bytes-max", "4096"]).unwrap();
    let mut raw = node.raw();
    for i in 0..600 {
        raw.cmd(&["SET", &format!("k{i}"), &format!("v{i}")]);
    }
    node.kill9();
    let segments = std::fs::read_dir(dir.join("wal")).unwrap().count();
    assert!(segments > 3, "{segments} segments");
    let node = Node::start(&dir);
    assert_eq!(present(&node, 600), 600);
}
