//! Replays every file of the fuzz corpora (and any crash artifacts) through the properties the
//! cargo-fuzz targets check, on the stable toolchain, without libFuzzer.

use quorum::fuzzing::{
    CountingAlloc, check_resp_decode, check_wal_recovery, take_largest_allocation,
};
use std::path::Path;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

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

#[test]
fn resp_decode_corpus_replays() {
    let files = corpus("resp_decode");
    assert!(files.len() >= 10, "the resp_decode corpus is missing");
    for (name, data) in files {
        take_largest_allocation();
        check_resp_decode(&data);
        // Nothing is sized from a declared length: allocations stay proportional to the input.
        let largest = take_largest_allocation();
        assert!(
            largest <= 64 * data.len() + 64 * 1024,
            "{name}: a {largest}-byte allocation"
        );
    }
}

#[test]
fn wal_recovery_corpus_replays() {
    let files = corpus("wal_recovery");
    assert!(files.len() >= 10, "the wal_recovery corpus is missing");
    for (_, data) in files {
        check_wal_recovery(&data);
    }
}
