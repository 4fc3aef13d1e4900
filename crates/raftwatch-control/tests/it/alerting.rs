//! The alerting state machine: Prometheus's alert transitions, the
//! Alertmanager dispatch (group_wait, group_interval, repeat_interval,
//! resolved notifications), silences decided in log order, inhibition,
//! the notification log's lifecycle, and that a replica rebuilt from a
//! snapshot continues exactly where the old one stopped.

use raftwatch_alerting::LabelSet;
use raftwatch_alerting::amconfig::parse_config;
use raftwatch_alerting::matcher::parse_matcher;
use raftwatch_alerting::rules::{AlertingRule, RecordingRule, Rule, RuleGroup};
use raftwatch_control::alerting::{
    AlertStatus, AlertingCommand, EvalAlert, RuleHealth, RuleResult, SILENCE_START_SLACK_MS,
    UNDELIVERED_MAX_AGE_MS,
};
use raftwatch_control::sm::decode_outcome;
use raftwatch_control::{Applied, Command, ControlStateMachine, Refusal};
use raftwatch_raft::GroupStateMachine;

use crate::support::bootstrap_command;

const T0: i64 = 1_800_000_000_000;

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn group(name: &str, for_ms: i64, keep_ms: i64) -> RuleGroup {
    RuleGroup {
        name: name.into(),
        interval_ms: 1000,
        limit: 0,
        rules: vec![
            Rule::Recording(RecordingRule {
                record: "job:up:sum".into(),
                expr: "sum(up)".into(),
                labels: LabelSet::new(),
            }),
            Rule::Alerting(AlertingRule {
                alert: "HighLoad".into(),
                expr: "load > 1".into(),
                for_ms,
                keep_firing_for_ms: keep_ms,
                labels: labels(&[("severity", "page")]),
                annotations: LabelSet::new(),
            }),
        ],
    }
}

fn alert(instance: &str, value: f64) -> EvalAlert {
    EvalAlert {
        labels: labels(&[
            ("alertname", "HighLoad"),
            ("instance", instance),
            ("severity", "page"),
        ]),
        annotations: labels(&[("summary", "load is high")]),
        value,
    }
}

const CONFIG: &str = r#"
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 5s
  repeat_interval: 1m
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:9/hook
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="page"']
    equal: [instance]
"#;

struct Sm {
    sm: ControlStateMachine,
    index: u64,
}

impl Sm {
    fn new() -> Sm {
        let mut s = Sm {
            sm: ControlStateMachine::new(),
            index: 0,
        };
        s.must(&bootstrap_command(3, 4, 3));
        s
    }

    fn run(&mut self, cmd: &Command) -> Result<Applied, Refusal> {
        self.index += 1;
        let bytes = self
            .sm
            .apply(self.index, &raftwatch_control::state::encode_command(cmd));
        decode_outcome(&bytes).expect("an outcome decodes")
    }

    fn must(&mut self, cmd: &Command) -> Applied {
        self.run(cmd)
            .unwrap_or_else(|r| panic!("{cmd:?} refused: {r}"))
    }

    fn alerting(&mut self, cmd: AlertingCommand) -> Result<Applied, Refusal> {
        self.run(&Command::Alerting(cmd))
    }

    fn setup(&mut self, for_ms: i64, keep_ms: i64) {
        self.alerting(AlertingCommand::SetConfig {
            config: parse_config(CONFIG).expect("config parses"),
            expected_version: None,
        })
        .expect("config applies");
        self.alerting(AlertingCommand::ApplyRules {
            groups: vec![group("g", for_ms, keep_ms)],
            expected_version: None,
        })
        .expect("rules apply");
    }

    fn version(&self, g: &str) -> u64 {
        self.sm.alerting().groups[g].version
    }

    /// One evaluation of group `g` at `t` seeing `alerts`; returns the
    /// notifications it committed.
    fn eval(&mut self, t: i64, alerts: Vec<EvalAlert>) -> Vec<u64> {
        let version = self.version("g");
        let applied = self
            .alerting(AlertingCommand::RuleGroupEvaluated {
                group: "g".into(),
                version,
                eval_ms: t,
                now_ms: t,
                duration_ms: 3,
                results: vec![
                    RuleResult {
                        outcome: Ok(vec![]),
                        duration_ms: 1,
                    },
                    RuleResult {
                        outcome: Ok(alerts),
                        duration_ms: 2,
                    },
                ],
            })
            .unwrap_or_else(|r| panic!("evaluation at {t} refused: {r}"));
        applied
            .alerting
            .map(|a| a.notifications)
            .unwrap_or_default()
    }

    fn tick(&mut self, t: i64) -> Vec<u64> {
        self.alerting(AlertingCommand::Tick { now_ms: t })
            .expect("tick")
            .alerting
            .map(|a| a.notifications)
            .unwrap_or_default()
    }

    fn status(&self, instance: &str) -> Option<AlertStatus> {
        self.sm
            .alerting()
            .alerts()
            .find(|(_, _, a)| a.labels.get("instance").map(String::as_str) == Some(instance))
            .map(|(_, _, a)| a.status)
    }

    fn payload_status(&self, id: u64) -> (String, Vec<(String, String)>) {
        let n = &self.sm.alerting().notifications[&id];
        (
            n.payload.status.clone(),
            n.payload
                .alerts
                .iter()
                .map(|a| (a.labels["instance"].clone(), a.status.clone()))
                .collect(),
        )
    }
}

#[test]
fn an_alert_is_pending_for_its_for_duration_then_fires_once() {
    let mut s = Sm::new();
    s.setup(3000, 0);
    assert!(s.eval(T0, vec![alert("a", 2.0)]).is_empty());
    assert_eq!(s.status("a"), Some(AlertStatus::Pending));
    assert!(s.eval(T0 + 1000, vec![alert("a", 2.0)]).is_empty());
    assert!(s.eval(T0 + 2000, vec![alert("a", 2.0)]).is_empty());
    assert_eq!(s.status("a"), Some(AlertStatus::Pending));
    let sent = s.eval(T0 + 3000, vec![alert("a", 2.5)]);
    assert_eq!(s.status("a"), Some(AlertStatus::Firing));
    assert_eq!(sent.len(), 1, "group_wait 0: notified at once");
    assert_eq!(
        s.payload_status(sent[0]),
        ("firing".into(), vec![("a".into(), "firing".into())])
    );
    // Further evaluations inside group_interval and repeat_interval: no
    // second notification for the same firing set.
    for i in 4..40 {
        assert!(s.eval(T0 + i * 1000, vec![alert("a", 2.0)]).is_empty());
        assert!(s.tick(T0 + i * 1000 + 500).is_empty());
    }
    let a =
        s.sm.alerting()
            .alerts()
            .next()
            .map(|(_, _, a)| a.clone())
            .expect("one alert");
    assert_eq!(a.active_at_ms, T0);
    assert_eq!(a.fired_at_ms, Some(T0 + 3000));
}

#[test]
fn a_pending_alert_that_disappears_is_dropped_and_restarts_its_timer() {
    let mut s = Sm::new();
    s.setup(2000, 0);
    s.eval(T0, vec![alert("a", 2.0)]);
    s.eval(T0 + 1000, vec![]);
    assert_eq!(s.status("a"), None);
    s.eval(T0 + 2000, vec![alert("a", 2.0)]);
    s.eval(T0 + 3000, vec![alert("a", 2.0)]);
    assert_eq!(s.status("a"), Some(AlertStatus::Pending));
    s.eval(T0 + 4000, vec![alert("a", 2.0)]);
    assert_eq!(s.status("a"), Some(AlertStatus::Firing));
}

#[test]
fn resolution_notifies_resolved_and_keep_firing_for_holds_it() {
    let mut s = Sm::new();
    s.setup(0, 3000);
    let first = s.eval(T0, vec![alert("a", 2.0)]);
    assert_eq!(first.len(), 1);
    // Absent, but keep_firing_for 3 s keeps it firing.
    s.eval(T0 + 1000, vec![]);
    s.eval(T0 + 2000, vec![]);
    s.eval(T0 + 3000, vec![]);
    assert_eq!(s.status("a"), Some(AlertStatus::Firing));
    s.eval(T0 + 4000, vec![]);
    assert_eq!(s.status("a"), Some(AlertStatus::Inactive));
    // The group flushes every 5 s (group_interval): the resolved
    // notification comes at the first flush after the resolution.
    let mut sent = Vec::new();
    for t in (T0 + 4000..T0 + 12_000).step_by(500) {
        sent.extend(s.tick(t));
    }
    assert_eq!(sent.len(), 1, "exactly one resolved notification");
    assert_eq!(
        s.payload_status(sent[0]),
        ("resolved".into(), vec![("a".into(), "resolved".into())])
    );
    // Nothing afterwards: the group is gone.
    for t in (T0 + 12_000..T0 + 200_000).step_by(5000) {
        assert!(s.tick(t).is_empty());
    }
    assert!(s.sm.alerting().agg_groups.is_empty());
}

#[test]
fn repeat_interval_renotifies_an_unchanged_firing_group() {
    let mut s = Sm::new();
    s.setup(0, 0);
    let mut sent = s.eval(T0, vec![alert("a", 2.0)]);
    for i in 1..=130 {
        sent.extend(s.eval(T0 + i * 1000, vec![alert("a", 2.0)]));
        sent.extend(s.tick(T0 + i * 1000));
    }
    // repeat_interval 1 m, checked at 5 s flushes: t=0, 60, 120.
    assert_eq!(sent.len(), 3, "{sent:?}");
    let keys: std::collections::BTreeSet<_> = sent
        .iter()
        .map(|id| s.sm.alerting().notifications[id].key.clone())
        .collect();
    assert_eq!(keys.len(), 3, "each notification has its own key");
}

#[test]
fn a_new_alert_in_a_notified_group_waits_for_the_next_flush() {
    let mut s = Sm::new();
    s.setup(0, 0);
    assert_eq!(s.eval(T0, vec![alert("a", 2.0)]).len(), 1);
    assert!(
        s.eval(T0 + 1000, vec![alert("a", 2.0), alert("b", 2.0)])
            .is_empty()
    );
    let mut sent = Vec::new();
    for t in (T0 + 1000..=T0 + 5000).step_by(1000) {
        sent.extend(s.tick(t));
    }
    assert_eq!(sent.len(), 1);
    let (_, alerts) = s.payload_status(sent[0]);
    assert_eq!(alerts.len(), 2, "the group's notification lists both");
}

#[test]
fn a_committed_silence_mutes_every_later_notification() {
    let mut s = Sm::new();
    s.setup(0, 0);
    let m = vec![parse_matcher("instance=a").expect("matcher")];
    let applied = s
        .alerting(AlertingCommand::AddSilence {
            replaces: None,
            matchers: m,
            starts_at_ms: T0,
            ends_at_ms: T0 + 3_600_000,
            created_by: "ops".into(),
            comment: "maintenance".into(),
            now_ms: T0,
        })
        .expect("silence");
    let id = applied.alerting.and_then(|a| a.silence_id).expect("an id");
    let sent = s.eval(T0 + 1000, vec![alert("a", 2.0), alert("b", 2.0)]);
    assert_eq!(sent.len(), 1);
    let (_, alerts) = s.payload_status(sent[0]);
    assert_eq!(alerts, vec![("b".to_string(), "firing".to_string())]);
    // Only a silenced alert: no notification at all, ever, while silenced.
    let mut s2 = Sm::new();
    s2.setup(0, 0);
    s2.alerting(AlertingCommand::AddSilence {
        replaces: None,
        matchers: vec![parse_matcher("severity=~pa.e").expect("matcher")],
        starts_at_ms: T0,
        ends_at_ms: T0 + 3_600_000,
        created_by: "ops".into(),
        comment: "c".into(),
        now_ms: T0,
    })
    .expect("silence");
    for i in 0..200 {
        assert!(s2.eval(T0 + i * 1000, vec![alert("a", 2.0)]).is_empty());
        assert!(s2.tick(T0 + i * 1000 + 1).is_empty());
    }
    // Expiring the first silence lets "a" be notified at the next flush.
    s.alerting(AlertingCommand::ExpireSilence {
        id,
        now_ms: T0 + 2000,
    })
    .expect("expire");
    let mut later = Vec::new();
    for t in (T0 + 2000..=T0 + 7000).step_by(1000) {
        later.extend(s.tick(t));
    }
    assert_eq!(later.len(), 1);
    assert_eq!(s.payload_status(later[0]).1.len(), 2);
}

#[test]
fn a_silence_starting_within_the_slack_is_active_at_once_and_time_never_goes_back() {
    let mut s = Sm::new();
    s.setup(0, 0);
    // The client's clock is 5 s ahead of the leader's.
    s.alerting(AlertingCommand::AddSilence {
        replaces: None,
        matchers: vec![parse_matcher("instance=a").expect("matcher")],
        starts_at_ms: T0 + 5000,
        ends_at_ms: T0 + 3_600_000,
        created_by: "ops".into(),
        comment: "c".into(),
        now_ms: T0,
    })
    .expect("silence");
    let sil =
        s.sm.alerting()
            .silences
            .values()
            .next()
            .cloned()
            .expect("one");
    assert_eq!(sil.starts_at_ms, T0);
    // A later leader whose clock is behind cannot un-silence: the state's
    // clock only moves forward.
    let sent = s.eval(T0 + 1000, vec![alert("a", 2.0)]);
    assert!(sent.is_empty());
    let version = s.version("g");
    let r = s.alerting(AlertingCommand::RuleGroupEvaluated {
        group: "g".into(),
        version,
        eval_ms: T0 + 2000,
        now_ms: T0 - 60_000,
        duration_ms: 0,
        results: vec![
            RuleResult {
                outcome: Ok(vec![]),
                duration_ms: 0,
            },
            RuleResult {
                outcome: Ok(vec![alert("a", 2.0)]),
                duration_ms: 0,
            },
        ],
    });
    assert!(
        r.expect("applies")
            .alerting
            .expect("alerting")
            .notifications
            .is_empty()
    );
    assert!(s.sm.alerting().clock_ms >= T0 + 1000);
    // Further ahead than the slack: pending.
    s.alerting(AlertingCommand::AddSilence {
        replaces: None,
        matchers: vec![parse_matcher("instance=b").expect("matcher")],
        starts_at_ms: T0 + 1000 + SILENCE_START_SLACK_MS + 1,
        ends_at_ms: T0 + 3_600_000,
        created_by: "ops".into(),
        comment: "c".into(),
        now_ms: T0 + 1000,
    })
    .expect("silence");
    let pending =
        s.sm.alerting()
            .silences
            .values()
            .filter(|x| x.state(s.sm.alerting().clock_ms).name() == "pending")
            .count();
    assert_eq!(pending, 1);
}

/// (matchers, start, end, creator, comment, what the refusal mentions).
type SilenceCase = (
    Vec<raftwatch_alerting::matcher::Matcher>,
    i64,
    i64,
    &'static str,
    &'static str,
    &'static str,
);

#[test]
fn invalid_silences_are_refused_and_change_nothing() {
    let mut s = Sm::new();
    s.setup(0, 0);
    let before = serde_json::to_string(s.sm.alerting()).expect("json");
    let good = || vec![parse_matcher("instance=a").expect("matcher")];
    let cases: Vec<SilenceCase> = vec![
        (vec![], T0, T0 + 1000, "ops", "c", "at least one matcher"),
        (
            vec![parse_matcher("instance=~\".*\"").expect("matcher")],
            T0,
            T0 + 1000,
            "ops",
            "c",
            "empty string",
        ),
        (good(), T0 + 1000, T0, "ops", "c", "ends before it starts"),
        (good(), T0 - 2000, T0 - 1000, "ops", "c", "in the past"),
        (good(), T0, T0 + 1000, "", "c", "creator"),
        (good(), T0, T0 + 1000, "ops", "", "comment"),
    ];
    for (matchers, start, end, by, comment, why) in cases {
        let r = s.alerting(AlertingCommand::AddSilence {
            replaces: None,
            matchers,
            starts_at_ms: start,
            ends_at_ms: end,
            created_by: by.into(),
            comment: comment.into(),
            now_ms: T0,
        });
        match r {
            Err(e) => assert!(e.to_string().contains(why), "{e} should mention {why:?}"),
            Ok(_) => panic!("silence accepted; expected a refusal about {why:?}"),
        }
    }
    assert!(
        s.alerting(AlertingCommand::ExpireSilence {
            id: "nope".into(),
            now_ms: T0
        })
        .is_err()
    );
    assert_eq!(
        serde_json::to_string(s.sm.alerting()).expect("json"),
        before,
        "refusals left the state unchanged"
    );
}

#[test]
fn stale_and_replaced_evaluations_are_refused() {
    let mut s = Sm::new();
    s.setup(0, 0);
    s.eval(T0, vec![alert("a", 2.0)]);
    let version = s.version("g");
    let stale = s.alerting(AlertingCommand::RuleGroupEvaluated {
        group: "g".into(),
        version,
        eval_ms: T0,
        now_ms: T0,
        duration_ms: 0,
        results: vec![
            RuleResult {
                outcome: Ok(vec![]),
                duration_ms: 0,
            },
            RuleResult {
                outcome: Ok(vec![]),
                duration_ms: 0,
            },
        ],
    });
    assert!(
        matches!(stale, Err(Refusal::Precondition { .. })),
        "{stale:?}"
    );
    assert_eq!(s.status("a"), Some(AlertStatus::Firing), "nothing changed");
    // Re-applying the same group keeps the alert's timers (same rule).
    s.alerting(AlertingCommand::ApplyRules {
        groups: vec![group("g", 0, 0)],
        expected_version: None,
    })
    .expect("re-apply");
    assert_eq!(s.status("a"), Some(AlertStatus::Firing));
    let replaced = s.alerting(AlertingCommand::RuleGroupEvaluated {
        group: "g".into(),
        version,
        eval_ms: T0 + 1000,
        now_ms: T0 + 1000,
        duration_ms: 0,
        results: vec![],
    });
    assert!(
        matches!(replaced, Err(Refusal::Precondition { .. })),
        "{replaced:?}"
    );
    // Changing the expression drops the state.
    let mut g = group("g", 0, 0);
    if let Rule::Alerting(r) = &mut g.rules[1] {
        r.expr = "load > 2".into();
    }
    s.alerting(AlertingCommand::ApplyRules {
        groups: vec![g],
        expected_version: None,
    })
    .expect("apply");
    assert_eq!(s.status("a"), None);
}

#[test]
fn errors_and_limits_mark_the_rule_unhealthy() {
    let mut s = Sm::new();
    s.setup(0, 0);
    let version = s.version("g");
    s.alerting(AlertingCommand::RuleGroupEvaluated {
        group: "g".into(),
        version,
        eval_ms: T0,
        now_ms: T0,
        duration_ms: 0,
        results: vec![
            RuleResult {
                outcome: Err("boom".into()),
                duration_ms: 0,
            },
            RuleResult {
                outcome: Ok(vec![alert("a", 1.0), alert("a", 2.0)]),
                duration_ms: 0,
            },
        ],
    })
    .expect("applies");
    let g = &s.sm.alerting().groups["g"];
    assert_eq!(g.rules[0].health, RuleHealth::Err);
    assert_eq!(g.rules[0].last_error, "boom");
    assert_eq!(g.rules[1].health, RuleHealth::Err);
    assert!(g.rules[1].last_error.contains("same labelset"));
    // limit 1 with 2 alerts: the rule's alerts are dropped.
    let mut lg = group("g", 0, 0);
    lg.limit = 1;
    s.alerting(AlertingCommand::ApplyRules {
        groups: vec![lg],
        expected_version: None,
    })
    .expect("apply");
    s.eval(T0 + 1000, vec![alert("a", 1.0), alert("b", 1.0)]);
    let g = &s.sm.alerting().groups["g"];
    assert!(g.rules[1].alerts.is_empty());
    assert!(g.rules[1].last_error.contains("exceeded limit"));
}

#[test]
fn inhibition_mutes_targets_while_a_source_fires() {
    let mut s = Sm::new();
    s.setup(0, 0);
    let mut critical = alert("a", 9.0);
    critical.labels.insert("severity".into(), "critical".into());
    let sent = s.eval(T0, vec![critical, alert("a", 2.0), alert("b", 2.0)]);
    assert_eq!(sent.len(), 1);
    let (_, alerts) = s.payload_status(sent[0]);
    let instances: Vec<_> = alerts.iter().map(|(i, _)| i.as_str()).collect();
    // "a" (page) is inhibited by "a" (critical); "b" is not.
    assert_eq!(instances.len(), 2, "{alerts:?}");
    let n = &s.sm.alerting().notifications[&sent[0]];
    assert!(
        n.payload
            .alerts
            .iter()
            .all(|a| !(a.labels["instance"] == "a" && a.labels["severity"] == "page")),
        "the inhibited alert is left out: {alerts:?}"
    );
}

#[test]
fn delivered_notifications_retire_and_old_undelivered_ones_are_abandoned() {
    let mut s = Sm::new();
    s.setup(0, 0);
    let sent = s.eval(T0, vec![alert("a", 2.0)]);
    assert_eq!(s.sm.alerting().undelivered().count(), 1);
    s.alerting(AlertingCommand::MarkDelivered {
        delivered: sent.clone(),
        now_ms: T0 + 10,
    })
    .expect("mark");
    assert_eq!(s.sm.alerting().undelivered().count(), 0);
    assert_eq!(
        s.sm.alerting().notifications[&sent[0]].delivered_ms,
        Some(T0 + 10)
    );
    // A second mark (a retried delivery) changes nothing but the count.
    s.alerting(AlertingCommand::MarkDelivered {
        delivered: sent.clone(),
        now_ms: T0 + 20,
    })
    .expect("mark");
    assert_eq!(
        s.sm.alerting().notifications[&sent[0]].delivered_ms,
        Some(T0 + 10)
    );
    let more = s.eval(T0 + 1000, vec![alert("a", 2.0), alert("b", 2.0)]);
    assert!(more.is_empty());
    let flushed = s.tick(T0 + 5000);
    assert_eq!(flushed.len(), 1);
    let repeated = s.tick(T0 + 5000 + UNDELIVERED_MAX_AGE_MS);
    assert!(!s.sm.alerting().notifications.contains_key(&flushed[0]));
    assert_eq!(s.sm.alerting().notifications_abandoned, 1);
    // The alerts still fire, so the same tick repeats them (repeat_interval
    // passed long ago) in a new notification with a new key.
    let waiting: Vec<u64> = s.sm.alerting().undelivered().map(|n| n.id).collect();
    assert_eq!(waiting, repeated);
}

#[test]
fn a_replica_restored_from_a_snapshot_continues_identically() {
    // The failover promise at the state-machine level: a new leader's
    // replica (restored from a snapshot, then the rest of the log) reaches
    // the same alerts, timers and notifications.
    let mut a = Sm::new();
    a.setup(2000, 0);
    a.eval(T0, vec![alert("a", 2.0)]);
    let snap = a.sm.snapshot().expect("snapshot");
    let mut b = Sm {
        sm: ControlStateMachine::new(),
        index: a.index,
    };
    b.sm.restore(&snap).expect("restore");
    for s in [&mut a, &mut b] {
        s.eval(T0 + 1000, vec![alert("a", 2.0)]);
        s.eval(T0 + 2000, vec![alert("a", 2.0)]);
    }
    assert_eq!(a.status("a"), Some(AlertStatus::Firing));
    assert_eq!(
        serde_json::to_string(a.sm.alerting()).expect("json"),
        serde_json::to_string(b.sm.alerting()).expect("json")
    );
    let fired: Vec<_> =
        b.sm.alerting()
            .alerts()
            .map(|(_, _, x)| x.fired_at_ms)
            .collect();
    assert_eq!(fired, vec![Some(T0 + 2000)], "fired on schedule, once");
}

#[test]
fn alerting_commands_need_a_bootstrapped_cluster_and_honour_versions() {
    let mut sm = ControlStateMachine::new();
    let r = sm.apply_command(&Command::Alerting(AlertingCommand::Tick { now_ms: T0 }));
    assert_eq!(r, Err(Refusal::NotBootstrapped));
    let mut s = Sm::new();
    let v = s.sm.state().version;
    let r = s.alerting(AlertingCommand::ApplyRules {
        groups: vec![group("g", 0, 0)],
        expected_version: Some(v + 7),
    });
    assert!(matches!(r, Err(Refusal::VersionMismatch { .. })));
    let ok = s
        .alerting(AlertingCommand::ApplyRules {
            groups: vec![group("g", 0, 0)],
            expected_version: Some(v),
        })
        .expect("applies");
    assert_eq!(ok.version, v + 1);
    // Bookkeeping commands leave the compare-and-set token alone.
    s.tick(T0);
    assert_eq!(s.sm.state().version, v + 1);
}
