//! Seeded chaos runs of the replica core in the in-memory cluster (`quorum::testing`): 3- and
//! 5-replica clusters under random faults and random client operations. Every step is checked
//! against every invariant; each run ends with healing, a liveness check, durability and
//! linearizability of the client history.
//!
//! `QUORUM_CORE_CASES` sets how many seeds run (default 300), `QUORUM_CORE_SEED` the first.
//! A failure prints the seed and the command that replays it. Seeds that once failed are
//! listed in `REGRESSIONS` and always run.

use quorum::testing::workload::{ScenarioConfig, ScenarioReport, run_scenario};

/// (replicas, seed) of runs that once failed, fixed since; they run on every `cargo test`.
const REGRESSIONS: &[(usize, u64)] = &[
    // The end-of-run durability check read a just-restarted leader's log before it committed
    // anything (its commit index starts at 0), and reported an acknowledged write missing.
    (3, 3664),
    // A stale read: a follower restarted while its ReadIndex ask was in flight; the answer to
    // the old ask (an older index) matched the new life's first ask, which numbered from 1
    // again. Ask numbers now start at random at each start.
    (5, 248),
    // A leader re-elected in a newer term got the answer to one of its appends of an older
    // term, which the follower had refused for its term with a zero hint; the leader took the
    // zero for a hint and underflowed. Such answers are now a variant of their own.
    (3, 157),
    // A full disk refused a follower's batch; before the retry at the next tick, a newer
    // append was written after the gap (the real writer panics there), and an append reply
    // could count the unwritten entries as durable. Entries now wait behind those a failed
    // batch left unwritten, and count as durable only once written.
    (3, 15),
    (5, 4),
];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}

fn run(replicas: usize, seed: u64) -> Result<ScenarioReport, String> {
    let config = ScenarioConfig::new(replicas, seed);
    match run_scenario(&config) {
        Ok(report) => Ok(report),
        Err(violation) => Err(format!(
            "{violation}\n  replay: QUORUM_CORE_REPLICAS={replicas} QUORUM_CORE_SEED={seed} cargo test --features testing --test core_cluster replay_one -- --nocapture"
        )),
    }
}

#[test]
fn random_faults_keep_every_invariant() {
    let cases = env_u64("QUORUM_CORE_CASES", 300);
    let first = env_u64("QUORUM_CORE_SEED", 1);
    let mut failures = Vec::new();
    let (mut log_reads, mut cut_short, mut slow, mut failed) = (0, 0, 0, 0);
    let mut writes_refused = 0;
    for case in 0..cases {
        let seed = first + case;
        let replicas = if case % 2 == 0 { 3 } else { 5 };
        match run(replicas, seed) {
            Ok(report) => {
                log_reads += report.log_reads;
                cut_short += report.log_reads_cut_short;
                slow += report.log_reads_slow;
                failed += report.log_reads_failed;
                writes_refused += report.writes_refused;
            }
            Err(failure) => {
                eprintln!("FAILED seed {seed} ({replicas} replicas): {failure}");
                failures.push(failure);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!(
        "{cases} runs: {log_reads} WAL reads for followers, {cut_short} of them a piece, \
         {slow} slow, {failed} failed; {writes_refused} batches refused by a full disk"
    );
    // Half the runs bound the log in memory tightly: followers that fall behind must be
    // caught up from the WAL, a piece at a time, under the faults, including slow and failed
    // reads.
    if cases >= 100 {
        assert!(
            cut_short > 0 && slow > 0 && failed > 0,
            "too few WAL reads of each kind: {log_reads} reads, {cut_short} pieces, {slow} slow, {failed} failed"
        );
        // Some runs have a disk that refuses writes for a while.
        assert!(writes_refused > 0, "no write was refused");
    }
}

#[test]
fn regression_seeds_pass() {
    for &(replicas, seed) in REGRESSIONS {
        if let Err(failure) = run(replicas, seed) {
            panic!("regression seed {seed}: {failure}");
        }
    }
}

/// Replays one run (`QUORUM_CORE_SEED`, `QUORUM_CORE_REPLICAS`) and prints its report.
#[test]
fn replay_one() {
    let Ok(seed) = std::env::var("QUORUM_CORE_SEED") else {
        return;
    };
    let seed: u64 = seed.parse().unwrap();
    let replicas = env_u64("QUORUM_CORE_REPLICAS", 3) as usize;
    let mut config = ScenarioConfig::new(replicas, seed);
    config.trace_lines = env_u64("QUORUM_CORE_TRACE", 0) as usize;
    match run_scenario(&config) {
        Ok(report) => println!("{report:?}"),
        Err(violation) => panic!("{violation}"),
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let config = ScenarioConfig::new(3, 42);
    let a = run_scenario(&config).expect("seed 42 passes");
    let b = run_scenario(&config).expect("seed 42 passes");
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.steps, b.steps);
    let other = run_scenario(&ScenarioConfig::new(3, 43)).expect("seed 43 passes");
    assert_ne!(a.trace_hash, other.trace_hash);
}
