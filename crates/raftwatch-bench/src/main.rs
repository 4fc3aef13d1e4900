//! raftwatch-bench: load generators and benchmarks. Every subcommand prints
//! one JSON object on stdout (see `CONTRACTS.md`); progress goes to stderr.

mod nodegen;
mod raft;
mod tsdb;

use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let out = match cli.command {
        Command::Tsdb(args) => serde_json::to_value(tsdb::run(&args)?)?,
        Command::Raft(args) => serde_json::to_value(raft::run(&args)?)?,
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
