//! `raftwatch-jepsen`: see the crate docs and `jepsen/README.md`.
//!
//! Exit status: 0 when every checker holds, 1 when a checker found an
//! anomaly, 2 when the harness itself failed (or could not decide).

// The harness drives real processes in real time from outside the system
// under test: wall clock, real threads and tokio's spawn are what it is
// for, and the simulator never runs it.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Parser, Subcommand};
use raftwatch_jepsen::cluster::{self, Cluster, Node, Options};
use raftwatch_jepsen::nemesis;
use raftwatch_jepsen::net::{self, Network, Subnet};
use raftwatch_jepsen::nsrt::NsRuntime;
use raftwatch_jepsen::runner::{self, RunConfig, Runtimes};

const WORKLOADS: [&str; 3] = ["append", "register", "alerts"];

#[derive(Parser, Debug)]
#[command(
    name = "raftwatch-jepsen",
    about = "Fault-injection testing of real raftwatch processes in network namespaces"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One run: faults and load for --time-limit seconds, then checks.
    Run(RunArgs),
    /// Removes every namespace, link and route an interrupted run left.
    Cleanup {
        /// The test /24.
        #[arg(long, default_value = "10.213.77.0/24")]
        subnet: String,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Servers (3..=9).
    #[arg(long, default_value_t = 5)]
    nodes: u64,
    /// Seconds of load and faults (a recovery period and the final reads
    /// follow).
    #[arg(long, default_value_t = 60)]
    time_limit: u64,
    /// Comma-separated: kill, pause, partition, clock, membership ("none"
    /// for none).
    #[arg(long, default_value = "kill,pause,partition")]
    nemesis: String,
    /// Comma-separated: append, register, alerts.
    #[arg(long, default_value = "append,register,alerts")]
    workload: String,
    /// Seed of the fault schedule and the clients' choices.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Results directory (history.jsonl, results.json, latency.png, node
    /// logs and data).
    #[arg(long)]
    out: PathBuf,
    /// Arm a planted bug in every server (needs a server built with the
    /// `inject-bugs` feature, see --server-bin).
    #[arg(long)]
    inject_bug: Option<String>,
    /// The `raftwatch` binary [default: next to this one].
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The `raftwatchctl` binary [default: next to this one].
    #[arg(long)]
    ctl_bin: Option<PathBuf>,
    /// Shards at bootstrap.
    #[arg(long, default_value_t = 4)]
    shards: u32,
    /// Seconds of recovery after the faults end, before the final reads.
    #[arg(long, default_value_t = 10)]
    recovery: u64,
    /// The test /24 (a blackhole route keeps it on this machine).
    #[arg(long, default_value = "10.213.77.0/24")]
    subnet: String,
}

fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn list(text: &str, allowed: &[&str], what: &str) -> anyhow::Result<Vec<String>> {
    if text == "none" || text.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim) {
        if !allowed.contains(&item) {
            anyhow::bail!("unknown {what} {item:?} (known: {})", allowed.join(", "));
        }
        if !out.iter().any(|x| x == item) {
            out.push(item.to_string());
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Cleanup { subnet } => match Subnet::parse(&subnet) {
            Ok(s) => {
                let failed = net::cleanup(s);
                for f in &failed {
                    eprintln!("{f}");
                }
                if failed.is_empty() {
                    eprintln!("clean");
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(2)
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run(args) => match run(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if !nix::unistd::Uid::effective().is_root() {
        anyhow::bail!("must run as root (it creates network namespaces)");
    }
    if !(3..=9).contains(&args.nodes) {
        anyhow::bail!("--nodes must be 3..=9");
    }
    let subnet = Subnet::parse(&args.subnet).map_err(anyhow::Error::msg)?;
    let nemeses = list(&args.nemesis, &nemesis::ALL, "nemesis")?;
    let workloads = list(&args.workload, &WORKLOADS, "workload")?;
    let faketime = nemeses.iter().any(|n| n == "clock");
    if faketime && !std::path::Path::new(cluster::FAKETIME_LIB).exists() {
        anyhow::bail!(
            "the clock nemesis needs libfaketime ({}): apt-get install libfaketime",
            cluster::FAKETIME_LIB
        );
    }
    for tool in ["ip", "iptables"] {
        if std::process::Command::new(tool).arg("-V").output().is_err() {
            anyhow::bail!("{tool} not found: apt-get install iproute2 iptables");
        }
    }
    let server_bin = args
        .server_bin
        .clone()
        .unwrap_or_else(|| sibling("raftwatch"));
    let ctl_bin = args
        .ctl_bin
        .clone()
        .unwrap_or_else(|| sibling("raftwatchctl"));
    for b in [&server_bin, &ctl_bin] {
        if !b.exists() {
            anyhow::bail!(
                "{} not found (build it, or pass --server-bin/--ctl-bin)",
                b.display()
            );
        }
    }
    std::fs::create_dir_all(&args.out)?;
    let out = std::fs::canonicalize(&args.out)?;
    let data_root = out.join("nodes");
    if data_root.exists() {
        std::fs::remove_dir_all(&data_root)?;
    }
    std::fs::create_dir_all(&data_root)?;

    // The network: node i is host 10+i, the clients 2, the receiver 3.
    let mut hosts: Vec<(String, u8)> = (1..=args.nodes)
        .map(|i| (format!("n{i}"), 10 + i as u8))
        .collect();
    hosts.push(("client".into(), 2));
    hosts.push(("hook".into(), 3));
    let host_refs: Vec<(&str, u8)> = hosts.iter().map(|(n, i)| (n.as_str(), *i)).collect();
    // Signal handlers go in before anything is created, so SIGINT or
    // SIGTERM can never kill the harness before it cleans up.
    let main_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (mut int, mut term) = main_rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    let net = Arc::new(Network::create(subnet, &host_refs)?);

    let nodes: Vec<Node> = (1..=args.nodes)
        .filter_map(|i| {
            let host = net.host(&format!("n{i}"))?;
            let (data_dir, log, clock_file) = cluster::node_files(&data_root, i);
            Some(Node {
                id: i,
                ns: host.ns.clone(),
                ip: host.ip,
                data_dir,
                log,
                clock_file,
            })
        })
        .collect();
    let options = Options {
        server_bin,
        ctl_bin,
        shards: args.shards,
        replicas: 3,
        faketime,
        inject_bug: args.inject_bug.clone(),
        ctl_ns: format!("{}client", net::PREFIX),
    };
    let cluster = Arc::new(Mutex::new(Cluster::new(options, nodes)));

    let result = (|| -> anyhow::Result<runner::Outputs> {
        let client_rt =
            NsRuntime::new(&format!("{}client", net::PREFIX), 2).map_err(anyhow::Error::msg)?;
        let hook_rt =
            NsRuntime::new(&format!("{}hook", net::PREFIX), 1).map_err(anyhow::Error::msg)?;
        let rts = Runtimes {
            client: client_rt.runtime.handle().clone(),
            hook: hook_rt.runtime.handle().clone(),
        };
        let config = RunConfig {
            nodes: args.nodes,
            time_limit_s: args.time_limit,
            nemesis: nemeses.clone(),
            workloads: workloads.clone(),
            seed: args.seed,
            out: out.clone(),
            inject_bug: args.inject_bug.clone(),
            recovery_s: args.recovery,
            command: std::env::args().collect::<Vec<_>>().join(" "),
        };
        let outcome = main_rt.block_on(async {
            tokio::select! {
                r = runner::run(config, cluster.clone(), net.clone(), rts) => r.map_err(anyhow::Error::msg),
                _ = int.recv() => Err(anyhow::anyhow!("interrupted")),
                _ = term.recv() => Err(anyhow::anyhow!("terminated")),
            }
        });
        for e in client_rt.errors().into_iter().chain(hook_rt.errors()) {
            tracing::error!("a client thread was outside its namespace: {e}");
        }
        client_rt.runtime.shutdown_background();
        hook_rt.runtime.shutdown_background();
        outcome
    })();

    // Always: stop the nemesis and monitor tasks (they may restart nodes),
    // then the servers, then remove the network (route last).
    main_rt.shutdown_timeout(std::time::Duration::from_secs(10));
    cluster
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .stop_all();
    let leftover = match Arc::try_unwrap(net) {
        Ok(mut n) => n.destroy(),
        Err(_) => net::cleanup(subnet),
    };
    for l in &leftover {
        eprintln!("cleanup: {l}");
    }

    let outputs = result?;
    for line in &outputs.summary {
        println!("{line}");
    }
    println!(
        "valid: {}  results: {}",
        outputs.valid,
        out.join("results.json").display()
    );
    Ok(match outputs.valid {
        serde_json::Value::Bool(true) => ExitCode::SUCCESS,
        serde_json::Value::Bool(false) => ExitCode::from(1),
        _ => ExitCode::from(2),
    })
}
