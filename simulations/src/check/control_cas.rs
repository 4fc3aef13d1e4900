//! The control plane's compare-and-set history is linearizable.
//!
//! Every conditional command names the state version it read; the control
//! state machine applies it only at that version and bumps the version.
//! So in any linearizable history:
//! - at most one command conditioned on a given version is applied;
//! - a linearizable version read that begins after an applied command
//!   conditioned on `v` completed sees a version above `v`;
//! - linearizable version reads never go back: a read that begins after
//!   another completed sees at least its version.

use std::collections::BTreeMap;

use super::HistoryChecker;
use crate::history::{CasOutcome, Op, SampleKey};

/// `ControlCas` is the control-plane linearizability checker.
#[derive(Debug, Default)]
pub struct ControlCas {
    /// Open conditional commands: op → expected version.
    open_cas: BTreeMap<u64, u64>,
    /// Versions some applied command was conditioned on → its op.
    applied_at: BTreeMap<u64, u64>,
    /// The highest version an applied command completed on, before now.
    floor_applied: Option<u64>,
    /// The highest version a completed linearizable read saw.
    floor_read: u64,
    /// Open version reads: op → (floor_applied, floor_read) at their start.
    open_reads: BTreeMap<u64, (Option<u64>, u64)>,
    /// Commands applied (for the report).
    pub applied: u64,
}

impl HistoryChecker for ControlCas {
    fn observe(&mut self, op: &Op) -> Option<String> {
        match op {
            Op::CasInvoke {
                op,
                expected_version,
                ..
            } => {
                self.open_cas.insert(*op, *expected_version);
                None
            }
            Op::CasComplete { op, outcome } => {
                let v = self.open_cas.remove(op)?;
                if *outcome != CasOutcome::Applied {
                    return None;
                }
                self.applied += 1;
                self.floor_applied = Some(self.floor_applied.map_or(v, |f| f.max(v)));
                self.applied_at.insert(v, *op).map(|other| {
                    format!(
                        "control plane: commands {other} and {op} were both applied at version {v}"
                    )
                })
            }
            Op::VersionRead { op } => {
                self.open_reads
                    .insert(*op, (self.floor_applied, self.floor_read));
                None
            }
            Op::VersionComplete { op, version } => {
                let (applied, read) = self.open_reads.remove(op)?;
                let version = (*version)?;
                self.floor_read = self.floor_read.max(version);
                if let Some(a) = applied
                    && version <= a
                {
                    return Some(format!(
                        "control plane: read {op} saw version {version}, but a command conditioned on version {a} was applied before it began"
                    ));
                }
                (version < read).then(|| {
                    format!(
                        "control plane: read {op} saw version {version}, older than {read} which an earlier read saw"
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
    use crate::history::CasKind;

    fn cas(op: u64, v: u64) -> Op {
        Op::CasInvoke {
            op,
            kind: CasKind::Drain { node: 1 },
            expected_version: v,
        }
    }

    fn done(op: u64) -> Op {
        Op::CasComplete {
            op,
            outcome: CasOutcome::Applied,
        }
    }

    #[test]
    fn two_commands_applied_at_one_version_and_a_read_going_back_are_caught() {
        let mut c = ControlCas::default();
        assert!(c.observe(&cas(1, 5)).is_none());
        assert!(c.observe(&cas(2, 5)).is_none());
        assert!(c.observe(&done(1)).is_none());
        assert!(c.observe(&done(2)).is_some());

        let mut c = ControlCas::default();
        assert!(c.observe(&Op::VersionRead { op: 1 }).is_none());
        let saw = |op, v| Op::VersionComplete {
            op,
            version: Some(v),
        };
        assert!(c.observe(&saw(1, 9)).is_none());
        assert!(c.observe(&Op::VersionRead { op: 2 }).is_none());
        assert!(c.observe(&saw(2, 8)).is_some());

        let mut c = ControlCas::default();
        assert!(c.observe(&cas(1, 4)).is_none());
        assert!(c.observe(&done(1)).is_none());
        assert!(c.observe(&Op::VersionRead { op: 2 }).is_none());
        assert!(c.observe(&saw(2, 4)).is_some());
    }
}
