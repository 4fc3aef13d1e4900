//! `GET /metrics` on a real cluster (3 nodes, 4 shards, 3 replicas): the
//! answer is valid Prometheus text exposition format on every node; the
//! ingest counters move with gRPC and remote writes on the node that
//! received them (accepted, and refused out-of-order samples by reason);
//! query latency and errors are counted by kind and code; every group the
//! node hosts (per `NodeInternal.LocalStatus`) has its Raft gauges, and
//! the apply lag is the commit index minus the applied index.

// Real processes in real time: the determinism seams do not apply here.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use prost::Message;
use raftwatch_proto::prometheus as prom;
use raftwatch_proto::v1 as pb;
use raftwatch_tests::Cluster;
use raftwatch_tests::exposition::{self, Family};
use tonic::transport::Channel;

const T0: i64 = 1_700_000_000_000;
const SERIES: usize = 12;
const SAMPLES: usize = 5;

/// A raw HTTP/1.0 request; returns (status, headers, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    head: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in head {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    (status, head.to_string(), body.to_string())
}

/// `/metrics` of the node at `addr`, checked and parsed.
fn scrape(addr: &str) -> (String, BTreeMap<String, Family>) {
    let (status, head, text) = http(addr, "GET", "/metrics", &[], b"");
    assert_eq!(status, 200, "{head}\n{text}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let families = exposition::parse(&text).unwrap_or_else(|e| panic!("{addr}: {e}\n{text}"));
    (text, families)
}

/// The value of the sample `name` whose labels include every one of
/// `labels` (0 if the family has no such sample).
fn value(
    families: &BTreeMap<String, Family>,
    family: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let f = families
        .get(family)
        .unwrap_or_else(|| panic!("no family {family}"));
    f.samples
        .iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
        .map_or(0.0, |s| s.value)
}

fn counter(families: &BTreeMap<String, Family>, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(families, name, name, labels)
}

/// The groups a family has a sample for, with their values.
fn by_group(families: &BTreeMap<String, Family>, name: &str) -> BTreeMap<u64, f64> {
    families
        .get(name)
        .unwrap_or_else(|| panic!("no family {name}"))
        .samples
        .iter()
        .map(|s| {
            let g = s.label("group").expect("a group label").parse().unwrap();
            (g, s.value)
        })
        .collect()
}

async fn channel(endpoint: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(60))
        .connect()
        .await
        .unwrap()
}

fn label(name: &str, value: &str) -> pb::Label {
    pb::Label {
        name: name.into(),
        value: value.into(),
    }
}

fn series(metric: &str) -> Vec<pb::Series> {
    (0..SERIES)
        .map(|i| pb::Series {
            labels: vec![label("__name__", metric), label("i", &i.to_string())],
            samples: (0..SAMPLES)
                .map(|k| pb::Sample {
                    timestamp_ms: T0 + k as i64 * 15_000,
                    value: (i * 100 + k) as f64,
                })
                .collect(),
        })
        .collect()
}

#[test]
fn metrics_are_valid_exposition_text_and_move_with_writes_and_queries() {
    let c = Cluster::start(3, 4, 3);
    let http_of = |id: u64| c.specs[&id].http.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_, before1) = scrape(&http_of(1));
    let (_, before2) = scrape(&http_of(2));
    let (_, before3) = scrape(&http_of(3));
    let grpc = [("protocol", "grpc")];
    let rw = [("protocol", "remote_write")];

    // gRPC Ingest.Write to node 1 (the node routes it), retried until
    // acknowledged: a retry re-sends identical samples, which count as
    // accepted again, so the counters move by at least the sample count.
    let total = (SERIES * SAMPLES) as f64;
    rt.block_on(async {
        let mut client = pb::ingest_client::IngestClient::new(channel(&c.endpoint(1)).await);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let req = pb::WriteRequest {
                series: series("mx_grpc"),
                ..Default::default()
            };
            match client.write(req).await {
                Ok(r) => {
                    let r = r.into_inner();
                    assert!(r.rejections.is_empty(), "{:?}", r.rejections);
                    break;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "write never acknowledged: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });

    // Remote write to node 2, twice: the second time every sample but
    // each series' newest (an exact duplicate, accepted) is out of order.
    let mut rw_req = prom::WriteRequest::default();
    for s in series("mx_rw") {
        rw_req.timeseries.push(prom::TimeSeries {
            labels: s
                .labels
                .iter()
                .map(|l| prom::Label {
                    name: l.name.clone(),
                    value: l.value.clone(),
                })
                .collect(),
            samples: s
                .samples
                .iter()
                .map(|x| prom::Sample {
                    value: x.value,
                    timestamp: x.timestamp_ms,
                })
                .collect(),
            histograms: vec![],
        });
    }
    let body = snap::raw::Encoder::new()
        .compress_vec(&rw_req.encode_to_vec())
        .unwrap();
    let head = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    let post = || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, _, text) = http(&http_of(2), "POST", "/api/v1/write", &head, &body);
            if status != 503 || Instant::now() > deadline {
                return (status, text);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let (status, text) = post();
    assert_eq!(status, 204, "{text}");
    let (status, text) = post();
    assert_eq!(status, 400, "{text}");
    // And a body that is not snappy: refused before the ingest path.
    let (status, _, _) = http(&http_of(2), "POST", "/api/v1/write", &head, b"not snappy");
    assert_eq!(status, 400);

    // Queries on node 3: one that answers, one refused as invalid.
    rt.block_on(async {
        let mut q = pb::query_client::QueryClient::new(channel(&c.endpoint(3)).await);
        let ok = q
            .instant(pb::InstantRequest {
                matchers: vec![pb::LabelMatcher {
                    r#type: pb::MatchType::MatchEqual as i32,
                    name: "__name__".into(),
                    value: "mx_grpc".into(),
                }],
                time_ms: T0 + 60_000,
                lookback_delta_ms: 0,
                consistency: pb::Consistency::Linearizable as i32,
                limits: None,
            })
            .await
            .expect("instant query");
        assert_eq!(ok.into_inner().series.len(), SERIES);
        let bad = q
            .instant(pb::InstantRequest {
                matchers: vec![],
                ..Default::default()
            })
            .await
            .expect_err("no matcher is invalid");
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    });

    // Node 1 counted the gRPC write; node 2 the remote writes.
    let (_, after1) = scrape(&http_of(1));
    let accepted = "raftwatch_ingest_samples_accepted_total";
    let received = "raftwatch_ingest_samples_received_total";
    let requests = "raftwatch_ingest_requests_total";
    let rejected = "raftwatch_ingest_samples_rejected_total";
    let moved = |a: &BTreeMap<String, Family>,
                 b: &BTreeMap<String, Family>,
                 name: &str,
                 l: &[(&str, &str)]| { counter(a, name, l) - counter(b, name, l) };
    assert!(moved(&after1, &before1, accepted, &grpc) >= total);
    assert!(moved(&after1, &before1, received, &grpc) >= total);
    assert!(
        moved(
            &after1,
            &before1,
            requests,
            &[("protocol", "grpc"), ("outcome", "success")]
        ) >= 1.0
    );
    let duration = "raftwatch_ingest_request_duration_seconds";
    let count = format!("{duration}_count");
    assert!(
        value(&after1, duration, &count, &grpc) - value(&before1, duration, &count, &grpc) >= 1.0
    );

    let (_, after2) = scrape(&http_of(2));
    // First post: all accepted; second: the newest of each series again.
    assert!(moved(&after2, &before2, accepted, &rw) >= total + SERIES as f64);
    let out_of_order = [("protocol", "remote_write"), ("reason", "out_of_order")];
    assert!(
        moved(&after2, &before2, rejected, &out_of_order) >= (SERIES * (SAMPLES - 1)) as f64,
        "out-of-order samples not counted"
    );
    for (outcome, at_least) in [("success", 1.0), ("partial", 1.0), ("invalid", 1.0)] {
        let l = [("protocol", "remote_write"), ("outcome", outcome)];
        assert!(
            moved(&after2, &before2, requests, &l) >= at_least,
            "{outcome}"
        );
    }
    // Node 2 saw no gRPC write.
    assert_eq!(moved(&after2, &before2, received, &grpc), 0.0);

    let (_, after3) = scrape(&http_of(3));
    let qd = "raftwatch_query_duration_seconds";
    let qcount = format!("{qd}_count");
    let instant = [("kind", "instant")];
    assert_eq!(
        value(&after3, qd, &qcount, &instant) - value(&before3, qd, &qcount, &instant),
        2.0
    );
    assert_eq!(
        counter(
            &after3,
            "raftwatch_query_errors_total",
            &[("kind", "instant"), ("code", "invalid_argument")]
        ),
        1.0
    );

    // Every node: build info, start time, and the Raft gauges of exactly
    // the groups it hosts.
    for id in 1..=3 {
        let local: BTreeSet<u64> = rt.block_on(async {
            let mut n =
                pb::node_internal_client::NodeInternalClient::new(channel(&c.endpoint(id)).await);
            let r = n
                .local_status(pb::LocalStatusRequest {})
                .await
                .unwrap()
                .into_inner();
            r.groups.iter().map(|g| g.group).collect()
        });
        // 3 nodes, 3 replicas: every node hosts the control group and
        // every shard.
        assert_eq!(local, (0..=4).collect(), "node {id}'s groups");
        // A follower has term and role as soon as it votes, but its log
        // (and so its index gauges) only once the leader's first append
        // reaches it; a node that started last can still be waiting for
        // that here. Scrape until it has caught up, then check everything
        // on that one scrape.
        let deadline = Instant::now() + Duration::from_secs(60);
        let (text, f) = loop {
            let (text, f) = scrape(&http_of(id));
            let covered = [
                "raftwatch_group_last_log_index",
                "raftwatch_group_commit_index",
                "raftwatch_group_applied_index",
            ]
            .iter()
            .all(|name| {
                f.contains_key(*name)
                    && by_group(&f, name).into_keys().collect::<BTreeSet<_>>() == local
            });
            if covered || Instant::now() > deadline {
                break (text, f);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(counter(&f, "raftwatch_build_info", &[]), 1.0, "{text}");
        assert!(counter(&f, "raftwatch_start_time_seconds", &[]) > 1.6e9);
        for name in [
            "raftwatch_group_term",
            "raftwatch_group_is_leader",
            "raftwatch_group_last_log_index",
            "raftwatch_group_commit_index",
            "raftwatch_group_applied_index",
            "raftwatch_group_apply_lag_entries",
        ] {
            assert_eq!(f[name].kind, "gauge", "{name}");
            let groups: BTreeSet<u64> = by_group(&f, name).into_keys().collect();
            assert_eq!(groups, local, "node {id}: {name}\n{text}");
        }
        let commit = by_group(&f, "raftwatch_group_commit_index");
        let applied = by_group(&f, "raftwatch_group_applied_index");
        let lag = by_group(&f, "raftwatch_group_apply_lag_entries");
        for g in &local {
            assert!(by_group(&f, "raftwatch_group_term")[g] >= 1.0);
            assert!(commit[g] >= applied[g], "group {g}");
            assert_eq!(lag[g], commit[g] - applied[g], "group {g}");
        }
        for name in [
            "raftwatch_log_fsyncs_total",
            "raftwatch_log_entries_appended_total",
        ] {
            assert_eq!(f[name].kind, "counter");
            assert!(counter(&f, name, &[]) > 0.0, "{name} on node {id}");
        }
        // Every sample carries the node's id.
        let node = id.to_string();
        for family in f.values() {
            for s in &family.samples {
                assert_eq!(s.label("node"), Some(node.as_str()), "{}", s.name);
            }
        }
    }
}
