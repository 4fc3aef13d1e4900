//! The alerting workload: a writer that drives `sim_alert_metric` of a few
//! instances across an alert's threshold, an operator that installs the
//! rule file and the Alertmanager configuration and adds and expires
//! silences, and the webhook receiver the cluster notifies (a simulated
//! host with seeded faults: 500s, dropped connections, slow answers).
//! What they saw goes into [`AlertHistory`] for the checkers
//! (`check/alert_*.rs`, `check/notification_*.rs`).
//!
//! Times here are the cluster's wall clock in ms (turmoil's fixed epoch
//! plus simulated time: [`EPOCH_MS`]), the clock the nodes stamp alert
//! and notification times with.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use raftwatch_alerting::webhook::WebhookPayload;
use raftwatch_proto::v1 as pb;
use raftwatch_seams::DetRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::operator::admin;
use crate::params::Params;
use crate::workload::{Phase, SharedRef};

/// `EPOCH_MS` is the simulated wall clock at time zero (turmoil's epoch).
pub const EPOCH_MS: i64 = 1_700_000_000_000;
/// The receiver's host and port (`http://receiver:9093/hook`).
pub const RECEIVER_HOST: &str = "receiver";
pub const RECEIVER_PORT: u16 = 9093;
/// The metric the writer drives and the rule watches.
pub const METRIC: &str = "sim_alert_metric";
/// The alert fires while the metric is above this.
pub const THRESHOLD: f64 = 10.0;
/// The rule group's name and interval.
pub const GROUP: &str = "sim";
pub const INTERVAL_MS: i64 = 1_000;
/// The alert's `for`.
pub const FOR_MS: i64 = 3_000;
/// The route's `group_wait` and `group_interval`.
pub const GROUP_WAIT_MS: i64 = 1_000;
pub const GROUP_INTERVAL_MS: i64 = 2_000;
/// From this long before the safety phase ends, every instance keeps its
/// final value, so the end state is known.
pub const QUIET_MS: u64 = 4_000;
/// No silence is added later than this before the safety phase ends
/// (silences last at most 8 s, so none is active at the end).
const LAST_SILENCE_MS: u64 = 9_000;

/// `rules_yaml` is the rule file the operator applies.
pub fn rules_yaml() -> String {
    format!(
        "groups:
  - name: {GROUP}
    interval: {}s
    rules:
      - alert: High
        expr: {METRIC} > {THRESHOLD}
        for: {}s
        labels:
          severity: page
        annotations:
          summary: \"{{{{ $labels.instance }}}} is at {{{{ $value }}}}\"
",
        INTERVAL_MS / 1000,
        FOR_MS / 1000
    )
}

/// `alertmanager_yaml` is the Alertmanager configuration it sets.
pub fn alertmanager_yaml() -> String {
    format!(
        "route:
  receiver: sim
  group_by: [alertname, instance]
  group_wait: {}s
  group_interval: {}s
  repeat_interval: 1h
receivers:
  - name: sim
    webhook_configs:
      - url: http://{RECEIVER_HOST}:{RECEIVER_PORT}/hook
        send_resolved: true
",
        GROUP_WAIT_MS / 1000,
        GROUP_INTERVAL_MS / 1000
    )
}

/// `instance` is the name of instance `i` (0-based): `i1`, `i2`, ...
pub fn instance(i: usize) -> String {
    format!("i{}", i + 1)
}

/// `MetricSample` is one sample the writer sent.
#[derive(Clone, Debug)]
pub struct MetricSample {
    pub ts_ms: i64,
    pub value: f64,
    /// When its write was acknowledged (`None`: failed or unknown, so it
    /// may or may not be visible, now or later).
    pub acked_ms: Option<i64>,
}

/// `SilenceOp` is one silence the operator added (and maybe expired).
#[derive(Clone, Debug)]
pub struct SilenceOp {
    /// Unique per silence: finds it in the committed state even when the
    /// add's outcome is unknown.
    pub comment: String,
    pub instance: String,
    pub invoked_ms: i64,
    pub ends_at_ms: i64,
    /// The id and the time AddSilence returned OK.
    pub id: Option<String>,
    pub acked_ms: Option<i64>,
    pub expire_invoked_ms: Option<i64>,
    pub expire_acked_ms: Option<i64>,
}

/// `Answer` is how the receiver answered a POST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200.
    Ok,
    /// 200, but after the sender's delivery timeout (it retries).
    OkLate,
    /// 500.
    Refused,
    /// The connection was closed without an answer.
    Dropped,
}

impl Answer {
    /// Whether the receiver took the notification (processed it).
    pub fn acknowledged(self) -> bool {
        matches!(self, Answer::Ok | Answer::OkLate)
    }
}

/// `Post` is one webhook request the receiver got.
#[derive(Clone, Debug)]
pub struct Post {
    /// When it was answered (or dropped).
    pub at_ms: i64,
    /// The `Idempotency-Key` header.
    pub key: String,
    pub body: Vec<u8>,
    pub answer: Answer,
}

/// `FinalRead` is the operator's last linearizable read, once the run's
/// final alert states were notified.
#[derive(Clone, Debug)]
pub struct FinalRead {
    pub at_ms: i64,
    pub alerts: Vec<pb::AlertInfo>,
    pub notifications: Vec<pb::NotificationInfo>,
    pub abandoned: u64,
}

/// `AlertHistory` is what the alerting clients saw.
#[derive(Debug, Default)]
pub struct AlertHistory {
    /// When the rule file and the configuration were both committed.
    pub setup_ms: Option<i64>,
    /// Per instance, every sample sent, in timestamp order.
    pub samples: BTreeMap<String, Vec<MetricSample>>,
    /// A write of the final values was acknowledged.
    pub final_acked: bool,
    pub silences: Vec<SilenceOp>,
    pub posts: Vec<Post>,
    /// Set once the final state was notified (ends the alerting clients).
    pub done: Option<FinalRead>,
    /// What the final wait still waits for (for the liveness message).
    pub waiting_for: String,
    /// Event-log lines (simulated ms) the driver has not taken yet.
    pub log: Vec<(u64, String)>,
}

impl AlertHistory {
    fn note(&mut self, line: String) {
        self.log.push((sim_ms(), line));
    }
}

/// `wall_ms` is the cluster's clock on the current host.
pub fn wall_ms() -> i64 {
    EPOCH_MS + sim_ms() as i64
}

fn sim_ms() -> u64 {
    turmoil::sim_elapsed().map_or(0, |d| d.as_millis() as u64)
}

fn linearizable() -> i32 {
    pb::Consistency::Linearizable as i32
}

/// `writer` writes every instance's metric every 150–350 ms. Each
/// instance stays above or below the threshold for 1.5–8 s, then flips;
/// from [`QUIET_MS`] before the safety phase ends it holds its final
/// value. Runs until the final state was notified.
pub async fn writer(params: Params, shared: SharedRef, seed: u64) -> turmoil::Result {
    let client = crate::workload::client(&params, seed)?;
    let mut rng = DetRng::new(seed);
    let count = params.alert_instances as usize;
    let quiet_at = EPOCH_MS + params.safety_ms.saturating_sub(QUIET_MS) as i64;
    let episode = |rng: &mut DetRng| 1_500 + rng.below(6_500) as i64;
    let mut high: Vec<bool> = (0..count).map(|_| rng.chance(0.5)).collect();
    let start = wall_ms();
    let mut flip_at: Vec<i64> = (0..count).map(|_| start + episode(&mut rng)).collect();
    let mut last_ts = 0;
    let mut n = 0u64;
    while shared.borrow().alert.done.is_none() {
        let now = wall_ms();
        let quiet = now >= quiet_at;
        for i in 0..count {
            if quiet {
                high[i] = params.alert_final_high.get(i).copied().unwrap_or(false);
            } else if now >= flip_at[i] {
                high[i] = !high[i];
                flip_at[i] = now + episode(&mut rng);
            }
        }
        let ts = now.max(last_ts + 1);
        last_ts = ts;
        n += 1;
        let mut series = Vec::with_capacity(count);
        let mut values = Vec::with_capacity(count);
        for (i, h) in high.iter().enumerate() {
            let value = if *h {
                11 + rng.below(20)
            } else {
                rng.below(10)
            } as f64;
            values.push(value);
            series.push(pb::Series {
                labels: vec![
                    pb::Label {
                        name: "__name__".into(),
                        value: METRIC.into(),
                    },
                    pb::Label {
                        name: "instance".into(),
                        value: instance(i),
                    },
                ],
                samples: vec![pb::Sample {
                    timestamp_ms: ts,
                    value,
                }],
            });
        }
        let slots: Vec<usize> = {
            let mut s = shared.borrow_mut();
            s.alert
                .note(format!("alert_write n={n} ts={ts} values={values:?}"));
            values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let list = s.alert.samples.entry(instance(i)).or_default();
                    list.push(MetricSample {
                        ts_ms: ts,
                        value: *v,
                        acked_ms: None,
                    });
                    list.len() - 1
                })
                .collect()
        };
        let outcome = client.write(series, Some(format!("alert-{n}"))).await;
        {
            let mut s = shared.borrow_mut();
            let acked_at = wall_ms();
            match &outcome {
                Ok(resp) => {
                    let rejected: Vec<usize> = resp
                        .rejections
                        .iter()
                        .map(|r| r.series_index as usize)
                        .collect();
                    for (i, slot) in slots.iter().enumerate() {
                        if !rejected.contains(&i)
                            && let Some(sample) = s
                                .alert
                                .samples
                                .get_mut(&instance(i))
                                .and_then(|l| l.get_mut(*slot))
                        {
                            sample.acked_ms = Some(acked_at);
                        }
                    }
                    if quiet && rejected.is_empty() {
                        s.alert.final_acked = true;
                    }
                    s.alert
                        .note(format!("alert_write_ok n={n} rejected={rejected:?}"));
                }
                Err(e) => {
                    let code = e.status().map(|s| format!("{:?}", s.code()));
                    s.alert.note(format!("alert_write_failed n={n} {code:?}"));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(150 + rng.below(200))).await;
    }
    Ok(())
}

/// `operator` installs the configuration and the rules, adds and
/// expires silences during the safety phase, then waits until the final
/// state is notified and records it.
pub async fn operator(params: Params, shared: SharedRef, seed: u64) -> turmoil::Result {
    let mut rng = DetRng::new(seed);
    setup(&params, &shared, &mut rng).await;
    let last_silence = EPOCH_MS + params.safety_ms.saturating_sub(LAST_SILENCE_MS) as i64;
    let mut made = 0u64;
    while shared.borrow().phase == Phase::Safety {
        tokio::time::sleep(Duration::from_millis(500 + rng.below(1_500))).await;
        if shared.borrow().phase != Phase::Safety {
            break;
        }
        let now = wall_ms();
        let active =
            shared.borrow().alert.silences.iter().rposition(|s| {
                s.id.is_some() && s.expire_invoked_ms.is_none() && s.ends_at_ms > now
            });
        match active {
            Some(i) if rng.chance(0.25) => expire_silence(&params, &shared, &mut rng, i).await,
            None if now < last_silence && rng.chance(0.7) => {
                made += 1;
                add_silence(&params, &shared, &mut rng, made).await;
            }
            _ => {}
        }
    }
    final_wait(&params, &shared, &mut rng).await;
    Ok(())
}

/// Sets the Alertmanager configuration, then the rules, each
/// conditioned on the control state's version and retried until it is
/// known to be in place: a configuration applied twice would restart
/// every aggregation group (as an Alertmanager reload does) and notify
/// again.
async fn setup(params: &Params, shared: &SharedRef, rng: &mut DetRng) {
    loop {
        let mut c = admin(params, rng);
        if let Ok(r) = c
            .get_alertmanager_config(pb::GetAlertmanagerConfigRequest {
                consistency: linearizable(),
            })
            .await
            && !r.get_ref().yaml.is_empty()
        {
            break;
        }
        let Ok(shards) = admin(params, rng)
            .list_shards(pb::ListShardsRequest {
                consistency: linearizable(),
            })
            .await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let r = admin(params, rng)
            .set_alertmanager_config(pb::SetAlertmanagerConfigRequest {
                yaml: alertmanager_yaml(),
                expected_version: shards.get_ref().version,
            })
            .await;
        shared
            .borrow_mut()
            .alert
            .note(format!("set_config ok={}", r.is_ok()));
        if r.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        let mut c = admin(params, rng);
        if let Ok(r) = c
            .list_rules(pb::ListRulesRequest {
                consistency: linearizable(),
            })
            .await
            && r.get_ref().groups.iter().any(|g| g.name == GROUP)
        {
            break;
        }
        let Ok(shards) = admin(params, rng)
            .list_shards(pb::ListShardsRequest {
                consistency: linearizable(),
            })
            .await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let r = admin(params, rng)
            .apply_rules(pb::ApplyRulesRequest {
                yaml: rules_yaml(),
                expected_version: shards.get_ref().version,
            })
            .await;
        shared
            .borrow_mut()
            .alert
            .note(format!("apply_rules ok={}", r.is_ok()));
        if r.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut s = shared.borrow_mut();
    s.alert.setup_ms = Some(wall_ms());
    s.alert.note("alerting_setup".into());
}

async fn add_silence(params: &Params, shared: &SharedRef, rng: &mut DetRng, n: u64) {
    // Mostly the instance that went above the threshold last: about to
    // fire, so the silence decides what is notified.
    let newest_high: Option<String> = {
        let s = shared.borrow();
        s.alert
            .samples
            .iter()
            .filter_map(|(name, v)| {
                let run = v.iter().rev().take_while(|x| x.value > THRESHOLD).last()?;
                Some((run.ts_ms, name.clone()))
            })
            .max()
            .map(|(_, name)| name)
    };
    let target = match newest_high {
        Some(name) if rng.chance(0.8) => name,
        _ => instance(rng.below(u64::from(params.alert_instances)) as usize),
    };
    let now = wall_ms();
    let ends_at_ms = now + 3_000 + rng.below(5_000) as i64;
    let comment = format!("sim silence {n}");
    let index = {
        let mut s = shared.borrow_mut();
        s.alert.note(format!(
            "silence_add n={n} instance={target} ends_at={ends_at_ms}"
        ));
        s.alert.silences.push(SilenceOp {
            comment: comment.clone(),
            instance: target.clone(),
            invoked_ms: now,
            ends_at_ms,
            id: None,
            acked_ms: None,
            expire_invoked_ms: None,
            expire_acked_ms: None,
        });
        s.alert.silences.len() - 1
    };
    let r = admin(params, rng)
        .add_silence(pb::AddSilenceRequest {
            matchers: vec![format!("instance=\"{target}\"")],
            starts_at_ms: 0,
            ends_at_ms,
            created_by: "raftwatch-sim".into(),
            comment,
            id: String::new(),
        })
        .await;
    let mut s = shared.borrow_mut();
    let at = wall_ms();
    match r {
        Ok(resp) => {
            let id = resp.into_inner().id;
            s.alert.note(format!("silence_add_ok n={n} id={id}"));
            let op = &mut s.alert.silences[index];
            op.id = Some(id);
            op.acked_ms = Some(at);
        }
        Err(e) => s
            .alert
            .note(format!("silence_add_failed n={n} {:?}", e.code())),
    }
}

async fn expire_silence(params: &Params, shared: &SharedRef, rng: &mut DetRng, index: usize) {
    let id = {
        let mut s = shared.borrow_mut();
        let op = &mut s.alert.silences[index];
        op.expire_invoked_ms = Some(wall_ms());
        let id = op.id.clone().unwrap_or_default();
        s.alert.note(format!("silence_expire id={id}"));
        id
    };
    let r = admin(params, rng)
        .expire_silence(pb::ExpireSilenceRequest { id: id.clone() })
        .await;
    let mut s = shared.borrow_mut();
    if r.is_ok() {
        s.alert.silences[index].expire_acked_ms = Some(wall_ms());
    }
    s.alert
        .note(format!("silence_expire_done id={id} ok={}", r.is_ok()));
}

/// Waits until the final values are in, every instance's alert is in its
/// final state, every committed notification was delivered, and every
/// firing alert's latest notification lists it firing; then records the
/// state. (Bounded by the driver's liveness deadline, which reports
/// `waiting_for`.)
async fn final_wait(params: &Params, shared: &SharedRef, rng: &mut DetRng) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if !shared.borrow().alert.final_acked {
            shared.borrow_mut().alert.waiting_for = "a write of the final values".into();
            continue;
        }
        let Ok(alerts) = admin(params, rng)
            .list_alerts(pb::ListAlertsRequest {
                consistency: linearizable(),
            })
            .await
        else {
            continue;
        };
        let Ok(notes) = admin(params, rng)
            .list_notifications(pb::ListNotificationsRequest {
                consistency: linearizable(),
            })
            .await
        else {
            continue;
        };
        let alerts = alerts.into_inner().alerts;
        let notes = notes.into_inner();
        let mut s = shared.borrow_mut();
        match unmet(params, &alerts, &notes.notifications) {
            Some(why) => s.alert.waiting_for = why,
            None => {
                s.alert.note(format!(
                    "alerting_done alerts={} notifications={}",
                    alerts.len(),
                    notes.notifications.len()
                ));
                s.alert.done = Some(FinalRead {
                    at_ms: wall_ms(),
                    alerts,
                    notifications: notes.notifications,
                    abandoned: notes.abandoned,
                });
                return;
            }
        }
    }
}

/// What the final state still lacks (`None`: complete).
fn unmet(
    params: &Params,
    alerts: &[pb::AlertInfo],
    notes: &[pb::NotificationInfo],
) -> Option<String> {
    for i in 0..params.alert_instances as usize {
        let name = instance(i);
        let live = alerts
            .iter()
            .find(|a| a.labels.get("instance") == Some(&name) && a.state != "inactive");
        let high = params.alert_final_high.get(i).copied().unwrap_or(false);
        match (high, live) {
            (true, Some(a)) if a.state == "firing" => {}
            (true, a) => {
                return Some(format!(
                    "the alert of {name} to fire (it is {})",
                    a.map_or("absent", |a| a.state.as_str())
                ));
            }
            (false, Some(a)) => {
                return Some(format!("the alert of {name} to end (it is {})", a.state));
            }
            (false, None) => {}
        }
    }
    if let Some(n) = notes.iter().find(|n| n.status != "delivered") {
        return Some(format!("notification {} to be delivered", n.id));
    }
    for a in alerts
        .iter()
        .filter(|a| a.state == "firing" && a.silenced_by.is_empty())
    {
        let latest = notes.iter().rev().find_map(|n| {
            let p: WebhookPayload = serde_json::from_str(&n.payload_json).ok()?;
            p.alerts
                .into_iter()
                .find(|x| x.fingerprint == a.fingerprint)
                .map(|x| x.status)
        });
        if latest.as_deref() != Some("firing") {
            return Some(format!(
                "a notification of firing alert {} ({:?})",
                a.fingerprint,
                a.labels.get("instance")
            ));
        }
    }
    None
}

/// How the receiver treats one connection.
#[derive(Clone, Copy, Debug)]
enum Plan {
    Answer(u16),
    Drop,
    Delay(u64),
}

/// `receiver` is the webhook receiver host: an HTTP/1.1 server on
/// [`RECEIVER_PORT`] that records every POST and answers 200, except,
/// during the safety phase, for seeded faults: 10% 500, 7% closed without
/// an answer, 10% answered after 0.2–3 s, 2% answered after the sender's
/// 10 s delivery timeout. Connections are served concurrently without
/// spawning (one task, a `FuturesUnordered`).
pub async fn receiver(
    shared: SharedRef,
    seed: u64,
) -> Result<(), Box<dyn std::error::Error + 'static>> {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", RECEIVER_PORT)).await?;
    let mut rng = DetRng::new(seed);
    let mut conns: FuturesUnordered<Pin<Box<dyn Future<Output = ()>>>> = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            Some(()) = conns.next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let faulty = shared.borrow().phase == Phase::Safety;
                let roll = rng.below(100);
                let plan = match roll {
                    _ if !faulty => Plan::Answer(200),
                    0..=9 => Plan::Answer(500),
                    10..=16 => Plan::Drop,
                    17..=26 => Plan::Delay(200 + rng.below(2_800)),
                    27..=28 => Plan::Delay(10_500 + rng.below(1_500)),
                    _ => Plan::Answer(200),
                };
                conns.push(Box::pin(serve(stream, plan, shared.clone())));
            }
        }
    }
}

async fn serve(mut stream: turmoil::net::TcpStream, plan: Plan, shared: SharedRef) {
    let request = tokio::time::timeout(Duration::from_secs(15), read_request(&mut stream)).await;
    let Ok(Some((key, body))) = request else {
        shared
            .borrow_mut()
            .alert
            .note("webhook_malformed_or_cut".into());
        return;
    };
    let (code, answer) = match plan {
        Plan::Drop => (None, Answer::Dropped),
        Plan::Answer(200) => (Some(200), Answer::Ok),
        Plan::Answer(code) => (Some(code), Answer::Refused),
        Plan::Delay(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let late = ms >= 10_000;
            (Some(200), if late { Answer::OkLate } else { Answer::Ok })
        }
    };
    if let Some(code) = code {
        let reason = if code == 200 { "OK" } else { "Error" };
        let head =
            format!("HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.flush().await;
    }
    drop(stream);
    let mut s = shared.borrow_mut();
    s.alert
        .note(format!("webhook key={key} bytes={} {answer:?}", body.len()));
    s.alert.posts.push(Post {
        at_ms: wall_ms(),
        key,
        body,
        answer,
    });
}

/// Reads one request: its `Idempotency-Key` and body (`None`: cut off or
/// not HTTP).
async fn read_request(stream: &mut turmoil::net::TcpStream) -> Option<(String, Vec<u8>)> {
    const HEAD_MAX: usize = 64 * 1024;
    const BODY_MAX: usize = 4 << 20;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > HEAD_MAX {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    if !lines.next()?.starts_with("POST ") {
        return None;
    }
    let mut length = None;
    let mut key = String::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse::<usize>().ok(),
            "idempotency-key" => key = value.trim().to_owned(),
            _ => {}
        }
    }
    let length = length.filter(|l| *l <= BODY_MAX)?;
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Some((key, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_file_and_the_configuration_are_valid() {
        let file = raftwatch_alerting::rules::parse_rule_file(&rules_yaml())
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(file.groups.len(), 1);
        assert_eq!(file.groups[0].interval_ms, INTERVAL_MS);
        let config = raftwatch_alerting::amconfig::parse_config(&alertmanager_yaml())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.route.group_wait_ms, GROUP_WAIT_MS);
        assert_eq!(config.route.group_interval_ms, GROUP_INTERVAL_MS);
    }
}
