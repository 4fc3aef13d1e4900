//! The `raftwatch` binary: `raftwatch server` runs one node,
//! `raftwatch dev` a local cluster of them as child processes.
//!
//! Exit status: 0 after a clean stop, 2 for a refused configuration (before
//! anything is bound or created), 1 when the node or a dev child failed.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use raftwatch::config::{self, LogFormat, ServerArgs, ServerConfig};
use raftwatch::dev::{self, DevArgs};
use raftwatch::logging;
use raftwatch::signals::{Signals, Stop};

/// mimalloc instead of glibc's malloc: a query or an ingest request makes
/// many small, short-lived allocations (label strings, sample vectors), and
/// under glibc 37 % of the nodes' CPU went to malloc, free and
/// `malloc_consolidate` (perf during `count({__name__=~".+"})` over 10,000
/// series; 42 % of the leader's during ingest). mimalloc halved the
/// cluster's CPU per ingested sample (30.3 to 16.3 CPU s per million):
/// README, "Performance".
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "raftwatch",
    version,
    about = "raftwatch: a Raft-replicated metrics cluster"
)]
struct Cli {
    /// How log lines are written to stderr (`RUST_LOG` filters them)
    /// [env: RAFTWATCH_LOG_FORMAT] [default: text].
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one node. Every flag also has a config-file key and a
    /// RAFTWATCH_* environment variable (e.g. --grpc-addr: grpc_addr,
    /// RAFTWATCH_GRPC_ADDR); flags beat the file, the file beats the
    /// environment.
    Server(Box<ServerArgs>),
    /// Run a local cluster of nodes as child processes.
    Dev(DevArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(mut args) => {
            args.log_format = cli.log_format;
            server(&args)
        }
        Command::Dev(args) => dev::run(&args, cli.log_format),
    }
}

/// Turns transparent huge pages off for this process, unless
/// `MIMALLOC_ALLOW_THP` is set (then mimalloc's own setting stands).
/// mimalloc advises huge pages on its arenas, so every first touch of a
/// 2 MiB region zeroed all of it: during ingest the kernel's page zeroing
/// was 13–20 % of the nodes' CPU. Off, three runs each of 3 M samples:
/// p99 162–187 ms against 288–394, resident memory 576–592 MB per node
/// against 743–763, cluster CPU per sample 5 % lower (README,
/// "Performance"). The setting is inherited by child processes.
fn disable_transparent_huge_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    #[cfg(target_os = "linux")]
    match nix::sys::prctl::set_thp_disable(true) {
        Ok(()) => tracing::debug!("transparent huge pages disabled for this process"),
        Err(e) => tracing::warn!(error = %e, "could not disable transparent huge pages"),
    }
}

/// How `serve` ended.
enum Outcome {
    /// The node returned after a clean shutdown.
    Stopped,
    /// A second SIGINT during shutdown: exit without waiting for it.
    Abandoned,
}

fn server(args: &ServerArgs) -> ExitCode {
    let config = match config::load(args, &config::env_from_process()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = logging::init(config.log_format) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    disable_transparent_huge_pages();
    if let Some(bug) = config::arm_planted_bug(&config) {
        // Printed as well as logged: `RUST_LOG` must not be able to hide
        // that this node misbehaves on purpose.
        eprintln!(
            "WARNING: planted bug {bug:?} is ARMED: this node deliberately violates its guarantees (testing only)"
        );
        tracing::warn!(
            node_id = config.node_id,
            bug,
            "planted bug armed: this node deliberately violates its guarantees (testing only)"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("raftwatch")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let node_id = config.node_id;
    match runtime.block_on(serve(config)) {
        Ok(Outcome::Stopped) => {
            tracing::info!(node_id, "stopped");
            ExitCode::SUCCESS
        }
        Ok(Outcome::Abandoned) => {
            // Tasks and blocking threads may still be mid-shutdown; do not
            // wait for them (dropping the runtime would).
            runtime.shutdown_background();
            eprintln!("error: interrupted twice; exited without finishing the shutdown");
            ExitCode::from(130)
        }
        Err(e) => {
            // Printed rather than logged: `RUST_LOG` must not be able to
            // hide why the process exited.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the node until it returns. The first SIGINT or SIGTERM asks it to
/// shut down; a later SIGINT abandons the shutdown, a later SIGTERM is
/// ignored (see [`Stop`]).
async fn serve(config: ServerConfig) -> anyhow::Result<Outcome> {
    // Installed before the node starts, so that a signal during start-up
    // shuts it down cleanly instead of killing it.
    let mut signals =
        Signals::install().map_err(|e| anyhow::anyhow!("cannot install signal handlers: {e}"))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        // An error means the sender is gone, which only happens when this
        // function returns, and then the node is dropped anyway.
        let _ = stop_rx.await;
    };
    let node_id = config.node_id;
    let mut node = std::pin::pin!(raftwatch::node::run(config, shutdown));
    let mut stop_tx = Some(stop_tx);
    loop {
        tokio::select! {
            result = &mut node => return result.map(|()| Outcome::Stopped),
            signal = signals.recv() => match (signal, stop_tx.take()) {
                (signal, Some(tx)) => {
                    tracing::info!(node_id, signal = signal.name(), "shutting down");
                    let _ = tx.send(());
                }
                (Stop::Interrupt, None) => return Ok(Outcome::Abandoned),
                (Stop::Terminate, None) => {
                    tracing::info!(node_id, "SIGTERM while shutting down; still shutting down");
                }
            },
        }
    }
}
