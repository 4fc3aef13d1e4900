//! Prometheus rule files: parsed from YAML and validated as
//! `promtool check rules` does, before anything is committed.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::LabelSet;

/// `RuleFile` is a parsed, validated rule file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleFile {
    /// Its groups, in file order (names unique).
    pub groups: Vec<RuleGroup>,
}

/// `RuleGroup` is one group: evaluated together, at one interval, in
/// order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleGroup {
    /// The group's name (unique in the cluster).
    pub name: String,
    /// Evaluation interval in milliseconds (the file's `interval`, else
    /// [`DEFAULT_INTERVAL_MS`]).
    pub interval_ms: i64,
    /// `limit`: an alerting rule producing more alerts, or a recording
    /// rule more series, than this fails its evaluation (0 = no limit).
    pub limit: u64,
    /// The rules, in order.
    pub rules: Vec<Rule>,
}

/// `DEFAULT_INTERVAL_MS` is Prometheus's default `evaluation_interval`
/// (1 m).
pub const DEFAULT_INTERVAL_MS: i64 = 60_000;

/// `Rule` is an alerting or a recording rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Rule {
    /// `alert:`
    Alerting(AlertingRule),
    /// `record:`
    Recording(RecordingRule),
}

impl Rule {
    /// `name` is the alert name or the recorded metric name.
    pub fn name(&self) -> &str {
        match self {
            Rule::Alerting(r) => &r.alert,
            Rule::Recording(r) => &r.record,
        }
    }

    /// `expr` is the rule's PromQL expression (as written).
    pub fn expr(&self) -> &str {
        match self {
            Rule::Alerting(r) => &r.expr,
            Rule::Recording(r) => &r.expr,
        }
    }
}

/// `AlertingRule` is an `alert:` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertingRule {
    /// The alert's name (the `alertname` label).
    pub alert: String,
    /// The PromQL expression.
    pub expr: String,
    /// `for` in milliseconds (0: fire at the first evaluation).
    pub for_ms: i64,
    /// `keep_firing_for` in milliseconds (0: resolve at once).
    pub keep_firing_for_ms: i64,
    /// Labels added to every alert; values are templates.
    pub labels: LabelSet,
    /// Annotations; values are templates.
    pub annotations: LabelSet,
}

/// `RecordingRule` is a `record:` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordingRule {
    /// The metric name its results are written under.
    pub record: String,
    /// The PromQL expression.
    pub expr: String,
    /// Labels set on every result (not templates).
    pub labels: LabelSet,
}

/// `RuleError` is one problem found in a rule file, located as promtool
/// does (group name, rule index and name where known).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{location}: {message}")]
pub struct RuleError {
    /// Where: `group "g", rule 2 (HighLoad)`, or `file` for the file as a
    /// whole.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

// STUB (uncommitted)
/// stub
pub fn parse_rule_file(_yaml: &str) -> Result<RuleFile, Vec<RuleError>> {
    Err(vec![])
}
/// stub
pub fn render_rule_file(_groups: &[RuleGroup]) -> String {
    String::new()
}
