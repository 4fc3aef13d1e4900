//! The database under test: `raftwatch server` processes, one per node
//! namespace, started with `ip netns exec`, killed with SIGKILL, paused with
//! SIGSTOP, restarted from their data directories, and (optionally) run
//! under libfaketime so the clock nemesis can skew their wall clocks.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use thiserror::Error;

/// gRPC port every node listens on (its own address).
pub const GRPC_PORT: u16 = 7600;
/// HTTP port every node listens on.
pub const HTTP_PORT: u16 = 7601;

/// Where Debian's `libfaketime` package puts the multi-threaded library.
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// `ClusterError` is a failure to run a node or `raftwatchctl`.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// A process could not start or be signalled.
    #[error("node {node}: {reason}")]
    Node {
        /// The node.
        node: u64,
        /// Why.
        reason: String,
    },
    /// `raftwatchctl` failed.
    #[error("raftwatchctl {args}: {reason}")]
    Ctl {
        /// Its arguments.
        args: String,
        /// Its stderr, or why it did not run.
        reason: String,
    },
}

/// `Node` is one server's fixed description.
#[derive(Clone, Debug)]
pub struct Node {
    /// Node id (1-based).
    pub id: u64,
    /// Its namespace.
    pub ns: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its log file (stderr, appended across restarts).
    pub log: PathBuf,
    /// The libfaketime offset file (`+N` / `-N` seconds).
    pub clock_file: PathBuf,
}

impl Node {
    /// `grpc` is `IP:PORT` of its gRPC server.
    pub fn grpc(&self) -> String {
        format!("{}:{GRPC_PORT}", self.ip)
    }

    /// `endpoint` is its gRPC URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.grpc())
    }
}

/// `Options` configures the servers.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `raftwatch` binary.
    pub server_bin: PathBuf,
    /// The `raftwatchctl` binary.
    pub ctl_bin: PathBuf,
    /// Shards at bootstrap.
    pub shards: u32,
    /// Replicas per shard.
    pub replicas: u32,
    /// Run servers under libfaketime (the clock nemesis needs it).
    pub faketime: bool,
    /// Planted bug to arm in every server (`RAFTWATCH_INJECT_BUG`).
    pub inject_bug: Option<String>,
    /// Namespace `raftwatchctl` runs in (the clients').
    pub ctl_ns: String,
}

/// `Cluster` owns the server processes.
#[derive(Debug)]
pub struct Cluster {
    options: Options,
    nodes: BTreeMap<u64, Node>,
    procs: BTreeMap<u64, Child>,
    paused: BTreeMap<u64, bool>,
}

impl Cluster {
    /// `new` describes `nodes`; nothing starts until [`Cluster::start`].
    pub fn new(options: Options, nodes: Vec<Node>) -> Cluster {
        Cluster {
            options,
            nodes: nodes.into_iter().map(|n| (n.id, n)).collect(),
            procs: BTreeMap::new(),
            paused: BTreeMap::new(),
        }
    }

    /// The nodes.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// Node `id`.
    pub fn node(&self, id: u64) -> Option<&Node> {
        self.nodes.get(&id)
    }

    /// Every node's gRPC endpoint.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.values().map(Node::endpoint).collect()
    }

    /// Whether node `id` has a live (possibly paused) process.
    pub fn running(&self, id: u64) -> bool {
        self.procs.contains_key(&id)
    }

    /// `start` starts node `id` (bootstrapping with every node on first
    /// start; the flag is ignored once the data dir holds a node).
    pub fn start(&mut self, id: u64) -> Result<(), ClusterError> {
        let node = self.nodes.get(&id).ok_or_else(|| ClusterError::Node {
            node: id,
            reason: "no such node".into(),
        })?;
        let err = |reason: String| ClusterError::Node { node: id, reason };
        std::fs::create_dir_all(&node.data_dir).map_err(|e| err(e.to_string()))?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(|e| err(format!("{}: {e}", node.log.display())))?;
        let initial: Vec<String> = self
            .nodes
            .values()
            .map(|n| format!("{}={}", n.id, n.grpc()))
            .collect();
        let http = format!("{}:{HTTP_PORT}", node.ip);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &node.ns])
            .arg(&self.options.server_bin)
            .arg("server")
            .args(["--node-id", &id.to_string()])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--grpc-addr", &node.grpc(), "--http-addr", &http])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--shards", &self.options.shards.to_string()])
            .args(["--replicas", &self.options.replicas.to_string()])
            .args([
                "--heartbeat-interval-ms",
                "100",
                "--election-timeout-ms-min",
                "500",
                "--election-timeout-ms-max",
                "1000",
            ])
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(bug) = &self.options.inject_bug {
            cmd.env("RAFTWATCH_INJECT_BUG", bug);
        }
        if self.options.faketime {
            if !node.clock_file.exists() {
                std::fs::write(&node.clock_file, "+0\n").map_err(|e| err(e.to_string()))?;
            }
            // Only the wall clock: a stepped NTP clock moves CLOCK_REALTIME,
            // never CLOCK_MONOTONIC, which Raft's timers use.
            cmd.env("LD_PRELOAD", FAKETIME_LIB)
                .env("FAKETIME_TIMESTAMP_FILE", &node.clock_file)
                .env("FAKETIME_CACHE_DURATION", "1")
                .env("DONT_FAKE_MONOTONIC", "1");
        }
        let child = cmd.spawn().map_err(|e| err(e.to_string()))?;
        self.procs.insert(id, child);
        self.paused.insert(id, false);
        Ok(())
    }

    /// `kill` sends SIGKILL to node `id` and reaps it.
    pub fn kill(&mut self, id: u64) -> Result<(), ClusterError> {
        if let Some(mut child) = self.procs.remove(&id) {
            signal(id, &child, Signal::SIGKILL)?;
            let _ = child.wait();
        }
        self.paused.remove(&id);
        Ok(())
    }

    /// `pause` sends SIGSTOP to node `id`.
    pub fn pause(&mut self, id: u64) -> Result<(), ClusterError> {
        if let Some(child) = self.procs.get(&id) {
            signal(id, child, Signal::SIGSTOP)?;
            self.paused.insert(id, true);
        }
        Ok(())
    }

    /// `resume` sends SIGCONT to node `id`.
    pub fn resume(&mut self, id: u64) -> Result<(), ClusterError> {
        if let Some(child) = self.procs.get(&id) {
            signal(id, child, Signal::SIGCONT)?;
            self.paused.insert(id, false);
        }
        Ok(())
    }

    /// `set_clock` sets node `id`'s wall-clock offset in seconds (takes
    /// effect within libfaketime's one-second cache).
    pub fn set_clock(&self, id: u64, offset_s: i64) -> Result<(), ClusterError> {
        let node = self.nodes.get(&id).ok_or_else(|| ClusterError::Node {
            node: id,
            reason: "no such node".into(),
        })?;
        let text = if offset_s >= 0 {
            format!("+{offset_s}\n")
        } else {
            format!("{offset_s}\n")
        };
        std::fs::write(&node.clock_file, text).map_err(|e| ClusterError::Node {
            node: id,
            reason: e.to_string(),
        })
    }

    /// `exited` lists nodes whose process exited by itself (a crash), with
    /// the exit status, and forgets them.
    pub fn exited(&mut self) -> Vec<(u64, String)> {
        let mut gone = Vec::new();
        for (id, child) in &mut self.procs {
            if let Ok(Some(status)) = child.try_wait() {
                gone.push((*id, status.to_string()));
            }
        }
        for (id, _) in &gone {
            self.procs.remove(id);
        }
        gone
    }

    /// `stop_all` resumes and kills every node.
    pub fn stop_all(&mut self) {
        let ids: Vec<u64> = self.procs.keys().copied().collect();
        for id in ids {
            let _ = self.resume(id);
            let _ = self.kill(id);
        }
    }

    /// `ctl` runs `raftwatchctl --output json ARGS` against node
    /// `via` from the clients' namespace, with a timeout.
    pub async fn ctl(&self, via: u64, args: &[&str]) -> Result<Value, ClusterError> {
        let endpoint = self.nodes.get(&via).map(Node::endpoint).unwrap_or_default();
        ctl_at(&self.options, &endpoint, args).await
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.options
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn signal(id: u64, child: &Child, sig: Signal) -> Result<(), ClusterError> {
    let pid = i32::try_from(child.id()).map_err(|e| ClusterError::Node {
        node: id,
        reason: e.to_string(),
    })?;
    kill(Pid::from_raw(pid), sig).map_err(|e| ClusterError::Node {
        node: id,
        reason: format!("{sig}: {e}"),
    })
}

/// `ctl_at` runs `raftwatchctl --endpoint E --output json ARGS` in the
/// clients' namespace with a 10-second timeout and parses its stdout (an
/// empty stdout is `null`).
pub async fn ctl_at(
    options: &Options,
    endpoint: &str,
    args: &[&str],
) -> Result<Value, ClusterError> {
    let joined = args.join(" ");
    let mut cmd = tokio::process::Command::new("ip");
    cmd.args(["netns", "exec", &options.ctl_ns])
        .arg(&options.ctl_bin)
        .args(["--endpoint", endpoint, "--output", "json"])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(10), cmd.output())
        .await
        .map_err(|_| ClusterError::Ctl {
            args: joined.clone(),
            reason: "timed out after 10 s".into(),
        })?
        .map_err(|e| ClusterError::Ctl {
            args: joined.clone(),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(ClusterError::Ctl {
            args: joined,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| ClusterError::Ctl {
        args: joined,
        reason: format!("unparseable output: {e}"),
    })
}

/// `node_dirs` lays out node `id`'s files under `root`.
pub fn node_files(root: &Path, id: u64) -> (PathBuf, PathBuf, PathBuf) {
    (
        root.join(format!("n{id}")),
        root.join(format!("n{id}.log")),
        root.join(format!("n{id}.faketime")),
    )
}
