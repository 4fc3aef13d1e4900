//! At most one leader per term per group, as our Raft configuration
//! defines it.
//!
//! raftwatch runs openraft with its default "advanced" leader ids: a
//! leader id is (term, node), and two nodes may each lead the same term one
//! after the other (a candidate with a higher node id may win a term another
//! node already won; entries carry the full leader id, so logs stay safe).
//! The literal "one node per term" is therefore not an invariant of this
//! configuration and would flag correct runs. What must hold, and what this
//! checks every probe:
//! - a leader id (term, node) belongs to one leader: the node leads that
//!   term in one incarnation only, never again after a restart (the
//!   failure `enable_leader_restore` caused: a restarted leader resumed its
//!   term with a shorter log and overwrote entries followers held);
//!
//! Not an invariant, though it looks like one: that within a term the
//! node ids of successive leaders increase. A voter grants (t, 1) and then
//! the higher (t, 3); node 3 may complete its election first and node 1
//! second (seen in seed 474 once the harness let a partition heal early).
//!
//! Terms led by more than one node are counted in the report.

use std::collections::BTreeMap;

use crate::cluster::Cluster;
use crate::history::EventLog;

/// `ElectionSafety` is the leader-uniqueness checker.
#[derive(Debug, Default)]
pub struct ElectionSafety {
    /// (group, term) → node → (incarnation, first probe that saw it).
    leaders: BTreeMap<(u64, u64), BTreeMap<u64, (u64, u64)>>,
    probes: u64,
    /// Terms in which more than one node led.
    pub shared_terms: u64,
}

impl ElectionSafety {
    /// `probe` reads every live node's groups; returns violations and
    /// logs every leader first seen.
    pub fn probe(&mut self, cluster: &Cluster, events: &mut EventLog, t_ms: u64) -> Vec<String> {
        self.probes += 1;
        let mut out = Vec::new();
        for (id, node) in cluster.live() {
            let Some(groups) = node.host().try_groups() else {
                continue;
            };
            let incarnation = cluster.incarnation.get(&id).copied().unwrap_or(0);
            for g in groups {
                let m = g.metrics();
                if !m.is_leader {
                    continue;
                }
                let key = (m.group.0, m.term);
                let term_leaders = self.leaders.entry(key).or_default();
                match term_leaders.get(&id) {
                    Some((inc, _)) if *inc != incarnation => out.push(format!(
                        "group {} term {}: node {id} led in incarnation {inc} and again after a restart (incarnation {incarnation})",
                        key.0, key.1
                    )),
                    Some(_) => {}
                    None => {
                        if !term_leaders.is_empty() {
                            self.shared_terms += 1;
                        }
                        term_leaders.insert(id, (incarnation, self.probes));
                        events.push(
                            t_ms,
                            "leader",
                            format_args!("group={} term={} node={id}", key.0, key.1),
                        );
                    }
                }
            }
        }
        out
    }
}
