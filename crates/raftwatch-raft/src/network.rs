//! The tonic client side of the Raft transport.
//!
//! [`Peers`] is a node's connection pool: one tonic [`Channel`] per peer
//! node, shared by every group on the node (HTTP/2 multiplexes their
//! RPCs). Channels connect lazily. A channel whose RPC failed at the
//! transport level or timed out is evicted and dialled afresh on next
//! use: a simulated (turmoil) TCP connection never retransmits, so a
//! channel that timed out once may stay stuck forever.
//!
//! [`GroupNetworkFactory`] and [`GroupNetwork`] are openraft's
//! `RaftNetworkFactory` / `RaftNetworkV2` for one group over the pool.
//! Every RPC is bounded by openraft's `RPCOption::soft_ttl()`, and errors
//! map to openraft's as follows:
//! - the deadline passed: `Timeout` (the channel is evicted);
//! - the peer could not be reached, was not serving the group (yet), or
//!   its group stopped: `Unreachable`, which makes openraft back off;
//! - anything else (a malformed answer, a refused request): `Network`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use openraft::errors::{
    LinearizableReadError, NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, RPCTypes};
use raftwatch_proto::v1 as pb;
use raftwatch_proto::v1::raft_client::RaftClient;
use tokio_stream::StreamExt as _;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use crate::coalesce::{BatchStats, Batched, Coalescer, Enqueued, Reply};
use crate::convert::{self, ConvertError};
use crate::types::{GroupId, LogId, NodeAddr, NodeId, Snapshot, TypeConfig, Vote};

/// `MESSAGE_BYTES_MAX_DEFAULT` is the default bound on one encoded
/// transport message, both ways (an AppendEntries batch, a snapshot
/// chunk).
pub const MESSAGE_BYTES_MAX_DEFAULT: usize = 64 << 20;

/// `SNAPSHOT_CHUNK_BYTES_DEFAULT` is the default size of one snapshot data
/// chunk on the wire.
pub const SNAPSHOT_CHUNK_BYTES_DEFAULT: usize = 1 << 20;

// A chunk plus its framing must fit in one message.
const _: () = assert!(SNAPSHOT_CHUNK_BYTES_DEFAULT + 1024 <= MESSAGE_BYTES_MAX_DEFAULT);

/// `BATCH_YIELDS` is how many times a batch's task yields to the runtime
/// before it takes what has queued ([`Peers::coalesced`]). A heartbeat is
/// three task hops from the read that caused it (the read, the group's
/// core, its heartbeat worker), and those of different groups do not run
/// in lockstep: with one yield, a node leading 6 of a query's 8 shards
/// sent its 12 heartbeats in 4.6–4.7 messages per query, with three in
/// 4.3–4.4 (1,000 single-series queries, two runs each). Yields add no
/// timer and no measurable delay.
const BATCH_YIELDS: usize = 3;

/// `NetConfig` tunes the client side of the transport.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// `connect_timeout` bounds establishing a connection to a peer.
    pub connect_timeout: Duration,
    /// `request_timeout` is the channel's own bound on any request; RPCs
    /// from openraft are bounded more tightly by their `soft_ttl`. Keep it
    /// above openraft's `install_snapshot_timeout`, or it cuts long
    /// snapshot transfers short.
    pub request_timeout: Duration,
    /// `read_index_timeout` bounds a follower's ReadIndex request to the
    /// leader ([`Peers::read_index`]).
    pub read_index_timeout: Duration,
    /// `snapshot_chunk_bytes` is the largest data chunk of a snapshot
    /// stream; it must be well below the receiver's message limit.
    pub snapshot_chunk_bytes: usize,
    /// `message_bytes_max` bounds one encoded message, sent or received.
    pub message_bytes_max: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            read_index_timeout: Duration::from_secs(2),
            snapshot_chunk_bytes: SNAPSHOT_CHUNK_BYTES_DEFAULT,
            message_bytes_max: MESSAGE_BYTES_MAX_DEFAULT,
        }
    }
}

/// `Dialer` makes a (lazy) channel from an endpoint. The default is
/// [`Endpoint::connect_lazy`] (real TCP); the simulator passes one that
/// connects over its simulated network
/// (`Endpoint::connect_with_connector_lazy`).
pub use raftwatch_proto::net::Dialer;

/// `TransportError` is why a call to a peer failed, before it is mapped to
/// openraft's error types.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TransportError {
    /// The call did not finish within its deadline.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The peer could not be reached, or does not serve the group.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The peer answered with an error, or with a malformed message.
    #[error("network: {0}")]
    Network(String),
}

impl From<ConvertError> for TransportError {
    fn from(e: ConvertError) -> Self {
        TransportError::Network(format!("malformed response: {e}"))
    }
}

struct Conn {
    addr: String,
    /// `generation` tells a stale eviction (for a channel already
    /// replaced) from a current one.
    generation: u64,
    channel: Channel,
}

struct Pool {
    conns: BTreeMap<NodeId, Conn>,
    next_generation: u64,
}

/// `Peers` is a node's pool of connections to the other nodes: at most one
/// channel per peer, shared by all groups.
pub struct Peers {
    me: NodeId,
    config: NetConfig,
    dialer: Dialer,
    pool: Mutex<Pool>,
    /// Heartbeats on their way to each peer ([`Peers::heartbeat`]).
    heartbeats: Coalescer<Heartbeats>,
    /// ReadIndex requests on their way to each peer ([`Peers::read_index`]).
    read_indexes: Coalescer<ReadIndexes>,
}

/// `CallFailure` is why [`Peers::call_status`] failed: before the peer
/// answered, or with the peer's status.
pub(crate) enum CallFailure {
    Transport(TransportError),
    Status(tonic::Status),
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("me", &self.me)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A channel handed out by the pool, with what is needed to evict it.
struct Lease {
    target: NodeId,
    generation: u64,
    client: RaftClient<Channel>,
}

impl Peers {
    /// `new` makes the pool of node `me`, dialling real TCP.
    pub fn new(me: NodeId, config: NetConfig) -> Self {
        Self::with_dialer(me, config, raftwatch_proto::net::tcp_dialer())
    }

    /// `with_dialer` makes the pool of node `me`, making channels with
    /// `dialer` (the simulator's network seam).
    pub fn with_dialer(me: NodeId, config: NetConfig, dialer: Dialer) -> Self {
        Self {
            me,
            config,
            dialer,
            pool: Mutex::new(Pool {
                conns: BTreeMap::new(),
                next_generation: 0,
            }),
            heartbeats: Coalescer::default(),
            read_indexes: Coalescer::default(),
        }
    }

    /// `me` is the node this pool belongs to.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// `config` is the pool's configuration.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// `evict` drops the channel to `target`, if any; the next call dials
    /// afresh. Use it when a node leaves the cluster.
    pub fn evict(&self, target: NodeId) {
        self.lock().conns.remove(&target);
        self.forget_unbatched(target);
    }

    /// `forget_unbatched` lets heartbeats to `target` be batched again:
    /// its channel is gone, and the node behind it may have been upgraded.
    fn forget_unbatched(&self, target: NodeId) {
        self.heartbeats.set_unbatched(target, false);
        self.read_indexes.set_unbatched(target, false);
    }

    /// `connected` lists the peers that currently have a channel, for
    /// tests and metrics.
    pub fn connected(&self) -> Vec<NodeId> {
        self.lock().conns.keys().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        // The pool holds no invariant a panicking holder could break.
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `lease` returns a client for `target` at `addr`, dialling (lazily)
    /// if there is no channel or the peer's address changed. Must be
    /// called within a tokio runtime: a channel spawns its worker task.
    fn lease(&self, target: NodeId, addr: &str) -> Result<Lease, TransportError> {
        let mut pool = self.lock();
        let current = pool
            .conns
            .get(&target)
            .filter(|c| c.addr == addr)
            .map(|c| (c.generation, c.channel.clone()));
        let (generation, channel) = match current {
            Some(c) => c,
            None => {
                let endpoint = Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(|e| {
                        TransportError::Unreachable(format!(
                            "bad address {addr:?} of node {target}: {e}"
                        ))
                    })?
                    .connect_timeout(self.config.connect_timeout)
                    .timeout(self.config.request_timeout)
                    .tcp_nodelay(true);
                let channel = (self.dialer)(&endpoint);
                let generation = pool.next_generation;
                pool.next_generation += 1;
                pool.conns.insert(
                    target,
                    Conn {
                        addr: addr.to_string(),
                        generation,
                        channel: channel.clone(),
                    },
                );
                (generation, channel)
            }
        };
        let client = RaftClient::new(channel)
            .max_decoding_message_size(self.config.message_bytes_max)
            .max_encoding_message_size(self.config.message_bytes_max);
        Ok(Lease {
            target,
            generation,
            client,
        })
    }

    /// `evict_lease` drops the lease's channel unless it was replaced
    /// meanwhile.
    fn evict_lease(&self, lease_target: NodeId, generation: u64) {
        let evicted = {
            let mut pool = self.lock();
            let current = pool
                .conns
                .get(&lease_target)
                .is_some_and(|c| c.generation == generation);
            if current {
                pool.conns.remove(&lease_target);
            }
            current
        };
        if evicted {
            self.forget_unbatched(lease_target);
        }
    }

    /// `call` runs one RPC on a lease within `ttl`, evicting the channel
    /// on a timeout or a transport failure.
    async fn call<T, F, Fut>(
        &self,
        target: NodeId,
        addr: &str,
        ttl: Duration,
        rpc: F,
    ) -> Result<T, TransportError>
    where
        F: FnOnce(RaftClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_status(target, addr, ttl, rpc)
            .await
            .map_err(|failure| match failure {
                CallFailure::Transport(e) => e,
                CallFailure::Status(status) => status_to_error(target, &status),
            })
    }

    /// `call_status` is [`Peers::call`] with the peer's status kept whole,
    /// for callers that act on its code.
    async fn call_status<T, F, Fut>(
        &self,
        target: NodeId,
        addr: &str,
        ttl: Duration,
        rpc: F,
    ) -> Result<T, CallFailure>
    where
        F: FnOnce(RaftClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let Lease {
            target,
            generation,
            client,
        } = self.lease(target, addr).map_err(CallFailure::Transport)?;
        match tokio::time::timeout(ttl, rpc(client)).await {
            Err(_) => {
                self.evict_lease(target, generation);
                Err(CallFailure::Transport(TransportError::Timeout(ttl)))
            }
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(status)) => {
                if is_transport_failure(&status) {
                    self.evict_lease(target, generation);
                }
                Err(CallFailure::Status(status))
            }
        }
    }

    /// `heartbeat` sends one group's append-entries without entries to
    /// `target`, coalesced ([`Coalescer`]) with the other groups'
    /// heartbeats to that peer into one `Heartbeats` message.
    pub async fn heartbeat(
        self: &Arc<Self>,
        target: NodeId,
        addr: &str,
        ttl: Duration,
        request: pb::AppendEntriesRequest,
    ) -> Result<pb::AppendEntriesResponse, TransportError> {
        self.coalesced::<Heartbeats>(target, addr, ttl, request)
            .await
    }

    /// `coalesced` sends `request` to `target` in a batch of kind `B`: the
    /// first request in spawns a task that yields [`BATCH_YIELDS`] times
    /// (so requests made runnable by the same event, such as the ReadIndex
    /// rounds of one query's shards, can join) and then sends everything
    /// waiting as one message. A lone request travels as its own RPC. Each answer, or
    /// error, is the one its own RPC would have had; a batch that fails as
    /// a whole fails each of its requests the same way.
    async fn coalesced<B: Batched>(
        self: &Arc<Self>,
        target: NodeId,
        addr: &str,
        ttl: Duration,
        request: B::Req,
    ) -> Result<B::Ans, TransportError> {
        let (answer, lead) = match B::queue(self).enqueue(target, request) {
            Enqueued::Unbatched(request) => {
                B::queue(self).record(1, 1);
                return B::single(self, target, addr, ttl, request).await;
            }
            Enqueued::Waiting { answer, lead } => (answer, lead),
        };
        if lead {
            let peers = Arc::clone(self);
            let addr = addr.to_string();
            // Owns the batch: the other callers' requests do not depend on
            // this caller staying around.
            crate::rt::spawn(0, async move {
                for _ in 0..BATCH_YIELDS {
                    tokio::task::yield_now().await;
                }
                let batch = B::queue(&peers).take(target);
                peers.send_batch::<B>(target, &addr, ttl, batch).await;
            });
        }
        match tokio::time::timeout(ttl, answer).await {
            Err(_) => Err(TransportError::Timeout(ttl)),
            Ok(Err(_)) => Err(TransportError::Network(format!(
                "node {target}: the {} batch was dropped",
                B::WHAT
            ))),
            Ok(Ok(answer)) => answer,
        }
    }

    /// `send_batch` sends one batch of [`Peers::coalesced`] and answers
    /// each of its callers.
    async fn send_batch<B: Batched>(
        &self,
        target: NodeId,
        addr: &str,
        ttl: Duration,
        mut batch: Vec<(B::Req, Reply<B::Ans>)>,
    ) {
        B::queue(self).record(batch.len(), 1);
        if batch.len() <= 1 {
            if let Some((request, reply)) = batch.pop() {
                let _ = reply.send(B::single(self, target, addr, ttl, request).await);
            }
            return;
        }
        let requests = batch.iter().map(|(request, _)| request.clone()).collect();
        match B::batch(self, target, addr, ttl, requests).await {
            Ok(answers) if answers.len() == batch.len() => {
                for ((_, reply), answer) in batch.into_iter().zip(answers) {
                    let answer = match answer {
                        Some(Ok(answer)) => Ok(answer),
                        Some(Err(e)) => Err(status_to_error(
                            target,
                            &tonic::Status::new(Code::from(e.code), e.message),
                        )),
                        None => Err(TransportError::Network(format!(
                            "node {target}: a {} result without a result",
                            B::WHAT
                        ))),
                    };
                    let _ = reply.send(answer);
                }
            }
            Ok(answers) => {
                let e = TransportError::Network(format!(
                    "node {target}: {} results for {} {} requests",
                    answers.len(),
                    batch.len(),
                    B::WHAT
                ));
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(CallFailure::Status(status)) if status.code() == Code::Unimplemented => {
                // An older peer: from now on (until its channel is
                // evicted) each request goes on its own.
                B::queue(self).set_unbatched(target, true);
                B::queue(self).record(0, batch.len());
                let singles = batch.into_iter().map(|(request, reply)| async move {
                    let _ = reply.send(B::single(self, target, addr, ttl, request).await);
                });
                futures::future::join_all(singles).await;
            }
            Err(failure) => {
                let e = match failure {
                    CallFailure::Transport(e) => e,
                    CallFailure::Status(status) => status_to_error(target, &status),
                };
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// `heartbeat_stats` counts the heartbeats sent and the messages that
    /// carried them.
    pub fn heartbeat_stats(&self) -> BatchStats {
        self.heartbeats.stats()
    }

    /// `read_index_stats` counts the ReadIndex requests sent and the
    /// messages that carried them.
    pub fn read_index_stats(&self) -> BatchStats {
        self.read_indexes.stats()
    }

    /// `read_index` asks `leader` (at `addr`) for the log id a
    /// linearizable read of `group` must wait for: once this node has
    /// applied it, reading the local state machine is linearizable.
    /// Bounded by `NetConfig::read_index_timeout`. A refusal (the peer is
    /// not the leader, or could not confirm its leadership with a quorum)
    /// is [`ReadIndexError::Refused`]; the caller retries or redirects.
    pub async fn read_index(
        self: &Arc<Self>,
        leader: NodeId,
        addr: &str,
        group: GroupId,
    ) -> Result<LogId, ReadIndexError> {
        let ttl = self.config.read_index_timeout;
        let resp = self
            .coalesced::<ReadIndexes>(leader, addr, ttl, group.0)
            .await?;
        match convert::read_index_response_from_proto(resp).map_err(TransportError::from)? {
            Ok(read) => Ok(*read.log_id()),
            Err(refused) => Err(ReadIndexError::Refused(refused)),
        }
    }

    /// `liveness` sends `target` (at `addr`) this node's liveness request
    /// ([`crate::quiesce`]) within `ttl`.
    pub async fn liveness(
        &self,
        target: NodeId,
        addr: &str,
        request: pb::LivenessRequest,
        ttl: Duration,
    ) -> Result<pb::LivenessResponse, TransportError> {
        self.call(target, addr, ttl, |mut c| async move {
            c.liveness(request).await
        })
        .await
    }
}

/// `BatchItem` is one item of a batch answer: the item's own answer, or
/// the status its own RPC would have failed with; `None` if empty.
trait BatchItem<A> {
    fn answer(self) -> Option<Result<A, pb::RpcStatus>>;
}

impl BatchItem<pb::AppendEntriesResponse> for pb::HeartbeatResult {
    fn answer(self) -> Option<Result<pb::AppendEntriesResponse, pb::RpcStatus>> {
        use pb::heartbeat_result::Result as R;
        self.result.map(|r| match r {
            R::Response(a) => Ok(a),
            R::Error(e) => Err(e),
        })
    }
}

impl BatchItem<pb::ReadIndexResponse> for pb::ReadIndexResult {
    fn answer(self) -> Option<Result<pb::ReadIndexResponse, pb::RpcStatus>> {
        use pb::read_index_result::Result as R;
        self.result.map(|r| match r {
            R::Response(a) => Ok(a),
            R::Error(e) => Err(e),
        })
    }
}

/// Heartbeats: append-entries without entries, batched as `Heartbeats`.
struct Heartbeats;

impl Batched for Heartbeats {
    type Req = pb::AppendEntriesRequest;
    type Ans = pb::AppendEntriesResponse;
    const WHAT: &'static str = "heartbeat";

    fn queue(peers: &Peers) -> &Coalescer<Self> {
        &peers.heartbeats
    }

    async fn single(
        peers: &Peers,
        target: NodeId,
        addr: &str,
        ttl: Duration,
        request: Self::Req,
    ) -> Result<Self::Ans, TransportError> {
        peers
            .call(target, addr, ttl, |mut c| async move {
                c.append_entries(request).await
            })
            .await
    }

    async fn batch(
        peers: &Peers,
        target: NodeId,
        addr: &str,
        ttl: Duration,
        heartbeats: Vec<Self::Req>,
    ) -> Result<Vec<Option<Result<Self::Ans, pb::RpcStatus>>>, CallFailure> {
        let answer = peers
            .call_status(target, addr, ttl, |mut c| async move {
                c.heartbeats(pb::HeartbeatBatch { heartbeats }).await
            })
            .await?;
        Ok(answer.results.into_iter().map(BatchItem::answer).collect())
    }
}

/// ReadIndex requests (by group id), batched as `ReadIndexes`.
struct ReadIndexes;

impl Batched for ReadIndexes {
    type Req = u64;
    type Ans = pb::ReadIndexResponse;
    const WHAT: &'static str = "read index";

    fn queue(peers: &Peers) -> &Coalescer<Self> {
        &peers.read_indexes
    }

    async fn single(
        peers: &Peers,
        target: NodeId,
        addr: &str,
        ttl: Duration,
        group_id: Self::Req,
    ) -> Result<Self::Ans, TransportError> {
        peers
            .call(target, addr, ttl, |mut c| async move {
                c.read_index(pb::ReadIndexRequest { group_id }).await
            })
            .await
    }

    async fn batch(
        peers: &Peers,
        target: NodeId,
        addr: &str,
        ttl: Duration,
        group_ids: Vec<Self::Req>,
    ) -> Result<Vec<Option<Result<Self::Ans, pb::RpcStatus>>>, CallFailure> {
        let answer = peers
            .call_status(target, addr, ttl, |mut c| async move {
                c.read_indexes(pb::ReadIndexBatch { group_ids }).await
            })
            .await?;
        Ok(answer.results.into_iter().map(BatchItem::answer).collect())
    }
}

/// `ReadIndexError` is why [`Peers::read_index`] gave no read log id.
#[derive(Debug, thiserror::Error)]
pub enum ReadIndexError {
    /// The leader could not be asked, or its answer was malformed.
    #[error("read index: {0}")]
    Transport(#[from] TransportError),
    /// The peer answered but gave no read index: it is not the leader
    /// (with a hint where the leader is), or it could not reach a quorum.
    #[error("read index refused: {0}")]
    Refused(LinearizableReadError<TypeConfig>),
}

/// `is_transport_failure` says whether a status may come from the
/// connection rather than from the peer's service (which answers with
/// `not_found`, `invalid_argument`, ... and, for a stopped group,
/// `unavailable` too: a spurious eviction only costs a reconnect).
fn is_transport_failure(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
    )
}

fn status_to_error(target: NodeId, status: &tonic::Status) -> TransportError {
    let what = format!("node {target}: {}: {}", status.code(), status.message());
    match status.code() {
        // No connection, a stopped group, or a group not served (yet: a
        // learner being created; or any more: a group being removed).
        // openraft backs off from an unreachable peer.
        Code::NotFound | Code::Unavailable => TransportError::Unreachable(what),
        _ => TransportError::Network(what),
    }
}

/// `GroupNetworkFactory` is openraft's network factory for one group on
/// one node: every client it makes shares the node's [`Peers`].
#[derive(Debug, Clone)]
pub struct GroupNetworkFactory {
    peers: Arc<Peers>,
    group: GroupId,
}

impl GroupNetworkFactory {
    /// `new` makes the factory of `group` over `peers`.
    pub fn new(peers: Arc<Peers>, group: GroupId) -> Self {
        Self { peers, group }
    }
}

impl RaftNetworkFactory<TypeConfig> for GroupNetworkFactory {
    type Network = GroupNetwork;

    async fn new_client(&mut self, target: u64, node: &NodeAddr) -> Self::Network {
        GroupNetwork {
            peers: Arc::clone(&self.peers),
            group: self.group,
            target: NodeId(target),
            addr: node.grpc_addr.clone(),
        }
    }
}

/// `GroupNetwork` sends one group's messages to one peer.
#[derive(Debug)]
pub struct GroupNetwork {
    peers: Arc<Peers>,
    group: GroupId,
    target: NodeId,
    addr: String,
}

impl GroupNetwork {
    fn rpc_error(&self, action: RPCTypes, e: TransportError) -> RPCError<TypeConfig> {
        match e {
            TransportError::Timeout(timeout) => RPCError::Timeout(Timeout {
                action,
                id: self.peers.me.0,
                target: self.target.0,
                timeout,
            }),
            TransportError::Unreachable(s) => RPCError::Unreachable(Unreachable::from_string(s)),
            TransportError::Network(s) => RPCError::Network(NetworkError::from_string(s)),
        }
    }

    fn streaming_error(&self, e: TransportError) -> StreamingError<TypeConfig> {
        match self.rpc_error(RPCTypes::InstallSnapshot, e) {
            RPCError::Timeout(t) => StreamingError::Timeout(t),
            RPCError::Unreachable(u) => StreamingError::Unreachable(u),
            RPCError::Network(n) => StreamingError::Network(n),
            RPCError::RemoteError(r) => StreamingError::Network(NetworkError::new(&r)),
        }
    }

    /// `snapshot_chunks` is the stream of one snapshot: the header, then
    /// the data in chunks of at most `chunk_bytes` (none for an empty
    /// snapshot). Chunks are cut lazily, so the data is not copied whole.
    fn snapshot_chunks(
        &self,
        vote: &Vote,
        snapshot: Snapshot,
    ) -> impl tokio_stream::Stream<Item = pb::SnapshotChunk> + Send + 'static {
        // A chunk and its framing must fit in one message.
        let chunk_bytes = self
            .peers
            .config
            .snapshot_chunk_bytes
            .min(self.peers.config.message_bytes_max.saturating_sub(1024))
            .max(1);
        let data = snapshot.snapshot;
        let header =
            convert::snapshot_header_to_proto(self.group, vote, &snapshot.meta, data.len() as u64);
        let n = data.len().div_ceil(chunk_bytes);
        let head = tokio_stream::once(pb::SnapshotChunk {
            part: Some(pb::snapshot_chunk::Part::Header(header)),
        });
        let body = tokio_stream::iter(0..n).map(move |i| {
            let start = i * chunk_bytes;
            let end = (start + chunk_bytes).min(data.len());
            pb::SnapshotChunk {
                part: Some(pb::snapshot_chunk::Part::Data(
                    data.get(start..end).unwrap_or_default().to_vec(),
                )),
            }
        });
        head.chain(body)
    }
}

impl GroupNetwork {
    /// Sends a vote or (with `pre_vote`) a pre-vote request: the same
    /// message and answer, a different RPC.
    async fn send_vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
        pre_vote: bool,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let req = convert::vote_request_to_proto(self.group, &rpc);
        let resp = self
            .peers
            .call(
                self.target,
                &self.addr,
                option.soft_ttl(),
                |mut c| async move {
                    if pre_vote {
                        c.pre_vote(req).await
                    } else {
                        c.vote(req).await
                    }
                },
            )
            .await
            .map_err(|e| self.rpc_error(RPCTypes::Vote, e))?;
        convert::vote_response_from_proto(resp)
            .map_err(|e| self.rpc_error(RPCTypes::Vote, e.into()))
    }
}

impl RaftNetworkV2<TypeConfig> for GroupNetwork {
    type SnapshotData = crate::types::SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let heartbeat = rpc.entries.is_empty();
        let req = convert::append_entries_request_to_proto(self.group, rpc);
        let sent = if heartbeat {
            self.peers
                .heartbeat(self.target, &self.addr, option.soft_ttl(), req)
                .await
        } else {
            self.peers
                .call(
                    self.target,
                    &self.addr,
                    option.soft_ttl(),
                    |mut c| async move { c.append_entries(req).await },
                )
                .await
        };
        let resp = sent.map_err(|e| self.rpc_error(RPCTypes::AppendEntries, e))?;
        convert::append_entries_response_from_proto(resp)
            .map_err(|e| self.rpc_error(RPCTypes::AppendEntries, e.into()))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.send_vote(rpc, option, false).await
    }

    /// `pre_vote` asks for real: openraft's default grants every pre-vote,
    /// which would defeat its purpose (a partitioned node must not disturb
    /// a healthy leader when it comes back).
    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.send_vote(rpc, option, true).await
    }

    /// `full_snapshot` streams the snapshot (header, then bounded data
    /// chunks) in one client-streaming RPC, bounded by `soft_ttl` as a
    /// whole (openraft derives it from `Config::install_snapshot_timeout`,
    /// which must therefore cover the largest snapshot), and abandoned as
    /// soon as openraft closes the replication stream (`cancel`).
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let chunks = self.snapshot_chunks(&vote, snapshot);
        let send = self.peers.call(
            self.target,
            &self.addr,
            option.soft_ttl(),
            |mut c| async move { c.install_snapshot(chunks).await },
        );
        let resp = tokio::select! {
            biased;
            r = send => r.map_err(|e| self.streaming_error(e))?,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        convert::snapshot_response_from_proto(resp).map_err(|e| self.streaming_error(e.into()))
    }

    /// `transfer_leader` delivers the leader's hand-over notice for real:
    /// openraft's default fails it as unreachable.
    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let req = convert::transfer_leader_request_to_proto(self.group, &req);
        let resp = self
            .peers
            .call(
                self.target,
                &self.addr,
                option.soft_ttl(),
                |mut c| async move { c.transfer_leader(req).await },
            )
            .await
            .map_err(|e| self.rpc_error(RPCTypes::TransferLeader, e))?;
        convert::transfer_leader_response_from_proto(resp)
            .map_err(|e| self.rpc_error(RPCTypes::TransferLeader, e.into()))
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use openraft::impls::leader_id_adv::LeaderId;
    use tonic::transport::server::TcpIncoming;

    use super::*;
    use crate::service::{RaftService, Registry, server};

    fn vote() -> Vote {
        Vote {
            leader_id: LeaderId {
                term: 1,
                node_id: 1,
            },
            committed: true,
        }
    }

    fn option() -> RPCOption {
        RPCOption::new(Duration::from_millis(800))
    }

    /// `serve` runs the Raft service for `registry` on a fresh loopback
    /// port.
    async fn serve(registry: Registry, snapshot_bytes_max: u64) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = RaftService::new(registry, snapshot_bytes_max);
        crate::rt::spawn(
            1,
            tonic::transport::Server::builder()
                .add_service(server(service))
                .serve_with_incoming(TcpIncoming::from(listener)),
        );
        addr
    }

    async fn client(peers: &Arc<Peers>, group: u64, target: u64, addr: &str) -> GroupNetwork {
        GroupNetworkFactory::new(Arc::clone(peers), GroupId(group))
            .new_client(
                target,
                &NodeAddr {
                    grpc_addr: addr.to_string(),
                },
            )
            .await
    }

    fn snapshot(bytes: usize) -> Snapshot {
        Snapshot {
            meta: crate::types::SnapshotMeta {
                last_log_id: Some(LogId::new(vote().leader_id, 10)),
                last_membership: Default::default(),
            },
            snapshot: vec![7; bytes],
        }
    }

    #[tokio::test]
    async fn unknown_group_is_unreachable_and_keeps_the_channel() {
        let addr = serve(Registry::default(), 1 << 20).await.to_string();
        let peers = Arc::new(Peers::new(NodeId(1), NetConfig::default()));
        let mut net = client(&peers, 9, 2, &addr).await;

        let append = AppendEntriesRequest {
            vote: vote(),
            prev_log_id: None,
            entries: vec![],
            leader_commit: None,
        };
        let r = net.append_entries(append, option()).await;
        assert!(matches!(r, Err(RPCError::Unreachable(_))), "{r:?}");
        let r = net.vote(VoteRequest::new(vote(), None), option()).await;
        assert!(matches!(r, Err(RPCError::Unreachable(_))), "{r:?}");
        let r = net.pre_vote(VoteRequest::new(vote(), None), option()).await;
        assert!(matches!(r, Err(RPCError::Unreachable(_))), "{r:?}");
        let r = net
            .transfer_leader(TransferLeaderRequest::new(vote(), 2, None), option())
            .await;
        assert!(matches!(r, Err(RPCError::Unreachable(_))), "{r:?}");
        let r = peers.read_index(NodeId(2), &addr, GroupId(9)).await;
        assert!(
            matches!(
                r,
                Err(ReadIndexError::Transport(TransportError::Unreachable(_)))
            ),
            "{r:?}"
        );
        let r = net
            .full_snapshot(vote(), snapshot(10), std::future::pending(), option())
            .await;
        assert!(matches!(r, Err(StreamingError::Unreachable(_))), "{r:?}");
        // The peer answered: its channel is healthy and stays pooled.
        assert_eq!(peers.connected(), vec![NodeId(2)]);
    }

    #[tokio::test]
    async fn an_older_peer_gets_one_request_per_message() {
        // A peer that does not serve the batch RPCs (UNIMPLEMENTED).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let service = RaftService::new(Registry::default(), 1 << 20).without_batches();
        crate::rt::spawn(
            1,
            tonic::transport::Server::builder()
                .add_service(server(service))
                .serve_with_incoming(TcpIncoming::from(listener)),
        );
        let peers = Arc::new(Peers::new(NodeId(1), NetConfig::default()));
        let reads = || {
            futures::future::join_all(
                [7, 8, 9].map(|g| peers.read_index(NodeId(2), &addr, GroupId(g))),
            )
        };
        // The first batch is refused whole and resent one by one; each
        // answer is the peer's own (it serves none of these groups).
        let unreachable = |r: &Result<LogId, ReadIndexError>| {
            matches!(
                r,
                Err(ReadIndexError::Transport(TransportError::Unreachable(_)))
            )
        };
        let sent = || {
            let s = peers.read_index_stats();
            (s.requests, s.messages)
        };
        for r in reads().await {
            assert!(unreachable(&r), "{r:?}");
        }
        assert_eq!(sent(), (3, 1 + 3));
        // From then on, no batch is tried: one message per request.
        for r in reads().await {
            assert!(unreachable(&r), "{r:?}");
        }
        assert_eq!(sent(), (6, 4 + 3));
        // Once the channel is gone (a restart, maybe an upgrade), a batch
        // is tried again.
        peers.evict(NodeId(2));
        for r in reads().await {
            assert!(unreachable(&r), "{r:?}");
        }
        assert_eq!(sent(), (9, 7 + 1 + 3));
    }

    /// Concurrent requests of one kind to one peer travel as one message
    /// and are answered one by one, in order. (On the current-thread
    /// runtime the batch is whatever the caller queued before it yields;
    /// on several threads it is whatever queued by the time the batch task
    /// ran, so there the sharing is likely, not certain.)
    #[tokio::test]
    async fn concurrent_requests_to_a_peer_share_a_message() {
        let config = Arc::new(openraft::Config::default().validate().unwrap());
        // Node 2 hosts GROUP, uninitialized: no leader yet.
        let n2 = start_node(2, config).await;
        let peers = Arc::new(Peers::new(NodeId(1), NetConfig::default()));

        let (known, unknown) = tokio::join!(
            peers.read_index(NodeId(2), &n2.addr, GROUP),
            peers.read_index(NodeId(2), &n2.addr, GroupId(99)),
        );
        assert!(
            matches!(
                known,
                Err(ReadIndexError::Refused(
                    LinearizableReadError::ForwardToLeader(_)
                ))
            ),
            "{known:?}"
        );
        assert!(
            matches!(
                unknown,
                Err(ReadIndexError::Transport(TransportError::Unreachable(_)))
            ),
            "{unknown:?}"
        );
        let sent = peers.read_index_stats();
        assert_eq!((sent.requests, sent.messages), (2, 1));

        let heartbeat = |group: u64| pb::AppendEntriesRequest {
            group_id: group,
            vote: Some(convert::vote_to_proto(&vote())),
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: None,
        };
        let ttl = Duration::from_secs(5);
        let (unknown, known) = tokio::join!(
            peers.heartbeat(NodeId(2), &n2.addr, ttl, heartbeat(99)),
            peers.heartbeat(NodeId(2), &n2.addr, ttl, heartbeat(GROUP.0)),
        );
        assert!(
            matches!(unknown, Err(TransportError::Unreachable(_))),
            "{unknown:?}"
        );
        // Node 2 follows the leader of term 1 the heartbeat names.
        assert!(
            matches!(
                known,
                Ok(pb::AppendEntriesResponse {
                    result: Some(pb::append_entries_response::Result::Success(_))
                })
            ),
            "{known:?}"
        );
        let sent = peers.heartbeat_stats();
        assert_eq!((sent.requests, sent.messages), (2, 1));
        n2.raft.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn dead_peer_is_unreachable_and_evicted() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let peers = Arc::new(Peers::new(NodeId(1), NetConfig::default()));
        let mut net = client(&peers, 1, 2, &addr).await;
        let r = net.vote(VoteRequest::new(vote(), None), option()).await;
        assert!(matches!(r, Err(RPCError::Unreachable(_))), "{r:?}");
        assert!(peers.connected().is_empty());
    }

    #[tokio::test]
    async fn silent_peer_times_out_and_is_evicted() {
        // Accepts TCP connections and never answers (a partition that
        // drops packets rather than refusing them).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        crate::rt::spawn(2, async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let peers = Arc::new(Peers::new(NodeId(1), NetConfig::default()));
        let mut net = client(&peers, 1, 2, &addr).await;
        let r = net.vote(VoteRequest::new(vote(), None), option()).await;
        match r {
            Err(RPCError::Timeout(t)) => {
                assert_eq!((t.id, t.target, t.action), (1, 2, RPCTypes::Vote));
                assert_eq!(t.timeout, option().soft_ttl());
            }
            other => panic!("expected a timeout: {other:?}"),
        }
        assert!(peers.connected().is_empty());
    }

    #[tokio::test]
    async fn bad_address_is_unreachable() {
        let peers = Arc::new(Peers::new(NodeId(1), NetConfig::default()));
        let mut net = client(&peers, 1, 2, "not an address").await;
        let r = net.vote(VoteRequest::new(vote(), None), option()).await;
        assert!(matches!(r, Err(RPCError::Unreachable(_))), "{r:?}");
    }

    #[tokio::test]
    async fn snapshot_over_the_limit_is_refused() {
        let addr = serve(Registry::default(), 64).await.to_string();
        let peers = Arc::new(Peers::new(NodeId(1), NetConfig::default()));
        let mut net = client(&peers, 1, 2, &addr).await;
        let r = net
            .full_snapshot(vote(), snapshot(65), std::future::pending(), option())
            .await;
        match r {
            Err(StreamingError::Network(e)) => {
                assert!(e.to_string().contains("exceeds the limit"), "{e}");
            }
            other => panic!("expected a refusal: {other:?}"),
        }
    }

    #[tokio::test]
    async fn snapshot_stream_must_start_with_a_header() {
        let addr = serve(Registry::default(), 1 << 20).await;
        let mut raw = RaftClient::connect(format!("http://{addr}")).await.unwrap();
        let data_only = tokio_stream::iter(vec![pb::SnapshotChunk {
            part: Some(pb::snapshot_chunk::Part::Data(vec![1, 2, 3])),
        }]);
        let status = raw.install_snapshot(data_only).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let empty = tokio_stream::iter(Vec::<pb::SnapshotChunk>::new());
        let status = raw.install_snapshot(empty).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        // A header without a last log id: nothing to install.
        let header = pb::SnapshotHeader {
            group_id: 1,
            vote: Some(convert::vote_to_proto(&vote())),
            ..Default::default()
        };
        let bad_header = tokio_stream::iter(vec![pb::SnapshotChunk {
            part: Some(pb::snapshot_chunk::Part::Header(header)),
        }]);
        let status = raw.install_snapshot(bad_header).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }

    #[tokio::test]
    async fn snapshot_chunks_are_bounded() {
        let peers = Arc::new(Peers::new(
            NodeId(1),
            NetConfig {
                snapshot_chunk_bytes: 4,
                ..NetConfig::default()
            },
        ));
        let net = client(&peers, 3, 2, "127.0.0.1:1").await;
        let chunks: Vec<_> = net.snapshot_chunks(&vote(), snapshot(10)).collect().await;
        let sizes: Vec<usize> = chunks
            .iter()
            .map(|c| match &c.part {
                Some(pb::snapshot_chunk::Part::Data(d)) => d.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(sizes, vec![0, 4, 4, 2]);
        match &chunks[0].part {
            Some(pb::snapshot_chunk::Part::Header(h)) => {
                assert_eq!((h.group_id, h.size_bytes), (3, 10));
            }
            other => panic!("first chunk is not a header: {other:?}"),
        }
        let empty: Vec<_> = net.snapshot_chunks(&vote(), snapshot(0)).collect().await;
        assert_eq!(empty.len(), 1);
    }

    #[tokio::test]
    async fn closed_replication_cancels_a_snapshot() {
        // A silent peer: only the cancellation can end the transfer early.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        crate::rt::spawn(3, async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let peers = Arc::new(Peers::new(NodeId(1), NetConfig::default()));
        let mut net = client(&peers, 1, 2, &addr).await;
        let cancel = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            ReplicationClosed::new("test")
        };
        let r = net
            .full_snapshot(
                vote(),
                snapshot(100),
                cancel,
                RPCOption::new(Duration::from_secs(30)),
            )
            .await;
        assert!(matches!(r, Err(StreamingError::Closed(_))), "{r:?}");
    }

    /// A tiny application for the live test: counts applied commands.
    #[derive(Default)]
    struct Counter(u64);

    impl crate::state_machine::GroupStateMachine for Counter {
        fn apply(&mut self, _index: u64, _command: &[u8]) -> Vec<u8> {
            self.0 += 1;
            self.0.to_le_bytes().to_vec()
        }
        fn query(&self, _request: &[u8]) -> Vec<u8> {
            self.0.to_le_bytes().to_vec()
        }
        fn snapshot(&self) -> Result<Vec<u8>, String> {
            Ok(self.0.to_le_bytes().to_vec())
        }
        fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
            let bytes: [u8; 8] = snapshot
                .try_into()
                .map_err(|_| "bad snapshot".to_string())?;
            self.0 = u64::from_le_bytes(bytes);
            Ok(())
        }
    }

    struct TestNode {
        raft: crate::types::GroupRaft,
        peers: Arc<Peers>,
        addr: String,
        _log: crate::log_store::SharedLog,
    }

    const GROUP: GroupId = GroupId(1);

    async fn start_node(id: u64, config: Arc<openraft::Config>) -> TestNode {
        let registry = Registry::default();
        let addr = serve(registry.clone(), 1 << 20).await.to_string();
        let peers = Arc::new(Peers::new(NodeId(id), NetConfig::default()));
        let (log, _) = crate::log_store::SharedLog::open_mem(
            raftwatch_wal::MemDisk::new(),
            raftwatch_wal::WalConfig::default(),
            crate::log_store::FlushMode::Thread,
        )
        .unwrap();
        let sm = crate::state_machine::SmAdapter::new(
            Box::new(Counter::default()),
            Arc::new(crate::state_machine::MemSnapshotStore::default()),
        )
        .unwrap();
        let raft = crate::rt::scope(
            id,
            crate::types::GroupRaft::new(
                id,
                config,
                GroupNetworkFactory::new(Arc::clone(&peers), GROUP),
                log.group_store(GROUP),
                sm,
            ),
        )
        .await
        .unwrap();
        registry.write().unwrap().insert(GROUP, raft.clone());
        TestNode {
            raft,
            peers,
            addr,
            _log: log,
        }
    }

    /// Three nodes, one group, real openraft over this transport: election
    /// (pre-vote and vote), replication, ReadIndex from a follower, a
    /// learner caught up by a streamed snapshot, and a leader transfer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_replicates_over_the_transport() {
        crate::rt::scope(42, async {
            let config = Arc::new(
                openraft::Config {
                    heartbeat_interval: 50,
                    election_timeout_min: 300,
                    election_timeout_max: 600,
                    enable_pre_vote: Some(true),
                    install_snapshot_timeout: 2_000,
                    snapshot_policy: openraft::SnapshotPolicy::Never,
                    max_in_snapshot_log_to_keep: 0,
                    ..Default::default()
                }
                .validate()
                .unwrap(),
            );
            let wait = Some(Duration::from_secs(10));
            let n1 = start_node(1, Arc::clone(&config)).await;
            let n2 = start_node(2, Arc::clone(&config)).await;
            let n3 = start_node(3, Arc::clone(&config)).await;
            let members: BTreeMap<u64, NodeAddr> = [(1, &n1), (2, &n2)]
                .into_iter()
                .map(|(id, n)| {
                    (
                        id,
                        NodeAddr {
                            grpc_addr: n.addr.clone(),
                        },
                    )
                })
                .collect();
            n1.raft.initialize(members).await.unwrap();
            n1.raft
                .wait(wait)
                .leader_with_quorum_acked(None, "n1 leads")
                .await
                .unwrap();

            let mut last = None;
            for i in 0..5u8 {
                let r = n1
                    .raft
                    .client_write(crate::types::Request(vec![i]))
                    .await
                    .unwrap();
                last = Some(r.log_id);
            }
            let last = last.unwrap();
            n2.raft
                .wait(wait)
                .applied_index_at_least(Some(last.index), "n2 applied")
                .await
                .unwrap();

            // ReadIndex: the leader answers with a log id at least as new
            // as the last write; a follower refuses and names the leader.
            let read = n2
                .peers
                .read_index(NodeId(1), &n1.addr, GROUP)
                .await
                .unwrap();
            assert!(read >= last, "{read} < {last}");
            match n1.peers.read_index(NodeId(2), &n2.addr, GROUP).await {
                Err(ReadIndexError::Refused(LinearizableReadError::ForwardToLeader(f))) => {
                    assert_eq!(f.leader_id, Some(1));
                }
                other => panic!("a follower gave a read index: {other:?}"),
            }

            // Snapshot and purge on the leader: a new learner can only
            // catch up by a streamed snapshot.
            n1.raft.trigger().snapshot().await.unwrap();
            n1.raft
                .wait(wait)
                .snapshot(last, "n1 snapshot")
                .await
                .unwrap();
            n1.raft.trigger().purge_log(last.index).await.unwrap();
            n1.raft
                .wait(wait)
                .purged(Some(last), "n1 purged")
                .await
                .unwrap();
            n1.raft
                .add_learner(
                    3,
                    NodeAddr {
                        grpc_addr: n3.addr.clone(),
                    },
                    true,
                )
                .await
                .unwrap();
            let m3 = n3
                .raft
                .wait(wait)
                .applied_index_at_least(Some(last.index + 1), "n3 caught up")
                .await
                .unwrap();
            assert_eq!(m3.snapshot, Some(last), "n3 installed the snapshot");

            // Leader transfer goes through the TransferLeader RPC.
            n1.raft.trigger().transfer_leader(2).await.unwrap();
            n2.raft
                .wait(wait)
                .state(openraft::ServerState::Leader, "n2 leads")
                .await
                .unwrap();
            n1.raft
                .wait(wait)
                .current_leader(2, "n1 follows n2")
                .await
                .unwrap();

            for n in [n1, n2, n3] {
                n.raft.shutdown().await.unwrap();
            }
        })
        .await;
    }
}
