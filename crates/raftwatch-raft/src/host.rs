//! [`RaftHost`]: one node's Raft groups over one shared log, one tonic
//! server and one connection pool, and [`GroupHandle`], the operations on a
//! group: writes, reads at a named consistency, membership, snapshots.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::raft::linearizable_read::{Linearizer, ReadLogId};
use openraft::{ChangeMembers, ReadPolicy, ServerState, SnapshotPolicy};
use thiserror::Error;
use tokio::sync::Mutex;

use crate::coalesce::BatchStats;
use crate::log_store::SharedLog;
use crate::network::{GroupNetworkFactory, NetConfig, Peers, ReadIndexError};
use crate::quiesce::{QuiesceStats, Quiescence};
use crate::service::{RaftService, Registry};
use crate::state_machine::{FsSnapshotStore, GroupStateMachine, SmAdapter, SnapshotStore};
use crate::types::{GroupId, GroupRaft, LogId, NodeAddr, NodeId, Request};

/// `HostConfig` configures a node's replication layer.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// This node's id.
    pub node_id: NodeId,
    /// Where the shared log (`wal/`) and snapshots (`snapshots/`) live.
    pub data_dir: PathBuf,
    /// The address the Raft gRPC server binds (port 0: pick one).
    pub listen_addr: SocketAddr,
    /// Seed of openraft's randomness on this node (election timeouts).
    pub seed: u64,
    /// Election timeout range in ms (min, max).
    pub election_timeout_ms: (u64, u64),
    /// Leader heartbeat interval in ms.
    pub heartbeat_interval_ms: u64,
    /// Build a snapshot once this many entries were applied since the last.
    pub snapshot_after_entries: u64,
    /// Also build one once this many bytes of entries were appended to the
    /// group's log since the last (checked every `snapshot_check_interval`):
    /// a few huge entries fill the disk long before the entry count trips.
    pub snapshot_after_bytes: u64,
    /// How often the byte budget above is checked.
    pub snapshot_check_interval: Duration,
    /// Entries kept in the log behind a snapshot (for lagging followers).
    pub log_entries_kept_after_snapshot: u64,
    /// Maximum entries per append-entries message.
    pub append_entries_max: u64,
    /// Transport settings.
    pub net: NetConfig,
    /// Largest snapshot accepted from a peer, in bytes.
    pub snapshot_bytes_max: u64,
    /// The shared log's settings.
    pub wal: raftwatch_wal::WalConfig,
    /// Run local state-machine queries on tokio's blocking pool (real
    /// threads), so a query's shards are evaluated in parallel and the
    /// runtime's workers stay free for Raft. The simulator turns it off.
    pub queries_on_blocking_pool: bool,
    /// Round openraft's long sleeps (each group's tick loop) up to this
    /// grid so the ticks of many groups share one timer wake-up
    /// (`crate::rt::coalesce_long_timers`; `ZERO`: off, as under the
    /// simulator). Process-wide: the last host started sets it.
    pub timer_quantum: Duration,
    /// Heartbeat intervals a led group must stay idle (nothing appended,
    /// every member caught up) before it quiesces: it stops ticking and
    /// heartbeating until written to (`crate::quiesce`). 0: never.
    pub quiesce_after_heartbeats: u32,
}

impl HostConfig {
    /// `new` fills every setting with its default.
    pub fn new(node_id: NodeId, data_dir: PathBuf, listen_addr: SocketAddr) -> HostConfig {
        HostConfig {
            node_id,
            data_dir,
            listen_addr,
            seed: node_id.0,
            // Many groups per node: every heartbeat costs CPU on every
            // follower, so the interval is longer than single-group systems
            // use (etcd: 100 ms). Measured with 64 idle groups on 3 nodes:
            // 100 ms heartbeats cost 29% of a core, 300 ms 8.5–10.6% (with
            // `timer_quantum`), 1 s 4.1%.
            election_timeout_ms: (1_000, 2_000),
            heartbeat_interval_ms: 300,
            snapshot_after_entries: 10_000,
            snapshot_after_bytes: 64 << 20,
            snapshot_check_interval: Duration::from_secs(1),
            log_entries_kept_after_snapshot: 1_000,
            append_entries_max: 256,
            net: NetConfig::default(),
            snapshot_bytes_max: 1 << 30,
            wal: raftwatch_wal::WalConfig::default(),
            queries_on_blocking_pool: true,
            timer_quantum: Duration::from_millis(20),
            quiesce_after_heartbeats: 3,
        }
    }

    fn openraft_config(&self) -> Result<Arc<openraft::Config>, HostError> {
        let c = openraft::Config {
            cluster_name: "raftwatch".into(),
            election_timeout_min: self.election_timeout_ms.0,
            election_timeout_max: self.election_timeout_ms.1,
            heartbeat_interval: self.heartbeat_interval_ms,
            enable_pre_vote: Some(true),
            max_payload_entries: self.append_entries_max,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_after_entries),
            max_in_snapshot_log_to_keep: self.log_entries_kept_after_snapshot,
            install_snapshot_timeout: 5_000,
            // Never resume leadership after a restart without an election.
            // openraft 0.10 does by default ("leader restore"); a leader
            // replicates entries before its own copy is durable, so after a
            // crash it can come back in the same term with a shorter log,
            // append different entries at indices a follower already holds
            // with the same (term, index), and the follower keeps its own:
            // the logs diverge and a follower serves a state without
            // committed entries. Seen in the write-path kill test (group 2,
            // index 111, term 2), fixed by this line.
            enable_leader_restore: Some(false),
            ..Default::default()
        };
        Ok(Arc::new(
            c.validate().map_err(|e| HostError::Config(e.to_string()))?,
        ))
    }
}

/// `HostError` is what starting a host or a group can fail with.
#[derive(Debug, Error)]
pub enum HostError {
    /// Invalid settings.
    #[error("invalid raft configuration: {0}")]
    Config(String),
    /// The shared log or a snapshot could not be opened.
    #[error("storage: {0}")]
    Storage(String),
    /// The gRPC server could not bind.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// openraft refused to start the group.
    #[error("raft: {0}")]
    Raft(String),
    /// The group already exists on this node.
    #[error("group {0} already exists on this node")]
    GroupExists(GroupId),
}

/// `GroupError` is what an operation on a group fails with. Retryability:
/// `NotLeader` and `Unavailable` may succeed elsewhere or later.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GroupError {
    /// This node is not the leader; `leader` is a hint when known.
    #[error("not the leader of group {group}; leader is {leader:?} at {leader_addr:?}")]
    NotLeader {
        /// The group.
        group: GroupId,
        /// The leader, if known.
        leader: Option<NodeId>,
        /// Its gRPC address, if known.
        leader_addr: Option<String>,
    },
    /// The group cannot serve right now (no quorum, shutting down, timed out).
    #[error("group {group} unavailable: {reason}")]
    Unavailable {
        /// The group.
        group: GroupId,
        /// Why.
        reason: String,
    },
    /// The request itself was refused (e.g. an invalid membership change).
    #[error("group {group} refused the request: {reason}")]
    Refused {
        /// The group.
        group: GroupId,
        /// Why.
        reason: String,
    },
}

/// Why a read through the leader gave no read index.
#[derive(Debug, thiserror::Error)]
enum ReadThroughLeader {
    /// The node asked does not lead the group (or lost its quorum).
    #[error("{0}")]
    Refused(String),
    /// It could not be asked, or the read index was not applied in time.
    #[error("{0}")]
    Failed(String),
}

/// `ReadConsistency` is the named consistency of a read. There is no
/// silent downgrade: a linearizable read either is one or fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Reflects every write acknowledged before the read began: ReadIndex on
    /// the leader, or a follower waiting until it applied the leader's read
    /// index.
    Linearizable,
    /// The local replica as it is; may lag. The result says how far.
    Stale,
}

/// `ReadResult` is a state-machine answer and the log position it reflects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadResult {
    /// The state machine's answer.
    pub response: Vec<u8>,
    /// The last applied log index on the replica that answered.
    pub applied_index: Option<u64>,
    /// The leader's commit index when known (linearizable reads), so a stale
    /// reader can tell how far behind it may be.
    pub read_index: Option<u64>,
    /// The newest commit index the answering replica knew of (the cluster
    /// commit its leader last reported); with `applied_index` it says how
    /// far behind a stale answer was, at least.
    pub known_commit_index: Option<u64>,
}

/// `ReplicaState` is a replica's whole state machine state, serialized,
/// and the log index it reflects ([`GroupHandle::try_state`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaState {
    /// The last applied log index.
    pub applied_index: Option<u64>,
    /// The state machine's snapshot bytes, or why it could not make them.
    pub state: Result<Vec<u8>, String>,
}

/// `GroupMetrics` is a snapshot of one group's Raft state on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMetrics {
    /// The group.
    pub group: GroupId,
    /// Current term.
    pub term: u64,
    /// Whether this node leads the group.
    pub is_leader: bool,
    /// Role name (leader, follower, candidate, learner, shutdown).
    pub role: &'static str,
    /// Current leader, if known.
    pub leader: Option<NodeId>,
    /// Last log index on this node.
    pub last_log_index: Option<u64>,
    /// Committed index as known here.
    pub commit_index: Option<u64>,
    /// Applied index.
    pub applied_index: Option<u64>,
    /// Last snapshot's index.
    pub snapshot_index: Option<u64>,
    /// Last purged index.
    pub purged_index: Option<u64>,
    /// Voter ids of the effective membership.
    pub voters: Vec<NodeId>,
    /// Learner ids.
    pub learners: Vec<NodeId>,
    /// On the leader: each follower's and learner's last matched log index
    /// (`None`: nothing matched yet). Empty elsewhere.
    pub matched: BTreeMap<NodeId, Option<u64>>,
}

/// `GroupHandle` operates one group on this node.
#[derive(Clone, Debug)]
pub struct GroupHandle {
    group: GroupId,
    node: NodeId,
    raft: GroupRaft,
    /// Entry bytes appended to this group's log, and the value at the last
    /// byte-triggered snapshot.
    appended_bytes: Arc<std::sync::atomic::AtomicU64>,
    snapshot_baseline_bytes: Arc<std::sync::atomic::AtomicU64>,
    sm: SmAdapter,
    peers: Arc<Peers>,
    read_timeout: Duration,
    queries_on_blocking_pool: bool,
    quiescence: Arc<Quiescence>,
}

fn role_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

impl GroupHandle {
    /// `group` is the group's id.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// `is_quiesced` says whether this replica is quiesced (not ticking,
    /// see [`crate::quiesce`]).
    pub fn is_quiesced(&self) -> bool {
        self.quiescence.is_quiesced(self.group)
    }

    /// Makes the group tick again before an operation that needs its timers
    /// (a write's replication retries, a membership change, a transfer).
    fn wake(&self) -> bool {
        self.quiescence.wake(self.group, &self.raft)
    }

    /// `raft` exposes the openraft instance (tests, the simulator).
    pub fn raft(&self) -> &GroupRaft {
        &self.raft
    }

    fn unavailable(&self, reason: impl ToString) -> GroupError {
        GroupError::Unavailable {
            group: self.group,
            reason: reason.to_string(),
        }
    }

    fn not_leader(
        &self,
        f: &openraft::error::ForwardToLeader<crate::types::TypeConfig>,
    ) -> GroupError {
        GroupError::NotLeader {
            group: self.group,
            leader: f.leader_id.map(NodeId),
            leader_addr: f.leader_node.as_ref().map(|n| n.grpc_addr.clone()),
        }
    }

    /// `initialize` bootstraps the group with these voters; call it on one
    /// member of a new group only.
    pub async fn initialize(&self, members: BTreeMap<NodeId, String>) -> Result<(), GroupError> {
        let nodes: BTreeMap<u64, NodeAddr> = members
            .into_iter()
            .map(|(id, addr)| (id.0, NodeAddr { grpc_addr: addr }))
            .collect();
        self.raft
            .initialize(nodes)
            .await
            .map_err(|e| GroupError::Refused {
                group: self.group,
                reason: e.to_string(),
            })
    }

    /// `wait_for_leader` waits until the group has a leader whose lease a
    /// quorum acknowledged (so it accepts writes), or `timeout` passes.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, GroupError> {
        let m = self
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .map_err(|e| self.unavailable(e))?;
        m.current_leader
            .map(NodeId)
            .ok_or_else(|| self.unavailable("no leader"))
    }

    /// `wake_to_write` wakes the group and renews a lapsed lease before an
    /// operation that appends to the log (a write or a membership change).
    async fn wake_to_write(&self) {
        if self.wake() {
            self.renew_lapsed_lease().await;
        }
    }

    /// openraft refuses writes from a leader whose last quorum
    /// acknowledgement is older than its lease (`election_timeout_max`),
    /// answering "forward to leader" with no leader named (`LeaseExpired`).
    /// A quiesced leader sends no heartbeats, so its lease lapses while it
    /// is the undisputed leader. Called only for a group this node woke from
    /// quiescence as its leader (within the liveness timeout; see
    /// `Quiescence::wake`): when this node still leads and the
    /// acknowledgement is older than half the lease, one ReadIndex quorum
    /// round (a heartbeat to a quorum, which openraft coalesces across
    /// concurrent callers, bounded by the lease) renews the lease before the
    /// write is proposed. If that round fails, the write reports why.
    async fn renew_lapsed_lease(&self) {
        let lapsed = {
            use openraft::async_runtime::WatchReceiver;
            use openraft_rt::Instant as _;
            let rx = self.raft.metrics();
            let m = rx.borrow_watched();
            let half_lease = Duration::from_millis(self.raft.config().election_timeout_max / 2);
            m.current_leader == Some(self.node.0)
                && m.last_quorum_acked.as_ref().is_none_or(|at| {
                    crate::quiesce::now().saturating_duration_since(**at) >= half_lease
                })
        };
        if lapsed {
            // The quorum confirmation alone, not `ensure_linearizable`,
            // which then waits, without a bound, until this replica applied
            // the read index: a write needs the lease, not the apply.
            let _ = self.raft.get_read_linearizer(ReadPolicy::ReadIndex).await;
        }
    }

    /// `write` proposes `command` and returns the state machine's response
    /// once the entry is committed (on a majority's disk) and applied here.
    /// Only the leader accepts writes; others answer `NotLeader` with a hint.
    pub async fn write(&self, command: Vec<u8>) -> Result<Vec<u8>, GroupError> {
        self.wake_to_write().await;
        match self.raft.client_write(Request(command)).await {
            Ok(resp) => Ok(resp.data.0),
            Err(e) => match e.forward_to_leader() {
                Some(f) => Err(self.not_leader(f)),
                None => Err(self.unavailable(e)),
            },
        }
    }

    /// `read` answers `request` from the state machine at `consistency`.
    pub async fn read(
        &self,
        request: &[u8],
        consistency: ReadConsistency,
    ) -> Result<ReadResult, GroupError> {
        // Planted bug (simulator only): a linearizable read served from
        // local state without the ReadIndex round, claiming it had one.
        #[cfg(feature = "inject-bugs")]
        if consistency == ReadConsistency::Linearizable
            && raftwatch_seams::bugs::armed(raftwatch_seams::bugs::Bug::StaleReadAsLinearizable)
        {
            let (response, applied) = self.sm.query(request).await;
            let index = applied.map(|l| l.index);
            return Ok(ReadResult {
                response,
                applied_index: index,
                read_index: Some(index.unwrap_or(0)),
                known_commit_index: index,
            });
        }
        let read_index = match consistency {
            ReadConsistency::Stale => None,
            ReadConsistency::Linearizable => Some(self.linearize().await?),
        };
        let (response, applied) = if self.queries_on_blocking_pool {
            self.sm
                .query_blocking(request.to_vec())
                .await
                .map_err(|reason| GroupError::Unavailable {
                    group: self.group,
                    reason,
                })?
        } else {
            self.sm.query(request).await
        };
        let known_commit_index = {
            use openraft::async_runtime::WatchReceiver;
            // Borrowed, not cloned: this runs on every read.
            let rx = self.raft.metrics();
            let m = rx.borrow_watched();
            m.cluster_committed
                .as_ref()
                .or(m.local_committed.as_ref())
                .map(|l| l.index)
        };
        Ok(ReadResult {
            response,
            applied_index: applied.map(|l| l.index),
            read_index,
            known_commit_index,
        })
    }

    /// `try_state` is this replica's whole state (the state machine's
    /// snapshot bytes) and the index it reflects, without waiting: `None`
    /// while the state machine is busy. Apply is deterministic, so replicas
    /// at the same index must agree byte for byte (the simulator's
    /// convergence check).
    pub fn try_state(&self) -> Option<ReplicaState> {
        let inner = self.sm.inner.try_lock().ok()?;
        Some(ReplicaState {
            applied_index: inner.last_applied.map(|l| l.index),
            state: inner.sm.snapshot(),
        })
    }

    /// `try_query` answers `request` from this replica's state machine
    /// without waiting (`None` while it is busy), with the index the answer
    /// reflects (the simulator compares replicas).
    pub fn try_query(&self, request: &[u8]) -> Option<(Option<u64>, Vec<u8>)> {
        let inner = self.sm.inner.try_lock().ok()?;
        Some((inner.last_applied.map(|l| l.index), inner.sm.query(request)))
    }

    /// Blocks until this replica may serve a linearizable read; returns the
    /// read index.
    ///
    /// A replica that knows another node leads the group asks that leader
    /// for its read index straight away (openraft's own check would only
    /// say "forward to the leader", at the cost of a round through this
    /// group's core); if that node no longer leads, or this replica knows
    /// of no other leader, openraft decides: the leader's own ReadIndex
    /// round here, or a read through the leader it names.
    async fn linearize(&self) -> Result<u64, GroupError> {
        if let Some((leader, addr)) = self.other_leader() {
            match self.read_through_leader(leader, &addr).await {
                Err(ReadThroughLeader::Refused(_)) => {}
                done => return done.map_err(|e| self.unavailable(e)),
            }
        }
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(read_log_id) => Ok(read_log_id.index()),
            Err(e) => {
                let Some(f) = e.forward_to_leader() else {
                    return Err(self.unavailable(e));
                };
                let (Some(leader), Some(addr)) = (
                    f.leader_id,
                    f.leader_node.as_ref().map(|n| n.grpc_addr.clone()),
                ) else {
                    return Err(self.not_leader(f));
                };
                self.read_through_leader(leader, &addr)
                    .await
                    .map_err(|e| self.unavailable(e))
            }
        }
    }

    /// `other_leader` is the node this replica last saw lead the group and
    /// its address, unless that is this node or unknown.
    fn other_leader(&self) -> Option<(u64, String)> {
        use openraft::async_runtime::WatchReceiver;
        let rx = self.raft.metrics();
        let m = rx.borrow_watched();
        let leader = m.current_leader.filter(|l| *l != self.node.0)?;
        let addr = m
            .membership_config
            .membership()
            .get_node(&leader)?
            .grpc_addr
            .clone();
        Some((leader, addr))
    }

    /// Follower read: `leader` confirms its leadership and hands back its
    /// read index; this replica waits until it applied it.
    async fn read_through_leader(&self, leader: u64, addr: &str) -> Result<u64, ReadThroughLeader> {
        let log_id: LogId = self
            .peers
            .read_index(NodeId(leader), addr, self.group)
            .await
            .map_err(|e| match e {
                ReadIndexError::Refused(_) => ReadThroughLeader::Refused(e.to_string()),
                ReadIndexError::Transport(_) => ReadThroughLeader::Failed(e.to_string()),
            })?;
        let lin = Linearizer::new(self.node.0, ReadLogId::from_log_id(log_id), None);
        match lin
            .try_await_ready(&self.raft, Some(self.read_timeout))
            .await
        {
            Ok(Ok(state)) => Ok(state.read_log_id().index()),
            Ok(Err(_)) => Err(ReadThroughLeader::Failed(
                "timed out waiting to apply the read index".to_string(),
            )),
            Err(fatal) => Err(ReadThroughLeader::Failed(fatal.to_string())),
        }
    }

    /// `add_learner` adds a non-voting member and waits until the change is
    /// committed (not until the learner caught up).
    pub async fn add_learner(&self, id: NodeId, grpc_addr: String) -> Result<(), GroupError> {
        self.wake_to_write().await;
        self.membership_result(
            self.raft
                .add_learner(id.0, NodeAddr { grpc_addr }, true)
                .await,
        )
    }

    /// `promote` makes learners voters.
    pub async fn promote(&self, ids: BTreeSet<NodeId>) -> Result<(), GroupError> {
        self.wake_to_write().await;
        let ids = ids.into_iter().map(|i| i.0).collect();
        self.membership_result(
            self.raft
                .change_membership(ChangeMembers::AddVoterIds(ids), true)
                .await,
        )
    }

    /// `remove` takes voters out of the group (they are not kept as learners).
    ///
    /// One membership change per kind of member: voters are removed with
    /// `retain = false`, which also drops them from the node set, and only
    /// ids that are learners get a second change. A second change after
    /// removing voters is wrong when the leader removed itself: it is then
    /// a leader outside its own configuration, and openraft asserts that
    /// such a leader appends no membership (found by the simulator: a shard
    /// move's old replica became leader just before its removal).
    pub async fn remove(&self, ids: BTreeSet<NodeId>) -> Result<(), GroupError> {
        self.wake_to_write().await;
        let m = self.metrics();
        let (voters, others): (BTreeSet<u64>, BTreeSet<u64>) = ids
            .into_iter()
            .map(|i| i.0)
            .partition(|i| m.voters.contains(&NodeId(*i)));
        if !voters.is_empty() {
            self.membership_result(
                self.raft
                    .change_membership(ChangeMembers::RemoveVoters(voters), false)
                    .await,
            )?;
        }
        if !others.is_empty() {
            self.membership_result(
                self.raft
                    .change_membership(ChangeMembers::RemoveNodes(others), false)
                    .await,
            )?;
        }
        Ok(())
    }

    fn membership_result<T>(
        &self,
        r: Result<
            T,
            openraft::error::RaftError<
                crate::types::TypeConfig,
                openraft::error::ClientWriteError<crate::types::TypeConfig>,
            >,
        >,
    ) -> Result<(), GroupError> {
        match r {
            Ok(_) => Ok(()),
            Err(e) => match e.forward_to_leader() {
                Some(f) => Err(self.not_leader(f)),
                None => Err(GroupError::Refused {
                    group: self.group,
                    reason: e.to_string(),
                }),
            },
        }
    }

    /// `transfer_leader` asks the current leader (this node) to hand over to
    /// `to`.
    pub async fn transfer_leader(&self, to: NodeId) -> Result<(), GroupError> {
        let _ = self.wake();
        self.raft
            .trigger()
            .transfer_leader(to.0)
            .await
            .map_err(|e| self.unavailable(e))
    }

    /// `snapshot_now` builds a snapshot on this node.
    pub async fn snapshot_now(&self) -> Result<(), GroupError> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| self.unavailable(e))
    }

    /// `appended_bytes_since_snapshot` is how many entry bytes were appended
    /// since the last byte-triggered snapshot (or since start).
    pub fn appended_bytes_since_snapshot(&self) -> u64 {
        use std::sync::atomic::Ordering;
        self.appended_bytes
            .load(Ordering::Relaxed)
            .saturating_sub(self.snapshot_baseline_bytes.load(Ordering::Relaxed))
    }

    /// Triggers a snapshot if more than `budget` bytes were appended since
    /// the last one this check triggered; returns whether it did.
    async fn snapshot_if_over(&self, budget: u64) -> bool {
        use std::sync::atomic::Ordering;
        let now = self.appended_bytes.load(Ordering::Relaxed);
        if now.saturating_sub(self.snapshot_baseline_bytes.load(Ordering::Relaxed)) < budget {
            return false;
        }
        self.snapshot_baseline_bytes.store(now, Ordering::Relaxed);
        self.raft.trigger().snapshot().await.is_ok()
    }

    /// `purge_log_up_to` discards log entries up to `index` that a snapshot
    /// covers.
    pub async fn purge_log_up_to(&self, index: u64) -> Result<(), GroupError> {
        self.raft
            .trigger()
            .purge_log(index)
            .await
            .map_err(|e| self.unavailable(e))
    }

    /// `metrics` reports the group's Raft state on this node.
    pub fn metrics(&self) -> GroupMetrics {
        use openraft::async_runtime::WatchReceiver;
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        GroupMetrics {
            group: self.group,
            term: m.current_term,
            is_leader: m.state == ServerState::Leader,
            role: role_name(m.state),
            leader: m.current_leader.map(NodeId),
            last_log_index: m.last_log_index,
            commit_index: m.local_committed.map(|l| l.index),
            applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            voters: membership.voter_ids().map(NodeId).collect(),
            learners: membership.learner_ids().map(NodeId).collect(),
            matched: m
                .replication
                .as_ref()
                .map(|r| {
                    r.iter()
                        .map(|(id, l)| (NodeId(*id), l.as_ref().map(|l| l.index)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// `SnapshotStores` makes the snapshot store of a group.
pub type SnapshotStores =
    Arc<dyn Fn(GroupId) -> std::io::Result<Arc<dyn SnapshotStore>> + Send + Sync>;

/// `HostEnv` is where a host's disk and network come from. The default is
/// production: the log and snapshots in files under `data_dir`, real TCP.
/// The simulator replaces each part (an in-memory disk with crash
/// semantics, turmoil's network); everything else runs unchanged.
#[derive(Default)]
pub struct HostEnv {
    /// The opened shared log and what its recovery found (`None`: open
    /// `data_dir/wal` on the real file system, driven by its own thread).
    /// A [`crate::log_store::FlushMode::Manual`] log gets a flusher task.
    pub log: Option<(SharedLog, raftwatch_wal::RecoveryReport)>,
    /// Snapshot stores (`None`: files under `data_dir/snapshots`).
    pub snapshot_stores: Option<SnapshotStores>,
    /// Accepted connections and the address they arrive on (`None`: bind
    /// `listen_addr` on real TCP).
    pub incoming: Option<(raftwatch_proto::net::Incoming, SocketAddr)>,
    /// How peers are dialled (`None`: real TCP).
    pub dialer: Option<crate::network::Dialer>,
    /// With a manually flushed log: milliseconds the flusher waits before
    /// each flush, read before every flush (the simulator's slow disk).
    pub flush_delay_ms: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl std::fmt::Debug for HostEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostEnv")
            .field("log", &self.log.as_ref().map(|(l, _)| l.mode()))
            .field("snapshot_stores", &self.snapshot_stores.is_some())
            .field("incoming", &self.incoming.as_ref().map(|(_, a)| a))
            .field("dialer", &self.dialer.is_some())
            .finish()
    }
}

/// `RaftHost` is a node's replication layer.
pub struct RaftHost {
    config: HostConfig,
    raft_config: Arc<openraft::Config>,
    log: Arc<SharedLog>,
    snapshot_stores: Option<SnapshotStores>,
    flusher: Option<tokio::task::JoinHandle<()>>,
    peers: Arc<Peers>,
    registry: Registry,
    groups: Arc<Mutex<BTreeMap<GroupId, GroupHandle>>>,
    addr: SocketAddr,
    shutdown: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    server: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    snapshotter: tokio::task::JoinHandle<()>,
    quiescence: Arc<Quiescence>,
    liveness: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RaftHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftHost")
            .field("node", &self.config.node_id)
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for RaftHost {
    fn drop(&mut self) {
        // The flusher holds the log; without this the log would outlive
        // the host.
        if let Some(f) = &self.flusher {
            f.abort();
        }
    }
}

/// `liveness_loop` runs [`Quiescence::check`] every heartbeat interval and
/// sends each peer its liveness request, at most one in flight per peer (a
/// paused peer does not hold up the others or the next check).
async fn liveness_loop(
    q: Arc<Quiescence>,
    registry: Registry,
    peers: Arc<Peers>,
    every: Duration,
    timeout: Duration,
    seed: u64,
) {
    let mut in_flight: BTreeMap<NodeId, tokio::task::JoinHandle<()>> = BTreeMap::new();
    loop {
        tokio::time::sleep(every).await;
        let rafts = registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let requests = q.check(&rafts);
        in_flight.retain(|peer, h| !h.is_finished() && requests.contains_key(peer));
        for (peer, (addr, request)) in requests {
            if in_flight.contains_key(&peer) {
                continue;
            }
            let (q, registry, peers) = (q.clone(), registry.clone(), peers.clone());
            let task = crate::rt::spawn(seed, async move {
                match peers.liveness(peer, &addr, request, timeout).await {
                    Ok(answer) => q.on_answer(peer, &answer, &registry),
                    Err(e) => tracing::debug!(peer = peer.0, error = %e, "liveness request failed"),
                }
            });
            in_flight.insert(peer, task);
        }
    }
}

/// Binds real TCP for the gRPC server.
async fn bind_tcp(
    listen_addr: SocketAddr,
) -> Result<(raftwatch_proto::net::Incoming, SocketAddr), HostError> {
    use raftwatch_proto::net::BoxIo;
    let listener = tokio::net::TcpListener::bind(listen_addr)
        .await
        .map_err(|source| HostError::Bind {
            addr: listen_addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| HostError::Bind {
        addr: listen_addr,
        source,
    })?;
    // Nagle's algorithm with delayed ACKs stalls small replies by ~40 ms
    // (measured: p99 46 ms at 36% CPU); Raft traffic is latency-bound.
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |conn| {
            conn.and_then(|s| {
                s.set_nodelay(true)?;
                Ok(BoxIo::new(s))
            })
        },
    );
    Ok((Box::pin(incoming), addr))
}

impl RaftHost {
    /// `start` opens the shared log (recovering it), binds the gRPC server
    /// and starts serving every group registered later.
    pub async fn start(config: HostConfig) -> Result<RaftHost, HostError> {
        RaftHost::start_with_routes(config, tonic::service::RoutesBuilder::default()).await
    }

    /// `start_with_routes` is [`RaftHost::start`] with more gRPC services
    /// served beside the Raft transport on the same address (a node's
    /// public API shares its one port).
    pub async fn start_with_routes(
        config: HostConfig,
        routes: tonic::service::RoutesBuilder,
    ) -> Result<RaftHost, HostError> {
        RaftHost::start_with_env(config, routes, HostEnv::default()).await
    }

    /// `start_with_env` is [`RaftHost::start_with_routes`] with the disk and
    /// network taken from `env` (the simulator's seam).
    pub async fn start_with_env(
        config: HostConfig,
        mut routes: tonic::service::RoutesBuilder,
        env: HostEnv,
    ) -> Result<RaftHost, HostError> {
        let raft_config = config.openraft_config()?;
        crate::rt::coalesce_long_timers(config.timer_quantum);
        let (log, report) = match env.log {
            Some(opened) => opened,
            None => SharedLog::open_fs(&config.data_dir.join("wal"), config.wal.clone())
                .map_err(|e| HostError::Storage(e.to_string()))?,
        };
        let log = Arc::new(log);
        if let Some(torn) = &report.torn_tail {
            // Expected after a crash mid-write: the tail was never
            // acknowledged, so dropping it loses nothing promised.
            tracing::warn!(
                node_id = config.node_id.0,
                ?torn,
                "repaired a torn tail of the log"
            );
        }
        tracing::info!(
            node_id = config.node_id.0,
            segments = report.segments_count,
            records = report.records_count,
            "log recovered"
        );
        let flusher = (log.mode() == crate::log_store::FlushMode::Manual).then(|| {
            let log = log.clone();
            let delay = env.flush_delay_ms.clone();
            crate::rt::spawn(config.seed, async move {
                loop {
                    log.queued().await;
                    let ms = delay
                        .as_ref()
                        .map_or(0, |d| d.load(std::sync::atomic::Ordering::Relaxed));
                    if ms > 0 {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    log.flush_now();
                }
            })
        });
        let peers = Arc::new(match env.dialer {
            Some(dialer) => Peers::with_dialer(config.node_id, config.net.clone(), dialer),
            None => Peers::new(config.node_id, config.net.clone()),
        });
        let registry: Registry = Arc::default();
        let (incoming, addr) = match env.incoming {
            Some(given) => given,
            None => bind_tcp(config.listen_addr).await?,
        };
        let quiescence = Arc::new(Quiescence::new(
            config.node_id,
            config.quiesce_after_heartbeats,
            Duration::from_millis(config.election_timeout_ms.0),
        ));
        let service = RaftService::new(registry.clone(), config.snapshot_bytes_max)
            .with_quiescence(quiescence.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        routes.add_service(crate::service::server(service));
        let routes = routes.routes();
        let server = crate::rt::spawn(config.seed, async move {
            let result = tonic::transport::Server::builder()
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "raft gRPC server stopped");
            }
        });
        let groups: Arc<Mutex<BTreeMap<GroupId, GroupHandle>>> = Arc::default();
        let snapshotter = {
            let groups = groups.clone();
            let (budget, every) = (config.snapshot_after_bytes, config.snapshot_check_interval);
            crate::rt::spawn(config.seed, async move {
                loop {
                    tokio::time::sleep(every).await;
                    let handles: Vec<GroupHandle> = groups.lock().await.values().cloned().collect();
                    for h in handles {
                        if h.snapshot_if_over(budget).await {
                            tracing::info!(
                                group = h.group.0,
                                "snapshot triggered by the log byte budget"
                            );
                        }
                    }
                }
            })
        };
        let liveness = crate::rt::spawn(
            config.seed,
            liveness_loop(
                quiescence.clone(),
                registry.clone(),
                peers.clone(),
                Duration::from_millis(config.heartbeat_interval_ms),
                Duration::from_millis(config.election_timeout_ms.0),
                config.seed,
            ),
        );
        Ok(RaftHost {
            config,
            raft_config,
            log,
            snapshot_stores: env.snapshot_stores,
            flusher,
            peers,
            registry,
            groups,
            addr,
            shutdown: std::sync::Mutex::new(Some(tx)),
            server: std::sync::Mutex::new(Some(server)),
            snapshotter,
            quiescence,
            liveness,
        })
    }

    /// `quiesce_stats` counts this node's quiesced groups.
    pub fn quiesce_stats(&self) -> QuiesceStats {
        self.quiescence.stats()
    }

    /// `heartbeat_stats` counts the heartbeats this node sent and the
    /// messages that carried them ([`Peers::heartbeat`]).
    pub fn heartbeat_stats(&self) -> BatchStats {
        self.peers.heartbeat_stats()
    }

    /// `read_index_stats` counts the ReadIndex requests this node sent to
    /// leaders elsewhere and the messages that carried them
    /// ([`Peers::read_index`]).
    pub fn read_index_stats(&self) -> BatchStats {
        self.peers.read_index_stats()
    }

    /// `addr` is the bound gRPC address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `node_id` is this node's id.
    pub fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    /// `log` is the shared durable log (for its statistics).
    pub fn log(&self) -> &SharedLog {
        &self.log
    }

    /// `create_group` starts group `group` on this node with `sm` as its
    /// state machine (restored from the group's stored snapshot, then the
    /// log). The group then needs `initialize` on one member, or to be added
    /// by the current leader.
    pub async fn create_group(
        &self,
        group: GroupId,
        sm: Box<dyn GroupStateMachine>,
    ) -> Result<GroupHandle, HostError> {
        let store: Arc<dyn SnapshotStore> = match &self.snapshot_stores {
            Some(stores) => stores(group).map_err(|e| HostError::Storage(e.to_string()))?,
            None => Arc::new(
                FsSnapshotStore::new(&self.config.data_dir.join("snapshots"), group)
                    .map_err(|e| HostError::Storage(e.to_string()))?,
            ),
        };
        self.create_group_with_store(group, sm, store).await
    }

    /// `create_group_with_store` is [`RaftHost::create_group`] with the
    /// snapshot store given (tests, the simulator).
    pub async fn create_group_with_store(
        &self,
        group: GroupId,
        sm: Box<dyn GroupStateMachine>,
        store: Arc<dyn SnapshotStore>,
    ) -> Result<GroupHandle, HostError> {
        let mut groups = self.groups.lock().await;
        if groups.contains_key(&group) {
            return Err(HostError::GroupExists(group));
        }
        let adapter = SmAdapter::new(sm, store).map_err(|e| HostError::Storage(e.to_string()))?;
        let log_store = self.log.group_store(group);
        let appended_bytes = log_store.appended_bytes();
        let network = GroupNetworkFactory::new(self.peers.clone(), group);
        let seed = crate::rt::seed_for(self.config.seed, self.config.node_id.0, group.0);
        let raft = crate::rt::scope(
            seed,
            GroupRaft::new(
                self.config.node_id.0,
                self.raft_config.clone(),
                network,
                log_store,
                adapter.clone(),
            ),
        )
        .await
        .map_err(|e| HostError::Raft(e.to_string()))?;
        if let Ok(mut reg) = self.registry.write() {
            reg.insert(group, raft.clone());
        }
        let handle = GroupHandle {
            group,
            node: self.config.node_id,
            raft,
            appended_bytes,
            snapshot_baseline_bytes: Arc::default(),
            sm: adapter,
            peers: self.peers.clone(),
            read_timeout: Duration::from_millis(self.config.election_timeout_ms.1 * 4),
            queries_on_blocking_pool: self.config.queries_on_blocking_pool,
            quiescence: self.quiescence.clone(),
        };
        groups.insert(group, handle.clone());
        Ok(handle)
    }

    /// `group` returns the handle of a group hosted here.
    pub async fn group(&self, group: GroupId) -> Option<GroupHandle> {
        self.groups.lock().await.get(&group).cloned()
    }

    /// `try_groups` is [`RaftHost::groups`] without waiting: `None` while
    /// the group table is being changed (the simulator probes from outside
    /// any runtime).
    pub fn try_groups(&self) -> Option<Vec<GroupHandle>> {
        self.groups
            .try_lock()
            .ok()
            .map(|g| g.values().cloned().collect())
    }

    /// `groups` lists the groups hosted here, in id order.
    pub async fn groups(&self) -> Vec<GroupHandle> {
        self.groups.lock().await.values().cloned().collect()
    }

    /// `remove_group` stops group `group` on this node (it should first be
    /// removed from the group's membership by its leader).
    pub async fn remove_group(&self, group: GroupId) -> Result<(), HostError> {
        let handle = self.groups.lock().await.remove(&group);
        if let Ok(mut reg) = self.registry.write() {
            reg.remove(&group);
        }
        self.quiescence.forget(group);
        if let Some(h) = handle {
            h.raft
                .shutdown()
                .await
                .map_err(|e| HostError::Raft(e.to_string()))?;
        }
        Ok(())
    }

    /// `shutdown` stops every group and the server; the log stays
    /// consistent on disk.
    /// Calling it again does nothing.
    pub async fn shutdown(&self) {
        self.snapshotter.abort();
        self.liveness.abort();
        // The flusher stays: stopping groups may still wait on the log.
        let groups: Vec<GroupHandle> = std::mem::take(&mut *self.groups.lock().await)
            .into_values()
            .collect();
        for g in groups {
            let _ = g.raft.shutdown().await;
        }
        if let Ok(mut reg) = self.registry.write() {
            reg.clear();
        }
        let tx = self.shutdown.lock().ok().and_then(|mut t| t.take());
        if let Some(tx) = tx {
            let _ = tx.send(());
        }
        let server = self.server.lock().ok().and_then(|mut s| s.take());
        if let Some(server) = server {
            let _ = server.await;
        }
    }
}
