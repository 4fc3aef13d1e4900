//! `raftwatch-bench ingest`: write throughput and latency of a running
//! cluster through `raftwatch.v1.Ingest/Write`.
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
//! series in every round) and sent with at most `--concurrency` requests in
//! flight over one HTTP/2 channel. Round r+1's request for a batch starts
//! only once round r's request for that batch has been answered, so every
//! series' samples arrive in time order; otherwise the rounds overlap
//! freely. A failed request is counted in `errors` under its gRPC code and
//! not retried unless `--retries` says so: the bench measures, retrying is
//! the client library's job.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use raftwatch_proto::v1 as pb;
use raftwatch_proto::v1::ingest_client::IngestClient;
use raftwatch_seams::{Clock, SystemClock};
use serde::Serialize;
use tonic::Code;
use tonic::transport::Channel;

use crate::cpu::{self, CpuScope};
use crate::grpc::{self, Target, Unsupported};
use crate::nodegen::{Fleet, SCRAPE_INTERVAL_MS};

/// Arguments of `raftwatch-bench ingest`.
#[derive(clap::Args, Debug, Clone)]
pub struct IngestArgs {
    /// `grpc://HOST:PORT` (any node's gRPC address) or
    /// `http://HOST:PORT/api/v1/write` (not supported yet).
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
    /// Retries per failed request (UNAVAILABLE, RESOURCE_EXHAUSTED,
    /// DEADLINE_EXCEEDED, ABORTED only), with a request id so the cluster
    /// applies a retried request at most once. Every failed attempt still
    /// counts in `errors`.
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// Deadline of one request (and of connecting), in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
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
    /// Failed requests by gRPC code name, and `rejected`: samples the
    /// cluster refused one by one in OK responses.
    errors: BTreeMap<String, u64>,
    /// The first message seen for each kind in `errors`.
    error_examples: BTreeMap<String, String>,
    wall_s: f64,
    requests: u64,
    retried_requests: u64,
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
    let host_port = match Target::parse(&args.target)? {
        Target::Grpc(host_port) => host_port,
        Target::Http(_) => {
            return Err(Unsupported("remote write arrives with the HTTP API issue".into()).into());
        }
    };
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
    rt.block_on(run_async(args.clone(), host_port, next_start_ms))
}

/// What one request came to.
struct Outcome {
    batch: usize,
    /// For an OK response: samples accepted, samples rejected and the
    /// first rejection's description.
    result: Result<(u64, u64, Option<String>), (Code, String)>,
    /// Failed attempts before the last one (only with `--retries`).
    failed_attempts: Vec<(Code, String)>,
    latency_ns: u64,
}

/// The totals so far.
#[derive(Default)]
struct Tally {
    acked: u64,
    requests: u64,
    retried: u64,
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
        if !o.failed_attempts.is_empty() {
            self.retried += 1;
        }
        for (code, message) in &o.failed_attempts {
            self.error(grpc::code_name(*code), 1, message);
        }
        match o.result {
            Ok((accepted, rejected, first_rejection)) => {
                self.acked += accepted;
                self.latencies_ns.push(o.latency_ns);
                if let Some(first) = first_rejection {
                    self.error("rejected", rejected, &first);
                }
            }
            Err((code, message)) => self.error(grpc::code_name(code), 1, &message),
        }
    }
}

async fn run_async(
    args: IngestArgs,
    host_port: String,
    next_start_ms: i64,
) -> anyhow::Result<IngestReport> {
    let timeout = Duration::from_secs(args.timeout_s.max(1));
    let channel = grpc::connect(&host_port, timeout).await?;
    let client = IngestClient::new(channel);

    eprintln!("generating {} series", args.series);
    let mut fleet = Fleet::new(args.series, args.seed)?;
    // Label sets never change, so they are converted once; each request
    // clones its batch's.
    let labels: Vec<Vec<pb::Label>> = fleet
        .series
        .iter()
        .map(|s| {
            s.labels
                .iter()
                .map(|l| pb::Label {
                    name: l.name.clone(),
                    value: l.value.clone(),
                })
                .collect()
        })
        .collect();
    let batches = args.series.div_ceil(args.batch_series);

    let clock = Arc::new(SystemClock::new());
    let scope = CpuScope::for_port(Target::Grpc(host_port.clone()).port());
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
            // Built before waiting for a slot, so generating overlaps the
            // requests in flight.
            let series = (lo..hi)
                .map(|i| pb::Series {
                    labels: labels[i].clone(),
                    samples: vec![pb::Sample {
                        timestamp_ms: round_ms + fleet.offsets_ms[i],
                        value: fleet.series[i].next_value(),
                    }],
                })
                .collect::<Vec<_>>();
            let request = pb::WriteRequest {
                series,
                request_id: if args.retries > 0 {
                    format!(
                        "bench-{}-{}-{}-{round}-{batch}",
                        args.seed, args.start_ms, args.series
                    )
                } else {
                    String::new()
                },
                ..Default::default()
            };
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
            in_flight.push(raftwatch_raft::rt::spawn(
                args.seed,
                send(client.clone(), request, batch, args.retries, clock.clone()),
            ));
        }
        eprintln!(
            "round {}/{} sent: {} samples acked, {} requests failed, {:.1} s",
            round + 1,
            args.rounds,
            tally.acked,
            tally
                .errors
                .iter()
                .filter(|(k, _)| *k != "rejected")
                .map(|(_, v)| v)
                .sum::<u64>(),
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
        retried_requests: tally.retried,
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

/// Whether a failed write may succeed if sent again.
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::ResourceExhausted | Code::DeadlineExceeded | Code::Aborted
    )
}

/// Sends one request (and its retries) and times it.
async fn send(
    mut client: IngestClient<Channel>,
    mut request: pb::WriteRequest,
    batch: usize,
    retries: u32,
    clock: Arc<SystemClock>,
) -> Outcome {
    let start = clock.now_mono();
    let mut failed_attempts = Vec::new();
    let mut attempt = 0u32;
    let result = loop {
        let last = attempt >= retries;
        // Clone only when a retry may need the request again.
        let body = if last {
            std::mem::take(&mut request)
        } else {
            request.clone()
        };
        match client.write(body).await {
            Ok(response) => {
                let r = response.into_inner();
                let first = r.rejections.first().map(|x| {
                    format!(
                        "series {} sample {}: {}",
                        x.series_index, x.sample_index, x.reason
                    )
                });
                break Ok((r.samples_accepted, r.rejections.len() as u64, first));
            }
            Err(status) => {
                let failure = (status.code(), grpc::error_chain(&status));
                if last || !retryable(status.code()) {
                    break Err(failure);
                }
                failed_attempts.push(failure);
                let backoff_ms = (50u64 << attempt.min(5)).min(1_000);
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                attempt += 1;
            }
        }
    };
    Outcome {
        batch,
        result,
        failed_attempts,
        latency_ns: clock.now_mono().nanos_since(start),
    }
}
