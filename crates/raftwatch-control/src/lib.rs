//! raftwatch-control: the control plane's replicated state (members, the
//! shard map, placement tasks, versioned settings), its commands, the
//! `GroupStateMachine` that applies them, and the pure placement planner.
//!
//! Architecture invariant: `ControlState::apply` is a pure function of
//! (state, command); plans made inside it (drain, rebalance) use only the
//! state, with ties broken by the lowest id.

pub mod alerting;
pub mod placement;
pub mod sm;
pub mod state;

pub use sm::{ControlQuery, ControlStateMachine};
pub use state::{
    Applied, Command, ControlState, Member, MemberState, MoveStep, Outcome, Refusal, Shard,
    ShardId, Task,
};
