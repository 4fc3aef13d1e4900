//! The simulated cluster: one turmoil host per node running the real node
//! code (`raftwatch::node::start_with_env`) over an in-memory disk that
//! survives the host's crashes, plus the probes the checkers read.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};

use raftwatch::config::{LogFormat, ServerConfig};
use raftwatch::node::{Node, NodeEnv, ShardStores};
use raftwatch_model::TimestampMs;
use raftwatch_raft::GroupId;
use raftwatch_raft::log_store::{FlushMode, SharedLog};
use raftwatch_raft::state_machine::{MemSnapshotStore, SnapshotStore};
use raftwatch_seams::{Clock, DetRng, MonoNanos};
use raftwatch_wal::{MemDisk, WalConfig};

use crate::params::{PORT, Params};

/// `Durable` is what a node keeps across crashes: its disk (the log) and
/// its snapshot stores, and the slow-disk knob.
#[derive(Clone, Debug, Default)]
pub struct Durable {
    pub disk: MemDisk,
    pub snapshots: Arc<Mutex<BTreeMap<GroupId, MemSnapshotStore>>>,
    pub flush_delay_ms: Arc<AtomicU64>,
}

/// `Probes` are the live nodes, for the checkers (weak: a crashed node's
/// runtime is gone and must not look alive).
pub type Probes = Rc<RefCell<BTreeMap<u64, Weak<Node>>>>;

/// `Cluster` is the driver's view of the nodes.
#[derive(Debug)]
pub struct Cluster {
    pub durable: BTreeMap<u64, Durable>,
    pub probes: Probes,
    /// Times each node was (re)started; a crash ends an incarnation.
    pub incarnation: BTreeMap<u64, u64>,
    /// Nodes crashed and not yet restarted.
    pub down: BTreeSet<u64>,
}

/// `host_name` is node `id`'s simulated host name.
pub fn host_name(id: u64) -> String {
    format!("n{id}")
}

fn server_config(params: &Params, id: u64) -> ServerConfig {
    let joining = params.joiner == Some(id);
    let initial_cluster = (1..=params.nodes)
        .filter(|i| !joining && params.joiner != Some(*i))
        .map(|i| (i, format!("{}:{PORT}", host_name(i))))
        .collect();
    ServerConfig {
        node_id: id,
        data_dir: format!("/sim/{}", host_name(id)).into(),
        grpc_addr: SocketAddr::from(([0, 0, 0, 0], PORT)),
        http_addr: SocketAddr::from(([0, 0, 0, 0], PORT + 1)),
        advertise_grpc_addr: format!("{}:{PORT}", host_name(id)),
        advertise_http_addr: format!("{}:{}", host_name(id), PORT + 1),
        initial_cluster,
        join: joining.then(|| format!("{}:{PORT}", host_name(1))),
        shards: params.shards,
        replicas: params.replicas,
        heartbeat_interval_ms: params.heartbeat_ms,
        election_timeout_ms_min: params.election_ms.0,
        election_timeout_ms_max: params.election_ms.1,
        quiesce_after_heartbeats: raftwatch::config::QUIESCE_AFTER_HEARTBEATS_DEFAULT as u32,
        request_bytes_max: 4 << 20,
        query_max_samples: raftwatch::config::QUERY_MAX_SAMPLES_DEFAULT as usize,
        query_timeout_ms: raftwatch::config::QUERY_TIMEOUT_MS_DEFAULT,
        shard_block_cache_bytes: raftwatch::config::SHARD_BLOCK_CACHE_BYTES_DEFAULT as usize,
        log_format: LogFormat::Text,
        // The simulator arms planted bugs for its whole process itself.
        inject_bug: None,
    }
}

impl Cluster {
    /// `start` registers every node with the simulation.
    pub fn start(sim: &mut turmoil::Sim<'_>, params: &Params) -> Cluster {
        let probes: Probes = Rc::default();
        let mut durable = BTreeMap::new();
        let mut seeds = DetRng::new(params.node_seed);
        let incarnation: Rc<RefCell<BTreeMap<u64, u64>>> = Rc::default();
        for id in 1..=params.nodes {
            let d = Durable::default();
            durable.insert(id, d.clone());
            let config = server_config(params, id);
            let snapshot_every = params.snapshot_every;
            let seed = seeds.next_u64();
            let probes = probes.clone();
            let incarnation = incarnation.clone();
            sim.host(host_name(id), move || {
                let d = d.clone();
                let config = config.clone();
                let probes = probes.clone();
                // A restarted node draws new election timeouts.
                let run = {
                    let mut inc = incarnation.borrow_mut();
                    let n = inc.entry(id).or_insert(0);
                    *n += 1;
                    *n
                };
                async move {
                    let node = start_node(config, &d, seed ^ run, snapshot_every).await?;
                    probes.borrow_mut().insert(id, Arc::downgrade(&node));
                    std::future::pending::<()>().await;
                    drop(node);
                    Ok(())
                }
            });
        }
        Cluster {
            durable,
            probes,
            incarnation: (1..=params.nodes).map(|i| (i, 1)).collect(),
            down: BTreeSet::new(),
        }
    }

    /// `live` are the nodes running now, with their handles.
    pub fn live(&self) -> Vec<(u64, Arc<Node>)> {
        self.probes
            .borrow()
            .iter()
            .filter(|(id, _)| !self.down.contains(id))
            .filter_map(|(id, w)| w.upgrade().map(|n| (*id, n)))
            .collect()
    }

    /// `crash` stops node `id` at once: its unsynced writes are lost (with
    /// `tear_seed`, the last one partly survives).
    pub fn crash(&mut self, sim: &mut turmoil::Sim<'_>, id: u64, tear_seed: Option<u64>) -> bool {
        if self.down.contains(&id) {
            return false;
        }
        sim.crash(host_name(id));
        self.probes.borrow_mut().remove(&id);
        let d = &self.durable[&id];
        match tear_seed {
            Some(seed) => d.disk.crash_torn(seed),
            None => d.disk.crash(),
        }
        self.down.insert(id);
        true
    }

    /// `restart` starts a crashed node again from what its disk kept.
    pub fn restart(&mut self, sim: &mut turmoil::Sim<'_>, id: u64) -> bool {
        if !self.down.remove(&id) {
            return false;
        }
        *self.incarnation.entry(id).or_insert(0) += 1;
        sim.bounce(host_name(id));
        true
    }
}

/// `SimClock` is simulated time, as turmoil keeps it for the host running
/// now: monotonic time is the simulation's elapsed time, wall time its
/// fixed epoch plus that. Read outside a host, both are 0. The node reads
/// it only for its metrics.
#[derive(Debug)]
struct SimClock;

impl Clock for SimClock {
    fn now_wall(&self) -> TimestampMs {
        let since_epoch = turmoil::since_epoch().unwrap_or_default();
        TimestampMs(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }

    fn now_mono(&self) -> MonoNanos {
        let elapsed = turmoil::sim_elapsed().unwrap_or_default();
        MonoNanos(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
    }
}

async fn start_node(
    config: ServerConfig,
    d: &Durable,
    seed: u64,
    snapshot_every: (u64, u64),
) -> Result<Arc<Node>, Box<dyn std::error::Error>> {
    let (log, report) =
        SharedLog::open_mem(d.disk.clone(), WalConfig::default(), FlushMode::Manual)
            .map_err(|e| format!("node {} log: {e}", config.node_id))?;
    let snapshots = d.snapshots.clone();
    let stores: raftwatch_raft::SnapshotStores = Arc::new(move |group| {
        let mut map = snapshots
            .lock()
            .map_err(|_| std::io::Error::other("poisoned snapshot registry"))?;
        let store = map.entry(group).or_default().clone();
        Ok(Arc::new(store) as Arc<dyn SnapshotStore>)
    });
    let env = NodeEnv {
        host: raftwatch_raft::HostEnv {
            log: Some((log, report)),
            snapshot_stores: Some(stores),
            incoming: Some(crate::net::incoming(PORT).await?),
            dialer: Some(crate::net::dialer()),
            flush_delay_ms: Some(d.flush_delay_ms.clone()),
        },
        dialer: crate::net::dialer(),
        shard_stores: ShardStores::Mem,
        http: false,
        create_data_dir: false,
        seed,
        clock: Arc::new(SimClock),
        snapshot_every: Some(snapshot_every),
        webhook: crate::net::webhook_connector(),
        evaluate_inline: true,
    };
    let id = config.node_id;
    raftwatch::node::start_with_env(config, env)
        .await
        .map_err(|e| format!("node {id} failed to start: {e:#}").into())
}
