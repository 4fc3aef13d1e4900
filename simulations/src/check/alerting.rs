//! What the alerting checkers share: the run's alerting record
//! ([`AlertRun`]), what the metric certainly was at an evaluation slot
//! ([`AlertRun::certain`]), the union of committed notifications, and the
//! windows in which a silence may have muted an instance.
//!
//! The alerting checkers run once, at the end:
//!
//! | file | property |
//! |---|---|
//! | `alert_evaluations.rs` | every committed evaluation reflects every sample acknowledged before its slot |
//! | `alert_for.rs` | `for` is honoured and never reset: an alert fires after `for` (plus the time without evaluations), never restarts while its metric stays above the threshold, never fires twice without resolving |
//! | `notifications_delivered.rs` | no lost notification: every committed notification is acknowledged by the receiver; every alert that fired long enough unsilenced, and every alert firing at the end, is notified firing |
//! | `notification_identity.rs` | one identity per notification: every delivered key is one committed notification with that very body; no notification repeats its group's previous one under a new key |
//! | `silences_respected.rs` | no notification committed after a silence (in log order, or stamped after its acknowledgement) lists an alert the silence mutes |

use std::collections::BTreeMap;

use raftwatch_alerting::webhook::WebhookPayload;
use raftwatch_control::alerting::{AlertStatus, Notification};

use crate::alert_probe::AlertProbe;
use crate::alerting::{AlertHistory, EPOCH_MS, THRESHOLD};
use crate::params::Params;

/// A sample counts as visible to an evaluation whose slot is at least
/// this long after its acknowledgement (simulated hosts' clocks differ by
/// up to one 2 ms tick).
pub const ACK_MARGIN_MS: i64 = 10;
/// PromQL's default lookback: older samples are not seen.
pub const LOOKBACK_MS: i64 = 300_000;
/// Violations reported per checker (the first ones say enough).
pub const REPORTED_MAX: usize = 5;

/// `AlertRun` is everything the alerting checkers read.
#[derive(Debug)]
pub struct AlertRun<'a> {
    pub params: &'a Params,
    pub history: &'a AlertHistory,
    pub probe: &'a AlertProbe,
}

/// `Life` is one life of an instance's alert: from the evaluation that
/// made it pending to the one that dropped or resolved it.
#[derive(Clone, Debug)]
pub struct Life {
    pub fingerprint: String,
    pub active_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    /// The last observed evaluation that had it firing.
    pub last_firing_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
}

/// `Committed` is one notification known to be committed: seen by the
/// probe (with the first probe that held it) or in the final read.
#[derive(Clone, Debug)]
pub struct Committed {
    pub id: u64,
    pub key: String,
    pub created_ms: i64,
    pub payload: WebhookPayload,
    /// The payload exactly as the node sends it.
    pub body: Vec<u8>,
    /// First probe that held it (`u64::MAX`: only the final read did).
    pub probe: u64,
}

impl AlertRun<'_> {
    /// `instances` are the workload's instance names.
    pub fn instances(&self) -> Vec<String> {
        (0..self.params.alert_instances as usize)
            .map(crate::alerting::instance)
            .collect()
    }

    /// `certain` is whether `instance`'s metric was certainly above the
    /// threshold (`Some(true)`), certainly not (`Some(false)`: below, or
    /// no sample at all), or either (`None`) for an evaluation at slot `t`.
    ///
    /// An evaluation's query starts after its slot and is linearizable, so
    /// it sees every sample acknowledged before the slot; a sample whose
    /// write failed or timed out may be seen, then or later. The query
    /// takes the latest sample at or before `t` within the lookback. So the
    /// answer is certain when the latest sample that may be visible and
    /// every earlier one back to an acknowledged sample are on the same
    /// side of the threshold.
    pub fn certain(&self, instance: &str, t: i64) -> Option<bool> {
        let Some(samples) = self.history.samples.get(instance) else {
            return Some(false);
        };
        let end = samples.partition_point(|s| s.ts_ms <= t);
        let Some(latest) = end.checked_sub(1).map(|i| &samples[i]) else {
            return Some(false);
        };
        let high = latest.value > THRESHOLD;
        for s in samples[..end].iter().rev() {
            if s.ts_ms <= t - LOOKBACK_MS {
                break;
            }
            if (s.value > THRESHOLD) != high {
                return None;
            }
            if s.acked_ms.is_some_and(|a| a + ACK_MARGIN_MS <= t) {
                return Some(high);
            }
        }
        // Nothing on this side is certainly visible: if it is the low side,
        // the alert is inactive either way (low, or no sample).
        if high { None } else { Some(false) }
    }

    /// `committed` is every committed notification known, by id.
    pub fn committed(&self) -> BTreeMap<u64, Committed> {
        let mut out = BTreeMap::new();
        for (id, (probe, n)) in &self.probe.notifications {
            out.insert(*id, committed_of(n, *probe));
        }
        if let Some(done) = &self.history.done {
            for n in &done.notifications {
                if out.contains_key(&n.id) {
                    continue;
                }
                if let Ok(payload) = serde_json::from_str::<WebhookPayload>(&n.payload_json) {
                    out.insert(
                        n.id,
                        Committed {
                            id: n.id,
                            key: n.key.clone(),
                            created_ms: n.created_ms,
                            body: n.payload_json.clone().into_bytes(),
                            payload,
                            probe: u64::MAX,
                        },
                    );
                }
            }
        }
        out
    }

    /// `silence_windows` are, per instance, the times a silence may have
    /// muted it: from the earlier of its request and its start to its end
    /// (committed silences as the probe saw them last, and every silence
    /// the operator asked for, whatever the outcome).
    pub fn silence_windows(&self) -> BTreeMap<String, Vec<(i64, i64)>> {
        let mut out: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
        for op in &self.history.silences {
            let start = self
                .probe
                .silences
                .values()
                .find(|(_, s)| s.comment == op.comment)
                .map_or(op.invoked_ms, |(_, s)| s.starts_at_ms.min(op.invoked_ms));
            out.entry(op.instance.clone())
                .or_default()
                .push((start, op.ends_at_ms));
        }
        out
    }

    /// `lives` are, per instance, its alert's lives (one per
    /// `active_at`) in the order the probe saw them.
    pub fn lives(&self) -> BTreeMap<String, Vec<Life>> {
        let mut out: BTreeMap<String, Vec<Life>> = BTreeMap::new();
        for e in &self.probe.evals {
            for a in &e.alerts {
                let lives = out.entry(a.instance.clone()).or_default();
                let life = match lives.iter_mut().find(|l| l.active_at_ms == a.active_at_ms) {
                    Some(l) => l,
                    None => {
                        lives.push(Life {
                            fingerprint: a.fingerprint.clone(),
                            active_at_ms: a.active_at_ms,
                            fired_at_ms: None,
                            last_firing_ms: None,
                            resolved_at_ms: None,
                        });
                        let last = lives.len() - 1;
                        &mut lives[last]
                    }
                };
                life.fired_at_ms = life.fired_at_ms.or(a.fired_at_ms);
                life.resolved_at_ms = life.resolved_at_ms.or(a.resolved_at_ms);
                if a.status == AlertStatus::Firing {
                    life.last_firing_ms = Some(e.eval_ms);
                }
            }
        }
        out
    }

    /// `silenced_during` is whether a silence may have muted `instance`
    /// at some time in `[from, to]`.
    pub fn silenced_during(&self, instance: &str, from: i64, to: i64) -> bool {
        self.silence_windows()
            .get(instance)
            .is_some_and(|w| w.iter().any(|(s, e)| *s <= to && from < *e))
    }
}

fn committed_of(n: &Notification, probe: u64) -> Committed {
    Committed {
        id: n.id,
        key: n.key.clone(),
        created_ms: n.created_ms,
        body: n.payload.to_json(),
        payload: n.payload.clone(),
        probe,
    }
}

/// `at` formats a cluster time as seconds into the run.
pub fn at(ms: i64) -> String {
    format!("{:.3} s", (ms - EPOCH_MS) as f64 / 1000.0)
}

/// `check_all` runs every alerting checker.
pub fn check_all(run: &AlertRun<'_>) -> Vec<String> {
    let mut out: Vec<String> = run
        .probe
        .errors
        .iter()
        .take(1)
        .map(|e| format!("alerting probe: {e}"))
        .collect();
    for found in [
        super::alert_evaluations::check(run),
        super::alert_for::check(run),
        super::notifications_delivered::check(run),
        super::notification_identity::check(run),
        super::silences_respected::check(run),
    ] {
        out.extend(found.into_iter().take(REPORTED_MAX));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert_probe::AlertProbe;
    use crate::alerting::{AlertHistory, MetricSample};
    use crate::params::{Overrides, Params};

    fn sample(ts_ms: i64, value: f64, acked_ms: Option<i64>) -> MetricSample {
        MetricSample {
            ts_ms,
            value,
            acked_ms,
        }
    }

    #[test]
    fn an_evaluation_is_certain_only_when_every_possibly_visible_sample_agrees() {
        let params = Params::from_seed(1, &Overrides::default());
        let mut history = AlertHistory::default();
        history.samples.insert(
            "i1".into(),
            vec![
                sample(1_000, 20.0, Some(1_005)),
                sample(1_200, 25.0, None),
                sample(1_400, 3.0, None),
                sample(1_600, 4.0, Some(1_650)),
                sample(1_800, 30.0, Some(1_900)),
            ],
        );
        let probe = AlertProbe::default();
        let run = AlertRun {
            params: &params,
            history: &history,
            probe: &probe,
        };
        assert_eq!(run.certain("i1", 999), Some(false), "nothing written yet");
        assert_eq!(run.certain("i1", 1_010), None, "acked too late for 1010");
        assert_eq!(run.certain("i1", 1_300), Some(true));
        assert_eq!(run.certain("i1", 1_500), None, "an unknown low sample");
        assert_eq!(run.certain("i1", 1_700), Some(false));
        assert_eq!(run.certain("i1", 1_850), None, "high, not acked yet");
        assert_eq!(run.certain("i1", 1_910), Some(true));
        assert_eq!(run.certain("i2", 1_910), Some(false), "no series");
    }

    fn high_from(ts: i64) -> Vec<MetricSample> {
        (0..20)
            .map(|k| sample(ts + 250 * k, 20.0, Some(ts + 250 * k + 5)))
            .collect()
    }

    fn eval(probe: u64, eval_ms: i64, active_at_ms: i64) -> crate::alert_probe::EvalObs {
        crate::alert_probe::EvalObs {
            probe,
            eval_ms,
            ok: true,
            alerts: vec![crate::alert_probe::AlertObs {
                fingerprint: "fp1".into(),
                instance: "i1".into(),
                status: AlertStatus::Pending,
                active_at_ms,
                fired_at_ms: None,
                resolved_at_ms: None,
                last_seen_ms: eval_ms,
            }],
        }
    }

    #[test]
    fn an_alert_that_restarts_while_its_metric_stays_high_is_a_reset() {
        let params = Params::from_seed(1, &Overrides::default());
        let mut history = AlertHistory::default();
        history.samples.insert("i1".into(), high_from(1_000));
        let mut probe = AlertProbe::default();
        probe.evals = vec![
            eval(1, 2_000, 2_000),
            eval(2, 3_000, 2_000),
            eval(3, 4_000, 4_000),
        ];
        let run = AlertRun {
            params: &params,
            history: &history,
            probe: &probe,
        };
        let found = super::super::alert_for::check(&run);
        assert!(found.iter().any(|v| v.contains("was reset")), "{found:?}");

        // A low sample acknowledged before slot 3000 may legitimately end
        // the first life (the evaluation at 3000 did not see the alert).
        let mut samples = high_from(1_000);
        samples.retain(|x| x.ts_ms < 2_900 || x.ts_ms >= 3_500);
        samples.insert(
            samples.partition_point(|x| x.ts_ms < 2_900),
            sample(2_900, 1.0, Some(2_950)),
        );
        history.samples.insert("i1".into(), samples);
        probe.evals = vec![eval(1, 2_000, 2_000), eval(3, 4_000, 4_000)];
        let run = AlertRun {
            params: &params,
            history: &history,
            probe: &probe,
        };
        assert!(super::super::alert_for::check(&run).is_empty());
    }

    fn notification(id: u64, created_ms: i64) -> Notification {
        use raftwatch_alerting::webhook::{WebhookAlert, build_payload};
        let labels: raftwatch_alerting::LabelSet = [
            ("alertname".to_string(), "High".to_string()),
            ("instance".to_string(), "i1".to_string()),
        ]
        .into_iter()
        .collect();
        let alert = WebhookAlert {
            status: "firing".into(),
            labels: labels.clone(),
            annotations: Default::default(),
            starts_at: "2023-11-14T22:13:22Z".into(),
            ends_at: raftwatch_alerting::webhook::ZERO_TIME.into(),
            generator_url: String::new(),
            fingerprint: "fp1".into(),
        };
        let key = format!("{id}-k");
        Notification {
            id,
            key: key.clone(),
            receiver: "sim".into(),
            url: "http://receiver:9093/hook".into(),
            payload: build_payload("sim", "g", &labels, vec![alert], 0, "", &key),
            created_ms,
            delivered_ms: None,
            attempts: 0,
        }
    }

    fn post(n: &Notification, body: Vec<u8>) -> crate::alerting::Post {
        crate::alerting::Post {
            at_ms: n.created_ms + 10,
            key: n.key.clone(),
            body,
            answer: crate::alerting::Answer::Ok,
        }
    }

    #[test]
    fn a_notification_committed_after_a_silence_may_not_list_what_it_mutes() {
        use raftwatch_control::alerting::Silence;
        let params = Params::from_seed(1, &Overrides::default());
        let silence = Silence {
            id: "s1".into(),
            matchers: vec![
                raftwatch_alerting::matcher::parse_matcher("instance=\"i1\"").expect("matcher"),
            ],
            starts_at_ms: 1_000,
            ends_at_ms: 10_000,
            created_by: "sim".into(),
            comment: "sim silence 1".into(),
            updated_at_ms: 1_000,
        };
        let mut probe = AlertProbe::default();
        probe.silences.insert("s1".into(), (2, silence));
        // Seen before the silence: allowed. After it: a violation.
        let before = notification(1, 900);
        let after = notification(2, 5_000);
        probe.notifications.insert(1, (1, before.clone()));
        probe.notifications.insert(2, (3, after.clone()));
        let mut history = AlertHistory::default();
        history.posts.push(post(&before, before.payload.to_json()));
        history.posts.push(post(&after, after.payload.to_json()));
        let run = AlertRun {
            params: &params,
            history: &history,
            probe: &probe,
        };
        let found = super::super::silences_respected::check(&run);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("notification 2 "), "{found:?}");
    }

    #[test]
    fn a_delivered_key_must_carry_its_committed_body() {
        let params = Params::from_seed(1, &Overrides::default());
        let n = notification(1, 900);
        let mut probe = AlertProbe::default();
        probe.notifications.insert(1, (1, n.clone()));
        let mut history = AlertHistory::default();
        history.posts.push(post(&n, n.payload.to_json()));
        let run = AlertRun {
            params: &params,
            history: &history,
            probe: &probe,
        };
        assert!(super::super::notification_identity::check(&run).is_empty());
        let mut other = n.clone();
        other.payload.status = "resolved".into();
        history.posts.push(post(&n, other.payload.to_json()));
        let mut stranger = notification(7, 900);
        stranger.key = "7-unknown".into();
        stranger.payload.idempotency_key = "7-unknown".into();
        history
            .posts
            .push(post(&stranger, stranger.payload.to_json()));
        let run = AlertRun {
            params: &params,
            history: &history,
            probe: &probe,
        };
        let found = super::super::notification_identity::check(&run);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("differs from committed notification 1"));
        assert!(found[1].contains("no committed notification has"));
    }
}
