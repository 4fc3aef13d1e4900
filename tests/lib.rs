//! raftwatch-tests: workspace-level tests live in `it/`. This library is
//! their harness for real clusters: `raftwatch server` processes on
//! 127.0.0.1 with their own data directories, driven through
//! `raftwatchctl` and the gRPC API, killed with SIGKILL or stopped with
//! SIGTERM.
//!
//! The binaries are found next to the test executable's directory
//! (`target/<profile>/`); `cargo nextest run --workspace` builds them.

// Test harness code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

pub mod exposition;
pub mod webhook;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `bin` is the path of a workspace binary built beside the tests.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/it-<hash> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir layout");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests with `cargo nextest run --workspace` (or `cargo build --bins` first)",
        path.display()
    );
    path
}

/// `free_ports` returns `n` TCP ports that were free a moment ago.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// `free_port_block` returns a base port with `n` consecutive free ports.
pub fn free_port_block(n: u16) -> u16 {
    for _ in 0..200 {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port();
        drop(probe);
        if base.checked_add(n).is_none() {
            continue;
        }
        let ok: Vec<_> = (0..n)
            .map(|i| TcpListener::bind(("127.0.0.1", base + i)))
            .collect();
        if ok.iter().all(Result::is_ok) {
            return base;
        }
    }
    panic!("no block of {n} free ports");
}

/// `NodeSpec` is how one node was started (so it can be restarted).
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Node id.
    pub id: u64,
    /// gRPC address.
    pub grpc: String,
    /// HTTP address.
    pub http: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Extra flags (`--initial-cluster`, `--join`, `--shards`...).
    pub flags: Vec<String>,
}

/// `Cluster` is a set of `raftwatch server` processes.
#[derive(Debug)]
pub struct Cluster {
    /// Holds every node's data directory.
    pub dir: tempfile::TempDir,
    /// Node specs by id.
    pub specs: BTreeMap<u64, NodeSpec>,
    /// Running processes by id.
    pub procs: BTreeMap<u64, Child>,
}

impl Cluster {
    /// `start` bootstraps `nodes` nodes with `shards` shards of
    /// `replicas` replicas and waits until every shard has a leader.
    pub fn start(nodes: u64, shards: u32, replicas: u32) -> Cluster {
        Cluster::start_with(nodes, shards, replicas, |_| vec![])
    }

    /// `start_with` is [`Cluster::start`] with extra flags for each node
    /// (`extra(id)`, e.g. a lower query limit on one node).
    pub fn start_with(
        nodes: u64,
        shards: u32,
        replicas: u32,
        extra: impl Fn(u64) -> Vec<String>,
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(nodes as usize * 2);
        let mut specs = BTreeMap::new();
        let initial: Vec<String> = (0..nodes)
            .map(|i| format!("{}=127.0.0.1:{}", i + 1, ports[2 * i as usize]))
            .collect();
        for i in 0..nodes {
            let id = i + 1;
            specs.insert(
                id,
                NodeSpec {
                    id,
                    grpc: format!("127.0.0.1:{}", ports[2 * i as usize]),
                    http: format!("127.0.0.1:{}", ports[2 * i as usize + 1]),
                    data_dir: dir.path().join(format!("node-{id}")),
                    flags: [
                        "--initial-cluster".into(),
                        initial.join(","),
                        "--shards".into(),
                        shards.to_string(),
                        "--replicas".into(),
                        replicas.to_string(),
                    ]
                    .into_iter()
                    .chain(extra(id))
                    .collect(),
                },
            );
        }
        let mut c = Cluster {
            dir,
            specs,
            procs: BTreeMap::new(),
        };
        let ids: Vec<u64> = c.specs.keys().copied().collect();
        for id in ids {
            c.spawn(id);
        }
        c.wait_ready(nodes as usize, Duration::from_secs(90));
        c
    }

    /// `add_joining` starts a fresh node `id` that joins through node 1.
    pub fn add_joining(&mut self, id: u64) {
        let ports = free_ports(2);
        let via = self.specs[&1].grpc.clone();
        self.specs.insert(
            id,
            NodeSpec {
                id,
                grpc: format!("127.0.0.1:{}", ports[0]),
                http: format!("127.0.0.1:{}", ports[1]),
                data_dir: self.dir.path().join(format!("node-{id}")),
                flags: vec!["--join".into(), via],
            },
        );
        self.spawn(id);
    }

    /// `spawn` starts node `id` from its spec.
    pub fn spawn(&mut self, id: u64) {
        let spec = &self.specs[&id];
        // Appended to, so a restarted node's earlier life stays readable.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node-{id}.log")))
            .unwrap();
        let child = Command::new(bin("raftwatch"))
            .arg("server")
            .args(["--node-id", &id.to_string()])
            .arg("--data-dir")
            .arg(&spec.data_dir)
            .args(["--grpc-addr", &spec.grpc, "--http-addr", &spec.http])
            // Short timers keep failover tests quick; still 5× apart.
            .args([
                "--heartbeat-interval-ms",
                "100",
                "--election-timeout-ms-min",
                "500",
                "--election-timeout-ms-max",
                "1000",
            ])
            .args(&spec.flags)
            .env("RUST_LOG", "info,openraft=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.procs.insert(id, child);
    }

    /// `kill` sends SIGKILL to node `id` and reaps it.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.procs.remove(&id) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `endpoint` is node `id`'s gRPC endpoint URL.
    pub fn endpoint(&self, id: u64) -> String {
        format!("http://{}", self.specs[&id].grpc)
    }

    /// Any running node's endpoint.
    pub fn any_endpoint(&self) -> String {
        let id = *self.procs.keys().next().expect("a running node");
        self.endpoint(id)
    }

    /// `ctl` runs `raftwatchctl` against a running node.
    pub fn ctl(&self, args: &[&str]) -> CtlOutput {
        ctl(&self.any_endpoint(), args)
    }

    /// `status` is `cluster status --output json`, retried until it works.
    pub fn status(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.ctl(&["--output", "json", "cluster", "status"]);
            if out.code == 0 {
                return serde_json::from_str(&out.stdout).unwrap();
            }
            assert!(Instant::now() < deadline, "cluster status failed: {out:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `wait_ready` waits until `members` members are healthy, the control
    /// plane has a leader and every shard has a leader.
    pub fn wait_ready(&self, members: usize, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.ctl(&["--output", "json", "cluster", "status"]);
            if out.code == 0 {
                let v: Value = serde_json::from_str(&out.stdout).unwrap();
                if is_ready(&v, members) {
                    return v;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "cluster not ready after {timeout:?}: {out:?}\nlogs in {}",
                    self.dir.path().display()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// `wait_for` polls `cluster status` until `pred` holds, checking
    /// `invariant` on every status seen; panics after `timeout`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut invariant: impl FnMut(&Value),
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.ctl(&["--output", "json", "cluster", "status"]);
            if out.code == 0 {
                let v: Value = serde_json::from_str(&out.stdout).unwrap();
                invariant(&v);
                if pred(&v) {
                    return v;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; last status: {}\nlogs in {}",
                    out.stdout,
                    self.dir.path().display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.procs.keys().copied().collect();
        for id in ids {
            self.kill(id);
        }
        // A failed test keeps the data and logs for the post-mortem.
        if std::thread::panicking() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            eprintln!(
                "cluster data and node logs kept in {}",
                dir.keep().display()
            );
        }
    }
}

/// `is_ready`: `members` healthy members, a control leader, every shard led.
pub fn is_ready(v: &Value, members: usize) -> bool {
    let healthy = v["members"]
        .as_array()
        .map(|m| m.iter().filter(|m| m["healthy"] == true).count())
        .unwrap_or(0);
    let shards = v["shards"].as_array().cloned().unwrap_or_default();
    healthy >= members
        && v["control_leader"].as_u64().unwrap_or(0) != 0
        && !shards.is_empty()
        && shards
            .iter()
            .all(|s| s["leader"].as_u64().unwrap_or(0) != 0)
}

/// `CtlOutput` is one `raftwatchctl` run.
#[derive(Debug)]
pub struct CtlOutput {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// `ctl` runs `raftwatchctl --endpoint endpoint args...`.
pub fn ctl(endpoint: &str, args: &[&str]) -> CtlOutput {
    let out = Command::new(bin("raftwatchctl"))
        .args(["--endpoint", endpoint])
        .args(args)
        .output()
        .unwrap();
    CtlOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `replica_counts` counts shard replicas per node id in a status.
pub fn replica_counts(v: &Value) -> BTreeMap<u64, usize> {
    let mut out = BTreeMap::new();
    for s in v["shards"].as_array().into_iter().flatten() {
        for r in s["replicas"].as_array().into_iter().flatten() {
            *out.entry(r.as_u64().unwrap()).or_default() += 1;
        }
    }
    out
}

/// `tasks` is the number of placement tasks in flight in a status.
pub fn tasks(v: &Value) -> usize {
    v["tasks"].as_array().map(Vec::len).unwrap_or(0)
}

/// `read_line_until` reads `reader` until a line equal to `want` appears.
pub fn read_line_until(reader: impl std::io::Read, want: &str) -> bool {
    BufReader::new(reader)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.trim() == want)
}
