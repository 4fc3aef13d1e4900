//! The committed alerting state over time, read between simulation steps
//! from the control-group replica that has applied the most (never from a
//! replica behind one already read), so what is seen is a sequence of
//! committed states in log order: every evaluation of the workload's rule
//! group that was applied by the time of a probe (two evaluations applied
//! between two probes show as the later one only), every committed
//! notification and silence, and the control leader's changes.

use std::collections::{BTreeMap, BTreeSet};

use raftwatch_control::alerting::{AlertStatus, Notification, RuleHealth, Silence};
use raftwatch_control::sm::{ControlQuery, decode_alerting, encode_query};

use crate::alerting::GROUP;
use crate::cluster::Cluster;
use crate::history::EventLog;

/// The control group's id.
const CONTROL: u64 = 0;

/// `AlertObs` is one alert of the rule as a committed state showed it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertObs {
    pub fingerprint: String,
    pub instance: String,
    pub status: AlertStatus,
    pub active_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub last_seen_ms: i64,
}

/// `EvalObs` is the state right after (at least) one committed
/// evaluation of the group.
#[derive(Clone, Debug)]
pub struct EvalObs {
    /// The probe that saw it.
    pub probe: u64,
    /// The evaluation's slot.
    pub eval_ms: i64,
    /// The rule's query succeeded (only then does the alert state move).
    pub ok: bool,
    pub alerts: Vec<AlertObs>,
}

/// `AlertProbe` collects the committed alerting states.
#[derive(Debug)]
pub struct AlertProbe {
    query: Vec<u8>,
    applied: Option<u64>,
    /// States read so far (a notification or silence remembers the first
    /// that held it: a smaller number means earlier in the log).
    pub probes: u64,
    pub evals: Vec<EvalObs>,
    /// id → (first probe that held it, the notification as committed).
    pub notifications: BTreeMap<u64, (u64, Notification)>,
    /// id → (first probe that held it, latest version).
    pub silences: BTreeMap<String, (u64, Silence)>,
    leaders: BTreeSet<(u64, u64)>,
    /// New control-leader terms after the rules were in place.
    pub failovers: u64,
    /// States that could not be decoded (a harness or format bug).
    pub errors: Vec<String>,
}

impl Default for AlertProbe {
    fn default() -> AlertProbe {
        AlertProbe {
            query: encode_query(&ControlQuery::Alerting),
            applied: None,
            probes: 0,
            evals: Vec::new(),
            notifications: BTreeMap::new(),
            silences: BTreeMap::new(),
            leaders: BTreeSet::new(),
            failovers: 0,
            errors: Vec::new(),
        }
    }
}

impl AlertProbe {
    /// `probe` reads the most advanced replica's alerting state if it has
    /// applied more than the last one read. `alerting` is whether the
    /// rules are in place (failovers count from then).
    pub fn probe(&mut self, cluster: &Cluster, alerting: bool, events: &mut EventLog, t_ms: u64) {
        let mut best: Option<(u64, raftwatch_raft::GroupHandle)> = None;
        for (id, node) in cluster.live() {
            let Some(groups) = node.host().try_groups() else {
                continue;
            };
            for g in groups.into_iter().filter(|g| g.group().0 == CONTROL) {
                let m = g.metrics();
                if m.is_leader && self.leaders.insert((m.term, id)) && alerting {
                    self.failovers += 1;
                    events.push(
                        t_ms,
                        "control_leader",
                        format_args!("term={} node={id}", m.term),
                    );
                }
                let applied = m.applied_index.unwrap_or(0);
                if best.as_ref().is_none_or(|(a, _)| applied > *a) {
                    best = Some((applied, g));
                }
            }
        }
        let Some((applied, handle)) = best else {
            return;
        };
        if self.applied.is_some_and(|a| applied <= a) {
            return;
        }
        let Some((index, bytes)) = handle.try_query(&self.query) else {
            return;
        };
        if index.is_some_and(|i| self.applied.is_some_and(|a| i <= a)) {
            return;
        }
        self.applied = index;
        let state = match decode_alerting(&bytes) {
            Ok(s) => s,
            Err(e) => {
                self.errors.push(e);
                return;
            }
        };
        self.probes += 1;
        let probe = self.probes;
        if let Some(group) = state.groups.get(GROUP)
            && let Some(eval_ms) = group.last_eval_ms
            && self.evals.last().is_none_or(|e| e.eval_ms != eval_ms)
            && let Some(rule) = group.rules.first()
        {
            let alerts: Vec<AlertObs> = rule
                .alerts
                .iter()
                .map(|(fp, a)| AlertObs {
                    fingerprint: fp.clone(),
                    instance: a.labels.get("instance").cloned().unwrap_or_default(),
                    status: a.status,
                    active_at_ms: a.active_at_ms,
                    fired_at_ms: a.fired_at_ms,
                    resolved_at_ms: a.resolved_at_ms,
                    last_seen_ms: a.last_seen_ms,
                })
                .collect();
            let ok = rule.health == RuleHealth::Ok && rule.last_eval_ms == Some(eval_ms);
            let summary: Vec<String> = alerts
                .iter()
                .map(|a| format!("{}:{}@{}", a.instance, a.status.name(), a.active_at_ms))
                .collect();
            events.push(
                t_ms,
                "evaluated",
                format_args!("slot={eval_ms} ok={ok} alerts={summary:?}"),
            );
            self.evals.push(EvalObs {
                probe,
                eval_ms,
                ok,
                alerts,
            });
        }
        for (id, n) in &state.notifications {
            if !self.notifications.contains_key(id) {
                events.push(
                    t_ms,
                    "notification",
                    format_args!(
                        "id={id} key={} created={} status={} alerts={}",
                        n.key,
                        n.created_ms,
                        n.payload.status,
                        n.payload.alerts.len()
                    ),
                );
                self.notifications.insert(*id, (probe, n.clone()));
            }
        }
        for (id, s) in &state.silences {
            match self.silences.get_mut(id) {
                Some((_, old)) => *old = s.clone(),
                None => {
                    events.push(
                        t_ms,
                        "silence",
                        format_args!("id={id} starts={} ends={}", s.starts_at_ms, s.ends_at_ms),
                    );
                    self.silences.insert(id.clone(), (probe, s.clone()));
                }
            }
        }
    }
}
