//! The write path: validate and route a client's write, then per shard
//! hand its part to the shard leader's proposal queue, which coalesces
//! queued requests into one Raft entry.
//!
//! Durability point: a shard part is answered only after its entry is
//! committed (on a majority's fsynced log) and applied; the client is
//! answered only after every part was. Every queue is bounded: a full
//! shard queue answers `RESOURCE_EXHAUSTED` with a retry-after hint.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use raftwatch_control::{ControlState, ShardId};
use raftwatch_model::labels::hash_pairs;
use raftwatch_model::{LabelLimits, Labels};
use raftwatch_proto::v1 as pb;
use raftwatch_raft::ReadConsistency;
use raftwatch_shard::codec as sc;
use raftwatch_shard::wire::{SeriesBatch, WriteView};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::Status;

use super::clients::{MAP_EPOCH_KEY, leader_hint, retryable, unavailable_with_leader};
use super::metrics::{PartRoute, Protocol, Routing};
use super::{GroupOp, Node, OPERATION_TIMEOUT};

/// `SERIES_PER_REQUEST_MAX`: series in one write request.
pub const SERIES_PER_REQUEST_MAX: usize = 50_000;
/// `SAMPLES_PER_REQUEST_MAX`: samples in one write request.
pub const SAMPLES_PER_REQUEST_MAX: usize = 500_000;
/// `REQUEST_BYTES_MAX`: the longest request message a node accepts, bytes:
/// the ceiling (and default) of the `request_bytes_max` setting of the
/// public services, and the fixed limit of node-to-node `NodeInternal`
/// messages (so a part of any accepted write can be forwarded). Longer
/// messages get `RESOURCE_EXHAUSTED` (`api::routes`).
pub const REQUEST_BYTES_MAX: usize = 32 << 20;
/// `SHARD_QUEUE_REQUESTS_MAX`: requests waiting for one shard's proposer.
pub const SHARD_QUEUE_REQUESTS_MAX: usize = 512;
/// `BATCH_BYTES_MAX`: encoded requests coalesced into one Raft entry.
pub const BATCH_BYTES_MAX: usize = 4 << 20;
/// `BATCH_REQUESTS_MAX`: requests coalesced into one Raft entry.
pub const BATCH_REQUESTS_MAX: usize = 256;
/// `INFLIGHT_ENTRIES_MAX`: proposals of one shard in flight at once; while
/// they are, new requests queue up and form the next batch.
pub const INFLIGHT_ENTRIES_MAX: usize = 4;
/// `RETRY_AFTER_MS`: the hint sent with a full queue.
pub const RETRY_AFTER_MS: u64 = 100;

const _: () = assert!(SAMPLES_PER_REQUEST_MAX >= SERIES_PER_REQUEST_MAX);
const _: () = assert!(BATCH_BYTES_MAX <= REQUEST_BYTES_MAX);

/// `EncodedPart` is one request's part for one shard: an encoded
/// [`sc::ShardRequest`], encoded once by the node that split the request
/// (or received as is from it) and copied into the Raft entry without being
/// decoded again. Shared, so a retry does not copy it.
pub(crate) type EncodedPart = Arc<Vec<u8>>;

/// `SampleIndex` maps a part's samples, in order, to their (series,
/// sample) index in the client's request.
type SampleIndex = Vec<(u32, u32)>;

/// One queued shard request and where its answer goes.
struct Item {
    request: EncodedPart,
    reply: oneshot::Sender<Result<sc::ShardWriteResult, Status>>,
}

/// `Batchers` holds each led shard's proposal queue.
#[derive(Default)]
pub(crate) struct Batchers {
    queues: std::sync::Mutex<BTreeMap<ShardId, mpsc::Sender<Item>>>,
}

impl std::fmt::Debug for Batchers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Batchers")
    }
}

/// A refusal telling the client its shard map is stale: FAILED_PRECONDITION
/// carrying this node's map epoch (`raftwatch-map-epoch`).
fn stale_map(message: String, epoch: u64) -> Status {
    let mut s = Status::failed_precondition(message);
    if let Ok(v) = epoch.to_string().parse() {
        s.metadata_mut().insert(MAP_EPOCH_KEY, v);
    }
    s
}

fn exhausted(shard: ShardId) -> Status {
    let mut s = Status::resource_exhausted(format!(
        "shard {shard}'s write queue is full ({SHARD_QUEUE_REQUESTS_MAX} requests); retry after {RETRY_AFTER_MS} ms"
    ));
    if let Ok(v) = RETRY_AFTER_MS.to_string().parse() {
        s.metadata_mut().insert("retry-after-ms", v);
    }
    s
}

impl Node {
    fn queue(self: &Arc<Self>, shard: ShardId) -> mpsc::Sender<Item> {
        let mut queues = match self.batchers.queues.lock() {
            Ok(q) => q,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(tx) = queues.get(&shard)
            && !tx.is_closed()
        {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(SHARD_QUEUE_REQUESTS_MAX);
        queues.insert(shard, tx.clone());
        let weak = Arc::downgrade(self);
        raftwatch_raft::rt::spawn(self.id.0 ^ shard.0, run_proposer(weak, shard, rx));
        tx
    }

    /// `enqueue_local` queues `request` for this node's replica of
    /// `shard`, which must lead it, and waits for its result.
    pub(crate) async fn enqueue_local(
        self: &Arc<Self>,
        shard: ShardId,
        request: EncodedPart,
    ) -> Result<sc::ShardWriteResult, Status> {
        let handle = self
            .host
            .group(shard.group())
            .await
            .ok_or_else(|| Status::not_found(format!("shard {shard} is not hosted here")))?;
        let m = handle.metrics();
        if !m.is_leader {
            let addr = m.leader.and_then(|l| self.member_addr(l));
            return Err(unavailable_with_leader(
                format!("node {} does not lead shard {shard}", self.id),
                addr.as_deref(),
            ));
        }
        let (reply, rx) = oneshot::channel();
        self.queue(shard)
            .try_send(Item { request, reply })
            .map_err(|_| exhausted(shard))?;
        rx.await
            .map_err(|_| Status::unavailable(format!("shard {shard}'s proposer stopped")))?
    }

    /// `shard_write` applies one request's part on `shard` through its
    /// leader (local queue, or the leader's queue over `ShardWrite`),
    /// following leader hints and retrying retryable failures with capped
    /// backoff until [`OPERATION_TIMEOUT`]. The part carries the request id,
    /// so a retry after an ambiguous failure is answered from the shard's
    /// memory instead of being applied twice.
    pub(crate) async fn shard_write(
        self: &Arc<Self>,
        shard: ShardId,
        request: EncodedPart,
    ) -> Result<sc::ShardWriteResult, Status> {
        let candidates = self.shard_candidates(shard);
        let deadline = tokio::time::sleep(OPERATION_TIMEOUT);
        tokio::pin!(deadline);
        let mut backoff = Duration::from_millis(10);
        let mut hint: Option<String> = None;
        let mut next = 0usize;
        let mut last;
        loop {
            let leads_here = match self.host.group(shard.group()).await {
                Some(h) => h.metrics().is_leader,
                None => false,
            };
            let result = if leads_here && hint.is_none() {
                self.metrics.count_part(PartRoute::Local);
                self.enqueue_local(shard, request.clone()).await
            } else {
                let target = match hint.take() {
                    Some(h) => h,
                    None if candidates.is_empty() => {
                        return Err(Status::unavailable(format!(
                            "no replica of shard {shard} is known"
                        )));
                    }
                    None => {
                        let c = candidates[next % candidates.len()].clone();
                        next += 1;
                        c
                    }
                };
                if target == self.advertised_grpc() {
                    self.metrics.count_part(PartRoute::Local);
                    self.enqueue_local(shard, request.clone()).await
                } else {
                    self.metrics.count_part(PartRoute::Forwarded);
                    self.remote_shard_write(&target, shard, request.as_slice())
                        .await
                }
            };
            match result {
                Ok(r) => return Ok(r),
                Err(s) if s.code() == tonic::Code::ResourceExhausted => return Err(s),
                Err(s) if s.code() == tonic::Code::NotFound => last = s,
                Err(s) if retryable(&s) => {
                    hint = leader_hint(&s);
                    last = s;
                }
                Err(s) => return Err(s),
            }
            let wait = if hint.is_some() {
                Duration::from_millis(2)
            } else {
                backoff
            };
            tokio::select! {
                biased; // No thread-local randomness in branch choice.
                _ = tokio::time::sleep(wait) => {}
                _ = deadline.as_mut() => return Err(last),
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// `pinned_write` writes the part of a request the client routed to
    /// `shard` (`WriteRequest.shard`): only on this node's replica, which
    /// must lead it. Never forwarded: a node that does not lead the shard
    /// answers `UNAVAILABLE` naming the leader when it knows it, so the
    /// client goes there itself next time.
    async fn pinned_write(
        self: &Arc<Self>,
        shard: ShardId,
        request: EncodedPart,
        state: &ControlState,
    ) -> Result<sc::ShardWriteResult, Status> {
        self.metrics.count_part(PartRoute::Local);
        match self.enqueue_local(shard, request).await {
            Err(s) if s.code() == tonic::Code::NotFound => {
                let hint = state
                    .shards
                    .get(&shard)
                    .and_then(|s| s.leader_hint)
                    .filter(|l| *l != self.id)
                    .and_then(|l| self.member_addr(l));
                Err(unavailable_with_leader(
                    format!("node {} holds no replica of shard {shard}", self.id),
                    hint.as_deref(),
                ))
            }
            other => other,
        }
    }

    async fn remote_shard_write(
        &self,
        addr: &str,
        shard: ShardId,
        request: &[u8],
    ) -> Result<sc::ShardWriteResult, Status> {
        let channel = self.clients.channel(addr)?;
        let mut client = pb::node_internal_client::NodeInternalClient::new(channel)
            .max_decoding_message_size(REQUEST_BYTES_MAX)
            .max_encoding_message_size(REQUEST_BYTES_MAX);
        match client
            .shard_write(pb::ShardWriteRequest {
                shard: shard.0,
                request: request.to_vec(),
            })
            .await
        {
            Ok(r) => sc::ShardWriteResult::decode(r.into_inner().result.as_slice())
                .map_err(|e| Status::internal(format!("shard {shard} answer: {e}"))),
            Err(s) => {
                if super::clients::channel_suspect(&s) {
                    self.clients.evict(addr);
                }
                Err(s)
            }
        }
    }

    /// `write_observed` is [`Node::write`] for a request that arrived over
    /// `protocol` at `started` (a reading of the metrics clock), recorded
    /// in the node's metrics: samples received, accepted and refused, the
    /// outcome and the time to answer. A request whose caller went away
    /// before the answer (its handler dropped mid-write) is not recorded.
    pub(crate) async fn write_observed(
        self: &Arc<Self>,
        protocol: Protocol,
        started: raftwatch_seams::MonoNanos,
        req: pb::WriteRequest,
    ) -> Result<pb::WriteResponse, Status> {
        self.write_view_observed(protocol, started, &view_of(&req))
            .await
    }

    /// `write_view_observed` is [`Node::write_observed`] for a request
    /// decoded as a borrowed view (`Ingest.Write` parses the request's
    /// bytes that way: `IngestRaw for Api` in `api.rs`).
    pub(crate) async fn write_view_observed(
        self: &Arc<Self>,
        protocol: Protocol,
        started: raftwatch_seams::MonoNanos,
        req: &WriteView<'_>,
    ) -> Result<pb::WriteResponse, Status> {
        let samples = req.batch.samples_total() as u64;
        let result = self.write_view(req).await;
        self.metrics
            .observe_write(protocol, started, samples, result.as_ref());
        result
    }

    /// `write` is `Ingest.Write`: validate, split by shard, write every
    /// part, merge the answers.
    pub(crate) async fn write(
        self: &Arc<Self>,
        req: pb::WriteRequest,
    ) -> Result<pb::WriteResponse, Status> {
        self.write_view(&view_of(&req)).await
    }

    /// `write_view` is [`Node::write`] over a borrowed request. A series
    /// whose labels arrive canonical (sorted, unique, non-empty, within
    /// limits: what the client library sends) is hashed and copied into
    /// its shard's part from the request's own bytes; any other is
    /// validated and canonicalised into a [`Labels`] first, or rejected.
    async fn write_view(
        self: &Arc<Self>,
        req: &WriteView<'_>,
    ) -> Result<pb::WriteResponse, Status> {
        if req.batch.len() > SERIES_PER_REQUEST_MAX {
            return Err(Status::resource_exhausted(format!(
                "{} series in one request; the limit is {SERIES_PER_REQUEST_MAX}",
                req.batch.len()
            )));
        }
        let samples = req.batch.samples_total();
        if samples > SAMPLES_PER_REQUEST_MAX {
            return Err(Status::resource_exhausted(format!(
                "{samples} samples in one request; the limit is {SAMPLES_PER_REQUEST_MAX}"
            )));
        }
        if req.request_id.len() > raftwatch_shard::sm::REQUEST_ID_BYTES_MAX {
            return Err(Status::invalid_argument(format!(
                "request_id is {} bytes; the limit is {}",
                req.request_id.len(),
                raftwatch_shard::sm::REQUEST_ID_BYTES_MAX
            )));
        }
        // Epochs only grow: a client that saw a newer map than this node's
        // cached one makes it read the current map instead of refusing.
        let state = match self.cached_state() {
            Some(s) if s.bootstrapped && req.shard_map_epoch <= s.map_epoch() => s,
            _ => self.control_state(ReadConsistency::Linearizable).await?,
        };
        if req.shard_map_epoch != 0 && req.shard_map_epoch != state.map_epoch() {
            return Err(stale_map(
                format!(
                    "stale shard-map epoch {}: the current one is {}; refresh the shard map",
                    req.shard_map_epoch,
                    state.map_epoch()
                ),
                state.map_epoch(),
            ));
        }
        let pinned = (req.shard != 0).then_some(ShardId(req.shard));
        match pinned {
            Some(shard) if !state.shards.contains_key(&shard) => {
                return Err(stale_map(
                    format!("unknown shard {shard}; refresh the shard map"),
                    state.map_epoch(),
                ));
            }
            Some(_) => self.metrics.count_routing(Routing::Shard),
            None => self.metrics.count_routing(Routing::Any),
        }
        let limits = LabelLimits::default();
        let mut rejections = Vec::new();
        // Shard → (its part, encoded as an `sc::ShardRequest`, and each of
        // its samples' (series, sample) index).
        let mut parts: BTreeMap<ShardId, (Vec<u8>, SampleIndex)> = BTreeMap::new();
        for (si, series) in req.batch.iter().enumerate() {
            let pairs = series.labels;
            let samples = series.timestamps.len();
            let canonical: Labels;
            let canonical_pairs: Vec<(&str, &str)>;
            let (labels, hash) = if Labels::is_canonical(pairs, &limits) {
                (pairs, hash_pairs(&mut pairs.iter().copied()))
            } else {
                match Labels::from_pairs(pairs.iter().copied(), &limits) {
                    Ok(l) => {
                        canonical = l;
                        canonical_pairs = canonical.pairs().collect();
                        (canonical_pairs.as_slice(), canonical.hash())
                    }
                    Err(e) => {
                        for k in 0..samples {
                            rejections.push(pb::Rejection {
                                series_index: si as u32,
                                sample_index: k as u32,
                                reason: format!("invalid series labels: {e}"),
                            });
                        }
                        continue;
                    }
                }
            };
            let Some(shard) = state.shard_for_hash(hash.0) else {
                return Err(Status::unavailable(
                    "the shard map covers no shard for a series",
                ));
            };
            if let Some(p) = pinned
                && shard.id != p
            {
                return Err(stale_map(
                    format!(
                        "series {si} belongs to shard {}, not shard {p}; refresh the shard map",
                        shard.id
                    ),
                    state.map_epoch(),
                ));
            }
            let (part, map) = parts.entry(shard.id).or_default();
            map.extend((0..samples).map(|k| (si as u32, k as u32)));
            sc::put_request_series(part, labels, series.timestamps, series.values);
        }
        let calls = parts.into_iter().map(|(shard, (part, map))| {
            let node = self.clone();
            let state = state.clone();
            let mut part = part;
            sc::put_request_id(&mut part, req.request_id);
            let part: EncodedPart = Arc::new(part);
            async move {
                let result = match pinned {
                    Some(_) => node.pinned_write(shard, part, &state).await?,
                    None => node.shard_write(shard, part).await?,
                };
                if !result.error.is_empty() {
                    return Err(Status::unavailable(format!(
                        "shard {shard}: {}",
                        result.error
                    )));
                }
                Ok::<_, Status>((result, map))
            }
        });
        let mut accepted = 0;
        let mut first_error = None;
        for r in futures::future::join_all(calls).await {
            match r {
                Ok((result, map)) => {
                    accepted += result.accepted;
                    for rej in result.rejections {
                        let (series_index, sample_index) = map
                            .get(rej.index as usize)
                            .copied()
                            .unwrap_or((u32::MAX, u32::MAX));
                        rejections.push(pb::Rejection {
                            series_index,
                            sample_index,
                            reason: rej.reason,
                        });
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        // Not acknowledged unless every part was committed. Parts that were
        // may stay applied; a retry with the same request id is answered
        // from the shards' memory.
        if let Some(e) = first_error {
            return Err(e);
        }
        rejections.sort_by_key(|r| (r.series_index, r.sample_index));
        Ok(pb::WriteResponse {
            samples_accepted: accepted,
            rejections,
        })
    }
}

/// The proposer of one shard: takes queued requests, coalesces what is
/// waiting into one entry (bounded by bytes and count), keeps at most
/// [`INFLIGHT_ENTRIES_MAX`] entries in flight, and answers every request
/// from its own result. Ends when the node is gone.
async fn run_proposer(node: std::sync::Weak<Node>, shard: ShardId, mut rx: mpsc::Receiver<Item>) {
    let inflight = Arc::new(Semaphore::new(INFLIGHT_ENTRIES_MAX));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = inflight.clone().acquire_owned().await else {
            break;
        };
        // Requests that arrived while we waited for a permit join this batch.
        let mut bytes = first.request.len();
        let mut items = vec![first];
        while bytes < BATCH_BYTES_MAX && items.len() < BATCH_REQUESTS_MAX {
            match rx.try_recv() {
                Ok(item) => {
                    bytes += item.request.len();
                    items.push(item);
                }
                Err(_) => break,
            }
        }
        let Some(n) = node.upgrade() else { break };
        let seed = n.id.0 ^ shard.0;
        raftwatch_raft::rt::spawn(seed, async move {
            let _permit = permit;
            propose_batch(&n, shard, items).await;
        });
    }
}

async fn propose_batch(node: &Node, shard: ShardId, items: Vec<Item>) {
    let (requests, replies): (Vec<_>, Vec<_>) =
        items.into_iter().map(|i| (i.request, i.reply)).unzip();
    // Planted bug (simulator only): acknowledge every request before its
    // entry is even proposed, then propose it and ignore the outcome.
    #[cfg(feature = "inject-bugs")]
    let replies = if raftwatch_seams::bugs::armed(raftwatch_seams::bugs::Bug::AckBeforeCommit) {
        for (reply, request) in replies.into_iter().zip(&requests) {
            let series = sc::ShardRequest::decode(request.as_slice())
                .map(|r| r.series)
                .unwrap_or_default();
            let accepted = series.iter().map(|s| s.timestamps.len() as u64);
            let _ = reply.send(Ok(sc::ShardWriteResult {
                accepted: accepted.sum(),
                ..Default::default()
            }));
        }
        Vec::new()
    } else {
        replies
    };
    let parts: Vec<&[u8]> = requests.iter().map(|r| r.as_slice()).collect();
    let cmd = sc::coalesced_command(&parts);
    let outcome = match node.host.group(shard.group()).await {
        None => Err(Status::not_found(format!(
            "shard {shard} is not hosted here"
        ))),
        Some(h) => match node.exec_local(&h, &GroupOp::Propose(cmd)).await {
            Ok(bytes) => sc::ShardWriteResult::decode(bytes.as_slice())
                .map_err(|e| Status::internal(format!("shard {shard} answer: {e}"))),
            Err(e) => Err(super::api::with_leader_addr(node, e)),
        },
    };
    match outcome {
        Ok(result) if result.error.is_empty() && result.results.len() == replies.len() => {
            for (reply, r) in replies.into_iter().zip(result.results) {
                let _ = reply.send(Ok(r));
            }
        }
        Ok(result) => {
            let status = Status::unavailable(format!(
                "shard {shard} could not apply the batch: {}",
                result.error
            ));
            for reply in replies {
                let _ = reply.send(Err(status.clone()));
            }
        }
        Err(status) => {
            for reply in replies {
                let _ = reply.send(Err(status.clone()));
            }
        }
    }
}

/// `view_of` borrows a decoded request as a [`WriteView`] (requests that
/// reach the write path as prost messages: remote write, the alerting
/// series, and `Ingest.Write` bytes the view parser refused).
pub(crate) fn view_of(req: &pb::WriteRequest) -> WriteView<'_> {
    let mut batch = SeriesBatch::default();
    for s in &req.series {
        batch.push_series(
            s.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
            s.samples.iter().map(|x| (x.timestamp_ms, x.value)),
        );
    }
    WriteView {
        request_id: &req.request_id,
        shard_map_epoch: req.shard_map_epoch,
        shard: req.shard,
        batch,
    }
}
