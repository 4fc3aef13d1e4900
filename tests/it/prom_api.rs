//! The Prometheus HTTP query API and gRPC `Query.Promql` on a real
//! cluster (3 nodes, 4 shards, 3 replicas): PromQL (`rate`, `sum by`,
//! binary operators, range queries) evaluated over samples merged from
//! every shard, with Prometheus's JSON shapes and formatting, by GET and
//! by POST, through any node, at both consistencies; series, label names
//! and label values; Prometheus's error types and HTTP codes for bad
//! input, evaluation errors, the samples limit (node 3 runs with
//! `--query-max-samples 10`) and the timeout; the node keeps answering;
//! `raftwatchctl query` takes PromQL.

// Real processes in real time: the determinism seams do not apply here.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use raftwatch_proto::v1 as pb;
use raftwatch_tests::Cluster;
use serde_json::{Value, json};

/// 2023-11-14T22:13:20Z, in ms: whole seconds, so timestamps print bare.
const T0: i64 = 1_700_000_000_000;
const INTERVAL_MS: i64 = 10_000;
const SAMPLES: i64 = 10;
/// The time of the last sample.
const LAST: i64 = T0 + (SAMPLES - 1) * INTERVAL_MS;
/// The samples limit of node 3.
const NODE3_SAMPLES_MAX: &str = "10";

fn label(name: &str, value: &str) -> pb::Label {
    pb::Label {
        name: name.into(),
        value: value.into(),
    }
}

/// `pa_requests_total{inst="0".."3", job="a"|"b"}`: counters rising by
/// 10 × (inst + 1) every 10 s from `T0` (rate: inst + 1 per second);
/// `pa_temp{job="a"}` one gauge sample per step.
fn data() -> Vec<pb::Series> {
    let mut series = Vec::new();
    for inst in 0..4_i64 {
        let job = if inst % 2 == 0 { "a" } else { "b" };
        series.push(pb::Series {
            labels: vec![
                label("__name__", "pa_requests_total"),
                label("inst", &inst.to_string()),
                label("job", job),
            ],
            samples: (0..SAMPLES)
                .map(|k| pb::Sample {
                    timestamp_ms: T0 + k * INTERVAL_MS,
                    value: (k * 10 * (inst + 1)) as f64,
                })
                .collect(),
        });
    }
    series.push(pb::Series {
        labels: vec![label("__name__", "pa_temp"), label("job", "a")],
        samples: (0..SAMPLES)
            .map(|k| pb::Sample {
                timestamp_ms: T0 + k * INTERVAL_MS,
                value: 20.5,
            })
            .collect(),
    });
    series
}

async fn write(endpoint: &str, series: Vec<pb::Series>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ch = tonic::transport::Endpoint::from_shared(endpoint.to_string())
            .unwrap()
            .connect()
            .await;
        if let Ok(ch) = ch {
            let r = pb::ingest_client::IngestClient::new(ch)
                .write(pb::WriteRequest {
                    series: series.clone(),
                    ..Default::default()
                })
                .await;
            match r {
                Ok(r) => {
                    assert!(r.get_ref().rejections.is_empty(), "{r:?}");
                    return;
                }
                Err(e) => assert!(Instant::now() < deadline, "write failed: {e}"),
            }
        }
        assert!(Instant::now() < deadline, "cannot connect to {endpoint}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---- A raw HTTP/1.0 client ----

/// An answer: status, headers (lower-case names), body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// `exchange` sends one raw HTTP/1.0 request and reads the whole answer.
pub(crate) fn exchange(addr: &str, request: &str) -> Answer {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Percent-encodes a form value.
pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn get(addr: &str, path: &str, params: &[(&str, &str)]) -> Answer {
    exchange(
        addr,
        &format!(
            "GET {path}?{} HTTP/1.0\r\nHost: {addr}\r\n\r\n",
            form(params)
        ),
    )
}

fn post(addr: &str, path: &str, params: &[(&str, &str)]) -> Answer {
    let body = form(params);
    exchange(
        addr,
        &format!(
            "POST {path} HTTP/1.0\r\nHost: {addr}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// GET or POST, to exercise both.
#[derive(Clone, Copy, Debug)]
enum Method {
    Get,
    Post,
}

fn call(m: Method, addr: &str, path: &str, params: &[(&str, &str)]) -> Answer {
    match m {
        Method::Get => get(addr, path, params),
        Method::Post => post(addr, path, params),
    }
}

fn secs(ms: i64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

/// Asks until `want` holds of a successful answer: at once when
/// linearizable (the writes were acknowledged before), within 30 s when
/// stale.
fn settle(
    consistency: &str,
    what: &str,
    mut ask: impl FnMut() -> Answer,
    want: impl Fn(&Value) -> bool,
) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = ask();
        assert_eq!(a.status, 200, "{what}: {a:?}");
        let v = a.json();
        assert_eq!(v["status"], "success", "{what}: {v}");
        assert_eq!(
            a.headers.get("x-raftwatch-consistency").map(String::as_str),
            Some(consistency),
            "{what}: {a:?}"
        );
        if want(&v) {
            return a;
        }
        assert!(
            consistency == "stale" && Instant::now() < deadline,
            "{what} at {consistency}: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn value_f64(v: &Value) -> f64 {
    v.as_str().unwrap().parse().unwrap()
}

/// The `data.result` of a vector answer as metric → value.
fn vector(v: &Value) -> BTreeMap<String, f64> {
    assert_eq!(v["data"]["resultType"], "vector", "{v}");
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["metric"].to_string(), value_f64(&e["value"][1])))
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn assert_error(a: &Answer, status: u16, typ: &str, text: &str) {
    assert_eq!(a.status, status, "{a:?}");
    assert_eq!(
        a.headers.get("content-type").map(String::as_str),
        Some("application/json"),
        "{a:?}"
    );
    let v = a.json();
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["errorType"], typ, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(e.contains(text), "{e:?} lacks {text:?}");
    assert!(v.get("data").is_none(), "{v}");
}

#[test]
fn prometheus_query_api_evaluates_promql_over_every_shard() {
    let c = Cluster::start_with(3, 4, 3, |id| {
        if id == 3 {
            vec!["--query-max-samples".into(), NODE3_SAMPLES_MAX.into()]
        } else {
            vec![]
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(write(&c.endpoint(1), data()));
    let http = |id: u64| c.specs[&id].http.clone();

    for (node, method) in [(1, Method::Get), (2, Method::Post)] {
        let addr = http(node);
        for consistency in ["linearizable", "stale"] {
            promql_answers(&addr, method, consistency);
            series_and_labels(&addr, method, consistency);
        }
    }
    errors_have_prometheus_types(&http(1), &http(3));
    pushdown_changes_no_answer(&http(2));
    grpc_and_ctl(&c);
}

/// A result as (metric, points), sorted, for comparing two answers.
fn normalized(v: &Value) -> Vec<(String, Vec<(f64, f64)>)> {
    let data = &v["data"];
    let mut out: Vec<(String, Vec<(f64, f64)>)> = data["result"]
        .as_array()
        .unwrap_or_else(|| panic!("no result: {v}"))
        .iter()
        .map(|r| {
            let points: Vec<&Value> = match r.get("values") {
                Some(vs) => vs.as_array().unwrap().iter().collect(),
                None => vec![&r["value"]],
            };
            (
                r["metric"].to_string(),
                points
                    .into_iter()
                    .map(|p| (p[0].as_f64().unwrap(), value_f64(&p[1])))
                    .collect(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Push-down (the default) and raw-sample evaluation give the same
/// answers, instant and range, for pushed aggregations, pushed
/// series-local expressions and mixes with what stays central.
fn pushdown_changes_no_answer(addr: &str) {
    let queries = [
        "sum by (job) (rate(pa_requests_total[30s]))",
        "avg(pa_temp)",
        "max by (inst) (pa_requests_total)",
        "sum without (inst) (pa_requests_total)",
        "count(pa_requests_total) + sum(pa_temp)",
        "rate(pa_requests_total[30s])",
        "topk(2, rate(pa_requests_total[30s]))",
        "label_replace(rate(pa_requests_total[30s]), \"n\", \"$1\", \"__name__\", \"(.*)\")",
        "min(pa_temp offset 10s) - group(pa_temp)",
        "sum by (job) (pa_requests_total) / on (job) group_left sum by (job) (pa_temp)",
    ];
    for q in queries {
        let at = secs(LAST);
        let (start, end) = (secs(T0 + 20_000), secs(LAST));
        for (path, params) in [
            ("/api/v1/query", vec![("query", q), ("time", at.as_str())]),
            (
                "/api/v1/query_range",
                vec![
                    ("query", q),
                    ("start", start.as_str()),
                    ("end", end.as_str()),
                    ("step", "10"),
                ],
            ),
        ] {
            let with = get(addr, path, &params);
            let mut off = params.clone();
            off.push(("pushdown", "false"));
            let without = get(addr, path, &off);
            assert_eq!(with.status, 200, "{q}: {}", with.body);
            assert_eq!(without.status, 200, "{q}: {}", without.body);
            let (a, b) = (normalized(&with.json()), normalized(&without.json()));
            assert!(!b.is_empty(), "{q} {path}: an empty answer proves nothing");
            assert_eq!(a.len(), b.len(), "{q} {path}: {a:?} vs {b:?}");
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.0, y.0, "{q} {path}");
                assert_eq!(x.1.len(), y.1.len(), "{q} {path}: {x:?} vs {y:?}");
                for (p, r) in x.1.iter().zip(&y.1) {
                    assert!(p.0 == r.0 && close(p.1, r.1), "{q} {path}: {x:?} vs {y:?}");
                }
            }
        }
    }
    let bad = get(
        addr,
        "/api/v1/query",
        &[("query", "up"), ("pushdown", "maybe")],
    );
    assert_error(&bad, 400, "bad_data", "pushdown");
}

fn promql_answers(addr: &str, m: Method, consistency: &str) {
    let at = secs(LAST);
    let q = |query: &str| {
        let at = at.clone();
        let query = query.to_string();
        move || {
            call(
                m,
                addr,
                "/api/v1/query",
                &[
                    ("query", &query),
                    ("time", &at),
                    ("consistency", consistency),
                ],
            )
        }
    };
    let what = format!("{m:?} {addr} {consistency}");

    // rate and sum by: every counter rises by 10 × (inst + 1) per 10 s.
    let a = settle(
        consistency,
        &what,
        q("sum by (job) (rate(pa_requests_total[1m]))"),
        |v| vector(v).len() == 2,
    );
    let got = vector(&a.json());
    assert!(close(got[r#"{"job":"a"}"#], 1.0 + 3.0), "{got:?}");
    assert!(close(got[r#"{"job":"b"}"#], 2.0 + 4.0), "{got:?}");
    let v = a.json();
    assert_eq!(v["data"]["result"][0]["value"][0], json!(LAST / 1000));
    assert!(v.get("warnings").is_none(), "{v}");
    // A linearizable answer reflects every shard's read index.
    let applied: u64 = a.headers["x-raftwatch-min-applied-index"].parse().unwrap();
    assert!(applied > 0, "{a:?}");
    if consistency == "linearizable" {
        assert_eq!(a.headers["x-raftwatch-max-lag-entries"], "0");
    }

    // A binary operator with a scalar drops the name; the exact JSON.
    let a = settle(
        consistency,
        &what,
        q(r#"pa_requests_total{inst="1"} / 10"#),
        |v| !v["data"]["result"].as_array().unwrap().is_empty(),
    );
    assert_eq!(
        a.body,
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"inst":"1","job":"b"}},"value":[{},"18"]}}]}}}}"#,
            LAST / 1000
        )
    );
    // Vector-to-vector matching over two selections, and a comparison:
    // 30 s apart, each counter rose by 30 × (inst + 1).
    let a = settle(
        consistency,
        &what,
        q("pa_requests_total - on (inst, job) pa_requests_total offset 30s > 50"),
        |v| vector(v).len() == 3,
    );
    let got = vector(&a.json());
    for (inst, job, want) in [(1, "b", 60.0), (2, "a", 90.0), (3, "b", 120.0)] {
        let key = format!(r#"{{"inst":"{inst}","job":"{job}"}}"#);
        assert!(close(got[&key], want), "{key}: {got:?}");
    }

    // A scalar.
    let a = settle(consistency, &what, q("1 + 1"), |_| true);
    assert_eq!(
        a.json()["data"],
        json!({"resultType": "scalar", "result": [LAST / 1000, "2"]})
    );
    // A range selector at one time: raw samples, timestamps in seconds.
    let a = settle(consistency, &what, q(r#"pa_temp[25s]"#), |v| {
        !v["data"]["result"].as_array().unwrap().is_empty()
    });
    assert_eq!(
        a.json()["data"]["result"],
        json!([{
            "metric": {"__name__": "pa_temp", "job": "a"},
            "values": [[LAST / 1000 - 20, "20.5"], [LAST / 1000 - 10, "20.5"], [LAST / 1000, "20.5"]],
        }])
    );

    // A range query: one point per step.
    let range = || {
        call(
            m,
            addr,
            "/api/v1/query_range",
            &[
                ("query", "sum(pa_requests_total)"),
                ("start", &secs(T0)),
                ("end", &secs(LAST)),
                ("step", "30s"),
                ("consistency", consistency),
            ],
        )
    };
    let a = settle(consistency, &what, range, |v| {
        v["data"]["result"][0]["values"].as_array().map(Vec::len) == Some(4)
    });
    let t = T0 / 1000;
    assert_eq!(
        a.json()["data"],
        json!({"resultType": "matrix", "result": [{
            "metric": {},
            "values": [[t, "0"], [t + 30, "300"], [t + 60, "600"], [t + 90, "900"]],
        }]})
    );
    // RFC 3339 times and float-seconds steps, `limit` truncating with a
    // warning.
    let a = call(
        m,
        addr,
        "/api/v1/query_range",
        &[
            ("query", "pa_requests_total"),
            ("start", "2023-11-14T22:13:20Z"),
            ("end", "2023-11-14T22:14:50.000Z"),
            ("step", "45"),
            ("limit", "3"),
            ("consistency", consistency),
        ],
    );
    let v = a.json();
    assert_eq!(a.status, 200, "{v}");
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(
        v["warnings"],
        json!(["results truncated due to limit"]),
        "{v}"
    );
    assert_eq!(
        v["data"]["result"][0]["values"],
        json!([[t, "0"], [t + 45, "40"], [t + 90, "90"]]),
        "{v}"
    );
}

fn series_and_labels(addr: &str, m: Method, consistency: &str) {
    let what = format!("{m:?} {addr} {consistency}");
    let a = settle(
        consistency,
        &what,
        || {
            call(
                m,
                addr,
                "/api/v1/series",
                &[
                    ("match[]", r#"pa_requests_total{job="a"}"#),
                    ("match[]", "pa_temp"),
                    ("consistency", consistency),
                ],
            )
        },
        |v| v["data"].as_array().map(Vec::len) == Some(3),
    );
    assert_eq!(
        a.json()["data"],
        json!([
            {"__name__": "pa_requests_total", "inst": "0", "job": "a"},
            {"__name__": "pa_requests_total", "inst": "2", "job": "a"},
            {"__name__": "pa_temp", "job": "a"},
        ])
    );
    let a = settle(
        consistency,
        &what,
        || call(m, addr, "/api/v1/labels", &[("consistency", consistency)]),
        |v| v["data"] == json!(["__name__", "inst", "job"]),
    );
    assert_eq!(a.status, 200);
    let a = settle(
        consistency,
        &what,
        || {
            call(
                m,
                addr,
                "/api/v1/labels",
                &[("match[]", "pa_temp"), ("consistency", consistency)],
            )
        },
        |v| v["data"] == json!(["__name__", "job"]),
    );
    assert_eq!(a.status, 200);
    // Label values: GET only, as Prometheus.
    settle(
        consistency,
        &what,
        || {
            get(
                addr,
                "/api/v1/label/job/values",
                &[("consistency", consistency)],
            )
        },
        |v| v["data"] == json!(["a", "b"]),
    );
    settle(
        consistency,
        &what,
        || {
            get(
                addr,
                "/api/v1/label/__name__/values",
                &[("match[]", r#"{job="b"}"#), ("consistency", consistency)],
            )
        },
        |v| v["data"] == json!(["pa_requests_total"]),
    );
}

fn errors_have_prometheus_types(addr: &str, limited: &str) {
    let at = secs(LAST);
    let query = |addr: &str, params: &[(&str, &str)]| get(addr, "/api/v1/query", params);
    // Malformed PromQL, by GET and POST.
    for a in [
        query(addr, &[("query", "sum(")]),
        post(addr, "/api/v1/query", &[("query", "rate(x[5m]")]),
    ] {
        assert_error(&a, 400, "bad_data", "invalid parameter \"query\": ");
    }
    assert_error(
        &query(addr, &[]),
        400,
        "bad_data",
        "invalid parameter \"query\"",
    );
    // Our parameter: anything but linearizable or stale.
    for bogus in ["eventual", "STALE", "0"] {
        assert_error(
            &query(addr, &[("query", "up"), ("consistency", bogus)]),
            400,
            "bad_data",
            "invalid parameter \"consistency\"",
        );
    }
    assert_error(
        &query(addr, &[("query", "up"), ("time", "yesterday")]),
        400,
        "bad_data",
        "invalid parameter \"time\": invalid time value for 'time': cannot parse \"yesterday\"",
    );
    let range = |params: &[(&str, &str)]| get(addr, "/api/v1/query_range", params);
    assert_error(
        &range(&[
            ("query", "up"),
            ("start", "10"),
            ("end", "5"),
            ("step", "1"),
        ]),
        400,
        "bad_data",
        "end timestamp must not be before start time",
    );
    assert_error(
        &range(&[("query", "up"), ("start", "0"), ("end", "5"), ("step", "0")]),
        400,
        "bad_data",
        "zero or negative query resolution step widths are not accepted",
    );
    assert_error(
        &range(&[
            ("query", "up"),
            ("start", "0"),
            ("end", "100000"),
            ("step", "1"),
        ]),
        400,
        "bad_data",
        "exceeded maximum resolution of 11,000 points per timeseries",
    );
    assert_error(
        &get(addr, "/api/v1/series", &[]),
        400,
        "bad_data",
        "no match[] parameter provided",
    );
    assert_error(
        &get(addr, "/api/v1/series", &[("match[]", r#"{job=~".*"}"#)]),
        400,
        "bad_data",
        "match[]",
    );
    // Evaluation errors are `execution`, 422.
    assert_error(
        &query(
            addr,
            &[
                ("query", "pa_requests_total + on (job) pa_requests_total"),
                ("time", &at),
            ],
        ),
        422,
        "execution",
        "many-to-many matching not allowed",
    );
    // The samples limit: node 3 allows 10 samples, the query reads 40
    // (node 1 answers it).
    let raw = [
        ("query", "count_over_time(pa_requests_total[5m])"),
        ("time", &at),
    ];
    assert_eq!(query(addr, &raw).status, 200);
    for c in ["linearizable", "stale"] {
        let mut params = raw.to_vec();
        params.push(("consistency", c));
        assert_error(
            &query(limited, &params),
            422,
            "execution",
            "query processing would load too many samples into memory in query execution",
        );
    }
    // A timeout of 0 has passed before any shard answers.
    assert_error(
        &query(addr, &[("query", "pa_temp"), ("timeout", "0s")]),
        503,
        "timeout",
        "query timed out in ",
    );
    // The nodes still answer (node 3 within its limit: a 15 s lookback
    // reads 2 samples, and the evaluation holds 2 more).
    for a in [addr, limited] {
        let ok = query(
            a,
            &[
                ("query", "count(pa_temp)"),
                ("time", &at),
                ("lookback_delta", "15s"),
            ],
        );
        assert_eq!(ok.status, 200, "{a}: {ok:?}");
        assert_eq!(ok.json()["data"]["result"][0]["value"][1], "1", "{ok:?}");
    }
    // Build info and metadata.
    let b = get(addr, "/api/v1/status/buildinfo", &[]).json();
    assert_eq!(b["status"], "success");
    assert!(b["data"]["version"].is_string(), "{b}");
    let md = get(addr, "/api/v1/metadata", &[]).json();
    assert_eq!(md, json!({"status": "success", "data": {}}));
}

fn grpc_and_ctl(c: &Cluster) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let endpoint = c.endpoint(2);
    rt.block_on(async {
        let ch = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut q = pb::query_client::QueryClient::new(ch);
        let r = q
            .promql(pb::PromqlRequest {
                expr: "sum by (job) (pa_requests_total)".into(),
                time_ms: Some(LAST),
                consistency: pb::Consistency::Stale as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.result_type, "vector");
        let mut got: Vec<(String, f64)> = r
            .series
            .iter()
            .map(|s| (s.labels[0].value.clone(), s.samples[0].value))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, vec![("a".into(), 360.0), ("b".into(), 540.0)]);
        let read = r.read.unwrap();
        assert_eq!(read.consistency, pb::Consistency::Stale as i32);
        assert_eq!(read.shards.len(), 4, "{read:?}");
        // Pushed down: the node reads each shard's partial sums (at most
        // one point per job per shard), not the 40 raw samples of the
        // lookback window.
        assert!((2..=8).contains(&r.samples_read), "{}", r.samples_read);
        // A range query over gRPC.
        let r = q
            .promql(pb::PromqlRequest {
                expr: "sum(pa_temp)".into(),
                range: Some(pb::PromqlRange {
                    start_ms: T0,
                    end_ms: LAST,
                    step_ms: 45_000,
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.result_type, "matrix");
        assert_eq!(r.series[0].samples.len(), 3);
        // Errors carry Prometheus's type.
        let e = q
            .promql(pb::PromqlRequest {
                expr: "sum(".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert_eq!(
            e.metadata().get("raftwatch-error-type").unwrap(),
            "bad_data"
        );
    });

    // raftwatchctl query takes PromQL.
    let time = LAST.to_string();
    let expr = "sum by (job) (rate(pa_requests_total[1m]))";
    let out = c.ctl(&["--output", "json", "query", expr, "--time", &time]);
    assert_eq!(out.code, 0, "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["resultType"], "vector", "{v}");
    assert_eq!(v["read"]["consistency"], "linearizable", "{v}");
    assert_eq!(v["result"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["result"][0]["value"][0], LAST, "{v}");
    let out = c.ctl(&[
        "query",
        "pa_temp",
        "--time",
        &time,
        "--consistency",
        "stale",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!("{{__name__=\"pa_temp\", job=\"a\"}} 20.5 @{LAST}\n")
    );
    let start = T0.to_string();
    let out = c.ctl(&[
        "query",
        "sum(pa_temp)",
        "--start",
        &start,
        "--end",
        &time,
        "--step",
        "30000",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.lines().count(), 4, "{out:?}");
    let out = c.ctl(&["query", "sum("]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .starts_with("error: INVALID_ARGUMENT: bad_data: "),
        "{out:?}"
    );
}
