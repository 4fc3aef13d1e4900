//! `for` is honoured across failovers: the timers live in the committed
//! state, so a new control leader continues them.
//!
//! For every alert life the probe saw (one per `active_at`):
//! - it fires no earlier than `for` after it became active, and no later
//!   than `for` + 2 intervals + the time without successful evaluations
//!   in between (gaps between observed successful evaluations beyond one
//!   interval: a leaderless control group, or queries failing);
//! - it never restarts while its metric stays above the threshold: a new
//!   life after one that began at `a1` needs an evaluation in between that
//!   did not see the alert, so not every slot in between may have been
//!   certainly above (`AlertRun::certain`); a leader that resets `for`
//!   (treats alerts as new after a failover) breaks this;
//! - it never fires twice without resolving: from one evaluation to the
//!   next slot's, a firing alert keeps its `active_at`.

use raftwatch_control::alerting::AlertStatus;

use super::alerting::{AlertRun, at};
use crate::alerting::{FOR_MS, INTERVAL_MS};

/// `check` checks every life's timers.
pub fn check(run: &AlertRun<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let ok_slots: Vec<i64> = run
        .probe
        .evals
        .iter()
        .filter(|e| e.ok)
        .map(|e| e.eval_ms)
        .collect();
    for (inst, lives) in run.lives() {
        for life in &lives {
            let Some(fired) = life.fired_at_ms else {
                continue;
            };
            let a = life.active_at_ms;
            if fired - a < FOR_MS {
                out.push(format!(
                    "alert of {inst} fired at {} only {} ms after it became active at {} (for is {FOR_MS} ms)",
                    at(fired),
                    fired - a,
                    at(a)
                ));
                continue;
            }
            let mut points = vec![a];
            points.extend(ok_slots.iter().copied().filter(|t| a < *t && *t < fired));
            points.push(fired);
            let gaps: i64 = points
                .windows(2)
                .map(|w| (w[1] - w[0] - INTERVAL_MS).max(0))
                .sum();
            if fired - a > FOR_MS + 2 * INTERVAL_MS + gaps {
                out.push(format!(
                    "alert of {inst} became active at {} but fired only at {}: {} ms after, more than for ({FOR_MS} ms) + 2 intervals + {gaps} ms without successful evaluations",
                    at(a),
                    at(fired),
                    fired - a
                ));
            }
        }
        for pair in lives.windows(2) {
            let (a1, a2) = (pair[0].active_at_ms, pair[1].active_at_ms);
            let mut t = a1 + INTERVAL_MS;
            let mut always_high = true;
            while t < a2 && always_high {
                always_high = run.certain(&inst, t) == Some(true);
                t += INTERVAL_MS;
            }
            if a2 > a1 && always_high {
                out.push(format!(
                    "alert of {inst} became active again at {} (its previous life began at {}{}) although its metric was above the threshold at every evaluation slot in between: its `for` was reset",
                    at(a2),
                    at(a1),
                    pair[0]
                        .fired_at_ms
                        .map_or(String::new(), |f| format!(" and fired at {}", at(f)))
                ));
            }
        }
    }
    for pair in run.probe.evals.windows(2) {
        let (e1, e2) = (&pair[0], &pair[1]);
        if e2.eval_ms != e1.eval_ms + INTERVAL_MS {
            continue;
        }
        for x in e1.alerts.iter().filter(|x| x.status == AlertStatus::Firing) {
            if let Some(y) = e2.alerts.iter().find(|y| {
                y.fingerprint == x.fingerprint
                    && y.active_at_ms != x.active_at_ms
                    && y.status != AlertStatus::Inactive
            }) {
                out.push(format!(
                    "alert of {} was firing at {} (active since {}) and {} at the next slot with a new start {}: it fired twice without resolving",
                    x.instance,
                    at(e1.eval_ms),
                    at(x.active_at_ms),
                    y.status.name(),
                    at(y.active_at_ms)
                ));
            }
        }
    }
    out
}
