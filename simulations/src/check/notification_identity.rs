//! One identity per notification.
//!
//! - Every POST carries its key twice, in the `Idempotency-Key` header and
//!   as `idempotencyKey` in the body, and they agree.
//! - Every key the receiver got belongs to one committed notification, and
//!   the body is that notification's payload byte for byte: a redelivery
//!   (after a 500, a dropped connection, a timeout or a failover) repeats
//!   the same notification, never a new one.
//! - Keys are unique across the notification log.
//! - A failover does not produce a second notification of the same news:
//!   two successive notifications of an aggregation group never list the
//!   same alerts with the same states and starts (with `repeat_interval`
//!   at 1 h, Alertmanager's deduplication only notifies changes), unless a
//!   silence of one of its instances may have come and gone in between.

use std::collections::BTreeMap;

use raftwatch_alerting::webhook::WebhookPayload;

use super::alerting::{AlertRun, Committed, at};

/// `check` checks every POST and the notification log.
pub fn check(run: &AlertRun<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let committed = run.committed();
    let mut by_key: BTreeMap<&str, &Committed> = BTreeMap::new();
    for n in committed.values() {
        if let Some(other) = by_key.insert(n.key.as_str(), n) {
            out.push(format!(
                "notifications {} and {} share the key {}",
                other.id, n.id, n.key
            ));
        }
    }
    for p in &run.history.posts {
        let payload: WebhookPayload = match serde_json::from_slice(&p.body) {
            Ok(x) => x,
            Err(e) => {
                out.push(format!(
                    "the receiver got a body that is not a webhook payload (key {}): {e}",
                    p.key
                ));
                continue;
            }
        };
        if payload.idempotency_key != p.key {
            out.push(format!(
                "a POST's Idempotency-Key header {} differs from its body's idempotencyKey {}",
                p.key, payload.idempotency_key
            ));
        }
        match by_key.get(p.key.as_str()) {
            None => out.push(format!(
                "the receiver got key {} (at {}), which no committed notification has",
                p.key,
                at(p.at_ms)
            )),
            Some(n) if n.body != p.body => out.push(format!(
                "the receiver got key {} with a body that differs from committed notification {}",
                p.key, n.id
            )),
            Some(_) => {}
        }
    }
    // Successive notifications of one group (and webhook).
    let mut last: BTreeMap<(String, String), &Committed> = BTreeMap::new();
    for n in committed.values() {
        let group = (n.payload.group_key.clone(), n.payload.receiver.clone());
        if let Some(prev) = last.insert(group, n)
            && news(&prev.payload) == news(&n.payload)
        {
            let silenced = n.payload.alerts.iter().any(|a| {
                a.labels
                    .get("instance")
                    .is_some_and(|i| run.silenced_during(i, prev.created_ms, n.created_ms))
            });
            if !silenced {
                out.push(format!(
                    "notification {} (key {}, at {}) repeats notification {} (key {}, at {}) of group {} with a new identity",
                    n.id,
                    n.key,
                    at(n.created_ms),
                    prev.id,
                    prev.key,
                    at(prev.created_ms),
                    n.payload.group_key
                ));
            }
        }
    }
    out
}

/// What a notification says: each alert's fingerprint, state and start.
fn news(p: &WebhookPayload) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = p
        .alerts
        .iter()
        .map(|a| (a.fingerprint.clone(), a.status.clone(), a.starts_at.clone()))
        .collect();
    v.sort();
    v
}
