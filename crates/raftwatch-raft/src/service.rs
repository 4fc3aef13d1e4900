//! The tonic server side of the Raft transport: one `raftwatch.v1.Raft`
//! service per node, dispatching every request to its group by the group
//! id it carries.
//!
//! Every request is decoded with [`crate::convert`] (a malformed message is
//! `invalid_argument`, never a panic); an unknown group id is `not_found`;
//! a stopped Raft group (openraft's `Fatal`) is `unavailable`. Answers that
//! openraft models as values (a refused vote, a conflicting append, a
//! refused transfer, "not the leader" for ReadIndex) travel as response
//! fields, not as errors.
//!
//! Snapshots arrive as a client stream: a header, then data chunks whose
//! lengths add up to the header's `size_bytes`, which may not exceed the
//! service's `snapshot_bytes_max`. The snapshot is checked against the
//! receiver's committed log before it reaches openraft, whose
//! `install_full_snapshot` panics on an inconsistent snapshot.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use openraft::ReadPolicy;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{Fatal, RaftError};
use raftwatch_proto::v1 as pb;
use raftwatch_proto::v1::raft_server::{Raft, RaftServer};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::convert::{self, ConvertError};
use crate::network::MESSAGE_BYTES_MAX_DEFAULT;
use crate::quiesce::Quiescence;
use crate::types::{GroupId, GroupRaft, Snapshot, TypeConfig};

/// `Registry` is the set of groups a node hosts, shared by the host (which
/// adds and removes groups) and the service (which looks them up).
pub type Registry = Arc<RwLock<BTreeMap<GroupId, GroupRaft>>>;

/// `SNAPSHOT_CHUNK_IDLE_TIMEOUT_DEFAULT` is how long the service waits for
/// the next message of a snapshot stream before giving up on it.
pub const SNAPSHOT_CHUNK_IDLE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// `SNAPSHOT_PREALLOC_BYTES_MAX` caps the buffer reserved up front from a
/// header's declared size: the size is checked against the limit, but the
/// bytes may never come.
const SNAPSHOT_PREALLOC_BYTES_MAX: u64 = 16 << 20;

/// `RaftService` serves the Raft transport for every group in its
/// [`Registry`].
#[derive(Debug, Clone)]
pub struct RaftService {
    registry: Registry,
    snapshot_bytes_max: u64,
    message_bytes_max: usize,
    snapshot_chunk_idle_timeout: Duration,
    seed: u64,
    quiescence: Option<Arc<Quiescence>>,
    /// Serves `Heartbeats` and `ReadIndexes` (off: answers them as a node
    /// from before they existed would, `unimplemented`).
    batches: bool,
}

impl RaftService {
    /// Serves a vote or (with `pre_vote`) a pre-vote request: the same
    /// message and answer, a different openraft call.
    async fn handle_vote(
        &self,
        request: Request<pb::VoteRequest>,
        pre_vote: bool,
    ) -> Result<Response<pb::VoteResponse>, Status> {
        let (group, req) =
            convert::vote_request_from_proto(request.into_inner()).map_err(bad_request)?;
        let raft = self.group(group)?;
        if pre_vote
            && self
                .quiescence
                .as_ref()
                .is_some_and(|q| q.leader_is_live(group))
        {
            // This replica is the quiesced leader, or was quiesced by a
            // leader whose node still answers: openraft would grant the
            // pre-vote (no heartbeat renewed its leader lease), and a woken
            // replica (its node was paused, say) would depose a healthy
            // leader. Refuse it as openraft refuses one within a lease.
            let (vote, last_log_id) = crate::rt::scope(
                self.seed,
                raft.with_raft_state(|st| (*st.vote_ref(), st.log_ids.last().cloned())),
            )
            .await
            .map_err(|e| fatal(group, &e))?;
            let resp = openraft::raft::VoteResponse::new(vote, last_log_id, false);
            return Ok(Response::new(convert::vote_response_to_proto(&resp)));
        }
        let resp = if pre_vote {
            crate::rt::scope(self.seed, raft.pre_vote(req)).await
        } else {
            crate::rt::scope(self.seed, raft.vote(req)).await
        }
        .map_err(|e| raft_error(group, e))?;
        Ok(Response::new(convert::vote_response_to_proto(&resp)))
    }

    /// `new` serves the groups of `registry`, refusing snapshots larger
    /// than `snapshot_bytes_max` bytes of data.
    pub fn new(registry: Registry, snapshot_bytes_max: u64) -> Self {
        Self {
            registry,
            snapshot_bytes_max,
            message_bytes_max: MESSAGE_BYTES_MAX_DEFAULT,
            snapshot_chunk_idle_timeout: SNAPSHOT_CHUNK_IDLE_TIMEOUT_DEFAULT,
            seed: 0,
            quiescence: None,
            batches: true,
        }
    }

    /// `without_batches` answers the batch RPCs `unimplemented`, as a node
    /// of an older version does (tests of the fallback).
    #[cfg(test)]
    #[must_use]
    pub(crate) fn without_batches(mut self) -> Self {
        self.batches = false;
        self
    }

    /// `with_quiescence` serves liveness requests into `q` and lets it see
    /// entries and pre-votes ([`crate::quiesce`]). Without it, liveness
    /// requests are answered and ignored.
    #[must_use]
    pub fn with_quiescence(mut self, q: Arc<Quiescence>) -> Self {
        self.quiescence = Some(q);
        self
    }

    /// `with_message_bytes_max` sets the largest encoded request the server
    /// decodes (default [`MESSAGE_BYTES_MAX_DEFAULT`]); it must be at least
    /// the peers' `NetConfig::message_bytes_max` and their snapshot chunk
    /// size.
    #[must_use]
    pub fn with_message_bytes_max(mut self, bytes: usize) -> Self {
        self.message_bytes_max = bytes;
        self
    }

    /// `with_snapshot_chunk_idle_timeout` sets how long a snapshot stream
    /// may stay silent between messages.
    #[must_use]
    pub fn with_snapshot_chunk_idle_timeout(mut self, timeout: Duration) -> Self {
        self.snapshot_chunk_idle_timeout = timeout;
        self
    }

    /// `with_seed` sets the seed of the openraft RNG scope handlers run in
    /// (see [`crate::rt`]). The handlers only pass messages to a group's
    /// core, so the seed does not drive behaviour; the scope is there
    /// because reaching openraft's runtime outside one panics.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// `group` finds a hosted group, or answers `not_found`.
    fn group(&self, id: GroupId) -> Result<GroupRaft, Status> {
        // A poisoned lock only means a writer panicked between map
        // operations; the map itself is still consistent.
        let groups = self.registry.read().unwrap_or_else(PoisonError::into_inner);
        groups
            .get(&id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("unknown group {id}")))
    }

    /// `handle_read_index` confirms this node's leadership of `group` with
    /// a quorum and answers the read log id a follower must apply before
    /// a linearizable read (alone, or one request of a batch).
    async fn handle_read_index(&self, group: GroupId) -> Result<pb::ReadIndexResponse, Status> {
        let raft = self.group(group)?;
        let result = match crate::rt::scope(
            self.seed,
            raft.get_read_linearizer(ReadPolicy::ReadIndex),
        )
        .await
        {
            Ok(lin) => Ok(*lin.read_log_id()),
            Err(RaftError::APIError(e)) => Err(e),
            Err(RaftError::Fatal(f)) => return Err(fatal(group, &f)),
        };
        Ok(convert::read_index_response_to_proto(&result))
    }

    /// `handle_append` serves one append-entries request (alone, or one
    /// heartbeat of a batch).
    async fn handle_append(
        &self,
        request: pb::AppendEntriesRequest,
    ) -> Result<pb::AppendEntriesResponse, Status> {
        let (group, req) =
            convert::append_entries_request_from_proto(request).map_err(bad_request)?;
        let raft = self.group(group)?;
        if !req.entries.is_empty()
            && let Some(q) = &self.quiescence
        {
            q.wake_on_entries(group, &raft);
        }
        let resp = crate::rt::scope(self.seed, raft.append_entries(req))
            .await
            .map_err(|e| raft_error(group, e))?;
        Ok(convert::append_entries_response_to_proto(&resp))
    }

    async fn install_snapshot_stream(
        &self,
        mut stream: Streaming<pb::SnapshotChunk>,
    ) -> Result<pb::SnapshotResponse, Status> {
        let idle = self.snapshot_chunk_idle_timeout;
        let header = match next_chunk(&mut stream, idle).await? {
            Some(pb::SnapshotChunk {
                part: Some(pb::snapshot_chunk::Part::Header(h)),
            }) => convert::snapshot_header_from_proto(h).map_err(bad_request)?,
            Some(_) => {
                return Err(Status::invalid_argument(
                    "snapshot stream must start with a header",
                ));
            }
            None => return Err(Status::invalid_argument("empty snapshot stream")),
        };
        if header.size_bytes > self.snapshot_bytes_max {
            return Err(Status::resource_exhausted(format!(
                "snapshot of {} bytes exceeds the limit of {} bytes",
                header.size_bytes, self.snapshot_bytes_max
            )));
        }
        // Check the group before receiving the data.
        let raft = self.group(header.group)?;

        let prealloc = header.size_bytes.min(SNAPSHOT_PREALLOC_BYTES_MAX);
        let mut data = Vec::with_capacity(usize::try_from(prealloc).unwrap_or(0));
        while let Some(chunk) = next_chunk(&mut stream, idle).await? {
            let Some(pb::snapshot_chunk::Part::Data(bytes)) = chunk.part else {
                return Err(Status::invalid_argument(
                    "snapshot stream: only data may follow the header",
                ));
            };
            let total = data.len() as u64 + bytes.len() as u64;
            if total > header.size_bytes {
                return Err(Status::invalid_argument(format!(
                    "snapshot stream: more than the {} bytes the header declared",
                    header.size_bytes
                )));
            }
            data.extend_from_slice(&bytes);
        }
        if data.len() as u64 != header.size_bytes {
            return Err(Status::invalid_argument(format!(
                "snapshot stream: {} bytes received, the header declared {}",
                data.len(),
                header.size_bytes
            )));
        }

        check_snapshot_against_committed(&raft, &header)?;
        let snapshot = Snapshot {
            meta: header.meta,
            snapshot: data,
        };
        let resp = raft
            .install_full_snapshot(header.vote, snapshot)
            .await
            .map_err(|e| fatal(header.group, &e))?;
        Ok(convert::snapshot_response_to_proto(&resp))
    }
}

/// `server` wraps `service` in the generated tonic server, with the
/// decoding limit set explicitly (tonic's implicit default is 4 MiB).
pub fn server(service: RaftService) -> RaftServer<RaftService> {
    let limit = service.message_bytes_max;
    RaftServer::new(service)
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit)
}

/// `next_chunk` reads the next message of a snapshot stream, bounded by
/// `idle`.
async fn next_chunk(
    stream: &mut Streaming<pb::SnapshotChunk>,
    idle: Duration,
) -> Result<Option<pb::SnapshotChunk>, Status> {
    match tokio::time::timeout(idle, stream.next()).await {
        Err(_) => Err(Status::deadline_exceeded(format!(
            "snapshot stream idle for {idle:?}"
        ))),
        Ok(None) => Ok(None),
        Ok(Some(r)) => r.map(Some),
    }
}

/// `check_snapshot_against_committed` refuses a snapshot that openraft
/// would panic on: one beyond the locally committed log id but not at a
/// strictly greater index (it names a different entry in a committed slot,
/// or contradicts a committed suffix). The check races with commits that
/// land before the install; those only move `committed` up, which can
/// only turn the snapshot into one that is not beyond it.
fn check_snapshot_against_committed(
    raft: &GroupRaft,
    header: &convert::SnapshotHeader,
) -> Result<(), Status> {
    let committed = raft.metrics().borrow_watched().local_committed;
    if let (Some(snap), Some(committed)) = (header.meta.last_log_id, committed)
        && snap > committed
        && snap.index <= committed.index
    {
        return Err(Status::invalid_argument(format!(
            "snapshot at {snap} contradicts the committed log at {committed}"
        )));
    }
    Ok(())
}

/// `rpc_status` carries `status` inside a batch answer.
fn rpc_status(status: &Status) -> pb::RpcStatus {
    pb::RpcStatus {
        code: status.code() as i32,
        message: status.message().to_string(),
    }
}

fn bad_request(e: ConvertError) -> Status {
    Status::invalid_argument(e.to_string())
}

/// `fatal` maps a stopped group to `unavailable`: this node cannot serve
/// the group any more, which the caller treats like an unreachable peer.
fn fatal(group: GroupId, e: &Fatal<TypeConfig>) -> Status {
    Status::unavailable(format!("group {group} stopped: {e}"))
}

fn raft_error(group: GroupId, e: RaftError<TypeConfig>) -> Status {
    match e {
        RaftError::Fatal(f) => fatal(group, &f),
        // `RaftError<C>` has an uninhabited API error.
        RaftError::APIError(never) => match never {},
    }
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn append_entries(
        &self,
        request: Request<pb::AppendEntriesRequest>,
    ) -> Result<Response<pb::AppendEntriesResponse>, Status> {
        self.handle_append(request.into_inner())
            .await
            .map(Response::new)
    }

    /// Each heartbeat of the batch is served as its own `AppendEntries`
    /// would be, all of them concurrently (each waits for its group's
    /// core), and answered in the batch's order.
    async fn heartbeats(
        &self,
        request: Request<pb::HeartbeatBatch>,
    ) -> Result<Response<pb::HeartbeatResults>, Status> {
        if !self.batches {
            return Err(Status::unimplemented("Heartbeats"));
        }
        let batch = request.into_inner().heartbeats;
        let answers =
            futures::future::join_all(batch.into_iter().map(|h| self.handle_append(h))).await;
        let results = answers
            .into_iter()
            .map(|answer| pb::HeartbeatResult {
                result: Some(match answer {
                    Ok(resp) => pb::heartbeat_result::Result::Response(resp),
                    Err(status) => pb::heartbeat_result::Result::Error(rpc_status(&status)),
                }),
            })
            .collect();
        Ok(Response::new(pb::HeartbeatResults { results }))
    }

    async fn vote(
        &self,
        request: Request<pb::VoteRequest>,
    ) -> Result<Response<pb::VoteResponse>, Status> {
        self.handle_vote(request, false).await
    }

    async fn pre_vote(
        &self,
        request: Request<pb::VoteRequest>,
    ) -> Result<Response<pb::VoteResponse>, Status> {
        self.handle_vote(request, true).await
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        let resp = crate::rt::scope(
            self.seed,
            self.install_snapshot_stream(request.into_inner()),
        )
        .await?;
        Ok(Response::new(resp))
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        let (group, req) = convert::transfer_leader_request_from_proto(request.into_inner())
            .map_err(bad_request)?;
        let raft = self.group(group)?;
        let resp = crate::rt::scope(self.seed, raft.handle_transfer_leader(req))
            .await
            .map_err(|e| fatal(group, &e))?;
        Ok(Response::new(convert::transfer_leader_response_to_proto(
            &resp,
        )))
    }

    async fn liveness(
        &self,
        request: Request<pb::LivenessRequest>,
    ) -> Result<Response<pb::LivenessResponse>, Status> {
        let request = request.into_inner();
        let resp = match &self.quiescence {
            Some(q) => q.on_request(&request, &self.registry),
            None => pb::LivenessResponse {
                wake_group_ids: request.quiesced.iter().map(|g| g.group_id).collect(),
            },
        };
        Ok(Response::new(resp))
    }

    async fn read_index(
        &self,
        request: Request<pb::ReadIndexRequest>,
    ) -> Result<Response<pb::ReadIndexResponse>, Status> {
        self.handle_read_index(GroupId(request.into_inner().group_id))
            .await
            .map(Response::new)
    }

    /// Each group's ReadIndex is served as its own `ReadIndex` would be,
    /// all of them concurrently, and answered in the batch's order.
    async fn read_indexes(
        &self,
        request: Request<pb::ReadIndexBatch>,
    ) -> Result<Response<pb::ReadIndexResults>, Status> {
        if !self.batches {
            return Err(Status::unimplemented("ReadIndexes"));
        }
        let groups = request.into_inner().group_ids;
        let answers = futures::future::join_all(
            groups
                .into_iter()
                .map(|g| self.handle_read_index(GroupId(g))),
        )
        .await;
        let results = answers
            .into_iter()
            .map(|answer| pb::ReadIndexResult {
                result: Some(match answer {
                    Ok(resp) => pb::read_index_result::Result::Response(resp),
                    Err(status) => pb::read_index_result::Result::Error(rpc_status(&status)),
                }),
            })
            .collect();
        Ok(Response::new(pb::ReadIndexResults { results }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote() -> pb::Vote {
        pb::Vote {
            leader_id: Some(pb::LeaderId {
                term: 1,
                node_id: 1,
            }),
            committed: true,
        }
    }

    #[tokio::test]
    async fn unknown_group_is_not_found() {
        let svc = RaftService::new(Registry::default(), 1 << 20);
        let append = pb::AppendEntriesRequest {
            group_id: 7,
            vote: Some(vote()),
            ..Default::default()
        };
        let status = svc.append_entries(Request::new(append)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert_eq!(status.message(), "unknown group 7");
        let vote_req = pb::VoteRequest {
            group_id: 7,
            vote: Some(vote()),
            ..Default::default()
        };
        let status = svc.vote(Request::new(vote_req)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound);
        let status = svc.pre_vote(Request::new(vote_req)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound);
        let transfer = pb::TransferLeaderRequest {
            group_id: 7,
            from_leader: Some(vote()),
            to_node_id: 2,
            last_log_id: None,
        };
        let status = svc
            .transfer_leader(Request::new(transfer))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound);
        let read = pb::ReadIndexRequest { group_id: 7 };
        let status = svc.read_index(Request::new(read)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound);
    }

    #[tokio::test]
    async fn malformed_requests_are_invalid_arguments() {
        let svc = RaftService::new(Registry::default(), 1 << 20);
        // No vote.
        let append = pb::AppendEntriesRequest {
            group_id: 1,
            ..Default::default()
        };
        let status = svc.append_entries(Request::new(append)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let status = svc
            .vote(Request::new(pb::VoteRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let status = svc
            .transfer_leader(Request::new(pb::TransferLeaderRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
}
