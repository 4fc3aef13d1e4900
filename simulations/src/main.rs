//! `raftwatch-sim`: run one seed or sweep many (interface in CONTRACTS.md).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use raftwatch_seams::{Clock, SystemClock};
use raftwatch_sim::params::Overrides;
use raftwatch_sim::{RunOptions, arm, repro, run, thread_count};

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
    /// ack-before-commit, stale-read-as-linearizable, skip-fsync,
    /// alert-for-reset, notify-ignores-silence.
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
        forbid_threads: true,
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
            on_panic(seed, common.inject_bug.clone(), opts.overrides.clone());
            let threads = thread_count();
            let mut report = run(seed, &opts);
            // Nothing in the simulated cluster may start a real thread
            // (sled and the production log driver do): it would run outside
            // the simulation's control.
            if let (Some(before), Some(after)) = (threads, thread_count())
                && after > before
            {
                report.violations.push(format!(
                    "{} real threads were started inside the simulation",
                    after - before
                ));
            }
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
            let results = sweep(range.clone(), &common, until_fail, jobs.max(1))?;
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

/// Runs every seed as its own child process (`raftwatch-sim run`), `jobs`
/// at a time: a panic in the simulated code ends only that seed's process
/// (see `on_panic`), and a seed's result in a sweep is by construction the
/// result of `run --seed` alone. Returns (seed, simulated seconds,
/// violations) per seed run, in seed order.
fn sweep(
    range: std::ops::Range<u64>,
    common: &Common,
    until_fail: bool,
    jobs: usize,
) -> anyhow::Result<Vec<(u64, f64, Vec<String>)>> {
    let exe = std::env::current_exe().context("locating raftwatch-sim")?;
    let next = std::sync::atomic::AtomicU64::new(range.start);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let results = std::sync::Mutex::new(Vec::new());
    let work = || -> anyhow::Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        loop {
            if stop.load(SeqCst) {
                return Ok(());
            }
            let seed = next.fetch_add(1, SeqCst);
            if seed >= range.end {
                return Ok(());
            }
            let mut cmd = std::process::Command::new(&exe);
            cmd.args([
                "run",
                "--seed",
                &seed.to_string(),
                "--safety-s",
                &common.safety_s.to_string(),
            ]);
            if let Some(b) = &common.inject_bug {
                cmd.args(["--inject-bug", b]);
            }
            if common.no_faults {
                cmd.arg("--no-faults");
            }
            let out = cmd
                .stderr(std::process::Stdio::null())
                .output()
                .context("running a seed")?;
            let report: serde_json::Value = std::str::from_utf8(&out.stdout)
                .ok()
                .and_then(|s| s.lines().last())
                .and_then(|l| serde_json::from_str(l).ok())
                .unwrap_or(serde_json::Value::Null);
            let mut violations: Vec<String> = report["violations"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if violations.is_empty() && !out.status.success() {
                violations.push(format!("the run exited with {}", out.status));
            }
            let simulated_s = report["simulated_s"].as_f64().unwrap_or(0.0);
            eprintln!(
                "seed {seed}: {} ({simulated_s:.0} simulated s in {:.1} s, hash {})",
                violations.first().map_or("ok", String::as_str),
                report["wall_s"].as_f64().unwrap_or(0.0),
                report["event_log_hash"].as_str().unwrap_or("-"),
            );
            if !violations.is_empty() && until_fail {
                stop.store(true, SeqCst);
            }
            if let Ok(mut v) = results.lock() {
                v.push((seed, simulated_s, violations));
            }
        }
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs).map(|_| s.spawn(work)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a sweep worker panicked")))
            })
            .collect::<anyhow::Result<Vec<()>>>()
    })?;
    let mut v = results.into_inner().unwrap_or_default();
    v.sort_by_key(|r| r.0);
    Ok(v)
}

/// Installs the panic hook of `run`: a panic inside the simulated cluster
/// (an assertion in openraft or our code, or turmoil's) is a violation.
/// The hook prints the seed's report with it and the command that
/// reproduces it, then exits 1 at once: unwinding out of a simulated
/// runtime panics again in tokio's destructors and would abort.
fn on_panic(seed: u64, bug: Option<String>, overrides: Overrides) {
    std::panic::set_hook(Box::new(move |info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| {
                info.payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
            })
            .unwrap_or_else(|| "unknown panic".into());
        let violation = format!("panic: {msg}{at}");
        println!(
            "{}",
            serde_json::json!({"seed": seed, "event_log_hash": null, "violations": [violation]})
        );
        eprintln!("violation: {violation}");
        // Honours RUST_BACKTRACE like the default hook.
        eprintln!("{}", std::backtrace::Backtrace::capture());
        eprintln!("repro: {}", repro(seed, bug.as_deref(), &overrides));
        std::process::exit(1);
    }));
}
