//! Coalescing: the same kind of small request from many groups to one
//! peer, sent as one message.
//!
//! A node hosts many groups, and one event often makes several of them
//! talk to the same peer at once: a query's linearizable reads ask each
//! shard's leader for a read index, and each of those leaders confirms its
//! leadership with a heartbeat round to its followers. One gRPC call costs
//! far more CPU (HTTP/2 framing, a task on each side, a `writev`, wake-ups)
//! than the few bytes it carries, so a [`Coalescer`] queues such requests
//! per peer and the transport ([`crate::network::Peers`]) sends what has
//! queued as one batch message, answered item by item. The first request
//! to an idle queue starts the batch; the batch leaves after a few yields
//! to the runtime, so no timer and no delay beyond that are added, and the
//! simulator's schedule stays a function of its seed. Coalescing is best
//! effort: on a multi-threaded runtime a batch may leave before a request
//! made at the same moment on another thread joins it.
//!
//! A peer that does not serve a batch message (a node of an older version
//! answers `UNIMPLEMENTED`) gets the batch resent request by request, and
//! single requests from then on, until its channel is replaced.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use raftwatch_proto::v1 as pb;
use tokio::sync::oneshot;

use crate::network::{CallFailure, Peers, TransportError};
use crate::types::NodeId;

/// `Reply` is where one queued request's answer goes.
pub(crate) type Reply<A> = oneshot::Sender<Result<A, TransportError>>;

/// `Batched` is a kind of request that can travel in batches: how one
/// goes alone, and how several go together.
pub(crate) trait Batched: Sized + Send + Sync + 'static {
    /// One request.
    type Req: Clone + Send + 'static;
    /// One answer.
    type Ans: Send + 'static;
    /// What it is, for error messages.
    const WHAT: &'static str;

    /// The peers' queues of this kind.
    fn queue(peers: &Peers) -> &Coalescer<Self>;

    /// Sends one request as its own RPC.
    fn single(
        peers: &Peers,
        target: NodeId,
        addr: &str,
        ttl: Duration,
        request: Self::Req,
    ) -> impl Future<Output = Result<Self::Ans, TransportError>> + Send;

    /// Sends several as one message: an answer (or the status its own RPC
    /// would have failed with) per request, in order; `None` for an item
    /// the peer left empty.
    #[allow(clippy::type_complexity)]
    fn batch(
        peers: &Peers,
        target: NodeId,
        addr: &str,
        ttl: Duration,
        requests: Vec<Self::Req>,
    ) -> impl Future<Output = Result<Vec<Option<Result<Self::Ans, pb::RpcStatus>>>, CallFailure>> + Send;
}

/// `Enqueued` is what [`Coalescer::enqueue`] did with a request.
pub(crate) enum Enqueued<B: Batched> {
    /// The peer does not serve the batch message: send it alone.
    Unbatched(B::Req),
    /// Queued; `lead`: this caller must start the batch.
    Waiting {
        answer: oneshot::Receiver<Result<B::Ans, TransportError>>,
        lead: bool,
    },
}

/// `Coalescer` is one kind of request's queue per peer, and its counters.
pub(crate) struct Coalescer<B: Batched> {
    queues: Mutex<BTreeMap<NodeId, Queue<B>>>,
    requests: AtomicU64,
    messages: AtomicU64,
}

struct Queue<B: Batched> {
    /// Waiting for the next batch, each with where its answer goes. Not
    /// empty exactly while a batch has been started and not yet taken.
    waiting: Vec<(B::Req, Reply<B::Ans>)>,
    /// The peer answered the batch message with `UNIMPLEMENTED` (an
    /// older node): requests go alone until its channel is replaced.
    unbatched: bool,
}

impl<B: Batched> Default for Queue<B> {
    fn default() -> Self {
        Self {
            waiting: Vec::new(),
            unbatched: false,
        }
    }
}

impl<B: Batched> Default for Coalescer<B> {
    fn default() -> Self {
        Self {
            queues: Mutex::new(BTreeMap::new()),
            requests: AtomicU64::new(0),
            messages: AtomicU64::new(0),
        }
    }
}

/// `BatchStats` counts the requests of one kind sent since start, and the
/// messages that carried them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Requests sent.
    pub requests: u64,
    /// Messages they went in: a batch is one, a lone request is one, and
    /// a batch an older peer refused is one more per request.
    pub messages: u64,
}

impl<B: Batched> Coalescer<B> {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<NodeId, Queue<B>>> {
        // A queue holds no invariant a panicking holder could break.
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `enqueue` queues `request` for `target`, unless the peer takes no
    /// batches.
    pub(crate) fn enqueue(&self, target: NodeId, request: B::Req) -> Enqueued<B> {
        let mut queues = self.lock();
        let queue = queues.entry(target).or_default();
        if queue.unbatched {
            return Enqueued::Unbatched(request);
        }
        let (reply, answer) = oneshot::channel();
        let lead = queue.waiting.is_empty();
        queue.waiting.push((request, reply));
        Enqueued::Waiting { answer, lead }
    }

    /// `take` is the batch for `target`: everything queued since it was
    /// started. The next request starts a new one.
    pub(crate) fn take(&self, target: NodeId) -> Vec<(B::Req, Reply<B::Ans>)> {
        self.lock()
            .get_mut(&target)
            .map(|queue| std::mem::take(&mut queue.waiting))
            .unwrap_or_default()
    }

    /// `set_unbatched` records whether `target` takes batches.
    pub(crate) fn set_unbatched(&self, target: NodeId, unbatched: bool) {
        let mut queues = self.lock();
        if unbatched {
            queues.entry(target).or_default().unbatched = true;
        } else if let Some(queue) = queues.get_mut(&target) {
            queue.unbatched = false;
        }
    }

    /// `record` counts `requests` requests sent in `messages` messages.
    pub(crate) fn record(&self, requests: usize, messages: usize) {
        self.requests.fetch_add(requests as u64, Ordering::Relaxed);
        self.messages.fetch_add(messages as u64, Ordering::Relaxed);
    }

    /// `stats` is what was sent so far.
    pub(crate) fn stats(&self) -> BatchStats {
        BatchStats {
            requests: self.requests.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
        }
    }
}
