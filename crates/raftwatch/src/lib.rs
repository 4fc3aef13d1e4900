//! raftwatch: the node process. `config` loads and validates settings,
//! `node` runs one node (Raft host, control plane, shard groups, gRPC and
//! HTTP), `dev` runs a local cluster of child processes.

pub mod config;
pub mod node;
