//! The alerting HTTP APIs on every node, over the control plane's
//! replicated alerting state (`raftwatch_control::alerting`):
//!
//! - Prometheus's `GET /api/v1/rules` and `GET /api/v1/alerts`, with the
//!   shapes of Prometheus's `web/api/v1/api.go` (`RuleDiscovery`,
//!   `AlertDiscovery`) inside `prom_api.rs`'s success and error envelopes.
//! - Alertmanager's API v2 (`/api/v2/status`, `/api/v2/silences`,
//!   `/api/v2/silence/<id>`, `/api/v2/alerts`, `/api/v2/alerts/groups`,
//!   `/api/v2/receivers`), so `amtool --alertmanager.url=http://HOST:PORT`
//!   works unchanged. Errors are Alertmanager's: the message as a JSON
//!   string body.
//!
//! Reads are at `consistency=linearizable` unless the request says
//! `consistency=stale`; writes go through `alerting_api.rs` (validated,
//! then one committed control command), after a linearizable read when
//! they name an existing silence.
//!
//! Where raftwatch departs from Prometheus: a rule's `query` is its
//! expression as written (Prometheus prints the parsed expression back);
//! every group's `file` is `raftwatch`; `group_limit` and
//! `group_next_token` are ignored (every group comes in one page, with no
//! `groupNextToken`); times are written in UTC.
//!
//! Where raftwatch departs from Alertmanager (v0.25–0.28):
//! - Only alerts of raftwatch's own rules exist: `POST /api/v2/alerts` is
//!   501 (raftwatch evaluates its rules itself and accepts no alerts from
//!   outside). The alerts listed are the firing ones, as Alertmanager
//!   holds the firing alerts Prometheus sends it; `startsAt` is when the
//!   alert fired, `endsAt` Prometheus's "valid until" (the latest
//!   evaluation that saw it plus 4 × max(interval, 1 m)), `updatedAt` that
//!   evaluation; no alert is ever `unprocessed`.
//! - A silence posted with the `id` of a live silence always replaces it
//!   with a new id (Alertmanager updates in place, keeping the id, when
//!   only the end, comment or creator change); with the id of an expired
//!   one, a new silence is made, as Alertmanager does. An unknown id is
//!   404.
//! - `DELETE /api/v2/silence/<id>` of an expired silence is 200
//!   (idempotent, as Alertmanager ≥ 0.25); of an unknown id 404 (as
//!   Alertmanager ≥ 0.27; older ones answer 500).
//! - A body that is not a valid silence is 400 (Alertmanager answers 422
//!   for a missing field); creator and comment must not be empty.
//! - Boolean parameters take `true`/`false` (and Go's `1`/`0`, `t`/`f`,
//!   `yes`/`no`, `on`/`off`); anything else is 400, where Alertmanager
//!   reads it as false.
//! - `versionInfo.version` is raftwatch's, so `amtool` warns that the
//!   versions differ (`--no-version-check` silences it); `cluster.peers`
//!   are the cluster's members (name: node id, address: HTTP address).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use raftwatch_alerting::LabelSet;
use raftwatch_alerting::amconfig::{self, AlertmanagerConfig, RouteMatch};
use raftwatch_alerting::matcher::{MatchOp, Matcher, parse_matcher};
use raftwatch_alerting::rules::Rule;
use raftwatch_alerting::webhook::{fingerprint, fingerprint_hex, parse_rfc3339_ms, rfc3339_ms};
use raftwatch_control::MemberState;
use raftwatch_control::alerting::{Alert, AlertStatus, AlertingState, Silence, SilenceState};
use raftwatch_raft::ReadConsistency;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tonic::{Code, Status};

use super::Node;
use super::alerting_api::{SilenceSpec, read_alerting};
use super::prom_api::{Params, consistency_param, format_value, respond_data};
use super::promql::QueryError;

/// `AM_BODY_BYTES_MAX` bounds an Alertmanager API request body (a
/// silence is at most 64 matchers and two 4 KiB texts).
const AM_BODY_BYTES_MAX: usize = 1 << 20;

/// Prometheus's default `--rules.alert.resend-delay`: an alert is valid
/// for 4 × max(this, the group's interval) after an evaluation saw it.
const RESEND_DELAY_MS: i64 = 60_000;

/// `RULE_FILE` is the `file` of every rule group: rules are applied over
/// the API, not read from files.
const RULE_FILE: &str = "raftwatch";

/// `routes` are the alerting endpoints.
pub(crate) fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/api/v1/rules", get(prom_rules))
        .route("/api/v1/alerts", get(prom_alerts))
        .route("/api/v2/status", get(am_status))
        .route("/api/v2/receivers", get(am_receivers))
        .route("/api/v2/silences", get(am_silences).post(am_post_silence))
        .route(
            "/api/v2/silence/{id}",
            get(am_silence).delete(am_delete_silence),
        )
        .route("/api/v2/alerts", get(am_alerts).post(am_post_alerts))
        .route("/api/v2/alerts/groups", get(am_alert_groups))
        .layer(DefaultBodyLimit::max(AM_BODY_BYTES_MAX))
}

// ---- Shared formatting ----

/// `go_float_e` is Go's `strconv.FormatFloat(f, 'e', -1, 64)`, which
/// Prometheus uses for an alert's `value`: the shortest mantissa, an
/// exponent with a sign and at least two digits (`1e+00`, `4.2e+01`,
/// `-2.5e-10`), and `NaN`, `+Inf`, `-Inf`.
fn go_float_e(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = format!("{f:e}");
    match s.split_once('e').map(|(m, e)| (m, e.parse::<i32>())) {
        Some((mantissa, Ok(exp))) => {
            let sign = if exp < 0 { '-' } else { '+' };
            format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
        }
        _ => s,
    }
}

/// `seconds` is a millisecond duration as a JSON number of seconds, as Go
/// encodes a `float64` (`60`, not `60.0`; `0.015`).
fn seconds(ms: i64) -> Json {
    if ms % 1000 == 0 {
        Json::from(ms / 1000)
    } else {
        // The shortest decimal that reads back as the same float, as Go's
        // encoder writes it (there are no exponents for ms / 1000).
        format_value(ms as f64 / 1000.0)
            .parse::<serde_json::Number>()
            .map(Json::Number)
            .unwrap_or(Json::Null)
    }
}

/// `go_time` is a Go `time.Time` as JSON writes it (RFC 3339 with
/// nanoseconds, trailing zeros trimmed), in UTC; `None` (never) is Go's
/// zero time `0001-01-01T00:00:00Z`.
fn go_time(ms: Option<i64>) -> String {
    rfc3339_ms(ms.unwrap_or(raftwatch_alerting::webhook::ZERO_TIME_MS))
}

/// `am_time` is a time as Alertmanager's API writes it (go-openapi's
/// `strfmt.DateTime`: RFC 3339 with exactly three fraction digits, UTC):
/// `2024-05-01T10:00:00.000Z`.
fn am_time(ms: i64) -> String {
    let whole = ms - ms.rem_euclid(1000);
    let text = rfc3339_ms(whole);
    let base = text.strip_suffix('Z').unwrap_or(&text);
    format!("{base}.{:03}Z", ms.rem_euclid(1000))
}

// ---- Prometheus: /api/v1/rules and /api/v1/alerts ----

/// `PromAlert` is Prometheus's `Alert` of the rules and alerts APIs.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PromAlert<'a> {
    labels: &'a LabelSet,
    annotations: &'a LabelSet,
    state: &'static str,
    active_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_firing_since: Option<String>,
    value: String,
}

impl<'a> PromAlert<'a> {
    fn new(a: &'a Alert) -> PromAlert<'a> {
        PromAlert {
            labels: &a.labels,
            annotations: &a.annotations,
            state: a.status.name(),
            active_at: go_time(Some(a.active_at_ms)),
            keep_firing_since: a.keep_firing_since_ms.map(|t| go_time(Some(t))),
            value: go_float_e(a.value),
        }
    }
}

/// Prometheus's `ActiveAlerts`: pending and firing, not resolved.
fn is_active(a: &Alert) -> bool {
    matches!(a.status, AlertStatus::Pending | AlertStatus::Firing)
}

/// `PromRule` is Prometheus's `AlertingRule` or `RecordingRule`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum PromRule<'a> {
    Alerting(PromAlertingRule<'a>),
    Recording(PromRecordingRule<'a>),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PromAlertingRule<'a> {
    state: &'static str,
    name: &'a str,
    query: &'a str,
    duration: Json,
    keep_firing_for: Json,
    labels: &'a LabelSet,
    annotations: &'a LabelSet,
    /// `None` with `exclude_alerts=true` (Prometheus writes `null`).
    alerts: Option<Vec<PromAlert<'a>>>,
    health: &'static str,
    #[serde(skip_serializing_if = "is_empty")]
    last_error: &'a str,
    evaluation_time: Json,
    last_evaluation: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PromRecordingRule<'a> {
    name: &'a str,
    query: &'a str,
    labels: &'a LabelSet,
    health: &'static str,
    #[serde(skip_serializing_if = "is_empty")]
    last_error: &'a str,
    evaluation_time: Json,
    last_evaluation: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PromRuleGroup<'a> {
    name: &'a str,
    file: &'static str,
    rules: Vec<PromRule<'a>>,
    interval: Json,
    limit: u64,
    evaluation_time: Json,
    last_evaluation: String,
}

/// `RulesFilter` is what `/api/v1/rules` was asked for.
#[derive(Debug, Default)]
struct RulesFilter {
    alerting: bool,
    recording: bool,
    rule_names: BTreeSet<String>,
    rule_groups: BTreeSet<String>,
    files: BTreeSet<String>,
    exclude_alerts: bool,
    /// `match[]`: a rule is kept when its labels match any set.
    label_sets: Vec<Vec<raftwatch_model::Matcher>>,
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

impl RulesFilter {
    /// `parse` reads `type`, `rule_name[]`, `rule_group[]`, `file[]`,
    /// `exclude_alerts` and `match[]` as Prometheus does.
    fn parse(p: &Params) -> Result<RulesFilter, QueryError> {
        let typ = p.get("type").to_ascii_lowercase();
        if !matches!(typ.as_str(), "" | "alert" | "record") {
            return Err(QueryError::bad_data(format!(
                "invalid parameter \"type\": not supported value {typ:?}"
            )));
        }
        let exclude = p.get("exclude_alerts").to_ascii_lowercase();
        let exclude_alerts = match exclude.as_str() {
            "" => false,
            v => go_parse_bool(v).ok_or_else(|| {
                QueryError::bad_data(format!(
                    "invalid parameter \"exclude_alerts\": error converting exclude_alerts: \
                     strconv.ParseBool: parsing {v:?}: invalid syntax"
                ))
            })?,
        };
        let mut label_sets = Vec::new();
        for text in p.all("match[]") {
            let set = raftwatch_promql::parse_metric_selector(text)
                .map_err(|e| QueryError::bad_data(e.to_string()))?;
            if set.iter().all(|m| m.matches_empty()) {
                return Err(QueryError::bad_data(
                    "match[] must contain at least one non-empty matcher",
                ));
            }
            label_sets.push(set);
        }
        let set = |name: &str| p.all(name).into_iter().map(str::to_string).collect();
        Ok(RulesFilter {
            alerting: typ != "record",
            recording: typ != "alert",
            rule_names: set("rule_name[]"),
            rule_groups: set("rule_group[]"),
            files: set("file[]"),
            exclude_alerts,
            label_sets,
        })
    }

    fn keeps_labels(&self, labels: &LabelSet) -> bool {
        self.label_sets.is_empty()
            || self.label_sets.iter().any(|set| {
                set.iter()
                    .all(|m| m.matches(labels.get(m.name()).map(String::as_str).unwrap_or("")))
            })
    }
}

/// `rules_data` is `/api/v1/rules`'s `data`: `{"groups":[...]}`; groups
/// whose rules were all filtered out are left out, as Prometheus does.
fn rules_data(state: &AlertingState, f: &RulesFilter) -> String {
    let mut groups = Vec::new();
    for (name, g) in &state.groups {
        if !f.rule_groups.is_empty() && !f.rule_groups.contains(name) {
            continue;
        }
        if !f.files.is_empty() && !f.files.contains(RULE_FILE) {
            continue;
        }
        let mut rules = Vec::new();
        for (rule, st) in g.group.rules.iter().zip(&g.rules) {
            if !f.rule_names.is_empty() && !f.rule_names.contains(rule.name()) {
                continue;
            }
            let labels = match rule {
                Rule::Alerting(r) => &r.labels,
                Rule::Recording(r) => &r.labels,
            };
            if !f.keeps_labels(labels) {
                continue;
            }
            match rule {
                Rule::Alerting(r) if f.alerting => {
                    // The rule's state is its most advanced active alert's.
                    let active: Vec<&Alert> = st.alerts.values().filter(|a| is_active(a)).collect();
                    let state_name = if active.iter().any(|a| a.status == AlertStatus::Firing) {
                        "firing"
                    } else if active.is_empty() {
                        "inactive"
                    } else {
                        "pending"
                    };
                    rules.push(PromRule::Alerting(PromAlertingRule {
                        state: state_name,
                        name: &r.alert,
                        query: &r.expr,
                        duration: seconds(r.for_ms),
                        keep_firing_for: seconds(r.keep_firing_for_ms),
                        labels: &r.labels,
                        annotations: &r.annotations,
                        alerts: (!f.exclude_alerts)
                            .then(|| active.into_iter().map(PromAlert::new).collect()),
                        health: st.health.name(),
                        last_error: &st.last_error,
                        evaluation_time: seconds(st.eval_duration_ms),
                        last_evaluation: go_time(st.last_eval_ms),
                        kind: "alerting",
                    }));
                }
                Rule::Recording(r) if f.recording => {
                    rules.push(PromRule::Recording(PromRecordingRule {
                        name: &r.record,
                        query: &r.expr,
                        labels: &r.labels,
                        health: st.health.name(),
                        last_error: &st.last_error,
                        evaluation_time: seconds(st.eval_duration_ms),
                        last_evaluation: go_time(st.last_eval_ms),
                        kind: "recording",
                    }));
                }
                _ => {}
            }
        }
        if rules.is_empty() {
            continue;
        }
        groups.push(PromRuleGroup {
            name,
            file: RULE_FILE,
            rules,
            interval: seconds(g.group.interval_ms),
            limit: g.group.limit,
            evaluation_time: seconds(g.eval_duration_ms),
            last_evaluation: go_time(g.last_eval_ms),
        });
    }
    to_json(&RuleDiscovery { groups })
}

/// Prometheus's `RuleDiscovery`.
#[derive(Debug, Serialize)]
struct RuleDiscovery<'a> {
    groups: Vec<PromRuleGroup<'a>>,
}

/// Prometheus's `AlertDiscovery`.
#[derive(Debug, Serialize)]
struct AlertDiscovery<'a> {
    alerts: Vec<PromAlert<'a>>,
}

/// `alerts_data` is `/api/v1/alerts`'s `data`: `{"alerts":[...]}`, the
/// pending and firing alerts of every alerting rule, in rule order.
fn alerts_data(state: &AlertingState) -> String {
    let alerts: Vec<PromAlert<'_>> = state
        .alerts()
        .map(|(_, _, a)| a)
        .filter(|a| is_active(a))
        .map(PromAlert::new)
        .collect();
    to_json(&AlertDiscovery { alerts })
}

fn is_empty(s: &&str) -> bool {
    s.is_empty()
}

fn to_json<T: Serialize + ?Sized>(v: &T) -> String {
    // Strings, numbers and maps with string keys always serialise.
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

async fn read_for_prometheus(
    node: &Arc<Node>,
    p: &Params,
) -> Result<(AlertingState, i64), QueryError> {
    let consistency = consistency_param(p)?;
    read_alerting(node, consistency)
        .await
        .map_err(|s| QueryError::from_status(&s))
}

/// `GET /api/v1/rules`.
async fn prom_rules(
    State(node): State<Arc<Node>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let p = Params::new(q.as_deref(), &headers, &body)?;
        let filter = RulesFilter::parse(&p)?;
        let (state, _) = read_for_prometheus(&node, &p).await?;
        Ok::<_, QueryError>(rules_data(&state, &filter))
    };
    respond_data(run.await)
}

/// `GET /api/v1/alerts`.
async fn prom_alerts(
    State(node): State<Arc<Node>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let p = Params::new(q.as_deref(), &headers, &body)?;
        let (state, _) = read_for_prometheus(&node, &p).await?;
        Ok::<_, QueryError>(alerts_data(&state))
    };
    respond_data(run.await)
}

// ---- Alertmanager API v2: responses and parameters ----

/// `AmError` is a failed Alertmanager API request: its HTTP status and
/// message (sent as a JSON string, as Alertmanager does).
#[derive(Debug, PartialEq, Eq)]
struct AmError {
    status: StatusCode,
    message: String,
}

impl AmError {
    fn bad_request(message: impl Into<String>) -> AmError {
        AmError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> AmError {
        AmError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// `from_status` maps an error of the node's alerting operations:
    /// invalid input 400; a silence that does not exist 404; another
    /// refused precondition 400; a retryable failure 503.
    fn from_status(s: &Status) -> AmError {
        let status = match s.code() {
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::FailedPrecondition if s.message().ends_with("not found") => StatusCode::NOT_FOUND,
            Code::FailedPrecondition | Code::AlreadyExists => StatusCode::BAD_REQUEST,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        AmError {
            status,
            message: s.message().to_string(),
        }
    }
}

impl IntoResponse for AmError {
    fn into_response(self) -> Response {
        am_json(self.status, &self.message)
    }
}

fn am_json<T: Serialize + ?Sized>(status: StatusCode, v: &T) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        to_json(v),
    )
        .into_response()
}

fn am_respond<T: Serialize>(r: Result<T, AmError>) -> Response {
    match r {
        Ok(v) => am_json(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

/// The query string's parameters (Alertmanager reads no form bodies).
fn am_params(q: Option<&str>) -> Result<Params, AmError> {
    Params::new(q, &HeaderMap::new(), b"").map_err(|e| AmError::bad_request(e.message))
}

fn am_consistency(p: &Params) -> Result<ReadConsistency, AmError> {
    consistency_param(p).map_err(|e| AmError::bad_request(e.message))
}

async fn am_read(node: &Arc<Node>, p: &Params) -> Result<(AlertingState, i64), AmError> {
    read_alerting(node, am_consistency(p)?)
        .await
        .map_err(|s| AmError::from_status(&s))
}

/// A boolean query parameter; absent or empty is `default`.
fn bool_param(p: &Params, name: &str, default: bool) -> Result<bool, AmError> {
    match p.get(name).to_ascii_lowercase().as_str() {
        "" => Ok(default),
        "true" | "1" | "t" | "yes" | "y" | "on" => Ok(true),
        "false" | "0" | "f" | "no" | "n" | "off" => Ok(false),
        other => Err(AmError::bad_request(format!(
            "{name} in query must be of type boolean: {other:?}"
        ))),
    }
}

/// `filter` parameters: matchers as `amtool` writes them.
fn filter_param(p: &Params) -> Result<Vec<Matcher>, AmError> {
    p.all("filter")
        .into_iter()
        .map(|text| parse_matcher(text).map_err(|e| AmError::bad_request(e.to_string())))
        .collect()
}

// ---- Alertmanager API v2: status and receivers ----

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AmStatus {
    cluster: ClusterStatus,
    config: ConfigStatus,
    uptime: String,
    version_info: VersionInfo,
}

#[derive(Debug, Serialize)]
struct ClusterStatus {
    name: String,
    peers: Vec<PeerStatus>,
    status: &'static str,
}

#[derive(Debug, Serialize)]
struct PeerStatus {
    address: String,
    name: String,
}

#[derive(Debug, Serialize)]
struct ConfigStatus {
    original: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionInfo {
    branch: &'static str,
    build_date: &'static str,
    build_user: &'static str,
    go_version: &'static str,
    revision: &'static str,
    version: &'static str,
}

fn config_of(state: &AlertingState) -> std::borrow::Cow<'_, AlertmanagerConfig> {
    match &state.config {
        Some(c) => std::borrow::Cow::Borrowed(c),
        None => std::borrow::Cow::Owned(amconfig::default_config()),
    }
}

/// `GET /api/v2/status`.
async fn am_status(State(node): State<Arc<Node>>, RawQuery(q): RawQuery) -> Response {
    let run = async {
        let p = am_params(q.as_deref())?;
        let (state, _) = am_read(&node, &p).await?;
        let mut peers: Vec<PeerStatus> = node
            .cached_state()
            .map(|s| {
                s.members
                    .values()
                    .filter(|m| m.state != MemberState::Removed)
                    .map(|m| PeerStatus {
                        address: if m.http_addr.is_empty() {
                            m.grpc_addr.clone()
                        } else {
                            m.http_addr.clone()
                        },
                        name: m.id.0.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok::<_, AmError>(AmStatus {
            cluster: ClusterStatus {
                name: node.id.0.to_string(),
                peers,
                status: "ready",
            },
            config: ConfigStatus {
                original: config_of(&state).original.clone(),
            },
            uptime: am_time(node.metrics.start_wall_ms()),
            version_info: VersionInfo {
                branch: "",
                build_date: "",
                build_user: "",
                go_version: "",
                revision: "",
                version: env!("CARGO_PKG_VERSION"),
            },
        })
    };
    am_respond(run.await)
}

#[derive(Clone, Debug, Serialize)]
struct ReceiverName {
    name: String,
}

/// `GET /api/v2/receivers`.
async fn am_receivers(State(node): State<Arc<Node>>, RawQuery(q): RawQuery) -> Response {
    let run = async {
        let p = am_params(q.as_deref())?;
        let (state, _) = am_read(&node, &p).await?;
        let names: Vec<ReceiverName> = config_of(&state)
            .receivers
            .iter()
            .map(|r| ReceiverName {
                name: r.name.clone(),
            })
            .collect();
        Ok::<_, AmError>(names)
    };
    am_respond(run.await)
}

// ---- Alertmanager API v2: silences ----

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GettableSilence<'a> {
    id: &'a str,
    status: SilenceStatus,
    updated_at: String,
    comment: &'a str,
    created_by: &'a str,
    ends_at: String,
    matchers: &'a [Matcher],
    starts_at: String,
}

#[derive(Debug, Serialize)]
struct SilenceStatus {
    state: &'static str,
}

impl<'a> GettableSilence<'a> {
    fn new(s: &'a Silence, now: i64) -> GettableSilence<'a> {
        GettableSilence {
            id: &s.id,
            status: SilenceStatus {
                state: s.state(now).name(),
            },
            updated_at: am_time(s.updated_at_ms),
            comment: &s.comment,
            created_by: &s.created_by,
            ends_at: am_time(s.ends_at_ms),
            matchers: &s.matchers,
            starts_at: am_time(s.starts_at_ms),
        }
    }
}

/// `list_silences` is `GET /api/v2/silences`: the silences having, for
/// every filter matcher, a matcher with the same name, operator and value
/// (Alertmanager's `CheckSilenceMatchesFilterLabels`), active ones first
/// (soonest end first), then pending (soonest start first), then expired
/// (latest end first).
fn list_silences<'a>(
    state: &'a AlertingState,
    now: i64,
    filter: &[Matcher],
) -> Vec<GettableSilence<'a>> {
    let order = |s: &Silence| match s.state(now) {
        SilenceState::Active => (1, s.ends_at_ms),
        SilenceState::Pending => (2, s.starts_at_ms),
        SilenceState::Expired => (3, -s.ends_at_ms),
    };
    let mut list: Vec<&Silence> = state
        .silences
        .values()
        .filter(|s| filter.iter().all(|f| s.matchers.contains(f)))
        .collect();
    list.sort_by_key(|s| order(s));
    list.into_iter()
        .map(|s| GettableSilence::new(s, now))
        .collect()
}

/// `GET /api/v2/silences`.
async fn am_silences(State(node): State<Arc<Node>>, RawQuery(q): RawQuery) -> Response {
    let run = async {
        let p = am_params(q.as_deref())?;
        let filter = filter_param(&p)?;
        let (state, now) = am_read(&node, &p).await?;
        Ok::<_, AmError>(to_json(&list_silences(&state, now, &filter)))
    };
    match run.await {
        Ok(body) => json_text(body),
        Err(e) => e.into_response(),
    }
}

fn json_text(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// `GET /api/v2/silence/<id>`.
async fn am_silence(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let run = async {
        let p = am_params(q.as_deref())?;
        let (state, now) = am_read(&node, &p).await?;
        let s = state
            .silences
            .get(&id)
            .ok_or_else(|| AmError::not_found(format!("silence {id} not found")))?;
        Ok::<_, AmError>(to_json(&GettableSilence::new(s, now)))
    };
    match run.await {
        Ok(body) => json_text(body),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /api/v2/silence/<id>`: expires the silence; 200 also when it
/// already was, 404 when there is no such silence.
async fn am_delete_silence(State(node): State<Arc<Node>>, Path(id): Path<String>) -> Response {
    let run = async {
        // Read first so an expired silence is a success rather than the
        // control state's refusal to expire it again.
        let (state, now) = read_alerting(&node, ReadConsistency::Linearizable)
            .await
            .map_err(|s| AmError::from_status(&s))?;
        match state.silences.get(&id) {
            None => return Err(AmError::not_found(format!("silence {id} not found"))),
            Some(s) if s.state(now) == SilenceState::Expired => return Ok(()),
            Some(_) => {}
        }
        match node.expire_silence(&id).await {
            Ok(()) => Ok::<_, AmError>(()),
            // It ended on its own between the read and the write.
            Err(s) if s.code() == Code::FailedPrecondition && s.message().ends_with("expired") => {
                Ok(())
            }
            Err(s) => Err(AmError::from_status(&s)),
        }
    };
    match run.await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `PostableSilence` as it arrives; matchers are checked one by one so a
/// bad one is named.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<PostableMatcher>,
    starts_at: String,
    ends_at: String,
    created_by: String,
    comment: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableMatcher {
    name: String,
    value: String,
    is_regex: bool,
    /// Absent in Alertmanager < 0.22 clients: `true`.
    #[serde(default)]
    is_equal: Option<bool>,
}

/// `parse_postable` checks a posted silence as Alertmanager does before
/// storing it: a valid body, valid matchers, a start before the end, an
/// end not in the past (`now_ms`). Returns the id to replace (if any) and
/// the silence.
fn parse_postable(body: &[u8], now_ms: i64) -> Result<(Option<String>, SilenceSpec), AmError> {
    let p: PostableSilence = serde_json::from_slice(body)
        .map_err(|e| AmError::bad_request(format!("invalid silence: {e}")))?;
    let matchers = p
        .matchers
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let op = match (m.is_regex, m.is_equal.unwrap_or(true)) {
                (false, true) => MatchOp::Eq,
                (false, false) => MatchOp::Ne,
                (true, true) => MatchOp::Re,
                (true, false) => MatchOp::Nre,
            };
            Matcher::new(m.name, op, m.value)
                .map_err(|e| AmError::bad_request(format!("invalid label matcher {i}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let time = |name: &str, text: &str| {
        parse_rfc3339_ms(text).map_err(|e| AmError::bad_request(format!("invalid {name}: {e}")))
    };
    let starts = time("startsAt", &p.starts_at)?;
    let ends = time("endsAt", &p.ends_at)?;
    if starts >= ends {
        return Err(AmError::bad_request(
            "Failed to create silence: start time must be before end time",
        ));
    }
    if ends < now_ms {
        return Err(AmError::bad_request(
            "Failed to create silence: end time can't be in the past",
        ));
    }
    let spec = SilenceSpec {
        matchers,
        starts_at_ms: Some(starts),
        ends_at_ms: ends,
        created_by: p.created_by,
        comment: p.comment,
        replaces: None,
    };
    Ok((p.id.filter(|id| !id.is_empty()), spec))
}

#[derive(Debug, Serialize)]
struct PostSilenceOk {
    #[serde(rename = "silenceID")]
    silence_id: String,
}

/// `POST /api/v2/silences`: creates a silence, or replaces the one named
/// by `id`; answers `{"silenceID": ...}`.
async fn am_post_silence(State(node): State<Arc<Node>>, body: Bytes) -> Response {
    let run = async {
        let (id, mut spec) = parse_postable(&body, node.clock.now_wall().0)?;
        if let Some(id) = id {
            let (state, now) = read_alerting(&node, ReadConsistency::Linearizable)
                .await
                .map_err(|s| AmError::from_status(&s))?;
            match state.silences.get(&id) {
                None => return Err(AmError::not_found(format!("silence {id} not found"))),
                // Alertmanager makes a new silence in place of an expired one.
                Some(s) if s.state(now) == SilenceState::Expired => {}
                Some(_) => spec.replaces = Some(id),
            }
        }
        let silence_id = node
            .add_silence(spec)
            .await
            .map_err(|s| AmError::from_status(&s))?;
        Ok::<_, AmError>(PostSilenceOk { silence_id })
    };
    am_respond(run.await)
}

// ---- Alertmanager API v2: alerts ----

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GettableAlert {
    annotations: LabelSet,
    ends_at: String,
    fingerprint: String,
    receivers: Vec<ReceiverName>,
    starts_at: String,
    status: AmAlertStatus,
    updated_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "String::is_empty")]
    generator_url: String,
    labels: LabelSet,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AmAlertStatus {
    inhibited_by: Vec<String>,
    silenced_by: Vec<String>,
    state: &'static str,
}

#[derive(Debug, Serialize)]
struct AlertGroup {
    alerts: Vec<GettableAlert>,
    labels: LabelSet,
    receiver: ReceiverName,
}

/// `AlertFilter` is what `/api/v2/alerts` and `/api/v2/alerts/groups`
/// were asked for.
#[derive(Debug)]
struct AlertFilter {
    matchers: Vec<Matcher>,
    active: bool,
    silenced: bool,
    inhibited: bool,
    /// `receiver`: anchored regex, as `^(?:...)$`.
    receiver: Option<Matcher>,
}

impl AlertFilter {
    fn parse(p: &Params) -> Result<AlertFilter, AmError> {
        let receiver = match p.get("receiver") {
            "" => None,
            re => Some(Matcher::new("receiver", MatchOp::Re, re).map_err(|e| {
                AmError::bad_request(format!("failed to parse receiver param: {e}"))
            })?),
        };
        // No alert is ever unprocessed; the parameter is still checked.
        bool_param(p, "unprocessed", true)?;
        Ok(AlertFilter {
            matchers: filter_param(p)?,
            active: bool_param(p, "active", true)?,
            silenced: bool_param(p, "silenced", true)?,
            inhibited: bool_param(p, "inhibited", true)?,
            receiver,
        })
    }

    fn receiver_ok(&self, name: &str) -> bool {
        self.receiver.as_ref().is_none_or(|m| {
            let mut l = LabelSet::new();
            l.insert("receiver".into(), name.into());
            m.matches(&l)
        })
    }

    /// Alertmanager's `alertFilter`: state flags, then the filter
    /// matchers, where a matcher with an empty value also accepts an
    /// absent label (`=`/`=~`) or rejects only a present one (`!=`/`!~`)
    /// (`matchFilterLabels`).
    fn keeps(&self, a: &GettableAlert) -> bool {
        let suppressed = a.status.state == "suppressed";
        if !self.active && !suppressed {
            return false;
        }
        if !self.silenced && !a.status.silenced_by.is_empty() {
            return false;
        }
        if !self.inhibited && !a.status.inhibited_by.is_empty() {
            return false;
        }
        self.matchers.iter().all(|m| {
            let present = a.labels.contains_key(&m.name);
            let negative = matches!(m.op, MatchOp::Ne | MatchOp::Nre);
            if m.value.is_empty() && present == negative {
                return true;
            }
            m.matches(&a.labels)
        })
    }
}

/// `firing_alerts` are the alerts Alertmanager would hold, each with the
/// routes it takes, by fingerprint.
fn firing_alerts<'c>(
    state: &AlertingState,
    config: &'c AlertmanagerConfig,
    now: i64,
) -> Vec<(GettableAlert, Vec<RouteMatch<'c>>)> {
    let firing = state.firing();
    let mut out: Vec<(GettableAlert, Vec<RouteMatch<'c>>)> = state
        .alerts()
        .filter(|(_, _, a)| a.status == AlertStatus::Firing)
        .map(|(group, _, a)| {
            let interval = state.groups.get(group).map_or(0, |g| g.group.interval_ms);
            let routes = config.route_alert(&a.labels);
            let silenced_by = state.silenced_by(&a.labels, now);
            // Alertmanager records the first inhibiting alert found.
            let inhibited_by: Vec<String> = config
                .inhibit_rules
                .iter()
                .find_map(|r| r.inhibiting_source(&a.labels, &firing))
                .map(|source| fingerprint_hex(fingerprint(source)))
                .into_iter()
                .collect();
            let suppressed = !silenced_by.is_empty() || !inhibited_by.is_empty();
            let alert = GettableAlert {
                annotations: a.annotations.clone(),
                ends_at: am_time(a.last_seen_ms + 4 * interval.max(RESEND_DELAY_MS)),
                fingerprint: fingerprint_hex(fingerprint(&a.labels)),
                receivers: routes
                    .iter()
                    .map(|r| ReceiverName {
                        name: r.route.receiver.clone(),
                    })
                    .collect(),
                starts_at: am_time(a.fired_at_ms.unwrap_or(a.active_at_ms)),
                status: AmAlertStatus {
                    inhibited_by,
                    silenced_by,
                    state: if suppressed { "suppressed" } else { "active" },
                },
                updated_at: am_time(a.last_seen_ms),
                generator_url: String::new(),
                labels: a.labels.clone(),
            };
            (alert, routes)
        })
        .collect();
    out.sort_by(|a, b| a.0.fingerprint.cmp(&b.0.fingerprint));
    out
}

/// `list_alerts` is `GET /api/v2/alerts`: the firing alerts that pass
/// the filter and go to a receiver it accepts, by fingerprint.
fn list_alerts(state: &AlertingState, now: i64, f: &AlertFilter) -> Vec<GettableAlert> {
    let config = config_of(state);
    firing_alerts(state, &config, now)
        .into_iter()
        .filter(|(a, _)| a.receivers.iter().any(|r| f.receiver_ok(&r.name)) && f.keeps(a))
        .map(|(a, _)| a)
        .collect()
}

/// `list_groups` is `GET /api/v2/alerts/groups`: the alerts of
/// [`list_alerts`] by aggregation group (route and `group_by` values),
/// groups ordered by labels then receiver, alerts by fingerprint.
fn list_groups(state: &AlertingState, now: i64, f: &AlertFilter) -> Vec<AlertGroup> {
    let config = config_of(state);
    let mut groups: BTreeMap<(String, String), AlertGroup> = BTreeMap::new();
    for (alert, routes) in firing_alerts(state, &config, now) {
        if !f.keeps(&alert) {
            continue;
        }
        for r in routes {
            if !f.receiver_ok(&r.route.receiver) {
                continue;
            }
            let key = (
                amconfig::format_label_set(&r.group_labels),
                format!("{}|{}|{}", r.route.receiver, r.route.id, r.group_key),
            );
            groups
                .entry(key)
                .or_insert_with(|| AlertGroup {
                    alerts: Vec::new(),
                    labels: r.group_labels.clone(),
                    receiver: ReceiverName {
                        name: r.route.receiver.clone(),
                    },
                })
                .alerts
                .push(alert.clone());
        }
    }
    groups.into_values().collect()
}

/// `GET /api/v2/alerts`.
async fn am_alerts(State(node): State<Arc<Node>>, RawQuery(q): RawQuery) -> Response {
    let run = async {
        let p = am_params(q.as_deref())?;
        let filter = AlertFilter::parse(&p)?;
        let (state, now) = am_read(&node, &p).await?;
        Ok::<_, AmError>(list_alerts(&state, now, &filter))
    };
    am_respond(run.await)
}

/// `GET /api/v2/alerts/groups`.
async fn am_alert_groups(State(node): State<Arc<Node>>, RawQuery(q): RawQuery) -> Response {
    let run = async {
        let p = am_params(q.as_deref())?;
        let filter = AlertFilter::parse(&p)?;
        let (state, now) = am_read(&node, &p).await?;
        Ok::<_, AmError>(list_groups(&state, now, &filter))
    };
    am_respond(run.await)
}

/// `POST_ALERTS_REFUSAL` is the answer to alerts pushed from outside.
const POST_ALERTS_REFUSAL: &str = "raftwatch does not accept alerts: it evaluates its own \
     alerting rules (apply them with `raftwatchctl rules apply -f FILE`); do not list \
     raftwatch as an Alertmanager in Prometheus's `alerting` configuration";

/// `POST /api/v2/alerts`: 501, see [`POST_ALERTS_REFUSAL`].
async fn am_post_alerts() -> Response {
    AmError {
        status: StatusCode::NOT_IMPLEMENTED,
        message: POST_ALERTS_REFUSAL.into(),
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use raftwatch_alerting::amconfig::parse_config;
    use raftwatch_alerting::rules::parse_rule_file;
    use raftwatch_control::alerting::{RuleHealth, RuleState, StoredGroup};

    use super::*;

    const NOW: i64 = 1_700_000_100_000;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn alert(status: AlertStatus, pairs: &[(&str, &str)], value: f64) -> Alert {
        Alert {
            labels: labels(pairs),
            annotations: labels(&[("summary", "disk full")]),
            status,
            active_at_ms: 1_700_000_000_000,
            fired_at_ms: (status == AlertStatus::Firing).then_some(1_700_000_060_500),
            resolved_at_ms: None,
            keep_firing_since_ms: None,
            value,
            last_seen_ms: 1_700_000_090_000,
        }
    }

    /// Group `g` (interval 30 s): alerting rule `DiskFull` with a firing
    /// alert on `a` and a pending one on `b`, and a recording rule.
    fn state() -> AlertingState {
        let file = parse_rule_file(
            "groups:\n\
             - name: g\n  interval: 30s\n  rules:\n\
             \x20 - alert: DiskFull\n    expr: disk > 90\n    for: 1m\n\
             \x20   labels:\n      severity: page\n\
             \x20   annotations:\n      summary: disk full\n\
             \x20 - record: job:disk:max\n    expr: max by (job) (disk)\n",
        )
        .unwrap();
        let group = file.groups.into_iter().next().unwrap();
        let firing = alert(
            AlertStatus::Firing,
            &[
                ("alertname", "DiskFull"),
                ("instance", "a"),
                ("severity", "page"),
            ],
            95.5,
        );
        let pending = alert(
            AlertStatus::Pending,
            &[
                ("alertname", "DiskFull"),
                ("instance", "b"),
                ("severity", "page"),
            ],
            91.0,
        );
        let alerting = RuleState {
            health: RuleHealth::Ok,
            last_error: String::new(),
            last_eval_ms: Some(1_700_000_090_000),
            eval_duration_ms: 15,
            alerts: [firing, pending]
                .into_iter()
                .map(|a| (fingerprint_hex(fingerprint(&a.labels)), a))
                .collect(),
        };
        let recording = RuleState {
            health: RuleHealth::Err,
            last_error: "boom".into(),
            last_eval_ms: None,
            eval_duration_ms: 0,
            alerts: BTreeMap::new(),
        };
        let mut s = AlertingState::default();
        s.groups.insert(
            "g".into(),
            StoredGroup {
                group,
                version: 3,
                last_eval_ms: Some(1_700_000_090_000),
                eval_duration_ms: 1_250,
                rules: vec![alerting, recording],
            },
        );
        s
    }

    fn params(q: &str) -> Params {
        Params::new(Some(q), &HeaderMap::new(), b"").unwrap()
    }

    #[test]
    fn alert_values_are_formatted_as_go_formats_them_with_e() {
        for (v, want) in [
            (1.0, "1e+00"),
            (42.0, "4.2e+01"),
            (0.5, "5e-01"),
            (0.0, "0e+00"),
            (-2.5e-10, "-2.5e-10"),
            (1e100, "1e+100"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(go_float_e(v), want, "{v}");
        }
    }

    #[test]
    fn times_and_durations_are_written_as_go_writes_them() {
        assert_eq!(am_time(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
        assert_eq!(am_time(1_700_000_000_120), "2023-11-14T22:13:20.120Z");
        assert_eq!(am_time(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(go_time(Some(1_700_000_000_120)), "2023-11-14T22:13:20.12Z");
        assert_eq!(go_time(None), "0001-01-01T00:00:00Z");
        assert_eq!(to_json(&seconds(60_000)), "60");
        assert_eq!(to_json(&seconds(15)), "0.015");
        assert_eq!(to_json(&seconds(1_250)), "1.25");
    }

    #[test]
    fn rules_have_prometheus_shapes() {
        let data = rules_data(&state(), &RulesFilter::parse(&params("")).unwrap());
        let want = serde_json::json!({"groups": [{
            "name": "g",
            "file": "raftwatch",
            "rules": [
                {
                    "state": "firing",
                    "name": "DiskFull",
                    "query": "disk > 90",
                    "duration": 60,
                    "keepFiringFor": 0,
                    "labels": {"severity": "page"},
                    "annotations": {"summary": "disk full"},
                    "alerts": [
                        {
                            "labels": {"alertname": "DiskFull", "instance": "a", "severity": "page"},
                            "annotations": {"summary": "disk full"},
                            "state": "firing",
                            "activeAt": "2023-11-14T22:13:20Z",
                            "value": "9.55e+01"
                        },
                        {
                            "labels": {"alertname": "DiskFull", "instance": "b", "severity": "page"},
                            "annotations": {"summary": "disk full"},
                            "state": "pending",
                            "activeAt": "2023-11-14T22:13:20Z",
                            "value": "9.1e+01"
                        }
                    ],
                    "health": "ok",
                    "evaluationTime": 0.015,
                    "lastEvaluation": "2023-11-14T22:14:50Z",
                    "type": "alerting"
                },
                {
                    "name": "job:disk:max",
                    "query": "max by (job) (disk)",
                    "labels": {},
                    "health": "err",
                    "lastError": "boom",
                    "evaluationTime": 0,
                    "lastEvaluation": "0001-01-01T00:00:00Z",
                    "type": "recording"
                }
            ],
            "interval": 30,
            "limit": 0,
            "evaluationTime": 1.25,
            "lastEvaluation": "2023-11-14T22:14:50Z"
        }]});
        let got: Json = serde_json::from_str(&data).unwrap();
        // The alerts' order is the fingerprints'; compare as sets.
        let mut got_sorted = got.clone();
        let alerts = got_sorted["groups"][0]["rules"][0]["alerts"]
            .as_array_mut()
            .unwrap();
        alerts.sort_by_key(|a| a["labels"]["instance"].as_str().unwrap().to_string());
        assert_eq!(got_sorted, want, "{data}");
        // Exact bytes for numbers: Go writes 60, not 60.0.
        assert!(data.contains(r#""duration":60,"#), "{data}");
        assert!(data.contains(r#""interval":30,"#), "{data}");
    }

    #[test]
    fn rules_are_filtered_by_type_name_group_and_labels() {
        let s = state();
        let names = |q: &str| -> Vec<String> {
            let data = rules_data(&s, &RulesFilter::parse(&params(q)).unwrap());
            let v: Json = serde_json::from_str(&data).unwrap();
            v["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["rules"].as_array().unwrap().clone())
                .map(|r| r["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names(""), ["DiskFull", "job:disk:max"]);
        assert_eq!(names("type=alert"), ["DiskFull"]);
        assert_eq!(names("type=RECORD"), ["job:disk:max"]);
        assert_eq!(names("rule_name[]=job:disk:max"), ["job:disk:max"]);
        assert!(names("rule_group[]=other").is_empty());
        assert_eq!(names("rule_group[]=g&rule_name[]=DiskFull"), ["DiskFull"]);
        assert_eq!(names("file[]=raftwatch&type=alert"), ["DiskFull"]);
        assert_eq!(names("match[]=%7Bseverity%3D%22page%22%7D"), ["DiskFull"]);
        // A group left empty by the filters is left out.
        let data = rules_data(&s, &RulesFilter::parse(&params("rule_name[]=x")).unwrap());
        assert_eq!(data, r#"{"groups":[]}"#);
        // exclude_alerts: `alerts` is null.
        let data = rules_data(
            &s,
            &RulesFilter::parse(&params("exclude_alerts=true")).unwrap(),
        );
        assert!(data.contains(r#""alerts":null"#), "{data}");
        for bad in [
            "type=alerts",
            "exclude_alerts=maybe",
            "match[]=%7B%7D",
            "match[]=x%7B",
        ] {
            let e = RulesFilter::parse(&params(bad)).unwrap_err();
            assert_eq!(e.typ, super::super::promql::ErrorType::BadData, "{bad}");
        }
    }

    #[test]
    fn alerts_list_pending_and_firing_only() {
        let mut s = state();
        if let Some(g) = s.groups.get_mut("g") {
            let mut resolved = alert(AlertStatus::Inactive, &[("alertname", "DiskFull")], 1.0);
            resolved.resolved_at_ms = Some(NOW);
            resolved.keep_firing_since_ms = None;
            g.rules[0].alerts.insert("zz".into(), resolved);
        }
        let v: Json = serde_json::from_str(&alerts_data(&s)).unwrap();
        let states: BTreeSet<&str> = v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["state"].as_str().unwrap())
            .collect();
        assert_eq!(v["alerts"].as_array().unwrap().len(), 2);
        assert_eq!(states, BTreeSet::from(["firing", "pending"]));
        assert_eq!(alerts_data(&AlertingState::default()), r#"{"alerts":[]}"#);
    }

    fn silence(id: &str, m: &str, starts: i64, ends: i64) -> Silence {
        Silence {
            id: id.into(),
            matchers: vec![parse_matcher(m).unwrap()],
            starts_at_ms: starts,
            ends_at_ms: ends,
            created_by: "me".into(),
            comment: "c".into(),
            updated_at_ms: starts,
        }
    }

    #[test]
    fn silences_have_alertmanager_shapes_order_and_filter() {
        let mut s = state();
        for sil in [
            silence("a-late", "alertname=DiskFull", NOW - 10, NOW + 2_000),
            silence("a-soon", "instance=~\"a|b\"", NOW - 10, NOW + 1_000),
            silence("pending", "alertname=DiskFull", NOW + 500, NOW + 9_000),
            silence("expired-old", "alertname=X", NOW - 9_000, NOW - 5_000),
            silence("expired-new", "alertname=X", NOW - 9_000, NOW - 1_000),
        ] {
            s.silences.insert(sil.id.clone(), sil);
        }
        let ids = |filter: &[&str]| -> Vec<String> {
            let f: Vec<Matcher> = filter.iter().map(|m| parse_matcher(m).unwrap()).collect();
            list_silences(&s, NOW, &f)
                .iter()
                .map(|g| g.id.to_string())
                .collect()
        };
        assert_eq!(
            ids(&[]),
            ["a-soon", "a-late", "pending", "expired-new", "expired-old"]
        );
        // Filters compare matchers, not label values.
        assert_eq!(ids(&["alertname=\"DiskFull\""]), ["a-late", "pending"]);
        assert_eq!(ids(&["instance=~\"a|b\""]), ["a-soon"]);
        assert!(ids(&["instance=a"]).is_empty());
        let one = to_json(&list_silences(&s, NOW, &[])[0]);
        assert_eq!(
            one,
            r#"{"id":"a-soon","status":{"state":"active"},"updatedAt":"2023-11-14T22:14:59.990Z","comment":"c","createdBy":"me","endsAt":"2023-11-14T22:15:01.000Z","matchers":[{"name":"instance","value":"a|b","isRegex":true,"isEqual":true}],"startsAt":"2023-11-14T22:14:59.990Z"}"#
        );
    }

    #[test]
    fn posted_silences_are_checked_as_alertmanager_checks_them() {
        let body = |starts: &str, ends: &str, matchers: &str| {
            format!(
                r#"{{"matchers":{matchers},"startsAt":"{starts}","endsAt":"{ends}","createdBy":"me","comment":"why"}}"#
            )
        };
        let ok = r#"[{"name":"alertname","value":"X","isRegex":false,"isEqual":true},{"name":"job","value":"a.*","isRegex":true}]"#;
        let (id, spec) = parse_postable(
            body("2023-11-14T22:15:00Z", "2023-11-14T23:15:00.5Z", ok).as_bytes(),
            NOW,
        )
        .unwrap();
        assert_eq!(id, None);
        assert_eq!(spec.starts_at_ms, Some(1_700_000_100_000));
        assert_eq!(spec.ends_at_ms, 1_700_003_700_500);
        assert_eq!(spec.matchers[1].op, MatchOp::Re);
        assert_eq!(spec.created_by, "me");
        let with_id = r#"{"id":"x-1","matchers":[{"name":"a","value":"b","isRegex":false}],"startsAt":"2023-11-14T22:15:00Z","endsAt":"2023-11-14T23:15:00Z","createdBy":"me","comment":"why"}"#;
        assert_eq!(
            parse_postable(with_id.as_bytes(), NOW)
                .unwrap()
                .0
                .as_deref(),
            Some("x-1")
        );
        let bad_regex = r#"[{"name":"job","value":"(","isRegex":true,"isEqual":true}]"#;
        let cases = [
            ("not json".to_string(), "invalid silence"),
            (r#"{"matchers":[]}"#.to_string(), "invalid silence"),
            (
                body("2023-11-14T22:15:00Z", "2023-11-14T23:15:00Z", bad_regex),
                "invalid label matcher 0",
            ),
            (
                body("yesterday", "2023-11-14T23:15:00Z", ok),
                "invalid startsAt",
            ),
            (
                body("2023-11-14T23:15:00Z", "2023-11-14T22:15:00Z", ok),
                "start time must be before end time",
            ),
            (
                body("2023-11-14T20:15:00Z", "2023-11-14T21:15:00Z", ok),
                "end time can't be in the past",
            ),
        ];
        for (body, want) in cases {
            let e = parse_postable(body.as_bytes(), NOW).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body}");
            assert!(e.message.contains(want), "{body}: {}", e.message);
        }
    }

    #[test]
    fn alertmanager_errors_map_to_its_http_codes() {
        let code = |s: Status| AmError::from_status(&s).status;
        assert_eq!(
            code(Status::invalid_argument("bad")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            code(Status::failed_precondition("silence x not found")),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            code(Status::failed_precondition("version mismatch")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            code(Status::unavailable("no leader")),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            code(Status::internal("bug")),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn alerts_have_alertmanager_shapes_receivers_and_status() {
        let mut s = state();
        s.config = Some(
            parse_config(
                "route:\n  receiver: default\n  routes:\n\
                 \x20   - receiver: pager\n      matchers: ['severity=\"page\"']\n      continue: true\n\
                 \x20   - receiver: team\n      matchers: ['instance=\"a\"']\n\
                 receivers:\n  - name: default\n  - name: pager\n  - name: team\n",
            )
            .unwrap(),
        );
        let f = |q: &str| AlertFilter::parse(&params(q)).unwrap();
        let all = list_alerts(&s, NOW, &f(""));
        // Only the firing alert: Alertmanager never sees pending ones.
        assert_eq!(all.len(), 1);
        let v: Json = serde_json::from_str(&to_json(&all)).unwrap();
        let fp = fingerprint_hex(fingerprint(&labels(&[
            ("alertname", "DiskFull"),
            ("instance", "a"),
            ("severity", "page"),
        ])));
        assert_eq!(
            v,
            serde_json::json!([{
                "annotations": {"summary": "disk full"},
                // The latest evaluation + 4 × max(30 s, 1 m).
                "endsAt": "2023-11-14T22:18:50.000Z",
                "fingerprint": fp,
                "receivers": [{"name": "pager"}, {"name": "team"}],
                "startsAt": "2023-11-14T22:14:20.500Z",
                "status": {"inhibitedBy": [], "silencedBy": [], "state": "active"},
                "updatedAt": "2023-11-14T22:14:50.000Z",
                "labels": {"alertname": "DiskFull", "instance": "a", "severity": "page"}
            }])
        );
        assert_eq!(list_alerts(&s, NOW, &f("receiver=tea.")).len(), 1);
        assert!(list_alerts(&s, NOW, &f("receiver=default")).is_empty());
        assert_eq!(
            list_alerts(&s, NOW, &f("filter=instance%3D%22a%22")).len(),
            1
        );
        assert!(list_alerts(&s, NOW, &f("filter=instance%3D%22b%22")).is_empty());
        // An empty value accepts an absent label.
        assert_eq!(list_alerts(&s, NOW, &f("filter=team%3D%22%22")).len(), 1);

        // Silenced: suppressed, and hidden with silenced=false.
        let sil = silence("s1", "instance=a", NOW - 1, NOW + 1_000);
        s.silences.insert(sil.id.clone(), sil);
        let all = list_alerts(&s, NOW, &f(""));
        assert_eq!(all[0].status.state, "suppressed");
        assert_eq!(all[0].status.silenced_by, ["s1"]);
        assert!(list_alerts(&s, NOW, &f("silenced=false")).is_empty());
        assert_eq!(list_alerts(&s, NOW, &f("active=false")).len(), 1);
        // Groups: one per route the alert takes.
        let groups = list_groups(&s, NOW, &f(""));
        let receivers: Vec<&str> = groups.iter().map(|g| g.receiver.name.as_str()).collect();
        assert_eq!(receivers, ["pager", "team"]);
        assert_eq!(list_groups(&s, NOW, &f("receiver=pager")).len(), 1);

        for bad in ["receiver=(", "silenced=maybe", "filter=%3D%3D"] {
            let e = AlertFilter::parse(&params(bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn inhibited_alerts_name_the_inhibiting_alert() {
        let mut s = state();
        // A second firing alert, critical, inhibits warnings of the same
        // instance.
        if let Some(g) = s.groups.get_mut("g") {
            let crit = alert(
                AlertStatus::Firing,
                &[
                    ("alertname", "Down"),
                    ("instance", "a"),
                    ("severity", "critical"),
                ],
                1.0,
            );
            g.rules[0]
                .alerts
                .insert(fingerprint_hex(fingerprint(&crit.labels)), crit);
        }
        s.config = Some(
            parse_config(
                "route:\n  receiver: default\nreceivers:\n  - name: default\n\
                 inhibit_rules:\n  - source_matchers: ['severity=\"critical\"']\n\
                 \x20   target_matchers: ['severity=\"page\"']\n    equal: [instance]\n",
            )
            .unwrap(),
        );
        let all = list_alerts(&s, NOW, &AlertFilter::parse(&params("")).unwrap());
        let page = all.iter().find(|a| a.labels["severity"] == "page").unwrap();
        let crit_fp = fingerprint_hex(fingerprint(&labels(&[
            ("alertname", "Down"),
            ("instance", "a"),
            ("severity", "critical"),
        ])));
        assert_eq!(page.status.inhibited_by, [crit_fp]);
        assert_eq!(page.status.state, "suppressed");
        assert!(
            list_alerts(
                &s,
                NOW,
                &AlertFilter::parse(&params("inhibited=false")).unwrap()
            )
            .iter()
            .all(|a| a.labels["severity"] == "critical")
        );
    }
}
