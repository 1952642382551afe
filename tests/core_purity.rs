//! The core never touches the outside world: no clock, network, files, threads, environment
//! or unseeded randomness, and no std HashMap/HashSet (whose iteration order could leak into
//! output). This test reads the core's source and refuses any of those.

use std::path::Path;

const CORE: &[&str] = &[
    "src/resp.rs",
    "src/command.rs",
    "src/keyspace",
    "src/wal/record.rs",
    "src/wal/recovery.rs",
    "src/replica",
    "src/session.rs",
    "src/log.rs",
    "src/codec.rs",
    "src/rng.rs",
    "src/linearizability.rs",
    "src/invariants.rs",
    // The in-memory cluster harness is held to the same rule: one seed decides a whole run.
    "src/testing/cluster.rs",
    "src/testing/workload.rs",
];

const FORBIDDEN: &[&str] = &[
    "std::time",
    "Instant",
    "SystemTime",
    "tokio",
    "madsim",
    "std::net",
    "std::fs",
    "std::io",
    "std::thread",
    "std::env",
    "std::process",
    "thread_rng",
    "rand::",
    "getrandom",
    "HashMap",
    "HashSet",
];

fn rust_files(path: &Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// Allowed exceptions, each with the reason it is safe.
const ALLOWED: &[(&str, &str)] = &[
    // The point index of HashOrderedMap is looked up, and walked only to split a shard (which
    // decides nothing but where entries sit in the new shard); every ordered walk goes
    // through its B-tree of hashes, so no hash-table order reaches any output.
    ("src/keyspace/table.rs", "HashMap"),
];

#[test]
fn the_core_touches_nothing_outside() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for entry in CORE {
        let path = root.join(entry);
        assert!(path.exists(), "{entry} is missing: update this list");
        rust_files(&path, &mut files);
    }
    assert!(files.len() >= 15, "found only {} core files", files.len());
    let mut hits = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in FORBIDDEN {
                let allowed = ALLOWED.iter().any(|(f, w)| file.ends_with(f) && w == word);
                if code.contains(word) && !allowed {
                    hits.push(format!("{}:{}: {word}: {line}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "the core reaches outside:\n{}",
        hits.join("\n")
    );
}
