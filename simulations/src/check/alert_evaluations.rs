//! Every committed evaluation of the alerting rule reflects every sample
//! acknowledged before its slot.
//!
//! The evaluator queries at `linearizable` consistency after the slot has
//! begun, so an instance whose metric was certainly above the threshold at
//! the slot (`AlertRun::certain`) must have a pending or firing alert seen
//! by that evaluation (`last_seen` = the slot), and one certainly below
//! must not. A leader that evaluates from stale data, or that forgets or
//! invents alerts (for example after a failover), breaks this.

use raftwatch_control::alerting::AlertStatus;

use super::alerting::{AlertRun, at};

/// `check` compares every observed successful evaluation with the writes.
pub fn check(run: &AlertRun<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let instances = run.instances();
    for e in run.probe.evals.iter().filter(|e| e.ok) {
        for inst in &instances {
            let seen = e.alerts.iter().find(|a| {
                &a.instance == inst
                    && a.last_seen_ms == e.eval_ms
                    && a.status != AlertStatus::Inactive
            });
            match (run.certain(inst, e.eval_ms), seen) {
                (Some(true), None) => {
                    let state = e
                        .alerts
                        .iter()
                        .find(|a| &a.instance == inst)
                        .map_or("absent".to_string(), |a| {
                            format!("{} since {}", a.status.name(), at(a.active_at_ms))
                        });
                    out.push(format!(
                        "alert evaluation at {}: the metric of {inst} was above the threshold in every sample the query could see (one acknowledged before the slot), but the committed evaluation did not see its alert (it is {state})",
                        at(e.eval_ms)
                    ));
                }
                (Some(false), Some(a)) => out.push(format!(
                    "alert evaluation at {}: the metric of {inst} was not above the threshold in any sample the query could see, but the committed evaluation saw its alert ({} since {})",
                    at(e.eval_ms),
                    a.status.name(),
                    at(a.active_at_ms)
                )),
                _ => {}
            }
        }
    }
    out
}
