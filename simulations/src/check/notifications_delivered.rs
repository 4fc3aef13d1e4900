//! No lost notification.
//!
//! - Every notification committed before the final read was acknowledged
//!   by the receiver (a 2xx, possibly after the sender gave up waiting),
//!   none was abandoned, and none is marked delivered that the receiver
//!   never acknowledged.
//! - Every alert firing at the final read and not silenced is listed as
//!   firing by the latest notification (committed by then) that mentions
//!   it, and that one was acknowledged.
//! - Every alert life that fired for at least `group_wait` +
//!   `group_interval` + 2 intervals + the time without evaluations, while
//!   no silence could have muted its instance, appears as firing in some
//!   acknowledged notification (Alertmanager's deduplication may make an
//!   earlier notification of the same alert the one that counts).

use std::collections::BTreeSet;

use raftwatch_alerting::webhook::WebhookPayload;

use super::alerting::{AlertRun, at};
use crate::alerting::{GROUP_INTERVAL_MS, GROUP_WAIT_MS, INTERVAL_MS};

/// `check` checks delivery against the final read and the alert lives.
pub fn check(run: &AlertRun<'_>) -> Vec<String> {
    let mut out = Vec::new();
    // Without a final read the run failed liveness, which says why.
    let Some(done) = &run.history.done else {
        return out;
    };
    let committed = run.committed();
    let acked: BTreeSet<&str> = run
        .history
        .posts
        .iter()
        .filter(|p| p.answer.acknowledged())
        .map(|p| p.key.as_str())
        .collect();
    let last_id = done.notifications.iter().map(|n| n.id).max().unwrap_or(0);
    for n in committed.values().filter(|n| n.id <= last_id) {
        if !acked.contains(n.key.as_str()) {
            out.push(format!(
                "notification {} (key {}, committed at {}) was never acknowledged by the receiver",
                n.id,
                n.key,
                at(n.created_ms)
            ));
        }
    }
    for n in &done.notifications {
        if n.status == "delivered" && !acked.contains(n.key.as_str()) {
            out.push(format!(
                "notification {} (key {}) is marked delivered, but the receiver never acknowledged it",
                n.id, n.key
            ));
        }
    }
    if done.abandoned > 0 {
        out.push(format!(
            "{} notifications were abandoned undelivered",
            done.abandoned
        ));
    }
    for a in done
        .alerts
        .iter()
        .filter(|a| a.state == "firing" && a.silenced_by.is_empty())
    {
        // Notifications committed after the final read may not have been
        // delivered yet: the latest word at that read is what counts.
        let latest = committed.range(..=last_id).rev().find_map(|(_, n)| {
            let x = n
                .payload
                .alerts
                .iter()
                .find(|x| x.fingerprint == a.fingerprint)?;
            Some((n, x.status.clone()))
        });
        match latest {
            Some((n, status)) if status == "firing" && acked.contains(n.key.as_str()) => {}
            Some((n, status)) => out.push(format!(
                "alert {} of {:?} fires at the end, but its latest notification {} says {status} (acknowledged: {})",
                a.fingerprint,
                a.labels.get("instance"),
                n.id,
                acked.contains(n.key.as_str())
            )),
            None => out.push(format!(
                "alert {} of {:?} fires at the end (since {}) but no notification mentions it",
                a.fingerprint,
                a.labels.get("instance"),
                at(a.fired_at_ms)
            )),
        }
    }
    let notified: BTreeSet<String> = run
        .history
        .posts
        .iter()
        .filter(|p| p.answer.acknowledged())
        .filter_map(|p| serde_json::from_slice::<WebhookPayload>(&p.body).ok())
        .flat_map(|p| p.alerts)
        .filter(|x| x.status == "firing")
        .map(|x| x.fingerprint)
        .collect();
    let evals: Vec<i64> = run.probe.evals.iter().map(|e| e.eval_ms).collect();
    for (inst, lives) in run.lives() {
        for life in lives {
            let (Some(fired), Some(last)) = (life.fired_at_ms, life.last_firing_ms) else {
                continue;
            };
            let mut points = vec![fired];
            points.extend(evals.iter().copied().filter(|t| fired < *t && *t < last));
            points.push(last);
            let gaps: i64 = points
                .windows(2)
                .map(|w| (w[1] - w[0] - INTERVAL_MS).max(0))
                .sum();
            let needed = GROUP_WAIT_MS + GROUP_INTERVAL_MS + 2 * INTERVAL_MS + gaps;
            if last - fired < needed
                || last > done.at_ms
                || run.silenced_during(&inst, fired, last + GROUP_INTERVAL_MS)
                || notified.contains(&life.fingerprint)
            {
                continue;
            }
            out.push(format!(
                "alert of {inst} fired at {} and was still firing at {}, never silenced, but no acknowledged notification listed it firing",
                at(fired),
                at(last)
            ));
        }
    }
    out
}
