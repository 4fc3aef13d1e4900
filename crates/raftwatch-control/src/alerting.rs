//! Alerting in the control plane: rule groups, alert state, silences,
//! Alertmanager's aggregation groups and the notification log.
//!
//! Everything here is replicated state changed only by
//! [`AlertingCommand`]s, applied as a pure function of (state, command):
//! the leader stamps every time apply needs (`now_ms`, `eval_ms`) into the
//! command, and [`AlertingState::clock_ms`] — the largest stamped time seen
//! — never goes backwards, so a leader with a slower clock cannot make a
//! silence inactive again.
//!
//! Three promises rest on this module:
//! - Alert timers (`active_at`, `fired_at`, `keep_firing_since`) live in
//!   the log, so a new control leader continues them: an alert never drops
//!   back to pending and never fires twice because of a failover.
//! - A notification is an intent appended to [`AlertingState::notifications`]
//!   inside apply, with its idempotency key; silences and inhibitions are
//!   checked in that same apply, so "committed after the silence" is a
//!   log-order fact, not a race between two processes.
//! - Delivery is at-least-once with one identity: the key is fixed when
//!   the notification is committed and a `MarkDelivered` retires it.

use std::collections::{BTreeMap, BTreeSet};

use raftwatch_alerting::LabelSet;
use raftwatch_alerting::amconfig::{self, AlertmanagerConfig};
use raftwatch_alerting::matcher::Matcher;
use raftwatch_alerting::rules::{Rule, RuleGroup};
use raftwatch_alerting::webhook::{self, WebhookAlert, WebhookPayload};
use serde::{Deserialize, Serialize};

use crate::state::{ControlState, Refusal};

/// `RESOLVED_RETENTION_MS` is how long a resolved alert is kept (and sent
/// as resolved), as Prometheus's `resolvedRetention` (15 m).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60_000;
/// `SILENCE_RETENTION_MS` is how long an expired silence stays listed
/// (Alertmanager's default `--data.retention`, 120 h).
pub const SILENCE_RETENTION_MS: i64 = 120 * 3_600_000;
/// `SILENCE_START_SLACK_MS`: a silence starting at most this far after the
/// leader's clock starts now, so a client clock slightly ahead of the
/// cluster's does not leave a "now" silence pending (and a notification
/// committed after its acknowledgement unsilenced).
pub const SILENCE_START_SLACK_MS: i64 = 60_000;
/// `SILENCES_MAX` bounds the silences kept (active, pending and expired).
pub const SILENCES_MAX: usize = 10_000;
/// `SILENCE_MATCHERS_MAX` bounds one silence's matchers.
pub const SILENCE_MATCHERS_MAX: usize = 64;
/// `SILENCE_TEXT_BYTES_MAX` bounds a silence's comment and creator.
pub const SILENCE_TEXT_BYTES_MAX: usize = 4096;
/// `RULE_GROUPS_MAX` bounds the rule groups.
pub const RULE_GROUPS_MAX: usize = 1000;
/// `ALERTS_PER_RULE_MAX` bounds one alerting rule's alerts even when its
/// group sets no `limit`.
pub const ALERTS_PER_RULE_MAX: usize = 10_000;
/// `DELIVERED_KEPT` is how many delivered notifications stay in the log
/// (for `notifications list` and the checkers); older ones are dropped.
pub const DELIVERED_KEPT: usize = 1000;
/// `UNDELIVERED_MAX_AGE_MS`: a notification no receiver accepted for this
/// long is dropped (and counted in `notifications_abandoned`).
pub const UNDELIVERED_MAX_AGE_MS: i64 = 24 * 3_600_000;
/// `UNDELIVERED_MAX` bounds the notifications waiting for delivery; past
/// it the oldest are abandoned (counted).
pub const UNDELIVERED_MAX: usize = 10_000;

/// `AlertStatus` is an alert's state, as Prometheus names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// Active, waiting out `for`.
    Pending,
    /// Firing.
    Firing,
    /// Resolved, kept [`RESOLVED_RETENTION_MS`] for notifications.
    Inactive,
}

impl AlertStatus {
    /// `name` is the lowercase name (`ALERTS{alertstate}` and the APIs).
    pub fn name(self) -> &'static str {
        match self {
            AlertStatus::Pending => "pending",
            AlertStatus::Firing => "firing",
            AlertStatus::Inactive => "inactive",
        }
    }
}

/// `Alert` is one alert of an alerting rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Labels: the sample's (without `__name__`), the rule's, `alertname`.
    pub labels: LabelSet,
    /// Annotations, as templated at the latest evaluation.
    pub annotations: LabelSet,
    /// The state.
    pub status: AlertStatus,
    /// When it became active (pending).
    pub active_at_ms: i64,
    /// When it started firing.
    pub fired_at_ms: Option<i64>,
    /// When it resolved.
    pub resolved_at_ms: Option<i64>,
    /// First evaluation at which it was absent while `keep_firing_for`
    /// held it firing.
    pub keep_firing_since_ms: Option<i64>,
    /// The sample value at the latest evaluation that saw it.
    #[serde(with = "f64_json")]
    pub value: f64,
    /// The latest evaluation that saw it.
    pub last_seen_ms: i64,
}

/// `RuleHealth` is a rule's health after its latest evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleHealth {
    /// Not evaluated yet.
    #[default]
    Unknown,
    /// The latest evaluation succeeded.
    Ok,
    /// The latest evaluation failed.
    Err,
}

impl RuleHealth {
    /// `name` is Prometheus's name (`ok`, `err`, `unknown`).
    pub fn name(self) -> &'static str {
        match self {
            RuleHealth::Unknown => "unknown",
            RuleHealth::Ok => "ok",
            RuleHealth::Err => "err",
        }
    }
}

/// `RuleState` is one rule's evaluation state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// Health after the latest evaluation.
    pub health: RuleHealth,
    /// The latest error ("" when healthy).
    pub last_error: String,
    /// The latest evaluation's timestamp.
    pub last_eval_ms: Option<i64>,
    /// How long the latest evaluation took.
    pub eval_duration_ms: i64,
    /// Alerting rules: the alerts, by fingerprint (16 hex digits).
    pub alerts: BTreeMap<String, Alert>,
}

/// `StoredGroup` is a rule group and its evaluation state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredGroup {
    /// The group as applied.
    pub group: RuleGroup,
    /// The control-state version that applied it: an evaluation names it,
    /// so results of a replaced group are refused.
    pub version: u64,
    /// The latest evaluation's timestamp (the next is one interval later).
    pub last_eval_ms: Option<i64>,
    /// How long the latest evaluation took.
    pub eval_duration_ms: i64,
    /// Per rule, in the group's order.
    pub rules: Vec<RuleState>,
}

/// `SilenceState` is a silence's state at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// Starts in the future.
    Pending,
    /// Mutes matching alerts.
    Active,
    /// Ended.
    Expired,
}

impl SilenceState {
    /// `name` is Alertmanager's name.
    pub fn name(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

/// `Silence` mutes the alerts its matchers match between its start and
/// end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// UUID-shaped id, assigned in apply from a counter.
    pub id: String,
    /// Every matcher must match.
    pub matchers: Vec<Matcher>,
    /// Start.
    pub starts_at_ms: i64,
    /// End (exclusive).
    pub ends_at_ms: i64,
    /// Who made it.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Last change.
    pub updated_at_ms: i64,
}

impl Silence {
    /// `state` is the silence's state at `now_ms`.
    pub fn state(&self, now_ms: i64) -> SilenceState {
        if now_ms >= self.ends_at_ms {
            SilenceState::Expired
        } else if now_ms < self.starts_at_ms {
            SilenceState::Pending
        } else {
            SilenceState::Active
        }
    }

    /// `mutes` is true when the silence is active at `now_ms` and matches.
    pub fn mutes(&self, labels: &LabelSet, now_ms: i64) -> bool {
        self.state(now_ms) == SilenceState::Active && Matcher::matches_all(&self.matchers, labels)
    }
}

/// `AggGroup` is an Alertmanager aggregation group: the alerts of one
/// route with equal `group_by` values, notified together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggGroup {
    /// The route's id.
    pub route_id: String,
    /// The receiver.
    pub receiver: String,
    /// Alertmanager's group key.
    pub group_key: String,
    /// The group's labels.
    pub group_labels: LabelSet,
    /// When it was created.
    pub created_ms: i64,
    /// When it is next flushed (group_wait after creation, then every
    /// group_interval).
    pub next_flush_ms: i64,
    /// The latest notification (None: never notified).
    pub last_notified_ms: Option<i64>,
    /// Fingerprints notified as firing by the latest notification.
    pub last_firing: BTreeSet<String>,
    /// Fingerprints notified as resolved by the latest notification.
    pub last_resolved: BTreeSet<String>,
}

/// `Notification` is an entry of the notification log: committed before
/// it is sent, retired by `MarkDelivered`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Sequence number.
    pub id: u64,
    /// The idempotency key, sent on every (re)delivery.
    pub key: String,
    /// The receiver.
    pub receiver: String,
    /// The webhook URL.
    pub url: String,
    /// The body.
    pub payload: WebhookPayload,
    /// When it was committed (the state's clock).
    pub created_ms: i64,
    /// When a receiver acknowledged it.
    pub delivered_ms: Option<i64>,
    /// Delivery attempts reported (advisory).
    pub attempts: u64,
}

/// `AlertingState` is the alerting part of the control state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertingState {
    /// The largest time stamped into any applied command.
    pub clock_ms: i64,
    /// Rule groups by name.
    pub groups: BTreeMap<String, StoredGroup>,
    /// The Alertmanager configuration (None: no notifications).
    pub config: Option<AlertmanagerConfig>,
    /// Silences by id.
    pub silences: BTreeMap<String, Silence>,
    /// Next silence number.
    pub next_silence: u64,
    /// Aggregation groups by `route_id|group_key`.
    pub agg_groups: BTreeMap<String, AggGroup>,
    /// The notification log, by id.
    pub notifications: BTreeMap<u64, Notification>,
    /// Next notification id.
    pub next_notification: u64,
    /// Notifications dropped undelivered (too old, or too many waiting).
    pub notifications_abandoned: u64,
}

/// `EvalAlert` is one alert an alerting rule's evaluation produced, its
/// labels and annotations already templated by the evaluator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalAlert {
    /// Final labels (including `alertname`).
    pub labels: LabelSet,
    /// Templated annotations.
    pub annotations: LabelSet,
    /// The sample value.
    #[serde(with = "f64_json")]
    pub value: f64,
}

/// `RuleResult` is one rule's evaluation outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleResult {
    /// Alerts (alerting rules; empty for recording rules), or the error.
    pub outcome: Result<Vec<EvalAlert>, String>,
    /// How long the rule took.
    pub duration_ms: i64,
}

/// `AlertingCommand` is one alerting mutation, as stored in the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AlertingCommand {
    /// Creates or replaces the named groups, atomically.
    ApplyRules {
        /// The groups (validated by the caller: `parse_rule_file`).
        groups: Vec<RuleGroup>,
        /// Compare-and-set token.
        expected_version: Option<u64>,
    },
    /// Deletes a group and its alerts.
    DeleteRuleGroup {
        /// The group.
        name: String,
        /// Compare-and-set token.
        expected_version: Option<u64>,
    },
    /// One evaluation of a group by the control leader.
    RuleGroupEvaluated {
        /// The group.
        group: String,
        /// The group's version the evaluation ran (refused if replaced).
        version: u64,
        /// The evaluation timestamp (refused unless after the previous).
        eval_ms: i64,
        /// The leader's clock when it proposed.
        now_ms: i64,
        /// The whole group's duration.
        duration_ms: i64,
        /// One per rule, in order.
        results: Vec<RuleResult>,
    },
    /// Flushes due aggregation groups and collects garbage.
    Tick {
        /// The leader's clock.
        now_ms: i64,
    },
    /// Replaces the Alertmanager configuration.
    SetConfig {
        /// The parsed configuration.
        config: AlertmanagerConfig,
        /// Compare-and-set token.
        expected_version: Option<u64>,
    },
    /// Adds a silence (or replaces `replaces`, expiring it).
    AddSilence {
        /// The silence to replace, if any.
        replaces: Option<String>,
        /// Matchers.
        matchers: Vec<Matcher>,
        /// Start.
        starts_at_ms: i64,
        /// End.
        ends_at_ms: i64,
        /// Who.
        created_by: String,
        /// Why.
        comment: String,
        /// The proposer's clock.
        now_ms: i64,
    },
    /// Expires a silence now.
    ExpireSilence {
        /// The silence.
        id: String,
        /// The proposer's clock.
        now_ms: i64,
    },
    /// Records delivery attempts and acknowledgements.
    MarkDelivered {
        /// Notifications a receiver acknowledged.
        delivered: Vec<u64>,
        /// The proposer's clock.
        now_ms: i64,
    },
}

impl AlertingCommand {
    /// `bumps_version` is whether the command is an operator's change
    /// (compare-and-set token bumped) rather than the leader's bookkeeping.
    pub fn bumps_version(&self) -> bool {
        matches!(
            self,
            AlertingCommand::ApplyRules { .. }
                | AlertingCommand::DeleteRuleGroup { .. }
                | AlertingCommand::SetConfig { .. }
                | AlertingCommand::AddSilence { .. }
                | AlertingCommand::ExpireSilence { .. }
        )
    }
}

/// `AlertingApplied` is what a successful alerting command reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertingApplied {
    /// A silence id (AddSilence).
    pub silence_id: Option<String>,
    /// Notifications the command committed.
    pub notifications: Vec<u64>,
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal::Invalid {
        message: message.into(),
    }
}

fn precondition(message: impl Into<String>) -> Refusal {
    Refusal::Precondition {
        message: message.into(),
    }
}

/// `validate_silence` checks a silence as Alertmanager does.
pub fn validate_silence(
    matchers: &[Matcher],
    starts_at_ms: i64,
    ends_at_ms: i64,
    created_by: &str,
    comment: &str,
) -> Result<(), Refusal> {
    if matchers.is_empty() {
        return Err(invalid("a silence needs at least one matcher"));
    }
    if matchers.len() > SILENCE_MATCHERS_MAX {
        return Err(invalid(format!(
            "a silence has at most {SILENCE_MATCHERS_MAX} matchers"
        )));
    }
    let empty = LabelSet::new();
    if matchers.iter().all(|m| m.matches(&empty)) {
        return Err(invalid(
            "at least one matcher must not match the empty string (it would silence everything)",
        ));
    }
    if ends_at_ms <= starts_at_ms {
        return Err(invalid("the silence ends before it starts"));
    }
    if created_by.is_empty() {
        return Err(invalid("creator information missing"));
    }
    if comment.is_empty() {
        return Err(invalid("comment missing"));
    }
    if created_by.len() > SILENCE_TEXT_BYTES_MAX || comment.len() > SILENCE_TEXT_BYTES_MAX {
        return Err(invalid(format!(
            "creator and comment are limited to {SILENCE_TEXT_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

impl AlertingState {
    /// `apply` executes one command. `control` is the rest of the control
    /// state (its version is the compare-and-set token). On `Err` nothing
    /// changed.
    pub fn apply(
        &mut self,
        control: &mut ControlState,
        command: &AlertingCommand,
    ) -> Result<AlertingApplied, Refusal> {
        if !control.bootstrapped {
            return Err(Refusal::NotBootstrapped);
        }
        let expected = match command {
            AlertingCommand::ApplyRules {
                expected_version, ..
            }
            | AlertingCommand::DeleteRuleGroup {
                expected_version, ..
            }
            | AlertingCommand::SetConfig {
                expected_version, ..
            } => *expected_version,
            _ => None,
        };
        if let Some(e) = expected
            && e != control.version
        {
            return Err(Refusal::VersionMismatch {
                expected: e,
                actual: control.version,
            });
        }
        let version_after = if command.bumps_version() {
            control.version + 1
        } else {
            control.version
        };
        // Every branch of `apply_inner` checks before it mutates; only the
        // clock moves before a check, so a refusal restores it. (No copy of
        // the whole state per command: evaluations are frequent and the
        // state holds the notification log.)
        let clock_before = self.clock_ms;
        match self.apply_inner(command, version_after) {
            Ok(applied) => {
                control.version = version_after;
                Ok(applied)
            }
            Err(refusal) => {
                self.clock_ms = clock_before;
                Err(refusal)
            }
        }
    }

    fn advance_clock(&mut self, now_ms: i64) -> i64 {
        self.clock_ms = self.clock_ms.max(now_ms);
        self.clock_ms
    }

    fn apply_inner(
        &mut self,
        command: &AlertingCommand,
        version_after: u64,
    ) -> Result<AlertingApplied, Refusal> {
        let mut applied = AlertingApplied::default();
        match command {
            AlertingCommand::ApplyRules { groups, .. } => {
                let mut names = BTreeSet::new();
                for g in groups {
                    if g.name.is_empty() {
                        return Err(invalid("a rule group needs a name"));
                    }
                    if !names.insert(g.name.as_str()) {
                        return Err(invalid(format!("group {:?} is given twice", g.name)));
                    }
                    if g.interval_ms <= 0 {
                        return Err(invalid(format!(
                            "group {:?}: the interval must be positive",
                            g.name
                        )));
                    }
                }
                let new_names = names.iter().filter(|n| !self.groups.contains_key(**n));
                if self.groups.len() + new_names.count() > RULE_GROUPS_MAX {
                    return Err(invalid(format!(
                        "at most {RULE_GROUPS_MAX} rule groups are allowed"
                    )));
                }
                for g in groups {
                    let old = self.groups.remove(&g.name);
                    self.groups
                        .insert(g.name.clone(), carry_over(g.clone(), old, version_after));
                }
            }
            AlertingCommand::DeleteRuleGroup { name, .. } => {
                if self.groups.remove(name).is_none() {
                    return Err(precondition(format!("no rule group named {name:?}")));
                }
            }
            AlertingCommand::RuleGroupEvaluated {
                group,
                version,
                eval_ms,
                now_ms,
                duration_ms,
                results,
            } => {
                let now = self.advance_clock(*now_ms);
                let Some(stored) = self.groups.get_mut(group) else {
                    return Err(precondition(format!("no rule group named {group:?}")));
                };
                if stored.version != *version {
                    return Err(precondition(format!(
                        "group {group:?} was replaced (version {} ≠ {version})",
                        stored.version
                    )));
                }
                if stored.last_eval_ms.is_some_and(|l| *eval_ms <= l) {
                    return Err(precondition(format!(
                        "group {group:?} was already evaluated at or after {eval_ms}"
                    )));
                }
                if results.len() != stored.group.rules.len() {
                    return Err(invalid(format!(
                        "{} results for {} rules",
                        results.len(),
                        stored.group.rules.len()
                    )));
                }
                stored.last_eval_ms = Some(*eval_ms);
                stored.eval_duration_ms = *duration_ms;
                let limit = stored.group.limit;
                for ((rule, state), result) in stored
                    .group
                    .rules
                    .iter()
                    .zip(stored.rules.iter_mut())
                    .zip(results)
                {
                    state.last_eval_ms = Some(*eval_ms);
                    state.eval_duration_ms = result.duration_ms;
                    match (&result.outcome, rule) {
                        (Err(e), _) => {
                            state.health = RuleHealth::Err;
                            state.last_error = e.clone();
                        }
                        (Ok(_), Rule::Recording(_)) => {
                            state.health = RuleHealth::Ok;
                            state.last_error.clear();
                        }
                        (Ok(alerts), Rule::Alerting(r)) => {
                            let cap = if limit > 0 {
                                (limit as usize).min(ALERTS_PER_RULE_MAX)
                            } else {
                                ALERTS_PER_RULE_MAX
                            };
                            if alerts.len() > cap {
                                // Prometheus drops the rule's alerts too.
                                state.alerts.clear();
                                state.health = RuleHealth::Err;
                                state.last_error =
                                    format!("exceeded limit of {cap} with {} alerts", alerts.len());
                                continue;
                            }
                            match transition(
                                &mut state.alerts,
                                alerts,
                                *eval_ms,
                                r.for_ms,
                                r.keep_firing_for_ms,
                            ) {
                                Ok(()) => {
                                    state.health = RuleHealth::Ok;
                                    state.last_error.clear();
                                }
                                Err(e) => {
                                    state.health = RuleHealth::Err;
                                    state.last_error = e;
                                }
                            }
                        }
                    }
                }
                applied.notifications = self.dispatch(now);
            }
            AlertingCommand::Tick { now_ms } => {
                let now = self.advance_clock(*now_ms);
                self.collect_garbage(now);
                applied.notifications = self.dispatch(now);
            }
            AlertingCommand::SetConfig { config, .. } => {
                for r in receivers_used(&config.route) {
                    if config.receiver(&r).is_none() {
                        return Err(invalid(format!("undefined receiver {r:?} used in route")));
                    }
                }
                self.config = Some(config.clone());
                // Routes may have changed: aggregation groups start afresh
                // (as Alertmanager's dispatcher does on reload).
                self.agg_groups.clear();
            }
            AlertingCommand::AddSilence {
                replaces,
                matchers,
                starts_at_ms,
                ends_at_ms,
                created_by,
                comment,
                now_ms,
            } => {
                let now = self.advance_clock(*now_ms);
                validate_silence(matchers, *starts_at_ms, *ends_at_ms, created_by, comment)?;
                if *ends_at_ms <= now {
                    return Err(invalid("the silence's end is in the past"));
                }
                if let Some(old) = replaces {
                    let Some(s) = self.silences.get(old) else {
                        return Err(precondition(format!("silence {old} not found")));
                    };
                    if s.state(now) == SilenceState::Expired {
                        return Err(precondition(format!("silence {old} is already expired")));
                    }
                }
                // The replaced silence (live, checked above) stops counting.
                let live = self
                    .silences
                    .values()
                    .filter(|s| s.state(now) != SilenceState::Expired)
                    .count()
                    - usize::from(replaces.is_some());
                if live >= SILENCES_MAX {
                    return Err(invalid(format!(
                        "at most {SILENCES_MAX} silences may be pending or active"
                    )));
                }
                if let Some(s) = replaces.as_ref().and_then(|old| self.silences.get_mut(old)) {
                    expire(s, now);
                }
                let starts = if *starts_at_ms <= now + SILENCE_START_SLACK_MS {
                    (*starts_at_ms).min(now)
                } else {
                    *starts_at_ms
                };
                self.next_silence += 1;
                let id = silence_id(self.next_silence);
                self.silences.insert(
                    id.clone(),
                    Silence {
                        id: id.clone(),
                        matchers: matchers.clone(),
                        starts_at_ms: starts,
                        ends_at_ms: *ends_at_ms,
                        created_by: created_by.clone(),
                        comment: comment.clone(),
                        updated_at_ms: now,
                    },
                );
                applied.silence_id = Some(id);
            }
            AlertingCommand::ExpireSilence { id, now_ms } => {
                let now = self.advance_clock(*now_ms);
                let Some(s) = self.silences.get_mut(id) else {
                    return Err(precondition(format!("silence {id} not found")));
                };
                if s.state(now) == SilenceState::Expired {
                    return Err(precondition(format!("silence {id} is already expired")));
                }
                expire(s, now);
            }
            AlertingCommand::MarkDelivered { delivered, now_ms } => {
                let now = self.advance_clock(*now_ms);
                for id in delivered {
                    if let Some(n) = self.notifications.get_mut(id) {
                        n.attempts += 1;
                        n.delivered_ms.get_or_insert(now);
                    }
                }
                self.trim_delivered();
            }
        }
        Ok(applied)
    }

    /// `silence_state` is a silence's state at the state's clock.
    pub fn silence_state(&self, s: &Silence) -> SilenceState {
        s.state(self.clock_ms)
    }

    /// `silenced_by` lists the silences muting `labels` at `now_ms`.
    pub fn silenced_by(&self, labels: &LabelSet, now_ms: i64) -> Vec<String> {
        self.silences
            .values()
            .filter(|s| s.mutes(labels, now_ms))
            .map(|s| s.id.clone())
            .collect()
    }

    /// `firing` lists every firing alert's labels.
    pub fn firing(&self) -> Vec<&LabelSet> {
        self.alerts()
            .filter(|(_, _, a)| a.status == AlertStatus::Firing)
            .map(|(_, _, a)| &a.labels)
            .collect()
    }

    /// `alerts` iterates (group, rule index, alert) over every alert.
    pub fn alerts(&self) -> impl Iterator<Item = (&str, usize, &Alert)> {
        self.groups.iter().flat_map(|(name, g)| {
            g.rules
                .iter()
                .enumerate()
                .flat_map(move |(i, r)| r.alerts.values().map(move |a| (name.as_str(), i, a)))
        })
    }

    /// `inhibited` is whether `labels` is muted by an inhibition rule.
    pub fn inhibited(&self, labels: &LabelSet) -> bool {
        let Some(config) = &self.config else {
            return false;
        };
        if config.inhibit_rules.is_empty() {
            return false;
        }
        amconfig::inhibited(&config.inhibit_rules, labels, &self.firing())
    }

    /// `next_flush_ms` is the earliest time a `Tick` has work: an
    /// aggregation group to flush, or garbage to collect.
    pub fn next_due_ms(&self) -> Option<i64> {
        let flush = self.agg_groups.values().map(|g| g.next_flush_ms).min();
        let resolved = self
            .alerts()
            .filter_map(|(_, _, a)| a.resolved_at_ms.map(|r| r + RESOLVED_RETENTION_MS))
            .min();
        let silences = self
            .silences
            .values()
            .map(|s| s.ends_at_ms + SILENCE_RETENTION_MS)
            .min();
        let undelivered = self
            .notifications
            .values()
            .filter(|n| n.delivered_ms.is_none())
            .map(|n| n.created_ms + UNDELIVERED_MAX_AGE_MS)
            .min();
        [flush, resolved, silences, undelivered]
            .into_iter()
            .flatten()
            .min()
    }

    /// `undelivered` lists the notifications waiting for a receiver, oldest
    /// first.
    pub fn undelivered(&self) -> impl Iterator<Item = &Notification> {
        self.notifications
            .values()
            .filter(|n| n.delivered_ms.is_none())
    }

    fn collect_garbage(&mut self, now: i64) {
        for g in self.groups.values_mut() {
            for r in &mut g.rules {
                r.alerts.retain(|_, a| {
                    !(a.status == AlertStatus::Inactive
                        && a.resolved_at_ms
                            .is_some_and(|t| now - t >= RESOLVED_RETENTION_MS))
                });
            }
        }
        self.silences
            .retain(|_, s| now - s.ends_at_ms < SILENCE_RETENTION_MS);
        let before = self.notifications.len();
        self.notifications
            .retain(|_, n| n.delivered_ms.is_some() || now - n.created_ms < UNDELIVERED_MAX_AGE_MS);
        self.notifications_abandoned += (before - self.notifications.len()) as u64;
    }

    fn trim_delivered(&mut self) {
        let delivered: Vec<u64> = self
            .notifications
            .values()
            .filter(|n| n.delivered_ms.is_some())
            .map(|n| n.id)
            .collect();
        if delivered.len() > DELIVERED_KEPT {
            for id in &delivered[..delivered.len() - DELIVERED_KEPT] {
                self.notifications.remove(id);
            }
        }
    }

    /// `dispatch` routes every firing or recently resolved alert to its
    /// aggregation groups and flushes the groups that are due at `now`,
    /// appending their notifications to the log. Returns the new ids.
    fn dispatch(&mut self, now: i64) -> Vec<u64> {
        let Some(config) = self.config.clone() else {
            return vec![];
        };
        // Alertmanager sees firing alerts and resolved ones that fired.
        let mut members: BTreeMap<String, Vec<(String, Alert)>> = BTreeMap::new();
        let mut routes: BTreeMap<String, (String, String, String, LabelSet, i64)> = BTreeMap::new();
        let candidates: Vec<(String, Alert)> = self
            .alerts()
            .filter(|(_, _, a)| {
                a.status == AlertStatus::Firing
                    || (a.status == AlertStatus::Inactive && a.fired_at_ms.is_some())
            })
            .map(|(_, _, a)| {
                (
                    webhook::fingerprint_hex(webhook::fingerprint(&a.labels)),
                    a.clone(),
                )
            })
            .collect();
        for (fp, alert) in candidates {
            for m in config.route_alert(&alert.labels) {
                let key = format!("{}|{}", m.route.id, m.group_key);
                routes.entry(key.clone()).or_insert_with(|| {
                    (
                        m.route.id.clone(),
                        m.route.receiver.clone(),
                        m.group_key.clone(),
                        m.group_labels.clone(),
                        m.route.group_wait_ms,
                    )
                });
                members
                    .entry(key)
                    .or_default()
                    .push((fp.clone(), alert.clone()));
            }
        }
        for (key, (route_id, receiver, group_key, group_labels, wait)) in &routes {
            // A group with only resolved alerts is not created.
            let any_firing = members
                .get(key)
                .is_some_and(|v| v.iter().any(|(_, a)| a.status == AlertStatus::Firing));
            if !self.agg_groups.contains_key(key) && any_firing {
                self.agg_groups.insert(
                    key.clone(),
                    AggGroup {
                        route_id: route_id.clone(),
                        receiver: receiver.clone(),
                        group_key: group_key.clone(),
                        group_labels: group_labels.clone(),
                        created_ms: now,
                        next_flush_ms: now + wait,
                        last_notified_ms: None,
                        last_firing: BTreeSet::new(),
                        last_resolved: BTreeSet::new(),
                    },
                );
            }
        }
        let due: Vec<String> = self
            .agg_groups
            .iter()
            .filter(|(_, g)| g.next_flush_ms <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let firing_sources: Vec<LabelSet> = self.firing().into_iter().cloned().collect();
        let sources: Vec<&LabelSet> = firing_sources.iter().collect();
        let mut created = Vec::new();
        for key in due {
            let alerts = members.remove(&key).unwrap_or_default();
            let Some(group) = self.agg_groups.get(&key).cloned() else {
                continue;
            };
            let Some(route) = find_route(&config.route, &group.route_id) else {
                self.agg_groups.remove(&key);
                continue;
            };
            // Planted bug (simulator only): silences are ignored.
            #[cfg(feature = "inject-bugs")]
            let ignore_silences =
                raftwatch_seams::bugs::armed(raftwatch_seams::bugs::Bug::NotifyIgnoresSilence);
            #[cfg(not(feature = "inject-bugs"))]
            let ignore_silences = false;
            // Muted alerts (silenced or inhibited) are left out.
            let shown: Vec<&(String, Alert)> = alerts
                .iter()
                .filter(|(_, a)| {
                    (ignore_silences || !self.silences.values().any(|s| s.mutes(&a.labels, now)))
                        && !amconfig::inhibited(&config.inhibit_rules, &a.labels, &sources)
                })
                .collect();
            let firing: BTreeSet<String> = shown
                .iter()
                .filter(|(_, a)| a.status == AlertStatus::Firing)
                .map(|(fp, _)| fp.clone())
                .collect();
            let resolved: BTreeSet<String> = shown
                .iter()
                .filter(|(_, a)| a.status == AlertStatus::Inactive)
                .map(|(fp, _)| fp.clone())
                .collect();
            let notify = needs_update(&group, &firing, &resolved, now, route.repeat_interval_ms);
            let mut g = group.clone();
            g.next_flush_ms = now + route.group_interval_ms;
            if notify {
                if let Some(receiver) = config.receiver(&group.receiver) {
                    for (i, hook) in receiver.webhook_configs.iter().enumerate() {
                        let list: Vec<WebhookAlert> = shown
                            .iter()
                            .filter(|(_, a)| hook.send_resolved || a.status == AlertStatus::Firing)
                            .map(|(fp, a)| webhook_alert(fp, a))
                            .collect();
                        if list.is_empty() {
                            continue;
                        }
                        self.next_notification += 1;
                        let id = self.next_notification;
                        let key_hash = notification_key(&group, i, &firing, &resolved, id);
                        let payload = webhook::build_payload(
                            &group.receiver,
                            &group.group_key,
                            &group.group_labels,
                            list,
                            hook.max_alerts,
                            "",
                            &key_hash,
                        );
                        self.notifications.insert(
                            id,
                            Notification {
                                id,
                                key: key_hash,
                                receiver: group.receiver.clone(),
                                url: hook.url.clone(),
                                payload,
                                created_ms: now,
                                delivered_ms: None,
                                attempts: 0,
                            },
                        );
                        created.push(id);
                    }
                }
                g.last_notified_ms = Some(now);
                g.last_firing = firing.clone();
                g.last_resolved = resolved;
            }
            // A group with nothing firing whose last word was "nothing
            // fires" (or that never notified) is done.
            if alerts.iter().all(|(_, a)| a.status != AlertStatus::Firing)
                && g.last_firing.is_empty()
            {
                self.agg_groups.remove(&key);
            } else {
                self.agg_groups.insert(key, g);
            }
        }
        // Bound the undelivered backlog: abandon the oldest.
        let waiting: Vec<u64> = self.undelivered().map(|n| n.id).collect();
        if waiting.len() > UNDELIVERED_MAX {
            for id in &waiting[..waiting.len() - UNDELIVERED_MAX] {
                self.notifications.remove(id);
                self.notifications_abandoned += 1;
            }
        }
        created
    }
}

/// Alertmanager's `DedupStage.needsUpdate`.
fn needs_update(
    group: &AggGroup,
    firing: &BTreeSet<String>,
    resolved: &BTreeSet<String>,
    now: i64,
    repeat_ms: i64,
) -> bool {
    let Some(last) = group.last_notified_ms else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&group.last_firing) {
        return true;
    }
    if firing.is_empty() {
        return !group.last_firing.is_empty();
    }
    if !resolved.is_subset(&group.last_resolved) {
        return true;
    }
    now - last >= repeat_ms
}

fn notification_key(
    group: &AggGroup,
    hook: usize,
    firing: &BTreeSet<String>,
    resolved: &BTreeSet<String>,
    id: u64,
) -> String {
    let mut l = LabelSet::new();
    l.insert(
        "group".into(),
        format!("{}|{}", group.route_id, group.group_key),
    );
    l.insert("receiver".into(), format!("{}#{hook}", group.receiver));
    l.insert(
        "firing".into(),
        firing.iter().cloned().collect::<Vec<_>>().join(","),
    );
    l.insert(
        "resolved".into(),
        resolved.iter().cloned().collect::<Vec<_>>().join(","),
    );
    l.insert("seq".into(), id.to_string());
    format!(
        "{id}-{}",
        webhook::fingerprint_hex(webhook::fingerprint(&l))
    )
}

fn webhook_alert(fp: &str, a: &Alert) -> WebhookAlert {
    let firing = a.status == AlertStatus::Firing;
    WebhookAlert {
        status: if firing { "firing" } else { "resolved" }.into(),
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        starts_at: webhook::rfc3339_ms(a.fired_at_ms.unwrap_or(a.active_at_ms)),
        ends_at: match (firing, a.resolved_at_ms) {
            (false, Some(t)) => webhook::rfc3339_ms(t),
            _ => webhook::ZERO_TIME.into(),
        },
        generator_url: String::new(),
        fingerprint: fp.to_string(),
    }
}

fn find_route<'a>(route: &'a amconfig::Route, id: &str) -> Option<&'a amconfig::Route> {
    if route.id == id {
        return Some(route);
    }
    route.routes.iter().find_map(|r| find_route(r, id))
}

fn receivers_used(route: &amconfig::Route) -> Vec<String> {
    let mut out = vec![route.receiver.clone()];
    for r in &route.routes {
        out.extend(receivers_used(r));
    }
    out
}

fn expire(s: &mut Silence, now: i64) {
    if s.starts_at_ms > now {
        s.starts_at_ms = now;
    }
    s.ends_at_ms = now;
    s.updated_at_ms = now;
}

/// `silence_id` is the `n`th silence's id: UUID-shaped (amtool shows and
/// takes it as is), derived from a counter so every replica agrees.
pub fn silence_id(n: u64) -> String {
    format!(
        "{:08x}-{:04x}-4000-8000-{:012x}",
        (n >> 48) as u32,
        (n >> 32) as u16,
        n & 0xffff_ffff_ffff
    )
}

/// Prometheus's alerting-rule state machine for one evaluation.
fn transition(
    alerts: &mut BTreeMap<String, Alert>,
    results: &[EvalAlert],
    eval_ms: i64,
    for_ms: i64,
    keep_firing_for_ms: i64,
) -> Result<(), String> {
    let mut seen: BTreeMap<String, &EvalAlert> = BTreeMap::new();
    for r in results {
        let fp = webhook::fingerprint_hex(webhook::fingerprint(&r.labels));
        if seen.insert(fp, r).is_some() {
            return Err(
                "vector contains metrics with the same labelset after applying alert labels".into(),
            );
        }
    }
    for (fp, r) in &seen {
        match alerts.get_mut(fp) {
            Some(a) if a.status != AlertStatus::Inactive => {
                a.value = r.value;
                a.annotations = r.annotations.clone();
                a.keep_firing_since_ms = None;
                a.last_seen_ms = eval_ms;
            }
            _ => {
                alerts.insert(
                    fp.clone(),
                    Alert {
                        labels: r.labels.clone(),
                        annotations: r.annotations.clone(),
                        status: AlertStatus::Pending,
                        active_at_ms: eval_ms,
                        fired_at_ms: None,
                        resolved_at_ms: None,
                        keep_firing_since_ms: None,
                        value: r.value,
                        last_seen_ms: eval_ms,
                    },
                );
            }
        }
    }
    alerts.retain(|fp, a| {
        if seen.contains_key(fp) {
            return true;
        }
        match a.status {
            AlertStatus::Pending => false,
            AlertStatus::Inactive => a
                .resolved_at_ms
                .is_none_or(|t| eval_ms - t < RESOLVED_RETENTION_MS),
            AlertStatus::Firing => {
                if keep_firing_for_ms > 0 {
                    let since = *a.keep_firing_since_ms.get_or_insert(eval_ms);
                    if eval_ms - since < keep_firing_for_ms {
                        return true;
                    }
                }
                a.status = AlertStatus::Inactive;
                a.resolved_at_ms = Some(eval_ms);
                true
            }
        }
    });
    for (fp, _) in seen {
        if let Some(a) = alerts.get_mut(&fp)
            && a.status == AlertStatus::Pending
            && eval_ms - a.active_at_ms >= for_ms
        {
            a.status = AlertStatus::Firing;
            a.fired_at_ms = Some(eval_ms);
        }
    }
    Ok(())
}

/// A replaced group keeps the state of every rule that stayed the same
/// (same kind, name and expression, matched in order), as Prometheus
/// copies rule state across a reload.
fn carry_over(group: RuleGroup, old: Option<StoredGroup>, version: u64) -> StoredGroup {
    let mut states: Vec<RuleState> = vec![RuleState::default(); group.rules.len()];
    let mut last_eval_ms = None;
    if let Some(old) = old {
        last_eval_ms = old.last_eval_ms;
        let mut used = vec![false; old.rules.len()];
        for (i, rule) in group.rules.iter().enumerate() {
            let found = old.group.rules.iter().enumerate().position(|(j, o)| {
                !used[j]
                    && std::mem::discriminant(o) == std::mem::discriminant(rule)
                    && o.name() == rule.name()
                    && o.expr() == rule.expr()
            });
            if let Some(j) = found {
                used[j] = true;
                states[i] = old.rules[j].clone();
            }
        }
    }
    StoredGroup {
        group,
        version,
        last_eval_ms,
        eval_duration_ms: 0,
        rules: states,
    }
}

/// `f64_json` writes a float as a JSON number when finite and as
/// `"NaN"`, `"+Inf"` or `"-Inf"` otherwise (serde_json refuses
/// non-finite numbers), keeping every value of an alert exact.
mod f64_json {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if *v > 0.0 {
            s.serialize_str("+Inf")
        } else {
            s.serialize_str("-Inf")
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Num(f64),
        Str(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Num(v) => Ok(v),
            Repr::Str(s) => match s.as_str() {
                "NaN" => Ok(f64::NAN),
                "+Inf" => Ok(f64::INFINITY),
                "-Inf" => Ok(f64::NEG_INFINITY),
                other => Err(serde::de::Error::custom(format!("not a float: {other:?}"))),
            },
        }
    }
}
