//! Placement planning: pure, deterministic functions of the control state
//! (ties broken by the lowest id), so a plan computed inside `apply` is the
//! same on every replica.

use std::collections::BTreeMap;

use raftwatch_raft::NodeId;

use crate::state::{ControlState, MemberState, Shard, ShardId};

/// `initial_shard_map` splits the 64-bit series-hash space into `shards`
/// contiguous, equal ranges (the last one takes the remainder) and places
/// replicas so that every node gets the same number ±1. Requires
/// `replication_factor <= nodes.len()`, which keeps a shard's replicas
/// distinct. Shards in whole rounds over the `n` nodes put replica `k` of
/// shard `i` (0-based) on `nodes[(i + k) % n]`: each round gives every node
/// exactly `replication_factor` replicas, and consecutive shards start on
/// consecutive nodes, so leaders (initially the lowest replica) spread too.
/// The last `shards % n` shards deal their replicas round-robin instead
/// (the `j`-th of them on `nodes[(j * replication_factor + k) % n]`):
/// consecutive starts would pile their overlapping windows onto the first
/// nodes (4 nodes, 2 shards, RF 2 gave them 1, 2, 1 and 0 replicas).
pub fn initial_shard_map(nodes: &[NodeId], shards: u32, replication_factor: u32) -> Vec<Shard> {
    let n = nodes.len().max(1);
    let rf = replication_factor as usize;
    let whole_round_shards = shards as usize / n * n;
    let width = u64::MAX / u64::from(shards.max(1));
    (0..shards)
        .map(|i| {
            let start = width * u64::from(i);
            let end = if i + 1 == shards {
                u64::MAX
            } else {
                width * u64::from(i + 1) - 1
            };
            let i_usize = i as usize;
            let first = if i_usize < whole_round_shards {
                i_usize
            } else {
                (i_usize - whole_round_shards) * rf
            };
            let mut replicas: Vec<NodeId> = (0..rf)
                .filter_map(|k| nodes.get((first + k) % n).copied())
                .collect();
            replicas.sort();
            replicas.dedup();
            Shard {
                id: ShardId(u64::from(i) + 1),
                range_start: start,
                range_end: end,
                replicas,
                epoch: 1,
                leader_hint: None,
            }
        })
        .collect()
}

/// Replica counts per active member, including replicas that moves in
/// flight will add and excluding the ones they will remove.
fn planned_load(state: &ControlState) -> BTreeMap<NodeId, i64> {
    let mut load: BTreeMap<NodeId, i64> = state
        .active_members()
        .into_iter()
        .map(|id| (id, 0))
        .collect();
    for s in state.shards.values() {
        for r in &s.replicas {
            if let Some(c) = load.get_mut(r) {
                *c += 1;
            }
        }
    }
    for t in state.tasks.values() {
        if let Some(c) = load.get_mut(&t.to) {
            // Once promoted, `to` is already counted in the replica set.
            let counted = state
                .shards
                .get(&t.shard)
                .is_some_and(|s| s.replicas.contains(&t.to));
            if !counted {
                *c += 1;
            }
        }
        if let Some(c) = load.get_mut(&t.from) {
            *c -= 1;
        }
    }
    load
}

fn busy(state: &ControlState, shard: ShardId) -> bool {
    state.tasks.values().any(|t| t.shard == shard)
}

/// `plan_drain` plans one move for every replica on `node` that has no move
/// in flight, each to the least-loaded active member not already holding
/// that shard. Replicas with no possible target are left in place (drain
/// then stays incomplete, and `remove` keeps refusing).
pub fn plan_drain(state: &ControlState, node: NodeId) -> Vec<(ShardId, NodeId, NodeId)> {
    let mut load = planned_load(state);
    load.remove(&node);
    let mut out = Vec::new();
    for s in state.shards.values() {
        if !s.replicas.contains(&node) || busy(state, s.id) {
            continue;
        }
        let target = load
            .iter()
            .filter(|(id, _)| !s.replicas.contains(id))
            .min_by_key(|(id, c)| (**c, **id))
            .map(|(id, _)| *id);
        if let Some(to) = target {
            if let Some(c) = load.get_mut(&to) {
                *c += 1;
            }
            out.push((s.id, node, to));
        }
    }
    out
}

/// `plan_rebalance` plans moves from the most- to the least-loaded active
/// member until their replica counts differ by at most one (or no shard can
/// move between them). At most one move per shard; shards with a move in
/// flight are skipped.
pub fn plan_rebalance(state: &ControlState) -> Vec<(ShardId, NodeId, NodeId)> {
    let mut load = planned_load(state);
    if load.len() < 2 {
        return Vec::new();
    }
    let mut moved: Vec<ShardId> = Vec::new();
    let mut out = Vec::new();
    // Each iteration moves one replica or stops; bounded by the shard count.
    for _ in 0..state.shards.len() {
        let Some((&max_node, &max)) = load
            .iter()
            .max_by_key(|(id, c)| (**c, std::cmp::Reverse(**id)))
        else {
            break;
        };
        let Some((&min_node, &min)) = load.iter().min_by_key(|(id, c)| (**c, **id)) else {
            break;
        };
        if max - min <= 1 {
            break;
        }
        let candidate = state.shards.values().find(|s| {
            s.replicas.contains(&max_node)
                && !s.replicas.contains(&min_node)
                && !busy(state, s.id)
                && !moved.contains(&s.id)
        });
        let Some(s) = candidate else { break };
        moved.push(s.id);
        out.push((s.id, max_node, min_node));
        *load.entry(max_node).or_default() -= 1;
        *load.entry(min_node).or_default() += 1;
    }
    out
}

/// `plan_leader_transfers` evens out shard leadership: given each shard's
/// current leader, returns (shard, new leader) transfers so that no node
/// leads more than ⌈shards / replica holders⌉ shards, moving leadership
/// only to another replica of the same shard. Shards with a move in flight
/// are left alone.
pub fn plan_leader_transfers(
    state: &ControlState,
    leaders: &BTreeMap<ShardId, NodeId>,
) -> Vec<(ShardId, NodeId)> {
    let holders: Vec<NodeId> = state
        .members
        .values()
        .filter(|m| {
            m.state == MemberState::Active
                && state.shards.values().any(|s| s.replicas.contains(&m.id))
        })
        .map(|m| m.id)
        .collect();
    if holders.is_empty() {
        return Vec::new();
    }
    let cap = state.shards.len().div_ceil(holders.len()) as i64;
    let mut count: BTreeMap<NodeId, i64> = holders.iter().map(|h| (*h, 0)).collect();
    for l in leaders.values() {
        *count.entry(*l).or_default() += 1;
    }
    let mut out = Vec::new();
    for (shard, leader) in leaders {
        if busy(state, *shard) || count.get(leader).copied().unwrap_or(0) <= cap {
            continue;
        }
        let Some(s) = state.shards.get(shard) else {
            continue;
        };
        let target = s
            .replicas
            .iter()
            .filter(|r| *r != leader && count.contains_key(r))
            .min_by_key(|r| (count.get(r).copied().unwrap_or(0), **r))
            .copied();
        if let Some(to) = target
            && count.get(&to).copied().unwrap_or(0) < cap
        {
            *count.entry(*leader).or_default() -= 1;
            *count.entry(to).or_default() += 1;
            out.push((*shard, to));
        }
    }
    out
}
