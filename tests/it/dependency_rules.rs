//! Architecture invariants stated as absences, checked from `cargo
//! metadata` rather than by review (STYLE.md, "Shape of the workspace").
//!
//! Each rule names crates that must not depend on a package, directly or
//! through any chain of normal (non-dev, non-build) dependencies.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Normal dependency graph: package name → names of its normal deps.
fn dependency_graph() -> BTreeMap<String, BTreeSet<String>> {
    let meta = metadata();
    graph_of(&meta)
}

/// `cargo metadata` of the workspace.
fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--manifest-path",
            manifest,
        ])
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parse cargo metadata")
}

fn graph_of(meta: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let names: BTreeMap<String, String> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut graph = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve.nodes") {
        let from = names[node["id"].as_str().unwrap()].clone();
        let deps: BTreeSet<String> = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| names[d["pkg"].as_str().unwrap()].clone())
            .collect();
        graph.entry(from).or_insert_with(BTreeSet::new).extend(deps);
    }
    graph
}

/// The chain from `from` to `target` through normal deps, if any.
fn path_to(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    target: &str,
) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap().clone();
        if last == target && path.len() > 1 {
            return Some(path);
        }
        if !seen.insert(last.clone()) {
            continue;
        }
        for dep in graph.get(&last).into_iter().flatten() {
            let mut next = path.clone();
            next.push(dep.clone());
            stack.push(next);
        }
    }
    None
}

fn workspace_crates(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    graph
        .keys()
        .filter(|n| n.starts_with("raftwatch"))
        .cloned()
        .collect()
}

#[test]
fn only_the_sled_engine_crate_depends_on_sled() {
    let graph = dependency_graph();
    for krate in workspace_crates(&graph) {
        if krate == "raftwatch-storage-sled" {
            assert!(
                graph[&krate].contains("sled"),
                "the sled engine must name sled"
            );
            continue;
        }
        if graph[&krate].contains("sled") {
            panic!("{krate} names sled directly; only raftwatch-storage-sled may");
        }
    }
}

/// Crates that must stay pure: synchronous, no async runtime, no sled.
const PURE: &[&str] = &[
    "raftwatch-model",
    "raftwatch-chunk",
    "raftwatch-storage",
    "raftwatch-tsdb",
    "raftwatch-wal",
    "raftwatch-promql",
    "raftwatch-alerting",
];

#[test]
fn pure_engine_crates_reach_neither_tokio_nor_sled() {
    let graph = dependency_graph();
    for krate in PURE {
        assert!(
            graph.contains_key(*krate),
            "{krate} is not in the workspace any more: update this rule"
        );
        for forbidden in ["tokio", "sled"] {
            if let Some(path) = path_to(&graph, krate, forbidden) {
                panic!("{krate} depends on {forbidden}: {}", path.join(" -> "));
            }
        }
    }
}

#[test]
fn promql_reads_only_through_queryable() {
    // Prometheus's rule: `promql` imports `storage`, never `tsdb`. Ours:
    // the evaluator reaches no storage, log or replication crate at all.
    let graph = dependency_graph();
    for forbidden in [
        "raftwatch-tsdb",
        "raftwatch-storage",
        "raftwatch-chunk",
        "raftwatch-wal",
        "raftwatch-raft",
        "openraft",
        "tonic",
    ] {
        if let Some(path) = path_to(&graph, "raftwatch-promql", forbidden) {
            panic!(
                "raftwatch-promql reaches {forbidden}: {}",
                path.join(" -> ")
            );
        }
    }
}

#[test]
fn alerting_logic_is_pure() {
    // Rule files, templates, routing and payloads run inside the control
    // state machine's apply: no storage, log, network or replication crate.
    let graph = dependency_graph();
    for forbidden in [
        "raftwatch-tsdb",
        "raftwatch-storage",
        "raftwatch-raft",
        "raftwatch-control",
        "openraft",
        "tonic",
        "tokio",
        "sled",
    ] {
        if let Some(path) = path_to(&graph, "raftwatch-alerting", forbidden) {
            panic!(
                "raftwatch-alerting reaches {forbidden}: {}",
                path.join(" -> ")
            );
        }
    }
}

#[test]
fn the_rule_checker_finds_real_chains() {
    // The checker must be able to fail: the bench binary does reach sled.
    let graph = dependency_graph();
    let path = path_to(&graph, "raftwatch-bench", "sled").expect("bench reaches sled");
    assert_eq!(path.first().map(String::as_str), Some("raftwatch-bench"));
    assert_eq!(path.last().map(String::as_str), Some("sled"));
}

#[test]
fn the_cli_never_links_server_internals() {
    // raftwatchctl talks gRPC only: it must not reach the engine, the
    // replication core, the state machines or the server crate.
    let graph = dependency_graph();
    assert!(graph.contains_key("raftwatchctl"), "raftwatchctl missing");
    for forbidden in [
        "raftwatch",
        "raftwatch-raft",
        "raftwatch-tsdb",
        "raftwatch-control",
        "raftwatch-shard",
        "raftwatch-wal",
        "openraft",
        "sled",
    ] {
        if let Some(path) = path_to(&graph, "raftwatchctl", forbidden) {
            panic!("raftwatchctl reaches {forbidden}: {}", path.join(" -> "));
        }
    }
}

#[test]
fn the_jepsen_harness_tests_binaries_not_linked_code() {
    // raftwatch-jepsen must exercise the real server processes: linking the
    // server, a state machine or the replication core would let a test
    // quietly call into them instead.
    let graph = dependency_graph();
    assert!(
        graph.contains_key("raftwatch-jepsen"),
        "raftwatch-jepsen missing"
    );
    for forbidden in [
        "raftwatch",
        "raftwatch-raft",
        "raftwatch-tsdb",
        "raftwatch-control",
        "raftwatch-shard",
        "raftwatch-wal",
        "openraft",
        "sled",
        "turmoil",
    ] {
        if let Some(path) = path_to(&graph, "raftwatch-jepsen", forbidden) {
            panic!(
                "raftwatch-jepsen reaches {forbidden}: {}",
                path.join(" -> ")
            );
        }
    }
}

#[test]
fn state_machines_do_not_choose_their_store() {
    // The shard and control state machines take their store from outside
    // (sled in the server, memory in the simulator): they never name sled.
    let graph = dependency_graph();
    for krate in ["raftwatch-shard", "raftwatch-control"] {
        if let Some(path) = path_to(&graph, krate, "sled") {
            panic!("{krate} reaches sled: {}", path.join(" -> "));
        }
    }
}

#[test]
fn the_client_library_stays_light() {
    // raftwatch-client is linked by users' applications and by the CLI: it
    // speaks gRPC and shards by the model's hash, and reaches none of the
    // server's engine, replication or state machines.
    let graph = dependency_graph();
    assert!(
        graph.contains_key("raftwatch-client"),
        "raftwatch-client missing"
    );
    for forbidden in [
        "raftwatch",
        "raftwatch-raft",
        "raftwatch-tsdb",
        "raftwatch-control",
        "raftwatch-shard",
        "raftwatch-wal",
        "raftwatch-storage",
        "openraft",
        "sled",
    ] {
        if let Some(path) = path_to(&graph, "raftwatch-client", forbidden) {
            panic!(
                "raftwatch-client reaches {forbidden}: {}",
                path.join(" -> ")
            );
        }
    }
}

#[test]
fn only_the_simulator_depends_on_turmoil() {
    // turmoil replaces the network for the simulator; no crate that ships
    // in the server, the CLI or the client library may link it.
    let graph = dependency_graph();
    assert!(
        graph["raftwatch-sim"].contains("turmoil"),
        "raftwatch-sim must name turmoil"
    );
    for krate in workspace_crates(&graph) {
        if krate == "raftwatch-sim" {
            continue;
        }
        if let Some(path) = path_to(&graph, &krate, "turmoil") {
            panic!("{krate} reaches turmoil: {}", path.join(" -> "));
        }
    }
}

#[test]
fn no_crate_plants_bugs_by_default() {
    // The simulator's planted bugs are compiled only with the
    // `inject-bugs` feature. Cargo unifies features across a workspace
    // build, so a default that enabled it anywhere would put the bugs into
    // a normal build of `raftwatch`.
    let meta = metadata();
    let mut with_feature = 0;
    for p in meta["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().unwrap_or_default();
        if !name.starts_with("raftwatch") {
            continue;
        }
        let features = p["features"].as_object().expect("features");
        if features.contains_key("inject-bugs") {
            with_feature += 1;
        }
        let default: Vec<&str> = features
            .get("default")
            .and_then(Value::as_array)
            .map(|d| d.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert!(
            !default.iter().any(|f| f.contains("inject-bugs")),
            "{name} enables inject-bugs by default: {default:?}"
        );
    }
    assert!(
        with_feature >= 5,
        "expected the feature on seams, wal, raft, raftwatch and raftwatch-sim; found {with_feature}"
    );
}
