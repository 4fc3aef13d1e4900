//! Nemeses: faults scheduled from the seed, each held for a while and then
//! healed, with quiet periods between.
//!
//! - `kill`: SIGKILL a minority of nodes (sometimes a leader), restart
//!   them from their data directories at the end of the window.
//! - `pause`: SIGSTOP a minority (sometimes the control-plane leader),
//!   SIGCONT at the end.
//! - `partition`: `iptables` drops in the nodes' namespaces: random halves,
//!   one leader (control plane or a shard) isolated, or a majority ring
//!   where every node sees a majority but no two see the same one; a
//!   lossy network (random 20–40% drop between every pair); or the
//!   clients cut off from a minority of nodes that still reach each other
//!   (requests sent there time out; the clients must fail over).
//! - `clock`: libfaketime wall-clock offsets of ±2..60 s on a minority
//!   (`DONT_FAKE_MONOTONIC`: a stepped NTP clock moves the wall clock, not
//!   the monotonic one).
//! - `membership`: through `raftwatchctl`: move a shard replica to a node
//!   that has none, or transfer a shard's leadership.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use raftwatch_seams::DetRng;
use serde_json::Value;

use crate::cluster::{Cluster, ctl_at};
use crate::history::Recorder;
use crate::net::Network;

/// Every nemesis name `--nemesis` takes.
pub const ALL: [&str; 5] = ["kill", "pause", "partition", "clock", "membership"];

/// `Nemesis` runs the schedule.
#[derive(Debug)]
pub struct Nemesis {
    /// The cluster (shared with the runner).
    pub cluster: Arc<Mutex<Cluster>>,
    /// The network.
    pub net: Arc<Network>,
    /// The history.
    pub rec: Arc<Recorder>,
    /// Enabled faults.
    pub faults: Vec<String>,
    /// Its random source.
    pub rng: DetRng,
}

/// What is currently broken, so it can be healed.
#[derive(Debug, Default)]
struct Active {
    killed: Vec<u64>,
    paused: Vec<u64>,
    partitioned: bool,
    skewed: Vec<u64>,
}

fn lock(c: &Mutex<Cluster>) -> MutexGuard<'_, Cluster> {
    c.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Nemesis {
    fn ids(&self) -> Vec<u64> {
        lock(&self.cluster).nodes().map(|n| n.id).collect()
    }

    /// `status` is `cluster status` from any live node, if one answers.
    async fn status(&self, avoid: &[u64]) -> Option<Value> {
        let (options, endpoints) = {
            let c = lock(&self.cluster);
            let eps: Vec<String> = c
                .nodes()
                .filter(|n| c.running(n.id) && !avoid.contains(&n.id))
                .map(|n| n.endpoint())
                .collect();
            (c.options().clone(), eps)
        };
        for ep in endpoints {
            if let Ok(v) = ctl_at(&options, &ep, &["cluster", "status"]).await {
                return Some(v);
            }
        }
        None
    }

    /// A leader to target: the control plane's or a random shard's.
    async fn some_leader(&mut self) -> Option<(String, u64)> {
        let status = self.status(&[]).await?;
        if self.rng.chance(0.5) {
            let id = status["control_leader"].as_u64()?;
            return Some(("control".into(), id));
        }
        let shards = status["shards"].as_array()?;
        if shards.is_empty() {
            return None;
        }
        let s = &shards[self.rng.below(shards.len() as u64) as usize];
        Some((format!("shard {}", s["id"]), s["leader"].as_u64()?))
    }

    /// With probability `leader_chance` a leader (and what it leads),
    /// else a random minority.
    async fn targets(&mut self, ids: &[u64], leader_chance: f64) -> (Vec<u64>, String) {
        if self.rng.chance(leader_chance)
            && let Some((what, id)) = self.some_leader().await
        {
            return (vec![id], format!(" (leader of {what})"));
        }
        (self.minority(ids), String::new())
    }

    fn minority(&mut self, ids: &[u64]) -> Vec<u64> {
        let max = (ids.len().saturating_sub(1) / 2).max(1);
        let k = 1 + self.rng.below(max as u64) as usize;
        let mut pool = ids.to_vec();
        let mut out = Vec::new();
        for _ in 0..k.min(pool.len()) {
            let i = self.rng.below(pool.len() as u64) as usize;
            out.push(pool.remove(i));
        }
        out.sort_unstable();
        out
    }

    /// `run` alternates quiet periods and faults until `until` (seconds
    /// since the start of the run, by the recorder's clock) or `stop`.
    pub async fn run(mut self, until_s: f64, stop: Arc<AtomicBool>) {
        if self.faults.is_empty() {
            return;
        }
        let now_s = |rec: &Recorder| rec.now_ns() as f64 / 1e9;
        loop {
            let quiet = 2 + self.rng.below(5);
            tokio::time::sleep(Duration::from_secs(quiet)).await;
            let hold = 4 + self.rng.below(9);
            if stop.load(Ordering::Relaxed) || now_s(&self.rec) + hold as f64 + 1.0 > until_s {
                return;
            }
            let fault = self.faults[self.rng.below(self.faults.len() as u64) as usize].clone();
            let mut active = Active::default();
            let (detail, error) = self.start(&fault, &mut active).await;
            self.rec.nemesis("start", &fault, detail, error);
            tokio::time::sleep(Duration::from_secs(hold)).await;
            let (detail, error) = self.heal(&fault, &active);
            self.rec.nemesis("stop", &fault, detail, error);
        }
    }

    /// Applies `action` to every node of `targets`; the errors, joined.
    fn each(
        &self,
        targets: &[u64],
        action: fn(&mut Cluster, u64) -> Result<(), crate::cluster::ClusterError>,
    ) -> Option<String> {
        let mut c = lock(&self.cluster);
        let errors = targets
            .iter()
            .filter_map(|id| action(&mut c, *id).err().map(|e| e.to_string()))
            .collect();
        join_errors(errors)
    }

    async fn start(&mut self, fault: &str, active: &mut Active) -> (String, Option<String>) {
        let ids = self.ids();
        match fault {
            "kill" => {
                let (targets, what) = self.targets(&ids, 0.4).await;
                let errors = self.each(&targets, Cluster::kill);
                active.killed = targets.clone();
                (format!("killed {targets:?}{what}"), errors)
            }
            "pause" => {
                let (targets, what) = self.targets(&ids, 0.5).await;
                let errors = self.each(&targets, Cluster::pause);
                active.paused = targets.clone();
                (format!("paused {targets:?}{what}"), errors)
            }
            "partition" => {
                active.partitioned = true;
                let (detail, result) = match self.rng.below(5) {
                    2 => ("majority ring".to_string(), self.apply_ring(&ids)),
                    3 => ("lossy".to_string(), self.apply_lossy(&ids)),
                    4 => {
                        let cut = self.minority(&ids);
                        (
                            format!("clients cut from {cut:?}"),
                            self.apply_client_cut(&cut),
                        )
                    }
                    kind => {
                        // Kind 1 isolates a leader when one is known; else
                        // (and for kind 0) random halves.
                        let leader = match kind {
                            1 => self.some_leader().await,
                            _ => None,
                        };
                        let (side, label) = match leader {
                            Some((what, id)) => {
                                (vec![id], format!("isolated {id} (leader of {what})"))
                            }
                            None => {
                                let minority = self.minority(&ids);
                                let label = format!("halves {minority:?}");
                                (minority, label)
                            }
                        };
                        let rest: Vec<u64> =
                            ids.iter().copied().filter(|i| !side.contains(i)).collect();
                        let detail = format!("{label} | {rest:?}");
                        (detail, self.apply_groups(&[side, rest]))
                    }
                };
                (detail, result.err())
            }
            "clock" => {
                let targets = self.minority(&ids);
                let c = lock(&self.cluster);
                let mut parts = Vec::new();
                let mut errors = Vec::new();
                for id in &targets {
                    let magnitude = 2 + self.rng.below(59) as i64;
                    let offset = if self.rng.chance(0.5) {
                        magnitude
                    } else {
                        -magnitude
                    };
                    match c.set_clock(*id, offset) {
                        Ok(()) => parts.push(format!("{id}:{offset:+}s")),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                active.skewed = targets;
                (
                    format!("clock offsets {}", parts.join(" ")),
                    join_errors(errors),
                )
            }
            "membership" => self.membership().await,
            other => (String::new(), Some(format!("unknown fault {other}"))),
        }
    }

    fn node_hosts(&self, ids: &[u64]) -> Vec<(u64, crate::net::Host, std::net::Ipv4Addr)> {
        let c = lock(&self.cluster);
        ids.iter()
            .filter_map(|id| {
                let n = c.node(*id)?;
                let host = self.net.hosts().iter().find(|h| h.ns == n.ns)?.clone();
                Some((*id, host, n.ip))
            })
            .collect()
    }

    fn apply_groups(&self, groups: &[Vec<u64>]) -> Result<(), String> {
        let all: Vec<u64> = groups.iter().flatten().copied().collect();
        let hosts = self.node_hosts(&all);
        let mut errors = Vec::new();
        for (id, host, _) in &hosts {
            let mine = groups.iter().find(|g| g.contains(id));
            for (other, _, ip) in &hosts {
                if mine.is_some_and(|g| !g.contains(other))
                    && let Err(e) = self.net.drop_from(host, *ip)
                {
                    errors.push(e.to_string());
                }
            }
        }
        join_errors(errors).map_or(Ok(()), Err)
    }

    fn apply_ring(&self, ids: &[u64]) -> Result<(), String> {
        let hosts = self.node_hosts(ids);
        let n = hosts.len();
        let mut errors = Vec::new();
        for (i, (_, host, _)) in hosts.iter().enumerate() {
            // Sees itself and its ring neighbours within n/2 hops (a
            // majority), drops the rest.
            let reach = (n / 2).div_ceil(2);
            let visible: BTreeSet<usize> = (0..=reach)
                .flat_map(|d| [(i + d) % n, (i + n - d) % n])
                .collect();
            for (j, (_, _, ip)) in hosts.iter().enumerate() {
                if !visible.contains(&j)
                    && let Err(e) = self.net.drop_from(host, *ip)
                {
                    errors.push(e.to_string());
                }
            }
        }
        join_errors(errors).map_or(Ok(()), Err)
    }

    /// `apply_client_cut` drops all traffic, both ways, between the
    /// clients' namespace and the nodes `ids`; the nodes still reach each
    /// other and the webhook receiver.
    fn apply_client_cut(&self, ids: &[u64]) -> Result<(), String> {
        let Some(client) = self.net.host("client").cloned() else {
            return Err("no client namespace".into());
        };
        let mut errors = Vec::new();
        for (_, host, ip) in self.node_hosts(ids) {
            for r in [
                self.net.drop_from(&host, client.ip),
                self.net.drop_from(&client, ip),
            ] {
                if let Err(e) = r {
                    errors.push(e.to_string());
                }
            }
        }
        join_errors(errors).map_or(Ok(()), Err)
    }

    fn apply_lossy(&mut self, ids: &[u64]) -> Result<(), String> {
        let hosts = self.node_hosts(ids);
        let p = 0.2 + self.rng.unit_f64() * 0.2;
        let ips: Vec<std::net::Ipv4Addr> = hosts.iter().map(|(_, _, ip)| *ip).collect();
        let mut errors = Vec::new();
        for (_, host, own) in &hosts {
            let peers: Vec<std::net::Ipv4Addr> =
                ips.iter().copied().filter(|ip| ip != own).collect();
            if let Err(e) = self.net.lossy(host, &peers, p) {
                errors.push(e.to_string());
            }
        }
        join_errors(errors).map_or(Ok(()), Err)
    }

    async fn membership(&mut self) -> (String, Option<String>) {
        let Some(status) = self.status(&[]).await else {
            return (
                "membership".into(),
                Some("no node answered cluster status".into()),
            );
        };
        let ids = self.ids();
        let Some(shards) = status["shards"].as_array().filter(|s| !s.is_empty()) else {
            return ("membership".into(), Some("no shards".into()));
        };
        let s = &shards[self.rng.below(shards.len() as u64) as usize];
        let shard = s["id"].as_u64().unwrap_or(0);
        let replicas: Vec<u64> = s["replicas"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let outside: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|i| !replicas.contains(i))
            .collect();
        let args: Vec<String> =
            if !outside.is_empty() && !replicas.is_empty() && self.rng.chance(0.6) {
                let from = replicas[self.rng.below(replicas.len() as u64) as usize];
                let to = outside[self.rng.below(outside.len() as u64) as usize];
                vec![
                    "shards".into(),
                    "move".into(),
                    shard.to_string(),
                    "--from".into(),
                    from.to_string(),
                    "--to".into(),
                    to.to_string(),
                ]
            } else if !replicas.is_empty() {
                let to = replicas[self.rng.below(replicas.len() as u64) as usize];
                vec![
                    "shards".into(),
                    "transfer-leader".into(),
                    shard.to_string(),
                    "--to".into(),
                    to.to_string(),
                ]
            } else {
                return (
                    "membership".into(),
                    Some(format!("shard {shard} has no replicas")),
                );
            };
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (options, endpoint) = {
            let c = lock(&self.cluster);
            let leader = status["control_leader"].as_u64().unwrap_or(1);
            (
                c.options().clone(),
                c.node(leader).map(|n| n.endpoint()).unwrap_or_default(),
            )
        };
        let detail = format!("raftwatchctl {}", args.join(" "));
        match ctl_at(&options, &endpoint, &arg_refs).await {
            Ok(_) => (detail, None),
            Err(e) => (detail, Some(e.to_string())),
        }
    }

    fn heal(&self, fault: &str, active: &Active) -> (String, Option<String>) {
        let mut errors = Vec::new();
        let mut done = Vec::new();
        {
            let mut c = lock(&self.cluster);
            for id in &active.killed {
                match c.start(*id) {
                    Ok(()) => done.push(format!("restarted {id}")),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            for id in &active.paused {
                match c.resume(*id) {
                    Ok(()) => done.push(format!("resumed {id}")),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            for id in &active.skewed {
                match c.set_clock(*id, 0) {
                    Ok(()) => done.push(format!("clock of {id} reset")),
                    Err(e) => errors.push(e.to_string()),
                }
            }
        }
        if active.partitioned {
            for h in self.net.hosts() {
                if let Err(e) = self.net.heal(h) {
                    errors.push(e.to_string());
                }
            }
            done.push("healed network".into());
        }
        if done.is_empty() {
            done.push(format!("{fault} window over"));
        }
        (done.join(", "), join_errors(errors))
    }

    /// `heal_all` undoes every possible fault (used at the end and on
    /// errors): resumes and starts every node, resets clocks, heals the
    /// network.
    pub fn heal_all(cluster: &Mutex<Cluster>, net: &Network) -> Vec<String> {
        let mut errors = Vec::new();
        let mut c = lock(cluster);
        let ids: Vec<u64> = c.nodes().map(|n| n.id).collect();
        for id in ids {
            if c.running(id) {
                if let Err(e) = c.resume(id) {
                    errors.push(e.to_string());
                }
            } else if let Err(e) = c.start(id) {
                errors.push(e.to_string());
            }
            if c.options().faketime
                && let Err(e) = c.set_clock(id, 0)
            {
                errors.push(e.to_string());
            }
        }
        for h in net.hosts() {
            if let Err(e) = net.heal(h) {
                errors.push(e.to_string());
            }
        }
        errors
    }
}

fn join_errors(errors: Vec<String>) -> Option<String> {
    if errors.is_empty() {
        None
    } else {
        Some(errors.join("; "))
    }
}
