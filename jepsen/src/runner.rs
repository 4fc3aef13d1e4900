//! One run: build the network, start the cluster, run the workloads with
//! the nemesis for the time limit, heal, let the cluster recover, read the
//! final state, check, and write the results directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use raftwatch_proto::v1 as pb;
use raftwatch_seams::DetRng;
use serde_json::{Value, json};
use tokio::runtime::Handle;

use crate::checkers::{self, AlertsEvidence, Verdict};
use crate::cluster::{Cluster, ctl_at};
use crate::history::{self, Outcome, Recorder};
use crate::nemesis::Nemesis;
use crate::net::Network;
use crate::plot;
use crate::receiver::Receiver;
use crate::wgl;
use crate::workloads::{self, AppendShared, Ctx, NotificationLog};

/// Port of the webhook receiver.
pub const HOOK_PORT: u16 = 9099;

/// `RunConfig` is what `raftwatch-jepsen run` was asked to do.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Servers.
    pub nodes: u64,
    /// Seconds of faults and load.
    pub time_limit_s: u64,
    /// Enabled nemeses.
    pub nemesis: Vec<String>,
    /// Enabled workloads.
    pub workloads: Vec<String>,
    /// Seed of every random choice of the harness.
    pub seed: u64,
    /// Results directory.
    pub out: PathBuf,
    /// Planted bug to arm in the servers.
    pub inject_bug: Option<String>,
    /// Seconds of recovery (faults healed, load on) before the final reads.
    pub recovery_s: u64,
    /// The command line, for the results.
    pub command: String,
}

/// `Outputs` is what the run produced.
#[derive(Debug)]
pub struct Outputs {
    /// `true`, `false` or `"unknown"`.
    pub valid: Value,
    /// One line per checker for the terminal.
    pub summary: Vec<String>,
}

/// Handles of the runtimes inside the namespaces.
#[derive(Debug, Clone)]
pub struct Runtimes {
    /// The clients' runtime (namespace `rwj-client`).
    pub client: Handle,
    /// The receiver's runtime (namespace `rwj-hook`).
    pub hook: Handle,
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Waits until the cluster has a control leader and every shard a leader.
async fn wait_ready(cluster: &Mutex<Cluster>, timeout: Duration) -> Result<Value, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("no answer");
    let (options, endpoints) = {
        let c = cluster.lock().unwrap_or_else(PoisonError::into_inner);
        (c.options().clone(), c.endpoints())
    };
    let mut i = 0;
    while tokio::time::Instant::now() < deadline {
        i += 1;
        let ep = &endpoints[i % endpoints.len()];
        match ctl_at(&options, ep, &["cluster", "status"]).await {
            Ok(v) => {
                let shards = v["shards"].as_array().cloned().unwrap_or_default();
                let ready = !v["control_leader"].is_null()
                    && !shards.is_empty()
                    && shards.iter().all(|s| !s["leader"].is_null());
                if ready {
                    return Ok(v);
                }
                last = format!("not ready: {v}");
            }
            Err(e) => last = e.to_string(),
        }
        {
            let mut c = cluster.lock().unwrap_or_else(PoisonError::into_inner);
            let gone = c.exited();
            if !gone.is_empty() {
                return Err(format!("nodes exited while starting: {gone:?}"));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("cluster not ready after {timeout:?}: {last}"))
}

/// `run` executes one run; `Err` is a harness failure (exit 2).
pub async fn run(
    config: RunConfig,
    cluster: Arc<Mutex<Cluster>>,
    net: Arc<Network>,
    rts: Runtimes,
) -> Result<Outputs, String> {
    let rec = Arc::new(Recorder::new());
    {
        let mut c = cluster.lock().unwrap_or_else(PoisonError::into_inner);
        let ids: Vec<u64> = c.nodes().map(|n| n.id).collect();
        for id in ids {
            c.start(id).map_err(|e| e.to_string())?;
        }
    }
    let status = wait_ready(&cluster, Duration::from_secs(90)).await?;
    tracing::info!(
        shards = status["shards"].as_array().map_or(0, Vec::len),
        "cluster ready"
    );
    let endpoints = cluster
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .endpoints();
    let hook_ip = net.host("hook").map(|h| h.ip).ok_or("no hook namespace")?;
    let hook_url = format!("http://{hook_ip}:{HOOK_PORT}/hook");
    let receiver = Receiver::new(rec.clone());
    rts.hook.spawn(
        receiver
            .clone()
            .serve(SocketAddr::from((hook_ip, HOOK_PORT))),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let ctx = Arc::new(Ctx {
        rec: rec.clone(),
        endpoints: endpoints.clone(),
        stop: stop.clone(),
        next_process: AtomicU64::new(0),
        seed: config.seed,
        base_ms: workloads::wall_ms(),
    });
    let has = |w: &str| config.workloads.iter().any(|x| x == w);

    // Everything that makes sockets runs on the clients' runtime.
    let eps = endpoints.clone();
    let seed = config.seed;
    let (client, channels) = rts
        .client
        .spawn(async move {
            let client = workloads::data_client(&eps, seed).map_err(|e| e.to_string())?;
            let channels: Result<Vec<_>, String> = eps
                .iter()
                .map(|e| workloads::admin_channel(e).map_err(|e| e.to_string()))
                .collect();
            Ok::<_, String>((Arc::new(client), Arc::new(channels?)))
        })
        .await
        .map_err(|e| e.to_string())??;

    if has("alerts") {
        let chs = channels.clone();
        let url = hook_url.clone();
        rts.client
            .spawn(async move { workloads::alerts_setup(&chs, &url).await })
            .await
            .map_err(|e| e.to_string())??;
    }

    let shared = Arc::new(AppendShared::default());
    let notes = Arc::new(NotificationLog::default());
    let mut tasks = Vec::new();
    if has("append") {
        let writers = 4;
        for w in 0..writers {
            tasks.push(rts.client.spawn(workloads::append_writer(
                ctx.clone(),
                client.clone(),
                shared.clone(),
                w,
                150,
            )));
        }
        for r in 0..3 {
            tasks.push(rts.client.spawn(workloads::append_reader(
                ctx.clone(),
                client.clone(),
                shared.clone(),
                r,
                0.7,
            )));
        }
    }
    if has("register") {
        for i in 0..3 {
            tasks.push(rts.client.spawn(workloads::register_client(
                ctx.clone(),
                channels.clone(),
                i,
                3,
            )));
        }
    }
    if has("alerts") {
        tasks.push(rts.client.spawn(workloads::alerts_client(
            ctx.clone(),
            client.clone(),
            channels.clone(),
            6,
        )));
        tasks.push(
            rts.client
                .spawn(notes.clone().observe(ctx.clone(), channels.clone())),
        );
    }

    // Crashes (a server exiting by itself) are findings; the node is
    // restarted so the run goes on.
    let crashes: Arc<Mutex<Vec<String>>> = Arc::default();
    let monitor = {
        let cluster = cluster.clone();
        let crashes = crashes.clone();
        let rec = rec.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let mut c = cluster.lock().unwrap_or_else(PoisonError::into_inner);
                for (id, status) in c.exited() {
                    let text = format!("node {id} exited by itself ({status})");
                    rec.nemesis("info", "crash", text.clone(), None);
                    crashes
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(text);
                    let _ = c.start(id);
                }
            }
        })
    };

    let nemesis = Nemesis {
        cluster: cluster.clone(),
        net: net.clone(),
        rec: rec.clone(),
        faults: config.nemesis.clone(),
        rng: DetRng::new(config.seed ^ 0x4E45_4D45),
    };
    let nemesis_stop = Arc::new(AtomicBool::new(false));
    let until = config.time_limit_s as f64;
    let nemesis_task = tokio::spawn(nemesis.run(until, nemesis_stop.clone()));
    tokio::time::sleep(Duration::from_secs(config.time_limit_s)).await;
    nemesis_stop.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(30), nemesis_task).await;
    let errors = Nemesis::heal_all(&cluster, &net);
    rec.nemesis(
        "stop",
        "all",
        "healed everything; recovery period".into(),
        (!errors.is_empty()).then(|| errors.join("; ")),
    );
    tokio::time::sleep(Duration::from_secs(config.recovery_s)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    monitor.abort();

    // Final state.
    let keys: Vec<String> = {
        let mut k = shared
            .all
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        k.sort();
        k.dedup();
        k
    };
    let missing = {
        let ctx = ctx.clone();
        let client = client.clone();
        rts.client
            .spawn(async move { workloads::final_reads(&ctx, &client, &keys, 60).await })
            .await
            .map_err(|e| e.to_string())?
    };
    let mut evidence = AlertsEvidence::default();
    if has("alerts") {
        let ctx2 = ctx.clone();
        let chs = channels.clone();
        let notes2 = notes.clone();
        let (silences, complete) = rts
            .client
            .spawn(async move { finish_alerts(&ctx2, &chs, &notes2).await })
            .await
            .map_err(|e| e.to_string())?;
        evidence.silences = silences;
        evidence.silence_first_seen = notes
            .silence_first_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        evidence.complete = complete;
        evidence.notifications = notes
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        evidence.deliveries = receiver.deliveries();
    }

    // Check.
    let ops = rec.ops();
    let nemesis_events = rec.nemesis_events();
    let mut verdicts: Vec<Verdict> = Vec::new();
    if has("append") {
        verdicts.push(checkers::check_append(&ops, wgl::DEFAULT_BUDGET));
    }
    if has("register") {
        verdicts.push(checkers::check_register(&ops, wgl::DEFAULT_BUDGET));
    }
    if has("alerts") {
        verdicts.push(checkers::check_alerts(&ops, &evidence));
    }
    let crashes = crashes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let any_false = verdicts.iter().any(Verdict::failed) || !crashes.is_empty();
    let any_unknown = verdicts.iter().any(|v| v.valid == json!("unknown")) || missing > 0;
    let valid = if any_false {
        json!(false)
    } else if any_unknown {
        json!("unknown")
    } else {
        json!(true)
    };

    std::fs::create_dir_all(&config.out).map_err(|e| e.to_string())?;
    history::write_jsonl(&config.out.join("history.jsonl"), &ops, &nemesis_events)
        .map_err(|e| format!("history.jsonl: {e}"))?;
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for op in &ops {
        let o = match op.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        };
        *totals.entry(format!("ops_{o}")).or_default() += 1;
    }
    totals.insert("ops".into(), ops.len() as u64);
    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    for e in nemesis_events.iter().filter(|e| e.phase == "start") {
        *faults.entry(e.fault.clone()).or_default() += 1;
    }
    let results = json!({
        "valid": valid,
        "seed": config.seed,
        "nodes": config.nodes,
        "time_limit_s": config.time_limit_s,
        "recovery_s": config.recovery_s,
        "nemesis": config.nemesis,
        "workloads": config.workloads,
        "inject_bug": config.inject_bug,
        "command": config.command,
        "counts": totals,
        "faults": faults,
        "crashes": crashes,
        "final_reads_missing": missing,
        "checkers": verdicts,
        "nemesis_timeline": nemesis_events,
        "elapsed_s": secs(rec.now_ns()),
    });
    let text = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    std::fs::write(config.out.join("results.json"), text).map_err(|e| e.to_string())?;
    render_plot(
        &config.out.join("latency.png"),
        &config,
        &ops,
        &nemesis_events,
        rec.now_ns(),
    )?;

    let mut summary: Vec<String> = verdicts
        .iter()
        .map(|v| {
            format!(
                "{}: valid={} counts={:?} anomalies={:?}",
                v.checker, v.valid, v.counts, v.anomaly_counts
            )
        })
        .collect();
    for c in &crashes {
        summary.push(format!("crash: {c}"));
    }
    for v in &verdicts {
        for a in &v.anomalies {
            summary.push(format!("  {}: {a}", v.checker));
        }
    }
    Ok(Outputs { valid, summary })
}

/// Expires every silence (so every triggered alert must be notified),
/// waits for the notification log to drain, and reads it and the
/// silences a last time. Returns the silences and whether the final reads
/// succeeded.
async fn finish_alerts(
    ctx: &Ctx,
    channels: &[tonic::transport::Channel],
    notes: &NotificationLog,
) -> (Vec<pb::SilenceInfo>, bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut i = 0;
    // Expire what is still active or pending.
    loop {
        i += 1;
        let mut admin = pb::admin_client::AdminClient::new(channels[i % channels.len()].clone());
        let list = admin
            .list_silences(pb::ListSilencesRequest {
                consistency: pb::Consistency::Linearizable as i32,
            })
            .await;
        match list {
            Ok(r) => {
                let live: Vec<pb::SilenceInfo> = r
                    .into_inner()
                    .silences
                    .into_iter()
                    .filter(|s| s.state != "expired")
                    .collect();
                if live.is_empty() {
                    break;
                }
                for s in live {
                    let key = s.matchers.join(",");
                    let p = ctx
                        .rec
                        .invoke(ctx.process(), "alerts", "expire", &key, json!(s.id));
                    match admin
                        .expire_silence(pb::ExpireSilenceRequest { id: s.id.clone() })
                        .await
                    {
                        Ok(_) => ctx.rec.complete(p, Outcome::Ok, Value::Null, None),
                        Err(e) => {
                            ctx.rec
                                .complete(p, Outcome::Info, Value::Null, Some(e.to_string()))
                        }
                    }
                }
            }
            Err(_) if tokio::time::Instant::now() > deadline => break,
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    // Evaluations and dispatch notice the expiries, and deliveries drain.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mut complete = false;
    while tokio::time::Instant::now() < deadline {
        i += 1;
        match notes.poll(channels[i % channels.len()].clone()).await {
            Ok(0) => {
                complete = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    let mut silences = Vec::new();
    let mut got = false;
    while tokio::time::Instant::now() < deadline + Duration::from_secs(30) {
        i += 1;
        let mut admin = pb::admin_client::AdminClient::new(channels[i % channels.len()].clone());
        if let Ok(r) = admin
            .list_silences(pb::ListSilencesRequest {
                consistency: pb::Consistency::Linearizable as i32,
            })
            .await
        {
            silences = r.into_inner().silences;
            got = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    (silences, complete && got)
}

fn render_plot(
    path: &Path,
    config: &RunConfig,
    ops: &[history::Op],
    events: &[history::NemesisEvent],
    end_ns: u64,
) -> Result<(), String> {
    let plot_ops = ops
        .iter()
        .map(|o| plot::PlotOp {
            t_s: secs(o.invoke_ns),
            latency_ms: (o.complete_ns.saturating_sub(o.invoke_ns)) as f64 / 1e6,
            f: format!("{} {}", o.workload, o.f),
            outcome: match o.outcome {
                Outcome::Ok => plot::Outcome::Ok,
                Outcome::Fail => plot::Outcome::Fail,
                Outcome::Info => plot::Outcome::Info,
            },
        })
        .collect();
    let mut faults = Vec::new();
    let mut open: BTreeMap<String, (f64, String)> = BTreeMap::new();
    for e in events {
        match e.phase.as_str() {
            "start" => {
                open.insert(e.fault.clone(), (secs(e.time_ns), e.detail.clone()));
            }
            "stop" => {
                if let Some((start, detail)) = open.remove(&e.fault) {
                    faults.push(plot::FaultWindow {
                        start_s: start,
                        end_s: secs(e.time_ns),
                        name: e.fault.clone(),
                        detail,
                    });
                }
            }
            _ => {}
        }
    }
    for (name, (start, detail)) in open {
        faults.push(plot::FaultWindow {
            start_s: start,
            end_s: secs(end_ns),
            name,
            detail,
        });
    }
    let input = plot::PlotInput {
        title: format!(
            "raftwatch-jepsen seed {} · {} nodes · nemesis {} · {}",
            config.seed,
            config.nodes,
            config.nemesis.join(","),
            config
                .inject_bug
                .as_deref()
                .map_or(String::new(), |b| format!("bug {b}"))
        ),
        duration_s: secs(end_ns),
        ops: plot_ops,
        faults,
    };
    plot::render(path, &input).map_err(|e| format!("latency.png: {e}"))
}
