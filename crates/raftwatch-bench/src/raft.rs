//! `raftwatch-bench raft`: the replication core on loopback.
//!
//! Starts `--nodes` in-process nodes (real tonic over 127.0.0.1, real
//! durable logs in a temporary or given directory), creates `--groups`
//! groups on each, and keeps `--concurrency` writers per group proposing
//! `--entry-bytes` entries for `--seconds`. Reports committed entries/s,
//! bytes/s, commit latency percentiles and the log's fdatasyncs/s; with
//! `--idle-groups N` it instead measures the CPU the nodes burn hosting N
//! idle groups.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use raftwatch_raft::{GroupHandle, GroupId, GroupStateMachine, HostConfig, NodeId, RaftHost};
use raftwatch_seams::{Clock, SystemClock};
use serde::Serialize;

/// Arguments of `raftwatch-bench raft`.
#[derive(clap::Args, Debug, Clone)]
pub struct RaftArgs {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Raft groups, each replicated on every node.
    #[arg(long, default_value_t = 1)]
    groups: u64,
    /// Bytes per entry.
    #[arg(long, default_value_t = 1024)]
    entry_bytes: usize,
    /// Concurrent writers per group.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measurement duration.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Directory for the nodes' logs (default: a temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Instead of writing, host this many idle groups and report CPU use.
    #[arg(long)]
    idle_groups: Option<u64>,
    /// Leader heartbeat interval in ms (the election timeout follows at 3–6×;
    /// default: the node's default).
    #[arg(long)]
    heartbeat_ms: Option<u64>,
    /// Grid in ms that the groups' tick timers are rounded up to, so they
    /// share wake-ups (0: off; default: the node's default).
    #[arg(long)]
    timer_quantum_ms: Option<u64>,
    /// Heartbeat intervals a group must stay idle before it quiesces (0:
    /// never; default: the node's default).
    #[arg(long)]
    quiesce_after: Option<u32>,
}

/// The printed result.
#[derive(Serialize, Debug)]
pub struct RaftReport {
    entries_per_sec: f64,
    bytes_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    fsyncs_per_sec: f64,
    groups: u64,
    nodes: u64,
    entry_bytes: usize,
    concurrency: usize,
    entries: u64,
    errors: u64,
    seconds: f64,
    idle_cpu_percent_of_one_core: Option<f64>,
    heartbeat_ms: u64,
    timer_quantum_ms: u64,
    quiesce_after: u32,
    /// With `--idle-groups`: groups quiesced (as leader) when the
    /// measurement started.
    quiesced_groups: Option<usize>,
}

/// Applies nothing but counts: the benchmark measures replication.
#[derive(Default)]
struct Sink {
    applied: u64,
}

impl GroupStateMachine for Sink {
    fn apply(&mut self, _index: u64, _command: &[u8]) -> Vec<u8> {
        self.applied += 1;
        Vec::new()
    }
    fn query(&self, _request: &[u8]) -> Vec<u8> {
        self.applied.to_string().into_bytes()
    }
    fn snapshot(&self) -> Result<Vec<u8>, String> {
        Ok(self.applied.to_le_bytes().to_vec())
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let b: [u8; 8] = snapshot
            .try_into()
            .map_err(|_| "bad snapshot".to_string())?;
        self.applied = u64::from_le_bytes(b);
        Ok(())
    }
}

/// CPU seconds (user + system) this process has used, from /proc.
fn process_cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/self/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    Ok((utime + stime) / 100.0) // USER_HZ is 100 on Linux
}

pub fn run(args: &RaftArgs) -> anyhow::Result<RaftReport> {
    if args.nodes == 0 || args.groups == 0 || args.concurrency == 0 || args.seconds == 0 {
        bail!("--nodes, --groups, --concurrency and --seconds must be positive");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(args.clone()))
}

async fn run_async(args: RaftArgs) -> anyhow::Result<RaftReport> {
    let clock = SystemClock::new();
    let tmp = tempfile::tempdir()?;
    let root = args
        .data_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let group_count = args.idle_groups.unwrap_or(args.groups);
    let mut hosts = Vec::new();
    let mut config_used = None;
    for id in 1..=args.nodes {
        let mut c = HostConfig::new(
            NodeId(id),
            root.join(format!("node-{id}")),
            "127.0.0.1:0".parse()?,
        );
        c.snapshot_after_entries = 100_000;
        if let Some(hb) = args.heartbeat_ms {
            c.heartbeat_interval_ms = hb;
            c.election_timeout_ms = (hb * 3, hb * 6);
        }
        if let Some(q) = args.timer_quantum_ms {
            c.timer_quantum = std::time::Duration::from_millis(q);
        }
        if let Some(q) = args.quiesce_after {
            c.quiesce_after_heartbeats = q;
        }
        config_used = Some(c.clone());
        hosts.push(RaftHost::start(c).await?);
    }
    let config_used = config_used.context("--nodes must be at least 1")?;
    let members = hosts
        .iter()
        .map(|h| (h.node_id(), h.addr().to_string()))
        .collect::<std::collections::BTreeMap<_, _>>();
    let mut leaders: Vec<GroupHandle> = Vec::new();
    for g in 1..=group_count {
        for h in &hosts {
            h.create_group(GroupId(g), Box::new(Sink::default()))
                .await?;
        }
        let first = hosts[0].group(GroupId(g)).await.context("group")?;
        first.initialize(members.clone()).await?;
        first.wait_for_leader(Duration::from_secs(10)).await?;
        leaders.push(first);
    }
    // Wait until each group's leader accepts writes.
    for l in &leaders {
        for _ in 0..200 {
            if l.write(Vec::new()).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    if args.idle_groups.is_some() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Measure once every group quiesced (when quiescence is on), or
        // after 20 s at most.
        let quiesced =
            |hosts: &[RaftHost]| -> usize { hosts.iter().map(|h| h.quiesce_stats().leading).sum() };
        if config_used.quiesce_after_heartbeats > 0 {
            for _ in 0..200 {
                if quiesced(&hosts) as u64 >= group_count {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let quiesced_groups = quiesced(&hosts);
        let idle_fsyncs0: u64 = hosts.iter().map(|h| h.log().stats().fsyncs_count).sum();
        let cpu0 = process_cpu_seconds()?;
        let t0 = clock.now_mono();
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        let cpu = process_cpu_seconds()? - cpu0;
        let wall = clock.now_mono().nanos_since(t0) as f64 / 1e9;
        let idle_fsyncs: u64 = hosts
            .iter()
            .map(|h| h.log().stats().fsyncs_count)
            .sum::<u64>()
            - idle_fsyncs0;
        for h in hosts {
            h.shutdown().await;
        }
        return Ok(RaftReport {
            entries_per_sec: 0.0,
            bytes_per_sec: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            fsyncs_per_sec: idle_fsyncs as f64 / wall / args.nodes as f64,
            groups: group_count,
            nodes: args.nodes,
            entry_bytes: args.entry_bytes,
            concurrency: 0,
            entries: 0,
            errors: 0,
            seconds: wall,
            idle_cpu_percent_of_one_core: Some(100.0 * cpu / wall),
            heartbeat_ms: config_used.heartbeat_interval_ms,
            timer_quantum_ms: u64::try_from(config_used.timer_quantum.as_millis())
                .unwrap_or(u64::MAX),
            quiesce_after: config_used.quiesce_after_heartbeats,
            quiesced_groups: Some(quiesced_groups),
        });
    }

    let fsyncs0: u64 = hosts.iter().map(|h| h.log().stats().fsyncs_count).sum();
    let clock = Arc::new(clock);
    let t0 = clock.now_mono();
    let deadline = Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for l in &leaders {
        for _ in 0..args.concurrency {
            let l = l.clone();
            let clock = clock.clone();
            let payload = vec![0xA5u8; args.entry_bytes];
            tasks.push(raftwatch_raft::rt::spawn(0, async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                while clock.now_mono().nanos_since(t0) < deadline.as_nanos() as u64 {
                    let s = clock.now_mono();
                    match l.write(payload.clone()).await {
                        Ok(_) => latencies.push(clock.now_mono().nanos_since(s)),
                        Err(_) => errors += 1,
                    }
                }
                (latencies, errors)
            }));
        }
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        latencies.extend(l);
        errors += e;
    }
    let wall = clock.now_mono().nanos_since(t0) as f64 / 1e9;
    let fsyncs: u64 = hosts
        .iter()
        .map(|h| h.log().stats().fsyncs_count)
        .sum::<u64>()
        - fsyncs0;
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[i] as f64 / 1e6
    };
    let entries = latencies.len() as u64;
    let report = RaftReport {
        entries_per_sec: entries as f64 / wall,
        bytes_per_sec: (entries as f64 * args.entry_bytes as f64) / wall,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        fsyncs_per_sec: fsyncs as f64 / wall / args.nodes as f64,
        groups: group_count,
        nodes: args.nodes,
        entry_bytes: args.entry_bytes,
        concurrency: args.concurrency,
        entries,
        errors,
        seconds: wall,
        idle_cpu_percent_of_one_core: None,
        quiesced_groups: None,
        heartbeat_ms: config_used.heartbeat_interval_ms,
        timer_quantum_ms: u64::try_from(config_used.timer_quantum.as_millis()).unwrap_or(u64::MAX),
        quiesce_after: config_used.quiesce_after_heartbeats,
    };
    for h in hosts {
        h.shutdown().await;
    }
    Ok(report)
}
