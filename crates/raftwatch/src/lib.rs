//! raftwatch: the node process. `config` loads and validates settings,
//! `node` runs one node (Raft host, control plane, shard groups, gRPC and
//! HTTP), `dev` runs a local cluster of child processes, `logging` and
//! `signals` are the process shell shared by `raftwatch server` and `dev`.

pub mod config;
pub mod dev;
pub mod logging;
pub mod node;
pub mod signals;
