//! Real clusters on 127.0.0.1: `raftwatch dev`, joins, rebalancing,
//! drains, removals, a control-leader failover in the middle of a move,
//! and the operator CLI's refusals. Every test polls with generous
//! deadlines and asserts outcomes, never timings.

// Real processes in real time: the test drives the cluster from outside,
// so the determinism seams do not apply here.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use raftwatch_proto::v1 as pb;
use raftwatch_tests::{Cluster, bin, ctl, free_port_block, is_ready, replica_counts, tasks};
use serde_json::Value;

/// Every shard has at least `rf` replicas in the shard map.
fn assert_rf(v: &Value, rf: usize) {
    for s in v["shards"].as_array().unwrap() {
        let n = s["replicas"].as_array().unwrap().len();
        assert!(n >= rf, "shard {} has {n} replicas (< {rf}): {s}", s["id"]);
    }
}

fn shard_map(v: &Value) -> Vec<(u64, Vec<u64>)> {
    v["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_u64().unwrap(),
                s["replicas"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_u64().unwrap())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn dev_comes_up_ready_and_refusals_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_port_block(6);
    let start_dev = || {
        Command::new(bin("raftwatch"))
            .args(["dev", "--base-port", &base.to_string(), "--data-dir"])
            .arg(dir.path().join("data"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let endpoint = format!("http://127.0.0.1:{base}");
    for run in 0..2 {
        // The second run reuses the data directory of the first.
        let mut dev = start_dev();
        let stdout = dev.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(raftwatch_tests::read_line_until(stdout, "ready")));
        let ready = rx.recv_timeout(Duration::from_secs(120));
        assert_eq!(
            ready,
            Ok(true),
            "run {run}: `raftwatch dev` never printed ready"
        );
        let out = ctl(&endpoint, &["--output", "json", "cluster", "status"]);
        assert_eq!(out.code, 0, "{out:?}");
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["members"].as_array().unwrap().len(), 3, "{v}");
        assert!(
            is_ready(&v, 3),
            "run {run}: not every shard has a leader: {v}"
        );
        assert_eq!(v["shards"].as_array().unwrap().len(), 8);
        for s in v["shards"].as_array().unwrap() {
            assert_eq!(s["replicas"].as_array().unwrap().len(), 3, "{s}");
            for k in ["id", "leader", "term", "commit_index", "applied_index"] {
                assert!(s[k].is_u64(), "shard field {k} missing: {s}");
            }
        }
        for m in v["members"].as_array().unwrap() {
            for k in ["id", "addr", "role", "healthy"] {
                assert!(!m[k].is_null(), "member field {k} missing: {m}");
            }
        }

        if run == 0 {
            refusals_change_nothing(&endpoint, &v);
        }

        // SIGTERM: every node stops cleanly and dev exits 0.
        let pid = dev.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = wait_exit(&mut dev, Duration::from_secs(60));
        assert_eq!(status, Some(0), "run {run}: dev did not stop cleanly");
    }
}

fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> Option<i32> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return s.code();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn refusals_change_nothing(endpoint: &str, before: &Value) {
    let map_before = shard_map(before);
    let version_before = before["version"].clone();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["members", "remove", "2"], "not drained"),
        (
            vec!["shards", "move", "1", "--from", "1", "--to", "9"],
            "unknown node 9",
        ),
        (
            vec!["shards", "move", "1", "--from", "1", "--to", "2"],
            "below its replication factor",
        ),
        (
            vec!["members", "add", "--node-id", "5", "--addr", "nonsense"],
            "nonsense",
        ),
        (
            vec!["members", "drain", "3"],
            "below their replication factor",
        ),
        (
            vec!["shards", "move", "99", "--from", "1", "--to", "2"],
            "unknown shard 99",
        ),
    ];
    for (args, message) in cases {
        let out = ctl(endpoint, &args);
        assert_eq!(out.code, 1, "{args:?} should be refused: {out:?}");
        assert!(
            out.stderr.contains(message),
            "{args:?}: stderr should say {message:?}: {out:?}"
        );
        let out = ctl(endpoint, &["--output", "json", "cluster", "status"]);
        let after: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(
            shard_map(&after),
            map_before,
            "{args:?} changed the shard map"
        );
        assert_eq!(
            after["version"], version_before,
            "{args:?} changed the state"
        );
        assert_eq!(tasks(&after), 0, "{args:?} created a task");
    }
}

#[test]
fn joined_node_is_promoted_and_rebalance_keeps_replication_factor() {
    let mut c = Cluster::start(3, 4, 3);
    c.add_joining(4);
    c.wait_for(
        "node 4 to join",
        Duration::from_secs(60),
        |_| {},
        |v| {
            v["members"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["id"] == 4 && m["state"] == "joining" && m["role"] == "learner")
        },
    );
    let out = c.ctl(&["members", "promote", "4"]);
    assert_eq!(out.code, 0, "{out:?}");
    c.wait_for(
        "node 4 to become an active voter",
        Duration::from_secs(60),
        |_| {},
        |v| {
            v["members"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["id"] == 4 && m["state"] == "active" && m["role"] == "voter")
        },
    );
    let out = c.ctl(&["--output", "json", "shards", "rebalance"]);
    assert_eq!(out.code, 0, "{out:?}");
    let mut seen_moving = false;
    let done = c.wait_for(
        "rebalance to finish",
        Duration::from_secs(180),
        |v| {
            assert_rf(v, 3);
            seen_moving |= tasks(v) > 0;
        },
        |v| tasks(v) == 0 && replica_counts(v).get(&4).copied().unwrap_or(0) > 0,
    );
    let counts = replica_counts(&done);
    let (min, max) = (
        counts.values().min().copied().unwrap(),
        counts.values().max().copied().unwrap(),
    );
    assert!(max - min <= 1, "replicas not balanced: {counts:?}");
    assert_eq!(counts.len(), 4, "{counts:?}");
    // Every shard settles with a leader and exactly 3 replicas.
    c.wait_for(
        "every shard led",
        Duration::from_secs(60),
        |v| assert_rf(v, 3),
        |v| {
            is_ready(v, 4)
                && v["shards"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|s| s["replicas"].as_array().unwrap().len() == 3)
        },
    );
    assert!(seen_moving, "no move was ever observed in flight");

    // Leadership: an explicit transfer, then rebalance evens leaders out
    // (at most ⌈4 shards / 4 nodes⌉ = 1 per node).
    let v = c.status();
    let shard1 = &v["shards"][0];
    let target = shard1["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_u64().unwrap())
        .find(|r| Some(*r) != shard1["leader"].as_u64())
        .unwrap();
    let out = c.ctl(&[
        "shards",
        "transfer-leader",
        "1",
        "--to",
        &target.to_string(),
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    c.wait_for(
        "shard 1 led by the target",
        Duration::from_secs(60),
        |_| {},
        |v| v["shards"][0]["leader"].as_u64() == Some(target),
    );
    let mut last_rebalance = std::time::Instant::now() - Duration::from_secs(10);
    c.wait_for(
        "leaders evened out",
        Duration::from_secs(120),
        |v| assert_rf(v, 3),
        |v| {
            let mut leads: BTreeMap<u64, usize> = BTreeMap::new();
            for s in v["shards"].as_array().unwrap() {
                *leads.entry(s["leader"].as_u64().unwrap_or(0)).or_default() += 1;
            }
            let balanced = !leads.contains_key(&0) && leads.values().all(|n| *n <= 1);
            if !balanced && last_rebalance.elapsed() > Duration::from_secs(5) {
                last_rebalance = std::time::Instant::now();
                let out = c.ctl(&["shards", "rebalance"]);
                assert_eq!(out.code, 0, "{out:?}");
            }
            balanced
        },
    );
}

/// Acknowledged samples by (series, timestamp) and the failed requests.
type WriterResult = (BTreeMap<(u64, i64), f64>, usize);

/// A background writer: one request per round, 10 series × 1 sample, on
/// gRPC `Ingest.Write`; records what was acknowledged.
struct Writer {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<WriterResult>,
}

impl Writer {
    fn start(endpoints: Vec<String>) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut acked = BTreeMap::new();
                let mut failed = 0;
                let mut t: i64 = 1_700_000_000_000;
                let mut k = 0usize;
                while !flag.load(Ordering::Relaxed) {
                    t += 1_000;
                    let endpoint = endpoints[k % endpoints.len()].clone();
                    k += 1;
                    let series: Vec<pb::Series> = (0..10u64)
                        .map(|s| pb::Series {
                            labels: vec![
                                pb::Label {
                                    name: "__name__".into(),
                                    value: "rw_test".into(),
                                },
                                pb::Label {
                                    name: "s".into(),
                                    value: s.to_string(),
                                },
                            ],
                            samples: vec![pb::Sample {
                                timestamp_ms: t,
                                value: (t as f64) + s as f64,
                            }],
                        })
                        .collect();
                    let call = async {
                        let mut client = pb::ingest_client::IngestClient::connect(endpoint)
                            .await
                            .ok()?;
                        client
                            .write(pb::WriteRequest {
                                series,
                                request_id: String::new(),
                                shard_map_epoch: 0,
                                shard: 0,
                            })
                            .await
                            .ok()
                    };
                    match tokio::time::timeout(Duration::from_secs(20), call).await {
                        Ok(Some(r)) if r.get_ref().rejections.is_empty() => {
                            for s in 0..10u64 {
                                acked.insert((s, t), (t as f64) + s as f64);
                            }
                        }
                        _ => failed += 1,
                    }
                }
                (acked, failed)
            })
        });
        Writer { stop, handle }
    }

    fn finish(self) -> WriterResult {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// Reads every `rw_test` sample back with a linearizable read.
fn read_all(endpoint: &str) -> BTreeMap<(u64, i64), Vec<f64>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = pb::query_client::QueryClient::connect(endpoint.to_string())
            .await
            .unwrap();
        let r = client
            .select(pb::SelectRequest {
                matchers: vec![pb::LabelMatcher {
                    r#type: pb::MatchType::MatchEqual as i32,
                    name: "__name__".into(),
                    value: "rw_test".into(),
                }],
                start_ms: 0,
                end_ms: i64::MAX,
                consistency: pb::Consistency::Linearizable as i32,
            })
            .await
            .unwrap()
            .into_inner();
        let mut out: BTreeMap<(u64, i64), Vec<f64>> = BTreeMap::new();
        for s in r.series {
            let id: u64 = s
                .labels
                .iter()
                .find(|l| l.name == "s")
                .unwrap()
                .value
                .parse()
                .unwrap();
            for x in s.samples {
                out.entry((id, x.timestamp_ms)).or_default().push(x.value);
            }
        }
        out
    })
}

fn assert_nothing_lost(acked: &BTreeMap<(u64, i64), f64>, read: &BTreeMap<(u64, i64), Vec<f64>>) {
    assert!(!acked.is_empty(), "the writer got nothing acknowledged");
    for (key, value) in acked {
        match read.get(key) {
            Some(v) => assert_eq!(v, &vec![*value], "sample {key:?} wrong or duplicated"),
            None => panic!("acknowledged sample {key:?} is lost"),
        }
    }
    // Nothing visible that was never written.
    for (key, values) in read {
        let (s, t) = *key;
        assert_eq!(
            values,
            &vec![(t as f64) + s as f64],
            "sample {key:?} has a value never written"
        );
    }
}

#[test]
fn drain_and_remove_while_writing_loses_nothing() {
    let mut c = Cluster::start(4, 4, 3);
    let endpoints: Vec<String> = (1..=3).map(|i| c.endpoint(i)).collect();
    let writer = Writer::start(endpoints.clone());
    std::thread::sleep(Duration::from_secs(2));
    let out = c.ctl(&["members", "drain", "4"]);
    assert_eq!(out.code, 0, "{out:?}");
    c.wait_for(
        "node 4 to be drained",
        Duration::from_secs(180),
        |v| assert_rf(v, 3),
        |v| tasks(v) == 0 && !replica_counts(v).contains_key(&4),
    );
    let out = c.ctl(&["members", "remove", "4"]);
    assert_eq!(out.code, 0, "{out:?}");
    std::thread::sleep(Duration::from_secs(1));
    c.kill(4);
    std::thread::sleep(Duration::from_secs(2));
    let (acked, failed) = writer.finish();
    let v = c.status();
    let removed = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == 4)
        .cloned()
        .unwrap();
    assert_eq!(removed["state"], "removed", "{v}");
    let read = read_all(&endpoints[0]);
    assert_nothing_lost(&acked, &read);
    eprintln!("acked {} samples, {failed} failed requests", acked.len());
}

#[test]
fn control_leader_killed_mid_move_new_leader_finishes_it() {
    let mut c = Cluster::start(3, 4, 3);
    c.add_joining(4);
    c.wait_for(
        "node 4 to join",
        Duration::from_secs(60),
        |_| {},
        |v| {
            v["members"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["id"] == 4 && m["role"] == "learner")
        },
    );
    assert_eq!(c.ctl(&["members", "promote", "4"]).code, 0);
    let v = c.status();
    let leader = v["control_leader"].as_u64().unwrap();
    // Move a replica of shard 1 from a node that is not the control leader.
    let from = (1..=3u64).find(|n| *n != leader).unwrap();
    let before = c.status();
    let writer = Writer::start(
        (1..=3)
            .filter(|n| *n != leader)
            .map(|i| c.endpoint(i))
            .collect(),
    );
    let out = c.ctl(&[
        "shards",
        "move",
        "1",
        "--from",
        &from.to_string(),
        "--to",
        "4",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let during = c.status();
    assert_eq!(tasks(&during), 1, "the move should be recorded: {during}");
    c.kill(leader);
    let done = c.wait_for(
        "a new control leader to finish the move",
        Duration::from_secs(180),
        |v| assert_rf(v, 3),
        |v| {
            let l = v["control_leader"].as_u64().unwrap_or(0);
            l != 0 && l != leader && tasks(v) == 0
        },
    );
    let shard1: BTreeSet<u64> = done["shards"][0]["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_u64().unwrap())
        .collect();
    assert!(shard1.contains(&4) && !shard1.contains(&from), "{done}");
    assert_eq!(shard1.len(), 3);
    assert!(
        done["shards"][0]["epoch"].as_u64() > before["shards"][0]["epoch"].as_u64(),
        "epoch not bumped"
    );
    let (acked, _) = writer.finish();
    let alive = (1..=3).find(|n| *n != leader).unwrap();
    let read = read_all(&c.endpoint(alive));
    assert_nothing_lost(&acked, &read);
}

/// `THP_enabled` of process `pid` (`/proc/PID/status`, Linux 6.x), or
/// `None` where the kernel does not report it.
fn thp_enabled(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().to_string())
}

/// A node turns transparent huge pages off for itself (mimalloc would
/// otherwise fault its arenas in 2 MiB at a time: README, "Performance"),
/// unless `MIMALLOC_ALLOW_THP` is set.
#[test]
fn a_node_runs_without_transparent_huge_pages() {
    if thp_enabled(std::process::id()).is_none() {
        eprintln!("this kernel does not report THP_enabled; nothing to check");
        return;
    }
    let c = Cluster::start(1, 1, 1);
    let pid = c.procs[&1].id();
    assert_eq!(thp_enabled(pid).as_deref(), Some("0"), "node pid {pid}");
}
