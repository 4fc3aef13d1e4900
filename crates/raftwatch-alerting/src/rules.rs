//! Prometheus rule files: parsed from YAML and validated as
//! `promtool check rules` does, before anything is committed.
//!
//! [`parse_rule_file`] follows Prometheus's `model/rulefmt` checks and
//! collects every problem it finds, each located by group and rule.
//! [`render_rule_file`] writes groups back as a rule file.
//!
//! Departures from Prometheus, each on purpose:
//! - group `labels` and `query_offset` are refused (the types here have
//!   nowhere to keep them), as is a negative `limit`;
//! - a rule's expression must be an instant vector or a scalar
//!   (Prometheus accepts other types and fails every evaluation);
//! - rule label and annotation names are checked against the legacy
//!   pattern `[a-zA-Z_][a-zA-Z0-9_]*`, not Prometheus 3's UTF-8 names.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::LabelSet;
use crate::template::Template;

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

/// `RULE_FILE_BYTES_MAX` is the largest rule file accepted (1 MiB).
pub const RULE_FILE_BYTES_MAX: usize = 1 << 20;

/// `RULE_FILE_GROUPS_MAX` is the most groups one rule file may hold.
pub const RULE_FILE_GROUPS_MAX: usize = 1000;

/// `RULE_GROUP_RULES_MAX` is the most rules one group may hold.
pub const RULE_GROUP_RULES_MAX: usize = 1000;

/// `RULE_EXPR_COMPLEXITY_MAX` bounds how deep a rule's expression may
/// nest, counted as [`expr_complexity`] counts. The PromQL parser and
/// its syntax tree recurse once per level, and a thread's stack (2 MiB
/// for Tokio's workers) overflowed past 20 000 levels when measured;
/// Go's growable stacks spare Prometheus this limit.
pub const RULE_EXPR_COMPLEXITY_MAX: usize = 1000;

/// `expr_complexity` bounds from above the depth of the syntax tree of
/// PromQL `expr` without parsing it: operator characters and the
/// keyword operators (`and`, `or`, `unless`, `atan2`) each count one,
/// and the deepest nesting of parentheses and brackets counts two per
/// level. Strings and label matchers (`{...}`) are skipped.
pub fn expr_complexity(expr: &str) -> usize {
    let mut count = 0usize;
    let mut depth = 0usize;
    let mut depth_max = 0usize;
    let mut braces = 0usize;
    let mut chars = expr.chars();
    let mut word = String::new();
    let end_word = |word: &mut String, count: &mut usize| {
        if matches!(
            word.to_ascii_lowercase().as_str(),
            "and" | "or" | "unless" | "atan2"
        ) {
            *count += 1;
        }
        word.clear();
    };
    while let Some(c) = chars.next() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        end_word(&mut word, &mut count);
        match c {
            '"' | '\'' | '`' => {
                // Skip the string; backquoted strings have no escapes.
                while let Some(s) = chars.next() {
                    if s == '\\' && c != '`' {
                        chars.next();
                    } else if s == c {
                        break;
                    }
                }
            }
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            _ if braces > 0 => {}
            '(' | '[' => {
                depth += 1;
                depth_max = depth_max.max(depth);
            }
            ')' | ']' => depth = depth.saturating_sub(1),
            '+' | '-' | '*' | '/' | '%' | '^' | '=' | '!' | '<' | '>' => count += 1,
            _ => {}
        }
    }
    end_word(&mut word, &mut count);
    count.saturating_add(depth_max.saturating_mul(2))
}

/// The file as written (before validation). Strings take any YAML
/// scalar as written (`expr: 1` is `"1"`), as Prometheus's do.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    groups: Option<Vec<RawGroup>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Option<String>,
    interval: Option<String>,
    query_offset: Option<String>,
    limit: Option<i64>,
    labels: Option<BTreeMap<String, Option<String>>>,
    rules: Option<Vec<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    record: Option<String>,
    alert: Option<String>,
    expr: Option<String>,
    #[serde(rename = "for")]
    for_: Option<String>,
    keep_firing_for: Option<String>,
    labels: Option<BTreeMap<String, Option<String>>>,
    annotations: Option<BTreeMap<String, Option<String>>>,
}

/// A null value (`key: ~`) reads as `""`, as in Go.
fn label_map(raw: Option<BTreeMap<String, Option<String>>>) -> LabelSet {
    raw.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect()
}

/// `parse_rule_file` parses and validates a Prometheus rule file
/// (`groups: [{name, interval, limit, rules: [...]}]`) as `promtool check
/// rules` does. It returns every problem found, or the file with
/// durations in milliseconds and the interval defaulted to
/// [`DEFAULT_INTERVAL_MS`] (also for `interval: 0s`, as Prometheus reads
/// it). A syntax or structure error in the YAML
/// (unknown field, wrong type) is reported alone. Duplicate rules are
/// allowed.
pub fn parse_rule_file(yaml: &str) -> Result<RuleFile, Vec<RuleError>> {
    if yaml.len() > RULE_FILE_BYTES_MAX {
        return Err(vec![file_error(format!(
            "rule file is {} bytes, more than the limit of {RULE_FILE_BYTES_MAX} bytes",
            yaml.len()
        ))]);
    }
    let raw: Option<RawFile> =
        serde_norway::from_str(yaml).map_err(|e| vec![file_error(format!("invalid YAML: {e}"))])?;
    let raw_groups = raw.and_then(|f| f.groups).unwrap_or_default();
    let mut errors = Vec::new();
    if raw_groups.len() > RULE_FILE_GROUPS_MAX {
        errors.push(file_error(format!(
            "{} groups, more than the limit of {RULE_FILE_GROUPS_MAX}",
            raw_groups.len()
        )));
    }
    let mut names = HashSet::new();
    let mut groups = Vec::with_capacity(raw_groups.len());
    for (i, raw) in raw_groups.into_iter().enumerate() {
        if let Some(group) = validate_group(i, raw, &mut names, &mut errors) {
            groups.push(group);
        }
    }
    if errors.is_empty() {
        Ok(RuleFile { groups })
    } else {
        Err(errors)
    }
}

fn file_error(message: String) -> RuleError {
    RuleError {
        location: "file".to_string(),
        message,
    }
}

/// Validates one group; `None` when it has errors (all pushed).
fn validate_group(
    index: usize,
    raw: RawGroup,
    names: &mut HashSet<String>,
    errors: &mut Vec<RuleError>,
) -> Option<RuleGroup> {
    let errors_before = errors.len();
    let name = raw.name.unwrap_or_default();
    let location = if name.is_empty() {
        format!("group {}", index + 1)
    } else {
        format!("group {name:?}")
    };
    let mut fail = |message: String| {
        errors.push(RuleError {
            location: location.clone(),
            message,
        });
    };
    if name.is_empty() {
        fail("group name must not be empty".to_string());
    } else if !names.insert(name.clone()) {
        fail(format!("group name {name:?} is repeated in the same file"));
    }
    let mut interval_ms = DEFAULT_INTERVAL_MS;
    if let Some(text) = &raw.interval {
        match parse_duration(text) {
            // Prometheus reads a zero interval as "the default".
            Ok(0) => {}
            Ok(ms) => interval_ms = ms,
            Err(e) => fail(format!("invalid interval: {e}")),
        }
    }
    if raw.query_offset.is_some() {
        fail("field 'query_offset' is not supported".to_string());
    }
    if raw.labels.is_some() {
        fail("group 'labels' are not supported".to_string());
    }
    let limit = match raw.limit {
        Some(l) if l < 0 => {
            fail(format!("limit must not be negative, got {l}"));
            0
        }
        Some(l) => u64::try_from(l).unwrap_or(0),
        None => 0,
    };
    let raw_rules = raw.rules.unwrap_or_default();
    if raw_rules.len() > RULE_GROUP_RULES_MAX {
        fail(format!(
            "{} rules, more than the limit of {RULE_GROUP_RULES_MAX}",
            raw_rules.len()
        ));
    }
    let mut rules = Vec::with_capacity(raw_rules.len());
    for (i, raw_rule) in raw_rules.into_iter().enumerate() {
        if let Some(rule) = validate_rule(&location, i, raw_rule, errors) {
            rules.push(rule);
        }
    }
    if errors.len() > errors_before {
        return None;
    }
    Some(RuleGroup {
        name,
        interval_ms,
        limit,
        rules,
    })
}

/// Whether `name` matches `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` matches `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Validates one rule (`index` 0-based); `None` when it has errors.
fn validate_rule(
    group: &str,
    index: usize,
    raw: RawRule,
    errors: &mut Vec<RuleError>,
) -> Option<Rule> {
    let record = raw.record.unwrap_or_default();
    let alert = raw.alert.unwrap_or_default();
    let name = if alert.is_empty() { &record } else { &alert };
    let location = if name.is_empty() {
        format!("{group}, rule {}", index + 1)
    } else {
        format!("{group}, rule {} ({name})", index + 1)
    };
    let mut messages: Vec<String> = Vec::new();
    if !record.is_empty() && !alert.is_empty() {
        messages.push("only one of 'record' and 'alert' must be set".to_string());
    }
    if record.is_empty() && alert.is_empty() {
        messages.push("one of 'record' or 'alert' must be set".to_string());
    }
    let expr = raw.expr.unwrap_or_default();
    let complexity = expr_complexity(&expr);
    if expr.trim().is_empty() {
        messages.push("field 'expr' must be set in rule".to_string());
    } else if complexity > RULE_EXPR_COMPLEXITY_MAX {
        messages.push(format!(
            "expression too complex: {complexity} operators and nesting levels, \
             more than the limit of {RULE_EXPR_COMPLEXITY_MAX}"
        ));
    } else {
        match promql_parser::parser::parse(&expr) {
            Err(e) => messages.push(format!("could not parse expression: {e}")),
            Ok(parsed) => {
                use promql_parser::parser::value::ValueType;
                let kind = match parsed.value_type() {
                    ValueType::Vector | ValueType::Scalar => None,
                    ValueType::Matrix => Some("range vector"),
                    ValueType::String => Some("string"),
                };
                if let Some(kind) = kind {
                    messages.push(format!(
                        "expression must be an instant vector or a scalar, not a {kind}"
                    ));
                }
            }
        }
    }
    let mut duration = |field: &str, text: Option<String>| -> i64 {
        match text.as_deref().map(parse_duration) {
            None => 0,
            Some(Ok(ms)) => ms,
            Some(Err(e)) => {
                messages.push(format!("invalid '{field}': {e}"));
                0
            }
        }
    };
    let for_ms = duration("for", raw.for_);
    let keep_firing_for_ms = duration("keep_firing_for", raw.keep_firing_for);
    let labels = label_map(raw.labels);
    let annotations = label_map(raw.annotations);
    if !record.is_empty() {
        if !annotations.is_empty() {
            messages.push("invalid field 'annotations' in recording rule".to_string());
        }
        if for_ms != 0 {
            messages.push("invalid field 'for' in recording rule".to_string());
        }
        if keep_firing_for_ms != 0 {
            messages.push("invalid field 'keep_firing_for' in recording rule".to_string());
        }
        if !is_metric_name(&record) {
            messages.push(format!("invalid recording rule name: {record:?}"));
        }
    }
    for name in labels.keys() {
        if !is_label_name(name) || name == "__name__" {
            messages.push(format!("invalid label name: {name:?}"));
        }
    }
    for name in annotations.keys() {
        if !is_label_name(name) {
            messages.push(format!("invalid annotation name: {name:?}"));
        }
    }
    if !alert.is_empty() {
        // Alerting rules' label and annotation values are templates.
        let template_name = format!("__alert_{alert}");
        for (what, map) in [("label", &labels), ("annotation", &annotations)] {
            for (k, v) in map {
                if let Err(e) = Template::parse(&template_name, v) {
                    messages.push(format!("{what} {k:?}: {}", e.message));
                }
            }
        }
    }
    if !messages.is_empty() {
        errors.extend(messages.into_iter().map(|message| RuleError {
            location: location.clone(),
            message,
        }));
        return None;
    }
    Some(if alert.is_empty() {
        Rule::Recording(RecordingRule {
            record,
            expr,
            labels,
        })
    } else {
        Rule::Alerting(AlertingRule {
            alert,
            expr,
            for_ms,
            keep_firing_for_ms,
            labels,
            annotations,
        })
    })
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

/// The file as written back by [`render_rule_file`].
#[derive(Serialize)]
struct OutFile<'a> {
    groups: Vec<OutGroup<'a>>,
}

#[derive(Serialize)]
struct OutGroup<'a> {
    name: &'a str,
    interval: String,
    #[serde(skip_serializing_if = "is_zero")]
    limit: u64,
    rules: Vec<OutRule<'a>>,
}

#[derive(Serialize)]
struct OutRule<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<&'a str>,
    expr: &'a str,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    for_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_firing_for: Option<String>,
    #[serde(skip_serializing_if = "LabelSet::is_empty")]
    labels: &'a LabelSet,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<&'a LabelSet>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A duration field, left out when zero.
fn nonzero_duration(ms: i64) -> Option<String> {
    (ms != 0).then(|| format_duration(ms))
}

/// `render_rule_file` writes `groups` as a Prometheus rule file:
/// `interval` always, `limit`, `for`, `keep_firing_for`, `labels` and
/// `annotations` only when set, durations as [`format_duration`] writes
/// them. Parsing the result gives `groups` back.
pub fn render_rule_file(groups: &[RuleGroup]) -> String {
    let out = OutFile {
        groups: groups
            .iter()
            .map(|g| OutGroup {
                name: &g.name,
                interval: format_duration(g.interval_ms),
                limit: g.limit,
                rules: g
                    .rules
                    .iter()
                    .map(|r| match r {
                        Rule::Alerting(a) => OutRule {
                            alert: Some(&a.alert),
                            record: None,
                            expr: &a.expr,
                            for_: nonzero_duration(a.for_ms),
                            keep_firing_for: nonzero_duration(a.keep_firing_for_ms),
                            labels: &a.labels,
                            annotations: (!a.annotations.is_empty()).then_some(&a.annotations),
                        },
                        Rule::Recording(rec) => OutRule {
                            alert: None,
                            record: Some(&rec.record),
                            expr: &rec.expr,
                            for_: None,
                            keep_firing_for: None,
                            labels: &rec.labels,
                            annotations: None,
                        },
                    })
                    .collect(),
            })
            .collect(),
    };
    // Serialising plain strings, numbers and string maps cannot fail;
    // say so in the output rather than panic if it ever does.
    serde_norway::to_string(&out).unwrap_or_else(|e| format!("# cannot render rule file: {e}\n"))
}
