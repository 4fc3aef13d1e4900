//! The client library routes writes straight to shard leaders on a real
//! cluster (3 nodes, 8 shards, 3 replicas, first leaders spread over the
//! nodes): no node forwards a shard part (`/metrics`
//! `raftwatch_write_shard_parts_total{route="forwarded"}` stays 0, while a
//! whole request sent to one node does make it forward); rejections come
//! back in the caller's numbering; after a shard leader is killed the
//! client follows hints and refreshes its map, and every acknowledged
//! sample reads back exactly once. `raftwatch-bench ingest` and `query`
//! run through the client and print the CONTRACTS fields; `ingest` over
//! remote write (an `http://` target) is acknowledged whole and reads back.

// Real processes in real time: the determinism seams do not apply here.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use raftwatch_client::{Client, ClientConfig};
use raftwatch_proto::v1 as pb;
use raftwatch_tests::Cluster;

const SERIES: u64 = 200;

fn label(name: &str, value: &str) -> pb::Label {
    pb::Label {
        name: name.into(),
        value: value.into(),
    }
}

/// Request `r`: one sample at `r` seconds for each of `SERIES` series.
fn request(r: u64) -> Vec<pb::Series> {
    (0..SERIES)
        .map(|k| pb::Series {
            labels: vec![label("__name__", "routed"), label("k", &k.to_string())],
            samples: vec![pb::Sample {
                timestamp_ms: (r * 1_000) as i64,
                value: (r * 1_000 + k) as f64,
            }],
        })
        .collect()
}

/// `GET /metrics` from a node's HTTP address.
fn metrics(http_addr: &str) -> String {
    let mut s = TcpStream::connect(http_addr).expect("connect to /metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {http_addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

/// The value of the sample of `name` whose labels include `label`.
fn counter(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} with {label} in:\n{text}"))
}

/// Sums a counter over the running nodes.
fn total(c: &Cluster, name: &str, label: &str) -> u64 {
    c.procs
        .keys()
        .map(|id| counter(&metrics(&c.specs[id].http), name, label))
        .sum()
}

const FORWARDED: (&str, &str) = ("raftwatch_write_shard_parts_total", r#"route="forwarded""#);
const PINNED: (&str, &str) = ("raftwatch_write_requests_total", r#"routing="shard""#);
const ANY: (&str, &str) = ("raftwatch_write_requests_total", r#"routing="any""#);

#[test]
fn client_writes_go_to_shard_leaders_directly_and_survive_a_leader_kill() {
    let mut c = Cluster::start(3, 8, 3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Only node 1 is configured: the map tells the client where the other
    // leaders are.
    let client = Client::new(
        vec![c.endpoint(1)],
        ClientConfig {
            seed: 11,
            ..ClientConfig::default()
        },
    )
    .unwrap();

    let mut rpcs = 0;
    for r in 0..20 {
        let (result, stats) =
            rt.block_on(client.write_with_stats(request(r), Some(format!("routed-{r}"))));
        let answer = result.unwrap_or_else(|e| panic!("write {r}: {e}"));
        assert!(answer.rejections.is_empty(), "{:?}", answer.rejections);
        assert_eq!(answer.samples_accepted, SERIES);
        assert!(stats.routed);
        assert_eq!(stats.parts, 8, "200 series touch every shard");
        rpcs += stats.rpcs;
    }
    let map = client.shard_map().expect("the client read the map");
    assert_eq!(map.routes().len(), 8);
    // First leaders spread over the nodes (replica (id - 1) mod RF), so
    // sending everything to node 1 would have forwarded most parts.
    assert_eq!(total(&c, FORWARDED.0, FORWARDED.1), 0, "no part forwarded");
    assert_eq!(total(&c, PINNED.0, PINNED.1), rpcs, "every RPC pinned");
    assert_eq!(total(&c, ANY.0, ANY.1), 0);

    // Rejections keep the caller's numbering: series 5 of this request
    // has a duplicate label name.
    let mut bad = request(20);
    bad[5].labels.push(label("k", "again"));
    let answer = rt.block_on(client.write(bad, None)).unwrap();
    assert_eq!(answer.samples_accepted, SERIES - 1);
    assert_eq!(answer.rejections.len(), 1, "{:?}", answer.rejections);
    assert_eq!(answer.rejections[0].series_index, 5);
    assert!(
        answer.rejections[0].reason.contains("duplicate"),
        "{:?}",
        answer.rejections[0]
    );

    // The control: the same kind of request whole to node 1 makes it
    // forward the parts of the shards it does not lead. (The observable
    // can fail.)
    let whole = Client::new(
        vec![c.endpoint(1)],
        ClientConfig {
            seed: 12,
            routing: raftwatch_client::Routing::AnyNode,
            ..ClientConfig::default()
        },
    )
    .unwrap();
    rt.block_on(whole.write(request(21), None)).unwrap();
    let forwarded = total(&c, FORWARDED.0, FORWARDED.1);
    assert!(forwarded > 0, "a whole request to one node is forwarded");
    assert_eq!(total(&c, ANY.0, ANY.1), 1);

    // Kill the node leading shard 1 (as the client's map has it).
    let status = c.status();
    let shard = status["shards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == 1)
        .unwrap();
    let victim = shard["leader"].as_u64().unwrap();
    assert_ne!(victim, 0);
    let forwarded_by_others: u64 = c
        .procs
        .keys()
        .filter(|id| **id != victim)
        .map(|id| counter(&metrics(&c.specs[id].http), FORWARDED.0, FORWARDED.1))
        .sum();
    c.kill(victim);
    let mut recovered = false;
    for r in 22..40 {
        let (result, stats) =
            rt.block_on(client.write_with_stats(request(r), Some(format!("routed-{r}"))));
        let answer = result.unwrap_or_else(|e| panic!("write {r} after killing {victim}: {e}"));
        assert!(answer.rejections.is_empty(), "{:?}", answer.rejections);
        assert_eq!(answer.samples_accepted, SERIES);
        if !stats.failed_attempts.is_empty() {
            eprintln!(
                "write {r} after killing node {victim}: {} RPCs, {} failed ({:?}), {} map reads",
                stats.rpcs,
                stats.failed_attempts.len(),
                stats
                    .failed_attempts
                    .iter()
                    .map(|s| s.code())
                    .collect::<Vec<_>>(),
                stats.map_refreshes
            );
        }
        recovered |= !stats.failed_attempts.is_empty();
        assert!(stats.routed);
    }
    assert!(
        recovered,
        "the first write after the kill met the dead leader"
    );
    let forwarded_after: u64 = c
        .procs
        .keys()
        .map(|id| counter(&metrics(&c.specs[id].http), FORWARDED.0, FORWARDED.1))
        .sum();
    assert_eq!(
        forwarded_after, forwarded_by_others,
        "no node forwarded a part while routing around the dead leader"
    );

    // Every acknowledged sample is there exactly once.
    let read = rt
        .block_on(client.select(
            vec![pb::LabelMatcher {
                r#type: pb::MatchType::MatchEqual as i32,
                name: "__name__".into(),
                value: "routed".into(),
            }],
            i64::MIN,
            i64::MAX,
            pb::Consistency::Linearizable,
        ))
        .unwrap();
    let mut got: BTreeMap<(String, i64), Vec<f64>> = BTreeMap::new();
    for s in read.series {
        let k = s
            .labels
            .iter()
            .find(|l| l.name == "k")
            .unwrap()
            .value
            .clone();
        for x in s.samples {
            got.entry((k.clone(), x.timestamp_ms))
                .or_default()
                .push(x.value);
        }
    }
    let mut want: BTreeMap<(String, i64), Vec<f64>> = BTreeMap::new();
    for r in (0..40).filter(|r| *r != 20) {
        for s in request(r) {
            let k = s.labels[1].value.clone();
            want.insert((k, s.samples[0].timestamp_ms), vec![s.samples[0].value]);
        }
    }
    // Request 20 lost series 5 to the rejection.
    for (k, s) in request(20).into_iter().enumerate().filter(|(k, _)| *k != 5) {
        want.insert(
            (k.to_string(), s.samples[0].timestamp_ms),
            vec![s.samples[0].value],
        );
    }
    assert_eq!(got.len(), want.len());
    assert!(got == want, "read-back differs from what was acknowledged");
}

/// Runs `raftwatch-bench` with `args` and returns its JSON report.
fn bench(args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(raftwatch_tests::bin("raftwatch-bench"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "raftwatch-bench {args:?}: {stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bench output is not JSON ({e}): {stderr}"))
}

#[test]
fn bench_ingest_and_query_run_through_the_client_with_the_contract_fields() {
    let c = Cluster::start(3, 4, 3);
    let target = format!("grpc://{}", c.specs[&2].grpc);
    let args = [
        "ingest",
        "--target",
        &target,
        "--series",
        "500",
        "--rounds",
        "3",
        "--concurrency",
        "4",
        "--batch-series",
        "100",
        "--retries",
        "3",
    ];
    let report = bench(&args);
    for field in [
        "samples_sent",
        "samples_acked",
        "samples_per_sec",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "errors",
    ] {
        assert!(report.get(field).is_some(), "no {field} in {report}");
    }
    assert_eq!(report["samples_sent"], 1_500);
    assert_eq!(report["samples_acked"], 1_500, "{report}");
    assert_eq!(report["errors"], serde_json::json!({}), "{report}");
    assert_eq!(report["routing"], "leaders");
    // 15 requests of 100 series over 4 shards: one RPC per shard touched.
    assert_eq!(report["requests"], 15);
    assert!(report["rpcs"].as_u64().unwrap() > 15, "{report}");
    assert_eq!(total(&c, FORWARDED.0, FORWARDED.1), 0, "no part forwarded");

    // The same data again in a new run: the run's own request ids, so the
    // samples reach the shards — the last round's as duplicates (no-ops,
    // accepted), the earlier rounds' refused as out of order — instead of
    // being answered from the shards' memory of the first run's ids (which
    // would report all 1,500 accepted).
    let again = bench(&args);
    assert_eq!(again["samples_acked"], 500, "{again}");
    assert_eq!(again["errors"]["rejected"], 1_000, "{again}");

    let report = bench(&[
        "query",
        "--target",
        &target,
        "--expr",
        "node_filesystem_files",
        "--queries",
        "5",
    ]);
    for field in ["p50_ms", "p99_ms", "series"] {
        assert!(report.get(field).is_some(), "no {field} in {report}");
    }
    assert!(report["series"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["errors"], serde_json::json!({}), "{report}");
}

#[test]
fn bench_ingest_over_remote_write_reads_back() {
    let c = Cluster::start(3, 4, 3);
    let target = format!("http://{}/api/v1/write", c.specs[&1].http);
    let report = bench(&[
        "ingest",
        "--target",
        &target,
        "--series",
        "300",
        "--rounds",
        "2",
        "--concurrency",
        "2",
        "--batch-series",
        "100",
        "--retries",
        "5",
    ]);
    assert_eq!(report["samples_sent"], 600, "{report}");
    assert_eq!(report["samples_acked"], 600, "{report}");
    assert_eq!(report["failed_requests"], 0, "{report}");
    assert_eq!(report["routing"], "remote-write");
    assert_eq!(report["requests"], 6, "{report}");
    let grpc = format!("grpc://{}", c.specs[&2].grpc);
    let read = bench(&[
        "query",
        "--target",
        &grpc,
        "--expr",
        r#"{job="node"}"#,
        "--queries",
        "1",
    ]);
    assert_eq!(read["series"], 300, "{read}");
    assert_eq!(read["samples"], 600, "{read}");
}
