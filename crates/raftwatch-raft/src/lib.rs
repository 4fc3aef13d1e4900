//! raftwatch-raft: the replication core shared by every Raft group.
//!
//! One node hosts many groups (group 0 is the control plane, 1..S are
//! shards). They share one durable log ([`raftwatch_wal`], group-committed:
//! one `fdatasync` covers every group's appends queued since the last), one
//! tonic service that carries every group's messages tagged with the group
//! id, and one connection per peer node. State machines plug in through
//! [`GroupStateMachine`].
//!
//! Module map:
//! - [`types`]: the openraft type configuration and aliases.
//! - [`rt`]: the runtime seam: the only place that spawns tasks or threads.
//! - [`log_store`]: openraft's `RaftLogStorage` over the shared WAL.
//! - [`state_machine`]: the plug-in trait and openraft's `RaftStateMachine`
//!   adapter with durable snapshots.
//! - [`convert`]: protobuf ⇄ openraft conversions (`TryFrom`, never panics).
//! - [`network`]: the tonic client side (`RaftNetworkV2`), one channel per
//!   peer shared by all groups.
//! - [`service`]: the tonic server side, dispatching by group id.
//! - [`host`]: [`RaftHost`], a node's set of groups and the operations on them.
//! - [`quiesce`]: idle groups stop ticking; one node-level liveness
//!   exchange per peer stands in for their heartbeats.

pub mod coalesce;
pub mod convert;
pub mod host;
pub mod log_store;
pub mod network;
pub mod quiesce;
pub mod rt;
pub mod service;
pub mod state_machine;
pub mod types;

pub use host::{GroupHandle, HostConfig, HostEnv, RaftHost, ReadConsistency, SnapshotStores};
pub use state_machine::GroupStateMachine;
pub use types::{GroupId, NodeAddr, NodeId};
