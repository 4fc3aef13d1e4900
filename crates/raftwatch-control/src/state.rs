//! The control-plane state and its commands. `ControlState::apply` is a
//! pure function of (state, command): no clock, no randomness, only ordered
//! maps, so every replica computes the same state from the same log.

use std::collections::{BTreeMap, BTreeSet};

use raftwatch_model::{HashRange, SeriesHash};
use raftwatch_raft::NodeId;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::placement;

/// `ShardId` names a data shard; its Raft group has the same number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardId(pub u64);

impl ShardId {
    /// `group` is the shard's Raft group id.
    pub fn group(self) -> raftwatch_raft::GroupId {
        raftwatch_raft::GroupId(self.0)
    }
}

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `CONTROL_VOTERS_MAX` bounds the control group's voters; further members
/// are learners (etcd recommends 3–5 voters; more slows every commit).
pub const CONTROL_VOTERS_MAX: usize = 5;
/// `SHARDS_MAX` bounds the shard count chosen at bootstrap.
pub const SHARDS_MAX: u32 = 4096;
/// `REPLICATION_FACTOR_MAX` bounds the replicas per shard.
pub const REPLICATION_FACTOR_MAX: u32 = 7;

/// `MemberState` is a member's lifecycle stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Registered (by `members add` or `--join`), not yet promoted: a
    /// learner of the control group, holds no shard replicas.
    Joining,
    /// Eligible for shard replicas and control-group votes.
    Active,
    /// Its replicas are being moved off; receives no new ones.
    Draining,
    /// Gone; its id is never reused.
    Removed,
}

impl MemberState {
    /// `name` is the lowercase name used by the CLI and the API.
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Joining => "joining",
            MemberState::Active => "active",
            MemberState::Draining => "draining",
            MemberState::Removed => "removed",
        }
    }
}

/// `Member` is one node of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node id.
    pub id: NodeId,
    /// gRPC address, `host:port`.
    pub grpc_addr: String,
    /// HTTP address, `host:port` (may be empty when unknown).
    pub http_addr: String,
    /// Lifecycle stage.
    pub state: MemberState,
}

/// `Shard` is one entry of the shard map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// The shard id (= its Raft group id).
    pub id: ShardId,
    /// First series hash it owns (inclusive).
    pub range_start: u64,
    /// Last series hash it owns (inclusive).
    pub range_end: u64,
    /// Voters, sorted by id.
    pub replicas: Vec<NodeId>,
    /// Bumped whenever `replicas` changes. Starts at 1.
    pub epoch: u64,
    /// The replica last seen leading the shard (advisory: routing tries it
    /// first; a stale hint costs one redirect, never correctness).
    #[serde(default)]
    pub leader_hint: Option<NodeId>,
}

/// `MoveStep` is the next step of a replica move. A move never takes the
/// shard below its replication factor: the new replica is a voter before
/// the old one is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MoveStep {
    /// Create the group on `to` and add it as a learner.
    AddLearner,
    /// Once the learner has caught up, make it a voter.
    Promote,
    /// Remove `from` from the group (leadership moved away first).
    RemoveOld,
}

impl MoveStep {
    /// `name` is the step's name in the API.
    pub fn name(self) -> &'static str {
        match self {
            MoveStep::AddLearner => "add-learner",
            MoveStep::Promote => "promote",
            MoveStep::RemoveOld => "remove-old",
        }
    }
}

/// `Task` is a replica move recorded before it is executed, so a new
/// control leader resumes it at the recorded step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Task id, increasing.
    pub id: u64,
    /// The shard.
    pub shard: ShardId,
    /// The replica that leaves.
    pub from: NodeId,
    /// The replica that arrives.
    pub to: NodeId,
    /// The next step.
    pub step: MoveStep,
    /// Why: `operator`, `drain` or `rebalance`.
    pub reason: String,
}

/// `ControlState` is everything the control group replicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlState {
    /// Whether the cluster was bootstrapped.
    pub bootstrapped: bool,
    /// Bumped by every successful mutation; the compare-and-set token.
    pub version: u64,
    /// Replicas per shard.
    pub replication_factor: u32,
    /// Members by id (removed ones stay, so ids are never reused).
    pub members: BTreeMap<NodeId, Member>,
    /// The shard map.
    pub shards: BTreeMap<ShardId, Shard>,
    /// Placement tasks in flight, by id.
    pub tasks: BTreeMap<u64, Task>,
    /// Next task id.
    pub next_task_id: u64,
    /// Versioned cluster settings: key → (value, version set at).
    pub settings: BTreeMap<String, (String, u64)>,
}

/// `Command` is one control-plane mutation, as stored in the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Creates the initial members and shard map. Refused once bootstrapped.
    Bootstrap {
        /// Initial members: (id, gRPC address, HTTP address).
        members: Vec<(NodeId, String, String)>,
        /// Number of shards.
        shards: u32,
        /// Replicas per shard.
        replication_factor: u32,
    },
    /// Registers a member that will join (state `joining`). Idempotent for
    /// the same id and address.
    AddMember {
        /// The node.
        id: NodeId,
        /// gRPC address.
        grpc_addr: String,
        /// HTTP address.
        http_addr: String,
        /// Compare-and-set token.
        expected_version: Option<u64>,
    },
    /// Makes a joining member active.
    Promote {
        /// The node.
        id: NodeId,
        /// Compare-and-set token.
        expected_version: Option<u64>,
    },
    /// Starts draining a member: plans a move for each of its replicas.
    /// On a draining member, plans moves for its replicas that have none
    /// yet (their shard had a move in flight, or no target, before).
    Drain {
        /// The node.
        id: NodeId,
        /// Compare-and-set token.
        expected_version: Option<u64>,
    },
    /// Marks a drained member removed.
    Remove {
        /// The node.
        id: NodeId,
        /// Compare-and-set token.
        expected_version: Option<u64>,
    },
    /// Records a replica move.
    StartMove {
        /// The shard.
        shard: ShardId,
        /// Leaving replica.
        from: NodeId,
        /// Arriving replica.
        to: NodeId,
        /// Why.
        reason: String,
        /// Compare-and-set token.
        expected_version: Option<u64>,
    },
    /// Plans moves that even out replicas over the active members.
    Rebalance {
        /// Compare-and-set token.
        expected_version: Option<u64>,
    },
    /// Records that a task's step `done` was executed.
    AdvanceTask {
        /// The task.
        id: u64,
        /// The step that was executed (must be the task's current step).
        done: MoveStep,
    },
    /// Records the leaders the driver observed (advisory). Does not bump
    /// `version`: leader changes must not fail operators' compare-and-set.
    SetLeaderHints {
        /// (shard, leader) pairs; unknown shards and non-replicas are ignored.
        hints: Vec<(ShardId, NodeId)>,
    },
    /// An alerting mutation (rules, alert state, silences, notifications),
    /// applied by [`crate::alerting::AlertingState::apply`].
    Alerting(crate::alerting::AlertingCommand),
    /// Sets a cluster setting.
    SetSetting {
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Compare-and-set token.
        expected_version: Option<u64>,
        /// Compare-and-set on the value: applied only if the key's current
        /// value equals this, an absent key counting as the empty string
        /// (so `Some("")` means "only if unset or empty"). `None`: no check.
        /// Absent from entries written before it existed.
        #[serde(default)]
        expected_value: Option<String>,
    },
}

/// `Refusal` is why a command changed nothing. Every refusal leaves the
/// state exactly as it was.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    /// The cluster was not bootstrapped yet.
    #[error("the cluster is not bootstrapped")]
    NotBootstrapped,
    /// Bootstrap again.
    #[error("the cluster is already bootstrapped")]
    AlreadyBootstrapped,
    /// Compare-and-set failed.
    #[error("version mismatch: expected {expected}, the state is at {actual}")]
    VersionMismatch {
        /// What the caller expected.
        expected: u64,
        /// The actual version.
        actual: u64,
    },
    /// A malformed argument.
    #[error("invalid argument: {message}")]
    Invalid {
        /// What is wrong.
        message: String,
    },
    /// An unknown node.
    #[error("unknown node {node}")]
    UnknownNode {
        /// The node.
        node: u64,
    },
    /// An unknown shard.
    #[error("unknown shard {shard}")]
    UnknownShard {
        /// The shard.
        shard: u64,
    },
    /// A value compare-and-set on a setting failed.
    #[error("setting {key:?} is {actual:?}, not the expected {expected:?}")]
    ValueMismatch {
        /// The setting's key.
        key: String,
        /// The value the caller expected.
        expected: String,
        /// The setting's value (the empty string when it is unset).
        actual: String,
    },
    /// Refused in the current state.
    #[error("{message}")]
    Precondition {
        /// Why.
        message: String,
    },
}

impl Refusal {
    fn precondition(message: impl Into<String>) -> Refusal {
        Refusal::Precondition {
            message: message.into(),
        }
    }
}

/// `Applied` is what a successful command reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The state version after the command.
    pub version: u64,
    /// Tasks the command created.
    pub tasks: Vec<Task>,
    /// What an alerting command did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerting: Option<crate::alerting::AlertingApplied>,
}

/// `Outcome` is the response of applying one command.
pub type Outcome = Result<Applied, Refusal>;

/// `validate_addr` accepts `host:port` with a non-empty host (no spaces,
/// no scheme) and a port in 1..=65535.
pub fn validate_addr(addr: &str) -> Result<(), Refusal> {
    let bad = |why: &str| Refusal::Invalid {
        message: format!("address {addr:?} is not HOST:PORT ({why})"),
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    if host.is_empty() || host.contains("://") || host.chars().any(|c| c.is_whitespace()) {
        return Err(bad("bad host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(bad("bad port")),
    }
}

impl ControlState {
    /// `apply` executes one command. On `Err` the state is unchanged.
    pub fn apply(&mut self, command: &Command) -> Outcome {
        let mut next = self.clone();
        let tasks = next.apply_inner(command)?;
        if !matches!(command, Command::SetLeaderHints { .. }) {
            next.version += 1;
        }
        *self = next;
        Ok(Applied {
            version: self.version,
            tasks,
            alerting: None,
        })
    }

    fn check_version(&self, expected: Option<u64>) -> Result<(), Refusal> {
        match expected {
            Some(e) if e != self.version => Err(Refusal::VersionMismatch {
                expected: e,
                actual: self.version,
            }),
            _ => Ok(()),
        }
    }

    fn member(&self, id: NodeId) -> Result<&Member, Refusal> {
        self.members
            .get(&id)
            .ok_or(Refusal::UnknownNode { node: id.0 })
    }

    fn apply_inner(&mut self, command: &Command) -> Result<Vec<Task>, Refusal> {
        if !self.bootstrapped && !matches!(command, Command::Bootstrap { .. }) {
            return Err(Refusal::NotBootstrapped);
        }
        match command {
            Command::Bootstrap {
                members,
                shards,
                replication_factor,
            } => {
                if self.bootstrapped {
                    return Err(Refusal::AlreadyBootstrapped);
                }
                let ids: BTreeSet<NodeId> = members.iter().map(|m| m.0).collect();
                if ids.len() != members.len() || ids.is_empty() || ids.contains(&NodeId(0)) {
                    return Err(Refusal::Invalid {
                        message: "initial members must be distinct ids ≥ 1".into(),
                    });
                }
                if *shards == 0 || *shards > SHARDS_MAX {
                    return Err(Refusal::Invalid {
                        message: format!("shards must be in 1..={SHARDS_MAX}"),
                    });
                }
                if *replication_factor == 0
                    || *replication_factor > REPLICATION_FACTOR_MAX
                    || *replication_factor as usize > ids.len()
                {
                    return Err(Refusal::Invalid {
                        message: format!(
                            "replication factor {replication_factor} must be in 1..={} and at most the {} initial members",
                            REPLICATION_FACTOR_MAX,
                            ids.len()
                        ),
                    });
                }
                for (id, grpc, http) in members {
                    validate_addr(grpc)?;
                    if !http.is_empty() {
                        validate_addr(http)?;
                    }
                    self.members.insert(
                        *id,
                        Member {
                            id: *id,
                            grpc_addr: grpc.clone(),
                            http_addr: http.clone(),
                            state: MemberState::Active,
                        },
                    );
                }
                let nodes: Vec<NodeId> = ids.into_iter().collect();
                for shard in placement::initial_shard_map(&nodes, *shards, *replication_factor) {
                    self.shards.insert(shard.id, shard);
                }
                self.replication_factor = *replication_factor;
                self.bootstrapped = true;
                self.next_task_id = 1;
                Ok(vec![])
            }
            Command::AddMember {
                id,
                grpc_addr,
                http_addr,
                expected_version,
            } => {
                self.check_version(*expected_version)?;
                if id.0 == 0 {
                    return Err(Refusal::Invalid {
                        message: "node ids start at 1".into(),
                    });
                }
                validate_addr(grpc_addr)?;
                if !http_addr.is_empty() {
                    validate_addr(http_addr)?;
                }
                if let Some(other) = self.members.values().find(|m| {
                    m.id != *id && m.grpc_addr == *grpc_addr && m.state != MemberState::Removed
                }) {
                    return Err(Refusal::precondition(format!(
                        "address {grpc_addr} already belongs to node {}",
                        other.id
                    )));
                }
                match self.members.get_mut(id) {
                    Some(m) if m.state == MemberState::Removed => Err(Refusal::precondition(
                        format!("node {id} was removed; node ids are never reused"),
                    )),
                    Some(m) if m.grpc_addr != *grpc_addr => Err(Refusal::precondition(format!(
                        "node {id} is already registered at {}",
                        m.grpc_addr
                    ))),
                    Some(m) => {
                        if !http_addr.is_empty() {
                            m.http_addr = http_addr.clone();
                        }
                        Ok(vec![])
                    }
                    None => {
                        self.members.insert(
                            *id,
                            Member {
                                id: *id,
                                grpc_addr: grpc_addr.clone(),
                                http_addr: http_addr.clone(),
                                state: MemberState::Joining,
                            },
                        );
                        Ok(vec![])
                    }
                }
            }
            Command::Promote {
                id,
                expected_version,
            } => {
                self.check_version(*expected_version)?;
                let m = self.member(*id)?;
                match m.state {
                    MemberState::Joining => {
                        if let Some(m) = self.members.get_mut(id) {
                            m.state = MemberState::Active;
                        }
                        Ok(vec![])
                    }
                    MemberState::Active => Ok(vec![]),
                    s => Err(Refusal::precondition(format!(
                        "node {id} is {}; only a joining node can be promoted",
                        s.name()
                    ))),
                }
            }
            Command::Drain {
                id,
                expected_version,
            } => {
                self.check_version(*expected_version)?;
                let m = self.member(*id)?;
                match m.state {
                    // Again: plan moves for replicas that have none yet. The
                    // first drain skips shards with a move in flight, and a
                    // move onto this node may land after it; nothing else
                    // moves replicas off a draining node.
                    MemberState::Draining => {
                        let planned = placement::plan_drain(self, *id);
                        return Ok(self.record_moves(planned, "drain"));
                    }
                    MemberState::Removed => {
                        return Err(Refusal::precondition(format!("node {id} was removed")));
                    }
                    MemberState::Joining | MemberState::Active => {}
                }
                let remaining = self
                    .members
                    .values()
                    .filter(|m| m.id != *id && m.state == MemberState::Active)
                    .count();
                let holds_replicas = self.shards.values().any(|s| s.replicas.contains(id));
                if holds_replicas && remaining < self.replication_factor as usize {
                    return Err(Refusal::precondition(format!(
                        "draining node {id} would leave {remaining} active nodes for replication factor {}: shards would go below their replication factor",
                        self.replication_factor
                    )));
                }
                if let Some(m) = self.members.get_mut(id) {
                    m.state = MemberState::Draining;
                }
                let planned = placement::plan_drain(self, *id);
                Ok(self.record_moves(planned, "drain"))
            }
            Command::Remove {
                id,
                expected_version,
            } => {
                self.check_version(*expected_version)?;
                let m = self.member(*id)?;
                let holding: Vec<u64> = self
                    .shards
                    .values()
                    .filter(|s| s.replicas.contains(id))
                    .map(|s| s.id.0)
                    .collect();
                let in_tasks = self.tasks.values().any(|t| t.from == *id || t.to == *id);
                match m.state {
                    MemberState::Removed => Ok(vec![]),
                    MemberState::Active => Err(Refusal::precondition(format!(
                        "node {id} is not drained; run `raftwatchctl members drain {id}` first"
                    ))),
                    MemberState::Joining | MemberState::Draining
                        if !holding.is_empty() || in_tasks =>
                    {
                        Err(Refusal::precondition(format!(
                            "node {id} is not drained yet: it still holds replicas of shards {holding:?}"
                        )))
                    }
                    MemberState::Joining | MemberState::Draining => {
                        if let Some(m) = self.members.get_mut(id) {
                            m.state = MemberState::Removed;
                        }
                        Ok(vec![])
                    }
                }
            }
            Command::StartMove {
                shard,
                from,
                to,
                reason,
                expected_version,
            } => {
                self.check_version(*expected_version)?;
                self.check_move(*shard, *from, *to)?;
                Ok(self.record_moves(vec![(*shard, *from, *to)], reason))
            }
            Command::Rebalance { expected_version } => {
                self.check_version(*expected_version)?;
                let planned = placement::plan_rebalance(self);
                Ok(self.record_moves(planned, "rebalance"))
            }
            Command::AdvanceTask { id, done } => {
                let task = self
                    .tasks
                    .get(id)
                    .cloned()
                    .ok_or_else(|| Refusal::precondition(format!("no task {id}")))?;
                if task.step != *done {
                    return Err(Refusal::precondition(format!(
                        "task {id} is at step {}, not {}",
                        task.step.name(),
                        done.name()
                    )));
                }
                match task.step {
                    MoveStep::AddLearner => self.set_step(*id, MoveStep::Promote),
                    MoveStep::Promote => {
                        // The arriving replica is a voter now: the map says so
                        // before the leaving one goes, never fewer than RF.
                        if let Some(s) = self.shards.get_mut(&task.shard)
                            && !s.replicas.contains(&task.to)
                        {
                            s.replicas.push(task.to);
                            s.replicas.sort();
                            s.epoch += 1;
                        }
                        self.set_step(*id, MoveStep::RemoveOld);
                    }
                    MoveStep::RemoveOld => {
                        if let Some(s) = self.shards.get_mut(&task.shard) {
                            s.replicas.retain(|r| *r != task.from);
                            s.epoch += 1;
                        }
                        self.tasks.remove(id);
                    }
                }
                Ok(vec![])
            }
            Command::SetLeaderHints { hints } => {
                for (shard, leader) in hints {
                    if let Some(s) = self.shards.get_mut(shard)
                        && s.replicas.contains(leader)
                    {
                        s.leader_hint = Some(*leader);
                    }
                }
                Ok(vec![])
            }
            Command::SetSetting {
                key,
                value,
                expected_version,
                expected_value,
            } => {
                self.check_version(*expected_version)?;
                if key.is_empty() {
                    return Err(Refusal::Invalid {
                        message: "empty setting key".into(),
                    });
                }
                if let Some(expected) = expected_value {
                    let actual = self.settings.get(key).map_or("", |(v, _)| v.as_str());
                    if actual != expected {
                        return Err(Refusal::ValueMismatch {
                            key: key.clone(),
                            expected: expected.clone(),
                            actual: actual.to_string(),
                        });
                    }
                }
                self.settings
                    .insert(key.clone(), (value.clone(), self.version + 1));
                Ok(vec![])
            }
            // Applied by the state machine, which holds the alerting state.
            Command::Alerting(_) => Err(Refusal::Invalid {
                message: "alerting commands are applied with the alerting state".into(),
            }),
        }
    }

    fn set_step(&mut self, id: u64, step: MoveStep) {
        if let Some(t) = self.tasks.get_mut(&id) {
            t.step = step;
        }
    }

    /// `check_move` says whether moving `shard`'s replica from `from` to
    /// `to` may start now.
    pub fn check_move(&self, shard: ShardId, from: NodeId, to: NodeId) -> Result<(), Refusal> {
        let s = self
            .shards
            .get(&shard)
            .ok_or(Refusal::UnknownShard { shard: shard.0 })?;
        self.member(from)?;
        let target = self.member(to)?;
        if from == to {
            return Err(Refusal::Invalid {
                message: "--from and --to are the same node".into(),
            });
        }
        if !s.replicas.contains(&from) {
            return Err(Refusal::precondition(format!(
                "node {from} holds no replica of shard {shard}"
            )));
        }
        if s.replicas.contains(&to) {
            return Err(Refusal::precondition(format!(
                "node {to} already holds a replica of shard {shard}: the move would take the shard below its replication factor"
            )));
        }
        if target.state != MemberState::Active {
            return Err(Refusal::precondition(format!(
                "node {to} is {}; replicas move only to active nodes",
                target.state.name()
            )));
        }
        if let Some(t) = self.tasks.values().find(|t| t.shard == shard) {
            return Err(Refusal::precondition(format!(
                "shard {shard} already has a move in progress (task {}: {} → {})",
                t.id, t.from, t.to
            )));
        }
        Ok(())
    }

    fn record_moves(&mut self, moves: Vec<(ShardId, NodeId, NodeId)>, reason: &str) -> Vec<Task> {
        let mut out = Vec::new();
        for (shard, from, to) in moves {
            let task = Task {
                id: self.next_task_id,
                shard,
                from,
                to,
                step: MoveStep::AddLearner,
                reason: reason.to_string(),
            };
            self.next_task_id += 1;
            self.tasks.insert(task.id, task.clone());
            out.push(task);
        }
        out
    }

    /// `hosts` is whether `node` should host a replica of `shard` now: it is
    /// in the replica set or the target of a move in flight.
    pub fn hosts(&self, shard: ShardId, node: NodeId) -> bool {
        self.shards
            .get(&shard)
            .is_some_and(|s| s.replicas.contains(&node))
            || self
                .tasks
                .values()
                .any(|t| t.shard == shard && t.to == node)
    }

    /// `shard_for_hash` is the shard owning series hash `hash` (ranges are
    /// inclusive at both ends: [`HashRange::contains`], the rule the client
    /// library routes by too).
    pub fn shard_for_hash(&self, hash: u64) -> Option<&Shard> {
        self.shards
            .values()
            .find(|s| HashRange::new(s.range_start, s.range_end).contains(SeriesHash(hash)))
    }

    /// `map_epoch` identifies the shard map's shape: the sum of the shard
    /// epochs, which only grow, so it changes whenever any shard's replica
    /// set changes (and shards are never removed).
    pub fn map_epoch(&self) -> u64 {
        self.shards.values().map(|s| s.epoch).sum()
    }

    /// `active_members` are the members eligible for replicas, by id.
    pub fn active_members(&self) -> Vec<NodeId> {
        self.members
            .values()
            .filter(|m| m.state == MemberState::Active)
            .map(|m| m.id)
            .collect()
    }
}

/// `encode_command` is a command's log-entry bytes: a version byte, then
/// JSON. The version lets a newer node read an older node's log.
pub fn encode_command(c: &Command) -> Vec<u8> {
    let mut out = vec![COMMAND_VERSION];
    // Serialising a plain enum of strings and integers cannot fail.
    out.extend(serde_json::to_vec(c).unwrap_or_default());
    out
}

/// `decode_command` parses [`encode_command`]'s bytes.
pub fn decode_command(bytes: &[u8]) -> Result<Command, String> {
    match bytes.split_first() {
        Some((&COMMAND_VERSION, rest)) => {
            serde_json::from_slice(rest).map_err(|e| format!("control command: {e}"))
        }
        Some((v, _)) => Err(format!("control command version {v} is not supported")),
        None => Err("empty control command".into()),
    }
}

const COMMAND_VERSION: u8 = 1;
