//! The node's own metrics, served at `GET /metrics` in the Prometheus text
//! exposition format (version 0.0.4), built with `prometheus-client`.
//!
//! One [`NodeMetrics`] (one `Registry`) per `Node`, never a global: the
//! simulator and the tests run several nodes in one process, and each must
//! count only its own traffic. Every family carries a `node` label (the
//! node id) and the `raftwatch_` prefix.
//!
//! Three kinds of figures:
//! - counters and histograms the request paths update as they go (ingest,
//!   write routing, queries);
//! - per-group Raft gauges and the Raft log's counters, read at scrape
//!   time from what the replication layer reports (a `Collector` over the
//!   snapshot [`NodeMetrics::render`] is given);
//! - the build and the start time.
//!
//! Durations are read only through the node's [`Clock`] (the determinism
//! seam), never from `Instant::now`.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use raftwatch_proto::v1 as pb;
use raftwatch_raft::NodeId;
use raftwatch_raft::coalesce::BatchStats;
use raftwatch_raft::host::GroupMetrics;
use raftwatch_raft::log_store::LogStats;
use raftwatch_seams::{Clock, MonoNanos};
use tonic::{Code, Status};

/// `CONTENT_TYPE` is the `Content-Type` of `/metrics` answers.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the latency histograms, seconds: 1 ms doubling up to
/// 32.8 s (16 buckets, then `+Inf`). Writes take tens to hundreds of
/// milliseconds (ARCHITECTURE.md, "Capacity"); queries from milliseconds
/// to the 120 s query timeout, which lands in `+Inf`.
const LATENCY_BUCKET_FIRST_SECONDS: f64 = 0.001;
const LATENCY_BUCKETS_COUNT: u16 = 16;

/// `QUERY_KINDS` are the query kinds whose histograms exist from the
/// start (so a dashboard sees zeros, not missing series). Another kind
/// passed to [`NodeMetrics::observe_query`] appears when first observed.
pub(crate) const QUERY_KINDS: [&str; 8] = [
    "instant",
    "range",
    "series",
    "labels",
    "label_values",
    "select",
    "promql_instant",
    "promql_range",
];

/// `Protocol` is how a write reached the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// `Ingest.Write` over gRPC.
    Grpc,
    /// Prometheus remote write, `POST /api/v1/write`.
    RemoteWrite,
}

impl Protocol {
    const ALL: [Protocol; 2] = [Protocol::Grpc, Protocol::RemoteWrite];

    fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::RemoteWrite => "remote_write",
        }
    }
}

/// `Routing` is who chose the shard of an `Ingest.Write` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Routing {
    /// The client pinned it to one shard (`WriteRequest.shard`).
    Shard,
    /// The node split it by shard.
    Any,
}

/// `PartRoute` is where one shard part of a write was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PartRoute {
    /// This node's own replica.
    Local,
    /// Another node's leader, over `NodeInternal.ShardWrite`.
    Forwarded,
}

/// Why samples were refused (`reason` of
/// `raftwatch_ingest_samples_rejected_total`).
const REJECT_REASONS: [&str; 6] = [
    "out_of_order",
    "duplicate",
    "invalid",
    "limit",
    "too_old",
    "other",
];

/// What became of a write request (`outcome` of
/// `raftwatch_ingest_requests_total`).
const WRITE_OUTCOMES: [&str; 8] = [
    "success",
    "partial",
    "invalid",
    "limit",
    "throttled",
    "stale_map",
    "unavailable",
    "error",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectedLabels {
    protocol: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    protocol: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoutingLabels {
    routing: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryErrorLabels {
    kind: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(
        LATENCY_BUCKET_FIRST_SECONDS,
        2.0,
        LATENCY_BUCKETS_COUNT,
    ))
}

/// `NodeMetrics` is one node's metrics registry and the handles its
/// request paths update. Cheap to update from any task (atomics, and a
/// short lock per histogram observation).
#[derive(Debug)]
pub(crate) struct NodeMetrics {
    registry: Registry,
    clock: Arc<dyn Clock>,
    /// When the node started: `clock`'s wall time, ms since the epoch.
    start_wall_ms: i64,
    /// What the Raft collector reports: set by `render` before encoding.
    scrape: Arc<Mutex<ScrapeSnapshot>>,
    /// Serialises renders, so each encodes the snapshot it set.
    render_lock: Mutex<()>,
    samples_received: Family<ProtocolLabels, Counter>,
    samples_accepted: Family<ProtocolLabels, Counter>,
    samples_rejected: Family<RejectedLabels, Counter>,
    ingest_requests: Family<OutcomeLabels, Counter>,
    ingest_duration: Histograms<ProtocolLabels>,
    write_routing: Family<RoutingLabels, Counter>,
    shard_parts: Family<RouteLabels, Counter>,
    query_duration: Histograms<KindLabels>,
    query_errors: Family<QueryErrorLabels, Counter>,
    notification_attempts: Histograms<OutcomeOnlyLabels>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeOnlyLabels {
    outcome: &'static str,
}

/// `NOTIFICATION_OUTCOMES` are the outcomes of a delivery attempt.
const NOTIFICATION_OUTCOMES: [&str; 3] = ["delivered", "refused", "failed"];

impl NodeMetrics {
    /// `new` builds node `node`'s registry, reading time from `clock`. The
    /// start time is `clock`'s wall time now.
    pub(crate) fn new(node: NodeId, clock: Arc<dyn Clock>) -> NodeMetrics {
        let labels = [(Cow::Borrowed("node"), Cow::Owned(node.0.to_string()))];
        let mut registry = Registry::with_prefix_and_labels("raftwatch", labels.into_iter());

        registry.register(
            "build",
            "The raftwatch build this node runs (always 1)",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        let start_wall_ms = clock.now_wall().0;
        let start: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
        start.set(start_wall_ms as f64 / 1000.0);
        registry.register_with_unit(
            "start_time",
            "When this node started, seconds since the Unix epoch (wall clock)",
            Unit::Seconds,
            start,
        );

        let m = NodeMetrics {
            registry: Registry::default(), // replaced below
            clock,
            start_wall_ms,
            scrape: Arc::default(),
            render_lock: Mutex::default(),
            samples_received: Family::default(),
            samples_accepted: Family::default(),
            samples_rejected: Family::default(),
            ingest_requests: Family::default(),
            ingest_duration: Family::new_with_constructor(latency_histogram),
            write_routing: Family::default(),
            shard_parts: Family::default(),
            query_duration: Family::new_with_constructor(latency_histogram),
            query_errors: Family::default(),
            notification_attempts: Family::new_with_constructor(latency_histogram),
        };
        // Known label values exist from the start, at zero (the guards
        // `get_or_create` returns are dropped at once).
        for p in Protocol::ALL.map(Protocol::as_str) {
            let protocol = ProtocolLabels { protocol: p };
            let _ = m.samples_received.get_or_create(&protocol);
            let _ = m.samples_accepted.get_or_create(&protocol);
            let _ = m.ingest_duration.get_or_create(&protocol);
            for reason in REJECT_REASONS {
                let _ = m.samples_rejected.get_or_create(&RejectedLabels {
                    protocol: p,
                    reason,
                });
            }
            for outcome in WRITE_OUTCOMES {
                let _ = m.ingest_requests.get_or_create(&OutcomeLabels {
                    protocol: p,
                    outcome,
                });
            }
        }
        for routing in ["shard", "any"] {
            let _ = m.write_routing.get_or_create(&RoutingLabels { routing });
        }
        for route in ["local", "forwarded"] {
            let _ = m.shard_parts.get_or_create(&RouteLabels { route });
        }
        for outcome in NOTIFICATION_OUTCOMES {
            let _ = m
                .notification_attempts
                .get_or_create(&OutcomeOnlyLabels { outcome });
        }
        for kind in QUERY_KINDS {
            let _ = m.query_duration.get_or_create(&KindLabels { kind });
        }

        registry.register(
            "ingest_samples_received",
            "Samples in write requests that reached the ingest path, by protocol",
            m.samples_received.clone(),
        );
        registry.register(
            "ingest_samples_accepted",
            "Samples committed (or already present with the same value), by protocol",
            m.samples_accepted.clone(),
        );
        registry.register(
            "ingest_samples_rejected",
            "Samples refused for good, by protocol and reason: out_of_order, duplicate (same timestamp, other value), invalid (labels or request), limit (series or request caps), too_old (before retention), other. Samples of a request that failed retryably are in neither accepted nor rejected",
            m.samples_rejected.clone(),
        );
        registry.register(
            "ingest_requests",
            "Write requests by protocol and outcome: success, partial (some samples refused), invalid, limit, throttled (shard queue full), stale_map, unavailable, error",
            m.ingest_requests.clone(),
        );
        registry.register_with_unit(
            "ingest_request_duration",
            "Time from receiving a write request to answering it, by protocol",
            Unit::Seconds,
            m.ingest_duration.clone(),
        );
        registry.register(
            "write_requests",
            "Ingest.Write requests past the limit and epoch checks, by routing: shard (the client routed it to one shard, WriteRequest.shard) or any",
            m.write_routing.clone(),
        );
        registry.register(
            "write_shard_parts",
            "Attempts to write one shard's part of a write request, by route: local (this node's replica) or forwarded (another node's leader, over ShardWrite)",
            m.shard_parts.clone(),
        );
        registry.register_with_unit(
            "query_duration",
            "Time to answer a query, failed ones included, by kind",
            Unit::Seconds,
            m.query_duration.clone(),
        );
        registry.register(
            "query_errors",
            "Queries that failed, by kind and code (a gRPC code name, or the HTTP API's error type)",
            m.query_errors.clone(),
        );
        registry.register_with_unit(
            "notification_delivery_duration",
            "Webhook delivery attempts by outcome (delivered: a 2xx; refused: another status; failed: no answer), and how long each took",
            Unit::Seconds,
            m.notification_attempts.clone(),
        );
        registry.register_collector(Box::new(RaftCollector {
            scrape: m.scrape.clone(),
        }));
        NodeMetrics { registry, ..m }
    }

    /// `observe_notification` records one webhook delivery attempt.
    pub(crate) fn observe_notification(&self, outcome: &'static str, took: std::time::Duration) {
        self.notification_attempts
            .get_or_create(&OutcomeOnlyLabels { outcome })
            .observe(took.as_secs_f64());
    }

    /// `now` is the node clock's monotonic time, to pass to
    /// [`NodeMetrics::seconds_since`] later.
    pub(crate) fn now(&self) -> MonoNanos {
        self.clock.now_mono()
    }

    /// `start_wall_ms` is when the node started (wall clock, ms since the
    /// Unix epoch): `raftwatch_start_time_seconds`, and Alertmanager's
    /// `uptime` in `/api/v2/status`.
    pub(crate) fn start_wall_ms(&self) -> i64 {
        self.start_wall_ms
    }

    /// `seconds_since` is the time elapsed since `started` (a reading of
    /// [`NodeMetrics::now`]), in seconds.
    pub(crate) fn seconds_since(&self, started: MonoNanos) -> f64 {
        self.clock.now_mono().nanos_since(started) as f64 / 1e9
    }

    /// `observe_query` records one query of `kind` (`instant`, `range`,
    /// `series`, `labels`, `label_values`, `select`, `promql_instant`,
    /// `promql_range`) that took `seconds`; a failed one (`ok` false) also
    /// counts in `raftwatch_query_errors_total` with code `error`. Callers
    /// that know why it failed use [`NodeMetrics::observe_query_code`].
    // The Prometheus HTTP query API (being added beside this) calls it;
    // until then only the tests do.
    #[allow(dead_code)]
    pub(crate) fn observe_query(&self, kind: &'static str, seconds: f64, ok: bool) {
        self.observe_query_code(kind, seconds, (!ok).then_some("error"));
    }

    /// `observe_query_code` is [`NodeMetrics::observe_query`] naming the
    /// failure: `error_code` is `None` for a query that succeeded, else a
    /// short stable name (a gRPC code such as `invalid_argument`, or the
    /// Prometheus HTTP API's `errorType` such as `bad_data`).
    pub(crate) fn observe_query_code(
        &self,
        kind: &'static str,
        seconds: f64,
        error_code: Option<&'static str>,
    ) {
        self.query_duration
            .get_or_create(&KindLabels { kind })
            .observe(seconds);
        if let Some(code) = error_code {
            self.query_errors
                .get_or_create(&QueryErrorLabels { kind, code })
                .inc();
        }
    }

    /// `timed_query` runs `query`, a gRPC query of `kind`, and records its
    /// duration and, if it fails, its status code.
    pub(crate) async fn timed_query<T>(
        &self,
        kind: &'static str,
        query: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let started = self.now();
        let result = query.await;
        let code = result.as_ref().err().map(|s| code_name(s.code()));
        self.observe_query_code(kind, self.seconds_since(started), code);
        result
    }

    /// `observe_write` records a write request that reached the ingest
    /// path: `samples` in it, received at `started`, answered with
    /// `result`.
    pub(crate) fn observe_write(
        &self,
        protocol: Protocol,
        started: MonoNanos,
        samples: u64,
        result: Result<&pb::WriteResponse, &Status>,
    ) {
        let p = protocol.as_str();
        let protocol_labels = ProtocolLabels { protocol: p };
        self.samples_received
            .get_or_create(&protocol_labels)
            .inc_by(samples);
        let reject = |reason: &'static str, n: u64| {
            self.samples_rejected
                .get_or_create(&RejectedLabels {
                    protocol: p,
                    reason,
                })
                .inc_by(n);
        };
        let outcome = match result {
            Ok(resp) => {
                self.samples_accepted
                    .get_or_create(&protocol_labels)
                    .inc_by(resp.samples_accepted);
                for r in &resp.rejections {
                    reject(reject_reason(&r.reason), 1);
                }
                if resp.rejections.is_empty() {
                    "success"
                } else {
                    "partial"
                }
            }
            Err(status) => {
                let outcome = write_outcome(status);
                // A request refused whole for a reason a retry cannot
                // change: every sample in it is refused.
                if matches!(outcome, "invalid" | "limit") {
                    reject(outcome, samples);
                }
                outcome
            }
        };
        self.finish_write(protocol, started, outcome);
    }

    /// `observe_write_refused` records a write refused before it reached
    /// the ingest path (a remote-write body that did not decode, a wrong
    /// content type, an oversize body): its samples are not counted, as
    /// they could not be read. `limit` says it was too large.
    pub(crate) fn observe_write_refused(
        &self,
        protocol: Protocol,
        started: MonoNanos,
        limit: bool,
    ) {
        self.finish_write(protocol, started, if limit { "limit" } else { "invalid" });
    }

    fn finish_write(&self, protocol: Protocol, started: MonoNanos, outcome: &'static str) {
        let protocol = protocol.as_str();
        self.ingest_requests
            .get_or_create(&OutcomeLabels { protocol, outcome })
            .inc();
        self.ingest_duration
            .get_or_create(&ProtocolLabels { protocol })
            .observe(self.seconds_since(started));
    }

    /// `count_routing` counts one `Ingest.Write` request by who routed it.
    pub(crate) fn count_routing(&self, routing: Routing) {
        let routing = match routing {
            Routing::Shard => "shard",
            Routing::Any => "any",
        };
        self.write_routing
            .get_or_create(&RoutingLabels { routing })
            .inc();
    }

    /// `count_part` counts one attempt to write a shard part, by route.
    pub(crate) fn count_part(&self, route: PartRoute) {
        let route = match route {
            PartRoute::Local => "local",
            PartRoute::Forwarded => "forwarded",
        };
        self.shard_parts.get_or_create(&RouteLabels { route }).inc();
    }

    /// `render` is the whole registry in the Prometheus text format, with
    /// the per-group gauges taken from `groups` (every group hosted here,
    /// as `Node::local_status` reports them) and the Raft log's counters
    /// from `log`.
    pub(crate) fn render(
        &self,
        groups: &[GroupMetrics],
        log: LogStats,
        transport: TransportStats,
    ) -> String {
        let _one_at_a_time = lock(&self.render_lock);
        *lock(&self.scrape) = ScrapeSnapshot {
            groups: groups.iter().map(GroupSample::of).collect(),
            log: Some(log),
            transport: Some(transport),
        };
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            // Writing to a String cannot fail; an encoder refusing its
            // input would be a bug here. Serve what was written.
            tracing::error!(error = %e, "encoding /metrics failed");
        }
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// `reject_reason` is the `reason` label of a per-sample rejection, from
/// the message the shard sent (`raftwatch_tsdb::RejectReason`'s display,
/// or the node's own label check). A unit test pins each message.
fn reject_reason(message: &str) -> &'static str {
    if message.starts_with("invalid series labels") || message.starts_with("unknown series") {
        "invalid"
    } else if message.contains("is out of order") {
        "out_of_order"
    } else if message.starts_with("duplicate timestamp") {
        "duplicate"
    } else if message.starts_with("series limit") {
        "limit"
    } else if message.contains("before the retention cutoff") {
        "too_old"
    } else {
        "other"
    }
}

/// `write_outcome` is the `outcome` label of a write that failed whole.
fn write_outcome(s: &Status) -> &'static str {
    match s.code() {
        Code::InvalidArgument => "invalid",
        // With a retry hint: a full queue (retry later); without: a cap
        // the same request can never fit.
        Code::ResourceExhausted if s.metadata().get("retry-after-ms").is_some() => "throttled",
        Code::ResourceExhausted => "limit",
        Code::FailedPrecondition => "stale_map",
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => "unavailable",
        _ => "error",
    }
}

/// `code_name` is the canonical name of a gRPC status code, lower case
/// (`invalid_argument`), for the `code` label.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

// ---- Raft state, read at scrape time ----

/// One group's figures as of the last render.
#[derive(Clone, Copy, Debug)]
struct GroupSample {
    group: u64,
    term: u64,
    is_leader: bool,
    last_log_index: Option<u64>,
    commit_index: Option<u64>,
    applied_index: Option<u64>,
}

impl GroupSample {
    fn of(m: &GroupMetrics) -> GroupSample {
        GroupSample {
            group: m.group.0,
            term: m.term,
            is_leader: m.is_leader,
            last_log_index: m.last_log_index,
            commit_index: m.commit_index,
            applied_index: m.applied_index,
        }
    }

    /// Entries committed here but not yet applied. Log indexes start at 0,
    /// so an index `i` means `i + 1` entries and `None` means none.
    fn apply_lag_entries(&self) -> u64 {
        let entries = |i: Option<u64>| i.map_or(0, |i| i.saturating_add(1));
        entries(self.commit_index).saturating_sub(entries(self.applied_index))
    }
}

#[derive(Debug, Default)]
struct ScrapeSnapshot {
    groups: Vec<GroupSample>,
    log: Option<LogStats>,
    transport: Option<TransportStats>,
}

/// `TransportStats` is what the node's Raft transport coalesced
/// (`raftwatch_raft::coalesce`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TransportStats {
    /// Heartbeats sent to followers.
    pub(crate) heartbeats: BatchStats,
    /// ReadIndex requests sent to leaders elsewhere.
    pub(crate) read_indexes: BatchStats,
}

/// `RaftCollector` encodes the Raft figures of the latest snapshot.
#[derive(Debug)]
struct RaftCollector {
    scrape: Arc<Mutex<ScrapeSnapshot>>,
}

type GroupGauge = (&'static str, &'static str, fn(&GroupSample) -> Option<i64>);

/// The per-group gauges: name, help, value (`None`: not known yet, so no
/// sample — an index the group has not reached is not 0).
const GROUP_GAUGES: [GroupGauge; 6] = [
    (
        "group_term",
        "Current Raft term of each group on this node (group 0 is the control plane).",
        |g| Some(i64_of(g.term)),
    ),
    (
        "group_is_leader",
        "Whether this node leads the group (1) or not (0).",
        |g| Some(i64::from(g.is_leader)),
    ),
    (
        "group_last_log_index",
        "Index of the last entry in this node's log of the group.",
        |g| g.last_log_index.map(i64_of),
    ),
    (
        "group_commit_index",
        "Highest log index this node knows to be committed in the group.",
        |g| g.commit_index.map(i64_of),
    ),
    (
        "group_applied_index",
        "Highest log index this node's state machine of the group applied.",
        |g| g.applied_index.map(i64_of),
    ),
    (
        "group_apply_lag_entries",
        "Entries of the group committed as known here but not yet applied here (commit index minus applied index).",
        |g| Some(i64_of(g.apply_lag_entries())),
    ),
];

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Collector for RaftCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = lock(&self.scrape);
        if !snapshot.groups.is_empty() {
            for (name, help, value) in GROUP_GAUGES {
                let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                for g in &snapshot.groups {
                    if let Some(v) = value(g) {
                        let labels = [("group", g.group)];
                        ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
                    }
                }
            }
        }
        // The node-wide Raft log: what group commit buys (entries per
        // fsync) and what replication costs on disk (bytes per entry).
        let mut counters = Vec::new();
        if let Some(log) = snapshot.log {
            counters.extend([
                (
                    "log_fsyncs",
                    "fdatasync calls on the node's Raft log.",
                    log.fsyncs_count,
                ),
                (
                    "log_entries_appended",
                    "Raft entries appended to the node's log (all groups).",
                    log.entries_appended_count,
                ),
                (
                    "log_records",
                    "Records made durable in the node's log.",
                    log.records_count,
                ),
                (
                    "log_bytes_written",
                    "Bytes appended to the node's log segments.",
                    log.bytes_written,
                ),
            ]);
        }
        // Requests to peers that groups share messages for, and the
        // messages that carried them.
        if let Some(t) = snapshot.transport {
            counters.extend([
                (
                    "raft_heartbeats_sent",
                    "Raft heartbeats (append-entries without entries) this node sent, all groups.",
                    t.heartbeats.requests,
                ),
                (
                    "raft_heartbeat_messages",
                    "Transport messages that carried them (groups heartbeating the same peer at once share one).",
                    t.heartbeats.messages,
                ),
                (
                    "raft_read_index_requests",
                    "ReadIndex requests this node sent to groups' leaders on other nodes (linearizable reads on a follower).",
                    t.read_indexes.requests,
                ),
                (
                    "raft_read_index_messages",
                    "Transport messages that carried them (reads of several groups led by the same node share one).",
                    t.read_indexes.messages,
                ),
            ]);
        }
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use raftwatch_model::TimestampMs;
    use raftwatch_raft::GroupId;
    use raftwatch_seams::ManualClock;
    use raftwatch_tsdb::RejectReason;

    use super::*;

    fn metrics() -> (NodeMetrics, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(TimestampMs(1_700_000_000_000)));
        (NodeMetrics::new(NodeId(7), clock.clone()), clock)
    }

    fn group(id: u64, commit: Option<u64>, applied: Option<u64>) -> GroupMetrics {
        GroupMetrics {
            group: GroupId(id),
            term: 3,
            is_leader: id == 0,
            role: if id == 0 { "leader" } else { "follower" },
            leader: Some(NodeId(7)),
            last_log_index: commit.map(|c| c + 2),
            commit_index: commit,
            applied_index: applied,
            snapshot_index: None,
            purged_index: None,
            voters: vec![NodeId(7)],
            learners: vec![],
            matched: Default::default(),
        }
    }

    /// The value of the sample `name{labels}` (labels exactly as written,
    /// in order; `node="7"` first).
    fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
        let prefix = if labels.is_empty() {
            format!("{name}{{node=\"7\"}} ")
        } else {
            format!("{name}{{node=\"7\",{labels}}} ")
        };
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn the_registry_renders_valid_text_with_every_family() {
        let (m, _) = metrics();
        let text = m.render(
            &[group(0, Some(10), Some(8)), group(3, None, None)],
            LogStats::default(),
            TransportStats {
                heartbeats: BatchStats {
                    requests: 12,
                    messages: 5,
                },
                read_indexes: BatchStats {
                    requests: 7,
                    messages: 2,
                },
            },
        );
        let families = exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        for (name, kind) in [
            ("raftwatch_build_info", "gauge"),
            ("raftwatch_start_time_seconds", "gauge"),
            ("raftwatch_ingest_samples_received_total", "counter"),
            ("raftwatch_ingest_samples_accepted_total", "counter"),
            ("raftwatch_ingest_samples_rejected_total", "counter"),
            ("raftwatch_ingest_requests_total", "counter"),
            ("raftwatch_ingest_request_duration_seconds", "histogram"),
            ("raftwatch_write_requests_total", "counter"),
            ("raftwatch_write_shard_parts_total", "counter"),
            ("raftwatch_query_duration_seconds", "histogram"),
            ("raftwatch_group_term", "gauge"),
            ("raftwatch_group_is_leader", "gauge"),
            ("raftwatch_group_last_log_index", "gauge"),
            ("raftwatch_group_commit_index", "gauge"),
            ("raftwatch_group_applied_index", "gauge"),
            ("raftwatch_group_apply_lag_entries", "gauge"),
            ("raftwatch_log_fsyncs_total", "counter"),
            ("raftwatch_log_entries_appended_total", "counter"),
            ("raftwatch_log_records_total", "counter"),
            ("raftwatch_log_bytes_written_total", "counter"),
            ("raftwatch_raft_heartbeats_sent_total", "counter"),
            ("raftwatch_raft_heartbeat_messages_total", "counter"),
            ("raftwatch_raft_read_index_requests_total", "counter"),
            ("raftwatch_raft_read_index_messages_total", "counter"),
        ] {
            assert_eq!(
                families.get(name).map(|f| f.kind.as_str()),
                Some(kind),
                "{name} in:\n{text}"
            );
        }
        assert_eq!(
            sample(
                &text,
                "raftwatch_build_info",
                &format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "raftwatch_start_time_seconds", ""),
            Some(1_700_000_000.0)
        );
        assert_eq!(
            sample(&text, "raftwatch_raft_heartbeats_sent_total", ""),
            Some(12.0)
        );
        assert_eq!(
            sample(&text, "raftwatch_raft_heartbeat_messages_total", ""),
            Some(5.0)
        );
        assert_eq!(
            sample(&text, "raftwatch_raft_read_index_requests_total", ""),
            Some(7.0)
        );
        assert_eq!(
            sample(&text, "raftwatch_raft_read_index_messages_total", ""),
            Some(2.0)
        );
        // Group 0: commit 10, applied 8 → 2 entries behind. Group 3 has no
        // log yet: no index samples, and no lag.
        assert_eq!(
            sample(&text, "raftwatch_group_commit_index", "group=\"0\""),
            Some(10.0)
        );
        assert_eq!(
            sample(&text, "raftwatch_group_applied_index", "group=\"0\""),
            Some(8.0)
        );
        assert_eq!(
            sample(&text, "raftwatch_group_last_log_index", "group=\"0\""),
            Some(12.0)
        );
        assert_eq!(
            sample(&text, "raftwatch_group_apply_lag_entries", "group=\"0\""),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "raftwatch_group_is_leader", "group=\"0\""),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "raftwatch_group_term", "group=\"3\""),
            Some(3.0)
        );
        assert_eq!(
            sample(&text, "raftwatch_group_is_leader", "group=\"3\""),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, "raftwatch_group_applied_index", "group=\"3\""),
            None
        );
        assert_eq!(
            sample(&text, "raftwatch_group_apply_lag_entries", "group=\"3\""),
            Some(0.0)
        );
        // Known label values exist at zero before anything happened.
        assert_eq!(
            sample(
                &text,
                "raftwatch_write_shard_parts_total",
                "route=\"forwarded\""
            ),
            Some(0.0)
        );
    }

    #[test]
    fn counters_move_with_writes_and_queries() {
        let (m, clock) = metrics();
        let received = |text: &str| {
            sample(
                text,
                "raftwatch_ingest_samples_received_total",
                "protocol=\"grpc\"",
            )
        };
        let before = m.render(&[], LogStats::default(), TransportStats::default());
        assert_eq!(received(&before), Some(0.0));

        // A write of 5 samples: 3 accepted, one out of order, one duplicate.
        let started = m.now();
        clock.advance_ms(40);
        let rejection = |reason: &RejectReason| pb::Rejection {
            series_index: 0,
            sample_index: 0,
            reason: reason.to_string(),
        };
        let resp = pb::WriteResponse {
            samples_accepted: 3,
            rejections: vec![
                rejection(&RejectReason::OutOfOrder {
                    timestamp: TimestampMs(1),
                    newest: TimestampMs(2),
                    window_ms: 0,
                }),
                rejection(&RejectReason::DuplicateTimestamp {
                    timestamp: TimestampMs(2),
                }),
            ],
        };
        m.observe_write(Protocol::Grpc, started, 5, Ok(&resp));
        // A remote write refused whole for its size: 7 samples refused.
        m.observe_write(
            Protocol::RemoteWrite,
            m.now(),
            7,
            Err(&Status::resource_exhausted("too many samples")),
        );
        m.observe_write_refused(Protocol::RemoteWrite, m.now(), false);
        m.count_routing(Routing::Shard);
        m.count_part(PartRoute::Forwarded);
        m.observe_query("promql_instant", 0.25, true);
        m.observe_query("range", 0.5, false);
        m.observe_query_code("instant", 0.002, Some(code_name(Code::InvalidArgument)));

        let text = m.render(&[], LogStats::default(), TransportStats::default());
        exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(received(&text), Some(5.0));
        let s = |name: &str, labels: &str| sample(&text, name, labels);
        assert_eq!(
            s(
                "raftwatch_ingest_samples_accepted_total",
                "protocol=\"grpc\""
            ),
            Some(3.0)
        );
        for reason in ["out_of_order", "duplicate"] {
            assert_eq!(
                s(
                    "raftwatch_ingest_samples_rejected_total",
                    &format!("protocol=\"grpc\",reason=\"{reason}\"")
                ),
                Some(1.0),
                "{reason}"
            );
        }
        assert_eq!(
            s(
                "raftwatch_ingest_samples_rejected_total",
                "protocol=\"remote_write\",reason=\"limit\""
            ),
            Some(7.0)
        );
        assert_eq!(
            s(
                "raftwatch_ingest_requests_total",
                "protocol=\"grpc\",outcome=\"partial\""
            ),
            Some(1.0)
        );
        assert_eq!(
            s(
                "raftwatch_ingest_requests_total",
                "protocol=\"remote_write\",outcome=\"limit\""
            ),
            Some(1.0)
        );
        assert_eq!(
            s(
                "raftwatch_ingest_requests_total",
                "protocol=\"remote_write\",outcome=\"invalid\""
            ),
            Some(1.0)
        );
        // The write took 40 ms of the node's clock: in the 0.064 s bucket,
        // not the 0.032 s one.
        assert_eq!(
            s(
                "raftwatch_ingest_request_duration_seconds_bucket",
                "protocol=\"grpc\",le=\"0.032\""
            ),
            Some(0.0)
        );
        assert_eq!(
            s(
                "raftwatch_ingest_request_duration_seconds_bucket",
                "protocol=\"grpc\",le=\"0.064\""
            ),
            Some(1.0)
        );
        assert_eq!(
            s(
                "raftwatch_ingest_request_duration_seconds_sum",
                "protocol=\"grpc\""
            ),
            Some(0.04)
        );
        assert_eq!(
            s("raftwatch_write_requests_total", "routing=\"shard\""),
            Some(1.0)
        );
        assert_eq!(
            s("raftwatch_write_shard_parts_total", "route=\"forwarded\""),
            Some(1.0)
        );
        assert_eq!(
            s(
                "raftwatch_query_duration_seconds_count",
                "kind=\"promql_instant\""
            ),
            Some(1.0)
        );
        assert_eq!(
            s(
                "raftwatch_query_errors_total",
                "kind=\"range\",code=\"error\""
            ),
            Some(1.0)
        );
        assert_eq!(
            s(
                "raftwatch_query_errors_total",
                "kind=\"instant\",code=\"invalid_argument\""
            ),
            Some(1.0)
        );
        assert_eq!(
            s(
                "raftwatch_query_errors_total",
                "kind=\"promql_instant\",code=\"error\""
            ),
            None
        );
    }

    #[tokio::test]
    async fn timed_queries_record_their_status_code() {
        let (m, clock) = metrics();
        let ok: Result<(), Status> = m
            .timed_query("series", async {
                clock.advance_ms(3);
                Ok(())
            })
            .await;
        assert!(ok.is_ok());
        let _ = m
            .timed_query::<()>("labels", async {
                Err(Status::deadline_exceeded("the query timeout"))
            })
            .await;
        let text = m.render(&[], LogStats::default(), TransportStats::default());
        assert_eq!(
            sample(
                &text,
                "raftwatch_query_duration_seconds_sum",
                "kind=\"series\""
            ),
            Some(0.003)
        );
        assert_eq!(
            sample(
                &text,
                "raftwatch_query_errors_total",
                "kind=\"labels\",code=\"deadline_exceeded\""
            ),
            Some(1.0)
        );
    }

    #[test]
    fn every_engine_rejection_has_its_own_reason() {
        let t = TimestampMs(5);
        for (reason, label) in [
            (
                RejectReason::OutOfOrder {
                    timestamp: t,
                    newest: t,
                    window_ms: 0,
                },
                "out_of_order",
            ),
            (
                RejectReason::DuplicateTimestamp { timestamp: t },
                "duplicate",
            ),
            (RejectReason::InvalidLabels("x".into()), "invalid"),
            (RejectReason::SeriesLimit { limit: 1 }, "limit"),
            (
                RejectReason::BeforeRetention {
                    timestamp: t,
                    cutoff: t,
                },
                "too_old",
            ),
            (
                RejectReason::UnknownSeries(raftwatch_model::SeriesRef(1)),
                "invalid",
            ),
        ] {
            assert_eq!(reject_reason(&reason.to_string()), label, "{reason}");
        }
        // The node's own label check (ingest.rs) words it the same way.
        assert_eq!(
            reject_reason("invalid series labels: empty name"),
            "invalid"
        );
        assert_eq!(reject_reason("something new"), "other");
    }

    #[test]
    fn the_parser_refuses_what_is_not_exposition_format() {
        for bad in [
            "raftwatch_x 1\n",                                            // no TYPE
            "# TYPE raftwatch_x counter\nraftwatch_x 1\n",                // counter without _total
            "# TYPE raftwatch_x_total counter\nraftwatch_x_total one\n",  // not a number
            "# TYPE raftwatch_x gauge\nraftwatch_x{a=\"1} 1\n",           // unterminated value
            "# TYPE raftwatch_x gauge\n# TYPE raftwatch_x gauge\n",       // TYPE twice
            "# TYPE raftwatch_x gauge\nraftwatch_x{a=\"1\",a=\"2\"} 1\n", // label twice
            "# TYPE raftwatch_h histogram\nraftwatch_h_bucket{le=\"1\"} 1\nraftwatch_h_sum 1\nraftwatch_h_count 1\n", // no +Inf
        ] {
            assert!(exposition::parse(bad).is_err(), "accepted:\n{bad}");
        }
    }
}

// The exposition-format checker the cluster tests use too
// (`raftwatch_tests::exposition`); it lives with them, as it only tests.
#[cfg(test)]
#[path = "../../../../tests/exposition.rs"]
mod exposition;
