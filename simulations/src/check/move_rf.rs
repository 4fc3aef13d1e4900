//! A shard move never leaves a shard below its replication factor.
//!
//! A move adds the new replica as a learner, promotes it, and only then
//! removes the old one, so the voter count of a shard group never drops
//! below the replication factor while it happens. Checked on every probe
//! from each shard leader's view of its membership (crashed voters still
//! count: they are members, and come back), and at the end from the shard
//! map the operator read once every task finished.

use std::collections::BTreeSet;

use crate::cluster::Cluster;

/// `MoveRf` is the replication-factor checker.
#[derive(Debug, Default)]
pub struct MoveRf {
    /// Shard groups seen with a full voter set (checked from then on).
    full: BTreeSet<u64>,
}

impl MoveRf {
    /// `probe` checks every shard group a live node leads.
    pub fn probe(&mut self, cluster: &Cluster, rf: usize) -> Vec<String> {
        let mut out = Vec::new();
        for (id, node) in cluster.live() {
            let Some(groups) = node.host().try_groups() else {
                continue;
            };
            for g in groups {
                let group = g.group().0;
                if group == 0 {
                    continue;
                }
                let m = g.metrics();
                if !m.is_leader {
                    continue;
                }
                if m.voters.len() >= rf {
                    self.full.insert(group);
                } else if self.full.contains(&group) {
                    out.push(format!(
                        "shard group {group}: leader {id} has {} voters {:?}, below the replication factor {rf}",
                        m.voters.len(),
                        m.voters.iter().map(|v| v.0).collect::<Vec<_>>()
                    ));
                }
            }
        }
        out
    }
}
