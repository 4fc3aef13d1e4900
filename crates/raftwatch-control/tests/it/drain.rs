//! Drain scenarios: a drain plans a move for each replica of the node, the
//! moves complete step by step, and only then may the node be removed.

use raftwatch_control::{Command, MemberState, MoveStep, Refusal};
use raftwatch_raft::NodeId;

use crate::support::{bootstrapped, held_by, ok, refused, run_tasks};

fn drain(id: u64) -> Command {
    Command::Drain {
        id: NodeId(id),
        expected_version: None,
    }
}

fn remove(id: u64) -> Command {
    Command::Remove {
        id: NodeId(id),
        expected_version: None,
    }
}

#[track_caller]
fn assert_precondition(r: &Refusal, needle: &str) {
    match r {
        Refusal::Precondition { message } => {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        other => panic!("expected a precondition refusal with {needle:?}, got {other:?}"),
    }
}

#[test]
fn drain_moves_every_replica_then_remove_succeeds() {
    let mut s = bootstrapped(4, 8, 3);
    let n4 = NodeId(4);
    let held = held_by(&s, n4);
    assert!(!held.is_empty(), "node 4 holds nothing to drain");

    // Removing an active node is refused and changes nothing.
    assert_precondition(&refused(&mut s, &remove(4)), "not drained");

    let applied = ok(&mut s, &drain(4));
    assert_eq!(s.members[&n4].state, MemberState::Draining);
    let planned: std::collections::BTreeSet<_> = applied.tasks.iter().map(|t| t.shard).collect();
    assert_eq!(planned, held, "one move per shard node 4 holds, no others");
    assert_eq!(applied.tasks.len(), held.len());
    for t in &applied.tasks {
        assert_eq!(
            (t.from, t.step, t.reason.as_str()),
            (n4, MoveStep::AddLearner, "drain")
        );
        assert!(
            !s.shards[&t.shard].replicas.contains(&t.to),
            "task {t:?} moves to a node that already holds the shard"
        );
        assert_eq!(s.members[&t.to].state, MemberState::Active);
        assert_eq!(s.tasks.get(&t.id), Some(t));
    }

    // Still holding replicas: Remove is refused, also mid-way.
    assert_precondition(&refused(&mut s, &remove(4)), "not drained");
    let first = applied.tasks[0].clone();
    for done in [MoveStep::AddLearner, MoveStep::Promote] {
        ok(&mut s, &Command::AdvanceTask { id: first.id, done });
        assert_precondition(&refused(&mut s, &remove(4)), "not drained");
    }

    let epochs: Vec<u64> = s.shards.values().map(|sh| sh.epoch).collect();
    run_tasks(&mut s, |_| {});
    assert!(s.tasks.is_empty());
    assert!(
        held_by(&s, n4).is_empty(),
        "node 4 still holds {:?}",
        held_by(&s, n4)
    );
    for (sh, before) in s.shards.values().zip(epochs) {
        assert_eq!(
            sh.replicas.len(),
            3,
            "shard {} has {:?}",
            sh.id,
            sh.replicas
        );
        if held.contains(&sh.id) {
            assert!(
                sh.epoch > before,
                "shard {} moved without an epoch bump",
                sh.id
            );
        }
    }

    ok(&mut s, &remove(4));
    assert_eq!(s.members[&n4].state, MemberState::Removed);
    // Remove is idempotent once removed; drain of a removed node is refused.
    ok(&mut s, &remove(4));
    refused(&mut s, &drain(4));
}

#[test]
fn drain_below_replication_factor_is_refused() {
    // 3 nodes, RF 3: draining any node would leave 2 active nodes.
    let mut s = bootstrapped(3, 8, 3);
    let r = refused(&mut s, &drain(3));
    assert_precondition(&r, "below their replication factor");
    assert_eq!(s.members[&NodeId(3)].state, MemberState::Active);

    // 4 nodes, RF 3: the first drain is fine, the second is not (only two
    // active nodes would remain).
    let mut s = bootstrapped(4, 8, 3);
    ok(&mut s, &drain(4));
    let r = refused(&mut s, &drain(3));
    assert_precondition(&r, "below their replication factor");
}

#[test]
fn drain_of_node_without_replicas_plans_nothing() {
    let mut s = bootstrapped(3, 4, 3);
    crate::support::add_and_promote(&mut s, 4);
    let applied = ok(&mut s, &drain(4));
    assert!(applied.tasks.is_empty());
    ok(&mut s, &remove(4));
}

#[test]
fn drain_skips_shards_with_a_move_in_flight() {
    // A shard that already has a move is not planned again (one task per
    // shard); its replica on the draining node stays until a later move.
    let mut s = bootstrapped(4, 8, 3);
    let shard = *held_by(&s, NodeId(4))
        .iter()
        .next()
        .expect("node 4 holds a shard");
    let to = s
        .active_members()
        .into_iter()
        .find(|m| !s.shards[&shard].replicas.contains(m))
        .expect("a node without the shard");
    let from = *s.shards[&shard]
        .replicas
        .iter()
        .find(|r| **r != NodeId(4))
        .expect("another replica");
    ok(
        &mut s,
        &Command::StartMove {
            shard,
            from,
            to,
            reason: "operator".into(),
            expected_version: None,
        },
    );
    let applied = ok(&mut s, &drain(4));
    assert!(applied.tasks.iter().all(|t| t.shard != shard));
    assert_eq!(applied.tasks.len(), held_by(&s, NodeId(4)).len() - 1);
}

#[test]
fn drain_again_moves_replicas_that_arrived_after_the_first_drain() {
    // Node 4 joins and a rebalance plans moves onto it; node 4 is drained
    // before they finish, so the first drain has nothing to plan. Once the
    // moves land, node 4 holds replicas again: a second drain must plan
    // moves for them, or node 4 could never be removed (rebalance ignores
    // draining nodes, so nothing else would move them).
    let mut s = bootstrapped(3, 8, 3);
    crate::support::add_and_promote(&mut s, 4);
    let rebalance = ok(
        &mut s,
        &Command::Rebalance {
            expected_version: None,
        },
    );
    assert!(rebalance.tasks.iter().all(|t| t.to == NodeId(4)));
    assert!(!rebalance.tasks.is_empty());
    assert!(ok(&mut s, &drain(4)).tasks.is_empty());
    run_tasks(&mut s, |_| {});
    let stranded = held_by(&s, NodeId(4));
    assert_eq!(stranded.len(), rebalance.tasks.len());
    assert_precondition(&refused(&mut s, &remove(4)), "not drained");

    let again = ok(&mut s, &drain(4));
    let planned: std::collections::BTreeSet<_> = again.tasks.iter().map(|t| t.shard).collect();
    assert_eq!(planned, stranded);
    // Draining a third time while those moves run plans nothing new.
    assert!(ok(&mut s, &drain(4)).tasks.is_empty());
    run_tasks(&mut s, |_| {});
    assert!(held_by(&s, NodeId(4)).is_empty());
    ok(&mut s, &remove(4));
}

#[test]
fn remove_is_refused_while_a_move_to_the_node_is_in_flight() {
    // Node 4 is the target of a move that has not reached the replica set
    // yet; drained meanwhile it holds no replica, but removing it would
    // leave the move heading to a removed node.
    let mut s = bootstrapped(3, 3, 3);
    crate::support::add_and_promote(&mut s, 4);
    let task = ok(
        &mut s,
        &Command::StartMove {
            shard: raftwatch_control::ShardId(1),
            from: NodeId(1),
            to: NodeId(4),
            reason: "operator".into(),
            expected_version: None,
        },
    )
    .tasks
    .remove(0);
    assert!(ok(&mut s, &drain(4)).tasks.is_empty());
    assert!(held_by(&s, NodeId(4)).is_empty());
    assert_precondition(&refused(&mut s, &remove(4)), "not drained");
    ok(
        &mut s,
        &Command::AdvanceTask {
            id: task.id,
            done: MoveStep::AddLearner,
        },
    );
    assert_precondition(&refused(&mut s, &remove(4)), "not drained");
    // Once the move lands, a second drain moves the replica off again.
    run_tasks(&mut s, |_| {});
    assert_eq!(ok(&mut s, &drain(4)).tasks.len(), 1);
    run_tasks(&mut s, |_| {});
    ok(&mut s, &remove(4));
}
