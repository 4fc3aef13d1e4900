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
                if m.is_leader
                    && let Some(v) = self.observe(m.group.0, m.term, id, incarnation, events, t_ms)
                {
                    out.push(v);
                }
            }
        }
        out
    }

    /// `observe` records that `node`, in its `incarnation`, leads `term`
    /// of `group`; returns the violation if it led that term in an
    /// earlier incarnation.
    fn observe(
        &mut self,
        group: u64,
        term: u64,
        node: u64,
        incarnation: u64,
        events: &mut EventLog,
        t_ms: u64,
    ) -> Option<String> {
        let term_leaders = self.leaders.entry((group, term)).or_default();
        match term_leaders.get(&node) {
            Some((inc, _)) if *inc != incarnation => Some(format!(
                "group {group} term {term}: node {node} led in incarnation {inc} and again after a restart (incarnation {incarnation})"
            )),
            Some(_) => None,
            None => {
                if !term_leaders.is_empty() {
                    self.shared_terms += 1;
                }
                term_leaders.insert(node, (incarnation, self.probes));
                events.push(
                    t_ms,
                    "leader",
                    format_args!("group={group} term={term} node={node}"),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_led_again_after_a_restart_is_a_violation_and_shared_terms_are_counted() {
        let mut c = ElectionSafety::default();
        let mut events = EventLog::default();
        // Node 1 leads group 3's term 5, seen by two probes: fine.
        assert_eq!(c.observe(3, 5, 1, 0, &mut events, 10), None);
        assert_eq!(c.observe(3, 5, 1, 0, &mut events, 20), None);
        // Node 2 leads the same term afterwards (advanced leader ids):
        // allowed, counted.
        assert_eq!(c.observe(3, 5, 2, 0, &mut events, 30), None);
        assert_eq!(c.shared_terms, 1);
        // Another group's term 5, or node 1 in term 6 after a restart:
        // different keys, fine.
        assert_eq!(c.observe(4, 5, 1, 1, &mut events, 40), None);
        assert_eq!(c.observe(3, 6, 1, 1, &mut events, 40), None);
        // Node 1 back in term 5 of group 3 in its new incarnation: the
        // leader-restore failure.
        let v = c.observe(3, 5, 1, 1, &mut events, 50).expect("a violation");
        assert!(v.contains("group 3 term 5: node 1"), "{v}");
        assert_eq!(c.shared_terms, 1);
    }
}
