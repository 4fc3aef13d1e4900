//! `raftwatch-sim`: run one seed or sweep many (interface in CONTRACTS.md).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use raftwatch_seams::{Clock, SystemClock};
use raftwatch_sim::params::Overrides;
use raftwatch_sim::{RunOptions, arm, repro, run};

#[derive(Parser, Debug)]
#[command(
    name = "raftwatch-sim",
    about = "The deterministic simulator: the whole raftwatch cluster in one process, from one seed"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug, Clone)]
struct Common {
    /// Plant a bug in the real code (needs `--features inject-bugs`):
    /// ack-before-commit, stale-read-as-linearizable, skip-fsync.
    #[arg(long, value_name = "NAME")]
    inject_bug: Option<String>,
    /// Simulated seconds of the safety phase (faults on).
    #[arg(long, default_value_t = 20, value_name = "S")]
    safety_s: u64,
    /// Run without faults (a baseline).
    #[arg(long)]
    no_faults: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One simulation; prints one JSON object.
    Run {
        #[arg(long)]
        seed: u64,
        /// Also write the event log to FILE (to diff two runs).
        #[arg(long, value_name = "FILE")]
        event_log: Option<std::path::PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Runs every seed in A..B; prints one JSON object.
    Sweep {
        /// Seeds as A..B (B excluded).
        #[arg(long, value_name = "A..B")]
        seeds: String,
        /// Stop at the first failing seed.
        #[arg(long)]
        until_fail: bool,
        /// Seeds run in parallel (each simulation is single-threaded).
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        #[command(flatten)]
        common: Common,
    },
}

fn options(c: &Common) -> RunOptions {
    RunOptions {
        overrides: Overrides {
            safety_ms: c.safety_s * 1000,
            no_faults: c.no_faults,
            ..Overrides::default()
        },
        inject_bug: c.inject_bug.clone(),
    }
}

fn parse_range(s: &str) -> anyhow::Result<std::ops::Range<u64>> {
    let (a, b) = s.split_once("..").context("--seeds takes A..B")?;
    let (a, b): (u64, u64) = (a.trim().parse()?, b.trim().parse()?);
    anyhow::ensure!(a < b, "--seeds: empty range {a}..{b}");
    Ok(a..b)
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("raftwatch-sim: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    match cli.command {
        Command::Run {
            seed,
            event_log,
            common,
        } => {
            arm(common.inject_bug.as_deref())?;
            let opts = options(&common);
            let report = run(seed, &opts);
            if let Some(path) = event_log {
                std::fs::write(&path, &report.event_log)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            println!("{}", serde_json::to_string(&report)?);
            if report.violations.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("violation: {}", report.violations[0]);
                eprintln!(
                    "repro: {}",
                    repro(seed, common.inject_bug.as_deref(), &opts.overrides)
                );
                Ok(ExitCode::from(1))
            }
        }
        Command::Sweep {
            seeds,
            until_fail,
            jobs,
            common,
        } => {
            arm(common.inject_bug.as_deref())?;
            let range = parse_range(&seeds)?;
            let opts = options(&common);
            let clock = SystemClock::new();
            let started = clock.now_mono();
            let results = sweep(range.clone(), &opts, until_fail, jobs.max(1));
            let wall_s = clock.now_mono().nanos_since(started) as f64 / 1e9;
            let simulated_s: f64 = results.iter().map(|r| r.1).sum();
            let failed: Vec<serde_json::Value> = results
                .iter()
                .filter(|r| !r.2.is_empty())
                .map(|(seed, _, v)| {
                    serde_json::json!({
                        "seed": seed,
                        "violation": v[0],
                        "repro": repro(*seed, common.inject_bug.as_deref(), &opts.overrides),
                    })
                })
                .collect();
            let out = serde_json::json!({
                "seeds": results.len(),
                "range": seeds,
                "failed": failed,
                "simulated_s": simulated_s,
                "wall_s": wall_s,
                "speedup": if wall_s > 0.0 { simulated_s / wall_s } else { 0.0 },
                "seeds_per_hour": if wall_s > 0.0 { results.len() as f64 * 3600.0 / wall_s } else { 0.0 },
            });
            println!("{out}");
            for f in &failed {
                eprintln!(
                    "failed: seed {} ({}); repro: {}",
                    f["seed"],
                    f["violation"],
                    f["repro"].as_str().unwrap_or_default()
                );
            }
            Ok(if failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// Runs the seeds (in order, or `jobs` at a time); returns (seed, simulated
/// seconds, violations) per seed run.
fn sweep(
    range: std::ops::Range<u64>,
    opts: &RunOptions,
    until_fail: bool,
    jobs: usize,
) -> Vec<(u64, f64, Vec<String>)> {
    let next = std::sync::atomic::AtomicU64::new(range.start);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let results = std::sync::Mutex::new(Vec::new());
    let work = || {
        use std::sync::atomic::Ordering::SeqCst;
        loop {
            if stop.load(SeqCst) {
                return;
            }
            let seed = next.fetch_add(1, SeqCst);
            if seed >= range.end {
                return;
            }
            let r = run(seed, opts);
            eprintln!(
                "seed {seed}: {} ({:.0} simulated s in {:.1} s, hash {})",
                if r.violations.is_empty() {
                    "ok".to_string()
                } else {
                    r.violations[0].clone()
                },
                r.simulated_s,
                r.wall_s,
                r.event_log_hash
            );
            if !r.violations.is_empty() && until_fail {
                stop.store(true, SeqCst);
            }
            if let Ok(mut v) = results.lock() {
                v.push((seed, r.simulated_s, r.violations));
            }
        }
    };
    if jobs == 1 {
        work();
    } else {
        // Each simulation lives on its own thread (turmoil's world is
        // thread-local); the driver itself is outside every simulation.
        std::thread::scope(|s| {
            for _ in 0..jobs {
                s.spawn(work);
            }
        });
    }
    let mut v = results.into_inner().unwrap_or_default();
    v.sort_by_key(|r| r.0);
    v
}
