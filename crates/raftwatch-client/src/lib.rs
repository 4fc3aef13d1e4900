//! raftwatch-client: what an application needs to write to and read from
//! a raftwatch cluster correctly, and what the raftwatch tools share
//! (`raftwatchctl`, `raftwatch-bench`).
//!
//! - **Routing.** The client caches the shard map (`Admin.ClusterStatus`:
//!   hash ranges, replicas, epoch, leaders, member addresses) and splits
//!   every write into one request per shard ([`routing::split`], by the
//!   same series hash and range rule the node uses), each sent straight to
//!   that shard's leader carrying the map's epoch and the shard
//!   (`WriteRequest.shard`: the node then never forwards). The answers are
//!   merged into one, numbered as the caller numbered its series. The
//!   write succeeds only if every part does.
//! - **Idempotency.** Every write carries a request id (the caller's, or
//!   one the client makes from its seed and a counter); every part carries
//!   the same id. Shards remember ids per shard, so retrying an ambiguous
//!   part never applies a sample twice.
//! - **Retries.** Retryable failures (`UNAVAILABLE`, `DEADLINE_EXCEEDED`,
//!   `UNKNOWN`, `RESOURCE_EXHAUSTED`) of a part are retried with capped
//!   exponential backoff and full jitter from a seeded generator,
//!   honouring `retry-after-ms`. A not-leader answer naming the leader
//!   (`raftwatch-leader-addr`) updates the cached leader of that shard and
//!   is retried there at once; without a hint the next replica is tried,
//!   and after a few such misses the map is refreshed. A stale map
//!   (`FAILED_PRECONDITION` naming the epoch) refreshes the map and
//!   re-splits what is left. Nothing else is retried.
//! - **Unreachable leader.** A replica naming as leader the node this part
//!   just failed to reach is usually a follower that has not yet noticed
//!   the leader died, and an election soon names another; but it may be
//!   that only this client is cut off from a live leader, and then no
//!   election comes. So a part that met such a hint makes its last
//!   attempt unrouted (`WriteRequest.shard` 0) through another replica,
//!   which forwards it to whichever node leads; the same request id keeps
//!   it idempotent.
//! - **Fallback.** Until a map is known (cluster not bootstrapped, or no
//!   node answered `ClusterStatus`), or with [`Routing::AnyNode`], a write
//!   goes whole to any endpoint, which routes it (one hop more).
//! - Reads name their consistency; there is no silent downgrade.
//!
//! The tools' shared plumbing lives here too: [`endpoint`] (addresses,
//! channels, canonical gRPC code names) and [`selector`] (the series and
//! selector syntax of `raftwatchctl write`/`query` and the bench).

pub mod endpoint;
pub mod routing;
pub mod selector;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use raftwatch_proto::raw::{EncodedWrite, write_encoded};
use raftwatch_proto::v1 as pb;
use raftwatch_seams::DetRng;
use thiserror::Error;
use tonic::transport::Channel;
use tonic::{Code, Status};

pub use endpoint::{
    LEADER_ADDR_KEY, MAP_EPOCH_KEY, RETRY_AFTER_KEY, code_name, error_chain, parse_endpoint,
};
pub use routing::{MapError, Part, ShardMap, ShardRoute};

/// `MISSES_BEFORE_REFRESH`: failed attempts of a part without a leader
/// hint after which the shard map is read again (its replicas may have
/// moved, or its leader died).
const MISSES_BEFORE_REFRESH: u32 = 3;

/// `AVOIDED_PICKS_MAX`: a node that just failed a call as if unreachable
/// (no answer, or a transport error) is passed over by the next this many
/// picks of "any node" (reads, unrouted writes) that have another node to
/// go to, so a node behind a partition does not cost every other call a
/// timeout. Counted in picks, not time: the client needs no clock.
const AVOIDED_PICKS_MAX: u32 = 20;

/// `Routing` is how writes reach the shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Routing {
    /// Split each write by shard and send every part to its shard's
    /// leader (fetches the shard map on the first write).
    #[default]
    ShardLeaders,
    /// Send each write whole to any endpoint, which routes it: one hop
    /// more per part, but no map to fetch (suits a one-off write).
    AnyNode,
}

/// Whether a call that failed with `code` (and no leader hint) may have
/// failed because of its channel, which is then evicted and redialled. A
/// timeout counts: tonic reports the per-attempt timeout as `CANCELLED`,
/// and a connection that lost a segment or sits behind a partition times
/// out on every call until it is dropped.
fn channel_suspect(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
    )
}

/// `ClientConfig` holds the client's routing, retry policy and timeouts.
#[derive(Clone)]
pub struct ClientConfig {
    /// Attempts per call (per part for writes), the first included.
    pub attempts_max: u32,
    /// First backoff; doubles per attempt.
    pub backoff_initial: Duration,
    /// Backoff cap.
    pub backoff_max: Duration,
    /// Per-attempt timeout (also sent to the server as `grpc-timeout`).
    pub request_timeout: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Seed of the jitter and of generated request ids' prefix. 0 (the
    /// default) draws the id prefix from [`raftwatch_seams::entropy_seed`],
    /// so two clients never generate the same request id (a shard answers
    /// a request id it has seen from memory, without applying the write).
    /// A non-zero seed makes ids reproducible (the simulator): then no two
    /// clients of one cluster may share it.
    pub seed: u64,
    /// How writes are routed.
    pub routing: Routing,
    /// Largest message sent or received, in bytes.
    pub message_bytes_max: usize,
    /// How channels are made (`None`: real TCP); the simulator passes its
    /// network here.
    pub dialer: Option<raftwatch_proto::net::Dialer>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("attempts_max", &self.attempts_max)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("seed", &self.seed)
            .field("routing", &self.routing)
            .field("message_bytes_max", &self.message_bytes_max)
            .field("dialer", &self.dialer.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            attempts_max: 20,
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(2),
            seed: 0,
            routing: Routing::ShardLeaders,
            message_bytes_max: 256 << 20,
            dialer: None,
        }
    }
}

/// `ClientError` is what a call fails with after its retries.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The cluster refused the call; retrying it unchanged cannot succeed.
    /// For a write, parts that succeeded before stay applied: retry with
    /// the same request id once the cause is fixed.
    #[error("refused: {0}")]
    Refused(Status),
    /// Every attempt failed with a retryable error; the last one is kept.
    /// For a write the outcome is unknown: retry with the same request id.
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: Status,
    },
    /// No endpoint was given or one is malformed.
    #[error("bad endpoint: {0}")]
    Endpoint(String),
    /// Nothing answered at an endpoint ([`Client::connect`]).
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect {
        /// The endpoint (`http://HOST:PORT`).
        endpoint: String,
        /// Why, with the transport's causes.
        reason: String,
    },
    /// A node returned a shard map the client cannot route by.
    #[error("unusable shard map: {0}")]
    Map(#[from] MapError),
}

impl ClientError {
    /// `status` is the gRPC status the call ended with, if it got one.
    pub fn status(&self) -> Option<&Status> {
        match self {
            ClientError::Refused(s) | ClientError::GaveUp { last: s, .. } => Some(s),
            _ => None,
        }
    }
}

/// `retryable` is whether a status may succeed if the call is repeated
/// (elsewhere or later). Defaults to no.
///
/// - `RESOURCE_EXHAUSTED` only with a `retry-after-ms` hint: that is a full
///   queue, which drains; without one it is a limit (too many series, too
///   many bytes) that the same request will hit again.
/// - `CANCELLED` is what tonic reports when this client's own per-call
///   timeout fires; every call the library makes is safe to repeat (writes
///   carry a request id), so it is retried like `DEADLINE_EXCEEDED`.
pub fn retryable(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled => true,
        Code::ResourceExhausted => endpoint::metadata_str(status, RETRY_AFTER_KEY).is_some(),
        _ => false,
    }
}

/// `is_stale_map` is whether a write was refused because the shard map it
/// was routed by is out of date (`FAILED_PRECONDITION` with the node's
/// epoch in `raftwatch-map-epoch`, or, from older nodes, a message naming
/// the epoch).
pub fn is_stale_map(status: &Status) -> bool {
    status.code() == Code::FailedPrecondition
        && (status.metadata().get(MAP_EPOCH_KEY).is_some() || status.message().contains("epoch"))
}

/// `backoff_ms` is the wait before retry `attempt` (1-based): a uniform
/// draw in `[0, min(cap, initial × 2^(attempt−1))]` ("full jitter"), at
/// least the server's `retry_after_ms` hint when there is one.
pub fn backoff_ms(
    config: &ClientConfig,
    attempt: u32,
    retry_after_ms: u64,
    rng: &mut DetRng,
) -> u64 {
    let initial = config.backoff_initial.as_millis() as u64;
    let cap = config.backoff_max.as_millis() as u64;
    let ceiling = initial
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(30))
        .min(cap);
    rng.below(ceiling.saturating_add(1)).max(retry_after_ms)
}

fn retry_after_ms(status: &Status) -> u64 {
    endpoint::metadata_str(status, RETRY_AFTER_KEY)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Locks a mutex whose data stays consistent even if a holder panicked
/// (every critical section here is a single insert, lookup or draw).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `WriteStats` says how a write went: what the bench reports and the
/// tests check.
#[derive(Clone, Debug, Default)]
pub struct WriteStats {
    /// Requests the write was first split into (1 when sent whole).
    pub parts: usize,
    /// Whether it was split by shard (else sent whole to any node).
    pub routed: bool,
    /// RPCs sent, retries included.
    pub rpcs: u64,
    /// Every failed RPC, in order (the last one included when the write
    /// failed).
    pub failed_attempts: Vec<Status>,
    /// Shard-map reads this write made (a read another write made
    /// meanwhile, which this one then used, is not counted).
    pub map_refreshes: u32,
}

/// One part of a write in flight and where to send it next.
struct PartState {
    part: Part,
    /// `part.series` encoded once, sent as is by every attempt.
    encoded: tonic::codegen::Bytes,
    /// A leader a node named (`http://HOST:PORT`): tried next.
    hinted: Option<String>,
    /// Attempts without a hint: picks the next candidate replica.
    tries: usize,
    /// Misses since the last map refresh this part asked for.
    misses: u32,
    /// The last node that failed without naming a leader (likely down): a
    /// hint naming it (a follower that has not yet noticed) is not
    /// followed.
    suspect: Option<String>,
    /// A replica named the suspect as the leader: the leader may be alive
    /// but out of this client's reach, so the last attempt goes unrouted,
    /// for a reachable node to forward.
    leader_unreachable: bool,
}

impl PartState {
    fn new(part: Part, batch: &[pb::Series]) -> PartState {
        PartState {
            encoded: EncodedWrite::encode_series(part.series(batch)),
            part,
            hinted: None,
            tries: 0,
            misses: 0,
            suspect: None,
            leader_unreachable: false,
        }
    }
}

/// `plan` splits the series of `batch` at `indices` by `map`, or makes one
/// unrouted part when there is no usable map (or nothing to split, so the
/// cluster still answers).
fn plan(map: Option<&ShardMap>, batch: &[pb::Series], indices: Vec<u32>) -> Vec<Part> {
    let parts = match map {
        Some(m) => {
            routing::split(m, batch, indices).unwrap_or_else(|all| vec![Part::unrouted(all)])
        }
        None => vec![Part::unrouted(indices)],
    };
    if parts.is_empty() {
        vec![Part::unrouted(Vec::new())]
    } else {
        parts
    }
}

/// `Client` talks to a cluster through any of its nodes.
#[derive(Debug)]
pub struct Client {
    /// Configured endpoints, `http://HOST:PORT`.
    endpoints: Vec<String>,
    config: ClientConfig,
    rng: Mutex<DetRng>,
    next_endpoint: AtomicU64,
    next_request: AtomicU64,
    /// The prefix of generated request ids (see [`ClientConfig::seed`]).
    id_seed: u64,
    /// One channel per node address (HTTP/2 multiplexes every call),
    /// dropped after a transport error so the next call dials again.
    channels: Mutex<BTreeMap<String, Channel>>,
    map: RwLock<Option<Arc<ShardMap>>>,
    /// Bumped by every map read (successful or not), so concurrent writes
    /// that saw the same stale map read it once.
    map_generation: AtomicU64,
    refresh_lock: tokio::sync::Mutex<()>,
    /// Shard → leader (`http://HOST:PORT`) learned since the last map
    /// read, from hints and answers.
    leaders: Mutex<BTreeMap<u64, String>>,
    /// Node → picks that still pass it over: see [`AVOIDED_PICKS_MAX`].
    avoided: Mutex<BTreeMap<String, u32>>,
}

impl Client {
    /// `new` makes a client for `endpoints` (any nodes' gRPC addresses, in
    /// any form [`parse_endpoint`] takes); it connects lazily, per node.
    pub fn new(endpoints: Vec<String>, config: ClientConfig) -> Result<Client, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::Endpoint("no endpoint".into()));
        }
        let endpoints = endpoints
            .iter()
            .map(|e| {
                parse_endpoint(e).map_err(|why| ClientError::Endpoint(format!("{e:?}: {why}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rng = DetRng::new(config.seed);
        Ok(Client {
            endpoints,
            rng: Mutex::new(rng),
            next_endpoint: AtomicU64::new(config.seed),
            next_request: AtomicU64::new(0),
            id_seed: if config.seed == 0 {
                raftwatch_seams::entropy_seed()
            } else {
                config.seed
            },
            channels: Mutex::default(),
            map: RwLock::default(),
            map_generation: AtomicU64::new(0),
            refresh_lock: tokio::sync::Mutex::new(()),
            leaders: Mutex::default(),
            avoided: Mutex::default(),
            config,
        })
    }

    /// `config` is the client's configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// `connect` dials every endpoint now (later calls reuse the
    /// channels). Succeeds if at least one answered; else the first
    /// failure. Optional: calls connect lazily anyway.
    pub async fn connect(&self) -> Result<(), ClientError> {
        let mut first_error = None;
        for url in &self.endpoints {
            match endpoint::connect(
                url,
                self.config.connect_timeout,
                self.config.request_timeout,
            )
            .await
            {
                Ok(ch) => {
                    lock(&self.channels).insert(url.clone(), ch);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if lock(&self.channels).is_empty() => Err(e),
            _ => Ok(()),
        }
    }

    fn channel(&self, url: &str) -> Result<Channel, Status> {
        if let Some(ch) = lock(&self.channels).get(url) {
            return Ok(ch.clone());
        }
        let endpoint = endpoint::endpoint(
            url,
            self.config.connect_timeout,
            self.config.request_timeout,
        )
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let ch = match &self.config.dialer {
            Some(dial) => dial(&endpoint),
            None => endpoint.connect_lazy(),
        };
        lock(&self.channels).insert(url.to_owned(), ch.clone());
        Ok(ch)
    }

    /// `evict` drops `url`'s channel after a transport-like failure (the
    /// next call dials again) and has the next picks pass it over.
    fn evict(&self, url: &str) {
        lock(&self.channels).remove(url);
        lock(&self.avoided).insert(url.to_owned(), AVOIDED_PICKS_MAX);
    }

    /// The next node to try for a call any node can serve, round robin
    /// over the configured endpoints and then the members the cached map
    /// names (so the client outlives its configured endpoints), passing
    /// over recently unreachable nodes while another is left.
    fn pick(&self) -> String {
        let mut avoided = lock(&self.avoided);
        let mut passed = Vec::new();
        let mut chosen = self.pick_round_robin();
        for _ in 0..8 {
            if !avoided.contains_key(&chosen) {
                break;
            }
            passed.push(chosen);
            chosen = self.pick_round_robin();
        }
        if avoided.contains_key(&chosen) {
            // Every node tried is avoided: take the first anyway.
            chosen = passed.first().cloned().unwrap_or(chosen);
        }
        for url in passed.iter().filter(|u| **u != chosen) {
            if let Some(left) = avoided.get_mut(url) {
                *left = left.saturating_sub(1);
                if *left == 0 {
                    avoided.remove(url);
                }
            }
        }
        avoided.remove(&chosen);
        chosen
    }

    fn pick_round_robin(&self) -> String {
        let i = self.next_endpoint.fetch_add(1, Ordering::Relaxed) as usize;
        let members: Vec<String> = self
            .shard_map()
            .map(|m| {
                m.members()
                    .iter()
                    .map(|a| format!("http://{a}"))
                    .filter(|url| !self.endpoints.contains(url))
                    .collect()
            })
            .unwrap_or_default();
        let n = self.endpoints.len() + members.len();
        self.endpoints
            .iter()
            .chain(&members)
            .nth(i % n)
            .unwrap_or(&self.endpoints[0])
            .clone()
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.config.request_timeout);
        request
    }

    fn backoff(&self, attempt: u32, retry_after_ms: u64) -> Duration {
        let mut rng = lock(&self.rng);
        Duration::from_millis(backoff_ms(&self.config, attempt, retry_after_ms, &mut rng))
    }

    /// `new_request_id` is a request id unique to this client: its seed and
    /// a counter. Give each client process its own seed (e.g. from the
    /// caller's instance id and start time) to keep ids unique across
    /// restarts.
    pub fn new_request_id(&self) -> String {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        format!("c{:x}-{n}", self.id_seed)
    }

    /// Runs `call` with the retry policy against any node: returns its
    /// answer, or the first non-retryable error, or gives up after
    /// `attempts_max`. A leader hint sends the next attempt there.
    async fn with_retries<T, F, Fut>(&self, mut call: F) -> Result<T, ClientError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let mut target = self.pick();
        let mut last = Status::unavailable("no attempt made");
        for attempt in 1..=self.config.attempts_max {
            let result = match self.channel(&target) {
                Ok(ch) => call(ch).await,
                Err(s) => Err(s),
            };
            match result {
                Ok(v) => return Ok(v),
                Err(s) if !retryable(&s) => return Err(ClientError::Refused(s)),
                Err(s) => {
                    let hint = endpoint::metadata_str(&s, LEADER_ADDR_KEY);
                    if hint.is_none() && channel_suspect(s.code()) {
                        self.evict(&target);
                    }
                    target = match hint {
                        Some(addr) => format!("http://{addr}"),
                        None => self.pick(),
                    };
                    let wait = self.backoff(attempt, retry_after_ms(&s));
                    last = s;
                    if attempt < self.config.attempts_max {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        Err(ClientError::GaveUp {
            attempts: self.config.attempts_max,
            last,
        })
    }

    /// `shard_map` is the cached shard map, if one was read and the
    /// cluster has shards.
    pub fn shard_map(&self) -> Option<Arc<ShardMap>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn store_map(&self, map: Option<ShardMap>) {
        *self.map.write().unwrap_or_else(PoisonError::into_inner) = map.map(Arc::new);
        lock(&self.leaders).clear();
    }

    /// `refresh_map` reads the shard map now (`ClusterStatus`,
    /// linearizable) from the endpoints, then from the members the last
    /// map named, and caches it. `Ok(None)`: the cluster has no shards yet.
    pub async fn refresh_map(&self) -> Result<Option<Arc<ShardMap>>, ClientError> {
        let _guard = self.refresh_lock.lock().await;
        let result = self.fetch_map().await;
        self.map_generation.fetch_add(1, Ordering::AcqRel);
        self.store_map(result?);
        Ok(self.shard_map())
    }

    /// Reads the map unless another task did since generation `seen`
    /// (then its result is used); keeps the old map if no node answers.
    /// Counts a read it made in `stats`.
    async fn refresh_after(&self, seen: u64, stats: &mut WriteStats) -> Option<Arc<ShardMap>> {
        let _guard = self.refresh_lock.lock().await;
        if self.map_generation.load(Ordering::Acquire) == seen {
            stats.map_refreshes += 1;
            if let Ok(map) = self.fetch_map().await {
                self.store_map(map);
            }
            self.map_generation.fetch_add(1, Ordering::AcqRel);
        }
        self.shard_map()
    }

    async fn fetch_map(&self) -> Result<Option<ShardMap>, ClientError> {
        // The configured endpoints first (from a rotating start), then the
        // members the last map named.
        let start = self.next_endpoint.fetch_add(1, Ordering::Relaxed) as usize;
        let mut candidates: Vec<String> = (0..self.endpoints.len())
            .map(|k| self.endpoints[(start + k) % self.endpoints.len()].clone())
            .collect();
        if let Some(map) = self.shard_map() {
            candidates.extend(map.members().iter().map(|a| format!("http://{a}")));
        }
        let mut seen = std::collections::BTreeSet::new();
        candidates.retain(|c| seen.insert(c.clone()));
        let mut last = Status::unavailable("no endpoint to read the shard map from");
        for url in &candidates {
            let answer = match self.channel(url) {
                Ok(ch) => {
                    pb::admin_client::AdminClient::new(ch)
                        .max_decoding_message_size(self.config.message_bytes_max)
                        .cluster_status(self.request(pb::ClusterStatusRequest {
                            consistency: pb::Consistency::Linearizable as i32,
                        }))
                        .await
                }
                Err(s) => Err(s),
            };
            match answer {
                Ok(status) => return Ok(ShardMap::from_status(&status.into_inner())?),
                Err(s) => {
                    if channel_suspect(s.code()) {
                        self.evict(url);
                    }
                    last = s;
                }
            }
        }
        Err(ClientError::GaveUp {
            attempts: candidates.len() as u32,
            last,
        })
    }

    fn learn_leader(&self, shard: u64, url: &str) {
        lock(&self.leaders).insert(shard, url.to_owned());
    }

    fn forget_leader(&self, shard: u64, url: &str) {
        let mut leaders = lock(&self.leaders);
        if leaders.get(&shard).is_some_and(|l| l == url) {
            leaders.remove(&shard);
        }
    }

    /// Where a part for `route` may go, best first: the leader learned
    /// since the last map read, the map's leader, then every replica.
    fn candidates(&self, route: &ShardRoute) -> Vec<String> {
        let mut out: Vec<String> = lock(&self.leaders)
            .get(&route.id)
            .cloned()
            .into_iter()
            .collect();
        out.extend(
            route
                .leader
                .iter()
                .chain(&route.replicas)
                .map(|a| format!("http://{a}")),
        );
        let mut seen = std::collections::BTreeSet::new();
        out.retain(|c| seen.insert(c.clone()));
        out
    }

    /// `write` sends `series` and returns the answer once every sample is
    /// committed (or rejected one by one; rejections are numbered as
    /// `series` is). `request_id`: the caller's, or a new one. Retries
    /// reuse it, so the write applies at most once.
    ///
    /// `series` is anything that lends a slice (a `Vec`, or an
    /// `Arc<[Series]>` the caller keeps): the client only reads it, to
    /// hash and encode each shard's part once.
    pub async fn write<S: AsRef<[pb::Series]>>(
        &self,
        series: S,
        request_id: Option<String>,
    ) -> Result<pb::WriteResponse, ClientError> {
        self.write_with_stats(series, request_id).await.0
    }

    /// `write_with_stats` is [`Client::write`], also saying how it went.
    pub async fn write_with_stats<S: AsRef<[pb::Series]>>(
        &self,
        series: S,
        request_id: Option<String>,
    ) -> (Result<pb::WriteResponse, ClientError>, WriteStats) {
        let batch = series.as_ref();
        let id = request_id.unwrap_or_else(|| self.new_request_id());
        let mut stats = WriteStats::default();
        let map = match self.config.routing {
            Routing::AnyNode => None,
            Routing::ShardLeaders => match self.shard_map() {
                Some(map) => Some(map),
                // The first write reads the map; later ones do on failures.
                None if self.map_generation.load(Ordering::Acquire) == 0 => {
                    self.refresh_after(0, &mut stats).await
                }
                None => None,
            },
        };
        // Parts number series with u32, as the protocol's rejections do.
        let Ok(n) = u32::try_from(batch.len()) else {
            let too_many = Status::invalid_argument(format!(
                "{} series in one write; at most {} can be numbered",
                batch.len(),
                u32::MAX
            ));
            return (Err(ClientError::Refused(too_many)), stats);
        };
        let parts = plan(map.as_deref(), batch, (0..n).collect());
        stats.parts = parts.len();
        stats.routed = parts.iter().any(|p| p.shard.is_some());
        let result = self.run_parts(parts, batch, map, &id, &mut stats).await;
        (result, stats)
    }

    /// Sends every part, retrying the failed ones (all of a round's
    /// retries wait out one backoff together) until each is answered, one
    /// is refused, or `attempts_max` rounds passed.
    async fn run_parts(
        &self,
        parts: Vec<Part>,
        batch: &[pb::Series],
        mut map: Option<Arc<ShardMap>>,
        id: &str,
        stats: &mut WriteStats,
    ) -> Result<pb::WriteResponse, ClientError> {
        let mut pending: Vec<PartState> = parts
            .into_iter()
            .map(|part| PartState::new(part, batch))
            .collect();
        let mut answers = Vec::with_capacity(pending.len());
        let mut last = Status::unavailable("no attempt made");
        for attempt in 1..=self.config.attempts_max {
            let generation = self.map_generation.load(Ordering::Acquire);
            let last_attempt = attempt == self.config.attempts_max;
            let sends = pending.iter().map(|p| {
                let forward = last_attempt && p.leader_unreachable;
                self.send_part(p, forward, map.as_deref(), id)
            });
            let results = futures::future::join_all(sends).await;
            stats.rpcs += results.len() as u64;
            let mut retry = Vec::new();
            let mut refresh = false;
            let mut all_hinted = true;
            let mut retry_after = 0;
            for (mut p, (target, result)) in pending.into_iter().zip(results) {
                let s = match result {
                    Ok(answer) => {
                        if let Some(shard) = p.part.shard {
                            self.learn_leader(shard, &target);
                        }
                        answers.push((p.part.caller_index, answer));
                        continue;
                    }
                    Err(s) => s,
                };
                stats.failed_attempts.push(s.clone());
                p.hinted = None;
                let hint = endpoint::metadata_str(&s, LEADER_ADDR_KEY)
                    .map(|addr| format!("http://{addr}"));
                if p.part.shard.is_some() && hint.is_some() && hint == p.suspect {
                    p.leader_unreachable = true;
                }
                if is_stale_map(&s) {
                    refresh = true;
                    all_hinted = false;
                } else if !retryable(&s) {
                    return Err(ClientError::Refused(s));
                } else if let Some(url) = hint.filter(|url| p.suspect.as_ref() != Some(url)) {
                    if let Some(shard) = p.part.shard {
                        self.learn_leader(shard, &url);
                    }
                    p.hinted = Some(url);
                } else if s.code() == Code::ResourceExhausted {
                    // The right node, busy: the same one after the wait.
                    all_hinted = false;
                    p.hinted = Some(target);
                } else {
                    all_hinted = false;
                    if endpoint::metadata_str(&s, LEADER_ADDR_KEY).is_none() {
                        if channel_suspect(s.code()) {
                            self.evict(&target);
                        }
                        if let Some(shard) = p.part.shard {
                            self.forget_leader(shard, &target);
                        }
                        p.suspect = Some(target);
                    }
                    p.tries += 1;
                    p.misses += 1;
                    if p.misses >= MISSES_BEFORE_REFRESH {
                        p.misses = 0;
                        refresh = true;
                    }
                }
                retry_after = retry_after.max(retry_after_ms(&s));
                last = s;
                retry.push(p);
            }
            if retry.is_empty() {
                return Ok(routing::merge(answers));
            }
            if attempt == self.config.attempts_max {
                break;
            }
            if refresh && self.config.routing == Routing::ShardLeaders {
                map = self.refresh_after(generation, stats).await;
                // Re-split what is left by the map just read. Ranges never
                // change today, so each shard's part keeps its content and
                // a retried part is still answered from the shard's memory.
                let forwarded: Vec<(Option<u64>, Option<String>)> = retry
                    .iter()
                    .filter(|p| p.leader_unreachable)
                    .map(|p| (p.part.shard, p.suspect.clone()))
                    .collect();
                let mut left: Vec<u32> = retry
                    .into_iter()
                    .flat_map(|p| p.part.caller_index)
                    .collect();
                left.sort_unstable();
                retry = plan(map.as_deref(), batch, left)
                    .into_iter()
                    .map(|part| {
                        // The leader stays out of reach after a re-split.
                        let was = forwarded.iter().find(|(s, _)| *s == part.shard).cloned();
                        let mut p = PartState::new(part, batch);
                        if let Some((_, suspect)) = was {
                            p.leader_unreachable = true;
                            p.suspect = suspect;
                        }
                        p
                    })
                    .collect();
            }
            // A named leader is tried at once (or when the node asked);
            // anything else waits out a jittered backoff.
            let wait = if all_hinted {
                Duration::from_millis(retry_after)
            } else {
                self.backoff(attempt, retry_after)
            };
            tokio::time::sleep(wait).await;
            pending = retry;
        }
        Err(ClientError::GaveUp {
            attempts: self.config.attempts_max,
            last,
        })
    }

    /// Sends one part: to the hinted leader, else to the next candidate of
    /// its shard, else (unrouted) to any endpoint. With `forward`, it goes
    /// unrouted to a candidate other than its suspect, which forwards it.
    /// Returns where it went.
    async fn send_part(
        &self,
        p: &PartState,
        forward: bool,
        map: Option<&ShardMap>,
        id: &str,
    ) -> (String, Result<pb::WriteResponse, Status>) {
        let route = p.part.shard.zip(map).and_then(|(s, m)| m.route(s));
        let target = match (&p.hinted, route) {
            (Some(hinted), _) => hinted.clone(),
            (None, Some(route)) => {
                let mut candidates = self.candidates(route);
                if forward {
                    candidates.retain(|c| p.suspect.as_ref() != Some(c));
                }
                match candidates.get(p.tries % candidates.len().max(1)) {
                    Some(c) => c.clone(),
                    None => self.pick(),
                }
            }
            (None, None) => self.pick(),
        };
        let request = EncodedWrite {
            series: p.encoded.clone(),
            request_id: id.to_owned(),
            shard_map_epoch: map.map_or(0, ShardMap::epoch),
            shard: if forward {
                0
            } else {
                p.part.shard.unwrap_or(0)
            },
        };
        let result = match self.channel(&target) {
            Ok(ch) => write_encoded(
                ch,
                self.request(request),
                self.config.message_bytes_max,
                self.config.message_bytes_max,
            )
            .await
            .map(tonic::Response::into_inner),
            Err(s) => Err(s),
        };
        (target, result)
    }

    /// `select` reads raw samples of the series matching every matcher in
    /// `[start_ms, end_ms]` at `consistency`, from any node.
    pub async fn select(
        &self,
        matchers: Vec<pb::LabelMatcher>,
        start_ms: i64,
        end_ms: i64,
        consistency: pb::Consistency,
    ) -> Result<pb::SelectResponse, ClientError> {
        self.with_retries(|ch| {
            let request = self.request(pb::SelectRequest {
                matchers: matchers.clone(),
                start_ms,
                end_ms,
                consistency: consistency as i32,
            });
            let bytes_max = self.config.message_bytes_max;
            async move {
                pb::query_client::QueryClient::new(ch)
                    .max_decoding_message_size(bytes_max)
                    .select(request)
                    .await
                    .map(tonic::Response::into_inner)
            }
        })
        .await
    }
}

impl Client {
    /// `promql` evaluates a PromQL query (`Query.Promql`) on any node: the
    /// node plans it, reads what it needs from every shard at the
    /// request's consistency, and evaluates it. Retried like every read
    /// (`UNAVAILABLE`, ...); a malformed query is `INVALID_ARGUMENT`, with
    /// Prometheus's error type in the metadata `raftwatch-error-type`.
    pub async fn promql(
        &self,
        request: pb::PromqlRequest,
    ) -> Result<pb::PromqlResponse, ClientError> {
        self.with_retries(|ch| {
            let request = self.request(request.clone());
            let bytes_max = self.config.message_bytes_max;
            async move {
                pb::query_client::QueryClient::new(ch)
                    .max_decoding_message_size(bytes_max)
                    .promql(request)
                    .await
                    .map(tonic::Response::into_inner)
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_jittered_and_honours_retry_after() {
        let config = ClientConfig::default();
        let mut rng = DetRng::new(7);
        for attempt in 1..40 {
            let ceiling = (20u64 << (attempt - 1).min(30)).min(2_000);
            for _ in 0..50 {
                let b = backoff_ms(&config, attempt, 0, &mut rng);
                assert!(b <= ceiling, "attempt {attempt}: {b} > {ceiling}");
            }
        }
        // Jitter: not always the same value.
        let draws: std::collections::BTreeSet<u64> = (0..50)
            .map(|_| backoff_ms(&config, 10, 0, &mut rng))
            .collect();
        assert!(draws.len() > 10);
        assert!(backoff_ms(&config, 1, 500, &mut rng) >= 500);
    }

    #[test]
    fn only_retryable_codes_are_retried() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Unknown,
            Code::Cancelled,
        ] {
            assert!(retryable(&Status::new(code, "")), "{code:?}");
        }
        // A full queue (with a hint) is retried; a limit (no hint) is not.
        let mut full = Status::resource_exhausted("queue full");
        full.metadata_mut()
            .insert(RETRY_AFTER_KEY, "50".parse().unwrap());
        assert!(retryable(&full));
        assert!(!retryable(&Status::resource_exhausted("too many series")));
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::FailedPrecondition,
            Code::OutOfRange,
            Code::Internal,
            Code::PermissionDenied,
        ] {
            assert!(!retryable(&Status::new(code, "")), "{code:?}");
        }
    }

    #[test]
    fn request_ids_are_unique_per_client() {
        let c = Client::new(
            vec!["http://127.0.0.1:1".into()],
            ClientConfig {
                seed: 9,
                ..ClientConfig::default()
            },
        )
        .unwrap();
        let ids: std::collections::BTreeSet<String> =
            (0..100).map(|_| c.new_request_id()).collect();
        assert_eq!(ids.len(), 100);
        assert!(Client::new(vec![], ClientConfig::default()).is_err());
    }

    /// Two clients left at the default seed (two processes of one user,
    /// say) never generate the same request id: a shared id would make a
    /// shard answer the second client's write from memory, unapplied.
    #[test]
    fn clients_with_the_default_seed_never_share_request_ids() {
        let a = Client::new(vec!["http://127.0.0.1:1".into()], ClientConfig::default()).unwrap();
        let b = Client::new(vec!["http://127.0.0.1:1".into()], ClientConfig::default()).unwrap();
        assert_ne!(a.new_request_id(), b.new_request_id());
        // An explicit seed is reproducible (the simulator's case).
        let seeded = |s| {
            Client::new(
                vec!["http://127.0.0.1:1".into()],
                ClientConfig {
                    seed: s,
                    ..ClientConfig::default()
                },
            )
            .unwrap()
        };
        assert_eq!(seeded(5).new_request_id(), seeded(5).new_request_id());
    }
}
