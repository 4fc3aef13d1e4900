//! `raftwatch-bench ingest`: write throughput and latency of a running
//! cluster through `raftwatch.v1.Ingest/Write`, or of any Prometheus
//! remote-write 1.0 receiver (a raftwatch node's `/api/v1/write`, or
//! Prometheus itself with `--web.enable-remote-write-receiver`).
//!
//! Generates `--series` node_exporter-like series (the [`Fleet`] of
//! `tsdb`) and sends `--rounds` scrapes of them: one sample per series per
//! round, rounds 15 s apart in sample time. Each series' timestamp in round
//! r is `--start-ms + r·15 000 + its host's scrape offset` (0..15 000 ms),
//! so a run covers `[start_ms, start_ms + rounds·15 000)`.
//!
//! Rerunning against the same cluster: the same `--seed` and `--start-ms`
//! produce the same series at the same timestamps, which the cluster
//! refuses or ignores as duplicates or out-of-order samples (they show up
//! under `errors.rejected`), so pass a later `--start-ms` (the report's
//! `next_start_ms`) or another `--seed` (other values, same label sets)
//! for a fresh measurement.
//!
//! Each round is split into requests of `--batch-series` series (the same
//! series in every round) and written through the client library
//! (`raftwatch-client`) with at most `--concurrency` requests in flight.
//! With `--routing leaders` (the default) the library splits each request
//! by shard and sends every part straight to its shard's leader (one
//! HTTP/2 channel per node), so up to `--concurrency` × shards RPCs are in
//! flight; with `--routing any` each request goes whole to `--target`,
//! which routes it. Round r+1's request for a batch starts only once round
//! r's request for that batch has been answered, so every series' samples
//! arrive in time order; otherwise the rounds overlap freely.
//!
//! Every request carries a request id unique to this run (seed, start,
//! the run's start time, round, batch), so the library's retries
//! (`--retries`, 0 by default: the bench measures) never apply a sample
//! twice. Every failed RPC is counted in `errors` under its gRPC code,
//! retried or not; `failed_requests` counts requests that ended in an
//! error (their samples are not counted as acked, though parts that
//! succeeded are committed).
//!
//! With an `http://HOST:PORT/PATH` target each request is one remote-write
//! POST (snappy-compressed `prometheus.WriteRequest`, labels sorted), the
//! same batches in the same order (so a receiver that needs every series
//! oldest first, as Prometheus does, gets it). 2xx acknowledges every
//! sample; a 400 counts under `errors."HTTP 400"` and, when the body says
//! `N samples committed` (raftwatch does), N are acked, otherwise none;
//! 429, 5xx and connection failures are retried up to `--retries` times
//! (after `Retry-After`, at most 1 s), each failure counted under its
//! status. There is no routing: the receiver routes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use prost::Message;
use raftwatch_client::{Client, ClientConfig, Routing, code_name, error_chain};
use raftwatch_proto::prometheus as prom;
use raftwatch_proto::v1 as pb;
use raftwatch_seams::{Clock, SystemClock};
use serde::Serialize;

use crate::cpu::{self, CpuScope};
use crate::grpc::{self, Target};
use crate::http1::{self, HttpUrl};
use crate::nodegen::{Fleet, SCRAPE_INTERVAL_MS};

/// Arguments of `raftwatch-bench ingest`.
#[derive(clap::Args, Debug, Clone)]
pub struct IngestArgs {
    /// `grpc://HOST:PORT` (any node's gRPC address) or
    /// `http://HOST:PORT/api/v1/write` (Prometheus remote write 1.0).
    #[arg(long)]
    target: String,
    /// Number of series.
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Scrapes to send (one sample per series each, 15 s apart in sample
    /// time).
    #[arg(long, default_value_t = 10)]
    rounds: u64,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Series per request.
    #[arg(long, default_value_t = 1000)]
    batch_series: usize,
    /// Seed of the generated values (the label sets depend only on
    /// `--series`).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Sample time of round 0 in ms since the epoch. Use a later one (the
    /// report's `next_start_ms`) to rerun against the same cluster.
    #[arg(long, default_value_t = 1_700_000_000_000)]
    start_ms: i64,
    /// Retries per failed shard part (the client library's policy:
    /// UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, UNKNOWN and a
    /// stale shard map; leader hints followed), with the request's id so
    /// the cluster applies a retried part at most once. Every failed
    /// attempt still counts in `errors`.
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// `leaders`: split each request by shard and send every part to its
    /// shard's leader; `any`: send each request whole to `--target`, which
    /// routes it (one forwarding hop per part it does not lead).
    #[arg(long, value_enum, default_value_t = RoutingArg::Leaders)]
    routing: RoutingArg,
    /// Deadline of one request (and of connecting), in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
}

/// How requests reach the shards.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingArg {
    /// Straight to each shard's leader, by the cached shard map.
    Leaders,
    /// Whole, to the target node.
    Any,
}

/// The printed result (CONTRACTS.md fields first). Latencies are of
/// requests answered OK (including retries, if any); a failed request's
/// latency says little about the cluster and would flatter it.
#[derive(Serialize, Debug)]
pub struct IngestReport {
    samples_sent: u64,
    samples_acked: u64,
    samples_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Failed RPCs by gRPC code name (retried or not), and `rejected`:
    /// samples the cluster refused one by one in OK responses.
    errors: BTreeMap<String, u64>,
    /// The first message seen for each kind in `errors`.
    error_examples: BTreeMap<String, String>,
    wall_s: f64,
    requests: u64,
    /// Requests that ended in an error (after `--retries`).
    failed_requests: u64,
    retried_requests: u64,
    /// RPCs sent: a routed request is one per shard it touches, plus
    /// retries.
    rpcs: u64,
    /// Shard-map reads the client made (the first, then after stale
    /// epochs or leaderless replicas).
    map_refreshes: u64,
    routing: String,
    /// CPU seconds the cluster's processes used during the run (`None`
    /// when no `raftwatch` process is visible locally).
    cluster_cpu_s: Option<f64>,
    cpu_s_per_million_samples: Option<f64>,
    cluster_cpu_scope: String,
    cluster_pids: Vec<u32>,
    /// CPU seconds the bench itself used: it shares the machine.
    bench_cpu_s: f64,
    series: usize,
    rounds: u64,
    concurrency: usize,
    batch_series: usize,
    seed: u64,
    start_ms: i64,
    /// The `--start-ms` for a rerun that continues after this one.
    next_start_ms: i64,
}

/// `run` generates the series, connects to `--target` and sends every
/// round; it fails only on bad arguments or when it cannot connect.
pub fn run(args: &IngestArgs) -> anyhow::Result<IngestReport> {
    let target = Target::parse(&args.target)?;
    if let Target::Http(url) = &target {
        HttpUrl::parse(url).with_context(|| format!("invalid --target {url:?}"))?;
    }
    if args.series == 0 || args.rounds == 0 || args.concurrency == 0 || args.batch_series == 0 {
        bail!("--series, --rounds, --concurrency and --batch-series must be positive");
    }
    let rounds = i64::try_from(args.rounds).context("--rounds is too large")?;
    let next_start_ms = rounds
        .checked_mul(SCRAPE_INTERVAL_MS)
        .and_then(|d| args.start_ms.checked_add(d))
        .context("--start-ms + --rounds·15 s overflows")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(args.clone(), target, next_start_ms))
}

/// What one request came to.
struct Outcome {
    batch: usize,
    /// For an OK response: samples accepted, samples rejected and the
    /// first rejection's description. `Err` when the request failed.
    result: Result<(u64, u64, Option<String>), ()>,
    /// Every failed RPC: its code name and message.
    failed_attempts: Vec<(&'static str, String)>,
    rpcs: u64,
    /// Whether any part was sent more than once.
    retried: bool,
    map_refreshes: u64,
    latency_ns: u64,
}

/// The totals so far.
#[derive(Default)]
struct Tally {
    acked: u64,
    requests: u64,
    failed_requests: u64,
    retried: u64,
    rpcs: u64,
    map_refreshes: u64,
    latencies_ns: Vec<u64>,
    errors: BTreeMap<String, u64>,
    error_examples: BTreeMap<String, String>,
}

impl Tally {
    fn error(&mut self, kind: &str, count: u64, example: &str) {
        *self.errors.entry(kind.to_owned()).or_default() += count;
        self.error_examples
            .entry(kind.to_owned())
            .or_insert_with(|| example.to_owned());
    }

    fn record(&mut self, o: Outcome) {
        self.requests += 1;
        self.rpcs += o.rpcs;
        self.map_refreshes += o.map_refreshes;
        if o.retried {
            self.retried += 1;
        }
        for (kind, message) in &o.failed_attempts {
            self.error(kind, 1, message);
        }
        match o.result {
            Ok((accepted, rejected, first_rejection)) => {
                self.acked += accepted;
                self.latencies_ns.push(o.latency_ns);
                if let Some(first) = first_rejection {
                    self.error("rejected", rejected, &first);
                }
            }
            Err(()) => self.failed_requests += 1,
        }
    }
}

/// Where requests go.
#[derive(Clone)]
enum Sink {
    /// The client library, over gRPC.
    Grpc(Arc<Client>),
    /// Remote-write POSTs to one URL.
    RemoteWrite {
        url: Arc<HttpUrl>,
        attempts_max: u32,
        timeout: Duration,
    },
}

async fn run_async(
    args: IngestArgs,
    target: Target,
    next_start_ms: i64,
) -> anyhow::Result<IngestReport> {
    let timeout = Duration::from_secs(args.timeout_s.max(1));
    let sink = match &target {
        Target::Grpc(url) => {
            let client = Arc::new(Client::new(
                vec![url.clone()],
                ClientConfig {
                    attempts_max: args.retries.saturating_add(1),
                    request_timeout: timeout,
                    connect_timeout: timeout,
                    seed: args.seed,
                    routing: match args.routing {
                        RoutingArg::Leaders => Routing::ShardLeaders,
                        RoutingArg::Any => Routing::AnyNode,
                    },
                    ..ClientConfig::default()
                },
            )?);
            // Fails now, not on the first request, when nothing listens there.
            client.connect().await?;
            Sink::Grpc(client)
        }
        Target::Http(text) => {
            let url = HttpUrl::parse(text)?;
            // As for gRPC: fail now when nothing listens there.
            tokio::net::TcpStream::connect(&url.authority)
                .await
                .with_context(|| format!("cannot connect to {}", url.authority))?;
            Sink::RemoteWrite {
                url: Arc::new(url),
                attempts_max: args.retries.saturating_add(1),
                timeout,
            }
        }
    };

    eprintln!("generating {} series", args.series);
    let mut fleet = Fleet::new(args.series, args.seed)?;
    let batches = args.series.div_ceil(args.batch_series);
    // Label sets never change, so each batch's series are built once and
    // shared with its request; a round rewrites only the samples, in
    // place once the batch's previous request let go of them (the client
    // only reads what it is lent).
    let mut batch_series: Vec<Arc<[pb::Series]>> = (0..batches)
        .map(|batch| {
            let lo = batch * args.batch_series;
            let hi = (lo + args.batch_series).min(args.series);
            fleet.series[lo..hi]
                .iter()
                .map(|s| pb::Series {
                    labels: s
                        .labels
                        .iter()
                        .map(|l| pb::Label {
                            name: l.name.clone(),
                            value: l.value.clone(),
                        })
                        .collect(),
                    samples: vec![pb::Sample::default()],
                })
                .collect()
        })
        .collect();

    let clock = Arc::new(SystemClock::new());
    // Unique to this run, so a rerun with the same seed and start is
    // applied (or refused as duplicates), not answered from the shards'
    // memory of the earlier run's request ids.
    let run_nonce = clock.now_wall().0;
    let scope = CpuScope::for_port(target.port());
    let cpu_before = scope.sample();
    let bench_cpu_before = cpu::process_cpu_seconds();
    let t0 = clock.now_mono();

    let mut tally = Tally::default();
    let mut samples_sent = 0u64;
    // Whether batch k's request of the previous round has been answered.
    let mut answered = vec![true; batches];
    let mut in_flight = FuturesUnordered::new();
    for round in 0..args.rounds {
        let round_ms = args.start_ms + round as i64 * SCRAPE_INTERVAL_MS;
        for batch in 0..batches {
            let lo = batch * args.batch_series;
            let hi = (lo + args.batch_series).min(args.series);
            // Generated before waiting for a slot, so generating overlaps
            // the requests in flight.
            let samples: Vec<pb::Sample> = (lo..hi)
                .map(|i| pb::Sample {
                    timestamp_ms: round_ms + fleet.offsets_ms[i],
                    value: fleet.series[i].next_value(),
                })
                .collect();
            let request_id = format!(
                "bench-{}-{}-{run_nonce}-{round}-{batch}",
                args.seed, args.start_ms
            );
            while in_flight.len() >= args.concurrency || !answered[batch] {
                let o: Outcome = in_flight
                    .next()
                    .await
                    .context("a batch waits for an answer that is not in flight")??;
                answered[o.batch] = true;
                tally.record(o);
            }
            answered[batch] = false;
            samples_sent += (hi - lo) as u64;
            // The previous request's task has ended: unshared, so no copy.
            let shared = &mut batch_series[batch];
            if Arc::get_mut(shared).is_none() {
                *shared = shared.iter().cloned().collect();
            }
            if let Some(series) = Arc::get_mut(shared) {
                for (s, x) in series.iter_mut().zip(samples) {
                    s.samples[0] = x;
                }
            }
            let series = Arc::clone(shared);
            let request = match &sink {
                Sink::Grpc(client) => {
                    send(client.clone(), series, request_id, batch, clock.clone()).boxed()
                }
                Sink::RemoteWrite {
                    url,
                    attempts_max,
                    timeout,
                } => remote_write(
                    url.clone(),
                    series,
                    batch,
                    *attempts_max,
                    *timeout,
                    clock.clone(),
                )
                .boxed(),
            };
            in_flight.push(raftwatch_raft::rt::spawn(args.seed, request));
        }
        eprintln!(
            "round {}/{} sent: {} samples acked, {} requests failed, {:.1} s",
            round + 1,
            args.rounds,
            tally.acked,
            tally.failed_requests,
            clock.now_mono().nanos_since(t0) as f64 / 1e9
        );
    }
    while let Some(o) = in_flight.next().await {
        tally.record(o?);
    }
    let wall_s = clock.now_mono().nanos_since(t0) as f64 / 1e9;
    let cpu_after = scope.sample();
    let bench_cpu_s = cpu::process_cpu_seconds() - bench_cpu_before;

    let cluster_pids = cpu_after.pids();
    let cluster_cpu_s = (!cluster_pids.is_empty()).then(|| cpu_after.seconds_since(&cpu_before));
    tally.latencies_ns.sort_unstable();
    let lat = &tally.latencies_ns;
    Ok(IngestReport {
        samples_sent,
        samples_acked: tally.acked,
        samples_per_sec: tally.acked as f64 / wall_s,
        p50_ms: grpc::percentile_ms(lat, 0.50),
        p99_ms: grpc::percentile_ms(lat, 0.99),
        max_ms: grpc::percentile_ms(lat, 1.0),
        errors: tally.errors,
        error_examples: tally.error_examples,
        wall_s,
        requests: tally.requests,
        failed_requests: tally.failed_requests,
        retried_requests: tally.retried,
        rpcs: tally.rpcs,
        map_refreshes: tally.map_refreshes,
        routing: match sink {
            Sink::Grpc(_) => format!("{:?}", args.routing).to_lowercase(),
            Sink::RemoteWrite { .. } => "remote-write".to_owned(),
        },
        cluster_cpu_s,
        cpu_s_per_million_samples: cluster_cpu_s
            .filter(|_| tally.acked > 0)
            .map(|cpu| cpu / (tally.acked as f64 / 1e6)),
        cluster_cpu_scope: scope.describe(),
        cluster_pids,
        bench_cpu_s,
        series: args.series,
        rounds: args.rounds,
        concurrency: args.concurrency,
        batch_series: args.batch_series,
        seed: args.seed,
        start_ms: args.start_ms,
        next_start_ms,
    })
}

/// Writes one request through the client (retries included) and times it.
async fn send(
    client: Arc<Client>,
    series: Arc<[pb::Series]>,
    request_id: String,
    batch: usize,
    clock: Arc<SystemClock>,
) -> Outcome {
    let start = clock.now_mono();
    let (result, stats) = client.write_with_stats(series, Some(request_id)).await;
    let latency_ns = clock.now_mono().nanos_since(start);
    let mut failed_attempts: Vec<(&'static str, String)> = stats
        .failed_attempts
        .iter()
        .map(|s| (code_name(s.code()), error_chain(s)))
        .collect();
    let result = match result {
        Ok(r) => {
            let first = r.rejections.first().map(|x| {
                format!(
                    "series {} sample {}: {}",
                    x.series_index, x.sample_index, x.reason
                )
            });
            Ok((r.samples_accepted, r.rejections.len() as u64, first))
        }
        Err(e) => {
            // A failure before any RPC (none today) still counts.
            if e.status().is_none() {
                failed_attempts.push(("CLIENT", e.to_string()));
            }
            Err(())
        }
    };
    Outcome {
        batch,
        result,
        failed_attempts,
        rpcs: stats.rpcs,
        retried: stats.rpcs > stats.parts as u64,
        map_refreshes: u64::from(stats.map_refreshes),
        latency_ns,
    }
}

/// Writes one request as a remote-write POST (retrying 429, 5xx and
/// connection failures up to `attempts_max` attempts in all) and times it.
async fn remote_write(
    url: Arc<HttpUrl>,
    series: Arc<[pb::Series]>,
    batch: usize,
    attempts_max: u32,
    timeout: Duration,
    clock: Arc<SystemClock>,
) -> Outcome {
    let start = clock.now_mono();
    let samples: u64 = series.iter().map(|s| s.samples.len() as u64).sum();
    let body = remote_write_body(&series);
    let headers = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ("User-Agent", "raftwatch-bench"),
    ];
    let mut failed_attempts: Vec<(&'static str, String)> = Vec::new();
    let mut rpcs = 0u64;
    let result = loop {
        rpcs += 1;
        let answer =
            http1::request(&url.authority, "POST", &url.path, &headers, &body, timeout).await;
        let last = rpcs >= u64::from(attempts_max.max(1));
        let (kind, message, retry_after_s) = match answer {
            Ok(r) if (200..300).contains(&r.status) => break Ok((samples, 0, None)),
            Ok(r) if r.status == 400 => {
                // Not retried: the same body would be refused again.
                let text = String::from_utf8_lossy(&r.body).into_owned();
                let committed = committed_count(&text).unwrap_or(0).min(samples);
                failed_attempts.push(("HTTP 400", first_line(&text)));
                break Ok((committed, 0, None));
            }
            Ok(r) => {
                let retry_after_s = r
                    .header("retry-after")
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.1);
                let text = String::from_utf8_lossy(&r.body).into_owned();
                (http_kind(r.status), first_line(&text), retry_after_s)
            }
            Err(e) => ("CONNECTION", format!("{e:#}"), 0.1),
        };
        failed_attempts.push((kind, message));
        if last || !(kind == "HTTP 429" || kind.starts_with("HTTP 5") || kind == "CONNECTION") {
            break Err(());
        }
        tokio::time::sleep(Duration::from_secs_f64(retry_after_s.clamp(0.01, 1.0))).await;
    };
    Outcome {
        batch,
        result,
        failed_attempts,
        rpcs,
        retried: rpcs > 1,
        map_refreshes: 0,
        latency_ns: clock.now_mono().nanos_since(start),
    }
}

/// The snappy-compressed `prometheus.WriteRequest` of `series` (labels are
/// already sorted by name: they come from canonical `Labels`).
fn remote_write_body(series: &[pb::Series]) -> Vec<u8> {
    let req = prom::WriteRequest {
        timeseries: series
            .iter()
            .map(|s| prom::TimeSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|l| prom::Label {
                        name: l.name.clone(),
                        value: l.value.clone(),
                    })
                    .collect(),
                samples: s
                    .samples
                    .iter()
                    .map(|x| prom::Sample {
                        value: x.value,
                        timestamp: x.timestamp_ms,
                    })
                    .collect(),
                histograms: Vec::new(),
            })
            .collect(),
    };
    // Compressing an in-memory buffer cannot fail but for a body over
    // snappy's 4 GiB limit, far beyond a request.
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap_or_default()
}

/// The error kind of a status that is not success or 400.
fn http_kind(status: u16) -> &'static str {
    match status {
        404 => "HTTP 404",
        413 => "HTTP 413",
        415 => "HTTP 415",
        429 => "HTTP 429",
        503 => "HTTP 503",
        500..=599 => "HTTP 5xx",
        _ => "HTTP other",
    }
}

/// `N` from raftwatch's 400 body `N samples committed, M refused: ...`.
fn committed_count(body: &str) -> Option<u64> {
    body.split_once(" samples committed")
        .and_then(|(n, _)| n.trim().parse().ok())
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(300)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_write_bodies_decode_as_prometheus_sends_them() {
        let series = vec![pb::Series {
            labels: vec![
                pb::Label {
                    name: "__name__".into(),
                    value: "up".into(),
                },
                pb::Label {
                    name: "job".into(),
                    value: "node".into(),
                },
            ],
            samples: vec![pb::Sample {
                timestamp_ms: 5,
                value: 1.5,
            }],
        }];
        let body = remote_write_body(&series);
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let req = prom::WriteRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), 1);
        assert_eq!(req.timeseries[0].labels[1].value, "node");
        assert_eq!(req.timeseries[0].samples[0].timestamp, 5);
        assert_eq!(req.timeseries[0].samples[0].value, 1.5);
    }

    #[test]
    fn counts_from_refusal_bodies() {
        assert_eq!(
            committed_count("7 samples committed, 3 refused:\nseries 0 ..."),
            Some(7)
        );
        assert_eq!(committed_count("out of order sample"), None);
        assert_eq!(http_kind(503), "HTTP 503");
        assert_eq!(http_kind(500), "HTTP 5xx");
    }
}
