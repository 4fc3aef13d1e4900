//! Replicas of each group converge to identical state: once the cluster is
//! quiet and every voter applied the leader's last index, every replica's
//! answer to "everything" (shards) or whole state (the control group) is
//! byte-identical. Apply is a pure function of (state, entry), so any
//! difference is a replication or determinism bug.

use std::collections::BTreeMap;

use prost::Message;
use raftwatch_shard::codec as sc;

use crate::cluster::Cluster;

/// The control group's id (`raftwatch::node::CONTROL_GROUP`).
const CONTROL: u64 = 0;

/// `Outcome` of one convergence attempt.
#[derive(Debug)]
pub enum Outcome {
    /// Not every replica caught up yet (says which group).
    Pending(String),
    /// Every group compared: the differences found (empty: converged),
    /// and how many groups were compared.
    Done {
        violations: Vec<String>,
        groups: usize,
    },
}

/// `check` compares the replicas of every group on the live nodes.
pub fn check(cluster: &Cluster) -> Outcome {
    let query = sc::ShardQuery {
        matchers: vec![sc::MatcherPb {
            op: 0,
            name: "__name__".into(),
            value: "sim".into(),
        }],
        start_ms: 0,
        end_ms: i64::MAX,
        series_max: 0,
        samples_max: 0,
    }
    .encode_to_vec();
    let mut by_group: BTreeMap<u64, Vec<(u64, raftwatch_raft::GroupHandle)>> = BTreeMap::new();
    for (id, node) in cluster.live() {
        let Some(groups) = node.host().try_groups() else {
            return Outcome::Pending(format!("node {id} busy"));
        };
        for g in groups {
            by_group.entry(g.group().0).or_default().push((id, g));
        }
    }
    let mut violations = Vec::new();
    for (group, replicas) in &by_group {
        let Some(leader) = replicas.iter().find(|(_, h)| h.metrics().is_leader) else {
            return Outcome::Pending(format!("group {group} has no leader"));
        };
        let lm = leader.1.metrics();
        let target = lm.last_log_index;
        if lm.commit_index != target {
            return Outcome::Pending(format!("group {group} leader has not committed its log"));
        }
        let mut states: Vec<(u64, Vec<u8>)> = Vec::new();
        for voter in &lm.voters {
            let Some((_, h)) = replicas.iter().find(|(id, _)| *id == voter.0) else {
                return Outcome::Pending(format!("group {group} voter {} is not running", voter.0));
            };
            let state = if *group == CONTROL {
                h.try_state().map(|r| {
                    let bytes = r
                        .state
                        .unwrap_or_else(|e| format!("error: {e}").into_bytes());
                    (r.applied_index, bytes)
                })
            } else {
                h.try_query(&query)
            };
            match state {
                Some((applied, bytes)) if applied == target => states.push((voter.0, bytes)),
                _ => {
                    let m = h.metrics();
                    return Outcome::Pending(format!(
                        "group {group} voter {} behind: applied {:?}, committed {:?}, last log {:?}, \
                         term {}, leader {:?}, quiesced {}; leader {} at term {} has {target:?}{}, \
                         matched {:?}",
                        voter.0,
                        m.applied_index,
                        m.commit_index,
                        m.last_log_index,
                        m.term,
                        m.leader.map(|l| l.0),
                        h.is_quiesced(),
                        leader.0,
                        lm.term,
                        if leader.1.is_quiesced() {
                            " (quiesced)"
                        } else {
                            ""
                        },
                        lm.matched,
                    ));
                }
            }
        }
        if let Some((first, bytes)) = states.first() {
            for (other, b) in &states[1..] {
                if b != bytes {
                    violations.push(format!(
                        "group {group}: replicas on nodes {first} and {other} differ at index {}",
                        target.unwrap_or(0)
                    ));
                }
            }
        }
    }
    Outcome::Done {
        violations,
        groups: by_group.len(),
    }
}
