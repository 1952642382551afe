//! Replays every file of the fuzz corpora (and any crash artifacts) through the properties the
//! cargo-fuzz targets check, on the stable toolchain, without libFuzzer.

use quorum::fuzzing::{
    CountingAlloc, check_core_schedule, check_peer_decode, check_resp_decode, check_wal_recovery,
    take_largest_allocation,
};
use std::path::Path;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// The largest allocation is counted process-wide: the tests take turns, so that one's
/// allocations are not counted against another's input.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    // corpus/: what the fuzzer kept (minimized with `cargo fuzz cmin`); regressions/: inputs
    // that once failed, kept whole; artifacts/: crashes found locally and not yet filed.
    for dir in [
        root.join("corpus").join(target),
        root.join("regressions").join(target),
        root.join("artifacts").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// Replays `target`'s files through `check` (which panics when its property fails). With an
/// allowance, also checks that no allocation was sized from a declared length: each stays
/// within 64 bytes per input byte plus `allowance_bytes`. Every replay takes its turn, even
/// an unmeasured one, whose allocations would count against the others' inputs.
fn replay(target: &str, check: fn(&[u8]), allowance_bytes: Option<usize>) {
    let _turn = one_at_a_time();
    let files = corpus(target);
    assert!(files.len() >= 10, "the {target} corpus is missing");
    for (name, data) in files {
        take_largest_allocation();
        check(&data);
        let largest = take_largest_allocation();
        if let Some(allowance) = allowance_bytes {
            assert!(
                largest <= 64 * data.len() + allowance,
                "{name}: a {largest}-byte allocation"
            );
        }
    }
}

#[test]
fn resp_decode_corpus_replays() {
    replay("resp_decode", check_resp_decode, Some(64 * 1024));
}

#[test]
fn wal_recovery_corpus_replays() {
    replay("wal_recovery", check_wal_recovery, None);
}

#[test]
fn peer_decode_corpus_replays() {
    // Preallocation from a declared count is capped: postcard's at 1 MiB, the append
    // decoder's at 1024 items (and at the bytes left).
    replay("peer_decode", check_peer_decode, Some(1 << 20));
}

#[test]
fn core_schedule_corpus_replays() {
    replay("core_schedule", check_core_schedule, None);
}
