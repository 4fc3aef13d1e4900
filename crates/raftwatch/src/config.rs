//! Node configuration: flags, then a TOML file, then `RAFTWATCH_*`
//! environment variables, in that order of precedence.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `LogFormat` is how log lines are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `ServerConfig` is one node's validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// This node's id, ≥ 1.
    pub node_id: u64,
    /// Where the node keeps its data (log, snapshots, shard stores).
    pub data_dir: PathBuf,
    /// gRPC listen address (Admin, Ingest, Query, NodeInternal, Raft).
    pub grpc_addr: SocketAddr,
    /// HTTP listen address.
    pub http_addr: SocketAddr,
    /// Address other nodes use to reach this node's gRPC server, when it
    /// differs from `grpc_addr` (e.g. bound on 0.0.0.0). Default: grpc_addr.
    pub advertise_grpc_addr: String,
    /// Advertised HTTP address. Default: http_addr.
    pub advertise_http_addr: String,
    /// Bootstrap members, node id → gRPC address. Empty unless bootstrapping.
    pub initial_cluster: BTreeMap<u64, String>,
    /// A running node's gRPC address to join through.
    pub join: Option<String>,
    /// Shards created at bootstrap.
    pub shards: u32,
    /// Replicas per shard.
    pub replicas: u32,
    /// Raft heartbeat interval of every group, ms.
    pub heartbeat_interval_ms: u64,
    /// Raft election timeout range, ms.
    pub election_timeout_ms_min: u64,
    /// Raft election timeout range, ms.
    pub election_timeout_ms_max: u64,
    /// Log format.
    pub log_format: LogFormat,
}
