//! Model-based test: random command sequences applied to `ControlState` and
//! to a dumb reference (`Model`: plain maps and sets, rules written out
//! independently of `apply`), compared after every command, with the state
//! invariants (support::check_invariants, support::check_transition)
//! checked after every command too.
//!
//! The reference does not plan: for Drain and Rebalance it checks that every
//! move the implementation planned is legal (and, for Drain, that no
//! plannable replica was left out) and then adopts it.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use raftwatch_control::{Applied, Command, ControlState, MemberState, MoveStep, Outcome, Refusal};

use crate::support::{check_invariants, check_transition, ops, resolve};

/// `Kind` is a refusal's variant, what the model predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    NotBootstrapped,
    AlreadyBootstrapped,
    VersionMismatch,
    Invalid,
    UnknownNode,
    UnknownShard,
    Precondition,
    ValueMismatch,
}

fn kind(r: &Refusal) -> Kind {
    match r {
        Refusal::NotBootstrapped => Kind::NotBootstrapped,
        Refusal::AlreadyBootstrapped => Kind::AlreadyBootstrapped,
        Refusal::VersionMismatch { .. } => Kind::VersionMismatch,
        Refusal::Invalid { .. } => Kind::Invalid,
        Refusal::UnknownNode { .. } => Kind::UnknownNode,
        Refusal::UnknownShard { .. } => Kind::UnknownShard,
        Refusal::Precondition { .. } => Kind::Precondition,
        Refusal::ValueMismatch { .. } => Kind::ValueMismatch,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct MTask {
    shard: u64,
    from: u64,
    to: u64,
    step: MoveStep,
    reason: String,
}

/// `Model` is the reference: what the control state should be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Model {
    bootstrapped: bool,
    version: u64,
    rf: usize,
    /// id → (gRPC address, HTTP address, state).
    members: BTreeMap<u64, (String, String, MemberState)>,
    /// shard → replica ids.
    replicas: BTreeMap<u64, BTreeSet<u64>>,
    /// shard → advisory leader hint.
    hints: BTreeMap<u64, Option<u64>>,
    tasks: BTreeMap<u64, MTask>,
    next_task_id: u64,
    settings: BTreeMap<String, (String, u64)>,
}

fn addr_ok(a: &str) -> bool {
    // Written independently of `validate_addr`: HOST:PORT split at the last
    // colon, host non-empty without whitespace or scheme, port 1..=65535 in
    // plain digits (Rust's u16 parser also takes a leading '+').
    let Some((host, port)) = a.rsplit_once(':') else {
        return false;
    };
    let digits = port.strip_prefix('+').unwrap_or(port);
    !host.is_empty()
        && !host.contains("://")
        && !host.chars().any(char::is_whitespace)
        && !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && digits
            .parse::<u32>()
            .is_ok_and(|p| (1..=65535).contains(&p))
}

impl Model {
    fn state_of(&self, id: u64) -> Option<MemberState> {
        self.members.get(&id).map(|m| m.2)
    }

    fn active(&self) -> BTreeSet<u64> {
        self.members
            .iter()
            .filter(|(_, m)| m.2 == MemberState::Active)
            .map(|(id, _)| *id)
            .collect()
    }

    fn busy(&self, shard: u64) -> bool {
        self.tasks.values().any(|t| t.shard == shard)
    }

    fn holds(&self, node: u64) -> bool {
        self.replicas.values().any(|r| r.contains(&node))
    }

    fn cas(&self, expected: Option<u64>) -> Result<(), Kind> {
        match expected {
            Some(e) if e != self.version => Err(Kind::VersionMismatch),
            _ => Ok(()),
        }
    }

    /// `legal_move` is whether a move may start now (the model's own rules).
    fn legal_move(&self, shard: u64, from: u64, to: u64) -> Result<(), Kind> {
        let Some(replicas) = self.replicas.get(&shard) else {
            return Err(Kind::UnknownShard);
        };
        let (Some(_), Some(to_state)) = (self.state_of(from), self.state_of(to)) else {
            return Err(Kind::UnknownNode);
        };
        if from == to {
            return Err(Kind::Invalid);
        }
        if !replicas.contains(&from)
            || replicas.contains(&to)
            || to_state != MemberState::Active
            || self.busy(shard)
        {
            return Err(Kind::Precondition);
        }
        Ok(())
    }

    fn adopt(&mut self, planned: &[raftwatch_control::Task]) {
        for t in planned {
            self.tasks.insert(
                t.id,
                MTask {
                    shard: t.shard.0,
                    from: t.from.0,
                    to: t.to.0,
                    step: t.step,
                    reason: t.reason.clone(),
                },
            );
            self.next_task_id = t.id + 1;
        }
    }

    /// `check_planned` checks that planned moves are legal, one per shard,
    /// numbered from `next_task_id`, with `reason`.
    fn check_planned(
        &self,
        planned: &[raftwatch_control::Task],
        reason: &str,
    ) -> Result<(), String> {
        let mut shards = BTreeSet::new();
        for (k, t) in planned.iter().enumerate() {
            if t.id != self.next_task_id + k as u64
                || t.step != MoveStep::AddLearner
                || t.reason != reason
            {
                return Err(format!(
                    "planned task {t:?} has the wrong id, step or reason"
                ));
            }
            if !shards.insert(t.shard) {
                return Err(format!("two planned moves for shard {}", t.shard));
            }
            self.legal_move(t.shard.0, t.from.0, t.to.0)
                .map_err(|k| format!("planned move {t:?} is illegal: {k:?}"))?;
        }
        Ok(())
    }

    /// `step` predicts the command's outcome, checks the actual one against
    /// it, and moves the model forward.
    fn step(&mut self, command: &Command, outcome: &Outcome) -> Result<(), String> {
        let mut next = self.clone();
        let predicted = next.predict(command, outcome)?;
        match (predicted, outcome) {
            (Ok(()), Ok(_)) => {
                if !matches!(command, Command::SetLeaderHints { .. }) {
                    next.version += 1;
                }
                *self = next;
                Ok(())
            }
            (Err(k), Err(r)) if k == kind(r) => {
                if let Refusal::VersionMismatch { actual, .. } = r
                    && *actual != self.version
                {
                    return Err(format!(
                        "VersionMismatch reports {actual}, model at {}",
                        self.version
                    ));
                }
                Ok(())
            }
            (p, o) => Err(format!("model predicted {p:?}, got {o:?}")),
        }
    }

    /// `predict` applies the command to `self` (which is discarded on a
    /// refusal) and says whether it should be accepted.
    fn predict(
        &mut self,
        command: &Command,
        outcome: &Outcome,
    ) -> Result<Result<(), Kind>, String> {
        let planned: &[raftwatch_control::Task] = match outcome {
            Ok(Applied { tasks, .. }) => tasks,
            Err(_) => &[],
        };
        if !self.bootstrapped && !matches!(command, Command::Bootstrap { .. }) {
            return Ok(Err(Kind::NotBootstrapped));
        }
        let no_plans = |planned: &[raftwatch_control::Task]| {
            if planned.is_empty() {
                Ok(())
            } else {
                Err(format!("{command:?} reported tasks {planned:?}"))
            }
        };
        match command {
            Command::Bootstrap { .. } => {
                if self.bootstrapped {
                    return Ok(Err(Kind::AlreadyBootstrapped));
                }
                // The generator only makes valid bootstraps; the shard map
                // itself is checked by the invariants and by `placement`.
                Ok(Ok(()))
            }
            Command::AddMember {
                id,
                grpc_addr,
                http_addr,
                expected_version,
            } => {
                no_plans(planned)?;
                if let Err(k) = self.cas(*expected_version) {
                    return Ok(Err(k));
                }
                if id.0 == 0 || !addr_ok(grpc_addr) || !(http_addr.is_empty() || addr_ok(http_addr))
                {
                    return Ok(Err(Kind::Invalid));
                }
                let taken = self.members.iter().any(|(other, m)| {
                    *other != id.0 && m.0 == *grpc_addr && m.2 != MemberState::Removed
                });
                match self.members.get_mut(&id.0) {
                    _ if taken => Ok(Err(Kind::Precondition)),
                    Some(m) if m.2 == MemberState::Removed || m.0 != *grpc_addr => {
                        Ok(Err(Kind::Precondition))
                    }
                    Some(m) => {
                        if !http_addr.is_empty() {
                            m.1 = http_addr.clone();
                        }
                        Ok(Ok(()))
                    }
                    None => {
                        self.members.insert(
                            id.0,
                            (grpc_addr.clone(), http_addr.clone(), MemberState::Joining),
                        );
                        Ok(Ok(()))
                    }
                }
            }
            Command::Promote {
                id,
                expected_version,
            } => {
                no_plans(planned)?;
                if let Err(k) = self.cas(*expected_version) {
                    return Ok(Err(k));
                }
                match self.members.get_mut(&id.0) {
                    None => Ok(Err(Kind::UnknownNode)),
                    Some(m) if matches!(m.2, MemberState::Joining | MemberState::Active) => {
                        m.2 = MemberState::Active;
                        Ok(Ok(()))
                    }
                    Some(_) => Ok(Err(Kind::Precondition)),
                }
            }
            Command::Drain {
                id,
                expected_version,
            } => {
                if let Err(k) = self.cas(*expected_version) {
                    return Ok(Err(k));
                }
                let id = id.0;
                match self.state_of(id) {
                    None => return Ok(Err(Kind::UnknownNode)),
                    Some(MemberState::Removed) => return Ok(Err(Kind::Precondition)),
                    // Again: re-plans what is left, no capacity check.
                    Some(MemberState::Draining) => {}
                    Some(MemberState::Joining | MemberState::Active) => {
                        let others = self.active().into_iter().filter(|m| *m != id).count();
                        if self.holds(id) && others < self.rf {
                            return Ok(Err(Kind::Precondition));
                        }
                    }
                }
                if let Some(m) = self.members.get_mut(&id) {
                    m.2 = MemberState::Draining;
                }
                self.check_planned(planned, "drain")?;
                if let Some(t) = planned.iter().find(|t| t.from.0 != id) {
                    return Err(format!("drain of {id} planned a move from {}", t.from));
                }
                // Every replica of `id` on a shard without a move in flight
                // that has some possible target must get a move.
                let active = self.active();
                for (shard, replicas) in &self.replicas {
                    let plannable = replicas.contains(&id)
                        && !self.busy(*shard)
                        && active.iter().any(|a| !replicas.contains(a));
                    let got = planned.iter().any(|t| t.shard.0 == *shard);
                    if plannable != got {
                        return Err(format!(
                            "drain of {id}: shard {shard} (replicas {replicas:?}) plannable={plannable} planned={got}"
                        ));
                    }
                }
                self.adopt(planned);
                Ok(Ok(()))
            }
            Command::Remove {
                id,
                expected_version,
            } => {
                no_plans(planned)?;
                if let Err(k) = self.cas(*expected_version) {
                    return Ok(Err(k));
                }
                let id = id.0;
                let in_tasks = self.tasks.values().any(|t| t.from == id || t.to == id);
                match self.state_of(id) {
                    None => Ok(Err(Kind::UnknownNode)),
                    Some(MemberState::Removed) => Ok(Ok(())),
                    Some(MemberState::Active) => Ok(Err(Kind::Precondition)),
                    Some(_) if self.holds(id) || in_tasks => Ok(Err(Kind::Precondition)),
                    Some(_) => {
                        if let Some(m) = self.members.get_mut(&id) {
                            m.2 = MemberState::Removed;
                        }
                        Ok(Ok(()))
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
                if let Err(k) = self.cas(*expected_version) {
                    return Ok(Err(k));
                }
                if let Err(k) = self.legal_move(shard.0, from.0, to.0) {
                    return Ok(Err(k));
                }
                self.check_planned(planned, reason)?;
                if planned.len() != 1
                    || planned[0].shard != *shard
                    || planned[0].from != *from
                    || planned[0].to != *to
                {
                    return Err(format!("StartMove reported tasks {planned:?}"));
                }
                self.adopt(planned);
                Ok(Ok(()))
            }
            Command::Rebalance { expected_version } => {
                if let Err(k) = self.cas(*expected_version) {
                    return Ok(Err(k));
                }
                self.check_planned(planned, "rebalance")?;
                let active = self.active();
                if let Some(t) = planned.iter().find(|t| !active.contains(&t.from.0)) {
                    return Err(format!("rebalance moves from non-active node: {t:?}"));
                }
                self.adopt(planned);
                Ok(Ok(()))
            }
            Command::AdvanceTask { id, done } => {
                no_plans(planned)?;
                let Some(t) = self.tasks.get_mut(id) else {
                    return Ok(Err(Kind::Precondition));
                };
                if t.step != *done {
                    return Ok(Err(Kind::Precondition));
                }
                let (shard, from, to) = (t.shard, t.from, t.to);
                match t.step {
                    MoveStep::AddLearner => t.step = MoveStep::Promote,
                    MoveStep::Promote => {
                        t.step = MoveStep::RemoveOld;
                        if let Some(r) = self.replicas.get_mut(&shard) {
                            r.insert(to);
                        }
                    }
                    MoveStep::RemoveOld => {
                        self.tasks.remove(id);
                        if let Some(r) = self.replicas.get_mut(&shard) {
                            r.remove(&from);
                        }
                    }
                }
                Ok(Ok(()))
            }
            Command::SetLeaderHints { hints } => {
                no_plans(planned)?;
                // Advisory: hints naming an unknown shard or a non-replica
                // are skipped, the rest kept; moves never touch hints.
                for (shard, leader) in hints {
                    if self
                        .replicas
                        .get(&shard.0)
                        .is_some_and(|r| r.contains(&leader.0))
                    {
                        self.hints.insert(shard.0, Some(leader.0));
                    }
                }
                Ok(Ok(()))
            }
            Command::SetSetting {
                key,
                value,
                expected_version,
                expected_value,
            } => {
                no_plans(planned)?;
                if let Err(k) = self.cas(*expected_version) {
                    return Ok(Err(k));
                }
                if key.is_empty() {
                    return Ok(Err(Kind::Invalid));
                }
                // An absent key compares as the empty string.
                let current = self.settings.get(key).map(|(v, _)| v.as_str());
                if expected_value
                    .as_deref()
                    .is_some_and(|e| e != current.unwrap_or(""))
                {
                    return Ok(Err(Kind::ValueMismatch));
                }
                self.settings
                    .insert(key.clone(), (value.clone(), self.version + 1));
                Ok(Ok(()))
            }
            // Not generated here: `ControlState::apply` refuses them (the
            // state machine applies them to the alerting state; see
            // `alerting.rs`).
            Command::Alerting(_) => Ok(Err(Kind::Invalid)),
        }
    }

    /// `adopt_bootstrap` takes the members and shard map of a successful
    /// bootstrap (its placement is tested on its own).
    fn adopt_bootstrap(&mut self, state: &ControlState) {
        self.bootstrapped = true;
        self.rf = state.replication_factor as usize;
        self.next_task_id = 1;
        self.members = state
            .members
            .values()
            .map(|m| (m.id.0, (m.grpc_addr.clone(), m.http_addr.clone(), m.state)))
            .collect();
        self.replicas = state
            .shards
            .values()
            .map(|s| (s.id.0, s.replicas.iter().map(|r| r.0).collect()))
            .collect();
        self.hints = state.shards.values().map(|s| (s.id.0, None)).collect();
    }

    /// `matches` compares the model with the real state.
    fn matches(&self, state: &ControlState) -> Result<(), String> {
        let real = Model {
            bootstrapped: state.bootstrapped,
            version: state.version,
            rf: state.replication_factor as usize,
            members: state
                .members
                .values()
                .map(|m| (m.id.0, (m.grpc_addr.clone(), m.http_addr.clone(), m.state)))
                .collect(),
            replicas: state
                .shards
                .values()
                .map(|s| (s.id.0, s.replicas.iter().map(|r| r.0).collect()))
                .collect(),
            hints: state
                .shards
                .values()
                .map(|s| (s.id.0, s.leader_hint.map(|l| l.0)))
                .collect(),
            tasks: state
                .tasks
                .values()
                .map(|t| {
                    (
                        t.id,
                        MTask {
                            shard: t.shard.0,
                            from: t.from.0,
                            to: t.to.0,
                            step: t.step,
                            reason: t.reason.clone(),
                        },
                    )
                })
                .collect(),
            next_task_id: state.next_task_id,
            settings: state.settings.clone(),
        };
        if real == *self {
            Ok(())
        } else {
            Err(format!(
                "state diverged from the model:\n model {self:?}\n state {real:?}"
            ))
        }
    }
}

proptest! {
    // proptest defaults: 256 cases unless PROPTEST_CASES says otherwise.

    #[test]
    fn apply_matches_model_and_keeps_invariants(ops in ops()) {
        let mut state = ControlState::default();
        let mut model = Model::default();
        for (i, op) in ops.iter().enumerate() {
            let command = resolve(&state, op);
            let before = state.clone();
            let outcome = state.apply(&command);
            let was_bootstrapped = model.bootstrapped;
            let checked = check_transition(&before, &state, &command, &outcome)
                .and_then(|()| check_invariants(&state))
                .and_then(|()| model.step(&command, &outcome))
                .and_then(|()| {
                    if !was_bootstrapped && outcome.is_ok() {
                        model.adopt_bootstrap(&state);
                    }
                    model.matches(&state)
                });
            if let Err(e) = checked {
                return Err(TestCaseError::fail(format!(
                    "command #{i} {command:?} → {outcome:?}: {e}"
                )));
            }
        }
    }
}
