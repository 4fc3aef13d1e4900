//! No acknowledged sample is lost; no sample is visible that was never
//! written; values are intact. Checked on every read as it completes (for
//! "never written" and "intact") and against the final audit (for "lost").

use std::collections::BTreeMap;

use super::{HistoryChecker, Writes};
use crate::history::{Op, SampleKey};

/// `AckedNotLost` is the durability checker.
#[derive(Debug, Default)]
pub struct AckedNotLost {
    writes: Writes,
    acked: BTreeMap<SampleKey, u64>,
}

impl HistoryChecker for AckedNotLost {
    fn observe(&mut self, op: &Op) -> Option<String> {
        for (k, v) in self.writes.observe(op) {
            self.acked.insert(k, v);
        }
        match op {
            Op::ReadComplete {
                op,
                samples: Some(samples),
            } => self.writes.check_seen(&format!("read {op}"), samples),
            _ => None,
        }
    }

    fn finish(&mut self, audit: Option<&BTreeMap<SampleKey, u64>>) -> Vec<String> {
        let Some(audit) = audit else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(v) = self.writes.check_seen("the audit", audit) {
            out.push(v);
        }
        let lost: Vec<&SampleKey> = self
            .acked
            .keys()
            .filter(|k| !audit.contains_key(k))
            .collect();
        if let Some(first) = lost.first() {
            out.push(format!(
                "{} acknowledged samples lost (first: w{} s{} t{})",
                lost.len(),
                first.0,
                first.1,
                first.2
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::WriteOutcome;

    fn write(op: u64, ts: i64) -> Op {
        Op::WriteInvoke {
            op,
            id: format!("w1-{op}"),
            samples: vec![((1, 0, ts), 7)],
        }
    }

    #[test]
    fn a_lost_acknowledged_sample_and_an_invented_one_are_both_caught() {
        let mut c = AckedNotLost::default();
        assert!(c.observe(&write(1, 1000)).is_none());
        let ack = Op::WriteComplete {
            op: 1,
            outcome: WriteOutcome::Acked { rejected: vec![] },
        };
        assert!(c.observe(&ack).is_none());
        let invented = Op::ReadComplete {
            op: 2,
            samples: Some([((1, 0, 5), 7)].into_iter().collect()),
        };
        assert!(c.observe(&invented).is_some());
        let empty = BTreeMap::new();
        assert_eq!(c.finish(Some(&empty)).len(), 1);
        let full: BTreeMap<SampleKey, u64> = [((1, 0, 1000), 7)].into_iter().collect();
        assert!(c.finish(Some(&full)).is_empty());
        let corrupted: BTreeMap<SampleKey, u64> = [((1, 0, 1000), 8)].into_iter().collect();
        assert_eq!(c.finish(Some(&corrupted)).len(), 1);
    }
}
