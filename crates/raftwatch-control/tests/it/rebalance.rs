//! Rebalance: after a node joins, the planned moves even out replica counts
//! and never take a shard below its replication factor on the way.

use raftwatch_control::{Command, ControlState};
use raftwatch_raft::NodeId;

use crate::support::{add_and_promote, bootstrapped, ok, replica_counts, run_tasks, spread};

const REBALANCE: Command = Command::Rebalance {
    expected_version: None,
};

/// `grow_and_rebalance` bootstraps 3 nodes, adds and promotes a 4th,
/// rebalances and executes every task, checking RF after every step.
/// Returns the final state and how many moves were planned.
fn grow_and_rebalance(shards: u32, rf: u32) -> (ControlState, usize) {
    let mut s = bootstrapped(3, shards, rf);
    add_and_promote(&mut s, 4);
    let applied = ok(&mut s, &REBALANCE);
    for t in &applied.tasks {
        assert_eq!(t.reason, "rebalance");
        assert!(s.shards[&t.shard].replicas.contains(&t.from));
        assert!(!s.shards[&t.shard].replicas.contains(&t.to));
    }
    let rf = rf as usize;
    // `ok` already checks every invariant after each step; this states the
    // one this test is about.
    run_tasks(&mut s, |s| {
        for sh in s.shards.values() {
            assert!(
                sh.replicas.len() >= rf,
                "shard {} has {:?}",
                sh.id,
                sh.replicas
            );
        }
    });
    (s, applied.tasks.len())
}

#[test]
fn rebalance_onto_a_new_node_evens_out_replicas() {
    let (s, planned) = grow_and_rebalance(8, 3);
    let counts = replica_counts(&s);
    assert_eq!(counts.len(), 4);
    // 8 shards × 3 replicas over 4 nodes: 6 each, 6 moves onto node 4.
    assert!(counts.values().all(|c| *c == 6), "{counts:?}");
    assert_eq!(planned, 6);
    assert_eq!(counts[&NodeId(4)], 6);
}

#[test]
fn rebalance_evens_out_for_every_small_shape() {
    for shards in 1..=16 {
        for rf in 1..=3 {
            let (s, _) = grow_and_rebalance(shards, rf);
            let counts = replica_counts(&s);
            assert!(spread(&counts) <= 1, "shards={shards} rf={rf}: {counts:?}");
        }
    }
}

#[test]
fn rebalance_of_a_balanced_cluster_plans_nothing() {
    let mut s = bootstrapped(3, 8, 3);
    assert!(ok(&mut s, &REBALANCE).tasks.is_empty());

    let (mut s, _) = grow_and_rebalance(8, 3);
    assert!(ok(&mut s, &REBALANCE).tasks.is_empty());

    let mut s = bootstrapped(5, 16, 2);
    assert!(ok(&mut s, &REBALANCE).tasks.is_empty());
}

#[test]
fn rebalance_counts_moves_in_flight() {
    // A second Rebalance while the first one's moves are in flight plans
    // nothing more: the planner counts tasks as done.
    let mut s = bootstrapped(3, 8, 3);
    add_and_promote(&mut s, 4);
    assert!(!ok(&mut s, &REBALANCE).tasks.is_empty());
    assert!(ok(&mut s, &REBALANCE).tasks.is_empty());
    // Also half-way: with some moves promoted (counted in the replica set).
    let first = *s.tasks.keys().next().expect("a task");
    for done in [
        raftwatch_control::MoveStep::AddLearner,
        raftwatch_control::MoveStep::Promote,
    ] {
        ok(&mut s, &Command::AdvanceTask { id: first, done });
    }
    assert!(ok(&mut s, &REBALANCE).tasks.is_empty());
}
