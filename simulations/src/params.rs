//! What a run looks like, derived from its seed alone: cluster shape,
//! timing, workload mix and the fault schedule.

use raftwatch_seams::DetRng;
use serde::Serialize;

/// The gRPC port every simulated node listens on.
pub const PORT: u16 = 7600;

/// `Params` are one run's settings.
#[derive(Clone, Debug, Serialize)]
pub struct Params {
    /// Nodes (3–5), named `n1..nN`.
    pub nodes: u64,
    /// Shards created at bootstrap (1–4).
    pub shards: u32,
    /// Replicas per shard (3, or 5 in some 5-node runs).
    pub replicas: u32,
    /// A node that is not in the initial cluster: it joins through `n1`
    /// as a learner of the control group, and the operator promotes it
    /// (about half the runs with 4 or 5 nodes).
    pub joiner: Option<u64>,
    /// Raft heartbeat, ms.
    pub heartbeat_ms: u64,
    /// Snapshot every this many applied entries, keeping this many behind
    /// it in the log (small: snapshots, purges and installs happen often).
    pub snapshot_every: (u64, u64),
    /// Election timeout range, ms.
    pub election_ms: (u64, u64),
    /// Writer clients (each its own simulated host).
    pub writers: u64,
    /// Reader clients.
    pub readers: u64,
    /// Share of reads made at `stale` consistency.
    pub stale_ratio: f64,
    /// Pause between a writer's operations, ms.
    pub write_gap_ms: (u64, u64),
    /// Pause between a reader's operations, ms.
    pub read_gap_ms: (u64, u64),
    /// Network latency range, ms.
    pub latency_ms: (u64, u64),
    /// Length of the safety phase (faults on), ms.
    pub safety_ms: u64,
    /// Bound on the liveness phase (faults off), ms.
    pub liveness_ms: u64,
    /// Faults, by start time.
    pub faults: Vec<(u64, Fault)>,
    /// Alerting workload: the instances whose `sim_alert_metric` a writer
    /// drives across the alert's threshold (`i1..iN`).
    pub alert_instances: u32,
    /// Alerting workload: each instance's value from the quiet period on
    /// (true: above the threshold, so its alert ends firing).
    pub alert_final_high: Vec<bool>,
    /// Seeds for the simulated world, the nodes and the clients.
    #[serde(skip)]
    pub world_seed: u64,
    #[serde(skip)]
    pub node_seed: u64,
    #[serde(skip)]
    pub client_seed: u64,
    #[serde(skip)]
    pub fault_seed: u64,
}

/// `Fault` is one injected failure, undone after its duration.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// A node crashes (unsynced writes lost; `torn`: the last unsynced
    /// write partly survives) and restarts after `down_ms`.
    Crash { node: u64, torn: bool, down_ms: u64 },
    /// Several nodes lose power at once (unsynced writes lost on each).
    PowerLoss { nodes: Vec<u64>, down_ms: u64 },
    /// Two nodes cannot reach each other.
    Partition { a: u64, b: u64, ms: u64 },
    /// Messages from `from` to `to` are dropped; the other way works.
    PartitionOneway { from: u64, to: u64, ms: u64 },
    /// The current leader of a group (control, or a shard) is cut off from
    /// every other node; clients still reach it.
    IsolateLeader { shard: Option<u64>, ms: u64 },
    /// The nodes split into a minority and a majority.
    Split { minority: Vec<u64>, ms: u64 },
    /// A client loses its link to a node.
    ClientCut { client: String, node: u64, ms: u64 },
    /// Random message loss on a link.
    LinkLoss { a: u64, b: u64, rate: f64, ms: u64 },
    /// Latency spike on a link.
    Latency {
        a: u64,
        b: u64,
        max_ms: u64,
        ms: u64,
    },
    /// Messages on a link are held, then delivered in a burst.
    Hold { a: u64, b: u64, ms: u64 },
    /// A node's fsync takes `delay_ms`.
    SlowDisk { node: u64, delay_ms: u64, ms: u64 },
    /// Whichever node leads the control group then crashes (so the rule
    /// evaluator and notification delivery fail over) and restarts after
    /// `down_ms`.
    CrashControlLeader { down_ms: u64 },
}

impl Fault {
    /// The name counted in the report.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Crash { torn: false, .. } => "crash",
            Fault::Crash { torn: true, .. } => "torn_crash",
            Fault::PowerLoss { .. } => "power_loss",
            Fault::Partition { .. } => "partition",
            Fault::PartitionOneway { .. } => "partition_oneway",
            Fault::IsolateLeader { .. } => "isolate_leader",
            Fault::Split { .. } => "split",
            Fault::ClientCut { .. } => "client_cut",
            Fault::LinkLoss { .. } => "link_loss",
            Fault::Latency { .. } => "latency_spike",
            Fault::Hold { .. } => "hold",
            Fault::SlowDisk { .. } => "slow_disk",
            Fault::CrashControlLeader { .. } => "crash_control_leader",
        }
    }
}

/// Tuning a run may override (the CLI's flags).
#[derive(Clone, Debug)]
pub struct Overrides {
    /// Length of the safety phase, ms.
    pub safety_ms: u64,
    /// Bound on the liveness phase, ms.
    pub liveness_ms: u64,
    /// No faults at all (a baseline).
    pub no_faults: bool,
}

impl Default for Overrides {
    fn default() -> Overrides {
        Overrides {
            safety_ms: 20_000,
            liveness_ms: 40_000,
            no_faults: false,
        }
    }
}

impl Params {
    /// `from_seed` derives every setting from `seed`.
    pub fn from_seed(seed: u64, o: &Overrides) -> Params {
        let mut root = DetRng::new(seed);
        let mut shape = root.fork(1);
        let mut faults_rng = root.fork(2);
        let world_seed = root.fork(3).next_u64();
        let node_seed = root.fork(4).next_u64();
        let client_seed = root.fork(5).next_u64();
        let fault_seed = root.fork(6).next_u64();
        // The alerting workload draws from its own stream, so adding it left
        // every other setting of a seed as it was.
        let mut alerting = root.fork(7);

        let nodes = 3 + shape.below(3);
        let shards = 1 + shape.below(4) as u32;
        let heartbeat_ms = 100 + shape.below(151);
        let election_min = heartbeat_ms * (3 + shape.below(3));
        let latency_min = shape.below(3);
        let latency_max = latency_min + 5 + shape.below(40);
        let writers = 2 + shape.below(3);
        let readers = 1 + shape.below(2);
        let stale_ratio = shape.below(4) as f64 / 10.0;
        let snapshot_after = 10 + shape.below(90);
        let snapshot_every = (snapshot_after, shape.below(snapshot_after / 2));
        let joiner = (nodes >= 4 && shape.chance(0.5)).then_some(nodes);
        // Five replicas when five nodes start together, in a third of those
        // runs (no spare node then: moves are refused, drains too).
        let replicas = if nodes == 5 && joiner.is_none() && shape.chance(0.33) {
            5
        } else {
            3
        };

        let alert_instances = 2 + alerting.below(3) as u32;
        let alert_final_high = (0..alert_instances).map(|_| alerting.chance(0.5)).collect();
        let faults = if o.no_faults {
            Vec::new()
        } else {
            let mut f = schedule(&mut faults_rng, nodes, writers, shards, o.safety_ms);
            f.extend(control_leader_crashes(&mut alerting, o.safety_ms));
            // Stable: faults due at one time keep their order.
            f.sort_by_key(|(t, _)| *t);
            f
        };
        Params {
            nodes,
            shards,
            replicas,
            joiner,
            heartbeat_ms,
            snapshot_every,
            election_ms: (election_min, election_min * 2),
            writers,
            readers,
            stale_ratio,
            write_gap_ms: (10, 150),
            read_gap_ms: (50, 300),
            latency_ms: (latency_min, latency_max),
            safety_ms: o.safety_ms,
            liveness_ms: o.liveness_ms,
            faults,
            alert_instances,
            alert_final_high,
            world_seed,
            node_seed,
            client_seed,
            fault_seed,
        }
    }
}

/// The fault schedule: a fault every 0.3–2 s of the safety phase, each of
/// a kind drawn with fixed weights; about one run in three also loses power
/// on a majority at once.
fn schedule(
    rng: &mut DetRng,
    nodes: u64,
    writers: u64,
    shards: u32,
    safety_ms: u64,
) -> Vec<(u64, Fault)> {
    let mut out = Vec::new();
    let pick = |rng: &mut DetRng| 1 + rng.below(nodes);
    let pair = |rng: &mut DetRng| {
        let a = 1 + rng.below(nodes);
        let b = 1 + (a + rng.below(nodes - 1)) % nodes;
        (a, b)
    };
    let mut t = 1_000 + rng.below(1_000);
    // Leave the last 2 s of the safety phase for faults to end.
    let end = safety_ms.saturating_sub(2_000);
    while t < end {
        let ms = 500 + rng.below(4_500);
        let fault = match rng.below(100) {
            0..=14 => Fault::Crash {
                node: pick(rng),
                torn: rng.chance(0.3),
                down_ms: rng.below(3_000),
            },
            15..=29 => {
                let (a, b) = pair(rng);
                Fault::Partition { a, b, ms }
            }
            30..=37 => {
                let (from, to) = pair(rng);
                Fault::PartitionOneway { from, to, ms }
            }
            38..=51 => Fault::IsolateLeader {
                shard: match rng.below(shards as u64 + 1) {
                    0 => None,
                    s => Some(s),
                },
                ms,
            },
            52..=59 => {
                let minority_len = (nodes - 1) / 2;
                let mut all: Vec<u64> = (1..=nodes).collect();
                let mut minority = Vec::new();
                for _ in 0..minority_len {
                    let i = rng.below(all.len() as u64) as usize;
                    minority.push(all.remove(i));
                }
                minority.sort_unstable();
                Fault::Split { minority, ms }
            }
            60..=65 => Fault::ClientCut {
                client: format!("w{}", 1 + rng.below(writers)),
                node: pick(rng),
                ms,
            },
            66..=75 => {
                let (a, b) = pair(rng);
                Fault::LinkLoss {
                    a,
                    b,
                    rate: 0.001 + rng.below(10) as f64 / 1_000.0,
                    ms,
                }
            }
            76..=83 => {
                let (a, b) = pair(rng);
                Fault::Latency {
                    a,
                    b,
                    max_ms: 100 + rng.below(900),
                    ms,
                }
            }
            84..=91 => {
                let (a, b) = pair(rng);
                Fault::Hold {
                    a,
                    b,
                    ms: 200 + rng.below(1_800),
                }
            }
            _ => Fault::SlowDisk {
                node: pick(rng),
                delay_ms: 20 + rng.below(480),
                ms: 1_000 + rng.below(4_000),
            },
        };
        out.push((t, fault));
        t += 300 + rng.below(1_700);
    }
    if rng.chance(0.35) {
        let at = 2_000 + rng.below(end.saturating_sub(2_000).max(1));
        let count = nodes / 2 + 1 + rng.below(nodes - nodes / 2);
        let mut all: Vec<u64> = (1..=nodes).collect();
        let mut hit = Vec::new();
        for _ in 0..count {
            let i = rng.below(all.len() as u64) as usize;
            hit.push(all.remove(i));
        }
        hit.sort_unstable();
        out.push((
            at,
            Fault::PowerLoss {
                nodes: hit,
                down_ms: 500 + rng.below(2_500),
            },
        ));
        out.sort_by_key(|(t, _)| *t);
    }
    out
}

/// Two or three crashes of the control leader while alerts are pending
/// and firing: from 5 s into the safety phase (the rules are in place and
/// the first alerts have fired) to 3 s before its end.
fn control_leader_crashes(rng: &mut DetRng, safety_ms: u64) -> Vec<(u64, Fault)> {
    let (from, to) = (5_000, safety_ms.saturating_sub(3_000));
    if to <= from {
        return Vec::new();
    }
    let count = 2 + rng.below(2);
    (0..count)
        .map(|_| {
            let at = from + rng.below(to - from);
            let down_ms = 300 + rng.below(2_700);
            (at, Fault::CrashControlLeader { down_ms })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_params_and_faults_stay_in_range() {
        let o = Overrides::default();
        for seed in 0..200 {
            let a = Params::from_seed(seed, &o);
            let b = Params::from_seed(seed, &o);
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
            assert!((3..=5).contains(&a.nodes));
            for (t, f) in &a.faults {
                assert!(*t < o.safety_ms);
                match f {
                    Fault::Partition { a: x, b: y, .. } | Fault::LinkLoss { a: x, b: y, .. } => {
                        assert_ne!(x, y);
                        assert!(*x <= a.nodes && *y <= a.nodes);
                    }
                    Fault::Split { minority, .. } => assert!(minority.len() * 2 < a.nodes as usize),
                    Fault::PowerLoss { nodes, .. } => assert!(nodes.len() * 2 > a.nodes as usize),
                    _ => {}
                }
            }
        }
    }
}
