//! The placement driver, run by the control leader every tick: it makes the
//! control group's membership follow the member list and executes recorded
//! placement tasks one step at a time. Each step first checks whether it
//! already happened (a previous leader may have done it before failing) and
//! is recorded (`AdvanceTask`) only after it took effect, so a new leader
//! resumes every move where the old one stopped.

use std::collections::BTreeSet;

use raftwatch_control::state::CONTROL_VOTERS_MAX;
use raftwatch_control::{Command, ControlState, MemberState, MoveStep, Task};
use raftwatch_raft::{NodeId, ReadConsistency};
use tonic::Status;

use super::{CONTROL_GROUP, GroupOp, Node};

/// How far (entries) a learner may trail the leader's commit index and
/// still be promoted.
const PROMOTE_LAG_ENTRIES_MAX: u64 = 64;

/// `tick` runs one round of the driver.
pub(crate) async fn tick(node: &Node) -> Result<(), Status> {
    let state = node.control_state(ReadConsistency::Linearizable).await?;
    if !state.bootstrapped {
        return Ok(());
    }
    reconcile_with(node, &state).await?;
    let reports = node.reports(&state).await;
    let hints: Vec<_> = state
        .shards
        .values()
        .filter_map(|s| {
            let b = reports.best(s.id.0).filter(|b| b.role == "leader")?;
            let leader = NodeId(b.leader);
            (s.leader_hint != Some(leader)).then_some((s.id, leader))
        })
        .collect();
    if !hints.is_empty() {
        node.control_write(&Command::SetLeaderHints { hints })
            .await?;
    }
    for task in state.tasks.values() {
        if let Err(e) = step(node, &state, &reports, task).await {
            tracing::info!(task = task.id, shard = task.shard.0, step = task.step.name(), error = %e, "placement step not done yet");
        }
    }
    Ok(())
}

/// `reconcile_control_membership` brings the control group's membership in
/// line with the member list (when this node leads it).
pub(crate) async fn reconcile_control_membership(node: &Node) -> Result<(), Status> {
    let state = node.control_state(ReadConsistency::Linearizable).await?;
    reconcile_with(node, &state).await
}

async fn reconcile_with(node: &Node, state: &ControlState) -> Result<(), Status> {
    let Some(h) = node.host.group(CONTROL_GROUP).await else {
        return Ok(());
    };
    let m = h.metrics();
    if !m.is_leader {
        return Ok(());
    }
    let voters: BTreeSet<NodeId> = m.voters.iter().copied().collect();
    let learners: BTreeSet<NodeId> = m.learners.iter().copied().collect();
    let mut voters_count = voters.len();
    for member in state.members.values() {
        let known = voters.contains(&member.id) || learners.contains(&member.id);
        match member.state {
            MemberState::Removed if known => {
                tracing::info!(
                    node = member.id.0,
                    "removing a removed member from the control group"
                );
                node.exec_local(&h, &GroupOp::Remove(member.id))
                    .await
                    .map_err(super::clients::group_status)?;
            }
            MemberState::Removed => {}
            _ if !known => {
                tracing::info!(
                    node = member.id.0,
                    "adding a member to the control group as a learner"
                );
                node.exec_local(
                    &h,
                    &GroupOp::AddLearner(member.id, member.grpc_addr.clone()),
                )
                .await
                .map_err(super::clients::group_status)?;
            }
            MemberState::Active
                if learners.contains(&member.id) && voters_count < CONTROL_VOTERS_MAX =>
            {
                let caught_up = m
                    .matched
                    .get(&member.id)
                    .copied()
                    .flatten()
                    .is_some_and(|i| i + PROMOTE_LAG_ENTRIES_MAX >= m.commit_index.unwrap_or(0));
                if caught_up {
                    tracing::info!(
                        node = member.id.0,
                        "promoting a member to control-group voter"
                    );
                    node.exec_local(&h, &GroupOp::Promote(member.id))
                        .await
                        .map_err(super::clients::group_status)?;
                    voters_count += 1;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

async fn advance(node: &Node, task: &Task) -> Result<(), Status> {
    node.control_write(&Command::AdvanceTask {
        id: task.id,
        done: task.step,
    })
    .await?;
    tracing::info!(
        task = task.id,
        shard = task.shard.0,
        from = task.from.0,
        to = task.to.0,
        step = task.step.name(),
        "placement step done"
    );
    Ok(())
}

async fn step(
    node: &Node,
    state: &ControlState,
    reports: &super::api::Reports,
    task: &Task,
) -> Result<(), Status> {
    let group = task.shard.group();
    let Some(leader) = reports.best(group.0).filter(|b| b.role == "leader") else {
        return Err(Status::unavailable(format!(
            "shard {} has no leader",
            task.shard
        )));
    };
    let (to, from) = (task.to.0, task.from.0);
    let candidates = node.shard_candidates(task.shard);
    match task.step {
        MoveStep::AddLearner => {
            if leader.voters.contains(&to) || leader.learners.contains(&to) {
                return advance(node, task).await;
            }
            if reports.of(task.to, group.0).is_none() {
                return Err(Status::unavailable(format!(
                    "node {to} has not opened shard {} yet",
                    task.shard
                )));
            }
            let addr = state
                .members
                .get(&task.to)
                .map(|m| m.grpc_addr.clone())
                .ok_or_else(|| Status::not_found(format!("unknown node {to}")))?;
            node.leader_call(group, GroupOp::AddLearner(task.to, addr), &candidates)
                .await?;
            advance(node, task).await
        }
        MoveStep::Promote => {
            if leader.voters.contains(&to) {
                return advance(node, task).await;
            }
            let applied = reports
                .of(task.to, group.0)
                .map(|s| s.applied_index)
                .unwrap_or(0);
            if applied + PROMOTE_LAG_ENTRIES_MAX < leader.commit_index {
                return Err(Status::unavailable(format!(
                    "learner {to} is catching up ({applied} of {})",
                    leader.commit_index
                )));
            }
            node.leader_call(group, GroupOp::Promote(task.to), &candidates)
                .await?;
            advance(node, task).await
        }
        MoveStep::RemoveOld => {
            if !leader.voters.contains(&from) && !leader.learners.contains(&from) {
                return advance(node, task).await;
            }
            if leader.leader == from {
                // Hand leadership over first; removal happens next tick.
                node.leader_call(group, GroupOp::TransferLeader(task.to), &candidates)
                    .await?;
                return Err(Status::unavailable(format!(
                    "moving shard {} leadership off node {from} first",
                    task.shard
                )));
            }
            node.leader_call(group, GroupOp::Remove(task.from), &candidates)
                .await?;
            advance(node, task).await
        }
    }
}
