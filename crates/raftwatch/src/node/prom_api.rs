//! The Prometheus HTTP query API on every node: `/api/v1/query`,
//! `/api/v1/query_range`, `/api/v1/series`, `/api/v1/labels`,
//! `/api/v1/label/<name>/values`, `/api/v1/status/buildinfo` and
//! `/api/v1/metadata`, by GET with a query string or POST with a
//! `application/x-www-form-urlencoded` body, as Prometheus's
//! `web/api/v1/api.go` takes them and with its JSON shapes:
//!
//! - success: `{"status":"success","data":...,"warnings":[...],"infos":[...]}`
//!   (empty warnings and infos left out; at most 10 of each, then "N more
//!   warning annotations omitted");
//! - failure: `{"status":"error","errorType":"...","error":"..."}` with 400
//!   (`bad_data`), 422 (`execution`), 503 (`timeout`, and `unavailable`:
//!   a shard could not answer, so a retry can succeed), 500 (`internal`);
//! - sample values as strings (`"NaN"`, `"+Inf"`, Go's shortest decimal),
//!   timestamps as seconds with up to three decimals, exactly as
//!   Prometheus writes them.
//!
//! One parameter is ours: `consistency=linearizable|stale` (default
//! linearizable; anything else is `bad_data`). Every read names its
//! consistency and is never served at a weaker one. How a query was served
//! goes in response headers, where Prometheus's JSON has no room:
//! `X-Raftwatch-Consistency`, `X-Raftwatch-Min-Applied-Index` and
//! `X-Raftwatch-Max-Lag-Entries` (see `ReadInfo` in the gRPC API).
//!
//! PromQL queries are planned, fetched and evaluated by `promql.rs`; the
//! series and label endpoints use the shard-side queries of `query.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use raftwatch_model::MatchOp;
use raftwatch_promql::{Labels, Value};
use raftwatch_proto::v1 as pb;
use raftwatch_raft::ReadConsistency;

use super::Node;
use super::promql::{self, QueryError, Times};

/// Annotations of each kind listed in an answer (Prometheus's
/// `AsStrings(query, 10, 10)`).
const ANNOTATIONS_LISTED_MAX: usize = 10;

/// Prometheus's maximum resolution of a range query.
const RANGE_STEPS_MAX: i64 = raftwatch_promql::RANGE_STEPS_MAX;

/// Prometheus's `MinTime` and `MaxTime` as RFC 3339 (clients send them for
/// "unbounded"; Go's parser cannot read their years) and in ms.
const MIN_TIME_TEXT: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_TEXT: &str = "292277025-08-18T07:12:54.999999999Z";
const MIN_TIME_MS: i64 = -9_223_309_901_257_974_000;
const MAX_TIME_MS: i64 = 9_223_309_901_257_974_999;

// ---- Responses ----

/// `Outcome` is a handler's result: the JSON `data`, the warnings and
/// infos, and how the read was served.
struct Outcome {
    data: String,
    warnings: Vec<String>,
    infos: Vec<String>,
    read: Option<pb::ReadInfo>,
}

fn success(o: Outcome) -> Response {
    let mut body = String::with_capacity(o.data.len() + 64);
    body.push_str(r#"{"status":"success","data":"#);
    body.push_str(&o.data);
    for (key, list, what) in [
        ("warnings", o.warnings, "warning"),
        ("infos", o.infos, "info"),
    ] {
        if list.is_empty() {
            continue;
        }
        let omitted = list.len().saturating_sub(ANNOTATIONS_LISTED_MAX);
        let mut shown: Vec<String> = list.into_iter().take(ANNOTATIONS_LISTED_MAX).collect();
        if omitted > 0 {
            shown.push(format!("{omitted} more {what} annotations omitted"));
        }
        let _ = write!(body, r#","{key}":"#);
        push_json(&mut body, &shown);
    }
    body.push('}');
    let mut r = json_response(StatusCode::OK, body);
    if let Some(read) = o.read {
        let h = r.headers_mut();
        let consistency = match pb::Consistency::try_from(read.consistency) {
            Ok(pb::Consistency::Stale) => "stale",
            _ => "linearizable",
        };
        h.insert(
            "x-raftwatch-consistency",
            HeaderValue::from_static(consistency),
        );
        for (name, v) in [
            ("x-raftwatch-min-applied-index", read.min_applied_index),
            ("x-raftwatch-max-lag-entries", read.max_lag_entries),
        ] {
            h.insert(name, HeaderValue::from(v));
        }
    }
    r
}

fn failure(e: &QueryError) -> Response {
    let mut body = String::new();
    body.push_str(r#"{"status":"error","errorType":"#);
    push_json(&mut body, e.typ.name());
    body.push_str(r#","error":"#);
    push_json(&mut body, &e.message);
    body.push('}');
    json_response(e.typ.http_status(), body)
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn respond(r: Result<Outcome, QueryError>) -> Response {
    match r {
        Ok(o) => success(o),
        Err(e) => failure(&e),
    }
}

/// `respond_data` answers with Prometheus's envelope around `data` (a
/// JSON text) or the error: for the alerting endpoints (`am_api.rs`),
/// which have no warnings and no shard reads to report.
pub(crate) fn respond_data(r: Result<String, QueryError>) -> Response {
    respond(r.map(|data| Outcome {
        data,
        warnings: vec![],
        infos: vec![],
        read: None,
    }))
}

/// Appends `v` as JSON (strings escaped).
fn push_json<T: serde::Serialize + ?Sized>(out: &mut String, v: &T) {
    // Serialising strings and vectors of strings cannot fail.
    out.push_str(&serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
}

/// `push_timestamp` appends a millisecond timestamp as Prometheus's
/// `jsonutil.MarshalTimestamp` does: seconds, and when the milliseconds
/// are not 0, a point and exactly three digits (`1435781451.781`,
/// `1.500`, `-0.005`).
fn push_timestamp(out: &mut String, t_ms: i64) {
    let (sign, t) = if t_ms < 0 {
        ("-", t_ms.unsigned_abs())
    } else {
        ("", t_ms.unsigned_abs())
    };
    let _ = write!(out, "{sign}{}", t / 1000);
    let fraction = t % 1000;
    if fraction != 0 {
        let _ = write!(out, ".{fraction:03}");
    }
}

/// `format_value` renders a sample value as Prometheus's
/// `jsonutil.MarshalFloat` does: `NaN`, `+Inf`, `-Inf`, Go's
/// `strconv.FormatFloat(f, 'f', -1, 64)` (the shortest decimal that reads
/// back as the same float), or `'e'` for magnitudes below 1e-6 or from
/// 1e21 on (`1e-07`, `1.5e+21`).
pub(crate) fn format_value(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust's `{:e}` is the shortest mantissa too; Go writes the
        // exponent with a sign and at least two digits.
        let s = format!("{f:e}");
        if let Some((mantissa, exp)) = s.split_once('e')
            && let Ok(exp) = exp.parse::<i32>()
        {
            let sign = if exp < 0 { '-' } else { '+' };
            return format!("{mantissa}e{sign}{:02}", exp.unsigned_abs());
        }
        return s;
    }
    // Rust's `Display` for f64 is the shortest round-trip decimal without
    // an exponent, as Go's 'f' with precision -1.
    format!("{f}")
}

fn push_point(out: &mut String, t_ms: i64, v: f64) {
    out.push('[');
    push_timestamp(out, t_ms);
    out.push_str(",\"");
    out.push_str(&format_value(v));
    out.push_str("\"]");
}

fn push_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json(out, name);
        out.push(':');
        push_json(out, value);
    }
    out.push('}');
}

/// `value_json` is a query's `data`: `{"resultType":...,"result":...}`.
fn value_json(value: &Value) -> String {
    let mut out = String::new();
    let _ = write!(out, r#"{{"resultType":"{}","result":"#, value.type_name());
    match value {
        Value::Scalar { t, v } => push_point(&mut out, *t, *v),
        Value::String { t, s } => {
            out.push('[');
            push_timestamp(&mut out, *t);
            out.push(',');
            push_json(&mut out, s);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                push_labels(&mut out, &s.labels);
                out.push_str(r#","value":"#);
                push_point(&mut out, s.t, s.v);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                push_labels(&mut out, &s.labels);
                out.push_str(r#","values":["#);
                for (j, (t, v)) in s.points.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    push_point(&mut out, *t, *v);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
    out
}

// ---- Parameters ----

/// `Params` are a request's parameters: a form body's first, then the
/// query string's (Go's `Request.Form` order, so `FormValue` prefers the
/// body).
#[derive(Debug, Default)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// `new` collects the parameters of a request. A body is read only
    /// when it is `application/x-www-form-urlencoded`, as Go's
    /// `ParseForm`.
    pub(crate) fn new(
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Params, QueryError> {
        let mut pairs = Vec::new();
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if form && !body.is_empty() {
            let text = std::str::from_utf8(body).map_err(|_| {
                QueryError::bad_data("error parsing form values: the body is not UTF-8")
            })?;
            parse_urlencoded(text, &mut pairs)?;
        }
        if let Some(q) = query {
            parse_urlencoded(q, &mut pairs)?;
        }
        Ok(Params { pairs })
    }

    /// `get` is the first value of `name`, or "" (Go's `FormValue`).
    pub(crate) fn get(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// `all` is every value of `name`, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Decodes `a=b&c=d` (`+` is a space, `%XX` a byte) into `out`.
fn parse_urlencoded(text: &str, out: &mut Vec<(String, String)>) -> Result<(), QueryError> {
    for part in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((unescape(k)?, unescape(v)?));
    }
    Ok(())
}

fn unescape(s: &str) -> Result<String, QueryError> {
    let bad = || {
        QueryError::bad_data(format!(
            "error parsing form values: invalid escape in {s:?}"
        ))
    };
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Prometheus's `invalidParamError`: `invalid parameter "name": why`.
fn invalid_param(name: &str, why: impl std::fmt::Display) -> QueryError {
    QueryError::bad_data(format!("invalid parameter {name:?}: {why}"))
}

/// `parse_time` reads a time as Prometheus's API does: Unix seconds
/// (fractions rounded to the millisecond) or RFC 3339 (nanoseconds
/// truncated to the millisecond). Returns ms.
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    let cannot = || format!("cannot parse {s:?} to a valid timestamp");
    if let Ok(t) = s.parse::<f64>() {
        // i64 milliseconds hold ±9.2e15 seconds.
        if !t.is_finite() || t.abs() >= 9.2e15 {
            return Err(cannot());
        }
        let whole = t.trunc();
        let ms = ((t - whole) * 1000.0).round();
        return Ok(whole as i64 * 1000 + ms as i64);
    }
    match s {
        MIN_TIME_TEXT => return Ok(MIN_TIME_MS),
        MAX_TIME_TEXT => return Ok(MAX_TIME_MS),
        _ => {}
    }
    parse_rfc3339(s).ok_or_else(cannot)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, strictly (Go's
/// `time.RFC3339Nano` layout), as ms since the epoch.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let d = b.get(from..from + len)?;
        if !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(d).ok()?.parse().ok()
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if at(i, b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(start, digits)? * 10_i64.pow(9 - digits as u32);
    }
    let offset_s = match b.get(i)? {
        b'Z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && at(i + 3, b':') => {
            let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    Some(secs * 1000 + nanos / 1_000_000)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `parse_duration` reads a duration as Prometheus's API does: float
/// seconds or a Prometheus duration (`1h30m`, `5m`, `250ms`, `2d`, `1w`,
/// `1y`; units from largest to smallest, each at most once). Returns ms,
/// truncated.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    let cannot = || format!("cannot parse {s:?} to a valid duration");
    if let Ok(d) = s.parse::<f64>() {
        if d.is_nan() {
            return Err(cannot());
        }
        let ms = d * 1000.0;
        if ms.abs() >= 9.2e15 {
            return Err(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok(ms.trunc() as i64);
    }
    prometheus_duration_ms(s).ok_or_else(cannot)
}

/// Prometheus's `model.ParseDuration`, in ms.
fn prometheus_duration_ms(s: &str) -> Option<i64> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut next_unit = 0; // Units must come in UNITS order.
    let mut total: i64 = 0;
    while i < b.len() {
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let n: i64 = s.get(start..i)?.parse().ok()?;
        let ustart = i;
        while b.get(i).is_some_and(u8::is_ascii_alphabetic) {
            i += 1;
        }
        let unit = s.get(ustart..i)?;
        let k = UNITS.iter().position(|(u, _)| *u == unit)?;
        if k < next_unit {
            return None;
        }
        next_unit = k + 1;
        total = total.checked_add(n.checked_mul(UNITS[k].1)?)?;
    }
    Some(total)
}

fn time_param(p: &Params, name: &str, default: Option<i64>) -> Result<Option<i64>, QueryError> {
    match p.get(name) {
        "" => Ok(default),
        v => parse_time(v)
            .map(Some)
            .map_err(|e| invalid_param(name, format!("invalid time value for '{name}': {e}"))),
    }
}

/// Prometheus's `parseLimitParam`: absent or 0 is no limit.
fn limit_param(p: &Params) -> Result<usize, QueryError> {
    match p.get("limit") {
        "" => Ok(0),
        v => {
            let n: i64 = v.parse().map_err(|_| {
                invalid_param(
                    "limit",
                    format!("strconv.Atoi: parsing {v:?}: invalid syntax"),
                )
            })?;
            if n < 0 {
                return Err(invalid_param("limit", "limit must be non-negative"));
            }
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        }
    }
}

/// Our parameter: `linearizable` (the default) or `stale`.
pub(crate) fn consistency_param(p: &Params) -> Result<ReadConsistency, QueryError> {
    match p.get("consistency") {
        "" | "linearizable" => Ok(ReadConsistency::Linearizable),
        "stale" => Ok(ReadConsistency::Stale),
        other => Err(invalid_param(
            "consistency",
            format!("{other:?} is neither \"linearizable\" nor \"stale\""),
        )),
    }
}

/// Our parameter: `pushdown=false` makes the node fetch raw samples for
/// the whole query instead of letting the shards evaluate their parts
/// (the default, `true`); the answer is the same, only the cost differs.
fn pushdown_param(p: &Params) -> Result<bool, QueryError> {
    match p.get("pushdown") {
        "" | "true" => Ok(true),
        "false" => Ok(false),
        other => Err(invalid_param(
            "pushdown",
            format!("{other:?} is neither \"true\" nor \"false\""),
        )),
    }
}

fn timeout_param(p: &Params) -> Result<Option<Duration>, QueryError> {
    match p.get("timeout") {
        "" => Ok(None),
        v => {
            let ms = parse_duration(v).map_err(|e| invalid_param("timeout", e))?;
            Ok(Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0))))
        }
    }
}

/// `lookback_delta`: a duration; 0 or less means the default.
fn lookback_param(p: &Params) -> Result<Option<i64>, QueryError> {
    match p.get("lookback_delta") {
        "" => Ok(None),
        v => {
            let ms = parse_duration(v).map_err(|e| {
                QueryError::bad_data(format!("error parsing lookback delta duration: {e}"))
            })?;
            Ok((ms > 0).then_some(ms))
        }
    }
}

/// `match[]` as matcher sets, each needing a matcher that refuses "".
fn match_params(p: &Params) -> Result<Vec<Vec<pb::LabelMatcher>>, QueryError> {
    let mut sets = Vec::new();
    for text in p.all("match[]") {
        let ms = raftwatch_promql::parse_metric_selector(text)
            .map_err(|e| QueryError::bad_data(e.to_string()))?;
        if ms.iter().all(|m| m.matches_empty()) {
            return Err(QueryError::bad_data(
                "match[] must contain at least one non-empty matcher",
            ));
        }
        sets.push(
            ms.iter()
                .map(|m| pb::LabelMatcher {
                    r#type: match m.op() {
                        MatchOp::Equal => pb::MatchType::MatchEqual,
                        MatchOp::NotEqual => pb::MatchType::MatchNotEqual,
                        MatchOp::RegexMatch => pb::MatchType::MatchRegex,
                        MatchOp::RegexNoMatch => pb::MatchType::MatchNotRegex,
                    } as i32,
                    name: m.name().to_string(),
                    value: m.value().to_string(),
                })
                .collect(),
        );
    }
    Ok(sets)
}

fn status_error(s: tonic::Status) -> QueryError {
    QueryError::from_status(&s)
}

// ---- Handlers ----

fn params(RawQuery(q): &RawQuery, headers: &HeaderMap, body: &Bytes) -> Result<Params, QueryError> {
    Params::new(q.as_deref(), headers, body)
}

/// `GET|POST /api/v1/query`.
pub(crate) async fn query(
    State(node): State<Arc<Node>>,
    q: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(instant(&node, params(&q, &headers, &body)).await)
}

async fn instant(node: &Arc<Node>, p: Result<Params, QueryError>) -> Result<Outcome, QueryError> {
    let p = p?;
    let limit = limit_param(&p)?;
    let now = node.clock.now_wall().0;
    let time = time_param(&p, "time", Some(now))?.unwrap_or(now);
    let timeout = timeout_param(&p)?;
    let lookback = lookback_param(&p)?;
    let consistency = consistency_param(&p)?;
    let req = promql::Request {
        expr: p.get("query").to_string(),
        times: Times::Instant(time),
        lookback_delta_ms: lookback,
        consistency,
        timeout,
        samples_max: None,
        pushdown: pushdown_param(&p)?,
    };
    evaluate(node, req, limit).await
}

/// `GET|POST /api/v1/query_range`.
pub(crate) async fn query_range(
    State(node): State<Arc<Node>>,
    q: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(range(&node, params(&q, &headers, &body)).await)
}

async fn range(node: &Arc<Node>, p: Result<Params, QueryError>) -> Result<Outcome, QueryError> {
    let p = p?;
    let limit = limit_param(&p)?;
    let start = parse_time(p.get("start")).map_err(|e| invalid_param("start", e))?;
    let end = parse_time(p.get("end")).map_err(|e| invalid_param("end", e))?;
    if end < start {
        return Err(invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step = parse_duration(p.get("step")).map_err(|e| invalid_param("step", e))?;
    if step <= 0 {
        return Err(invalid_param(
            "step",
            "zero or negative query resolution step widths are not accepted. \
             Try a positive integer",
        ));
    }
    if (end - start) / step > RANGE_STEPS_MAX {
        return Err(QueryError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. \
             Try decreasing the query resolution (?step=XX)",
        ));
    }
    let timeout = timeout_param(&p)?;
    let lookback = lookback_param(&p)?;
    let consistency = consistency_param(&p)?;
    let req = promql::Request {
        expr: p.get("query").to_string(),
        times: Times::Range {
            start_ms: start,
            end_ms: end,
            step_ms: step,
        },
        lookback_delta_ms: lookback,
        consistency,
        timeout,
        samples_max: None,
        pushdown: pushdown_param(&p)?,
    };
    evaluate(node, req, limit).await
}

/// Plans (errors are `invalid parameter "query"`), fetches and evaluates;
/// truncates a vector or matrix to `limit` elements (0: all) with
/// Prometheus's warning.
async fn evaluate(
    node: &Arc<Node>,
    req: promql::Request,
    limit: usize,
) -> Result<Outcome, QueryError> {
    let planned =
        promql::plan(node, &req).map_err(|e| e.with_prefix("invalid parameter \"query\": "))?;
    let answer = promql::execute(node, planned).await?;
    let mut result = answer.result;
    let mut warnings = std::mem::take(&mut result.annotations.warnings);
    let truncated = match &mut result.value {
        Value::Vector(v) if limit > 0 && v.len() > limit => {
            v.truncate(limit);
            true
        }
        Value::Matrix(m) if limit > 0 && m.len() > limit => {
            m.truncate(limit);
            true
        }
        _ => false,
    };
    if truncated {
        warnings.push("results truncated due to limit".into());
    }
    Ok(Outcome {
        data: value_json(&result.value),
        warnings,
        infos: std::mem::take(&mut result.annotations.infos),
        read: Some(answer.read),
    })
}

/// `GET|POST /api/v1/series`.
pub(crate) async fn series(
    State(node): State<Arc<Node>>,
    q: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(series_of(&node, params(&q, &headers, &body)).await)
}

async fn series_of(node: &Arc<Node>, p: Result<Params, QueryError>) -> Result<Outcome, QueryError> {
    let p = p?;
    if p.all("match[]").is_empty() {
        return Err(QueryError::bad_data("no match[] parameter provided"));
    }
    let limit = limit_param(&p)?;
    let start = time_param(&p, "start", None)?;
    let end = time_param(&p, "end", None)?;
    let sets = match_params(&p).map_err(|e| e.with_prefix("invalid parameter \"match[]\": "))?;
    let consistency = consistency_param(&p)?;
    let calls = sets.into_iter().map(|matchers| {
        super::query::series(
            node,
            pb::SeriesRequest {
                matchers,
                start_ms: start,
                end_ms: end,
                consistency: wire(consistency) as i32,
                limits: None,
            },
        )
    });
    let answers = futures::future::try_join_all(calls)
        .await
        .map_err(status_error)?;
    let mut reads = Vec::new();
    let mut all: BTreeSet<Vec<(String, String)>> = BTreeSet::new();
    for a in answers {
        reads.extend(a.read);
        all.extend(
            a.series
                .into_iter()
                .map(|s| s.labels.into_iter().map(|l| (l.name, l.value)).collect()),
        );
    }
    let mut warnings = Vec::new();
    if limit > 0 && all.len() > limit {
        warnings.push("results truncated due to limit".to_string());
    }
    let mut data = String::from("[");
    for (i, labels) in all
        .into_iter()
        .take(if limit > 0 { limit } else { usize::MAX })
        .enumerate()
    {
        if i > 0 {
            data.push(',');
        }
        let map: BTreeMap<String, String> = labels.into_iter().collect();
        push_json(&mut data, &map);
    }
    data.push(']');
    Ok(Outcome {
        data,
        warnings,
        infos: vec![],
        read: first_read(reads),
    })
}

/// The read info of several reads at one consistency: the least advanced.
fn first_read(reads: Vec<pb::ReadInfo>) -> Option<pb::ReadInfo> {
    reads.into_iter().min_by_key(|r| r.min_applied_index)
}

fn wire(c: ReadConsistency) -> pb::Consistency {
    match c {
        ReadConsistency::Linearizable => pb::Consistency::Linearizable,
        ReadConsistency::Stale => pb::Consistency::Stale,
    }
}

/// `GET|POST /api/v1/labels`.
pub(crate) async fn labels(
    State(node): State<Arc<Node>>,
    q: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(names_or_values(&node, params(&q, &headers, &body), None).await)
}

/// `GET /api/v1/label/<name>/values`.
pub(crate) async fn label_values(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    q: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let name = unescape_label_name(&name);
    if name.is_empty() {
        return failure(&QueryError::bad_data(format!(
            "invalid label name: {name:?}"
        )));
    }
    respond(names_or_values(&node, params(&q, &headers, &body), Some(name)).await)
}

/// Label names (`name` is `None`) or one label's values, over the union
/// of the `match[]` selections (all series without one), sorted.
async fn names_or_values(
    node: &Arc<Node>,
    p: Result<Params, QueryError>,
    name: Option<String>,
) -> Result<Outcome, QueryError> {
    let p = p?;
    let limit = limit_param(&p)?;
    let start = time_param(&p, "start", None)?;
    let end = time_param(&p, "end", None)?;
    let mut sets = match_params(&p)?;
    if sets.is_empty() {
        sets.push(vec![]);
    }
    let consistency = wire(consistency_param(&p)?) as i32;
    let calls = sets.into_iter().map(|matchers| {
        let name = name.clone();
        async move {
            match name {
                None => super::query::label_names(
                    node,
                    pb::LabelNamesRequest {
                        matchers,
                        start_ms: start,
                        end_ms: end,
                        consistency,
                        limits: None,
                    },
                )
                .await
                .map(|r| (r.names, r.read)),
                Some(name) => super::query::label_values(
                    node,
                    pb::LabelValuesRequest {
                        name,
                        matchers,
                        start_ms: start,
                        end_ms: end,
                        consistency,
                        limits: None,
                    },
                )
                .await
                .map(|r| (r.values, r.read)),
            }
        }
    });
    let answers = futures::future::try_join_all(calls)
        .await
        .map_err(status_error)?;
    let mut reads = Vec::new();
    let mut all = BTreeSet::new();
    for (values, read) in answers {
        reads.extend(read);
        all.extend(values);
    }
    let mut warnings = Vec::new();
    let mut all: Vec<String> = all.into_iter().collect();
    if limit > 0 && all.len() > limit {
        all.truncate(limit);
        warnings.push("results truncated due to limit".to_string());
    }
    let mut data = String::new();
    push_json(&mut data, &all);
    Ok(Outcome {
        data,
        warnings,
        infos: vec![],
        read: first_read(reads),
    })
}

/// Prometheus's `U__` escaping of label names in URL paths
/// (`model.UnescapeName` with value-encoding escaping): `__` is `_`,
/// `_<hex>_` a code point. Anything malformed is left as given.
fn unescape_label_name(name: &str) -> String {
    let Some(rest) = name.strip_prefix("U__") else {
        return name.to_string();
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'_') {
            chars.next();
            out.push('_');
            continue;
        }
        let mut hex = String::new();
        loop {
            match chars.next() {
                Some('_') => break,
                Some(h) if h.is_ascii_hexdigit() => hex.push(h),
                _ => return name.to_string(),
            }
        }
        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
            Some(ch) => out.push(ch),
            None => return name.to_string(),
        }
    }
    out
}

/// `GET /api/v1/status/buildinfo`: Prometheus's fields, with raftwatch's
/// version.
pub(crate) async fn buildinfo() -> Response {
    let data = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    });
    success(Outcome {
        data: data.to_string(),
        warnings: vec![],
        infos: vec![],
        read: None,
    })
}

/// `GET /api/v1/metadata`: no metric metadata is kept (remote write 1.0
/// carries none with samples), so always `{}`; `limit` is checked as
/// Prometheus does.
pub(crate) async fn metadata(q: RawQuery) -> Response {
    let p = match params(&q, &HeaderMap::new(), &Bytes::new()) {
        Ok(p) => p,
        Err(e) => return failure(&e),
    };
    for name in ["limit", "limit_per_metric"] {
        let v = p.get(name);
        if !v.is_empty() && v.parse::<i64>().is_err() {
            return failure(&QueryError::bad_data(format!("{name} must be a number")));
        }
    }
    success(Outcome {
        data: "{}".into(),
        warnings: vec![],
        infos: vec![],
        read: None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::promql::ErrorType;
    use super::*;

    #[test]
    fn values_are_formatted_as_prometheus_formats_them() {
        let cases = [
            (1.0, "1"),
            (-0.0, "-0"),
            (0.0, "0"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (123456789.0, "123456789"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e300, "1.5e+300"),
            (0.000001, "0.000001"),
            (0.0000001, "1e-07"),
            (-2.5e-10, "-2.5e-10"),
            (1.0 / 3.0, "0.3333333333333333"),
            (f64::NAN, "NaN"),
            (f64::from_bits(0x7ff0_0000_0000_0002), "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ];
        for (v, want) in cases {
            assert_eq!(format_value(v), want, "{v:e}");
        }
    }

    #[test]
    fn timestamps_are_seconds_with_three_decimals_when_not_whole() {
        let cases = [
            (1_435_781_451_781, "1435781451.781"),
            (1_435_781_451_000, "1435781451"),
            (1_500, "1.500"),
            (1_050, "1.050"),
            (1_005, "1.005"),
            (0, "0"),
            (-5, "-0.005"),
            (-1_500, "-1.500"),
        ];
        for (t, want) in cases {
            let mut s = String::new();
            push_timestamp(&mut s, t);
            assert_eq!(s, want, "{t}");
        }
    }

    #[test]
    fn times_parse_as_unix_seconds_or_rfc3339() {
        let ok = [
            ("1435781451.781", 1_435_781_451_781),
            ("1435781451", 1_435_781_451_000),
            ("-1.5", -1_500),
            ("0.0004", 0),
            ("0.0005", 1),
            ("2015-07-01T20:10:51.781Z", 1_435_781_451_781),
            ("2015-07-01T20:10:51Z", 1_435_781_451_000),
            ("2015-07-01T22:10:51.781999999+02:00", 1_435_781_451_781),
            ("2015-07-01T18:40:51.781-01:30", 1_435_781_451_781),
            ("1970-01-01T00:00:00Z", 0),
            ("1969-12-31T23:59:59.999Z", -1),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000),
            (MIN_TIME_TEXT, MIN_TIME_MS),
            (MAX_TIME_TEXT, MAX_TIME_MS),
        ];
        for (s, want) in ok {
            assert_eq!(parse_time(s), Ok(want), "{s}");
        }
        for bad in [
            "",
            "now",
            "NaN",
            "Inf",
            "1e300",
            "2015-07-01",
            "2015-07-01T20:10:51",
            "2015-07-01 20:10:51Z",
            "2015-13-01T20:10:51Z",
            "2023-02-29T00:00:00Z",
            "2015-07-01T24:00:00Z",
            "2015-07-01T20:10:60Z",
            "2015-07-01T20:10:51.Z",
            "2015-07-01T20:10:51.1234567890Z",
            "2015-07-01T20:10:51+0200",
            "2015-07-01T20:10:51Zjunk",
        ] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.starts_with("cannot parse "), "{bad}: {e}");
        }
    }

    #[test]
    fn durations_parse_as_seconds_or_prometheus_durations() {
        let ok = [
            ("15", 15_000),
            ("0.5", 500),
            ("1e-4", 0),
            ("-3", -3_000),
            ("0", 0),
            ("15s", 15_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("250ms", 250),
            ("1m500ms", 60_500),
            ("2d", 172_800_000),
            ("1w", 604_800_000),
            ("1y", 31_536_000_000),
        ];
        for (s, want) in ok {
            assert_eq!(parse_duration(s), Ok(want), "{s}");
        }
        for bad in ["", "m", "5x", "1m1h", "1s1s", "1.5m", "-5m", " 5m", "NaN"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("1e30").unwrap_err().contains("overflows"));
    }

    #[test]
    fn parameters_come_from_the_form_body_first_then_the_query_string() {
        let mut form = HeaderMap::new();
        form.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        let p = Params::new(
            Some("query=from_url&match%5B%5D=b&x="),
            &form,
            b"query=sum+by+(job)+(rate(x%5B5m%5D))&match[]=a",
        )
        .unwrap();
        assert_eq!(p.get("query"), "sum by (job) (rate(x[5m]))");
        assert_eq!(p.all("match[]"), vec!["a", "b"]);
        assert_eq!(p.get("x"), "");
        assert_eq!(p.get("absent"), "");
        // Another content type: the body is not parameters.
        let p = Params::new(Some("query=up"), &HeaderMap::new(), b"query=down").unwrap();
        assert_eq!(p.get("query"), "up");
        let e = Params::new(Some("query=%zz"), &HeaderMap::new(), b"").unwrap_err();
        assert_eq!(e.typ, ErrorType::BadData);
    }

    #[test]
    fn consistency_is_linearizable_by_default_and_refuses_anything_unknown() {
        let p = |q: &str| Params::new(Some(q), &HeaderMap::new(), b"").unwrap();
        assert_eq!(
            consistency_param(&p("")).unwrap(),
            ReadConsistency::Linearizable
        );
        assert_eq!(
            consistency_param(&p("consistency=linearizable")).unwrap(),
            ReadConsistency::Linearizable
        );
        assert_eq!(
            consistency_param(&p("consistency=stale")).unwrap(),
            ReadConsistency::Stale
        );
        for bad in ["consistency=eventual", "consistency=Stale", "consistency=1"] {
            let e = consistency_param(&p(bad)).unwrap_err();
            assert_eq!(e.typ, ErrorType::BadData, "{bad}");
            assert!(
                e.message.starts_with("invalid parameter \"consistency\""),
                "{}",
                e.message
            );
        }
        assert!(limit_param(&p("limit=-1")).is_err());
        assert!(limit_param(&p("limit=x")).is_err());
        assert_eq!(limit_param(&p("limit=3")).unwrap(), 3);
        assert_eq!(
            lookback_param(&p("lookback_delta=1m")).unwrap(),
            Some(60_000)
        );
        assert_eq!(lookback_param(&p("lookback_delta=0")).unwrap(), None);
    }

    #[test]
    fn results_have_prometheus_shapes() {
        let l = Labels::from_strs(&[("__name__", "up"), ("job", "a\"b")]);
        let v = Value::Vector(vec![raftwatch_promql::Sample {
            labels: l.clone(),
            t: 1_500,
            v: f64::INFINITY,
        }]);
        assert_eq!(
            value_json(&v),
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\"b"},"value":[1.500,"+Inf"]}]}"#
        );
        let m = Value::Matrix(vec![raftwatch_promql::Series {
            labels: Labels::default(),
            points: vec![(1_000, 1.0), (2_000, 0.5)],
        }]);
        assert_eq!(
            value_json(&m),
            r#"{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"0.5"]]}]}"#
        );
        assert_eq!(
            value_json(&Value::Scalar { t: 0, v: 2.0 }),
            r#"{"resultType":"scalar","result":[0,"2"]}"#
        );
        assert_eq!(
            value_json(&Value::String {
                t: 1,
                s: "x".into()
            }),
            r#"{"resultType":"string","result":[0.001,"x"]}"#
        );
        assert_eq!(
            value_json(&Value::Vector(vec![])),
            r#"{"resultType":"vector","result":[]}"#
        );
    }

    #[test]
    fn label_names_unescape_as_prometheus_does() {
        assert_eq!(unescape_label_name("job"), "job");
        assert_eq!(unescape_label_name("U__a_2e_b"), "a.b");
        assert_eq!(unescape_label_name("U__a__b"), "a_b");
        assert_eq!(unescape_label_name("U__a_zz_b"), "U__a_zz_b");
    }
}
