//! raftwatch-shard: the state machine of a data shard's Raft group, the
//! time-series engine ([`raftwatch_tsdb::Tsdb`]) behind a versioned
//! command codec ([`codec`]).
//!
//! Architecture invariant: apply is a deterministic append of the sample
//! batch in the entry; it reads no clock. Whether a sample is accepted
//! depends only on the shard's data and the entry.

pub mod codec;
pub mod query;
pub mod sm;
pub mod wire;

pub use sm::{ShardStateMachine, StoreFactory};
