//! raftwatch-client: what an application needs to write to and read from
//! a raftwatch cluster correctly.
//!
//! - Every write carries a request id (the caller's, or one the client
//!   makes from its id and a counter), so retrying an ambiguous failure
//!   never applies a sample twice: the shards answer a known id from
//!   memory.
//! - Retryable failures (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, `UNKNOWN`,
//!   `RESOURCE_EXHAUSTED`) are retried with capped exponential backoff and
//!   full jitter from a seeded generator, honouring a `retry-after-ms` hint
//!   and moving to the node a not-leader answer names
//!   (`raftwatch-leader-addr`) or else to the next endpoint. Everything
//!   else (`INVALID_ARGUMENT`, `NOT_FOUND`, `FAILED_PRECONDITION`, ...) is
//!   returned at once, never retried — except a stale shard-map epoch,
//!   which refreshes the cached map and retries.
//! - Reads name their consistency; there is no silent downgrade.
//!
//! Today every node routes a write to its shards' leaders itself (one
//! hop); the client caches the shard-map epoch so routing changes are
//! detected. Routing straight to shard leaders from the client is planned.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use raftwatch_proto::v1 as pb;
use raftwatch_seams::DetRng;
use thiserror::Error;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// `ClientConfig` holds the client's retry policy and timeouts.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Attempts per call, the first included.
    pub attempts_max: u32,
    /// First backoff; doubles per attempt.
    pub backoff_initial: Duration,
    /// Backoff cap.
    pub backoff_max: Duration,
    /// Per-attempt timeout.
    pub request_timeout: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Seed of the jitter and of generated request ids' prefix.
    pub seed: u64,
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
        }
    }
}

/// `ClientError` is what a call fails with after its retries.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The cluster refused the call; retrying it unchanged cannot succeed.
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
}

/// `retryable` is whether a status may succeed if the call is repeated
/// (elsewhere or later). Defaults to no.
pub fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::ResourceExhausted
    )
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

fn hint(status: &Status, key: &str) -> Option<String> {
    status
        .metadata()
        .get(key)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `Client` talks to a cluster through any of its nodes.
#[derive(Debug)]
pub struct Client {
    endpoints: Vec<String>,
    config: ClientConfig,
    rng: tokio::sync::Mutex<DetRng>,
    next_endpoint: AtomicU64,
    next_request: AtomicU64,
    map_epoch: AtomicU64,
}

impl Client {
    /// `new` makes a client for `endpoints` (`http://host:port`); it
    /// connects lazily, per call.
    pub fn new(endpoints: Vec<String>, config: ClientConfig) -> Result<Client, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::Endpoint("no endpoint".into()));
        }
        for e in &endpoints {
            Endpoint::from_shared(e.clone())
                .map_err(|err| ClientError::Endpoint(format!("{e}: {err}")))?;
        }
        let rng = DetRng::new(config.seed);
        Ok(Client {
            endpoints,
            rng: tokio::sync::Mutex::new(rng),
            next_endpoint: AtomicU64::new(config.seed),
            next_request: AtomicU64::new(0),
            map_epoch: AtomicU64::new(0),
            config,
        })
    }

    fn channel(&self, endpoint: &str) -> Result<Channel, Status> {
        let e = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .connect_timeout(self.config.connect_timeout)
            .timeout(self.config.request_timeout)
            .tcp_nodelay(true);
        Ok(e.connect_lazy())
    }

    fn pick(&self) -> String {
        let i = self.next_endpoint.fetch_add(1, Ordering::Relaxed) as usize;
        self.endpoints[i % self.endpoints.len()].clone()
    }

    /// `new_request_id` is a request id unique to this client: its seed and
    /// a counter. Give each client process its own seed (e.g. from the
    /// caller's instance id and start time) to keep ids unique across
    /// restarts.
    pub fn new_request_id(&self) -> String {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        format!("c{:x}-{n}", self.config.seed)
    }

    /// Runs `call` with the retry policy: returns its answer, or the first
    /// non-retryable error, or gives up after `attempts_max`.
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
                Err(s) if s.code() == Code::FailedPrecondition && s.message().contains("epoch") => {
                    self.refresh_map().await;
                    last = s;
                }
                Err(s) if !retryable(&s) => return Err(ClientError::Refused(s)),
                Err(s) => {
                    target = match hint(&s, "raftwatch-leader-addr") {
                        Some(addr) => format!("http://{addr}"),
                        None => self.pick(),
                    };
                    let after = hint(&s, "retry-after-ms")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let wait = {
                        let mut rng = self.rng.lock().await;
                        backoff_ms(&self.config, attempt, after, &mut rng)
                    };
                    last = s;
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
            }
        }
        Err(ClientError::GaveUp {
            attempts: self.config.attempts_max,
            last,
        })
    }

    /// `refresh_map` re-reads the shard-map epoch (best effort).
    pub async fn refresh_map(&self) {
        let Ok(ch) = self.channel(&self.pick()) else {
            return;
        };
        if let Ok(r) = pb::admin_client::AdminClient::new(ch)
            .list_shards(pb::ListShardsRequest { consistency: 0 })
            .await
        {
            self.map_epoch
                .store(r.into_inner().map_epoch, Ordering::Relaxed);
        }
    }

    /// `write` sends `series` and returns the answer once every sample is
    /// committed (or rejected one by one). `request_id`: the caller's, or a
    /// new one. Retries reuse the id, so the write applies at most once.
    pub async fn write(
        &self,
        series: Vec<pb::Series>,
        request_id: Option<String>,
    ) -> Result<pb::WriteResponse, ClientError> {
        let id = request_id.unwrap_or_else(|| self.new_request_id());
        self.with_retries(|ch| {
            let request = pb::WriteRequest {
                series: series.clone(),
                request_id: id.clone(),
                shard_map_epoch: self.map_epoch.load(Ordering::Relaxed),
            };
            async move {
                pb::ingest_client::IngestClient::new(ch)
                    .max_encoding_message_size(64 << 20)
                    .write(request)
                    .await
                    .map(tonic::Response::into_inner)
            }
        })
        .await
    }

    /// `select` reads raw samples of the series matching every matcher in
    /// `[start_ms, end_ms]` at `consistency`.
    pub async fn select(
        &self,
        matchers: Vec<pb::LabelMatcher>,
        start_ms: i64,
        end_ms: i64,
        consistency: pb::Consistency,
    ) -> Result<pb::SelectResponse, ClientError> {
        self.with_retries(|ch| {
            let request = pb::SelectRequest {
                matchers: matchers.clone(),
                start_ms,
                end_ms,
                consistency: consistency as i32,
            };
            async move {
                pb::query_client::QueryClient::new(ch)
                    .max_decoding_message_size(256 << 20)
                    .select(request)
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
            Code::ResourceExhausted,
        ] {
            assert!(retryable(&Status::new(code, "")), "{code:?}");
        }
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
}
