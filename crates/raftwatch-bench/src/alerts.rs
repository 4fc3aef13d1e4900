//! `raftwatch-bench alerts`: notification latency, from a threshold being
//! crossed to the webhook receiving the page.
//!
//! The bench runs its own webhook receiver, applies a rule group
//! (`bench_alert_value > 0`, `for: 0s`, at `--interval`) and an
//! Alertmanager configuration that sends every alert at once
//! (`group_wait: 0s`, grouped by round) to that receiver — replacing the
//! cluster's configuration, so run it against a scratch cluster such as
//! `raftwatch dev`. Then, round after round: write one sample crossing
//! the threshold for a fresh series; the latency is from the write's
//! acknowledgement to the firing notification's arrival. The series is
//! then ended with a staleness marker so alerts do not pile up.
//!
//! What the figure contains: up to one evaluation interval of waiting for
//! the next evaluation slot (rounds start at a random phase), the
//! linearizable query, the commit of the evaluation, the leader's
//! delivery loop (every 250 ms) and the POST.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use raftwatch_proto::v1 as pb;
use raftwatch_seams::{Clock, DetRng, MonoNanos, SystemClock, entropy_seed};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::grpc::{self, Target};

const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// `AlertsArgs` are the command's flags.
#[derive(clap::Args, Debug)]
pub struct AlertsArgs {
    /// A node's gRPC address (`grpc://HOST:PORT`).
    #[arg(long)]
    pub target: String,
    /// Rounds (one alert each).
    #[arg(long, default_value_t = 50)]
    pub rounds: u32,
    /// The rule group's evaluation interval, seconds.
    #[arg(long, default_value_t = 1)]
    pub interval_s: u64,
    /// Where the receiver listens (the cluster must reach it).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Give up on a round after this many seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout_s: u64,
}

/// `AlertsReport` is the command's output.
#[derive(Debug, Serialize)]
pub struct AlertsReport {
    /// Rounds measured.
    pub rounds: u32,
    /// Rounds whose notification never came within the timeout.
    pub missed: u32,
    /// Evaluation interval, ms.
    pub interval_ms: u64,
    /// Latency percentiles, ms: write acknowledged → webhook received.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Fastest.
    pub min_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Distinct idempotency keys received for the rounds' firing alerts
    /// (one per round when nothing is duplicated under a new identity).
    pub firing_keys: usize,
}

type Arrivals = Arc<Mutex<BTreeMap<String, (MonoNanos, String)>>>;

/// `run` measures.
pub fn run(args: &AlertsArgs) -> anyhow::Result<AlertsReport> {
    let Target::Grpc(url) = Target::parse(&args.target)? else {
        bail!("--target must be grpc://HOST:PORT");
    };
    if args.rounds == 0 || args.interval_s == 0 {
        bail!("--rounds and --interval-s must be positive");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(measure(url, args))
}

async fn measure(url: String, args: &AlertsArgs) -> anyhow::Result<AlertsReport> {
    let clock = Arc::new(SystemClock::new());
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let arrivals: Arrivals = Arc::default();
    {
        let (arrivals, clock) = (arrivals.clone(), clock.clone());
        raftwatch_raft::rt::spawn(0, async move {
            while let Ok((s, _)) = listener.accept().await {
                let (arrivals, clock) = (arrivals.clone(), clock.clone());
                raftwatch_raft::rt::spawn(0, async move {
                    let _ = receive(s, &arrivals, clock.as_ref()).await;
                });
            }
        });
    }
    let ch = raftwatch_client::endpoint::endpoint(
        &url,
        Duration::from_secs(5),
        Duration::from_secs(args.timeout_s),
    )?
    .connect()
    .await
    .with_context(|| format!("connecting to {url}"))?;
    let mut admin = pb::admin_client::AdminClient::new(ch.clone());
    let mut ingest = pb::ingest_client::IngestClient::new(ch);
    let rules = format!(
        "groups:\n  - name: raftwatch-bench-latency\n    interval: {}s\n    rules:\n      - alert: BenchLatency\n        expr: bench_alert_value > 0\n",
        args.interval_s
    );
    admin
        .apply_rules(pb::ApplyRulesRequest {
            yaml: rules,
            expected_version: 0,
        })
        .await
        .context("applying the rule group")?;
    let am = format!(
        "route:\n  receiver: bench\n  group_by: [alertname, round]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 24h\nreceivers:\n  - name: bench\n    webhook_configs:\n      - url: http://{addr}/hook\n"
    );
    admin
        .set_alertmanager_config(pb::SetAlertmanagerConfigRequest {
            yaml: am,
            expected_version: 0,
        })
        .await
        .context("applying the Alertmanager configuration")?;
    let run_id = entropy_seed() % 1_000_000;
    let mut rng = DetRng::new(entropy_seed());
    let mut latencies = Vec::new();
    let mut missed = 0;
    for r in 0..args.rounds {
        // A random phase against the evaluation slots.
        let pause = rng.next_u64() % (args.interval_s * 1000);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let round = format!("{run_id}-{r}");
        let series = |value: f64| pb::Series {
            labels: vec![
                pb::Label {
                    name: "__name__".into(),
                    value: "bench_alert_value".into(),
                },
                pb::Label {
                    name: "round".into(),
                    value: round.clone(),
                },
            ],
            samples: vec![pb::Sample {
                timestamp_ms: clock.now_wall().0,
                value,
            }],
        };
        ingest
            .write(pb::WriteRequest {
                series: vec![series(1.0)],
                ..Default::default()
            })
            .await
            .context("writing the crossing sample")?;
        let acked = clock.now_mono();
        let deadline = acked.0 + args.timeout_s * 1_000_000_000;
        let arrived = loop {
            let got = arrivals.lock().ok().and_then(|a| a.get(&round).cloned());
            if let Some((at, _)) = got {
                break Some(at);
            }
            if clock.now_mono().0 > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        match arrived {
            Some(at) => latencies.push(at.nanos_since(acked)),
            None => missed += 1,
        }
        ingest
            .write(pb::WriteRequest {
                series: vec![series(f64::from_bits(STALE_NAN))],
                ..Default::default()
            })
            .await
            .context("ending the series")?;
    }
    let firing_keys = arrivals
        .lock()
        .map(|a| {
            a.values()
                .map(|(_, k)| k.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        })
        .unwrap_or(0);
    latencies.sort_unstable();
    let last = latencies.last().copied().unwrap_or(0);
    let first = latencies.first().copied().unwrap_or(0);
    Ok(AlertsReport {
        rounds: args.rounds,
        missed,
        interval_ms: args.interval_s * 1000,
        p50_ms: grpc::percentile_ms(&latencies, 0.5),
        p99_ms: grpc::percentile_ms(&latencies, 0.99),
        min_ms: first as f64 / 1e6,
        max_ms: last as f64 / 1e6,
        firing_keys,
    })
}

/// Reads one POST, records the first firing arrival of each round with
/// its idempotency key, answers 200.
async fn receive(
    stream: tokio::net::TcpStream,
    arrivals: &Arrivals,
    clock: &SystemClock,
) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let (mut len, mut key) = (0usize, String::new());
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).await? == 0 || h == "\r\n" {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => len = value.trim().parse().unwrap_or(0),
                "idempotency-key" => key = value.trim().to_string(),
                _ => {}
            }
        }
    }
    if len > 16 << 20 {
        bail!("body too large");
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await?;
    let now = clock.now_mono();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(alerts) = v["alerts"].as_array()
        && let Ok(mut a) = arrivals.lock()
    {
        for alert in alerts {
            if alert["status"] == "firing"
                && let Some(round) = alert["labels"]["round"].as_str()
            {
                a.entry(round.to_string()).or_insert((now, key.clone()));
            }
        }
    }
    write
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await?;
    Ok(())
}
