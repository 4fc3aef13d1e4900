//! `raftwatch dev`: a local cluster of `raftwatch server` child processes.
//!
//! Node i (1-based) gets `--data-dir DATA/node-i`, gRPC on
//! `127.0.0.1:BASE+2(i-1)` and HTTP on the port after it, and always the
//! same `--initial-cluster` list: a node whose data dir already holds a node
//! ignores it, so the first run bootstraps and later runs reuse the data.
//!
//! stdout carries only what a script needs: one line per node with its
//! endpoints, where to point clients, and `ready` once the control plane has
//! a leader and every shard has a leader and its full replica set. The
//! children's stdout and stderr are forwarded to stderr, each line prefixed
//! with `[node-i] ` (or, for a JSON log line, given a `"node": i` field).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use raftwatch_proto::v1::admin_client::AdminClient;
use raftwatch_proto::v1::{ClusterStatusRequest, ClusterStatusResponse};
use tonic::transport::{Channel, Endpoint};

use crate::config::{self, LogFormat, REPLICAS_DEFAULT, ServerArgs, ServerConfig};
use crate::logging;
use crate::signals::{Signals, Stop};

/// `NODES_MAX` bounds `--nodes`: each node is a process with its own ports,
/// and a dev cluster is for one machine.
pub const NODES_MAX: u32 = 32;

/// `STOP_TIMEOUT` is how long the children get to stop after SIGTERM before
/// they are killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// `POLL_INTERVAL` is the pause between readiness polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// `LINE_BYTES_MAX` bounds one forwarded log line; a longer line is
/// forwarded in pieces.
pub const LINE_BYTES_MAX: u64 = 64 * 1024;

/// `DevArgs` are the flags of `raftwatch dev`.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct DevArgs {
    /// Number of nodes (1..=32).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub nodes: u32,
    /// Shards created when the cluster is bootstrapped.
    #[arg(long, value_name = "N", default_value_t = config::SHARDS_DEFAULT)]
    pub shards: u32,
    /// Replicas per shard, at most --nodes [default: 3, or --nodes if fewer].
    #[arg(long, value_name = "N")]
    pub replicas: Option<u32>,
    /// Parent of the nodes' data dirs (`node-1`, `node-2`, ...); reused by
    /// later runs.
    #[arg(long, value_name = "DIR", default_value = "./raftwatch-data")]
    pub data_dir: PathBuf,
    /// gRPC port of node 1; node i uses BASE+2(i-1) for gRPC and the next
    /// port for HTTP.
    #[arg(long, value_name = "PORT", default_value_t = 7600)]
    pub base_port: u16,
}

/// `DevArgsError` is a refused `raftwatch dev` invocation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DevArgsError {
    /// `--nodes` outside 1..=NODES_MAX.
    #[error("--nodes {0} is outside 1..={NODES_MAX}")]
    Nodes(u32),
    /// `--replicas` more than `--nodes`.
    #[error("--replicas {replicas} needs at least {replicas} nodes, but --nodes is {nodes}")]
    ReplicasExceedNodes {
        /// `--replicas`.
        replicas: u32,
        /// `--nodes`.
        nodes: u32,
    },
    /// The last node's HTTP port would be past 65535.
    #[error("--base-port {base_port} leaves no room for {nodes} nodes (2 ports each, up to 65535)")]
    Ports {
        /// `--base-port`.
        base_port: u16,
        /// `--nodes`.
        nodes: u32,
    },
    /// A child's configuration (as `raftwatch server` would see it) is invalid.
    #[error("node {node_id}: {source}")]
    Node {
        /// The node whose configuration failed.
        node_id: u64,
        /// Why.
        source: config::ConfigError,
    },
    /// Some node dirs hold data and others do not: the cluster's size
    /// changed between runs, which bootstrapping cannot fix.
    #[error(
        "{dir} holds nodes {with:?} but not {without:?}; a dev cluster cannot change size \
         between runs: pass the same --nodes as before, or a new --data-dir"
    )]
    PartialData {
        /// `--data-dir`.
        dir: String,
        /// Nodes whose dirs hold data.
        with: Vec<u64>,
        /// Nodes whose dirs are missing or empty.
        without: Vec<u64>,
    },
}

/// `plan` turns `raftwatch dev` flags into each child's `raftwatch server`
/// flags, node 1 first. `log_format`, when given, is passed on.
///
/// Checks the dev flags themselves; the children's configurations are
/// checked by [`config::load`] in [`run`].
pub fn plan(
    args: &DevArgs,
    log_format: Option<LogFormat>,
) -> Result<Vec<ServerArgs>, DevArgsError> {
    if !(1..=NODES_MAX).contains(&args.nodes) {
        return Err(DevArgsError::Nodes(args.nodes));
    }
    let replicas = args.replicas.unwrap_or(REPLICAS_DEFAULT.min(args.nodes));
    if replicas > args.nodes {
        return Err(DevArgsError::ReplicasExceedNodes {
            replicas,
            nodes: args.nodes,
        });
    }
    let last_port = u32::from(args.base_port) + 2 * args.nodes - 1;
    if last_port > u32::from(u16::MAX) {
        return Err(DevArgsError::Ports {
            base_port: args.base_port,
            nodes: args.nodes,
        });
    }
    let ids = 1..=u64::from(args.nodes);
    let initial_cluster = ids
        .clone()
        .map(|id| format!("{id}={}", grpc_addr(args.base_port, id)))
        .collect::<Vec<_>>()
        .join(",");
    Ok(ids
        .map(|id| ServerArgs {
            node_id: Some(id),
            data_dir: Some(node_dir(&args.data_dir, id)),
            grpc_addr: Some(grpc_addr(args.base_port, id).to_string()),
            http_addr: Some(http_addr(args.base_port, id).to_string()),
            initial_cluster: Some(initial_cluster.clone()),
            shards: Some(args.shards),
            replicas: Some(replicas),
            log_format,
            ..ServerArgs::default()
        })
        .collect())
}

/// `server_argv` renders `args` as the flags of `raftwatch server` (without
/// the subcommand): exactly the fields that are set.
pub fn server_argv(args: &ServerArgs) -> Vec<OsString> {
    let mut argv: Vec<OsString> = Vec::new();
    let mut flag = |name: &str, value: Option<OsString>| {
        if let Some(value) = value {
            argv.push(format!("--{name}").into());
            argv.push(value);
        }
    };
    let s = |v: &Option<String>| v.as_ref().map(OsString::from);
    let n = |v: Option<u64>| v.map(|v| OsString::from(v.to_string()));
    flag("node-id", n(args.node_id));
    flag("data-dir", args.data_dir.as_ref().map(OsString::from));
    flag("grpc-addr", s(&args.grpc_addr));
    flag("http-addr", s(&args.http_addr));
    flag("advertise-grpc-addr", s(&args.advertise_grpc_addr));
    flag("advertise-http-addr", s(&args.advertise_http_addr));
    flag("initial-cluster", s(&args.initial_cluster));
    flag("join", s(&args.join));
    flag("shards", n(args.shards.map(u64::from)));
    flag("replicas", n(args.replicas.map(u64::from)));
    flag("heartbeat-interval-ms", n(args.heartbeat_interval_ms));
    flag("election-timeout-ms-min", n(args.election_timeout_ms_min));
    flag("election-timeout-ms-max", n(args.election_timeout_ms_max));
    flag("quiesce-after-heartbeats", n(args.quiesce_after_heartbeats));
    flag("request-bytes-max", n(args.request_bytes_max));
    flag("query-max-samples", n(args.query_max_samples));
    flag("query-timeout-ms", n(args.query_timeout_ms));
    flag("shard-block-cache-bytes", n(args.shard_block_cache_bytes));
    flag("config", args.config.as_ref().map(OsString::from));
    flag("log-format", args.log_format.map(|f| f.as_str().into()));
    flag("inject-bug", s(&args.inject_bug));
    argv
}

/// `node_dir` is node `node_id`'s data dir under `data_dir`.
pub fn node_dir(data_dir: &Path, node_id: u64) -> PathBuf {
    data_dir.join(format!("node-{node_id}"))
}

fn grpc_addr(base_port: u16, node_id: u64) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port(base_port, node_id, 0))
}

fn http_addr(base_port: u16, node_id: u64) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port(base_port, node_id, 1))
}

/// The port `base + 2(id-1) + offset`; `plan` has checked it fits.
fn port(base_port: u16, node_id: u64, offset: u64) -> u16 {
    let port = u64::from(base_port) + 2 * (node_id - 1) + offset;
    u16::try_from(port).unwrap_or(u16::MAX)
}

/// `ReadyCheck` is what `raftwatch dev` waits for before it prints `ready`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadyCheck {
    /// How many shards there must be; `None` when reusing data, where the
    /// count is whatever the cluster was bootstrapped with.
    pub shards: Option<usize>,
    /// How many replicas each shard must have; `None` to take the cluster's
    /// reported replication factor (when reusing data).
    pub replicas: Option<usize>,
}

/// `not_ready` returns why `status` does not yet show a ready cluster, or
/// `None` when it does: a control-plane leader, at least one shard (exactly
/// `check.shards` if set), and every shard with a leader and its full
/// replica set.
pub fn not_ready(status: &ClusterStatusResponse, check: &ReadyCheck) -> Option<String> {
    if status.control_leader == 0 {
        return Some("no control-plane leader yet".to_string());
    }
    if status.shards.is_empty() {
        return Some("no shards yet".to_string());
    }
    if let Some(want) = check.shards
        && status.shards.len() != want
    {
        return Some(format!("{} of {want} shards exist", status.shards.len()));
    }
    let replicas = check.replicas.or_else(|| {
        usize::try_from(status.replication_factor)
            .ok()
            .filter(|&rf| rf > 0)
    });
    let leaderless = status.shards.iter().filter(|s| s.leader == 0).count();
    if leaderless > 0 {
        return Some(format!(
            "{leaderless} of {} shards have no leader",
            status.shards.len()
        ));
    }
    if let Some(want) = replicas
        && let Some(shard) = status.shards.iter().find(|s| s.replicas.len() != want)
    {
        return Some(format!(
            "shard {} has {} of {want} replicas",
            shard.id,
            shard.replicas.len()
        ));
    }
    None
}

/// `prefix_line` marks one line of node `node_id`'s output: a JSON object
/// gets a leading `"node": id` field (so it stays one JSON object per line),
/// anything else a `[node-id] ` prefix.
pub fn prefix_line(node_id: u64, line: &str) -> String {
    let trimmed = line.trim();
    if let Some(inner) = trimmed
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
    {
        if inner.trim().is_empty() {
            return format!("{{\"node\":{node_id}}}");
        }
        return format!("{{\"node\":{node_id},{inner}}}");
    }
    format!("[node-{node_id}] {line}")
}

/// `run` runs `raftwatch dev` until SIGINT/SIGTERM (exit 0 when every node
/// then stopped cleanly) or until a node exits on its own (exit 1). Invalid
/// flags exit 2 before anything is created.
pub fn run(args: &DevArgs, log_format: Option<LogFormat>) -> ExitCode {
    let (nodes, configs) = match check(args, log_format) {
        Ok(checked) => checked,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // The children resolve their log format from the same flags, file and
    // environment; this process follows node 1's.
    let own_format = configs.first().map_or(LogFormat::Text, |c| c.log_format);
    if let Err(e) = logging::init(own_format) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let reused = match existing_nodes(args, &configs) {
        Ok(reused) => reused,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&args.data_dir) {
        eprintln!("error: cannot create {}: {e}", args.data_dir.display());
        return ExitCode::FAILURE;
    }
    let check = if reused {
        tracing::info!(
            data_dir = %args.data_dir.display(),
            "reusing existing data: shards and replicas are as bootstrapped, not as flagged"
        );
        ReadyCheck {
            shards: None,
            replicas: None,
        }
    } else {
        ReadyCheck {
            shards: configs.first().map(|c| c.shards as usize),
            replicas: configs.first().map(|c| c.replicas as usize),
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(supervise(&nodes, &configs, check))
}

/// Checks the dev flags and every child's resulting configuration, as
/// `raftwatch server` will (the children inherit this environment).
fn check(
    args: &DevArgs,
    log_format: Option<LogFormat>,
) -> Result<(Vec<ServerArgs>, Vec<ServerConfig>), DevArgsError> {
    let nodes = plan(args, log_format)?;
    let env = config::env_from_process();
    let configs = nodes
        .iter()
        .map(|node| {
            config::load(node, &env).map_err(|source| DevArgsError::Node {
                node_id: node.node_id.unwrap_or(0),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((nodes, configs))
}

/// Whether the nodes' data dirs already hold nodes: `Ok(false)` when none
/// does, `Ok(true)` when all do, an error when only some do.
fn existing_nodes(args: &DevArgs, configs: &[ServerConfig]) -> Result<bool, DevArgsError> {
    let (with, without): (Vec<u64>, Vec<u64>) = configs
        .iter()
        .map(|c| c.node_id)
        .partition(|&id| holds_data(&node_dir(&args.data_dir, id)));
    if !with.is_empty() && !without.is_empty() {
        return Err(DevArgsError::PartialData {
            dir: args.data_dir.display().to_string(),
            with,
            without,
        });
    }
    Ok(!with.is_empty())
}

fn holds_data(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

/// One running child.
#[derive(Debug)]
struct NodeProc {
    node_id: u64,
    child: tokio::process::Child,
    /// Its exit status, once seen.
    exited: Option<ExitStatus>,
    /// The thread forwarding its output; ends when the child's end of the
    /// pipe closes.
    forwarder: Option<std::thread::JoinHandle<()>>,
}

/// Why the dev cluster is stopping.
enum Ending {
    Signal(Stop),
    NodeExited(usize, std::io::Result<ExitStatus>),
}

async fn supervise(nodes: &[ServerArgs], configs: &[ServerConfig], check: ReadyCheck) -> ExitCode {
    // Before the first child: a Ctrl-C from now on stops the children
    // cleanly instead of killing this process under them.
    let mut signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("error: cannot find the raftwatch executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut children = Vec::with_capacity(nodes.len());
    for (node, config) in nodes.iter().zip(configs) {
        match spawn_node(&exe, node, config.node_id) {
            Ok(child) => children.push(child),
            Err(e) => {
                tracing::error!(node_id = config.node_id, error = %e, "cannot start node");
                stop_all(&mut children, &mut signals).await;
                return ExitCode::FAILURE;
            }
        }
    }

    for config in configs {
        say(&format!(
            "node {}: grpc http://{} http http://{}",
            config.node_id, config.grpc_addr, config.http_addr
        ));
    }
    if let Some(first) = configs.first() {
        say(&format!(
            "point clients at grpc http://{} or http http://{}",
            first.grpc_addr, first.http_addr
        ));
    }

    let grpc_addrs: Vec<(u64, SocketAddr)> =
        configs.iter().map(|c| (c.node_id, c.grpc_addr)).collect();
    let mut ready = std::pin::pin!(wait_ready(grpc_addrs, check));
    let mut is_ready = false;
    let ending = loop {
        tokio::select! {
            // A signal first: Ctrl-C reaches the children too (same
            // process group), and a child that stops because of it must
            // not be reported as a crash.
            biased;
            signal = signals.recv() => break Ending::Signal(signal),
            (index, status) = first_exit(&mut children) => break Ending::NodeExited(index, status),
            () = &mut ready, if !is_ready => {
                is_ready = true;
                tracing::info!("every shard has a leader");
                say("ready");
            }
        }
    };

    let mut failed = false;
    match ending {
        Ending::Signal(signal) => {
            tracing::info!(signal = signal.name(), "stopping the nodes");
        }
        Ending::NodeExited(index, status) => {
            failed = true;
            if let Some(node) = children.get_mut(index) {
                match status {
                    Ok(status) => {
                        node.exited = Some(status);
                        tracing::error!(
                            node_id = node.node_id,
                            %status,
                            "node exited; stopping the others"
                        );
                    }
                    Err(e) => {
                        tracing::error!(
                            node_id = node.node_id,
                            error = %e,
                            "cannot wait for node; stopping all"
                        );
                    }
                }
            }
        }
    }
    if !stop_all(&mut children, &mut signals).await {
        failed = true;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Writes one line to stdout and flushes it, so that a script reading the
/// pipe sees it now. A closed stdout is not a reason to stop the cluster.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn spawn_node(exe: &Path, args: &ServerArgs, node_id: u64) -> std::io::Result<NodeProc> {
    let (reader, writer) = std::io::pipe()?;
    let child = {
        let mut command = tokio::process::Command::new(exe);
        command
            .arg("server")
            .args(server_argv(args))
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            // If this process dies before it can stop the children (a
            // panic, an early return), they do not outlive it.
            .kill_on_drop(true);
        command.spawn()?
        // `command` drops here with this process's copies of the pipe's
        // write end, so the reader sees end-of-file when the child exits.
    };
    let forwarder = raftwatch_raft::rt::spawn_thread(&format!("node-{node_id}-log"), move || {
        forward(reader, node_id)
    })?;
    tracing::debug!(node_id, pid = child.id(), "started node");
    Ok(NodeProc {
        node_id,
        child,
        exited: None,
        forwarder: Some(forwarder),
    })
}

/// Copies a child's output to stderr line by line, each marked with the
/// node (see [`prefix_line`]).
fn forward(reader: std::io::PipeReader, node_id: u64) {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(LINE_BYTES_MAX)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let marked = prefix_line(node_id, text.trim_end_matches(['\n', '\r']));
        let _ = writeln!(std::io::stderr().lock(), "{marked}");
    }
}

/// The first child to exit, and how. Pending forever when there are none.
/// Cancel-safe: `Child::wait` is, and an exited child's status is kept.
async fn first_exit(children: &mut [NodeProc]) -> (usize, std::io::Result<ExitStatus>) {
    if children.is_empty() {
        return std::future::pending().await;
    }
    let waits = children.iter_mut().map(|node| Box::pin(node.child.wait()));
    let (status, index, _) = futures::future::select_all(waits).await;
    (index, status)
}

/// Stops every child: SIGTERM, up to [`STOP_TIMEOUT`] for all of them to
/// exit (cut short by another SIGINT), then SIGKILL. Returns whether every
/// child that was still running exited successfully on its own.
async fn stop_all(children: &mut [NodeProc], signals: &mut Signals) -> bool {
    let mut clean = true;
    for node in children.iter_mut() {
        if node.exited.is_none()
            && let Ok(Some(status)) = node.child.try_wait()
        {
            if !status.success() {
                tracing::warn!(node_id = node.node_id, %status, "node had already exited");
                clean = false;
            }
            node.exited = Some(status);
        }
        if node.exited.is_some() {
            continue;
        }
        if let Err(e) = terminate(&node.child).await {
            tracing::warn!(node_id = node.node_id, error = %e, "cannot send SIGTERM; killing");
            let _ = node.child.start_kill();
        }
    }

    {
        let waits = futures::future::join_all(
            children
                .iter_mut()
                .filter(|node| node.exited.is_none())
                .map(|node| async move {
                    if let Ok(status) = node.child.wait().await {
                        node.exited = Some(status);
                        if status.success() {
                            tracing::info!(node_id = node.node_id, "node stopped");
                        } else {
                            tracing::warn!(
                                node_id = node.node_id,
                                %status,
                                "node stopped with an error"
                            );
                        }
                        status.success()
                    } else {
                        false
                    }
                }),
        );
        let mut waits = std::pin::pin!(waits);
        let mut deadline = std::pin::pin!(tokio::time::sleep(STOP_TIMEOUT));
        loop {
            tokio::select! {
                results = &mut waits => {
                    clean &= results.iter().all(|&ok| ok);
                    break;
                }
                () = &mut deadline => {
                    tracing::warn!(
                        timeout_s = STOP_TIMEOUT.as_secs(),
                        "nodes still running after SIGTERM; killing them"
                    );
                    break;
                }
                signal = signals.recv() => if signal == Stop::Interrupt {
                    tracing::warn!("interrupted again; killing the nodes");
                    break;
                },
            }
        }
    }

    for node in children.iter_mut() {
        if node.exited.is_none() {
            clean = false;
            let _ = node.child.start_kill();
            match node.child.wait().await {
                Ok(status) => node.exited = Some(status),
                Err(e) => tracing::error!(node_id = node.node_id, error = %e, "cannot reap node"),
            }
            tracing::warn!(node_id = node.node_id, "node killed");
        }
        if let Some(forwarder) = node.forwarder.take() {
            // The child is gone, so its pipe is closed and the thread ends
            // after the last line: joining keeps the final lines in order
            // before this process exits.
            let _ = forwarder.join();
        }
    }
    clean
}

/// Sends SIGTERM through the `kill` utility: the standard library can only
/// send SIGKILL, and this crate does not take `unsafe` or a libc binding.
async fn terminate(child: &tokio::process::Child) -> std::io::Result<()> {
    let Some(pid) = child.id() else {
        // Already reaped.
        return Ok(());
    };
    let status = tokio::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .await?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("kill -TERM {pid}: {status}")))
    }
}

/// Polls `ClusterStatus` every [`POLL_INTERVAL`] until [`not_ready`] says
/// the cluster is ready. Asks node 1, and the next node only when one does
/// not answer. Logs why it is still waiting every few seconds.
async fn wait_ready(nodes: Vec<(u64, SocketAddr)>, check: ReadyCheck) {
    let clients: Vec<(u64, AdminClient<Channel>)> = nodes
        .into_iter()
        .filter_map(|(node_id, addr)| {
            let endpoint = Endpoint::from_shared(format!("http://{addr}")).ok()?;
            let channel = endpoint
                .connect_timeout(Duration::from_millis(500))
                .timeout(Duration::from_secs(2))
                .connect_lazy();
            Some((node_id, AdminClient::new(channel)))
        })
        .collect();
    const LOG_EVERY_POLLS: u64 = 20;
    let mut polls: u64 = 0;
    loop {
        let mut why = String::from("no node answered");
        for (node_id, client) in &clients {
            let mut client = client.clone();
            match client.cluster_status(ClusterStatusRequest::default()).await {
                Ok(response) => match not_ready(response.get_ref(), &check) {
                    None => return,
                    Some(reason) => {
                        why = format!("node {node_id}: {reason}");
                        break;
                    }
                },
                Err(status) => {
                    why = format!("node {node_id}: {:?}: {}", status.code(), status.message());
                }
            }
        }
        polls += 1;
        if polls.is_multiple_of(LOG_EVERY_POLLS) {
            tracing::info!(reason = %why, "waiting for the cluster to be ready");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
