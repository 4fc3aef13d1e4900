//! The pure placement planner: the initial shard map and leader transfers.

use std::collections::BTreeMap;

use raftwatch_control::placement::{initial_shard_map, plan_leader_transfers};
use raftwatch_control::{Command, ShardId};
use raftwatch_raft::NodeId;

use crate::support::{bootstrapped, check_ranges, ok};

#[test]
fn initial_shard_map_is_balanced_and_partitions_the_space() {
    for n in 1..=7u64 {
        let nodes: Vec<NodeId> = (1..=n).map(NodeId).collect();
        for shards in 1..=64u32 {
            for rf in 1..=n as u32 {
                let case = format!("n={n} shards={shards} rf={rf}");
                let map = initial_shard_map(&nodes, shards, rf);
                assert_eq!(map.len(), shards as usize, "{case}");
                let mut counts: BTreeMap<NodeId, usize> = nodes.iter().map(|n| (*n, 0)).collect();
                for (i, s) in map.iter().enumerate() {
                    assert_eq!(s.id, ShardId(i as u64 + 1), "{case}");
                    assert_eq!(s.epoch, 1, "{case}");
                    assert_eq!(
                        s.replicas.len(),
                        rf as usize,
                        "{case}: shard {} {:?}",
                        s.id,
                        s.replicas
                    );
                    assert!(
                        s.replicas.windows(2).all(|w| w[0] < w[1]),
                        "{case}: {:?}",
                        s.replicas
                    );
                    for r in &s.replicas {
                        *counts
                            .get_mut(r)
                            .unwrap_or_else(|| panic!("{case}: stranger {r}")) += 1;
                    }
                }
                let (min, max) = (counts.values().min(), counts.values().max());
                assert!(
                    max.zip(min).is_some_and(|(max, min)| max - min <= 1),
                    "{case}: replica counts {counts:?}"
                );
                if let Err(e) = check_ranges(&map) {
                    panic!("{case}: {e}");
                }
            }
        }
    }
}

#[test]
fn initial_shard_map_uses_the_given_ids() {
    let nodes = [NodeId(3), NodeId(10), NodeId(42)];
    let map = initial_shard_map(&nodes, 6, 2);
    for s in &map {
        assert!(
            s.replicas.iter().all(|r| nodes.contains(r)),
            "{:?}",
            s.replicas
        );
    }
}

/// `check_transfers` applies `plan_leader_transfers` to `leaders` and checks
/// every transfer moves to another replica of the shard and that no node
/// then leads more than ⌈shards / holders⌉.
fn check_transfers(state: &raftwatch_control::ControlState, leaders: &BTreeMap<ShardId, NodeId>) {
    let holders = state
        .active_members()
        .into_iter()
        .filter(|m| state.shards.values().any(|s| s.replicas.contains(m)))
        .count();
    let cap = state.shards.len().div_ceil(holders);
    let transfers = plan_leader_transfers(state, leaders);
    let mut after = leaders.clone();
    for (shard, to) in &transfers {
        let s = &state.shards[shard];
        assert!(
            s.replicas.contains(to),
            "shard {shard} led by non-replica {to}"
        );
        assert_ne!(
            after.get(shard),
            Some(to),
            "shard {shard}: transfer to its own leader"
        );
        after.insert(*shard, *to);
    }
    let mut led: BTreeMap<NodeId, usize> = BTreeMap::new();
    for l in after.values() {
        *led.entry(*l).or_default() += 1;
    }
    assert!(
        led.values().all(|c| *c <= cap),
        "cap {cap}: leaders per node {led:?} after {transfers:?}"
    );
}

#[test]
fn leader_transfers_cap_a_skewed_leader() {
    for n in 2..=5u64 {
        for shards in 1..=32u32 {
            // RF = n: every node holds every shard, so node 1 can lead all.
            let state = bootstrapped(n, shards, n as u32);
            let leaders: BTreeMap<ShardId, NodeId> =
                state.shards.keys().map(|s| (*s, NodeId(1))).collect();
            check_transfers(&state, &leaders);
        }
    }
    // The brief's example: 3 nodes, 8 shards, all led by node 1 → cap 3.
    let state = bootstrapped(3, 8, 3);
    let leaders: BTreeMap<ShardId, NodeId> = state.shards.keys().map(|s| (*s, NodeId(1))).collect();
    let transfers = plan_leader_transfers(&state, &leaders);
    assert_eq!(transfers.len(), 5);
}

#[test]
fn leader_transfers_with_rf_below_n_and_lowest_replica_leaders() {
    // Leaders at each shard's lowest replica (how groups start) are evened
    // out too, whenever it is possible with RF ≥ 2.
    for n in 3..=5u64 {
        for shards in 1..=32u32 {
            let state = bootstrapped(n, shards, 2);
            let leaders: BTreeMap<ShardId, NodeId> = state
                .shards
                .values()
                .map(|s| (s.id, s.replicas[0]))
                .collect();
            check_transfers(&state, &leaders);
        }
    }
}

#[test]
fn leader_transfers_leave_shards_with_moves_alone() {
    let mut state = bootstrapped(3, 3, 3);
    crate::support::add_and_promote(&mut state, 4);
    let applied = ok(
        &mut state,
        &Command::StartMove {
            shard: ShardId(1),
            from: NodeId(1),
            to: NodeId(4),
            reason: "operator".into(),
            expected_version: None,
        },
    );
    assert_eq!(applied.tasks.len(), 1);
    let leaders: BTreeMap<ShardId, NodeId> = state.shards.keys().map(|s| (*s, NodeId(1))).collect();
    let transfers = plan_leader_transfers(&state, &leaders);
    assert!(
        transfers.iter().all(|(s, _)| *s != ShardId(1)),
        "{transfers:?}"
    );
    assert!(!transfers.is_empty());
}
