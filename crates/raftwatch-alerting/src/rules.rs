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

/// Duration units, largest first, in nanoseconds.
const DURATION_UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3_600_000_000_000),
    ("w", 7 * 24 * 3_600_000_000_000),
    ("d", 24 * 3_600_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
];

/// `parse_duration` parses a Prometheus duration (`model.ParseDuration`)
/// into milliseconds: `0`, or numbers each followed by a unit among
/// `y w d h m s ms` (a year is 365 days), units in that order and each
/// at most once (`1h30m`, `90s`, `500ms`). The total must fit in an
/// int64 of nanoseconds (about 292 years).
pub fn parse_duration(s: &str) -> Result<i64, String> {
    match s {
        "0" => return Ok(0),
        "" => return Err("empty duration string".to_string()),
        _ => {}
    }
    let invalid = || format!("not a valid duration string: {s:?}");
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total_ns: u64 = 0;
    let mut last_unit: Option<usize> = None;
    while i < bytes.len() {
        let start = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err(invalid());
        }
        let value: u64 = s
            .get(start..i)
            .and_then(|d| d.parse().ok())
            .ok_or_else(invalid)?;
        let unit_start = i;
        while bytes.get(i).is_some_and(|b| !b.is_ascii_digit()) {
            i += 1;
        }
        if i == unit_start {
            return Err(invalid());
        }
        let unit = s.get(unit_start..i).ok_or_else(invalid)?;
        let Some(pos) = DURATION_UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(format!("unknown unit {unit:?} in duration {s:?}"));
        };
        if last_unit.is_some_and(|last| pos <= last) {
            return Err(invalid());
        }
        last_unit = Some(pos);
        let mult = DURATION_UNITS.get(pos).map_or(1, |(_, m)| *m);
        if value > (1u64 << 63) / mult {
            return Err("duration out of range".to_string());
        }
        total_ns = total_ns.saturating_add(value * mult);
        if total_ns > i64::MAX as u64 {
            return Err("duration out of range".to_string());
        }
    }
    i64::try_from(total_ns / 1_000_000).map_err(|_| "duration out of range".to_string())
}

/// `format_duration` writes milliseconds as Prometheus does
/// (`model.Duration.String`): `1m30s`, `5m`, `1d12h`, `500ms`, `0s`;
/// years and weeks only when they divide the duration exactly (`90d`,
/// not `12w6d`). Negative durations get a leading `-`.
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut rest = ms.unsigned_abs();
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
    }
    for (i, (unit, mult_ns)) in DURATION_UNITS.iter().enumerate() {
        let mult = mult_ns / 1_000_000;
        // Years and weeks only when exact.
        if i < 2 && !rest.is_multiple_of(mult) {
            continue;
        }
        let v = rest / mult;
        if v > 0 {
            out.push_str(&v.to_string());
            out.push_str(unit);
            rest -= v * mult;
        }
    }
    out
}
