//! A silence acknowledged to its creator suppresses every notification
//! committed after it.
//!
//! Silences are checked inside the apply that commits a notification, so
//! the property is about log order. A notification counts as committed
//! after a silence when the probe saw the silence in an earlier committed
//! state than the notification, or when the notification's commit time
//! (the state's clock, which only moves forward and is stamped by the
//! proposer, so a command stamped after the silence's acknowledgement was
//! proposed after it was committed) is at or after the acknowledgement.
//! Such a notification, if the receiver got it, must not list as firing
//! an alert the silence mutes at the notification's commit time (the
//! silence as it ended up: an expiry committed later only shortens it, to
//! no earlier than that time).

use super::alerting::{AlertRun, at};

/// `check` checks every acknowledged notification against every silence.
pub fn check(run: &AlertRun<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let committed = run.committed();
    let delivered: Vec<_> = committed
        .values()
        .filter(|n| {
            run.history
                .posts
                .iter()
                .any(|p| p.key == n.key && p.answer.acknowledged())
        })
        .collect();
    for (probe, silence) in run.probe.silences.values() {
        let acked_ms = run
            .history
            .silences
            .iter()
            .find(|op| op.comment == silence.comment)
            .and_then(|op| op.acked_ms);
        for n in &delivered {
            let after = (n.probe != u64::MAX && n.probe > *probe)
                || acked_ms.is_some_and(|ok| n.created_ms >= ok);
            if !after {
                continue;
            }
            for a in n.payload.alerts.iter().filter(|a| a.status == "firing") {
                if silence.mutes(&a.labels, n.created_ms) {
                    out.push(format!(
                        "notification {} (key {}, committed at {}) lists {:?} firing, but silence {} (acknowledged at {}, active until {}) mutes it and was committed before",
                        n.id,
                        n.key,
                        at(n.created_ms),
                        a.labels.get("instance"),
                        silence.id,
                        acked_ms.map_or("-".into(), at),
                        at(silence.ends_at_ms)
                    ));
                }
            }
        }
    }
    out
}
