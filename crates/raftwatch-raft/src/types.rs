//! The openraft type configuration every group shares.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use raftwatch_wal::{GroupId, NodeId};

/// `NodeAddr` is what openraft knows of a member: where to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddr {
    /// The node's gRPC address, `host:port`.
    pub grpc_addr: String,
}

/// `Request` is an opaque command for a group's state machine. openraft
/// requires `Display` of application data, hence the newtype.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request(pub Vec<u8>);

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Request({} bytes)", self.0.len())
    }
}

/// `Response` is a state machine's answer to one applied [`Request`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response(pub Vec<u8>);

/// `Rt` is tokio with openraft's randomness (election timeouts, tick
/// jitter) drawn from a seeded generator: every task that touches openraft
/// runs inside `Rt::scope(seed, ..)` (see [`crate::rt`]).
/// Its timers are tokio's, with long sleeps coalesced onto a grid when
/// [`crate::rt::coalesce_long_timers`] is on.
pub type Rt = openraft_rt::deterministic_rng::DeterministicRng<crate::rt::CoalescingTokio>;

openraft::declare_raft_types!(
    /// `TypeConfig` is shared by the control group and every shard group.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = NodeAddr,
        AsyncRuntime = Rt,
);

/// `SnapshotData` is a state machine snapshot, whole, in memory. Shards
/// stream theirs in bounded pieces on the wire (see [`crate::network`]).
pub type SnapshotData = Vec<u8>;

/// Aliases that keep openraft's generics out of signatures.
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// The persistent vote.
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
/// A log entry.
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// Membership as stored with the log id that introduced it.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot with its data.
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;
/// One group's Raft instance.
pub type GroupRaft = openraft::Raft<TypeConfig, crate::state_machine::SmAdapter>;
