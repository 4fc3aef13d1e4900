//! Alerting operations shared by the gRPC `Admin` service, the Prometheus
//! API (`/api/v1/rules`, `/api/v1/alerts`) and the Alertmanager API v2:
//! validation at the edge (nothing invalid is ever proposed), then one
//! committed control command.

use std::sync::Arc;

use raftwatch_alerting::amconfig;
use raftwatch_alerting::matcher::{Matcher, parse_matcher};
use raftwatch_alerting::rules::{Rule, parse_rule_file, render_rule_file};
use raftwatch_alerting::webhook::{fingerprint, fingerprint_hex};
use raftwatch_control::Command;
use raftwatch_control::alerting::{
    Alert, AlertingCommand, AlertingState, Notification, Silence, validate_silence,
};
use raftwatch_proto::v1 as pb;
use raftwatch_raft::ReadConsistency;
use tonic::Status;

use super::Node;
use super::clients::refusal_status;

/// `SilenceSpec` is a silence as an API hands it over.
#[derive(Clone, Debug)]
pub(crate) struct SilenceSpec {
    pub(crate) matchers: Vec<Matcher>,
    /// `None`: now.
    pub(crate) starts_at_ms: Option<i64>,
    pub(crate) ends_at_ms: i64,
    pub(crate) created_by: String,
    pub(crate) comment: String,
    /// The silence this one replaces.
    pub(crate) replaces: Option<String>,
}

impl Node {
    async fn alerting_write(
        &self,
        cmd: AlertingCommand,
    ) -> Result<raftwatch_control::Applied, Status> {
        self.control_write(&Command::Alerting(cmd)).await
    }

    /// `apply_rules` validates a rule file and replaces the groups it
    /// names.
    pub(crate) async fn apply_rules(
        &self,
        yaml: &str,
        expected_version: Option<u64>,
    ) -> Result<pb::ApplyRulesResponse, Status> {
        let file = parse_rule_file(yaml).map_err(|errors| {
            let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            Status::invalid_argument(format!("invalid rule file: {}", list.join("; ")))
        })?;
        let names = file.groups.iter().map(|g| g.name.clone()).collect();
        let applied = self
            .alerting_write(AlertingCommand::ApplyRules {
                groups: file.groups,
                expected_version,
            })
            .await?;
        Ok(pb::ApplyRulesResponse {
            version: applied.version,
            groups: names,
        })
    }

    /// `delete_rule_group` deletes one group.
    pub(crate) async fn delete_rule_group(
        &self,
        name: &str,
        expected_version: Option<u64>,
    ) -> Result<u64, Status> {
        let applied = self
            .alerting_write(AlertingCommand::DeleteRuleGroup {
                name: name.to_string(),
                expected_version,
            })
            .await?;
        Ok(applied.version)
    }

    /// `set_alertmanager_config` validates and replaces the configuration.
    pub(crate) async fn set_alertmanager_config(
        &self,
        yaml: &str,
        expected_version: Option<u64>,
    ) -> Result<u64, Status> {
        let config =
            amconfig::parse_config(yaml).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let applied = self
            .alerting_write(AlertingCommand::SetConfig {
                config,
                expected_version,
            })
            .await?;
        Ok(applied.version)
    }

    /// `add_silence` validates and commits a silence; returns its id.
    pub(crate) async fn add_silence(&self, spec: SilenceSpec) -> Result<String, Status> {
        let now = self.clock.now_wall().0;
        let starts = spec.starts_at_ms.unwrap_or(now);
        validate_silence(
            &spec.matchers,
            starts,
            spec.ends_at_ms,
            &spec.created_by,
            &spec.comment,
        )
        .map_err(|r| refusal_status(&r))?;
        let applied = self
            .alerting_write(AlertingCommand::AddSilence {
                replaces: spec.replaces,
                matchers: spec.matchers,
                starts_at_ms: starts,
                ends_at_ms: spec.ends_at_ms,
                created_by: spec.created_by,
                comment: spec.comment,
                now_ms: now,
            })
            .await?;
        applied
            .alerting
            .and_then(|a| a.silence_id)
            .ok_or_else(|| Status::internal("the silence was committed without an id"))
    }

    /// `expire_silence` ends a silence now.
    pub(crate) async fn expire_silence(&self, id: &str) -> Result<(), Status> {
        self.alerting_write(AlertingCommand::ExpireSilence {
            id: id.to_string(),
            now_ms: self.clock.now_wall().0,
        })
        .await?;
        Ok(())
    }

    /// `set_setting` sets a cluster setting and returns the control
    /// version it was set at. With `expected_version`, only if the control
    /// state is at that version; with `expected_value`, only if the key's
    /// current value (the empty string when unset) equals it. A mismatch is
    /// `FAILED_PRECONDITION` and changes nothing.
    pub(crate) async fn set_setting(
        &self,
        key: &str,
        value: &str,
        expected_version: Option<u64>,
        expected_value: Option<&str>,
    ) -> Result<u64, Status> {
        let applied = self
            .control_write(&Command::SetSetting {
                key: key.to_string(),
                value: value.to_string(),
                expected_version,
                expected_value: expected_value.map(str::to_string),
            })
            .await?;
        Ok(applied.version)
    }

    /// `get_setting` reads one cluster setting at `consistency` (a
    /// linearizable read waits for the control group's read index): its
    /// value and the control version it was set at, or `None` when it was
    /// never set. An empty key is `INVALID_ARGUMENT`, as for `set_setting`.
    pub(crate) async fn get_setting(
        &self,
        key: &str,
        consistency: ReadConsistency,
    ) -> Result<Option<(String, u64)>, Status> {
        if key.is_empty() {
            return Err(Status::invalid_argument("empty setting key"));
        }
        let state = self.control_state(consistency).await?;
        Ok(state.settings.get(key).cloned())
    }

    /// `alerting_now` is the time an API answer evaluates silence and
    /// alert states at: the later of this node's clock and the state's.
    pub(crate) fn alerting_now(&self, state: &AlertingState) -> i64 {
        self.clock.now_wall().0.max(state.clock_ms)
    }
}

/// `parse_matchers_arg` parses matcher strings from a request.
pub(crate) fn parse_matchers_arg(list: &[String]) -> Result<Vec<Matcher>, Status> {
    list.iter()
        .map(|m| parse_matcher(m).map_err(|e| Status::invalid_argument(e.to_string())))
        .collect()
}

/// `alert_info` describes one alert.
pub(crate) fn alert_info(
    state: &AlertingState,
    group: &str,
    rule: &str,
    a: &Alert,
    now: i64,
) -> pb::AlertInfo {
    pb::AlertInfo {
        labels: a.labels.clone().into_iter().collect(),
        annotations: a.annotations.clone().into_iter().collect(),
        state: a.status.name().into(),
        active_at_ms: a.active_at_ms,
        fired_at_ms: a.fired_at_ms.unwrap_or(0),
        resolved_at_ms: a.resolved_at_ms.unwrap_or(0),
        value: a.value,
        fingerprint: fingerprint_hex(fingerprint(&a.labels)),
        group: group.to_string(),
        rule: rule.to_string(),
        silenced_by: state.silenced_by(&a.labels, now),
        inhibited: state.inhibited(&a.labels),
    }
}

/// `alert_infos` lists every alert.
pub(crate) fn alert_infos(state: &AlertingState, now: i64) -> Vec<pb::AlertInfo> {
    state
        .alerts()
        .map(|(g, i, a)| {
            let rule = state
                .groups
                .get(g)
                .and_then(|s| s.group.rules.get(i))
                .map(|r| r.name().to_string())
                .unwrap_or_default();
            alert_info(state, g, &rule, a, now)
        })
        .collect()
}

/// `rules_response` describes every group.
pub(crate) fn rules_response(state: &AlertingState, now: i64) -> pb::ListRulesResponse {
    let groups: Vec<pb::RuleGroupInfo> = state
        .groups
        .iter()
        .map(|(name, g)| pb::RuleGroupInfo {
            name: name.clone(),
            interval_ms: g.group.interval_ms,
            limit: g.group.limit,
            last_eval_ms: g.last_eval_ms.unwrap_or(0),
            eval_duration_ms: g.eval_duration_ms,
            version: g.version,
            rules: g
                .group
                .rules
                .iter()
                .zip(&g.rules)
                .map(|(rule, st)| {
                    let (kind, for_ms, keep, labels, annotations) = match rule {
                        Rule::Alerting(r) => (
                            "alerting",
                            r.for_ms,
                            r.keep_firing_for_ms,
                            r.labels.clone(),
                            r.annotations.clone(),
                        ),
                        Rule::Recording(r) => {
                            ("recording", 0, 0, r.labels.clone(), Default::default())
                        }
                    };
                    pb::RuleInfo {
                        kind: kind.into(),
                        name: rule.name().into(),
                        expr: rule.expr().into(),
                        for_ms,
                        keep_firing_for_ms: keep,
                        labels: labels.into_iter().collect(),
                        annotations: annotations.into_iter().collect(),
                        health: st.health.name().into(),
                        last_error: st.last_error.clone(),
                        last_eval_ms: st.last_eval_ms.unwrap_or(0),
                        eval_duration_ms: st.eval_duration_ms,
                        alerts: st
                            .alerts
                            .values()
                            .map(|a| alert_info(state, name, rule.name(), a, now))
                            .collect(),
                    }
                })
                .collect(),
        })
        .collect();
    let all: Vec<_> = state.groups.values().map(|g| g.group.clone()).collect();
    pb::ListRulesResponse {
        groups,
        yaml: render_rule_file(&all),
    }
}

/// `silence_info` describes one silence.
pub(crate) fn silence_info(s: &Silence, now: i64) -> pb::SilenceInfo {
    pb::SilenceInfo {
        id: s.id.clone(),
        matchers: s.matchers.iter().map(|m| m.to_string()).collect(),
        starts_at_ms: s.starts_at_ms,
        ends_at_ms: s.ends_at_ms,
        updated_at_ms: s.updated_at_ms,
        created_by: s.created_by.clone(),
        comment: s.comment.clone(),
        state: s.state(now).name().into(),
    }
}

/// `notification_info` describes one notification.
pub(crate) fn notification_info(n: &Notification) -> pb::NotificationInfo {
    pb::NotificationInfo {
        id: n.id,
        key: n.key.clone(),
        receiver: n.receiver.clone(),
        url: n.url.clone(),
        status: if n.delivered_ms.is_some() {
            "delivered"
        } else {
            "pending"
        }
        .into(),
        created_ms: n.created_ms,
        delivered_ms: n.delivered_ms.unwrap_or(0),
        group_key: n.payload.group_key.clone(),
        alerts_status: n.payload.status.clone(),
        alerts: n.payload.alerts.len() as u32,
        payload_json: String::from_utf8_lossy(&n.payload.to_json()).into_owned(),
    }
}

/// `read_alerting` reads the alerting state for an API answer.
pub(crate) async fn read_alerting(
    node: &Arc<Node>,
    consistency: ReadConsistency,
) -> Result<(AlertingState, i64), Status> {
    let state = node.alerting_state(consistency).await?;
    let now = node.alerting_now(&state);
    Ok((state, now))
}
