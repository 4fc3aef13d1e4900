//! One raftwatch node: the multi-Raft host with the control group (0) and
//! the shard groups it holds, the gRPC API (Admin, Ingest, Query,
//! NodeInternal and the Raft transport on one port), the HTTP endpoint,
//! the agent that makes the local groups follow the shard map, and, on the
//! control leader, the placement driver.

mod alerting;
mod alerting_api;
mod am_api;
mod api;
mod clients;
mod driver;
mod http;
mod ingest;
mod metrics;
mod prom_api;
mod promql;
mod query;
mod remote_write;
mod shards;
pub mod webhook;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use anyhow::Context;
use raftwatch_control::sm::{decode_outcome, decode_state, encode_query};
use raftwatch_control::state::encode_command;
use raftwatch_control::{
    Applied, Command, ControlQuery, ControlState, ControlStateMachine, MemberState, ShardId,
};
use raftwatch_proto::v1 as pb;
use raftwatch_raft::host::{GroupError, GroupMetrics};
use raftwatch_raft::{GroupHandle, GroupId, HostConfig, NodeId, RaftHost, ReadConsistency};
use raftwatch_seams::{Clock, SystemClock};
use raftwatch_shard::ShardStateMachine;
use tonic::Status;
use tracing::Instrument;

use crate::config::ServerConfig;
use clients::{Clients, group_status, leader_hint, refusal_status, retryable};
pub use ingest::REQUEST_BYTES_MAX;

/// The control plane's Raft group.
pub const CONTROL_GROUP: GroupId = GroupId(0);
/// How long a forwarded or retried operation may take in all.
pub(crate) const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);
/// Agent and driver period.
const TICK: Duration = Duration::from_millis(500);

/// `GroupOp` is an operation that only a group's leader can perform.
#[derive(Clone, Debug)]
pub(crate) enum GroupOp {
    /// Propose a command; the answer is the state machine's response.
    Propose(Vec<u8>),
    /// Add a learner.
    AddLearner(NodeId, String),
    /// Make a learner a voter.
    Promote(NodeId),
    /// Remove a member.
    Remove(NodeId),
    /// Hand leadership to a member.
    TransferLeader(NodeId),
}

impl GroupOp {
    fn name(&self) -> &'static str {
        match self {
            GroupOp::Propose(_) => "propose",
            GroupOp::AddLearner(..) => "add-learner",
            GroupOp::Promote(_) => "promote",
            GroupOp::Remove(_) => "remove",
            GroupOp::TransferLeader(_) => "transfer-leader",
        }
    }
}

/// `Node` is the running node, shared by its services and background tasks.
pub struct Node {
    pub(crate) id: NodeId,
    /// Where this node's shard stores live (sled, or memory in the
    /// simulator).
    shard_stores: ShardStores,
    pub(crate) config: ServerConfig,
    pub(crate) host: RaftHost,
    pub(crate) clients: Clients,
    /// The latest control state this node has read (any consistency).
    state_cache: RwLock<Option<Arc<ControlState>>>,
    /// Serialises the agent's group creation and removal.
    groups_lock: tokio::sync::Mutex<()>,
    /// Proposal queues of the shards this node leads.
    batchers: ingest::Batchers,
    /// This node's own metrics (`/metrics`).
    pub(crate) metrics: metrics::NodeMetrics,
    /// The node's clock: "now" of a PromQL query that names no time, and
    /// the metrics' durations.
    pub(crate) clock: Arc<dyn raftwatch_seams::Clock>,
    /// How webhook deliveries connect to receivers.
    pub(crate) webhook: webhook::Connector,
    /// PromQL evaluations run on the calling task (`NodeEnv`).
    pub(crate) evaluate_inline: bool,
    /// The control leader's alerting bookkeeping (in memory only).
    pub(crate) alerting: alerting::Runtime,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("id", &self.id).finish()
    }
}

/// `NodeCell` lets the gRPC services exist before the node they serve (the
/// host binds the port before the node is assembled).
pub(crate) type NodeCell = Arc<OnceLock<Arc<Node>>>;

/// `run` runs the node until `shutdown` resolves, then shuts down cleanly:
/// background tasks stop, every group stops (the log is durable at every
/// acknowledged point), the gRPC server stops.
pub async fn run(
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let span = tracing::info_span!("node", node_id = config.node_id);
    async move {
        let node = start(config).await?;
        shutdown.await;
        tracing::info!("shutting down");
        node.stop().await;
        tracing::info!("stopped");
        Ok(())
    }
    .instrument(span)
    .await
}

/// `ShardStores` says where a node keeps its shards' state machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardStores {
    /// sled databases under `data_dir/shards` (production).
    Sled,
    /// In memory (the simulator: sled starts real threads). Equivalent for
    /// recovery, since a shard's state is rebuilt from its Raft snapshot
    /// and log at every start either way.
    Mem,
}

/// `NodeEnv` is where a node's disk, network, time and randomness come from:
/// [`NodeEnv::production`] for `raftwatch server`; the simulator passes an
/// in-memory disk, turmoil's network and a seed from its run seed.
pub struct NodeEnv {
    /// The replication layer's log, snapshots, listener and peer dialler.
    pub host: raftwatch_raft::HostEnv,
    /// How this node dials other nodes' public gRPC API.
    pub dialer: raftwatch_proto::net::Dialer,
    /// Where shard state machines keep their data.
    pub shard_stores: ShardStores,
    /// Whether to serve the HTTP API (the simulator has no HTTP clients).
    pub http: bool,
    /// Whether to create `data_dir` (nothing on the real file system is
    /// used when every store is in memory).
    pub create_data_dir: bool,
    /// Seed of this node's randomness (openraft's election timeouts).
    pub seed: u64,
    /// Where the node reads wall time: its metrics (durations, start
    /// time) and the default evaluation time of a PromQL query. (Timers
    /// and timeouts are tokio's, which the simulator pauses.)
    pub clock: Arc<dyn Clock>,
    /// Snapshot policy override: (build a snapshot every this many
    /// applied entries, entries kept in the log behind it). The simulator
    /// makes snapshots, log purges and snapshot installs frequent.
    pub snapshot_every: Option<(u64, u64)>,
    /// How notification deliveries reach webhook receivers.
    pub webhook: webhook::Connector,
    /// Whether PromQL evaluations run on the calling task rather than on
    /// tokio's blocking-thread pool. The simulator runs them inline: a
    /// real thread would run outside its control and make runs
    /// irreproducible (the rule evaluator runs PromQL in every simulated
    /// run).
    pub evaluate_inline: bool,
}

impl std::fmt::Debug for NodeEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeEnv")
            .field("host", &self.host)
            .field("shard_stores", &self.shard_stores)
            .field("http", &self.http)
            .field("create_data_dir", &self.create_data_dir)
            .field("seed", &self.seed)
            .field("clock", &self.clock)
            .field("snapshot_every", &self.snapshot_every)
            .field("evaluate_inline", &self.evaluate_inline)
            .finish_non_exhaustive()
    }
}

impl NodeEnv {
    /// `production` is the real disk and network, seeded by the node id.
    pub fn production(config: &ServerConfig) -> NodeEnv {
        NodeEnv {
            host: raftwatch_raft::HostEnv::default(),
            dialer: raftwatch_proto::net::tcp_dialer(),
            shard_stores: ShardStores::Sled,
            http: true,
            create_data_dir: true,
            seed: config.node_id,
            clock: Arc::new(SystemClock::new()),
            snapshot_every: None,
            webhook: webhook::tcp_connector(),
            evaluate_inline: false,
        }
    }
}

/// `start` brings a node up and returns once it serves.
pub(crate) async fn start(config: ServerConfig) -> anyhow::Result<Arc<Node>> {
    let env = NodeEnv::production(&config);
    start_with_env(config, env).await
}

/// `start_with_env` is `start` with the node's disk, network and
/// randomness taken from `env` (the simulator's seam).
pub async fn start_with_env(config: ServerConfig, env: NodeEnv) -> anyhow::Result<Arc<Node>> {
    if env.create_data_dir {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    }
    let id = NodeId(config.node_id);
    let mut host_config = HostConfig::new(id, config.data_dir.clone(), config.grpc_addr);
    // No real threads under the simulator (see `NodeEnv::evaluate_inline`).
    host_config.queries_on_blocking_pool = !env.evaluate_inline;
    // Nor timers on a process-wide grid: each simulated run starts its
    // virtual clock anew, and a grid anchored in an earlier run would make
    // runs in one process differ.
    if env.evaluate_inline {
        host_config.timer_quantum = Duration::ZERO;
    }
    host_config.seed = env.seed;
    if let Some((every, kept)) = env.snapshot_every {
        host_config.snapshot_after_entries = every;
        host_config.log_entries_kept_after_snapshot = kept;
    }
    host_config.heartbeat_interval_ms = config.heartbeat_interval_ms;
    host_config.quiesce_after_heartbeats = config.quiesce_after_heartbeats;
    host_config.election_timeout_ms = (
        config.election_timeout_ms_min,
        config.election_timeout_ms_max,
    );
    let cell: NodeCell = Arc::default();
    let routes = api::routes(cell.clone(), config.request_bytes_max);
    let host = RaftHost::start_with_env(host_config, routes, env.host)
        .await
        .context("starting the Raft host")?;
    let node = Arc::new(Node {
        id,
        shard_stores: env.shard_stores,
        config: config.clone(),
        host,
        clients: Clients::with_dialer(env.dialer, Duration::from_secs(2), Duration::from_secs(20)),
        state_cache: RwLock::default(),
        groups_lock: tokio::sync::Mutex::default(),
        batchers: ingest::Batchers::default(),
        metrics: metrics::NodeMetrics::new(id, env.clock.clone()),
        clock: env.clock,
        webhook: env.webhook,
        evaluate_inline: env.evaluate_inline,
        alerting: alerting::Runtime::default(),
    });
    let _ = cell.set(node.clone());
    node.host
        .create_group(CONTROL_GROUP, Box::new(ControlStateMachine::new()))
        .await
        .context("opening the control group")?;
    tracing::info!(grpc = %node.host.addr(), "gRPC serving");
    if env.http {
        http::serve(node.clone()).await?;
    }
    if !config.initial_cluster.is_empty() {
        node.bootstrap_control().await?;
    }
    let seed = env.seed;
    {
        let node = node.clone();
        // Spawned tasks do not inherit the caller's span: attach it.
        let span = tracing::Span::current();
        raftwatch_raft::rt::spawn(
            seed,
            async move { node.background().await }.instrument(span),
        );
    }
    {
        let node = node.clone();
        let span = tracing::Span::current();
        raftwatch_raft::rt::spawn(seed, alerting::run(node, seed).instrument(span));
    }
    Ok(node)
}

impl Node {
    async fn stop(&self) {
        self.host.shutdown().await;
    }

    /// `host` is this node's replication layer (the simulator probes its
    /// groups' metrics and replicas).
    pub fn host(&self) -> &RaftHost {
        &self.host
    }

    pub(crate) fn advertised_grpc(&self) -> &str {
        &self.config.advertise_grpc_addr
    }

    /// Initialises the control group on the lowest-id initial member when
    /// its log is empty. The other members wait to hear from it; the
    /// `Bootstrap` command is proposed by the background loop.
    async fn bootstrap_control(&self) -> anyhow::Result<()> {
        let lowest = self.config.initial_cluster.keys().next().copied();
        if lowest != Some(self.id.0) {
            return Ok(());
        }
        let handle = self
            .host
            .group(CONTROL_GROUP)
            .await
            .context("control group missing")?;
        let m = handle.metrics();
        if m.last_log_index.is_some() || m.term > 0 {
            return Ok(()); // Already initialised by an earlier run.
        }
        let voters: BTreeMap<NodeId, String> = self
            .config
            .initial_cluster
            .iter()
            .take(raftwatch_control::state::CONTROL_VOTERS_MAX)
            .map(|(id, addr)| (NodeId(*id), addr.clone()))
            .collect();
        match handle.initialize(voters).await {
            Ok(()) => tracing::info!("initialised the control group"),
            Err(e) => tracing::info!(error = %e, "control group already initialised"),
        }
        Ok(())
    }

    /// The node's background loop: bootstrap, join, register, agent and
    /// (on the control leader) the placement driver.
    async fn background(self: Arc<Self>) {
        let mut joined = self.config.join.is_none();
        let mut registered = false;
        loop {
            tokio::time::sleep(TICK).await;
            if !self.config.initial_cluster.is_empty() {
                self.try_bootstrap_command().await;
            }
            if !joined {
                joined = self.try_join().await;
            }
            if let Err(e) = self.agent_tick().await {
                tracing::debug!(error = %e, "agent tick");
            }
            if !registered {
                registered = self.try_register().await;
            }
            if self.is_control_leader().await
                && let Err(e) = driver::tick(&self).await
            {
                tracing::debug!(error = %e, "driver tick");
            }
        }
    }

    async fn try_bootstrap_command(&self) {
        if self.cached_state().is_some_and(|s| s.bootstrapped) {
            return;
        }
        let members = self
            .config
            .initial_cluster
            .iter()
            .map(|(id, addr)| {
                let http = if *id == self.id.0 {
                    self.config.advertise_http_addr.clone()
                } else {
                    String::new()
                };
                (NodeId(*id), addr.clone(), http)
            })
            .collect();
        let cmd = Command::Bootstrap {
            members,
            shards: self.config.shards,
            replication_factor: self.config.replicas,
        };
        match self.control_write(&cmd).await {
            Ok(_) => tracing::info!("bootstrapped the cluster"),
            Err(e) if e.code() == tonic::Code::FailedPrecondition => {}
            Err(e) => tracing::debug!(error = %e, "bootstrap command not committed yet"),
        }
        let _ = self.control_state(ReadConsistency::Stale).await;
    }

    /// Registers this node's advertised addresses (the HTTP address of
    /// initial members is not in `--initial-cluster`).
    async fn try_register(&self) -> bool {
        let Some(state) = self.cached_state() else {
            return false;
        };
        match state.members.get(&self.id) {
            Some(m) if m.http_addr == self.config.advertise_http_addr => true,
            Some(m) if m.state == MemberState::Removed => true,
            Some(_) => {
                let cmd = Command::AddMember {
                    id: self.id,
                    grpc_addr: self.config.advertise_grpc_addr.clone(),
                    http_addr: self.config.advertise_http_addr.clone(),
                    expected_version: None,
                };
                self.control_write(&cmd).await.is_ok()
            }
            None => false,
        }
    }

    async fn try_join(&self) -> bool {
        let Some(target) = self.config.join.clone() else {
            return true;
        };
        let channel = match self.clients.channel(&target) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot join");
                return false;
            }
        };
        let mut client = pb::admin_client::AdminClient::new(channel);
        let req = pb::JoinRequest {
            node_id: self.id.0,
            grpc_addr: self.config.advertise_grpc_addr.clone(),
            http_addr: self.config.advertise_http_addr.clone(),
        };
        match client.join(req).await {
            Ok(_) => {
                tracing::info!(via = %target, "joined the cluster as a learner of the control group");
                true
            }
            Err(e) => {
                if !retryable(&e) {
                    tracing::error!(error = %e, "join refused");
                }
                self.clients.evict(&target);
                false
            }
        }
    }

    // ---- Control plane ----

    /// `member_addr` is a member's gRPC address per the cached state.
    pub(crate) fn member_addr(&self, id: NodeId) -> Option<String> {
        self.cached_state()?
            .members
            .get(&id)
            .map(|m| m.grpc_addr.clone())
    }

    pub(crate) fn cached_state(&self) -> Option<Arc<ControlState>> {
        self.state_cache.read().ok().and_then(|s| s.clone())
    }

    /// `shard_list_state` is the control state a read at `consistency`
    /// takes its shard list from: read linearizably for a linearizable
    /// read (a shard added just before is not missed), the cached copy for
    /// a stale one (read only if there is none yet).
    pub(crate) async fn shard_list_state(
        &self,
        consistency: ReadConsistency,
    ) -> Result<Arc<ControlState>, Status> {
        match consistency {
            ReadConsistency::Linearizable => self.control_state(consistency).await,
            ReadConsistency::Stale => match self.cached_state() {
                Some(s) => Ok(s),
                None => self.control_state(consistency).await,
            },
        }
    }

    fn cache_state(&self, state: Arc<ControlState>) {
        if let Ok(mut slot) = self.state_cache.write() {
            // Never go back to an older state.
            if slot.as_ref().is_none_or(|s| s.version <= state.version) {
                *slot = Some(state);
            }
        }
    }

    /// `control_state` reads the control state at `consistency`. A
    /// linearizable read on a follower asks the leader for its read index.
    pub(crate) async fn control_state(
        &self,
        consistency: ReadConsistency,
    ) -> Result<Arc<ControlState>, Status> {
        let bytes = self
            .control_query(&ControlQuery::State, consistency)
            .await?;
        let state = Arc::new(decode_state(&bytes).map_err(Status::internal)?);
        self.cache_state(state.clone());
        Ok(state)
    }

    /// `control_query` asks this node's control replica `query` at
    /// `consistency` and returns the raw answer.
    pub(crate) async fn control_query(
        &self,
        query: &ControlQuery,
        consistency: ReadConsistency,
    ) -> Result<Vec<u8>, Status> {
        let handle = self
            .host
            .group(CONTROL_GROUP)
            .await
            .ok_or_else(|| Status::unavailable("the control group is not open"))?;
        let r = handle
            .read(&encode_query(query), consistency)
            .await
            .map_err(group_status)?;
        Ok(r.response)
    }

    /// `control_write` commits `cmd` through the control leader and returns
    /// its outcome; a refusal maps to its status code.
    pub(crate) async fn control_write(&self, cmd: &Command) -> Result<Applied, Status> {
        let candidates = self.control_candidates();
        let bytes = self
            .leader_call(
                CONTROL_GROUP,
                GroupOp::Propose(encode_command(cmd)),
                &candidates,
            )
            .await?;
        let outcome = decode_outcome(&bytes).map_err(Status::internal)?;
        let applied = outcome.map_err(|r| refusal_status(&r))?;
        // Read back so this node's cache reflects its own write.
        let _ = self.control_state(ReadConsistency::Stale).await;
        Ok(applied)
    }

    fn control_candidates(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .cached_state()
            .map(|s| {
                s.members
                    .values()
                    .filter(|m| m.state != MemberState::Removed)
                    .map(|m| m.grpc_addr.clone())
                    .collect()
            })
            .unwrap_or_default();
        out.extend(self.config.initial_cluster.values().cloned());
        out.extend(self.config.join.clone());
        out.dedup();
        out
    }

    pub(crate) async fn is_control_leader(&self) -> bool {
        match self.host.group(CONTROL_GROUP).await {
            Some(h) => h.metrics().is_leader,
            None => false,
        }
    }

    // ---- Groups ----

    /// `shard_candidates` are the gRPC addresses of a shard's replicas (and
    /// of a move's target), for forwarding.
    pub(crate) fn shard_candidates(&self, shard: ShardId) -> Vec<String> {
        let Some(state) = self.cached_state() else {
            return vec![];
        };
        let mut ids: Vec<NodeId> = Vec::new();
        if let Some(s) = state.shards.get(&shard) {
            // The last known leader first: usually no redirect at all.
            ids.extend(s.leader_hint);
            ids.extend(s.replicas.iter().copied());
        }
        ids.extend(
            state
                .tasks
                .values()
                .filter(|t| t.shard == shard)
                .map(|t| t.to),
        );
        let mut seen = BTreeSet::new();
        ids.retain(|id| seen.insert(*id));
        ids.iter()
            .filter_map(|id| state.members.get(id).map(|m| m.grpc_addr.clone()))
            .collect()
    }

    /// `exec_local` runs `op` on the local replica of `group`.
    pub(crate) async fn exec_local(
        &self,
        handle: &GroupHandle,
        op: &GroupOp,
    ) -> Result<Vec<u8>, GroupError> {
        let m = handle.metrics();
        let span = tracing::debug_span!(
            "group",
            group = handle.group().0,
            term = m.term,
            op = op.name()
        );
        let fut = async {
            match op {
                GroupOp::Propose(cmd) => handle.write(cmd.clone()).await,
                GroupOp::AddLearner(id, addr) => {
                    handle.add_learner(*id, addr.clone()).await.map(|_| vec![])
                }
                GroupOp::Promote(id) => handle.promote([*id].into()).await.map(|_| vec![]),
                GroupOp::Remove(id) => handle.remove([*id].into()).await.map(|_| vec![]),
                GroupOp::TransferLeader(id) => {
                    let m = handle.metrics();
                    if !m.is_leader {
                        return Err(GroupError::NotLeader {
                            group: handle.group(),
                            leader: m.leader,
                            leader_addr: None,
                        });
                    }
                    handle.transfer_leader(*id).await.map(|_| vec![])
                }
            }
        };
        match tokio::time::timeout(OPERATION_TIMEOUT, fut.instrument(span)).await {
            Ok(r) => r,
            Err(_) => Err(GroupError::Unavailable {
                group: handle.group(),
                reason: format!("{} timed out", op.name()),
            }),
        }
    }

    /// `leader_call` performs `op` on `group`'s leader: locally when this
    /// node leads, otherwise on the node a not-leader answer names, or else
    /// on each candidate in turn, retrying retryable failures with capped
    /// exponential backoff until [`OPERATION_TIMEOUT`].
    pub(crate) async fn leader_call(
        &self,
        group: GroupId,
        op: GroupOp,
        candidates: &[String],
    ) -> Result<Vec<u8>, Status> {
        let deadline = tokio::time::sleep(OPERATION_TIMEOUT);
        tokio::pin!(deadline);
        let mut hint: Option<String> = None;
        let mut next_candidate = 0usize;
        let mut backoff = Duration::from_millis(20);
        let mut last_error = Status::unavailable(format!("no leader found for group {group}"));
        loop {
            let local = self.host.group(group).await;
            let target = match (&hint, &local) {
                (Some(h), _) if h != self.advertised_grpc() => Some(h.clone()),
                (_, Some(_)) => None,
                (_, None) => {
                    if candidates.is_empty() {
                        return Err(Status::unavailable(format!(
                            "no replica of group {group} is known"
                        )));
                    }
                    let c = candidates[next_candidate % candidates.len()].clone();
                    next_candidate += 1;
                    Some(c)
                }
            };
            hint = None;
            let result = match (target, local) {
                (None, Some(handle)) => match self.exec_local(&handle, &op).await {
                    Ok(r) => return Ok(r),
                    Err(GroupError::NotLeader {
                        leader,
                        leader_addr,
                        ..
                    }) => {
                        hint = leader_addr.or_else(|| self.member_addr(leader?));
                        if hint.is_none() && !candidates.is_empty() {
                            hint = Some(candidates[next_candidate % candidates.len()].clone());
                            next_candidate += 1;
                        }
                        Err(Status::unavailable(format!(
                            "group {group} has no leader here"
                        )))
                    }
                    Err(e) => Err(group_status(e)),
                },
                (Some(addr), _) => {
                    // The whole call is bounded by the deadline, not only the
                    // waits between attempts: a peer whose connection went
                    // silent (packets dropped, no reset) would otherwise hold
                    // the caller for the channel's request timeout (found by
                    // raftwatch-sim seed 12: a node's bootstrap command hung
                    // 27 simulated seconds on a dead connection, and its
                    // shard replica was never opened meanwhile).
                    let r = tokio::select! {
                        biased; // No thread-local randomness in branch choice.
                        r = self.remote_group_op(&addr, group, &op) => r,
                        () = deadline.as_mut() => Err(Status::deadline_exceeded(format!(
                            "no answer from {addr} for group {group} within {OPERATION_TIMEOUT:?}"
                        ))),
                    };
                    if let Err(status) = &r {
                        hint = leader_hint(status);
                        if clients::channel_suspect(status) {
                            self.clients.evict(&addr);
                        }
                    }
                    match r {
                        Err(s) if s.code() == tonic::Code::NotFound => {
                            Err(Status::unavailable(s.message().to_string()))
                        }
                        other => other,
                    }
                }
                (None, None) => Err(last_error.clone()),
            };
            match result {
                Ok(r) => return Ok(r),
                Err(status) if !retryable(&status) => return Err(status),
                Err(status) => last_error = status,
            }
            if hint.is_some() {
                continue_after(&mut backoff, Duration::from_millis(5), &mut deadline).await?;
            } else {
                let wait = backoff;
                continue_after(&mut backoff, wait, &mut deadline).await?;
            }
            if deadline.is_elapsed() {
                return Err(last_error);
            }
        }
    }

    async fn remote_group_op(
        &self,
        addr: &str,
        group: GroupId,
        op: &GroupOp,
    ) -> Result<Vec<u8>, Status> {
        let channel = self.clients.channel(addr)?;
        let mut client = pb::node_internal_client::NodeInternalClient::new(channel);
        match op {
            GroupOp::Propose(cmd) => client
                .propose(pb::ProposeRequest {
                    group: group.0,
                    command: cmd.clone(),
                    epoch: 0,
                })
                .await
                .map(|r| r.into_inner().response),
            other => {
                let (node_id, addr) = match other {
                    GroupOp::AddLearner(id, a) => (id.0, a.clone()),
                    GroupOp::Promote(id) | GroupOp::Remove(id) | GroupOp::TransferLeader(id) => {
                        (id.0, String::new())
                    }
                    GroupOp::Propose(_) => (0, String::new()),
                };
                client
                    .group_membership(pb::GroupMembershipRequest {
                        group: group.0,
                        op: other.name().to_string(),
                        node_id,
                        addr,
                    })
                    .await
                    .map(|_| vec![])
            }
        }
    }

    /// `group_read_with_index` answers a read-only request on `group` at
    /// `consistency`: locally when this node hosts a replica, otherwise on
    /// a replica among `candidates` (trying each until one answers). It
    /// says which log position the answer reflects: the answering replica's
    /// applied index and, for a linearizable read, the read index it waited
    /// for.
    pub(crate) async fn group_read_with_index(
        &self,
        group: GroupId,
        request: Vec<u8>,
        consistency: ReadConsistency,
        candidates: &[String],
    ) -> Result<raftwatch_raft::host::ReadResult, Status> {
        if let Some(handle) = self.host.group(group).await {
            match handle.read(&request, consistency).await {
                Ok(r) => return Ok(r),
                Err(e) if candidates.is_empty() => return Err(group_status(e)),
                Err(e) => tracing::debug!(error = %e, "local read failed; asking another replica"),
            }
        }
        let mut last = Status::unavailable(format!("no replica of group {group} answered"));
        let deadline = tokio::time::sleep(OPERATION_TIMEOUT);
        tokio::pin!(deadline);
        let mut backoff = Duration::from_millis(20);
        loop {
            for addr in candidates {
                if addr == self.advertised_grpc() {
                    continue;
                }
                let channel = self.clients.channel(addr)?;
                let mut client = pb::node_internal_client::NodeInternalClient::new(channel)
                    .max_decoding_message_size(query::SHARD_ANSWER_BYTES_MAX);
                let wire = match consistency {
                    ReadConsistency::Linearizable => pb::Consistency::Linearizable,
                    ReadConsistency::Stale => pb::Consistency::Stale,
                };
                match client
                    .group_read(pb::GroupReadRequest {
                        group: group.0,
                        request: request.clone(),
                        consistency: wire as i32,
                    })
                    .await
                {
                    Ok(r) => {
                        let r = r.into_inner();
                        let linearizable = consistency == ReadConsistency::Linearizable;
                        return Ok(raftwatch_raft::host::ReadResult {
                            response: r.response,
                            applied_index: Some(r.applied_index),
                            read_index: linearizable.then_some(r.read_index),
                            known_commit_index: Some(r.known_commit_index),
                        });
                    }
                    Err(s) if retryable(&s) || s.code() == tonic::Code::NotFound => {
                        self.clients.evict(addr);
                        last = s;
                    }
                    Err(s) => return Err(s),
                }
            }
            let wait = backoff;
            continue_after(&mut backoff, wait, &mut deadline).await?;
            if deadline.is_elapsed() {
                return Err(last);
            }
        }
    }

    /// `local_status` reports every group hosted here.
    pub(crate) async fn local_status(&self) -> Vec<GroupMetrics> {
        self.host
            .groups()
            .await
            .iter()
            .map(|g| g.metrics())
            .collect()
    }

    // ---- The agent: local groups follow the shard map ----

    async fn agent_tick(&self) -> Result<(), Status> {
        let state = self.control_state(ReadConsistency::Stale).await?;
        if !state.bootstrapped {
            return Ok(());
        }
        let _guard = self.groups_lock.lock().await;
        for shard in state.shards.values() {
            if !state.hosts(shard.id, self.id) {
                continue;
            }
            let handle = match self.host.group(shard.id.group()).await {
                Some(h) => h,
                None => match self.open_shard(shard.id).await {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::error!(shard = shard.id.0, error = %e, "cannot open shard");
                        continue;
                    }
                },
            };
            if initialiser(shard) == Some(self.id) {
                let m = handle.metrics();
                if m.last_log_index.is_none() && m.term == 0 {
                    let members: BTreeMap<NodeId, String> = shard
                        .replicas
                        .iter()
                        .filter_map(|r| state.members.get(r).map(|m| (*r, m.grpc_addr.clone())))
                        .collect();
                    match handle.initialize(members).await {
                        Ok(()) => tracing::info!(shard = shard.id.0, "initialised shard group"),
                        Err(e) => tracing::debug!(shard = shard.id.0, error = %e, "shard init"),
                    }
                }
            }
        }
        // Groups this node should no longer host. Confirmed with a
        // linearizable read first: a stale view must never delete a
        // replica that a newer shard map still counts on.
        let local: Vec<GroupId> = self
            .host
            .groups()
            .await
            .iter()
            .map(|g| g.group())
            .filter(|g| *g != CONTROL_GROUP)
            .collect();
        let doomed: Vec<GroupId> = local
            .into_iter()
            .filter(|g| !state.hosts(ShardId(g.0), self.id))
            .collect();
        if !doomed.is_empty() {
            let fresh = self.control_state(ReadConsistency::Linearizable).await?;
            for g in doomed {
                if fresh.hosts(ShardId(g.0), self.id) || !fresh.shards.contains_key(&ShardId(g.0)) {
                    continue;
                }
                tracing::info!(shard = g.0, "removing a replica this node no longer holds");
                if let Err(e) = self.host.remove_group(g).await {
                    tracing::warn!(shard = g.0, error = %e, "stopping the group failed");
                }
            }
        }
        Ok(())
    }

    async fn open_shard(&self, shard: ShardId) -> anyhow::Result<GroupHandle> {
        let tsdb = raftwatch_tsdb::TsdbConfig {
            block_cache_bytes: self.config.shard_block_cache_bytes,
            ..raftwatch_tsdb::TsdbConfig::default()
        };
        let sm: Box<dyn raftwatch_raft::GroupStateMachine> = match self.shard_stores {
            ShardStores::Sled => {
                let dir = self
                    .config
                    .data_dir
                    .join("shards")
                    .join(format!("shard-{}", shard.0));
                Box::new(
                    ShardStateMachine::open(tsdb, Box::new(shards::SledShardStores::new(dir)))
                        .map_err(anyhow::Error::msg)?,
                )
            }
            ShardStores::Mem => Box::new(
                ShardStateMachine::open(tsdb, Box::new(shards::MemShardStores))
                    .map_err(anyhow::Error::msg)?,
            ),
        };
        let handle = self
            .host
            .create_group(shard.group(), sm)
            .await
            .context("creating the shard group")?;
        tracing::info!(shard = shard.0, "opened shard replica");
        Ok(handle)
    }
}

/// `initialiser` is the member that creates `shard`'s Raft group with its
/// initial replica set, while that set is still the initial one (epoch 1):
/// a member rotating with the shard id, so the first leaders (usually the
/// initialiser) spread over the nodes instead of all landing on the lowest
/// id. A replica added later by a move joins through the leader instead.
/// The initialiser acts only on a group with an empty log and term 0.
///
/// A pending task on the shard does not matter: a move waits for the
/// shard's leader, so a shard whose group was never created must still be
/// created, or the move and the shard wait for each other forever (found
/// by raftwatch-sim seed 220: an operator moved a shard before its group
/// was initialised).
fn initialiser(shard: &raftwatch_control::state::Shard) -> Option<NodeId> {
    if shard.epoch != 1 || shard.replicas.is_empty() {
        return None;
    }
    let i = (shard.id.0.saturating_sub(1) as usize) % shard.replicas.len();
    shard.replicas.get(i).copied()
}

/// Sleeps `wait` (then doubles `backoff`, capped at 1 s) unless the deadline
/// passes first.
async fn continue_after(
    backoff: &mut Duration,
    wait: Duration,
    deadline: &mut std::pin::Pin<&mut tokio::time::Sleep>,
) -> Result<(), Status> {
    tokio::select! {
        biased; // No thread-local randomness in branch choice.
        _ = tokio::time::sleep(wait) => {}
        _ = deadline.as_mut() => {}
    }
    *backoff = (*backoff * 2).min(Duration::from_secs(1));
    Ok(())
}

#[cfg(test)]
mod tests {
    use raftwatch_control::state::{Command, ControlState, ShardId};

    use super::*;

    #[test]
    fn a_shard_is_initialised_by_one_member_even_with_a_move_pending() {
        let mut state = ControlState::default();
        let members = (1..=4)
            .map(|i| (NodeId(i), format!("n{i}:7600"), format!("n{i}:7601")))
            .collect();
        state
            .apply(&Command::Bootstrap {
                members,
                shards: 4,
                replication_factor: 3,
            })
            .unwrap();
        let shard = state.shards[&ShardId(3)].clone();
        let first = initialiser(&shard).expect("an initialiser");
        assert!(shard.replicas.contains(&first));
        // Another shard rotates to another member.
        assert_ne!(initialiser(&state.shards[&ShardId(1)]), Some(first));
        // A move of the never-initialised shard is pending: the group must
        // still be created, by the same member.
        let to = (1..=4)
            .map(NodeId)
            .find(|n| !shard.replicas.contains(n))
            .unwrap();
        state
            .apply(&Command::StartMove {
                shard: ShardId(3),
                from: shard.replicas[0],
                to,
                reason: "operator".into(),
                expected_version: None,
            })
            .unwrap();
        assert!(state.tasks.values().any(|t| t.shard == ShardId(3)));
        assert_eq!(initialiser(&state.shards[&ShardId(3)]), Some(first));
        // Once the replica set changed, nobody initialises.
        let mut moved = shard.clone();
        moved.epoch = 2;
        assert_eq!(initialiser(&moved), None);
    }
}
