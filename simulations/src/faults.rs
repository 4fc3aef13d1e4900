//! Applying the fault schedule between simulation steps, undoing each fault
//! when its time is up, and healing everything for the liveness phase.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use raftwatch_seams::DetRng;

use crate::cluster::{Cluster, host_name};
use crate::params::{Fault, Params};

/// `leader_of` is the live node that leads `group` now, if any.
fn leader_of(cluster: &Cluster, group: u64) -> Option<u64> {
    cluster.live().into_iter().find_map(|(id, node)| {
        let groups = node.host().try_groups()?;
        groups
            .iter()
            .any(|g| g.group().0 == group && g.metrics().is_leader)
            .then_some(id)
    })
}

/// What undoes a fault.
#[derive(Clone, Debug)]
enum Undo {
    Restart(u64),
    Repair(String, String),
    RepairOneway(String, String),
    Release(String, String),
    Loss(String, String),
    Latency(String, String),
    Disk(u64),
}

/// `Faults` is the schedule's state during a run.
#[derive(Debug)]
pub struct Faults {
    pending: Vec<(u64, Fault)>,
    undo: BTreeMap<u64, Vec<Undo>>,
    rng: DetRng,
    /// Faults applied, by kind.
    pub counts: BTreeMap<&'static str, u64>,
    hosts: Vec<String>,
    max_latency: Duration,
}

impl Faults {
    pub fn new(params: &Params, clients: &[String]) -> Faults {
        let mut pending = params.faults.clone();
        pending.reverse();
        let mut hosts: Vec<String> = (1..=params.nodes).map(host_name).collect();
        hosts.extend(clients.iter().cloned());
        Faults {
            pending,
            undo: BTreeMap::new(),
            rng: DetRng::new(params.fault_seed),
            counts: BTreeMap::new(),
            hosts,
            max_latency: Duration::from_millis(params.latency_ms.1),
        }
    }

    /// `tick` applies the faults due at `now_ms` and undoes the expired
    /// ones; returns lines for the event log.
    pub fn tick(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        cluster: &mut Cluster,
        now_ms: u64,
    ) -> Vec<String> {
        let mut log = Vec::new();
        let due: Vec<u64> = self.undo.range(..=now_ms).map(|(t, _)| *t).collect();
        for t in due {
            for u in self.undo.remove(&t).unwrap_or_default() {
                log.push(format!("undo {u:?}"));
                self.apply_undo(sim, cluster, u);
            }
        }
        while self.pending.last().is_some_and(|(t, _)| *t <= now_ms) {
            let Some((_, fault)) = self.pending.pop() else {
                break;
            };
            if let Some(line) = self.apply(sim, cluster, now_ms, &fault) {
                *self.counts.entry(fault.kind()).or_default() += 1;
                log.push(line);
            }
        }
        log
    }

    fn later(&mut self, at: u64, u: Undo) {
        self.undo.entry(at).or_default().push(u);
    }

    fn apply(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        cluster: &mut Cluster,
        now: u64,
        fault: &Fault,
    ) -> Option<String> {
        let n = host_name;
        match fault {
            Fault::Crash {
                node,
                torn,
                down_ms,
            } => {
                let tear = torn.then(|| self.rng.next_u64());
                if !cluster.crash(sim, *node, tear) {
                    return None;
                }
                self.later(now + down_ms, Undo::Restart(*node));
            }
            Fault::PowerLoss { nodes, down_ms } => {
                for id in nodes {
                    if cluster.crash(sim, *id, None) {
                        self.later(now + down_ms, Undo::Restart(*id));
                    }
                }
            }
            Fault::Partition { a, b, ms } => {
                sim.partition(n(*a), n(*b));
                self.later(now + ms, Undo::Repair(n(*a), n(*b)));
            }
            Fault::PartitionOneway { from, to, ms } => {
                sim.partition_oneway(n(*from), n(*to));
                self.later(now + ms, Undo::RepairOneway(n(*from), n(*to)));
            }
            Fault::CrashControlLeader { down_ms } => {
                let leader = leader_of(cluster, 0)?;
                if !cluster.crash(sim, leader, None) {
                    return None;
                }
                self.later(now + down_ms, Undo::Restart(leader));
                return Some(format!(
                    "fault crash_control_leader node={leader} down_ms={down_ms}"
                ));
            }
            Fault::IsolateLeader { shard, ms } => {
                let group = shard.unwrap_or(0);
                let leader = leader_of(cluster, group)?;
                for other in cluster
                    .durable
                    .keys()
                    .copied()
                    .filter(|o| *o != leader)
                    .collect::<Vec<_>>()
                {
                    sim.partition(n(leader), n(other));
                    self.later(now + ms, Undo::Repair(n(leader), n(other)));
                }
                return Some(format!(
                    "fault isolate_leader group={group} node={leader} ms={ms}"
                ));
            }
            Fault::Split { minority, ms } => {
                let majority: Vec<u64> = cluster
                    .durable
                    .keys()
                    .copied()
                    .filter(|i| !minority.contains(i))
                    .collect();
                for a in minority {
                    for b in &majority {
                        sim.partition(n(*a), n(*b));
                        self.later(now + ms, Undo::Repair(n(*a), n(*b)));
                    }
                }
            }
            Fault::ClientCut { client, node, ms } => {
                sim.partition(client.as_str(), n(*node));
                self.later(now + ms, Undo::Repair(client.clone(), n(*node)));
            }
            Fault::LinkLoss { a, b, rate, ms } => {
                sim.set_link_fail_rate(n(*a), n(*b), *rate);
                self.later(now + ms, Undo::Loss(n(*a), n(*b)));
            }
            Fault::Latency { a, b, max_ms, ms } => {
                sim.set_link_max_message_latency(n(*a), n(*b), Duration::from_millis(*max_ms));
                self.later(now + ms, Undo::Latency(n(*a), n(*b)));
            }
            Fault::Hold { a, b, ms } => {
                sim.hold(n(*a), n(*b));
                self.later(now + ms, Undo::Release(n(*a), n(*b)));
            }
            Fault::SlowDisk { node, delay_ms, ms } => {
                cluster.durable[node]
                    .flush_delay_ms
                    .store(*delay_ms, Ordering::Relaxed);
                self.later(now + ms, Undo::Disk(*node));
            }
        }
        Some(format!(
            "fault {}",
            serde_json::to_string(fault).unwrap_or_default()
        ))
    }

    fn apply_undo(&mut self, sim: &mut turmoil::Sim<'_>, cluster: &mut Cluster, u: Undo) {
        match u {
            Undo::Restart(id) => {
                if cluster.restart(sim, id) {
                    *self.counts.entry("restart").or_default() += 1;
                }
            }
            Undo::Repair(a, b) => sim.repair(a.as_str(), b.as_str()),
            Undo::RepairOneway(a, b) => sim.repair_oneway(a.as_str(), b.as_str()),
            Undo::Release(a, b) => sim.release(a.as_str(), b.as_str()),
            // Not `repair`: that would also end a partition of the same
            // link another fault started. A randomly failed link heals by
            // itself at the next tick (turmoil's repair rate is 1).
            Undo::Loss(a, b) => sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.0),
            Undo::Latency(a, b) => {
                sim.set_link_max_message_latency(a.as_str(), b.as_str(), self.max_latency)
            }
            Undo::Disk(id) => cluster.durable[&id]
                .flush_delay_ms
                .store(0, Ordering::Relaxed),
        }
    }

    /// `heal` ends every fault: links repaired and released, loss and
    /// latency back to normal, disks fast, crashed nodes restarted. No
    /// fault starts after it.
    pub fn heal(&mut self, sim: &mut turmoil::Sim<'_>, cluster: &mut Cluster) {
        self.pending.clear();
        let undo = std::mem::take(&mut self.undo);
        for u in undo.into_values().flatten() {
            self.apply_undo(sim, cluster, u);
        }
        for (i, a) in self.hosts.iter().enumerate() {
            for b in &self.hosts[i + 1..] {
                sim.release(a.as_str(), b.as_str());
                sim.repair(a.as_str(), b.as_str());
                sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.0);
                sim.set_link_max_message_latency(a.as_str(), b.as_str(), self.max_latency);
            }
        }
        for d in cluster.durable.values() {
            d.flush_delay_ms.store(0, Ordering::Relaxed);
        }
        for id in cluster.down.clone() {
            cluster.restart(sim, id);
        }
    }
}
