//! [`ControlStateMachine`]: the control state behind the control group.

use raftwatch_raft::GroupStateMachine;
use serde::{Deserialize, Serialize};

use crate::alerting::AlertingState;
use crate::state::{Applied, Command, ControlState, Outcome, Refusal, decode_command};

/// `ControlQuery` is a read-only request to the control state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlQuery {
    /// The cluster state (members, shards, tasks, settings): small, read
    /// by every node's agent twice a second.
    State,
    /// The alerting state (rules, alerts, silences, notifications).
    Alerting,
}

/// `ControlStateMachine` applies [`crate::Command`]s to a [`ControlState`]
/// and an [`AlertingState`]. Responses are JSON [`Outcome`]s; snapshots
/// are JSON `{"state": .., "alerting": ..}`.
#[derive(Debug, Default)]
pub struct ControlStateMachine {
    state: ControlState,
    alerting: AlertingState,
}

/// The snapshot's shape.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    state: ControlState,
    #[serde(default)]
    alerting: AlertingState,
}

/// The borrowed form written by [`ControlStateMachine::snapshot`].
#[derive(Serialize)]
struct SnapshotRef<'a> {
    state: &'a ControlState,
    alerting: &'a AlertingState,
}

impl ControlStateMachine {
    /// `new` is an empty, not yet bootstrapped state machine.
    pub fn new() -> ControlStateMachine {
        ControlStateMachine::default()
    }

    /// `state` is the current cluster state.
    pub fn state(&self) -> &ControlState {
        &self.state
    }

    /// `alerting` is the current alerting state.
    pub fn alerting(&self) -> &AlertingState {
        &self.alerting
    }

    /// `apply_command` applies one decoded command (what `apply` does
    /// after decoding; tests call it directly).
    pub fn apply_command(&mut self, command: &Command) -> Outcome {
        match command {
            Command::Alerting(a) => {
                let done = self.alerting.apply(&mut self.state, a)?;
                Ok(Applied {
                    version: self.state.version,
                    tasks: vec![],
                    alerting: Some(done),
                })
            }
            other => self.state.apply(other),
        }
    }
}

/// `decode_outcome` parses an apply response.
pub fn decode_outcome(bytes: &[u8]) -> Result<Outcome, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("control outcome: {e}"))
}

/// `decode_state` parses a `ControlQuery::State` answer.
pub fn decode_state(bytes: &[u8]) -> Result<ControlState, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("control state: {e}"))
}

/// `decode_alerting` parses a `ControlQuery::Alerting` answer.
pub fn decode_alerting(bytes: &[u8]) -> Result<AlertingState, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("alerting state: {e}"))
}

/// `encode_query` is a query's bytes.
pub fn encode_query(q: &ControlQuery) -> Vec<u8> {
    serde_json::to_vec(q).unwrap_or_default()
}

impl GroupStateMachine for ControlStateMachine {
    fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
        let outcome: Outcome = match decode_command(command) {
            Ok(c) => self.apply_command(&c),
            // A command this version cannot read changes nothing, on every
            // replica alike.
            Err(message) => Err(Refusal::Invalid { message }),
        };
        serde_json::to_vec(&outcome).unwrap_or_default()
    }

    fn query(&self, request: &[u8]) -> Vec<u8> {
        match serde_json::from_slice::<ControlQuery>(request) {
            Ok(ControlQuery::State) => serde_json::to_vec(&self.state).unwrap_or_default(),
            Ok(ControlQuery::Alerting) => serde_json::to_vec(&self.alerting).unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    fn snapshot(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(&SnapshotRef {
            state: &self.state,
            alerting: &self.alerting,
        })
        .map_err(|e| e.to_string())
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        match serde_json::from_slice::<Snapshot>(snapshot) {
            Ok(s) => {
                self.state = s.state;
                self.alerting = s.alerting;
            }
            // Snapshots written before alerting existed hold the bare state.
            Err(e) => {
                self.state =
                    decode_state(snapshot).map_err(|_| format!("control snapshot: {e}"))?;
                self.alerting = AlertingState::default();
            }
        }
        Ok(())
    }
}
