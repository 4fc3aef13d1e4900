//! The control leader's alerting loop: rule evaluation, aggregation-group
//! ticks and notification delivery.
//!
//! Every decision that must survive a failover is made in the control
//! state machine (`raftwatch_control::alerting`); this loop only does what
//! needs the outside world, and restarts from committed state:
//! - **Evaluation.** Each group at its interval, at the slot
//!   `floor(now / interval) · interval`, never twice for one slot (apply
//!   refuses an evaluation not after the group's last). Queries run at
//!   `linearizable` through the node's PromQL path. Recording rules write
//!   their results through the normal write path with a request id derived
//!   from (group, rule, slot), so a retried evaluation writes nothing
//!   twice. Alerting rules' samples are templated here and committed as
//!   one `RuleGroupEvaluated`; apply runs Prometheus's state machine. The
//!   `ALERTS` and `ALERTS_FOR_STATE` series are then written from the
//!   committed state.
//! - **Ticks.** When an aggregation group is due (or garbage must go), a
//!   `Tick` with the leader's clock is committed; apply flushes groups and
//!   appends notifications.
//! - **Delivery.** Every committed, undelivered notification is POSTed
//!   with its idempotency key, retried with capped exponential backoff, and
//!   retired by committing `MarkDelivered`. A new leader finds the same
//!   undelivered entries and sends them again with the same key.
//!
//! Durability point of an alert transition or a notification: the
//! `RuleGroupEvaluated` / `Tick` entry committed in the control group.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raftwatch_alerting::LabelSet;
use raftwatch_alerting::rules::Rule;
use raftwatch_alerting::template::{TemplateData, expand};
use raftwatch_alerting::webhook::fingerprint;
use raftwatch_control::Command;
use raftwatch_control::alerting::{
    AlertStatus, AlertingCommand, AlertingState, EvalAlert, RuleResult, StoredGroup,
};
use raftwatch_control::sm::{ControlQuery, decode_alerting};
use raftwatch_promql::Value;
use raftwatch_proto::v1 as pb;
use raftwatch_raft::ReadConsistency;
use raftwatch_seams::MonoNanos;
use tonic::Status;
use tracing::Instrument;

use super::promql::{self, Request, Times};
use super::{Node, webhook};

fn since(now: MonoNanos, earlier: MonoNanos) -> Duration {
    Duration::from_nanos(now.nanos_since(earlier))
}

/// How often the control leader looks for due work.
pub(crate) const ALERTING_TICK: Duration = Duration::from_millis(250);
/// One delivery attempt's time limit.
pub(crate) const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry delay; doubled per failure up to [`DELIVERY_BACKOFF_MAX`].
pub(crate) const DELIVERY_BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub(crate) const DELIVERY_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Deliveries in flight at once.
pub(crate) const DELIVERIES_IN_FLIGHT_MAX: usize = 32;
/// The cluster setting that pauses delivery (`true`): notifications are
/// still committed, and sent once it is unset. For operators draining a
/// broken receiver, and for the failover tests.
pub const DELIVERY_PAUSED_SETTING: &str = "alerting.delivery_paused";

/// `Runtime` is the leader's in-memory alerting bookkeeping: lost on a
/// failover by design (the new leader rebuilds it from committed state).
#[derive(Debug, Default)]
pub(crate) struct Runtime {
    inner: Mutex<RuntimeInner>,
}

#[derive(Debug, Default)]
struct RuntimeInner {
    /// Groups being evaluated.
    evaluating: BTreeSet<String>,
    /// Notifications being delivered.
    delivering: BTreeSet<u64>,
    /// Per notification: (failures so far, not before).
    backoff: BTreeMap<u64, (u32, MonoNanos)>,
    /// A tick proposal in flight.
    ticking: bool,
    /// Whether this node led at the last look.
    leading: bool,
    /// Per recording rule (and per group's `ALERTS` series): the label
    /// sets written at the latest evaluation, so a series that disappears
    /// gets a staleness marker, as Prometheus writes. Kept for this term of
    /// leadership only (a new leader starts empty, as a restarted
    /// Prometheus does).
    written: BTreeMap<String, BTreeSet<LabelSet>>,
    /// Planted bug `alert-for-reset`: the groups this node has evaluated
    /// in its current term of leadership.
    #[cfg(feature = "inject-bugs")]
    evaluated_this_term: BTreeSet<String>,
}

impl Runtime {
    fn lock(&self) -> std::sync::MutexGuard<'_, RuntimeInner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

/// `run` is the alerting loop of one node; it acts only while the node
/// leads the control group.
pub(crate) async fn run(node: Arc<Node>, seed: u64) {
    loop {
        tokio::time::sleep(ALERTING_TICK).await;
        if let Err(e) = tick(&node, seed).await {
            tracing::debug!(error = %e, "alerting tick");
        }
    }
}

async fn tick(node: &Arc<Node>, seed: u64) -> Result<(), Status> {
    let leading = node.is_control_leader().await;
    {
        let mut rt = node.alerting.lock();
        if leading != rt.leading {
            // A new term of leadership starts from committed state only.
            rt.backoff.clear();
            rt.written.clear();
            rt.leading = leading;
            #[cfg(feature = "inject-bugs")]
            rt.evaluated_this_term.clear();
        }
    }
    if !leading {
        return Ok(());
    }
    let state = node.alerting_state(ReadConsistency::Stale).await?;
    let now = node.clock.now_wall().0;
    let mono = node.clock.now_mono();
    for (name, stored) in &state.groups {
        let interval = stored.group.interval_ms.max(1);
        let slot = now - now.rem_euclid(interval);
        if stored.last_eval_ms.is_some_and(|l| slot <= l) {
            continue;
        }
        if !node.alerting.lock().evaluating.insert(name.clone()) {
            continue;
        }
        // Planted bug (simulator only): a new control leader's first
        // evaluation of a group that an earlier leader already evaluated
        // reports no alerts, as a restarted Prometheus without its
        // `ALERTS_FOR_STATE` would: pending alerts restart their `for`,
        // firing ones resolve and fire again.
        #[cfg(feature = "inject-bugs")]
        let forget = {
            let first_this_term = node
                .alerting
                .lock()
                .evaluated_this_term
                .insert(name.clone());
            raftwatch_seams::bugs::armed(raftwatch_seams::bugs::Bug::AlertForReset)
                && first_this_term
                && stored.last_eval_ms.is_some()
        };
        #[cfg(not(feature = "inject-bugs"))]
        let forget = false;
        let (node2, name2, stored2) = (node.clone(), name.clone(), stored.clone());
        let span = tracing::info_span!("rule_group", group = %name, eval_ms = slot);
        raftwatch_raft::rt::spawn(
            seed,
            async move {
                if let Err(e) = evaluate(&node2, &name2, &stored2, slot, forget).await {
                    tracing::info!(error = %e, "rule group evaluation not committed");
                }
                node2.alerting.lock().evaluating.remove(&name2);
            }
            .instrument(span),
        );
    }
    if state.next_due_ms().is_some_and(|d| d <= now) {
        let start = {
            let mut rt = node.alerting.lock();
            !std::mem::replace(&mut rt.ticking, true)
        };
        if start {
            let node2 = node.clone();
            raftwatch_raft::rt::spawn(seed, async move {
                let cmd = Command::Alerting(AlertingCommand::Tick { now_ms: now });
                if let Err(e) = node2.control_write(&cmd).await {
                    tracing::debug!(error = %e, "alerting tick not committed");
                }
                node2.alerting.lock().ticking = false;
            });
        }
    }
    if delivery_paused(node) {
        return Ok(());
    }
    let mut starts = Vec::new();
    {
        let mut rt = node.alerting.lock();
        let live: BTreeSet<u64> = state.undelivered().map(|n| n.id).collect();
        rt.backoff.retain(|id, _| live.contains(id));
        for n in state.undelivered() {
            if rt.delivering.len() >= DELIVERIES_IN_FLIGHT_MAX {
                break;
            }
            if rt.delivering.contains(&n.id)
                || rt.backoff.get(&n.id).is_some_and(|(_, at)| mono < *at)
            {
                continue;
            }
            rt.delivering.insert(n.id);
            starts.push(n.clone());
        }
    }
    for n in starts {
        let node2 = node.clone();
        let span = tracing::info_span!("deliver", notification = n.id, key = %n.key);
        raftwatch_raft::rt::spawn(
            seed,
            async move {
                let ok = deliver(&node2, &n).await;
                let mut rt = node2.alerting.lock();
                rt.delivering.remove(&n.id);
                if ok {
                    rt.backoff.remove(&n.id);
                } else {
                    let now = node2.clock.now_mono();
                    let failures = rt.backoff.get(&n.id).map_or(0, |(f, _)| *f) + 1;
                    let delay = DELIVERY_BACKOFF_MIN
                        .saturating_mul(1u32 << failures.min(16).saturating_sub(1))
                        .min(DELIVERY_BACKOFF_MAX);
                    rt.backoff.insert(
                        n.id,
                        (
                            failures,
                            MonoNanos(now.0.saturating_add(delay.as_nanos() as u64)),
                        ),
                    );
                }
            }
            .instrument(span),
        );
    }
    Ok(())
}

fn delivery_paused(node: &Node) -> bool {
    node.cached_state()
        .and_then(|s| s.settings.get(DELIVERY_PAUSED_SETTING).cloned())
        .is_some_and(|(v, _)| v == "true")
}

/// One delivery attempt; on a 2xx the delivery is committed.
async fn deliver(node: &Arc<Node>, n: &raftwatch_control::alerting::Notification) -> bool {
    let body = n.payload.to_json();
    let started = node.clock.now_mono();
    match webhook::post(&node.webhook, &n.url, &n.key, &body, DELIVERY_TIMEOUT).await {
        Ok(code) if (200..300).contains(&code) => {
            node.metrics
                .observe_notification("delivered", since(node.clock.now_mono(), started));
            let cmd = Command::Alerting(AlertingCommand::MarkDelivered {
                delivered: vec![n.id],
                now_ms: node.clock.now_wall().0,
            });
            if let Err(e) = node.control_write(&cmd).await {
                // Delivered but not recorded: a later leader sends it again
                // with the same key; the receiver deduplicates.
                tracing::info!(error = %e, "delivery not recorded");
            }
            true
        }
        Ok(code) => {
            node.metrics
                .observe_notification("refused", since(node.clock.now_mono(), started));
            tracing::info!(code, url = %n.url, "the receiver refused the notification");
            false
        }
        Err(e) => {
            node.metrics
                .observe_notification("failed", since(node.clock.now_mono(), started));
            tracing::info!(error = %e, url = %n.url, "notification delivery failed");
            false
        }
    }
}

/// Evaluates one group at `eval_ms` and commits the outcome.
async fn evaluate(
    node: &Arc<Node>,
    name: &str,
    stored: &StoredGroup,
    eval_ms: i64,
    forget: bool,
) -> Result<(), Status> {
    let started = node.clock.now_mono();
    let mut results = Vec::with_capacity(stored.group.rules.len());
    for (i, rule) in stored.group.rules.iter().enumerate() {
        let rule_started = node.clock.now_mono();
        let timeout = rule_query_timeout(stored.group.interval_ms);
        let outcome = match instant(node, rule.expr(), eval_ms, timeout).await {
            Err(e) => Err(e),
            Ok(samples) => match rule {
                Rule::Recording(r) => {
                    record(node, name, i, r, &samples, eval_ms, stored.group.limit).await
                }
                Rule::Alerting(_) if forget => Ok(vec![]),
                Rule::Alerting(r) => Ok(samples
                    .into_iter()
                    .map(|(labels, value)| alert_of(r, labels, value))
                    .collect()),
            },
        };
        results.push(RuleResult {
            outcome,
            duration_ms: millis(since(node.clock.now_mono(), rule_started)),
        });
    }
    let cmd = Command::Alerting(AlertingCommand::RuleGroupEvaluated {
        group: name.to_string(),
        version: stored.version,
        eval_ms,
        now_ms: node.clock.now_wall().0,
        duration_ms: millis(since(node.clock.now_mono(), started)),
        results,
    });
    node.control_write(&cmd).await?;
    write_alerts_series(node, name, eval_ms).await;
    Ok(())
}

/// `rule_query_timeout` bounds one rule's query: twice the group's
/// interval, at least [`RULE_QUERY_TIMEOUT_MIN`] (and never more than the
/// node's query timeout). A query stuck behind an unreachable shard then
/// fails that evaluation (the rule reports the error) instead of holding
/// the group past many slots.
fn rule_query_timeout(interval_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(interval_ms.saturating_mul(2)).unwrap_or(0))
        .max(RULE_QUERY_TIMEOUT_MIN)
}

/// The shortest time limit of a rule's query.
const RULE_QUERY_TIMEOUT_MIN: Duration = Duration::from_secs(5);

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Runs `expr` at `eval_ms`, linearizable, and returns its samples (a
/// scalar is one sample with no labels).
async fn instant(
    node: &Arc<Node>,
    expr: &str,
    eval_ms: i64,
    timeout: Duration,
) -> Result<Vec<(LabelSet, f64)>, String> {
    let req = Request {
        expr: expr.to_string(),
        times: Times::Instant(eval_ms),
        lookback_delta_ms: None,
        consistency: ReadConsistency::Linearizable,
        timeout: Some(timeout),
        samples_max: None,
        pushdown: true,
    };
    let planned = promql::plan(node, &req).map_err(|e| e.message)?;
    let answer = promql::execute(node, planned)
        .await
        .map_err(|e| e.message)?;
    match answer.result.value {
        Value::Vector(v) => Ok(v
            .into_iter()
            .map(|s| {
                let labels: LabelSet = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                (labels, s.v)
            })
            .collect()),
        Value::Scalar { v, .. } => Ok(vec![(LabelSet::new(), v)]),
        other => Err(format!(
            "rule result is not a vector or scalar: {}",
            other.type_name()
        )),
    }
}

/// Prometheus's alert construction: templates see the sample's labels
/// (with `__name__`) and value; the alert's labels are the sample's
/// without `__name__`, then the rule's (templated), then `alertname`.
fn alert_of(
    rule: &raftwatch_alerting::rules::AlertingRule,
    labels: LabelSet,
    value: f64,
) -> EvalAlert {
    let data = TemplateData {
        labels: labels.clone(),
        value,
        ..TemplateData::default()
    };
    let render = |name: &str, text: &str| match expand(name, text, &data) {
        Ok(s) => s,
        Err(e) => format!("<error expanding template: {e}>"),
    };
    let mut out = labels;
    out.remove("__name__");
    for (k, v) in &rule.labels {
        let s = render(k, v);
        if s.is_empty() {
            out.remove(k);
        } else {
            out.insert(k.clone(), s);
        }
    }
    out.insert("alertname".into(), rule.alert.clone());
    let annotations = rule
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), render(k, v)))
        .collect();
    EvalAlert {
        labels: out,
        annotations,
        value,
    }
}

/// Writes a recording rule's results at `eval_ms`, once per slot.
async fn record(
    node: &Arc<Node>,
    group: &str,
    index: usize,
    rule: &raftwatch_alerting::rules::RecordingRule,
    samples: &[(LabelSet, f64)],
    eval_ms: i64,
    limit: u64,
) -> Result<Vec<EvalAlert>, String> {
    if limit > 0 && samples.len() as u64 > limit {
        return Err(format!(
            "exceeded limit of {limit} with {} series",
            samples.len()
        ));
    }
    let mut seen = BTreeSet::new();
    let mut series = Vec::with_capacity(samples.len());
    for (labels, value) in samples {
        let mut l = labels.clone();
        l.insert("__name__".into(), rule.record.clone());
        for (k, v) in &rule.labels {
            if v.is_empty() {
                l.remove(k);
            } else {
                l.insert(k.clone(), v.clone());
            }
        }
        if !seen.insert(l.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            );
        }
        series.push(pb::Series {
            labels: l
                .into_iter()
                .map(|(name, value)| pb::Label { name, value })
                .collect(),
            samples: vec![pb::Sample {
                timestamp_ms: eval_ms,
                value: *value,
            }],
        });
    }
    series.extend(gone(node, format!("rule|{group}|{index}"), seen, eval_ms));
    if series.is_empty() {
        return Ok(vec![]);
    }
    let id = request_id("rule", group, index, eval_ms);
    let resp = node
        .write(pb::WriteRequest {
            series,
            request_id: id,
            ..pb::WriteRequest::default()
        })
        .await
        .map_err(|s| format!("writing results: {}", s.message()))?;
    match resp.rejections.first() {
        // An identical earlier write (same slot) is not a failure.
        Some(r) if !r.reason.contains("duplicate") => Err(format!(
            "{} of the results were refused, first: {}",
            resp.rejections.len(),
            r.reason
        )),
        _ => Ok(vec![]),
    }
}

fn request_id(kind: &str, group: &str, index: usize, eval_ms: i64) -> String {
    let mut l = LabelSet::new();
    l.insert("group".into(), group.to_string());
    l.insert("rule".into(), index.to_string());
    format!("{kind}:{:016x}:{eval_ms}", fingerprint(&l))
}

/// Writes `ALERTS` and `ALERTS_FOR_STATE` for the group's pending and
/// firing alerts at `eval_ms`, from the committed state.
async fn write_alerts_series(node: &Arc<Node>, group: &str, eval_ms: i64) {
    let Ok(state) = node.alerting_state(ReadConsistency::Stale).await else {
        return;
    };
    let Some(stored) = state.groups.get(group) else {
        return;
    };
    let mut series = Vec::new();
    let mut current = BTreeSet::new();
    for rule in &stored.rules {
        for a in rule.alerts.values() {
            if a.status == AlertStatus::Inactive {
                continue;
            }
            let mut l = a.labels.clone();
            l.insert("__name__".into(), "ALERTS_FOR_STATE".into());
            current.insert(l.clone());
            series.push(one(l.clone(), eval_ms, (a.active_at_ms / 1000) as f64));
            l.insert("__name__".into(), "ALERTS".into());
            l.insert("alertstate".into(), a.status.name().into());
            current.insert(l.clone());
            series.push(one(l, eval_ms, 1.0));
        }
    }
    series.extend(gone(node, format!("alerts|{group}"), current, eval_ms));
    if series.is_empty() {
        return;
    }
    let req = pb::WriteRequest {
        series,
        request_id: request_id("alerts", group, 0, eval_ms),
        ..pb::WriteRequest::default()
    };
    if let Err(e) = node.write(req).await {
        tracing::debug!(error = %e, "ALERTS series not written");
    }
}

/// The staleness marker's bits (`raftwatch_model`'s `STALE_NAN_BITS`).
const STALE_NAN: f64 = f64::from_bits(raftwatch_model::STALE_NAN_BITS);

/// Remembers `current` as what `key` wrote at this evaluation and returns
/// a staleness marker at `eval_ms` for every series it wrote at the
/// previous one and not now.
fn gone(node: &Node, key: String, current: BTreeSet<LabelSet>, eval_ms: i64) -> Vec<pb::Series> {
    let previous = node
        .alerting
        .lock()
        .written
        .insert(key, current.clone())
        .unwrap_or_default();
    previous
        .difference(&current)
        .map(|l| one(l.clone(), eval_ms, STALE_NAN))
        .collect()
}

fn one(labels: LabelSet, t: i64, v: f64) -> pb::Series {
    pb::Series {
        labels: labels
            .into_iter()
            .map(|(name, value)| pb::Label { name, value })
            .collect(),
        samples: vec![pb::Sample {
            timestamp_ms: t,
            value: v,
        }],
    }
}

impl Node {
    /// `alerting_state` reads the alerting state at `consistency`.
    pub(crate) async fn alerting_state(
        &self,
        consistency: ReadConsistency,
    ) -> Result<AlertingState, Status> {
        let bytes = self
            .control_query(&ControlQuery::Alerting, consistency)
            .await?;
        decode_alerting(&bytes).map_err(Status::internal)
    }
}
