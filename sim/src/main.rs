//! `quorum-sim`: seeded chaos simulations of real quorum nodes under madsim. Build and run it
//! with `ci/sim.sh` (it needs `--cfg madsim` and its own target directory).

#[cfg(madsim)]
mod client;
#[cfg(madsim)]
mod disk;
#[cfg(madsim)]
mod nemesis;
#[cfg(madsim)]
mod run;
#[cfg(madsim)]
mod world;

#[cfg(not(madsim))]
fn main() {
    eprintln!("quorum-sim runs only in a simulation build: use ci/sim.sh");
    std::process::exit(2);
}

#[cfg(madsim)]
fn main() {
    std::process::exit(driver::main());
}

#[cfg(madsim)]
mod driver {
    use crate::run::{RunConfig, RunReport, run_seed};
    use clap::Parser;
    use std::collections::BTreeMap;
    use std::time::Instant;

    /// Seeded chaos simulations of real quorum nodes.
    #[derive(Parser, Debug)]
    struct Args {
        /// How many seeds to run, from --seed on.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Nodes in the cluster (3 or 5).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Simulated seconds of faults and workload per seed.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Also run every seed listed in this file (one per line, `#` comments).
        #[arg(long)]
        regressions: Option<std::path::PathBuf>,
        /// Run this many of the seeds twice and require equal trace hashes.
        #[arg(long, default_value_t = 0)]
        check_determinism: u64,
        /// Print one line per seed (otherwise only failures and the totals).
        #[arg(long)]
        verbose: bool,
        /// Stop at the first failing seed (the mutation check).
        #[arg(long)]
        stop_at_failure: bool,
        /// Run the workload without any fault (a baseline).
        #[arg(long)]
        no_faults: bool,
    }

    fn config(args: &Args, seed: u64) -> RunConfig {
        RunConfig {
            safety_ms: args.seconds * 1000,
            faults: !args.no_faults,
            ..RunConfig::new(seed, args.nodes)
        }
    }

    fn replay(args: &Args, seed: u64) -> String {
        format!(
            "ci/sim.sh --seed {seed} --seeds 1 --nodes {} --seconds {} --verbose",
            args.nodes, args.seconds
        )
    }

    fn line(report: &RunReport) -> String {
        let faults: Vec<String> = report
            .faults
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        format!(
            "seed {}: {} sim {:.1}s ops {} (acked {}, unknown {}, failed {}) steps {} msgs {} trace {:016x} faults [{}]",
            report.seed,
            match (&report.violation, report.inconclusive) {
                (Some(_), _) => "FAIL",
                (None, true) => "ok (linearizability inconclusive)",
                (None, false) => "ok",
            },
            report.simulated_ms as f64 / 1000.0,
            report.operations,
            report.acknowledged,
            report.unknown,
            report.failed,
            report.steps,
            report.messages,
            report.trace_hash,
            faults.join(" ")
        )
    }

    pub fn main() -> i32 {
        let args = Args::parse();
        if std::env::var_os("RUST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .init();
        }
        if args.nodes != 3 && args.nodes != 5 {
            eprintln!("--nodes must be 3 or 5");
            return 2;
        }
        let mut seeds: Vec<u64> = (args.seed..args.seed + args.seeds).collect();
        if let Some(path) = &args.regressions {
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    return 2;
                }
            };
            for line in text.lines() {
                let word = line.split('#').next().unwrap_or("").trim();
                if word.is_empty() {
                    continue;
                }
                match word.parse() {
                    Ok(seed) => seeds.push(seed),
                    Err(_) => {
                        eprintln!("{}: not a seed: {line:?}", path.display());
                        return 2;
                    }
                }
            }
        }
        let started = Instant::now();
        let mut totals: BTreeMap<&'static str, u64> = BTreeMap::new();
        let (mut simulated_ms, mut operations, mut failures, mut inconclusive) = (0, 0, 0, 0);
        let mut first_failure = None;
        for (i, &seed) in seeds.iter().enumerate() {
            let report = run_seed(config(&args, seed));
            simulated_ms += report.simulated_ms;
            operations += report.operations;
            for (kind, n) in &report.faults {
                *totals.entry(kind).or_default() += n;
            }
            if report.inconclusive {
                inconclusive += 1;
            }
            if args.verbose || report.violation.is_some() {
                println!("{}", line(&report));
            }
            if (i as u64) < args.check_determinism {
                let again = run_seed(config(&args, seed));
                if again.trace_hash != report.trace_hash {
                    println!(
                        "seed {seed}: NOT DETERMINISTIC: trace {:016x} then {:016x}",
                        report.trace_hash, again.trace_hash
                    );
                    failures += 1;
                    first_failure.get_or_insert(i as u64 + 1);
                }
            }
            if let Some(violation) = &report.violation {
                failures += 1;
                first_failure.get_or_insert(i as u64 + 1);
                println!("  {violation}");
                println!("  replay: {}", replay(&args, seed));
                if args.stop_at_failure {
                    break;
                }
            }
        }
        let wall = started.elapsed().as_secs_f64();
        let ran = seeds.len().min(
            first_failure
                .filter(|_| args.stop_at_failure)
                .map_or(seeds.len(), |f| f as usize),
        );
        println!(
            "seeds {ran} ({} nodes, {} s of faults each), simulated {:.0} s in {wall:.1} s wall ({:.1} seeds/s, {:.0} simulated s per wall s)",
            args.nodes,
            args.seconds,
            simulated_ms as f64 / 1000.0,
            ran as f64 / wall,
            simulated_ms as f64 / 1000.0 / wall
        );
        let faults: Vec<String> = totals.iter().map(|(k, n)| format!("{k}={n}")).collect();
        println!("faults injected: {}", faults.join(", "));
        println!(
            "operations checked {operations}, linearizability inconclusive on {inconclusive} seeds, violations {failures}"
        );
        if let Some(at) = first_failure {
            println!("first failure at seed number {at} of the run");
        }
        if failures > 0 { 1 } else { 0 }
    }
}
