//! The checkers, one file each. History checkers see every operation as it
//! completes (during the run) and the final audit (at the end); the probe
//! checkers read the nodes' Raft state directly; the alerting checkers
//! (`alerting.rs` lists them) read the alerting clients' history and the
//! committed alerting states at the end.

pub mod acked_not_lost;
pub mod alert_evaluations;
pub mod alert_for;
pub mod alerting;
pub mod control_cas;
pub mod convergence;
pub mod election_safety;
pub mod linearizable_reads;
pub mod move_rf;
pub mod notification_identity;
pub mod notifications_delivered;
pub mod silences_respected;

use std::collections::BTreeMap;

use crate::history::{Op, SampleKey};

/// `HistoryChecker` checks the client history.
pub trait HistoryChecker {
    /// `observe` sees the next operation event; returns a violation.
    fn observe(&mut self, op: &Op) -> Option<String>;
    /// `finish` sees the audit's final read of everything (`None`: the
    /// audit never completed, which the liveness check reports).
    fn finish(&mut self, audit: Option<&BTreeMap<SampleKey, u64>>) -> Vec<String>;
}

/// `Writes` tracks what was attempted and acknowledged (shared by the
/// history checkers).
#[derive(Debug, Default)]
pub struct Writes {
    /// Every sample any write carried, with its value bits.
    pub attempted: BTreeMap<SampleKey, u64>,
    /// The samples of each write operation still in flight.
    pub in_flight: BTreeMap<u64, Vec<(SampleKey, u64)>>,
}

impl Writes {
    /// `observe` updates the tables; on an acknowledgement returns the
    /// samples it acknowledged.
    pub fn observe(&mut self, op: &Op) -> Vec<(SampleKey, u64)> {
        match op {
            Op::WriteInvoke { op, samples, .. } => {
                for (k, v) in samples {
                    self.attempted.insert(*k, *v);
                }
                self.in_flight.insert(*op, samples.clone());
                Vec::new()
            }
            Op::WriteComplete { op, outcome } => {
                let samples = self.in_flight.remove(op).unwrap_or_default();
                match outcome {
                    crate::history::WriteOutcome::Acked { rejected } => samples
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| !rejected.contains(i))
                        .map(|(_, s)| s)
                        .collect(),
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    /// `check_seen` reports a sample no write carried or with other value
    /// bits than written.
    pub fn check_seen(&self, what: &str, samples: &BTreeMap<SampleKey, u64>) -> Option<String> {
        for (k, v) in samples {
            match self.attempted.get(k) {
                None => {
                    return Some(format!(
                        "{what} saw sample w{} s{} t{} that no write carried",
                        k.0, k.1, k.2
                    ));
                }
                Some(w) if w != v => {
                    return Some(format!(
                        "{what} saw sample w{} s{} t{} with value bits {v:#x}, written {w:#x}",
                        k.0, k.1, k.2
                    ));
                }
                Some(_) => {}
            }
        }
        None
    }
}
