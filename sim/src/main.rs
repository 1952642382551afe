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
        /// Also run every seed listed in this file for this cluster size (one per line, an
        /// optional `nodes=5`, `#` comments).
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
        /// Seeds run at once, each in its own process.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Run the one seed `--seed` in this process and print its report (used by the driver).
        #[arg(long, hide = true)]
        child: bool,
    }

    fn config(args: &Args, seed: u64) -> RunConfig {
        RunConfig {
            safety_ms: args.seconds * 1000,
            faults: !args.no_faults,
            ..RunConfig::new(seed, args.nodes)
        }
    }

    fn replay(args: &Args, seed: u64) -> String {
        let features = std::env::var("QUORUM_SIM_FEATURES")
            .map(|f| format!("QUORUM_SIM_FEATURES={f} "))
            .unwrap_or_default();
        format!(
            "{features}ci/sim.sh --seed {seed} --seeds 1 --nodes {} --seconds {}{} --verbose",
            args.nodes,
            args.seconds,
            if args.no_faults { " --no-faults" } else { "" }
        )
    }

    /// One seed's outcome, as the child process that ran it reported it.
    #[derive(Default)]
    struct Outcome {
        seed: u64,
        simulated_ms: u64,
        operations: u64,
        acknowledged: u64,
        unknown: u64,
        failed: u64,
        steps: u64,
        messages: u64,
        trace_hash: u64,
        inconclusive: bool,
        faults: BTreeMap<String, u64>,
        violation: Option<String>,
    }

    /// The child's report: one tab-separated line.
    fn encode(report: &RunReport) -> String {
        let faults: Vec<String> = report
            .faults
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        format!(
            "REPORT\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:x}\t{}\t{}\t{}",
            report.seed,
            report.simulated_ms,
            report.operations,
            report.acknowledged,
            report.unknown,
            report.failed,
            report.steps,
            report.messages,
            report.trace_hash,
            u8::from(report.inconclusive),
            faults.join(";"),
            report
                .violation
                .as_ref()
                .map(|v| v.to_string().replace(['\t', '\n'], " "))
                .unwrap_or_default()
        )
    }

    fn decode(line: &str) -> Option<Outcome> {
        let fields: Vec<&str> = line.strip_prefix("REPORT\t")?.split('\t').collect();
        let [
            seed,
            sim,
            ops,
            acked,
            unknown,
            failed,
            steps,
            msgs,
            trace,
            inconclusive,
            faults,
            violation,
        ] = fields.as_slice()
        else {
            return None;
        };
        let number = |s: &str| s.parse::<u64>().ok();
        Some(Outcome {
            seed: number(seed)?,
            simulated_ms: number(sim)?,
            operations: number(ops)?,
            acknowledged: number(acked)?,
            unknown: number(unknown)?,
            failed: number(failed)?,
            steps: number(steps)?,
            messages: number(msgs)?,
            trace_hash: u64::from_str_radix(trace, 16).ok()?,
            inconclusive: *inconclusive == "1",
            faults: faults
                .split(';')
                .filter_map(|f| f.rsplit_once('='))
                .filter_map(|(k, n)| Some((k.to_string(), number(n)?)))
                .collect(),
            violation: (!violation.is_empty()).then(|| violation.to_string()),
        })
    }

    /// Runs each seed in its own process: madsim keeps a little state per process, and a
    /// seed run after others in the same process can take another path than the same seed run
    /// first (measured), which would break replaying a failure by its seed.
    fn spawn_child(args: &Args, seed: u64) -> std::process::Child {
        let mut command = std::process::Command::new(std::env::current_exe().expect("own path"));
        command
            .args(["--child", "--seed", &seed.to_string()])
            .args(["--nodes", &args.nodes.to_string()])
            .args(["--seconds", &args.seconds.to_string()])
            .stdout(std::process::Stdio::piped());
        if args.no_faults {
            command.arg("--no-faults");
        }
        command.spawn().expect("start a child simulation")
    }

    fn collect(seed: u64, child: std::process::Child) -> Outcome {
        let output = child.wait_with_output().expect("a child simulation");
        let text = String::from_utf8_lossy(&output.stdout);
        text.lines().find_map(decode).unwrap_or_else(|| Outcome {
            seed,
            violation: Some(format!(
                "the simulation process failed ({}): {}",
                output.status,
                text.lines().last().unwrap_or("")
            )),
            ..Outcome::default()
        })
    }

    fn line(outcome: &Outcome) -> String {
        let faults: Vec<String> = outcome
            .faults
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        format!(
            "seed {}: {} sim {:.1}s ops {} (acked {}, unknown {}, failed {}) steps {} msgs {} trace {:016x} faults [{}]",
            outcome.seed,
            match (&outcome.violation, outcome.inconclusive) {
                (Some(_), _) => "FAIL",
                (None, true) => "ok (linearizability inconclusive)",
                (None, false) => "ok",
            },
            outcome.simulated_ms as f64 / 1000.0,
            outcome.operations,
            outcome.acknowledged,
            outcome.unknown,
            outcome.failed,
            outcome.steps,
            outcome.messages,
            outcome.trace_hash,
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
                let mut words = line.split('#').next().unwrap_or("").split_whitespace();
                let Some(word) = words.next() else {
                    continue;
                };
                // A seed for another cluster size is left to the run of that size.
                let nodes = match words.next() {
                    None => 3,
                    Some(spec) => match spec.strip_prefix("nodes=").and_then(|n| n.parse().ok()) {
                        Some(n) => n,
                        None => {
                            eprintln!("{}: not `nodes=N`: {line:?}", path.display());
                            return 2;
                        }
                    },
                };
                match word.parse() {
                    Ok(seed) if nodes == args.nodes => seeds.push(seed),
                    Ok(_) => {}
                    Err(_) => {
                        eprintln!("{}: not a seed: {line:?}", path.display());
                        return 2;
                    }
                }
            }
        }
        if args.child {
            let report = run_seed(config(&args, args.seed));
            println!("{}", encode(&report));
            return 0;
        }
        let started = Instant::now();
        let mut totals: BTreeMap<String, u64> = BTreeMap::new();
        let (mut simulated_ms, mut operations, mut failures, mut inconclusive) = (0, 0, 0, 0);
        let mut first_failure = None;
        let jobs = args.jobs.max(1);
        let mut outcomes = std::collections::VecDeque::new();
        let mut next = 0;
        for i in 0..seeds.len() {
            // Keep `jobs` children running, and take their reports in seed order.
            while next < seeds.len() && next < i + jobs {
                outcomes.push_back((seeds[next], spawn_child(&args, seeds[next])));
                next += 1;
            }
            let (seed, child) = outcomes.pop_front().expect("a running child");
            let report = collect(seed, child);
            simulated_ms += report.simulated_ms;
            operations += report.operations;
            for (kind, n) in &report.faults {
                *totals.entry(kind.clone()).or_default() += n;
            }
            if report.inconclusive {
                inconclusive += 1;
            }
            if args.verbose || report.violation.is_some() {
                println!("{}", line(&report));
            }
            if (i as u64) < args.check_determinism {
                let again = collect(seed, spawn_child(&args, seed));
                if again.trace_hash != report.trace_hash {
                    println!(
                        "seed {seed}: NOT DETERMINISTIC: trace {:016x} then {:016x}",
                        report.trace_hash, again.trace_hash
                    );
                    println!("  replay: {} --check-determinism 1", replay(&args, seed));
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
                    for (_, mut child) in outcomes.drain(..) {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
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
        let (core, faults): (Vec<_>, Vec<_>) = totals
            .iter()
            .partition(|(k, _)| k.starts_with(crate::world::CORE_EVENT));
        let list = |items: Vec<(&String, &u64)>| {
            items
                .iter()
                .map(|(k, n)| format!("{}={n}", k.trim_start_matches(crate::world::CORE_EVENT)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("faults injected: {}", list(faults));
        println!("core events: {}", list(core));
        println!(
            "operations checked {operations}, linearizability inconclusive on {inconclusive} seeds, violations {failures}"
        );
        if let Some(at) = first_failure {
            println!("first failure at seed number {at} of the run");
        }
        if failures > 0 { 1 } else { 0 }
    }
}
