//! [`ControlStateMachine`]: the control state behind the control group.

use raftwatch_raft::GroupStateMachine;
use serde::{Deserialize, Serialize};

use crate::state::{ControlState, Outcome, Refusal, decode_command};

/// `ControlQuery` is a read-only request to the control state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlQuery {
    /// The whole state (it is small: members, shards, tasks, settings).
    State,
}

/// `ControlStateMachine` applies [`crate::Command`]s to a [`ControlState`].
/// Responses are JSON [`Outcome`]s; snapshots are the JSON state.
#[derive(Debug, Default)]
pub struct ControlStateMachine {
    state: ControlState,
}

impl ControlStateMachine {
    /// `new` is an empty, not yet bootstrapped state machine.
    pub fn new() -> ControlStateMachine {
        ControlStateMachine::default()
    }

    /// `state` is the current state.
    pub fn state(&self) -> &ControlState {
        &self.state
    }
}

/// `decode_outcome` parses an apply response.
pub fn decode_outcome(bytes: &[u8]) -> Result<Outcome, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("control outcome: {e}"))
}

/// `decode_state` parses a `ControlQuery::State` answer or a snapshot.
pub fn decode_state(bytes: &[u8]) -> Result<ControlState, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("control state: {e}"))
}

/// `encode_query` is a query's bytes.
pub fn encode_query(q: &ControlQuery) -> Vec<u8> {
    serde_json::to_vec(q).unwrap_or_default()
}

impl GroupStateMachine for ControlStateMachine {
    fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
        let outcome: Outcome = match decode_command(command) {
            Ok(c) => self.state.apply(&c),
            // A command this version cannot read changes nothing, on every
            // replica alike.
            Err(message) => Err(Refusal::Invalid { message }),
        };
        serde_json::to_vec(&outcome).unwrap_or_default()
    }

    fn query(&self, request: &[u8]) -> Vec<u8> {
        match serde_json::from_slice::<ControlQuery>(request) {
            Ok(ControlQuery::State) => serde_json::to_vec(&self.state).unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    fn snapshot(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(&self.state).map_err(|e| e.to_string())
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        self.state = decode_state(snapshot)?;
        Ok(())
    }
}
