//! The clients: concurrent processes that run operations against the
//! cluster and record each one in the [`Recorder`].
//!
//! - `append`: one writer per series appends samples with increasing
//!   timestamps (and moves to a fresh series after `max_per_key`, so reads
//!   stay small); readers read whole series, linearizable or stale.
//! - `register`: processes read, write and compare-and-set cluster
//!   settings (`SetSetting` with `expected_value`, `GetSetting`).
//! - `alerts`: a process flips alert triggers and adds and expires
//!   silences; the control plane's rules fire alerts and its notification
//!   log drives webhooks into [`crate::receiver`].
//!
//! Outcomes: `ok` on success; `fail` only for a definite refusal
//! (`INVALID_ARGUMENT`, `FAILED_PRECONDITION` from the state machine, or a
//! sample the shard rejected); everything else (timeouts, unavailable,
//! cancelled) is `info`, and the process that saw it retires, as in Jepsen.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use raftwatch_client::{Client, ClientConfig, ClientError, Routing};
use raftwatch_proto::v1 as pb;
use raftwatch_seams::DetRng;
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use crate::history::{Outcome, Pending, Recorder};

/// The metric the append workload writes.
pub const APPEND_METRIC: &str = "jepsen_append";
/// The metric whose value (0 or 1) drives each alert of the alerts workload.
pub const TRIGGER_METRIC: &str = "jepsen_alert_trigger";
/// The alerting rule's name.
pub const ALERT_NAME: &str = "JepsenAlert";
/// The setting keys of the register workload start with this.
pub const REGISTER_PREFIX: &str = "jepsen.register.";

/// The register workload moves to fresh keys this often, as Jepsen's
/// independent-key tests do: each key's history stays a few hundred
/// operations long, so its linearizability search (exponential in the
/// operations that are concurrent or never returned) stays within budget.
/// One 150 s run with a single generation left about 3,500 operations and
/// 275 timed-out writes per key, and the search gave up.
pub const REGISTER_GENERATION_MS: i64 = 10_000;
/// How long one operation may take before it is recorded as `info`.
pub const OP_TIMEOUT: Duration = Duration::from_secs(4);

/// `Ctx` is what every client task shares.
#[derive(Debug)]
pub struct Ctx {
    /// The history.
    pub rec: Arc<Recorder>,
    /// Every node's gRPC endpoint.
    pub endpoints: Vec<String>,
    /// Set when the workloads must stop.
    pub stop: Arc<AtomicBool>,
    /// Process ids are handed out from here.
    pub next_process: AtomicU64,
    /// The run's seed.
    pub seed: u64,
    /// Wall-clock ms at the start: sample timestamps are offsets from it.
    pub base_ms: i64,
}

impl Ctx {
    /// A fresh process id.
    pub fn process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// `wall_ms` is the harness's wall clock in ms (the harness runs in real
/// time; only the servers' clocks are skewed).
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `data_client` makes a client for the data path: few, short attempts,
/// so an operation's fate is decided within [`OP_TIMEOUT`].
pub fn data_client(endpoints: &[String], seed: u64) -> Result<Client, ClientError> {
    let config = ClientConfig {
        attempts_max: 4,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(300),
        request_timeout: Duration::from_millis(900),
        connect_timeout: Duration::from_millis(500),
        seed: seed.max(1),
        routing: Routing::ShardLeaders,
        ..ClientConfig::default()
    };
    Client::new(endpoints.to_vec(), config)
}

/// `admin_channel` is a lazily connected channel to `endpoint` with a
/// per-call timeout (one attempt per operation: a control-plane write is
/// not idempotent, so the harness never retries it).
pub fn admin_channel(endpoint: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(endpoint.to_string())?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(2))
        .connect_lazy())
}

/// Whether an error status certainly means "not applied".
fn definite(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::InvalidArgument | Code::FailedPrecondition | Code::NotFound | Code::AlreadyExists
    )
}

fn client_error_outcome(e: &ClientError) -> Outcome {
    match e {
        ClientError::Refused(s) if definite(s) => Outcome::Fail,
        ClientError::Endpoint(_) => Outcome::Fail,
        _ => Outcome::Info,
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<pb::Label> {
    pairs
        .iter()
        .map(|(n, v)| pb::Label {
            name: (*n).to_string(),
            value: (*v).to_string(),
        })
        .collect()
}

fn eq_matcher(name: &str, value: &str) -> pb::LabelMatcher {
    pb::LabelMatcher {
        r#type: pb::MatchType::MatchEqual as i32,
        name: name.to_string(),
        value: value.to_string(),
    }
}

/// The value written at timestamp offset `seq` of writer `w`: unique per
/// sample, so a read can tell which write it saw and that it is intact.
pub fn append_value(writer: u64, seq: i64) -> f64 {
    (writer as f64) * 1e9 + seq as f64
}

/// `AppendShared` is the series the writers are currently appending to.
#[derive(Debug, Default)]
pub struct AppendShared {
    active: Mutex<Vec<String>>,
    /// Every series ever written.
    pub all: Mutex<Vec<String>>,
}

impl AppendShared {
    fn set_active(&self, writer: usize, key: String) {
        let mut a = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        if a.len() <= writer {
            a.resize(writer + 1, String::new());
        }
        a[writer] = key.clone();
        self.all
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(key);
    }

    fn pick(&self, rng: &mut DetRng) -> Option<String> {
        let a = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        let live: Vec<&String> = a.iter().filter(|k| !k.is_empty()).collect();
        if live.is_empty() {
            return None;
        }
        Some(live[rng.below(live.len() as u64) as usize].clone())
    }
}

/// `append_writer` appends to series `w{writer}-g{generation}` until told
/// to stop, `max_per_key` samples per series.
pub async fn append_writer(
    ctx: Arc<Ctx>,
    client: Arc<Client>,
    shared: Arc<AppendShared>,
    writer: usize,
    max_per_key: i64,
) {
    let mut process = ctx.process();
    let mut seq: i64 = 0;
    let mut generation = 0;
    let mut in_key = 0;
    let mut key = format!("w{writer}-g{generation}");
    shared.set_active(writer, key.clone());
    while !ctx.stopped() {
        if in_key >= max_per_key {
            generation += 1;
            in_key = 0;
            key = format!("w{writer}-g{generation}");
            shared.set_active(writer, key.clone());
        }
        seq += 1;
        in_key += 1;
        let ts = ctx.base_ms + seq;
        let value = append_value(writer as u64, seq);
        let series = pb::Series {
            labels: labels(&[("__name__", APPEND_METRIC), ("key", &key)]),
            samples: vec![pb::Sample {
                timestamp_ms: ts,
                value,
            }],
        };
        let p = ctx
            .rec
            .invoke(process, "append", "write", &key, json!([seq, value]));
        let id = format!("jepsen-{}-{writer}-{seq}", ctx.seed);
        let r = tokio::time::timeout(OP_TIMEOUT, client.write(vec![series], Some(id))).await;
        if write_outcome(&ctx, p, r) == Outcome::Info {
            process = ctx.process();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `read_series` reads series `key` of the append workload: the samples as
/// `[seq, value]` pairs.
pub async fn read_series(
    ctx: &Ctx,
    client: &Client,
    key: &str,
    consistency: pb::Consistency,
) -> Result<Value, ClientError> {
    let matchers = vec![
        eq_matcher("__name__", APPEND_METRIC),
        eq_matcher("key", key),
    ];
    let resp = client
        .select(
            matchers,
            ctx.base_ms,
            ctx.base_ms + 1_000_000_000,
            consistency,
        )
        .await?;
    let mut samples = Vec::new();
    for s in &resp.series {
        for x in &s.samples {
            samples.push(json!([x.timestamp_ms - ctx.base_ms, x.value]));
        }
    }
    Ok(Value::Array(samples))
}

/// `append_reader` reads random live series, `linearizable_share` of them
/// linearizably and the rest stale.
pub async fn append_reader(
    ctx: Arc<Ctx>,
    client: Arc<Client>,
    shared: Arc<AppendShared>,
    reader: u64,
    linearizable_share: f64,
) {
    let mut rng = DetRng::new(ctx.seed ^ (0xA5A5 + reader));
    let mut process = ctx.process();
    while !ctx.stopped() {
        let Some(key) = shared.pick(&mut rng) else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let (f, consistency) = if rng.chance(linearizable_share) {
            ("read", pb::Consistency::Linearizable)
        } else {
            ("read-stale", pb::Consistency::Stale)
        };
        let p = ctx.rec.invoke(process, "append", f, &key, Value::Null);
        match tokio::time::timeout(OP_TIMEOUT, read_series(&ctx, &client, &key, consistency)).await
        {
            Ok(Ok(v)) => ctx.rec.complete(p, Outcome::Ok, v, None),
            Ok(Err(e)) => {
                let outcome = client_error_outcome(&e);
                ctx.rec
                    .complete(p, outcome, Value::Null, Some(e.to_string()));
                if outcome == Outcome::Info {
                    process = ctx.process();
                }
            }
            Err(_) => {
                ctx.rec
                    .complete(p, Outcome::Info, Value::Null, Some("timed out".into()));
                process = ctx.process();
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `final_reads` reads every series once more, linearizably, retrying
/// each until it succeeds or `deadline_s` passes (after the faults are
/// healed). Recorded as `final-read`.
pub async fn final_reads(ctx: &Ctx, client: &Client, keys: &[String], deadline_s: u64) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(deadline_s);
    let mut missing = 0;
    for key in keys {
        loop {
            let process = ctx.process();
            let p = ctx
                .rec
                .invoke(process, "append", "final-read", key, Value::Null);
            let r = tokio::time::timeout(
                OP_TIMEOUT,
                read_series(ctx, client, key, pb::Consistency::Linearizable),
            )
            .await;
            match r {
                Ok(Ok(v)) => {
                    ctx.rec.complete(p, Outcome::Ok, v, None);
                    break;
                }
                Ok(Err(e)) => ctx.rec.complete(
                    p,
                    client_error_outcome(&e),
                    Value::Null,
                    Some(e.to_string()),
                ),
                Err(_) => ctx
                    .rec
                    .complete(p, Outcome::Info, Value::Null, Some("timed out".into())),
            }
            if tokio::time::Instant::now() > deadline {
                missing += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    missing
}

/// `admin_op` runs one control-plane call with the operation timeout and
/// records how it ended: `ok` with `result(answer)`, `fail` for a definite
/// refusal, `info` otherwise.
async fn admin_op<T>(
    ctx: &Ctx,
    p: Pending,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    result: impl FnOnce(T) -> Value,
) -> Outcome {
    match tokio::time::timeout(OP_TIMEOUT, call).await {
        Ok(Ok(r)) => {
            ctx.rec
                .complete(p, Outcome::Ok, result(r.into_inner()), None);
            Outcome::Ok
        }
        Ok(Err(s)) => {
            let o = if definite(&s) {
                Outcome::Fail
            } else {
                Outcome::Info
            };
            ctx.rec
                .complete(p, o, Value::Null, Some(s.message().to_string()));
            o
        }
        Err(_) => {
            ctx.rec
                .complete(p, Outcome::Info, Value::Null, Some("timed out".into()));
            Outcome::Info
        }
    }
}

/// `write_outcome` records a data-path write: `ok` when every sample was
/// accepted, `fail` when the shard rejected one (no effect), else as
/// [`client_error_outcome`] says.
fn write_outcome(
    ctx: &Ctx,
    p: Pending,
    r: Result<Result<pb::WriteResponse, ClientError>, tokio::time::error::Elapsed>,
) -> Outcome {
    let (outcome, error) = match r {
        Ok(Ok(resp)) if resp.rejections.is_empty() => (Outcome::Ok, None),
        Ok(Ok(resp)) => {
            let why: Vec<String> = resp.rejections.iter().map(|x| x.reason.clone()).collect();
            (Outcome::Fail, Some(why.join("; ")))
        }
        Ok(Err(e)) => (client_error_outcome(&e), Some(e.to_string())),
        Err(_) => (Outcome::Info, Some("timed out".to_string())),
    };
    ctx.rec.complete(p, outcome, Value::Null, error);
    outcome
}

/// Register values are small numbers (so compare-and-set often matches);
/// 0 stands for "absent" (the empty string).
fn register_text(v: u64) -> String {
    if v == 0 { String::new() } else { v.to_string() }
}

fn register_value(found: bool, text: &str) -> Result<u64, String> {
    if !found || text.is_empty() {
        return Ok(0);
    }
    text.parse()
        .map_err(|_| format!("unexpected register value {text:?}"))
}

/// `register_client` runs reads, writes and compare-and-sets on
/// `keys` registers until told to stop, on a fresh set of keys every
/// [`REGISTER_GENERATION_MS`].
pub async fn register_client(ctx: Arc<Ctx>, channels: Arc<Vec<Channel>>, id: u64, keys: u64) {
    let mut rng = DetRng::new(ctx.seed ^ (0x5EED_0000 + id));
    let mut process = ctx.process();
    while !ctx.stopped() {
        let generation = (wall_ms() - ctx.base_ms).max(0) / REGISTER_GENERATION_MS;
        let key = format!("{REGISTER_PREFIX}g{generation}.{}", rng.below(keys.max(1)));
        let ch = channels[rng.below(channels.len() as u64) as usize].clone();
        let mut admin = pb::admin_client::AdminClient::new(ch);
        let roll = rng.below(10);
        let outcome = if roll < 5 {
            let p = ctx
                .rec
                .invoke(process, "register", "read", &key, Value::Null);
            let req = pb::GetSettingRequest {
                key: key.clone(),
                consistency: pb::Consistency::Linearizable as i32,
            };
            // An unparseable value is recorded as one nobody wrote.
            admin_op(&ctx, p, admin.get_setting(req), |r| {
                json!(register_value(r.found, &r.value).unwrap_or(u64::MAX))
            })
            .await
        } else {
            let new = 1 + rng.below(5);
            let (f, expected, value) = if roll < 7 {
                ("write", None, json!(new))
            } else {
                let old = rng.below(6);
                ("cas", Some(old), json!([old, new]))
            };
            let p = ctx.rec.invoke(process, "register", f, &key, value);
            let req = pb::SetSettingRequest {
                key: key.clone(),
                value: register_text(new),
                expected_version: 0,
                expected_value: expected.map(register_text),
            };
            admin_op(&ctx, p, admin.set_setting(req), |_| Value::Null).await
        };
        if outcome == Outcome::Info {
            process = ctx.process();
        }
        tokio::time::sleep(Duration::from_millis(10 + rng.below(20))).await;
    }
}

/// The rule file of the alerts workload: one alert per `key` whose trigger
/// is above zero, firing at once.
pub fn alert_rules() -> String {
    format!(
        "groups:\n  - name: jepsen\n    interval: 1s\n    rules:\n      - alert: {ALERT_NAME}\n        expr: {TRIGGER_METRIC} > 0\n        labels:\n          severity: page\n"
    )
}

/// The Alertmanager configuration of the alerts workload: one aggregation
/// group per alert, notified at once and on every change.
pub fn alertmanager_config(url: &str) -> String {
    format!(
        "route:\n  receiver: hook\n  group_by: [alertname, key]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {url}\n"
    )
}

/// `alerts_setup` applies the rules and the Alertmanager configuration,
/// retrying until both are committed (before any fault).
pub async fn alerts_setup(channels: &[Channel], hook_url: &str) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    let mut i = 0;
    let mut rules_done = false;
    while tokio::time::Instant::now() < deadline {
        i += 1;
        let mut admin = pb::admin_client::AdminClient::new(channels[i % channels.len()].clone());
        if !rules_done {
            match admin
                .apply_rules(pb::ApplyRulesRequest {
                    yaml: alert_rules(),
                    ..Default::default()
                })
                .await
            {
                Ok(_) => rules_done = true,
                Err(s) => last = s.to_string(),
            }
        }
        if rules_done {
            match admin
                .set_alertmanager_config(pb::SetAlertmanagerConfigRequest {
                    yaml: alertmanager_config(hook_url),
                    expected_version: 0,
                })
                .await
            {
                Ok(_) => return Ok(()),
                Err(s) => last = s.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("could not configure alerting: {last}"))
}

/// `alerts_client` flips alert triggers and adds and expires silences.
pub async fn alerts_client(
    ctx: Arc<Ctx>,
    client: Arc<Client>,
    channels: Arc<Vec<Channel>>,
    alerts: u64,
) {
    let mut rng = DetRng::new(ctx.seed ^ 0xA1E7);
    let mut process = ctx.process();
    let mut silences: BTreeMap<String, String> = BTreeMap::new(); // id → key
    while !ctx.stopped() {
        let key = format!("a{}", rng.below(alerts.max(1)));
        let roll = rng.below(20);
        let ch = channels[rng.below(channels.len() as u64) as usize].clone();
        let mut admin = pb::admin_client::AdminClient::new(ch);
        let outcome = if roll < 12 {
            let v = if rng.chance(0.6) { 1.0 } else { 0.0 };
            let series = pb::Series {
                labels: labels(&[("__name__", TRIGGER_METRIC), ("key", &key)]),
                samples: vec![pb::Sample {
                    timestamp_ms: wall_ms(),
                    value: v,
                }],
            };
            let p = ctx.rec.invoke(process, "alerts", "trigger", &key, json!(v));
            let r = tokio::time::timeout(OP_TIMEOUT, client.write(vec![series], None)).await;
            write_outcome(&ctx, p, r)
        } else if roll < 17 || silences.is_empty() {
            let p = ctx
                .rec
                .invoke(process, "alerts", "silence", &key, Value::Null);
            let req = pb::AddSilenceRequest {
                matchers: vec![format!("key=\"{key}\"")],
                starts_at_ms: 0,
                ends_at_ms: wall_ms() + 20_000 + rng.below(20_000) as i64,
                created_by: "jepsen".into(),
                comment: format!("process {process}"),
                id: String::new(),
            };
            admin_op(&ctx, p, admin.add_silence(req), |r| {
                silences.insert(r.id.clone(), key.clone());
                json!(r.id)
            })
            .await
        } else {
            let ids: Vec<String> = silences.keys().cloned().collect();
            let id = ids[rng.below(ids.len() as u64) as usize].clone();
            let skey = silences.remove(&id).unwrap_or_default();
            let p = ctx
                .rec
                .invoke(process, "alerts", "expire", &skey, json!(id));
            let req = pb::ExpireSilenceRequest { id: id.clone() };
            admin_op(&ctx, p, admin.expire_silence(req), |_| Value::Null).await
        };
        if outcome == Outcome::Info {
            process = ctx.process();
        }
        tokio::time::sleep(Duration::from_millis(150 + rng.below(250))).await;
    }
}

/// `NotificationLog` is the union of every committed notification the
/// observer has read (the control plane trims delivered ones beyond its
/// retention, so the harness keeps its own copy).
#[derive(Debug, Default)]
pub struct NotificationLog {
    /// Notification id → its latest record.
    pub seen: Mutex<BTreeMap<u64, pb::NotificationInfo>>,
    /// Reads that failed.
    pub failed_reads: AtomicU64,
    /// Silence id → its `updated_at_ms` when first seen: an upper bound on
    /// the state-machine time at which it was committed (its `starts_at`
    /// may be earlier: a silence starts at its proposer's clock).
    pub silence_first_seen: Mutex<BTreeMap<String, i64>>,
}

impl NotificationLog {
    /// Reads the notification log once (linearizable) and merges it.
    pub async fn poll(&self, channel: Channel) -> Result<usize, tonic::Status> {
        let mut admin = pb::admin_client::AdminClient::new(channel);
        let r = admin
            .list_notifications(pb::ListNotificationsRequest {
                consistency: pb::Consistency::Linearizable as i32,
            })
            .await?
            .into_inner();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let mut pending = 0;
        for n in r.notifications {
            if n.delivered_ms == 0 {
                pending += 1;
            }
            seen.insert(n.id, n);
        }
        Ok(pending)
    }

    /// Reads the silences once (linearizable) and records the ones not
    /// seen before.
    pub async fn poll_silences(
        &self,
        channel: Channel,
    ) -> Result<Vec<pb::SilenceInfo>, tonic::Status> {
        let mut admin = pb::admin_client::AdminClient::new(channel);
        let r = admin
            .list_silences(pb::ListSilencesRequest {
                consistency: pb::Consistency::Linearizable as i32,
            })
            .await?
            .into_inner();
        let mut first = self
            .silence_first_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for s in &r.silences {
            first.entry(s.id.clone()).or_insert(s.updated_at_ms);
        }
        Ok(r.silences)
    }

    /// Polls the notification log and the silences every second until
    /// told to stop.
    pub async fn observe(self: Arc<Self>, ctx: Arc<Ctx>, channels: Arc<Vec<Channel>>) {
        let mut i = 0;
        while !ctx.stopped() {
            i += 1;
            let ch = channels[i % channels.len()].clone();
            let notes = tokio::time::timeout(OP_TIMEOUT, self.poll(ch.clone())).await;
            let silences = tokio::time::timeout(OP_TIMEOUT, self.poll_silences(ch)).await;
            if !matches!(notes, Ok(Ok(_))) || !matches!(silences, Ok(Ok(_))) {
                self.failed_reads.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
