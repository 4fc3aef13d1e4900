//! Linearizable reads: every linearizable read reflects every write
//! acknowledged before it began, and every sample an earlier linearizable
//! read (completed before it began) saw. Stale reads are checked only
//! against what was ever written (values intact), not for recency.

use std::collections::{BTreeMap, BTreeSet};

use super::{HistoryChecker, Writes};
use crate::history::{Op, SampleKey};

/// `LinearizableReads` is the recency checker.
#[derive(Debug, Default)]
pub struct LinearizableReads {
    writes: Writes,
    /// Acknowledged samples in acknowledgement order.
    acked: Vec<SampleKey>,
    /// Samples a completed linearizable read saw, in the order first seen.
    seen: Vec<SampleKey>,
    seen_set: BTreeSet<SampleKey>,
    /// Open linearizable reads: how much of `acked` and `seen` preceded
    /// their start.
    open: BTreeMap<u64, (usize, usize)>,
}

impl HistoryChecker for LinearizableReads {
    fn observe(&mut self, op: &Op) -> Option<String> {
        for (k, _) in self.writes.observe(op) {
            self.acked.push(k);
        }
        match op {
            Op::ReadInvoke {
                op,
                linearizable: true,
            } => {
                self.open.insert(*op, (self.acked.len(), self.seen.len()));
                None
            }
            Op::ReadComplete { op, samples } => {
                let (acked_before, seen_before) = self.open.remove(op)?;
                let samples = samples.as_ref()?;
                let missing_ack = self.acked[..acked_before]
                    .iter()
                    .find(|k| !samples.contains_key(k))
                    .copied();
                let missing_seen = self.seen[..seen_before]
                    .iter()
                    .find(|k| !samples.contains_key(k))
                    .copied();
                for k in samples.keys() {
                    if self.seen_set.insert(*k) {
                        self.seen.push(*k);
                    }
                }
                if let Some(k) = missing_ack {
                    return Some(format!(
                        "linearizable read {op} missed sample w{} s{} t{}, acknowledged before it began",
                        k.0, k.1, k.2
                    ));
                }
                missing_seen.map(|k| {
                    format!(
                        "linearizable read {op} missed sample w{} s{} t{}, which an earlier linearizable read saw",
                        k.0, k.1, k.2
                    )
                })
            }
            _ => None,
        }
    }

    fn finish(&mut self, _audit: Option<&BTreeMap<SampleKey, u64>>) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::WriteOutcome;

    #[test]
    fn a_read_that_misses_an_earlier_ack_fails_and_a_concurrent_one_does_not() {
        let mut c = LinearizableReads::default();
        let ops = [
            Op::WriteInvoke {
                op: 1,
                id: "a".into(),
                samples: vec![((1, 0, 1000), 1)],
            },
            // Read 2 starts before the ack: it may miss the sample.
            Op::ReadInvoke {
                op: 2,
                linearizable: true,
            },
            Op::WriteComplete {
                op: 1,
                outcome: WriteOutcome::Acked { rejected: vec![] },
            },
            Op::ReadInvoke {
                op: 3,
                linearizable: true,
            },
            Op::ReadComplete {
                op: 2,
                samples: Some(BTreeMap::new()),
            },
        ];
        for op in &ops {
            assert_eq!(c.observe(op), None, "{op:?}");
        }
        let late = Op::ReadComplete {
            op: 3,
            samples: Some(BTreeMap::new()),
        };
        assert!(c.observe(&late).is_some());
    }
}
