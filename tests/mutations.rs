//! The mutation check: the harness must catch deliberate bugs. Each `bug-...` cargo feature
//! plants one in the core (see Cargo.toml); built with one of them, this test runs the seeded
//! chaos scenarios of `tests/core_cluster.rs` until one fails, and fails itself if none does
//! within `SEEDS_MAX`; and the `core_schedule` fuzz corpus, until an input fails. A checker
//! that catches none of them proves nothing.
//!
//! `ci/mutations.sh` builds and runs it once per feature. Without a bug feature, only the
//! test that keeps that script's list complete runs.

#[cfg(any(
    feature = "bug-ack-before-fsync",
    feature = "bug-no-noop",
    feature = "bug-vote-without-persist",
    feature = "bug-read-without-read-index",
    feature = "bug-apply-before-commit",
))]
mod planted {
    #[test]
    fn the_harness_catches_the_planted_bug() {
        use quorum::testing::workload::{ScenarioConfig, run_scenario};
        /// Every bug has been caught by seed 60 or earlier (see the issue notes); 200 leaves room.
        const SEEDS_MAX: u64 = 200;
        for seed in 1..=SEEDS_MAX {
            let replicas = if seed % 2 == 1 { 3 } else { 5 };
            if let Err(violation) = run_scenario(&ScenarioConfig::new(replicas, seed)) {
                println!("caught at seed {seed} ({replicas} replicas): {violation}");
                return;
            }
        }
        panic!("the harness missed the planted bug in {SEEDS_MAX} seeds");
    }

    /// The fuzzer's schedules must catch it too: the `core_schedule` corpus is replayed until an
    /// input finds a violation.
    #[test]
    fn the_fuzz_corpus_catches_the_planted_bug() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/core_schedule");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        for path in &files {
            let data = std::fs::read(path).unwrap();
            if let Some((replicas, seed, Err(violation))) =
                quorum::fuzzing::run_core_schedule(&data)
            {
                println!(
                    "caught by {} ({replicas} replicas, seed {seed}): {violation}",
                    path.display()
                );
                return;
            }
        }
        panic!(
            "none of the {} corpus inputs caught the planted bug",
            files.len()
        );
    }
}

/// The `bug-...` features a manifest declares.
fn planted_bugs(manifest: &str) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| word.starts_with("bug-"))
        .map(str::to_string)
        .collect()
}

/// Every `bug-...` feature is exercised: the core's by ci/mutations.sh (the in-memory harness)
/// unless the in-memory harness cannot meet it (the WAL's: it has neither bit flips nor the
/// WAL writer), and every one by ci/sim-mutations.sh (the simulation of the real node).
#[test]
fn every_planted_bug_is_checked() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let in_memory = std::fs::read_to_string(root.join("ci/mutations.sh")).unwrap();
    let simulated = std::fs::read_to_string(root.join("ci/sim-mutations.sh")).unwrap();
    let core = planted_bugs(root.join("Cargo.toml").to_str().unwrap());
    let sim = planted_bugs(root.join("sim/Cargo.toml").to_str().unwrap());
    assert!(core.len() >= 6 && sim.len() >= 7, "{core:?} {sim:?}");
    for feature in &core {
        assert!(
            in_memory.contains(feature.as_str())
                || ["bug-ignore-checksum", "bug-fsync-not-done"].contains(&feature.as_str()),
            "ci/mutations.sh does not check {feature}"
        );
        assert!(
            sim.contains(feature),
            "sim/Cargo.toml does not forward {feature}"
        );
    }
    for feature in &sim {
        assert!(
            simulated.contains(feature.as_str()),
            "ci/sim-mutations.sh does not check {feature}"
        );
    }
}
