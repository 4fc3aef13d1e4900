//! Channels to other nodes' gRPC servers (one per address, created lazily,
//! evicted on transport errors) and the mapping of errors to gRPC status.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use raftwatch_control::Refusal;
use raftwatch_raft::host::GroupError;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// The metadata key carrying the leader's gRPC address on `UNAVAILABLE`.
pub const LEADER_ADDR_KEY: &str = "raftwatch-leader-addr";
/// The metadata key carrying the node's shard-map epoch on a stale-map
/// `FAILED_PRECONDITION`.
pub const MAP_EPOCH_KEY: &str = "raftwatch-map-epoch";

/// `Clients` caches one channel per peer address.
pub struct Clients {
    dialer: raftwatch_proto::net::Dialer,
    channels: Mutex<BTreeMap<String, Channel>>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl Clients {
    /// `with_dialer` makes channels with `dialer` (real TCP, or the
    /// simulator's network), bounding every connection attempt and every
    /// request.
    pub fn with_dialer(
        dialer: raftwatch_proto::net::Dialer,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Clients {
        Clients {
            dialer,
            channels: Mutex::default(),
            connect_timeout,
            request_timeout,
        }
    }

    /// `channel` is the (lazily connecting) channel to `addr` (`host:port`).
    pub fn channel(&self, addr: &str) -> Result<Channel, Status> {
        if let Ok(map) = self.channels.lock()
            && let Some(c) = map.get(addr)
        {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::invalid_argument(format!("bad address {addr:?}: {e}")))?
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .tcp_nodelay(true);
        let channel = (self.dialer)(&endpoint);
        if let Ok(mut map) = self.channels.lock() {
            map.insert(addr.to_string(), channel.clone());
        }
        Ok(channel)
    }

    /// `evict` drops `addr`'s channel after a transport error, so the next
    /// call dials again.
    pub fn evict(&self, addr: &str) {
        if let Ok(mut map) = self.channels.lock() {
            map.remove(addr);
        }
    }
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// `leader_hint` reads the leader address a peer attached to a status.
pub fn leader_hint(status: &Status) -> Option<String> {
    status
        .metadata()
        .get(LEADER_ADDR_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `unavailable_with_leader` is `UNAVAILABLE` carrying a leader hint.
pub fn unavailable_with_leader(message: String, leader_addr: Option<&str>) -> Status {
    let mut status = Status::unavailable(message);
    if let Some(addr) = leader_addr
        && let Ok(v) = addr.parse()
    {
        status.metadata_mut().insert(LEADER_ADDR_KEY, v);
    }
    status
}

/// `group_status` maps a group error: not-leader and unavailable are
/// retryable (`UNAVAILABLE`, with the leader when known); a refused request
/// is not (`FAILED_PRECONDITION`).
pub fn group_status(e: GroupError) -> Status {
    match &e {
        GroupError::NotLeader { leader_addr, .. } => {
            unavailable_with_leader(e.to_string(), leader_addr.as_deref())
        }
        GroupError::Unavailable { .. } => Status::unavailable(e.to_string()),
        GroupError::Refused { .. } => Status::failed_precondition(e.to_string()),
    }
}

/// `refusal_status` maps a control-plane refusal to its status code.
pub fn refusal_status(r: &Refusal) -> Status {
    let code = match r {
        Refusal::NotBootstrapped => Code::Unavailable,
        Refusal::Invalid { .. } => Code::InvalidArgument,
        Refusal::UnknownNode { .. } | Refusal::UnknownShard { .. } => Code::NotFound,
        Refusal::AlreadyBootstrapped
        | Refusal::VersionMismatch { .. }
        | Refusal::ValueMismatch { .. }
        | Refusal::Precondition { .. } => Code::FailedPrecondition,
    };
    Status::new(code, r.to_string())
}

/// `channel_suspect` is whether a call that failed with `status` may have
/// failed because of its channel (a broken or stalled connection), so the
/// channel should be evicted and redialled. A timeout counts: tonic reports
/// `Endpoint::timeout` as `CANCELLED`, and a connection that lost a segment
/// or sits behind a partition times out on every call until it is dropped.
/// An answer with a leader hint came from a live peer.
pub fn channel_suspect(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
    ) && leader_hint(status).is_none()
}

/// `retryable` is whether a call that failed with `status` may succeed if
/// repeated (elsewhere or later). Defaults to no.
pub fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled
    )
}
