//! Shared helpers: building states, applying commands with checks, the
//! invariants every reachable state satisfies, and the random command
//! generator used by the model and determinism proptests.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use raftwatch_control::{
    Applied, Command, ControlState, MemberState, MoveStep, Outcome, Refusal, ShardId,
};
use raftwatch_raft::NodeId;

/// `addr` is node `id`'s (valid, unique) gRPC address.
pub fn addr(id: u64) -> String {
    format!("node{id}.test:7000")
}

/// `http` is node `id`'s HTTP address.
pub fn http(id: u64) -> String {
    format!("node{id}.test:9090")
}

/// `json` is the state's canonical bytes, for byte-for-byte comparisons.
pub fn json(state: &ControlState) -> String {
    serde_json::to_string(state).expect("a control state serialises")
}

/// `bootstrap_command` bootstraps nodes `1..=nodes`.
pub fn bootstrap_command(nodes: u64, shards: u32, replication_factor: u32) -> Command {
    Command::Bootstrap {
        members: (1..=nodes).map(|i| (NodeId(i), addr(i), http(i))).collect(),
        shards,
        replication_factor,
    }
}

/// `bootstrapped` is a fresh state bootstrapped with nodes `1..=nodes`.
pub fn bootstrapped(nodes: u64, shards: u32, replication_factor: u32) -> ControlState {
    let mut s = ControlState::default();
    ok(
        &mut s,
        &bootstrap_command(nodes, shards, replication_factor),
    );
    s
}

/// `ok` applies a command that must succeed, checks the transition and
/// the invariants, and returns what it reported.
#[track_caller]
pub fn ok(state: &mut ControlState, command: &Command) -> Applied {
    let before = state.clone();
    let outcome = state.apply(command);
    if let Err(e) =
        check_transition(&before, state, command, &outcome).and_then(|()| check_invariants(state))
    {
        panic!("{command:?}: {e}");
    }
    match outcome {
        Ok(applied) => applied,
        Err(refusal) => panic!("{command:?} was refused: {refusal}"),
    }
}

/// `refused` applies a command that must be refused, checks that it changed
/// nothing, and returns the refusal.
#[track_caller]
pub fn refused(state: &mut ControlState, command: &Command) -> Refusal {
    let before = json(state);
    match state.apply(command) {
        Ok(applied) => panic!("{command:?} was accepted: {applied:?}"),
        Err(refusal) => {
            assert_eq!(
                json(state),
                before,
                "{command:?} was refused but changed the state"
            );
            refusal
        }
    }
}

/// `add_and_promote` registers node `id` and makes it active.
pub fn add_and_promote(state: &mut ControlState, id: u64) {
    ok(
        state,
        &Command::AddMember {
            id: NodeId(id),
            grpc_addr: addr(id),
            http_addr: http(id),
            expected_version: None,
        },
    );
    ok(
        state,
        &Command::Promote {
            id: NodeId(id),
            expected_version: None,
        },
    );
}

/// `run_tasks` executes every task's steps, oldest task first, one
/// `AdvanceTask` at a time (each checked by [`ok`]), calling `after_step`
/// after each; returns the number of steps.
pub fn run_tasks(state: &mut ControlState, mut after_step: impl FnMut(&ControlState)) -> usize {
    let mut steps = 0;
    while let Some(task) = state.tasks.values().next().cloned() {
        ok(
            state,
            &Command::AdvanceTask {
                id: task.id,
                done: task.step,
            },
        );
        after_step(state);
        steps += 1;
        assert!(steps <= 3 * 4096, "tasks never finish");
    }
    steps
}

/// `replica_counts` is the number of replicas each active member holds.
pub fn replica_counts(state: &ControlState) -> BTreeMap<NodeId, usize> {
    let mut counts: BTreeMap<NodeId, usize> =
        state.active_members().into_iter().map(|m| (m, 0)).collect();
    for s in state.shards.values() {
        for r in &s.replicas {
            if let Some(c) = counts.get_mut(r) {
                *c += 1;
            }
        }
    }
    counts
}

/// `spread` is max − min of the counts (0 when empty).
pub fn spread<K>(counts: &BTreeMap<K, usize>) -> usize {
    let max = counts.values().max().copied().unwrap_or(0);
    let min = counts.values().min().copied().unwrap_or(0);
    max - min
}

/// `held_by` are the shards `node` holds a replica of.
pub fn held_by(state: &ControlState, node: NodeId) -> BTreeSet<ShardId> {
    state
        .shards
        .values()
        .filter(|s| s.replicas.contains(&node))
        .map(|s| s.id)
        .collect()
}

/// `check_ranges` checks that the shards' ranges, in range order, are a
/// partition of `0..=u64::MAX`: the first starts at 0, each starts right
/// after the previous one ends, the last ends at `u64::MAX`.
pub fn check_ranges<'a>(
    shards: impl IntoIterator<Item = &'a raftwatch_control::Shard>,
) -> Result<(), String> {
    let mut ranges: Vec<(u64, u64, ShardId)> = shards
        .into_iter()
        .map(|s| (s.range_start, s.range_end, s.id))
        .collect();
    ranges.sort();
    let mut next: Option<u64> = Some(0);
    for (start, end, id) in &ranges {
        if start > end {
            return Err(format!("shard {id}: range {start}..={end} is empty"));
        }
        if Some(*start) != next {
            return Err(format!(
                "shard {id} starts at {start}, expected {next:?} (gap or overlap)"
            ));
        }
        next = end.checked_add(1);
    }
    if ranges.is_empty() || next.is_some() {
        return Err(format!("ranges do not reach u64::MAX: {ranges:?}"));
    }
    Ok(())
}

/// `check_invariants` checks what holds in every reachable state:
/// (b) each shard has ≥ RF distinct replicas, sorted, no duplicates;
/// (c) at most one task per shard, no task moves to a removed node;
/// (d) a removed member holds no replica and is in no task;
/// (e) the shard ranges partition the hash space.
pub fn check_invariants(state: &ControlState) -> Result<(), String> {
    if !state.bootstrapped {
        if state.shards.is_empty() && state.members.is_empty() && state.tasks.is_empty() {
            return Ok(());
        }
        return Err("not bootstrapped but not empty".into());
    }
    let rf = state.replication_factor as usize;
    for s in state.shards.values() {
        if !s.replicas.windows(2).all(|w| w[0] < w[1]) {
            return Err(format!(
                "shard {}: replicas {:?} not sorted and distinct",
                s.id, s.replicas
            ));
        }
        if s.replicas.len() < rf {
            return Err(format!(
                "shard {}: {} replicas {:?}, below replication factor {rf}",
                s.id,
                s.replicas.len(),
                s.replicas
            ));
        }
        if s.epoch == 0 {
            return Err(format!("shard {}: epoch 0", s.id));
        }
        for r in &s.replicas {
            if !state.members.contains_key(r) {
                return Err(format!("shard {}: replica {r} is not a member", s.id));
            }
        }
    }
    let mut busy = BTreeSet::new();
    for (id, t) in &state.tasks {
        if *id != t.id || *id >= state.next_task_id {
            return Err(format!(
                "task {id}: id mismatch or ≥ next {}",
                state.next_task_id
            ));
        }
        if !busy.insert(t.shard) {
            return Err(format!("shard {}: more than one task", t.shard));
        }
        if !state.shards.contains_key(&t.shard) {
            return Err(format!("task {id}: unknown shard {}", t.shard));
        }
        match state.members.get(&t.to).map(|m| m.state) {
            None => return Err(format!("task {id}: unknown target {}", t.to)),
            Some(MemberState::Removed) => {
                return Err(format!("task {id}: target {} is removed", t.to));
            }
            Some(_) => {}
        }
        if t.from == t.to {
            return Err(format!("task {id}: from = to"));
        }
    }
    for m in state.members.values() {
        if m.state != MemberState::Removed {
            continue;
        }
        if let Some(s) = state.shards.values().find(|s| s.replicas.contains(&m.id)) {
            return Err(format!("removed node {} holds shard {}", m.id, s.id));
        }
        if let Some(t) = state
            .tasks
            .values()
            .find(|t| t.from == m.id || t.to == m.id)
        {
            return Err(format!("removed node {} is in task {}", m.id, t.id));
        }
    }
    check_ranges(state.shards.values())
}

/// `without_hints` is the state with every shard's advisory leader hint
/// cleared.
fn without_hints(state: &ControlState) -> ControlState {
    let mut s = state.clone();
    for sh in s.shards.values_mut() {
        sh.leader_hint = None;
    }
    s
}

/// `check_transition` checks one `apply`: (a) a refusal leaves the state
/// byte-for-byte unchanged, a success bumps `version` by exactly one and
/// reports it — except `SetLeaderHints`, which changes only leader hints
/// and leaves `version` alone (so it never fails an operator's
/// compare-and-set); (f) no shard's epoch decreases, and an epoch rises
/// whenever the shard's replicas change.
pub fn check_transition(
    before: &ControlState,
    after: &ControlState,
    command: &Command,
    outcome: &Outcome,
) -> Result<(), String> {
    match outcome {
        Err(r) => {
            if json(before) != json(after) {
                return Err(format!("refused ({r}) but the state changed"));
            }
        }
        Ok(applied) => {
            let hints_only = matches!(command, Command::SetLeaderHints { .. });
            let bump = u64::from(!hints_only);
            if after.version != before.version + bump {
                return Err(format!(
                    "accepted but version went {} → {}",
                    before.version, after.version
                ));
            }
            if hints_only && json(&without_hints(before)) != json(&without_hints(after)) {
                return Err("SetLeaderHints changed more than leader hints".into());
            }
            if applied.version != after.version {
                return Err(format!(
                    "reported version {} but the state is at {}",
                    applied.version, after.version
                ));
            }
        }
    }
    for (id, b) in &before.shards {
        let Some(a) = after.shards.get(id) else {
            return Err(format!("shard {id} disappeared"));
        };
        if a.epoch < b.epoch {
            return Err(format!("shard {id}: epoch {} → {}", b.epoch, a.epoch));
        }
        if a.replicas != b.replicas && a.epoch == b.epoch {
            return Err(format!("shard {id}: replicas changed, epoch did not"));
        }
        if (a.range_start, a.range_end) != (b.range_start, b.range_end) {
            return Err(format!("shard {id}: range changed"));
        }
    }
    Ok(())
}

// ---- random command sequences -----------------------------------------------

/// `Cas` is how a generated command sets `expected_version`.
#[derive(Clone, Copy, Debug)]
pub enum Cas {
    /// `None`.
    Unset,
    /// The state's current version.
    Right,
    /// The current version plus this (non-zero) offset, wrapping below.
    Wrong(i8),
}

/// `ValueCas` is how a generated `SetSetting` sets `expected_value`.
#[derive(Clone, Copy, Debug)]
pub enum ValueCas {
    /// `None`.
    Unset,
    /// The key's current value (the empty string when it is unset).
    Current,
    /// The empty string: right only for an unset (or empty) key.
    Empty,
    /// This number as a string: the values generated are numbers too, so
    /// it is sometimes right by chance.
    Other(u8),
}

fn value_cas() -> impl Strategy<Value = ValueCas> {
    prop_oneof![
        3 => Just(ValueCas::Unset),
        2 => Just(ValueCas::Current),
        1 => Just(ValueCas::Empty),
        1 => any::<u8>().prop_map(ValueCas::Other),
    ]
}

/// `AddrPick` is how a generated `AddMember` picks its gRPC address.
#[derive(Clone, Copy, Debug)]
pub enum AddrPick {
    /// [`addr`] of the id: valid and unique to it.
    Own,
    /// The address of some existing member (index into the members).
    Taken(usize),
    /// One of [`VALID_ADDRS`].
    Valid(usize),
    /// One of [`INVALID_ADDRS`].
    Invalid(usize),
}

/// Valid `host:port` addresses nobody owns at bootstrap.
pub const VALID_ADDRS: &[&str] = &["h:1", "host.example:65535", "[::1]:7000", "10.0.0.9:9000"];

/// Malformed addresses `validate_addr` must refuse.
pub const INVALID_ADDRS: &[&str] = &[
    "",
    "nohost",
    ":7000",
    "host:",
    "host:0",
    "host:65536",
    "host:-1",
    "host:abc",
    "http://host:80",
    "ho st:80",
    "host:7000 ",
];

/// `Op` is a generated command before it is resolved against the current
/// state (so shrinking keeps sequences meaningful).
#[derive(Clone, Debug)]
pub enum Op {
    /// Bootstrap nodes `1..=nodes` (3..=5); RF is `1 + rf_pick % min(3, nodes)`.
    Bootstrap {
        nodes: u64,
        shards: u32,
        rf_pick: u32,
    },
    /// AddMember with the next unused id.
    AddNew {
        http: bool,
        pick: AddrPick,
        cas: Cas,
    },
    /// AddMember with a given (possibly existing or removed, or 0) id.
    AddId { id: u64, pick: AddrPick, cas: Cas },
    /// Promote.
    Promote { id: u64, cas: Cas },
    /// Drain.
    Drain { id: u64, cas: Cas },
    /// Remove.
    Remove { id: u64, cas: Cas },
    /// Drain (`drain`) or Remove a node taking part in a task in flight
    /// (its `to` or `from`): the cases where Remove must still refuse.
    BusyNode { drain: bool, task: usize, to: bool },
    /// StartMove with arbitrary ids (mostly refused).
    MoveAny {
        shard: u64,
        from: u64,
        to: u64,
        cas: Cas,
    },
    /// StartMove of an existing shard from one of its replicas to any
    /// member (often accepted).
    MovePlausible {
        shard: usize,
        from: usize,
        to: usize,
        cas: Cas,
    },
    /// Rebalance.
    Rebalance { cas: Cas },
    /// AdvanceTask with an arbitrary id and step (mostly refused).
    AdvanceAny { id: u64, step: MoveStep },
    /// AdvanceTask of an existing task at its current step (accepted).
    AdvanceCurrent { pick: usize },
    /// SetSetting.
    SetSetting {
        key: usize,
        value: u8,
        cas: Cas,
        value_cas: ValueCas,
    },
    /// SetLeaderHints: each hint is (shard, leader, plausible); plausible
    /// ones pick an existing shard and one of its replicas, the others raw
    /// ids (unknown shards, non-replicas: ignored).
    LeaderHints { hints: Vec<(u64, usize, bool)> },
}

/// Setting keys; the empty one is refused.
pub const KEYS: &[&str] = &["retention", "scrape_interval", ""];

fn cas() -> impl Strategy<Value = Cas> {
    prop_oneof![
        3 => Just(Cas::Unset),
        2 => Just(Cas::Right),
        1 => prop_oneof![-3i8..=-1, 1i8..=3].prop_map(Cas::Wrong),
    ]
}

fn addr_pick() -> impl Strategy<Value = AddrPick> {
    prop_oneof![
        4 => Just(AddrPick::Own),
        1 => any::<usize>().prop_map(AddrPick::Taken),
        1 => (0..VALID_ADDRS.len()).prop_map(AddrPick::Valid),
        2 => (0..INVALID_ADDRS.len()).prop_map(AddrPick::Invalid),
    ]
}

fn step() -> impl Strategy<Value = MoveStep> {
    prop_oneof![
        Just(MoveStep::AddLearner),
        Just(MoveStep::Promote),
        Just(MoveStep::RemoveOld)
    ]
}

/// `bootstrap_op` is a Bootstrap per the brief: 3–5 nodes, 1..=16 shards,
/// RF in 1..=min(3, nodes).
pub fn bootstrap_op() -> impl Strategy<Value = Op> {
    (3u64..=5, 1u32..=16, any::<u32>()).prop_map(|(nodes, shards, rf_pick)| Op::Bootstrap {
        nodes,
        shards,
        rf_pick,
    })
}

/// `op` is any generated command, weighted towards ones that make progress.
pub fn op() -> impl Strategy<Value = Op> {
    // Node ids 0..=9: 0 is invalid, 1..=5 are bootstrap members, the rest
    // are added later or unknown.
    let node = 0u64..=9;
    prop_oneof![
        1 => bootstrap_op(),
        3 => (any::<bool>(), addr_pick(), cas()).prop_map(|(http, pick, cas)| Op::AddNew { http, pick, cas }),
        1 => (node.clone(), addr_pick(), cas()).prop_map(|(id, pick, cas)| Op::AddId { id, pick, cas }),
        3 => (node.clone(), cas()).prop_map(|(id, cas)| Op::Promote { id, cas }),
        2 => (node.clone(), cas()).prop_map(|(id, cas)| Op::Drain { id, cas }),
        2 => (node.clone(), cas()).prop_map(|(id, cas)| Op::Remove { id, cas }),
        2 => (any::<bool>(), any::<usize>(), any::<bool>())
            .prop_map(|(drain, task, to)| Op::BusyNode { drain, task, to }),
        2 => (0u64..=17, node.clone(), node, cas())
            .prop_map(|(shard, from, to, cas)| Op::MoveAny { shard, from, to, cas }),
        3 => (any::<usize>(), any::<usize>(), any::<usize>(), cas())
            .prop_map(|(shard, from, to, cas)| Op::MovePlausible { shard, from, to, cas }),
        2 => cas().prop_map(|cas| Op::Rebalance { cas }),
        2 => (0u64..=40, step()).prop_map(|(id, step)| Op::AdvanceAny { id, step }),
        12 => any::<usize>().prop_map(|pick| Op::AdvanceCurrent { pick }),
        2 => (0..KEYS.len(), any::<u8>(), cas(), value_cas())
            .prop_map(|(key, value, cas, value_cas)| Op::SetSetting { key, value, cas, value_cas }),
        2 => prop::collection::vec((0u64..=17, any::<usize>(), any::<bool>()), 0..4)
            .prop_map(|hints| Op::LeaderHints { hints }),
    ]
}

/// `ops` is a whole generated run: a few commands before bootstrap (all
/// refused), a bootstrap, then up to 200 commands.
pub fn ops() -> impl Strategy<Value = Vec<Op>> {
    (
        prop::collection::vec(op(), 0..3),
        bootstrap_op(),
        prop::collection::vec(op(), 0..200),
    )
        .prop_map(|(mut pre, boot, post)| {
            pre.push(boot);
            pre.extend(post);
            pre
        })
}

fn expected(state: &ControlState, cas: Cas) -> Option<u64> {
    match cas {
        Cas::Unset => None,
        Cas::Right => Some(state.version),
        Cas::Wrong(d) => Some(state.version.wrapping_add_signed(i64::from(d))),
    }
}

/// `resolve` turns an op into a command against the current state.
pub fn resolve(state: &ControlState, op: &Op) -> Command {
    let pick_addr = |id: u64, pick: AddrPick| match pick {
        AddrPick::Own => addr(id),
        AddrPick::Taken(i) if !state.members.is_empty() => state
            .members
            .values()
            .nth(i % state.members.len())
            .map(|m| m.grpc_addr.clone())
            .unwrap_or_default(),
        AddrPick::Taken(_) => addr(1),
        AddrPick::Valid(i) => VALID_ADDRS[i % VALID_ADDRS.len()].to_string(),
        AddrPick::Invalid(i) => INVALID_ADDRS[i % INVALID_ADDRS.len()].to_string(),
    };
    match *op {
        Op::Bootstrap {
            nodes,
            shards,
            rf_pick,
        } => bootstrap_command(nodes, shards, 1 + rf_pick % (nodes.min(3) as u32)),
        Op::AddNew { http: h, pick, cas } => {
            let id = state.members.keys().next_back().map_or(1, |m| m.0 + 1);
            Command::AddMember {
                id: NodeId(id),
                grpc_addr: pick_addr(id, pick),
                http_addr: if h { http(id) } else { String::new() },
                expected_version: expected(state, cas),
            }
        }
        Op::AddId { id, pick, cas } => Command::AddMember {
            id: NodeId(id),
            grpc_addr: pick_addr(id, pick),
            http_addr: String::new(),
            expected_version: expected(state, cas),
        },
        Op::Promote { id, cas } => Command::Promote {
            id: NodeId(id),
            expected_version: expected(state, cas),
        },
        Op::Drain { id, cas } => Command::Drain {
            id: NodeId(id),
            expected_version: expected(state, cas),
        },
        Op::BusyNode { drain, task, to } => {
            let id = state
                .tasks
                .values()
                .nth(task % state.tasks.len().max(1))
                .map_or(NodeId(1), |t| if to { t.to } else { t.from });
            if drain {
                Command::Drain {
                    id,
                    expected_version: None,
                }
            } else {
                Command::Remove {
                    id,
                    expected_version: None,
                }
            }
        }
        Op::Remove { id, cas } => Command::Remove {
            id: NodeId(id),
            expected_version: expected(state, cas),
        },
        Op::MoveAny {
            shard,
            from,
            to,
            cas,
        } => Command::StartMove {
            shard: ShardId(shard),
            from: NodeId(from),
            to: NodeId(to),
            reason: "operator".into(),
            expected_version: expected(state, cas),
        },
        Op::MovePlausible {
            shard,
            from,
            to,
            cas,
        } => {
            let s = state.shards.values().nth(shard % state.shards.len().max(1));
            let from = s
                .and_then(|s| s.replicas.get(from % s.replicas.len().max(1)))
                .copied()
                .unwrap_or(NodeId(1));
            let to = state
                .members
                .keys()
                .nth(to % state.members.len().max(1))
                .copied()
                .unwrap_or(NodeId(2));
            Command::StartMove {
                shard: s.map_or(ShardId(1), |s| s.id),
                from,
                to,
                reason: "test".into(),
                expected_version: expected(state, cas),
            }
        }
        Op::Rebalance { cas } => Command::Rebalance {
            expected_version: expected(state, cas),
        },
        Op::AdvanceAny { id, step } => Command::AdvanceTask { id, done: step },
        Op::AdvanceCurrent { pick } => {
            match state.tasks.values().nth(pick % state.tasks.len().max(1)) {
                Some(t) => Command::AdvanceTask {
                    id: t.id,
                    done: t.step,
                },
                None => Command::AdvanceTask {
                    id: state.next_task_id,
                    done: MoveStep::AddLearner,
                },
            }
        }
        Op::LeaderHints { ref hints } => Command::SetLeaderHints {
            hints: hints
                .iter()
                .map(|&(shard, leader, plausible)| {
                    let s = state
                        .shards
                        .values()
                        .nth(shard as usize % state.shards.len().max(1));
                    match s {
                        Some(s) if plausible => {
                            (s.id, s.replicas[leader % s.replicas.len().max(1)])
                        }
                        _ => (ShardId(shard), NodeId(leader as u64 % 10)),
                    }
                })
                .collect(),
        },
        Op::SetSetting {
            key,
            value,
            cas,
            value_cas,
        } => {
            let key = KEYS[key % KEYS.len()].to_string();
            let expected_value = match value_cas {
                ValueCas::Unset => None,
                ValueCas::Current => Some(
                    state
                        .settings
                        .get(&key)
                        .map(|(v, _)| v.clone())
                        .unwrap_or_default(),
                ),
                ValueCas::Empty => Some(String::new()),
                ValueCas::Other(v) => Some(v.to_string()),
            };
            Command::SetSetting {
                key,
                value: value.to_string(),
                expected_version: expected(state, cas),
                expected_value,
            }
        }
    }
}
