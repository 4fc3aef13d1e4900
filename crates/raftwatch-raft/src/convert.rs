//! Protobuf ⇄ openraft conversions for the Raft transport and the WAL.
//!
//! Encoding (`*_to_proto`) is total. Decoding (`*_from_proto`) takes bytes
//! that came from the network or from disk, so it never panics: every
//! missing or inconsistent field is a [`ConvertError`]. Decoders also check
//! the invariants openraft assumes of its inputs and would otherwise assert
//! on (a membership whose voters all have addresses, entries with
//! consecutive indices), so a forged message is refused here rather than
//! crashing a Raft core.
//!
//! The WAL stores each entry as a prost-encoded `raftwatch.v1.Entry`
//! ([`encode_entry`] / [`decode_entry`]). The encoding is deterministic:
//! memberships list their nodes in ascending node id order (no protobuf
//! maps, whose prost decoding is a `HashMap`).

use std::collections::{BTreeMap, BTreeSet};

use openraft::EntryPayload;
use openraft::errors::{ForwardReason, ForwardToLeader, LinearizableReadError, QuorumNotEnough};
use openraft::impls::leader_id_adv::LeaderId;
use openraft::raft::linearizable_read::ReadLogId;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderError,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use prost::Message;
use raftwatch_proto::v1 as pb;

use crate::types::{
    Entry, GroupId, LogId, NodeAddr, Request, SnapshotMeta, StoredMembership, TypeConfig, Vote,
};

/// `Membership` is openraft's membership with our node types.
pub type Membership = openraft::Membership<u64, NodeAddr>;

/// `ConvertError` is why a protobuf message could not become an openraft
/// value. It is always the sender's fault (or the disk's): callers map it
/// to `invalid_argument` on the wire and to a corruption error in the WAL.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A required message field was absent.
    #[error("missing field {0}")]
    Missing(&'static str),
    /// A field was present but its value is not acceptable.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// `what` names the field or message.
        what: &'static str,
        /// `reason` says what is wrong with it.
        reason: String,
    },
}

fn invalid(what: &'static str, reason: impl Into<String>) -> ConvertError {
    ConvertError::Invalid {
        what,
        reason: reason.into(),
    }
}

// ------------------------------------------------------------------ ids

fn leader_id_to_proto(l: &LeaderId<u64, u64>) -> pb::LeaderId {
    pb::LeaderId {
        term: l.term,
        node_id: l.node_id,
    }
}

fn leader_id_from_proto(l: pb::LeaderId) -> LeaderId<u64, u64> {
    LeaderId {
        term: l.term,
        node_id: l.node_id,
    }
}

/// `log_id_to_proto` encodes a log id.
pub fn log_id_to_proto(id: &LogId) -> pb::LogId {
    pb::LogId {
        leader_id: Some(leader_id_to_proto(&id.leader_id)),
        index: id.index,
    }
}

/// `log_id_from_proto` decodes a log id; its leader id is required.
pub fn log_id_from_proto(id: pb::LogId) -> Result<LogId, ConvertError> {
    let leader_id = id
        .leader_id
        .ok_or(ConvertError::Missing("LogId.leader_id"))?;
    Ok(LogId::new(leader_id_from_proto(leader_id), id.index))
}

/// `opt_log_id_to_proto` encodes an optional log id: `None` (an empty
/// log) is an absent field.
pub fn opt_log_id_to_proto(id: Option<&LogId>) -> Option<pb::LogId> {
    id.map(log_id_to_proto)
}

/// `opt_log_id_from_proto` decodes an optional log id field.
pub fn opt_log_id_from_proto(id: Option<pb::LogId>) -> Result<Option<LogId>, ConvertError> {
    id.map(log_id_from_proto).transpose()
}

/// `vote_to_proto` encodes a vote.
pub fn vote_to_proto(v: &Vote) -> pb::Vote {
    pb::Vote {
        leader_id: Some(leader_id_to_proto(&v.leader_id)),
        committed: v.committed,
    }
}

/// `vote_from_proto` decodes a vote; its leader id is required.
pub fn vote_from_proto(v: pb::Vote) -> Result<Vote, ConvertError> {
    let leader_id = v.leader_id.ok_or(ConvertError::Missing("Vote.leader_id"))?;
    Ok(Vote {
        leader_id: leader_id_from_proto(leader_id),
        committed: v.committed,
    })
}

fn required_vote(v: Option<pb::Vote>, field: &'static str) -> Result<Vote, ConvertError> {
    vote_from_proto(v.ok_or(ConvertError::Missing(field))?)
}

// ------------------------------------------------------------ membership

/// `membership_to_proto` encodes a (possibly joint) membership; nodes are
/// listed in ascending node id order.
pub fn membership_to_proto(m: &Membership) -> pb::Membership {
    pb::Membership {
        configs: m
            .get_joint_config()
            .iter()
            .map(|c| pb::VoterSet {
                node_ids: c.iter().copied().collect(),
            })
            .collect(),
        nodes: m
            .nodes()
            .map(|(id, n)| pb::Member {
                node_id: *id,
                node: Some(pb::Node {
                    grpc_addr: n.grpc_addr.clone(),
                }),
            })
            .collect(),
    }
}

/// `membership_from_proto` decodes a membership. It refuses a voter set
/// with a repeated node id, a node listed twice, an empty voter set and a
/// voter without an address: openraft assumes none of them happens.
pub fn membership_from_proto(m: pb::Membership) -> Result<Membership, ConvertError> {
    let mut configs = Vec::with_capacity(m.configs.len());
    for set in m.configs {
        let mut ids = BTreeSet::new();
        for id in set.node_ids {
            if !ids.insert(id) {
                return Err(invalid(
                    "Membership.configs",
                    format!("node {id} repeated in a voter set"),
                ));
            }
        }
        configs.push(ids);
    }
    let mut nodes = BTreeMap::new();
    for member in m.nodes {
        let node = member.node.ok_or(ConvertError::Missing("Member.node"))?;
        let addr = NodeAddr {
            grpc_addr: node.grpc_addr,
        };
        if nodes.insert(member.node_id, addr).is_some() {
            return Err(invalid(
                "Membership.nodes",
                format!("node {} listed twice", member.node_id),
            ));
        }
    }
    Membership::new(configs, nodes).map_err(|e| invalid("Membership", e.to_string()))
}

/// `stored_membership_to_proto` encodes a membership with the log id that
/// introduced it.
pub fn stored_membership_to_proto(m: &StoredMembership) -> pb::StoredMembership {
    pb::StoredMembership {
        log_id: opt_log_id_to_proto(m.log_id().as_ref()),
        membership: Some(membership_to_proto(m.membership())),
    }
}

/// `stored_membership_from_proto` decodes a stored membership; the
/// membership is required, the log id is absent for the initial one.
pub fn stored_membership_from_proto(
    m: pb::StoredMembership,
) -> Result<StoredMembership, ConvertError> {
    let log_id = opt_log_id_from_proto(m.log_id)?;
    let membership = membership_from_proto(
        m.membership
            .ok_or(ConvertError::Missing("StoredMembership.membership"))?,
    )?;
    Ok(StoredMembership::new(log_id, membership))
}

// ---------------------------------------------------------------- entries

/// `entry_into_proto` encodes an entry, moving its payload bytes.
pub fn entry_into_proto(e: Entry) -> pb::Entry {
    let payload = match e.payload {
        EntryPayload::Blank => pb::entry::Payload::Blank(pb::Empty {}),
        EntryPayload::Normal(Request(bytes)) => pb::entry::Payload::Normal(bytes),
        EntryPayload::Membership(m) => pb::entry::Payload::Membership(membership_to_proto(&m)),
    };
    pb::Entry {
        log_id: Some(log_id_to_proto(&e.log_id)),
        payload: Some(payload),
    }
}

/// `entry_to_proto` encodes an entry.
pub fn entry_to_proto(e: &Entry) -> pb::Entry {
    entry_into_proto(e.clone())
}

/// `entry_from_proto` decodes an entry; its log id and payload are
/// required.
pub fn entry_from_proto(e: pb::Entry) -> Result<Entry, ConvertError> {
    let log_id = log_id_from_proto(e.log_id.ok_or(ConvertError::Missing("Entry.log_id"))?)?;
    let payload = match e.payload.ok_or(ConvertError::Missing("Entry.payload"))? {
        pb::entry::Payload::Blank(pb::Empty {}) => EntryPayload::Blank,
        pb::entry::Payload::Normal(bytes) => EntryPayload::Normal(Request(bytes)),
        pb::entry::Payload::Membership(m) => EntryPayload::Membership(membership_from_proto(m)?),
    };
    Ok(Entry { log_id, payload })
}

/// `encode_entry` is the WAL payload of an entry: a prost-encoded
/// `raftwatch.v1.Entry`. The same entry always encodes to the same bytes.
pub fn encode_entry(e: &Entry) -> Vec<u8> {
    entry_to_proto(e).encode_to_vec()
}

/// `decode_entry` reverses [`encode_entry`]; malformed bytes are an error,
/// never a panic.
pub fn decode_entry(bytes: &[u8]) -> Result<Entry, ConvertError> {
    let e = pb::Entry::decode(bytes).map_err(|err| invalid("Entry", err.to_string()))?;
    entry_from_proto(e)
}

/// `check_entries` checks what openraft assumes of a batch of entries that
/// follows `prev`: indices consecutive from `prev.index + 1` (from 0 when
/// `prev` is `None`) and log ids increasing.
fn check_entries(prev: Option<&LogId>, entries: &[Entry]) -> Result<(), ConvertError> {
    let mut last = prev.copied();
    for e in entries {
        let want = last.map_or(0, |l| l.index + 1);
        if e.log_id.index != want {
            return Err(invalid(
                "AppendEntriesRequest.entries",
                format!("entry index {} where {want} was expected", e.log_id.index),
            ));
        }
        if let Some(l) = last
            && e.log_id.leader_id < l.leader_id
        {
            return Err(invalid(
                "AppendEntriesRequest.entries",
                format!("log id {} goes back from {}", e.log_id, l),
            ));
        }
        last = Some(e.log_id);
    }
    Ok(())
}

// --------------------------------------------------------- append entries

/// `append_entries_request_to_proto` encodes a request for `group`, moving
/// the entries' payloads.
pub fn append_entries_request_to_proto(
    group: GroupId,
    r: AppendEntriesRequest<TypeConfig>,
) -> pb::AppendEntriesRequest {
    pb::AppendEntriesRequest {
        group_id: group.0,
        vote: Some(vote_to_proto(&r.vote)),
        prev_log_id: opt_log_id_to_proto(r.prev_log_id.as_ref()),
        entries: r.entries.into_iter().map(entry_into_proto).collect(),
        leader_commit: opt_log_id_to_proto(r.leader_commit.as_ref()),
    }
}

/// `append_entries_request_from_proto` decodes a request and the group it
/// is for. Entries must follow `prev_log_id` consecutively.
pub fn append_entries_request_from_proto(
    r: pb::AppendEntriesRequest,
) -> Result<(GroupId, AppendEntriesRequest<TypeConfig>), ConvertError> {
    let vote = required_vote(r.vote, "AppendEntriesRequest.vote")?;
    let prev_log_id = opt_log_id_from_proto(r.prev_log_id)?;
    let entries = r
        .entries
        .into_iter()
        .map(entry_from_proto)
        .collect::<Result<Vec<_>, _>>()?;
    check_entries(prev_log_id.as_ref(), &entries)?;
    let leader_commit = opt_log_id_from_proto(r.leader_commit)?;
    Ok((
        GroupId(r.group_id),
        AppendEntriesRequest {
            vote,
            prev_log_id,
            entries,
            leader_commit,
        },
    ))
}

/// `append_entries_response_to_proto` encodes a response.
pub fn append_entries_response_to_proto(
    r: &AppendEntriesResponse<TypeConfig>,
) -> pb::AppendEntriesResponse {
    use pb::append_entries_response::Result as R;
    let result = match r {
        AppendEntriesResponse::Success => R::Success(pb::Empty {}),
        AppendEntriesResponse::PartialSuccess(id) => R::PartialSuccess(pb::PartialSuccess {
            log_id: opt_log_id_to_proto(id.as_ref()),
        }),
        AppendEntriesResponse::Conflict => R::Conflict(pb::Empty {}),
        AppendEntriesResponse::HigherVote(v) => R::HigherVote(vote_to_proto(v)),
    };
    pb::AppendEntriesResponse {
        result: Some(result),
    }
}

/// `append_entries_response_from_proto` decodes a response.
pub fn append_entries_response_from_proto(
    r: pb::AppendEntriesResponse,
) -> Result<AppendEntriesResponse<TypeConfig>, ConvertError> {
    use pb::append_entries_response::Result as R;
    Ok(
        match r
            .result
            .ok_or(ConvertError::Missing("AppendEntriesResponse.result"))?
        {
            R::Success(pb::Empty {}) => AppendEntriesResponse::Success,
            R::PartialSuccess(p) => {
                AppendEntriesResponse::PartialSuccess(opt_log_id_from_proto(p.log_id)?)
            }
            R::Conflict(pb::Empty {}) => AppendEntriesResponse::Conflict,
            R::HigherVote(v) => AppendEntriesResponse::HigherVote(vote_from_proto(v)?),
        },
    )
}

// ------------------------------------------------------------------- vote

/// `vote_request_to_proto` encodes a vote or pre-vote request for `group`.
pub fn vote_request_to_proto(group: GroupId, r: &VoteRequest<TypeConfig>) -> pb::VoteRequest {
    pb::VoteRequest {
        group_id: group.0,
        vote: Some(vote_to_proto(&r.vote)),
        last_log_id: opt_log_id_to_proto(r.last_log_id.as_ref()),
        leadership_transfer: r.leadership_transfer,
    }
}

/// `vote_request_from_proto` decodes a vote or pre-vote request and its
/// group.
pub fn vote_request_from_proto(
    r: pb::VoteRequest,
) -> Result<(GroupId, VoteRequest<TypeConfig>), ConvertError> {
    let vote = required_vote(r.vote, "VoteRequest.vote")?;
    let mut req = VoteRequest::new(vote, opt_log_id_from_proto(r.last_log_id)?);
    req.leadership_transfer = r.leadership_transfer;
    Ok((GroupId(r.group_id), req))
}

/// `vote_response_to_proto` encodes a vote or pre-vote response.
pub fn vote_response_to_proto(r: &VoteResponse<TypeConfig>) -> pb::VoteResponse {
    pb::VoteResponse {
        vote: Some(vote_to_proto(&r.vote)),
        vote_granted: r.vote_granted,
        last_log_id: opt_log_id_to_proto(r.last_log_id.as_ref()),
    }
}

/// `vote_response_from_proto` decodes a vote or pre-vote response.
pub fn vote_response_from_proto(
    r: pb::VoteResponse,
) -> Result<VoteResponse<TypeConfig>, ConvertError> {
    let vote = required_vote(r.vote, "VoteResponse.vote")?;
    Ok(VoteResponse::new(
        vote,
        opt_log_id_from_proto(r.last_log_id)?,
        r.vote_granted,
    ))
}

// --------------------------------------------------------------- snapshot

/// `snapshot_header_to_proto` encodes the first message of a snapshot
/// stream: who sends it (`vote`), what it covers (`meta`) and how many
/// data bytes follow.
pub fn snapshot_header_to_proto(
    group: GroupId,
    vote: &Vote,
    meta: &SnapshotMeta,
    size_bytes: u64,
) -> pb::SnapshotHeader {
    pb::SnapshotHeader {
        group_id: group.0,
        vote: Some(vote_to_proto(vote)),
        last_log_id: opt_log_id_to_proto(meta.last_log_id.as_ref()),
        last_membership: Some(stored_membership_to_proto(&meta.last_membership)),
        snapshot_id: meta
            .last_log_id
            .map_or_else(|| "empty".to_string(), |l| l.to_string()),
        size_bytes,
    }
}

/// `SnapshotHeader` is a decoded snapshot stream header.
#[derive(Debug, Clone)]
pub struct SnapshotHeader {
    /// `group` is the group the snapshot is for.
    pub group: GroupId,
    /// `vote` is the sending leader's vote.
    pub vote: Vote,
    /// `meta` says what the snapshot covers.
    pub meta: SnapshotMeta,
    /// `size_bytes` is the total length of the data chunks that follow.
    pub size_bytes: u64,
}

/// `snapshot_header_from_proto` decodes a snapshot header. Besides field
/// presence it checks what can be checked without the receiver's state:
/// the snapshot covers at least one entry, its membership is not newer
/// than its last log id, and its last log id is not beyond the sender's
/// leadership (openraft's `install_full_snapshot` panics on that).
pub fn snapshot_header_from_proto(h: pb::SnapshotHeader) -> Result<SnapshotHeader, ConvertError> {
    let vote = required_vote(h.vote, "SnapshotHeader.vote")?;
    let last_log_id = log_id_from_proto(
        h.last_log_id
            .ok_or(ConvertError::Missing("SnapshotHeader.last_log_id"))?,
    )?;
    let last_membership = stored_membership_from_proto(
        h.last_membership
            .ok_or(ConvertError::Missing("SnapshotHeader.last_membership"))?,
    )?;
    if let Some(m) = last_membership.log_id()
        && *m > last_log_id
    {
        return Err(invalid(
            "SnapshotHeader.last_membership",
            format!("membership log id {m} is beyond the snapshot's last log id {last_log_id}"),
        ));
    }
    if last_log_id.leader_id > vote.leader_id {
        return Err(invalid(
            "SnapshotHeader.last_log_id",
            format!(
                "last log id {last_log_id} is beyond the sender's leadership {}",
                vote.leader_id
            ),
        ));
    }
    Ok(SnapshotHeader {
        group: GroupId(h.group_id),
        vote,
        meta: SnapshotMeta {
            last_log_id: Some(last_log_id),
            last_membership,
        },
        size_bytes: h.size_bytes,
    })
}

/// `snapshot_response_to_proto` encodes a snapshot response.
pub fn snapshot_response_to_proto(r: &SnapshotResponse<TypeConfig>) -> pb::SnapshotResponse {
    pb::SnapshotResponse {
        vote: Some(vote_to_proto(&r.vote)),
    }
}

/// `snapshot_response_from_proto` decodes a snapshot response.
pub fn snapshot_response_from_proto(
    r: pb::SnapshotResponse,
) -> Result<SnapshotResponse<TypeConfig>, ConvertError> {
    Ok(SnapshotResponse::new(required_vote(
        r.vote,
        "SnapshotResponse.vote",
    )?))
}

// -------------------------------------------------------- transfer leader

/// `transfer_leader_request_to_proto` encodes a transfer for `group`.
pub fn transfer_leader_request_to_proto(
    group: GroupId,
    r: &TransferLeaderRequest<TypeConfig>,
) -> pb::TransferLeaderRequest {
    pb::TransferLeaderRequest {
        group_id: group.0,
        from_leader: Some(vote_to_proto(r.from_leader())),
        to_node_id: *r.to_node_id(),
        last_log_id: opt_log_id_to_proto(r.last_log_id()),
    }
}

/// `transfer_leader_request_from_proto` decodes a transfer and its group.
pub fn transfer_leader_request_from_proto(
    r: pb::TransferLeaderRequest,
) -> Result<(GroupId, TransferLeaderRequest<TypeConfig>), ConvertError> {
    let from = required_vote(r.from_leader, "TransferLeaderRequest.from_leader")?;
    let last = opt_log_id_from_proto(r.last_log_id)?;
    Ok((
        GroupId(r.group_id),
        TransferLeaderRequest::new(from, r.to_node_id, last),
    ))
}

/// `transfer_leader_response_to_proto` encodes the target's answer.
pub fn transfer_leader_response_to_proto(
    r: &TransferLeaderResponse<TypeConfig>,
) -> pb::TransferLeaderResponse {
    use pb::transfer_leader_response::Result as R;
    let result = match r {
        Ok(()) => R::Ok(pb::Empty {}),
        Err(TransferLeaderError::VoteChanged { expected, actual }) => {
            R::VoteChanged(pb::VoteChanged {
                expected: Some(vote_to_proto(expected)),
                actual: Some(vote_to_proto(actual)),
            })
        }
        Err(TransferLeaderError::LogNotFlushed { expected, actual }) => {
            R::LogNotFlushed(pb::LogNotFlushed {
                expected: opt_log_id_to_proto(expected.as_ref()),
                actual: opt_log_id_to_proto(actual.as_ref()),
            })
        }
    };
    pb::TransferLeaderResponse {
        result: Some(result),
    }
}

/// `transfer_leader_response_from_proto` decodes the target's answer.
pub fn transfer_leader_response_from_proto(
    r: pb::TransferLeaderResponse,
) -> Result<TransferLeaderResponse<TypeConfig>, ConvertError> {
    use pb::transfer_leader_response::Result as R;
    Ok(
        match r
            .result
            .ok_or(ConvertError::Missing("TransferLeaderResponse.result"))?
        {
            R::Ok(pb::Empty {}) => Ok(()),
            R::VoteChanged(v) => Err(TransferLeaderError::VoteChanged {
                expected: required_vote(v.expected, "VoteChanged.expected")?,
                actual: required_vote(v.actual, "VoteChanged.actual")?,
            }),
            R::LogNotFlushed(l) => Err(TransferLeaderError::LogNotFlushed {
                expected: opt_log_id_from_proto(l.expected)?,
                actual: opt_log_id_from_proto(l.actual)?,
            }),
        },
    )
}

// ------------------------------------------------------------- read index

/// `ReadIndexResult` is what a leader answers a follower's ReadIndex
/// request with: the log id to wait for, or why it cannot give one.
pub type ReadIndexResult = Result<ReadLogId<TypeConfig>, LinearizableReadError<TypeConfig>>;

fn forward_reason_to_proto(r: ForwardReason) -> pb::ForwardReason {
    match r {
        ForwardReason::NotLeader => pb::ForwardReason::NotLeader,
        ForwardReason::LeadershipTransfer => pb::ForwardReason::LeadershipTransfer,
        ForwardReason::LeaseExpired => pb::ForwardReason::LeaseExpired,
    }
}

fn forward_reason_from_proto(r: i32) -> Result<ForwardReason, ConvertError> {
    match pb::ForwardReason::try_from(r) {
        Ok(pb::ForwardReason::NotLeader) => Ok(ForwardReason::NotLeader),
        Ok(pb::ForwardReason::LeadershipTransfer) => Ok(ForwardReason::LeadershipTransfer),
        Ok(pb::ForwardReason::LeaseExpired) => Ok(ForwardReason::LeaseExpired),
        Err(_) => Err(invalid(
            "ForwardToLeader.reason",
            format!("unknown value {r}"),
        )),
    }
}

/// `forward_to_leader_to_proto` encodes a "not the leader" answer.
pub fn forward_to_leader_to_proto(f: &ForwardToLeader<TypeConfig>) -> pb::ForwardToLeader {
    pb::ForwardToLeader {
        leader_id: f.leader_id,
        leader_node: f.leader_node.as_ref().map(|n| pb::Node {
            grpc_addr: n.grpc_addr.clone(),
        }),
        reason: forward_reason_to_proto(f.reason) as i32,
    }
}

/// `forward_to_leader_from_proto` decodes a "not the leader" answer.
pub fn forward_to_leader_from_proto(
    f: pb::ForwardToLeader,
) -> Result<ForwardToLeader<TypeConfig>, ConvertError> {
    Ok(ForwardToLeader {
        leader_id: f.leader_id,
        leader_node: f.leader_node.map(|n| NodeAddr {
            grpc_addr: n.grpc_addr,
        }),
        reason: forward_reason_from_proto(f.reason)?,
    })
}

/// `read_index_response_to_proto` encodes a leader's ReadIndex answer.
pub fn read_index_response_to_proto(r: &ReadIndexResult) -> pb::ReadIndexResponse {
    use pb::read_index_response::Result as R;
    let result = match r {
        Ok(read) => R::ReadLogId(log_id_to_proto(read.log_id())),
        Err(LinearizableReadError::ForwardToLeader(f)) => {
            R::ForwardToLeader(forward_to_leader_to_proto(f))
        }
        Err(LinearizableReadError::QuorumNotEnough(q)) => R::QuorumNotEnough(pb::QuorumNotEnough {
            cluster: q.cluster.clone(),
            got: q.got.iter().copied().collect(),
        }),
    };
    pb::ReadIndexResponse {
        result: Some(result),
    }
}

/// `read_index_response_from_proto` decodes a leader's ReadIndex answer.
pub fn read_index_response_from_proto(
    r: pb::ReadIndexResponse,
) -> Result<ReadIndexResult, ConvertError> {
    use pb::read_index_response::Result as R;
    Ok(
        match r
            .result
            .ok_or(ConvertError::Missing("ReadIndexResponse.result"))?
        {
            R::ReadLogId(id) => Ok(ReadLogId::from_log_id(log_id_from_proto(id)?)),
            R::ForwardToLeader(f) => Err(LinearizableReadError::ForwardToLeader(
                forward_to_leader_from_proto(f)?,
            )),
            R::QuorumNotEnough(q) => Err(LinearizableReadError::QuorumNotEnough(QuorumNotEnough {
                cluster: q.cluster,
                got: q.got.into_iter().collect(),
            })),
        },
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn leader_id() -> impl Strategy<Value = LeaderId<u64, u64>> {
        (0u64..6, 0u64..6).prop_map(|(term, node_id)| LeaderId { term, node_id })
    }

    fn log_id() -> impl Strategy<Value = LogId> {
        (leader_id(), 0u64..1_000).prop_map(|(l, i)| LogId::new(l, i))
    }

    fn vote() -> impl Strategy<Value = Vote> {
        (leader_id(), any::<bool>()).prop_map(|(leader_id, committed)| Vote {
            leader_id,
            committed,
        })
    }

    /// Memberships of one config or a joint of two, plus learners.
    fn membership() -> impl Strategy<Value = Membership> {
        let set = prop::collection::btree_set(0u64..8, 1..4);
        (
            prop::collection::vec(set, 0..3),
            prop::collection::btree_set(8u64..12, 0..3),
            "[a-z0-9.:]{0,12}",
        )
            .prop_map(|(configs, learners, addr)| {
                let nodes: BTreeMap<u64, NodeAddr> = configs
                    .iter()
                    .flatten()
                    .chain(learners.iter())
                    .map(|id| {
                        (
                            *id,
                            NodeAddr {
                                grpc_addr: format!("{addr}{id}"),
                            },
                        )
                    })
                    .collect();
                Membership::new(configs, nodes).expect("voters all have nodes")
            })
    }

    fn entry() -> impl Strategy<Value = Entry> {
        let payload = prop_oneof![
            Just(EntryPayload::Blank),
            prop::collection::vec(any::<u8>(), 0..64)
                .prop_map(|b| EntryPayload::Normal(Request(b))),
            membership().prop_map(EntryPayload::Membership),
        ];
        (log_id(), payload).prop_map(|(log_id, payload)| Entry { log_id, payload })
    }

    proptest! {
        #[test]
        fn entry_round_trips(e in entry()) {
            prop_assert_eq!(&entry_from_proto(entry_to_proto(&e)).unwrap(), &e);
            let bytes = encode_entry(&e);
            prop_assert_eq!(&decode_entry(&bytes).unwrap(), &e);
            // Deterministic: the same entry always gives the same bytes.
            prop_assert_eq!(encode_entry(&e), bytes);
        }

        #[test]
        fn stored_membership_round_trips(id in prop::option::of(log_id()), m in membership()) {
            let sm = StoredMembership::new(id, m);
            prop_assert_eq!(stored_membership_from_proto(stored_membership_to_proto(&sm)).unwrap(), sm);
        }

        #[test]
        fn vote_and_log_id_round_trip(v in vote(), id in log_id()) {
            prop_assert_eq!(vote_from_proto(vote_to_proto(&v)).unwrap(), v);
            prop_assert_eq!(log_id_from_proto(log_id_to_proto(&id)).unwrap(), id);
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_entry(&bytes);
            if let Ok(m) = pb::Membership::decode(bytes.as_slice()) {
                let _ = membership_from_proto(m);
            }
            if let Ok(r) = pb::AppendEntriesRequest::decode(bytes.as_slice()) {
                let _ = append_entries_request_from_proto(r);
            }
            if let Ok(h) = pb::SnapshotHeader::decode(bytes.as_slice()) {
                let _ = snapshot_header_from_proto(h);
            }
            if let Ok(r) = pb::ReadIndexResponse::decode(bytes.as_slice()) {
                let _ = read_index_response_from_proto(r);
            }
        }

        #[test]
        fn vote_messages_round_trip(
            g in any::<u64>(), v in vote(), last in prop::option::of(log_id()),
            granted in any::<bool>(), transfer in any::<bool>(),
        ) {
            let mut req = VoteRequest::<TypeConfig>::new(v, last);
            req.leadership_transfer = transfer;
            let (g2, req2) = vote_request_from_proto(vote_request_to_proto(GroupId(g), &req)).unwrap();
            prop_assert_eq!(g2, GroupId(g));
            prop_assert_eq!(req2, req);
            let resp = VoteResponse::<TypeConfig>::new(v, last, granted);
            prop_assert_eq!(vote_response_from_proto(vote_response_to_proto(&resp)).unwrap(), resp);
        }

        #[test]
        fn append_entries_round_trips(
            g in any::<u64>(), v in vote(), prev in prop::option::of(log_id()),
            n in 0usize..5, commit in prop::option::of(log_id()), payloads in prop::collection::vec(entry(), 5),
        ) {
            // Entries consecutive after `prev`, from `prev`'s leader on.
            let start = prev.map_or(0, |p| p.index + 1);
            let leader = prev.map_or(v.leader_id, |p| p.leader_id);
            let entries: Vec<Entry> = payloads.into_iter().take(n).enumerate().map(|(i, e)| Entry {
                log_id: LogId::new(leader, start + i as u64),
                payload: e.payload,
            }).collect();
            let req = AppendEntriesRequest::<TypeConfig> { vote: v, prev_log_id: prev, entries, leader_commit: commit };
            let (g2, req2) = append_entries_request_from_proto(
                append_entries_request_to_proto(GroupId(g), req.clone())).unwrap();
            prop_assert_eq!(g2, GroupId(g));
            prop_assert_eq!(req2.vote, req.vote);
            prop_assert_eq!(req2.prev_log_id, req.prev_log_id);
            prop_assert_eq!(req2.entries, req.entries);
            prop_assert_eq!(req2.leader_commit, req.leader_commit);
        }
    }

    #[test]
    fn append_entries_responses_round_trip() {
        let v = Vote {
            leader_id: LeaderId {
                term: 3,
                node_id: 2,
            },
            committed: true,
        };
        let id = LogId::new(v.leader_id, 7);
        for r in [
            AppendEntriesResponse::<TypeConfig>::Success,
            AppendEntriesResponse::PartialSuccess(None),
            AppendEntriesResponse::PartialSuccess(Some(id)),
            AppendEntriesResponse::Conflict,
            AppendEntriesResponse::HigherVote(v),
        ] {
            let back =
                append_entries_response_from_proto(append_entries_response_to_proto(&r)).unwrap();
            assert_eq!(back, r);
        }
        assert!(matches!(
            append_entries_response_from_proto(pb::AppendEntriesResponse { result: None }),
            Err(ConvertError::Missing(_))
        ));
    }

    #[test]
    fn transfer_leader_and_read_index_round_trip() {
        let v = Vote {
            leader_id: LeaderId {
                term: 4,
                node_id: 1,
            },
            committed: true,
        };
        let id = LogId::new(v.leader_id, 9);
        let req = TransferLeaderRequest::<TypeConfig>::new(v, 3, Some(id));
        let (g, back) =
            transfer_leader_request_from_proto(transfer_leader_request_to_proto(GroupId(5), &req))
                .unwrap();
        assert_eq!((g, back), (GroupId(5), req));
        for r in [
            Ok(()),
            Err(TransferLeaderError::VoteChanged {
                expected: v,
                actual: Vote {
                    committed: false,
                    ..v
                },
            }),
            Err(TransferLeaderError::LogNotFlushed {
                expected: Some(id),
                actual: None,
            }),
        ] {
            let back: TransferLeaderResponse<TypeConfig> =
                transfer_leader_response_from_proto(transfer_leader_response_to_proto(&r)).unwrap();
            assert_eq!(back, r);
        }

        let ok: ReadIndexResult = Ok(ReadLogId::from_log_id(id));
        let back = read_index_response_from_proto(read_index_response_to_proto(&ok)).unwrap();
        assert_eq!(back.unwrap().log_id(), &id);
        let fwd: ReadIndexResult = Err(LinearizableReadError::ForwardToLeader(ForwardToLeader {
            leader_id: Some(2),
            leader_node: Some(NodeAddr {
                grpc_addr: "10.0.0.2:7000".into(),
            }),
            reason: ForwardReason::LeaseExpired,
        }));
        let back = read_index_response_from_proto(read_index_response_to_proto(&fwd)).unwrap();
        match (back, fwd) {
            (
                Err(LinearizableReadError::ForwardToLeader(a)),
                Err(LinearizableReadError::ForwardToLeader(b)),
            ) => assert_eq!(a, b),
            other => panic!("not a forward: {other:?}"),
        }
    }

    #[test]
    fn invalid_inputs_are_refused() {
        // A voter without an address.
        let m = pb::Membership {
            configs: vec![pb::VoterSet { node_ids: vec![1] }],
            nodes: vec![],
        };
        assert!(matches!(
            membership_from_proto(m),
            Err(ConvertError::Invalid { .. })
        ));
        // A node listed twice.
        let member = pb::Member {
            node_id: 1,
            node: Some(pb::Node::default()),
        };
        let m = pb::Membership {
            configs: vec![pb::VoterSet { node_ids: vec![1] }],
            nodes: vec![member.clone(), member],
        };
        assert!(matches!(
            membership_from_proto(m),
            Err(ConvertError::Invalid { .. })
        ));
        // An entry without a payload.
        let e = pb::Entry {
            log_id: Some(pb::LogId::default()),
            payload: None,
        };
        assert!(matches!(entry_from_proto(e), Err(ConvertError::Missing(_))));
        // Entries with a gap.
        let entry = |index| pb::Entry {
            log_id: Some(pb::LogId {
                leader_id: Some(pb::LeaderId::default()),
                index,
            }),
            payload: Some(pb::entry::Payload::Blank(pb::Empty {})),
        };
        let r = pb::AppendEntriesRequest {
            group_id: 1,
            vote: Some(pb::Vote {
                leader_id: Some(pb::LeaderId::default()),
                committed: true,
            }),
            prev_log_id: None,
            entries: vec![entry(0), entry(2)],
            leader_commit: None,
        };
        assert!(matches!(
            append_entries_request_from_proto(r),
            Err(ConvertError::Invalid { .. })
        ));
        // A snapshot beyond the sender's leadership, and one without a last log id.
        let vote = pb::Vote {
            leader_id: Some(pb::LeaderId {
                term: 1,
                node_id: 1,
            }),
            committed: true,
        };
        let header = pb::SnapshotHeader {
            group_id: 1,
            vote: Some(vote),
            last_log_id: Some(pb::LogId {
                leader_id: Some(pb::LeaderId {
                    term: 2,
                    node_id: 1,
                }),
                index: 5,
            }),
            last_membership: Some(pb::StoredMembership {
                log_id: None,
                membership: Some(pb::Membership::default()),
            }),
            snapshot_id: String::new(),
            size_bytes: 0,
        };
        assert!(matches!(
            snapshot_header_from_proto(header.clone()),
            Err(ConvertError::Invalid { .. })
        ));
        let header = pb::SnapshotHeader {
            last_log_id: None,
            ..header
        };
        assert!(matches!(
            snapshot_header_from_proto(header),
            Err(ConvertError::Missing(_))
        ));
        // Truncated bytes.
        let e = Entry {
            log_id: LogId::new(
                LeaderId {
                    term: 1,
                    node_id: 1,
                },
                3,
            ),
            payload: EntryPayload::Normal(Request(vec![7; 32])),
        };
        let bytes = encode_entry(&e);
        assert!(decode_entry(&bytes[..bytes.len() - 1]).is_err());
    }
}
