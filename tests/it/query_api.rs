//! The `Query` service's instant, range, series and label queries on a real
//! cluster (3 nodes, 4 shards, 3 replicas): answers merged over every
//! shard equal a brute-force evaluation of the written samples, through
//! any node and at both consistencies; bad input is `INVALID_ARGUMENT`;
//! a request-level limit is `RESOURCE_EXHAUSTED` naming the limit.

// Real processes in real time: the determinism seams do not apply here.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use raftwatch_proto::v1 as pb;
use raftwatch_tests::Cluster;
use tonic::transport::Channel;

const T0: i64 = 1_700_000_000_000;
const SERIES: u64 = 20;
const SAMPLES: i64 = 10;
const INTERVAL_MS: i64 = 10_000;
/// This series ends with a staleness marker 5 s after its last sample.
const STALE_INST: u64 = 4;
/// Prometheus's staleness marker.
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

type LabelSet = Vec<(String, String)>;
/// Every written series: labels → timestamp → value bits.
type Written = BTreeMap<LabelSet, BTreeMap<i64, u64>>;

fn label(name: &str, value: &str) -> pb::Label {
    pb::Label {
        name: name.into(),
        value: value.into(),
    }
}

fn matcher(t: pb::MatchType, name: &str, value: &str) -> pb::LabelMatcher {
    pb::LabelMatcher {
        r#type: t as i32,
        name: name.into(),
        value: value.into(),
    }
}

fn eq(name: &str, value: &str) -> pb::LabelMatcher {
    matcher(pb::MatchType::MatchEqual, name, value)
}

fn key(labels: &[pb::Label]) -> LabelSet {
    labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

/// `qa_up{inst, job}`: 20 series × 10 samples every 10 s from `T0`, and
/// `qa_other{zone}` with one sample; `qa_up{inst="4"}` ends stale.
fn data() -> (Vec<pb::Series>, Written) {
    let mut series = Vec::new();
    for inst in 0..SERIES {
        let job = if inst % 2 == 0 { "a" } else { "b" };
        let mut samples: Vec<pb::Sample> = (0..SAMPLES)
            .map(|k| pb::Sample {
                timestamp_ms: T0 + k * INTERVAL_MS,
                value: (inst * 100) as f64 + k as f64,
            })
            .collect();
        if inst == STALE_INST {
            samples.push(pb::Sample {
                timestamp_ms: T0 + (SAMPLES - 1) * INTERVAL_MS + 5_000,
                value: f64::from_bits(STALE_NAN_BITS),
            });
        }
        series.push(pb::Series {
            labels: vec![
                label("__name__", "qa_up"),
                label("inst", &inst.to_string()),
                label("job", job),
            ],
            samples,
        });
    }
    series.push(pb::Series {
        labels: vec![label("__name__", "qa_other"), label("zone", "z1")],
        samples: vec![pb::Sample {
            timestamp_ms: T0,
            value: 1.0,
        }],
    });
    let written = series
        .iter()
        .map(|s| {
            (
                key(&s.labels),
                s.samples
                    .iter()
                    .map(|x| (x.timestamp_ms, x.value.to_bits()))
                    .collect(),
            )
        })
        .collect();
    (series, written)
}

// ---- The brute-force model ----

fn value_of<'a>(labels: &'a LabelSet, name: &str) -> &'a str {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Only the equality matchers these tests use.
fn selected(labels: &LabelSet, ms: &[pb::LabelMatcher]) -> bool {
    ms.iter().all(|m| {
        assert_eq!(m.r#type, pb::MatchType::MatchEqual as i32);
        value_of(labels, &m.name) == m.value
    })
}

/// Labels → [(step time, value bits)] by the instant rule.
type Points = BTreeMap<LabelSet, Vec<(i64, u64)>>;

fn model(
    w: &Written,
    ms: &[pb::LabelMatcher],
    start: i64,
    end: i64,
    step: i64,
    lookback: i64,
) -> Points {
    let mut out = BTreeMap::new();
    for (labels, samples) in w.iter().filter(|(l, _)| selected(l, ms)) {
        let mut p = Vec::new();
        let mut t = start;
        while t <= end {
            if let Some((&ts, &bits)) = samples.range(..=t).next_back()
                && ts > t - lookback
                && bits != STALE_NAN_BITS
            {
                p.push((t, bits));
            }
            t += step;
        }
        if !p.is_empty() {
            out.insert(labels.clone(), p);
        }
    }
    out
}

fn points(series: &[pb::Series]) -> Points {
    series
        .iter()
        .map(|s| {
            (
                key(&s.labels),
                s.samples
                    .iter()
                    .map(|x| (x.timestamp_ms, x.value.to_bits()))
                    .collect(),
            )
        })
        .collect()
}

fn strs(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

// ---- Clients ----

async fn channel(endpoint: &str) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = tonic::transport::Endpoint::from_shared(endpoint.to_string())
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(60))
            .connect()
            .await;
        match c {
            Ok(c) => return c,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "cannot connect to {endpoint}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Writes `series` through `Ingest.Write`, retrying until acknowledged
/// (re-appending identical samples is a no-op).
async fn write(endpoint: &str, series: Vec<pb::Series>) {
    let expected: usize = series.iter().map(|s| s.samples.len()).sum();
    let mut client = pb::ingest_client::IngestClient::new(channel(endpoint).await);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = client
            .write(pb::WriteRequest {
                series: series.clone(),
                ..Default::default()
            })
            .await;
        match r {
            Ok(r) => {
                let r = r.into_inner();
                assert!(r.rejections.is_empty(), "{:?}", r.rejections);
                assert_eq!(r.samples_accepted as usize, expected);
                return;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "write never acknowledged: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

type Client = pb::query_client::QueryClient<Channel>;

const CONSISTENCIES: [pb::Consistency; 2] = [pb::Consistency::Linearizable, pb::Consistency::Stale];

/// The read info is complete: every shard answered, and a linearizable
/// read waited for a read index its replica had applied.
fn check_read(read: Option<&pb::ReadInfo>, c: pb::Consistency, shards: usize) {
    let read = read.expect("read info");
    assert_eq!(read.consistency, c as i32, "{read:?}");
    assert_eq!(read.shards.len(), shards, "{read:?}");
    let ids: BTreeSet<u64> = read.shards.iter().map(|s| s.shard).collect();
    assert_eq!(ids.len(), shards, "{read:?}");
    let min = read.shards.iter().map(|s| s.applied_index).min().unwrap();
    assert_eq!(read.min_applied_index, min, "{read:?}");
    // A stale read may come from a replica that has applied nothing yet
    // (a follower the leader's first append has not reached); it says so.
    if c == pb::Consistency::Linearizable {
        assert!(min > 0, "{read:?}");
    }
    for s in &read.shards {
        match c {
            pb::Consistency::Linearizable => {
                assert!(s.read_index > 0, "{read:?}");
                assert!(s.applied_index >= s.read_index, "{read:?}");
            }
            pb::Consistency::Stale => {
                assert_eq!(s.read_index, 0, "{read:?}");
                assert_eq!(
                    s.lag_entries,
                    s.known_commit_index - s.applied_index,
                    "{read:?}"
                );
            }
        }
        assert!(s.known_commit_index >= s.applied_index, "{read:?}");
        if c == pb::Consistency::Linearizable {
            assert_eq!(s.lag_entries, 0, "{read:?}");
        }
    }
    let max_lag = read.shards.iter().map(|s| s.lag_entries).max().unwrap();
    assert_eq!(read.max_lag_entries, max_lag, "{read:?}");
}

/// Polls `ask` until it returns `want`: at once for linearizable reads,
/// which must reflect every acknowledged write; stale reads may lag.
async fn settle<T, F, Fut>(c: pb::Consistency, what: &str, want: &T, mut ask: F)
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = ask().await;
        if &got == want {
            return;
        }
        assert!(
            c == pb::Consistency::Stale && Instant::now() < deadline,
            "{what} at {c:?}: got {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn instant(
    q: &mut Client,
    ms: Vec<pb::LabelMatcher>,
    t: i64,
    lookback: i64,
    c: pb::Consistency,
) -> Result<pb::InstantResponse, tonic::Status> {
    q.instant(pb::InstantRequest {
        matchers: ms,
        time_ms: t,
        lookback_delta_ms: lookback,
        consistency: c as i32,
        limits: None,
    })
    .await
    .map(|r| r.into_inner())
}

fn range_req(
    ms: Vec<pb::LabelMatcher>,
    start: i64,
    end: i64,
    step: i64,
    lookback: i64,
    c: pb::Consistency,
) -> pb::RangeRequest {
    pb::RangeRequest {
        matchers: ms,
        start_ms: start,
        end_ms: end,
        step_ms: step,
        lookback_delta_ms: lookback,
        consistency: c as i32,
        limits: None,
    }
}

#[test]
fn instant_range_series_and_labels_merge_every_shard() {
    let c = Cluster::start(3, SHARDS as u32, 3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (series, w) = data();
        write(&c.endpoint(1), series).await;
        // 21 series over 4 shards by hash: they all land in one shard with
        // probability 4 · 4^-21, so every answer below is a merge.
        for node in 1..=3 {
            let q = Client::new(channel(&c.endpoint(node)).await);
            for cons in CONSISTENCIES {
                answers_match_the_model(&q, &w, cons).await;
            }
        }
        let mut q = Client::new(channel(&c.endpoint(2)).await);
        bad_input_is_invalid_argument(&mut q).await;
        lowered_limits_are_resource_exhausted(&mut q).await;
    });
    // The Raft log's counters are exported and moved with the writes.
    for node in 1..=3 {
        let text = http_get(&c.specs[&node].http, "/metrics");
        for name in [
            "raftwatch_log_fsyncs_total",
            "raftwatch_log_entries_appended_total",
            "raftwatch_log_records_total",
            "raftwatch_log_bytes_written_total",
        ] {
            let v = metric(&text, name).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
            assert!(v > 0.0, "{name} is {v} on node {node}");
        }
    }
}

/// A plain HTTP/1.0 GET; returns the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    body.to_string()
}

/// The value of the first sample of metric `name` in exposition `text`.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

const SHARDS: usize = 4;
/// The time of every series' last sample.
const LAST: i64 = T0 + (SAMPLES - 1) * INTERVAL_MS;

fn up() -> Vec<pb::LabelMatcher> {
    vec![eq("__name__", "qa_up")]
}

async fn instant_points(mut q: Client, t: i64, lookback: i64, c: pb::Consistency) -> Points {
    let r = instant(&mut q, up(), t, lookback, c).await.unwrap();
    check_read(r.read.as_ref(), c, SHARDS);
    points(&r.series)
}

async fn range_points(mut q: Client, r: pb::RangeRequest) -> Points {
    let c = pb::Consistency::try_from(r.consistency).unwrap();
    let r = q.range(r).await.unwrap().into_inner();
    check_read(r.read.as_ref(), c, SHARDS);
    points(&r.series)
}

async fn series_of(mut q: Client, r: pb::SeriesRequest) -> Vec<LabelSet> {
    let c = pb::Consistency::try_from(r.consistency).unwrap();
    let r = q.series(r).await.unwrap().into_inner();
    check_read(r.read.as_ref(), c, SHARDS);
    r.series.iter().map(|s| key(&s.labels)).collect()
}

async fn names_of(mut q: Client, ms: Vec<pb::LabelMatcher>, c: pb::Consistency) -> Vec<String> {
    let r = q
        .label_names(pb::LabelNamesRequest {
            matchers: ms,
            consistency: c as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    check_read(r.read.as_ref(), c, SHARDS);
    r.names
}

async fn values_of(
    mut q: Client,
    name: &str,
    ms: Vec<pb::LabelMatcher>,
    c: pb::Consistency,
) -> Vec<String> {
    let r = q
        .label_values(pb::LabelValuesRequest {
            name: name.into(),
            matchers: ms,
            consistency: c as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    check_read(r.read.as_ref(), c, SHARDS);
    r.values
}

/// Every kind of query through `q` at `cons` equals the model.
async fn answers_match_the_model(q: &Client, w: &Written, cons: pb::Consistency) {
    // Instant, default lookback (5 min): every series but the one that
    // ended with a staleness marker, reported at t.
    let t = LAST + 10_000;
    let want = model(w, &up(), t, t, 1, 300_000);
    assert_eq!(want.len(), SERIES as usize - 1);
    settle(cons, "instant", &want, || {
        instant_points(q.clone(), t, 0, cons)
    })
    .await;

    // The window is (t - lookback, t]: a sample exactly lookback old is
    // out, one a millisecond newer is in.
    let t = T0 + 5 * INTERVAL_MS + 5_000;
    let want = model(w, &up(), t, t, 1, 5_000);
    assert!(want.is_empty());
    settle(cons, "instant at the window's edge", &want, || {
        instant_points(q.clone(), t, 5_000, cons)
    })
    .await;
    let want = model(w, &up(), t, t, 1, 5_001);
    assert_eq!(want.len(), SERIES as usize);
    settle(cons, "instant just inside the window", &want, || {
        instant_points(q.clone(), t, 5_001, cons)
    })
    .await;

    // Range over job="a" (which holds the stale series): steps that fall
    // between samples, past the last sample, and past the staleness marker.
    let ms = vec![eq("__name__", "qa_up"), eq("job", "a")];
    let (start, end, step, lookback) = (T0 - 20_000, LAST + 60_000, 15_000, 20_000);
    let want = model(w, &ms, start, end, step, lookback);
    assert_eq!(want.len(), SERIES as usize / 2);
    let req = range_req(ms, start, end, step, lookback, cons);
    settle(cons, "range", &want, || {
        range_points(q.clone(), req.clone())
    })
    .await;

    // Series: label sets, sorted; none outside the data's time span.
    let want: Vec<LabelSet> = w
        .keys()
        .filter(|l| value_of(l, "job") == "b")
        .cloned()
        .collect();
    let req = pb::SeriesRequest {
        matchers: vec![eq("job", "b")],
        start_ms: Some(T0),
        end_ms: Some(LAST),
        consistency: cons as i32,
        limits: None,
    };
    settle(cons, "series", &want, || series_of(q.clone(), req.clone())).await;
    let req = pb::SeriesRequest {
        start_ms: Some(LAST + 1),
        end_ms: None,
        ..req
    };
    assert!(series_of(q.clone(), req).await.is_empty());

    // Label names: every series' without matchers; only qa_up's with one.
    let want = strs(&["__name__", "inst", "job", "zone"]);
    settle(cons, "label names", &want, || {
        names_of(q.clone(), vec![], cons)
    })
    .await;
    let want = strs(&["__name__", "inst", "job"]);
    settle(cons, "label names of qa_up", &want, || {
        names_of(q.clone(), up(), cons)
    })
    .await;

    // Label values: sorted unique, optionally filtered.
    let want = strs(&["a", "b"]);
    settle(cons, "job values", &want, || {
        values_of(q.clone(), "job", vec![], cons)
    })
    .await;
    let mut even: Vec<String> = (0..SERIES)
        .filter(|i| i % 2 == 0)
        .map(|i| i.to_string())
        .collect();
    even.sort();
    settle(cons, "inst values of job a", &even, || {
        values_of(q.clone(), "inst", vec![eq("job", "a")], cons)
    })
    .await;
    let want = strs(&["z1"]);
    settle(cons, "zone values", &want, || {
        values_of(q.clone(), "zone", vec![], cons)
    })
    .await;
}

async fn bad_input_is_invalid_argument(q: &mut Client) {
    use pb::MatchType::*;
    let lin = pb::Consistency::Linearizable;
    let invalid = |r: Result<(), tonic::Status>, want: &str| {
        let e = r.expect_err(want);
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
        assert!(e.message().contains(want), "{e} does not say {want:?}");
    };
    let empty = "vector selector must contain at least one non-empty matcher";
    invalid(instant(q, vec![], T0, 0, lin).await.map(drop), empty);
    invalid(
        instant(q, vec![eq("job", "")], T0, 0, lin).await.map(drop),
        empty,
    );
    invalid(
        instant(
            q,
            vec![
                matcher(MatchRegex, "job", ".*"),
                matcher(MatchNotEqual, "x", "y"),
            ],
            T0,
            0,
            lin,
        )
        .await
        .map(drop),
        empty,
    );
    invalid(
        instant(q, vec![matcher(MatchRegex, "job", "(")], T0, 0, lin)
            .await
            .map(drop),
        "regular expression",
    );
    invalid(
        instant(q, vec![eq("job", "a")], T0, -1, lin)
            .await
            .map(drop),
        "lookback",
    );
    let range = |start, end, step| range_req(vec![eq("job", "a")], start, end, step, 0, lin);
    invalid(
        q.range(range(T0, T0 - 1, 1_000)).await.map(drop),
        "end timestamp must not be before start time",
    );
    invalid(q.range(range(T0, T0 + 1, 0)).await.map(drop), "step");
    invalid(q.range(range(T0, T0 + 1, -10)).await.map(drop), "step");
    invalid(
        q.range(range(T0, T0 + 11_001, 1)).await.map(drop),
        "exceeded maximum resolution of 11,000 points per timeseries",
    );
    assert!(q.range(range(T0, T0 + 11_000, 1)).await.is_ok());
    invalid(
        q.series(pb::SeriesRequest {
            matchers: vec![eq("job", "a")],
            start_ms: Some(T0),
            end_ms: Some(T0 - 1),
            ..Default::default()
        })
        .await
        .map(drop),
        "end timestamp must not be before start time",
    );
    invalid(
        q.series(pb::SeriesRequest::default()).await.map(drop),
        empty,
    );
    invalid(
        q.label_names(pb::LabelNamesRequest {
            matchers: vec![eq("job", "")],
            ..Default::default()
        })
        .await
        .map(drop),
        empty,
    );
    invalid(
        q.label_values(pb::LabelValuesRequest::default())
            .await
            .map(drop),
        "label name",
    );
    invalid(
        q.instant(pb::InstantRequest {
            matchers: vec![eq("job", "a")],
            consistency: 7,
            ..Default::default()
        })
        .await
        .map(drop),
        "consistency",
    );
}

async fn lowered_limits_are_resource_exhausted(q: &mut Client) {
    let lin = pb::Consistency::Linearizable as i32;
    let exhausted = |r: Result<(), tonic::Status>, want: &str| {
        let e = r.expect_err(want);
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e}");
        assert!(e.message().contains(want), "{e} does not say {want:?}");
    };
    let limits = |series_max, samples_max| {
        Some(pb::QueryLimits {
            series_max,
            samples_max,
            timeout_ms: 0,
        })
    };
    let last = LAST;
    let inst = |l| pb::InstantRequest {
        matchers: vec![eq("__name__", "qa_up")],
        time_ms: last,
        consistency: lin,
        limits: l,
        ..Default::default()
    };
    // 20 series, spread over the shards: over the limit only in sum, or
    // already on a single shard; either way the same answer.
    exhausted(
        q.instant(inst(limits(5, 0))).await.map(drop),
        "(the series limit)",
    );
    exhausted(
        q.instant(inst(limits(19, 0))).await.map(drop),
        "more than 19 series",
    );
    assert_eq!(
        q.instant(inst(limits(20, 0)))
            .await
            .unwrap()
            .into_inner()
            .series
            .len(),
        20
    );
    exhausted(
        q.instant(inst(limits(0, 19))).await.map(drop),
        "more than 19 samples (the samples limit)",
    );
    let range = |l| pb::RangeRequest {
        limits: l,
        ..range_req(
            vec![eq("__name__", "qa_up")],
            T0,
            last,
            INTERVAL_MS,
            0,
            pb::Consistency::Linearizable,
        )
    };
    // 20 series × 10 steps, but the stale one has 10 points too (the
    // marker comes after the last step).
    exhausted(
        q.range(range(limits(0, 199))).await.map(drop),
        "(the samples limit)",
    );
    assert!(q.range(range(limits(0, 200))).await.is_ok());
    exhausted(
        q.series(pb::SeriesRequest {
            matchers: vec![eq("__name__", "qa_up")],
            consistency: lin,
            limits: limits(3, 0),
            ..Default::default()
        })
        .await
        .map(drop),
        "(the series limit)",
    );
    exhausted(
        q.label_values(pb::LabelValuesRequest {
            name: "inst".into(),
            consistency: lin,
            limits: limits(3, 0),
            ..Default::default()
        })
        .await
        .map(drop),
        "(the series limit)",
    );
    // Asking for more than the default gets the default, which is ample.
    assert!(q.instant(inst(limits(u64::MAX, u64::MAX))).await.is_ok());
}
