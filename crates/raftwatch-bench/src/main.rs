//! raftwatch-bench: load generators and benchmarks. Every subcommand prints
//! one JSON object on stdout (see `CONTRACTS.md`); progress goes to stderr.
//! Exit status: 0 on success, 1 when a run failed, 2 for a usage error.

mod alerts;
mod cpu;
mod grpc;
mod http1;
mod ingest;
mod nodegen;
mod query;
mod raft;
mod shard_eval;
mod suite;
mod tsdb;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc, as in the server. The ingest load generator shares the
/// machine with the cluster it measures, and under glibc's malloc 45 % of
/// its CPU was malloc, free and copying (every round rebuilds 100,000
/// series' labels); the engine benchmarks measure the engine as the server
/// runs it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "raftwatch-bench",
    about = "raftwatch load generators and benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write node_exporter-like data through the storage engine onto sled,
    /// flush, reopen and read it all back.
    Tsdb(tsdb::TsdbArgs),
    /// Replicate entries through 3 in-process nodes over real gRPC on
    /// loopback with the real durable log.
    Raft(raft::RaftArgs),
    /// Write node_exporter-like series to a running cluster and measure
    /// throughput, latency and the cluster's CPU per sample.
    Ingest(ingest::IngestArgs),
    /// Send one query (a selector over gRPC, or PromQL over the Prometheus
    /// HTTP API) repeatedly and measure latency.
    Query(query::QueryArgs),
    /// Time the issue-7 query suite (rate, topk, histogram_quantile, a raw
    /// series, count of everything) against a Prometheus HTTP API.
    Suite(suite::SuiteArgs),
    /// Time one shard's evaluation of the suite's pushed-down queries in
    /// process (no Raft, no network).
    ShardEval(shard_eval::ShardEvalArgs),
    /// Measure notification latency (threshold crossed → webhook
    /// received) against a running cluster; replaces its Alertmanager
    /// configuration.
    Alerts(alerts::AlertsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<String> {
    let out = match command {
        Command::Tsdb(args) => serde_json::to_value(tsdb::run(&args)?)?,
        Command::Raft(args) => serde_json::to_value(raft::run(&args)?)?,
        Command::Ingest(args) => serde_json::to_value(ingest::run(&args)?)?,
        Command::Query(args) => serde_json::to_value(query::run(&args)?)?,
        Command::Suite(args) => serde_json::to_value(suite::run(&args)?)?,
        Command::ShardEval(args) => serde_json::to_value(shard_eval::run(&args)?)?,
        Command::Alerts(args) => serde_json::to_value(alerts::run(&args)?)?,
    };
    Ok(serde_json::to_string_pretty(&out)?)
}
