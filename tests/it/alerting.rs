//! Alerting end to end on a real 3-node cluster with a webhook receiver on
//! loopback: a threshold crossed → pending → firing → exactly one
//! notification key; a silence stops further notifications for its alert;
//! the series going stale → a resolved notification. Failover: the control
//! leader killed between committing a notification and delivering it (with
//! delivery paused through the `alerting.delivery_paused` setting), and
//! killed while an alert waits out `for`. Refusals: invalid rule files,
//! silences and Alertmanager configurations commit nothing.

// Real processes in real time: the determinism seams do not apply here.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raftwatch_proto::v1 as pb;
use raftwatch_tests::webhook::Receiver;
use raftwatch_tests::{Cluster, CtlOutput};
use serde_json::Value;

const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// `Writer` keeps writing `e2e_load{instance=..}` with the current time
/// every 250 ms from a background thread; `set` changes a value, `NaN`
/// (the staleness marker) ends a series.
struct Writer {
    values: Arc<Mutex<BTreeMap<String, Option<f64>>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(endpoints: Vec<String>) -> Writer {
        let values: Arc<Mutex<BTreeMap<String, Option<f64>>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (v, s) = (values.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut turn = 0usize;
                while !s.load(std::sync::atomic::Ordering::Relaxed) {
                    let snapshot: Vec<(String, Option<f64>)> = v
                        .lock()
                        .expect("lock")
                        .iter()
                        .map(|(k, x)| (k.clone(), *x))
                        .collect();
                    let t = now_ms();
                    let series: Vec<pb::Series> = snapshot
                        .into_iter()
                        .map(|(inst, value)| pb::Series {
                            labels: vec![
                                pb::Label {
                                    name: "__name__".into(),
                                    value: "e2e_load".into(),
                                },
                                pb::Label {
                                    name: "instance".into(),
                                    value: inst,
                                },
                            ],
                            samples: vec![pb::Sample {
                                timestamp_ms: t,
                                value: value.unwrap_or(f64::from_bits(STALE_NAN)),
                            }],
                        })
                        .collect();
                    if !series.is_empty() {
                        // Any node will do; a killed one is skipped.
                        for i in 0..endpoints.len() {
                            let e = &endpoints[(turn + i) % endpoints.len()];
                            if write(e, series.clone()).await {
                                break;
                            }
                        }
                        turn += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            });
        });
        Writer {
            values,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, instance: &str, value: Option<f64>) {
        self.values
            .lock()
            .expect("lock")
            .insert(instance.into(), value);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn write(endpoint: &str, series: Vec<pb::Series>) -> bool {
    let Ok(ep) = tonic::transport::Endpoint::from_shared(endpoint.to_string()) else {
        return false;
    };
    let Ok(ch) = ep.connect_timeout(Duration::from_secs(1)).connect().await else {
        return false;
    };
    let mut client = pb::ingest_client::IngestClient::new(ch);
    let mut req = tonic::Request::new(pb::WriteRequest {
        series,
        ..Default::default()
    });
    req.set_timeout(Duration::from_secs(5));
    client.write(req).await.is_ok()
}

fn rules(for_: &str) -> String {
    format!(
        r#"groups:
  - name: e2e
    interval: 1s
    rules:
      - alert: HighLoad
        expr: e2e_load > 10
        for: {for_}
        labels:
          severity: page
        annotations:
          summary: "{{{{ $labels.instance }}}} load is {{{{ $value }}}}"
      - record: e2e:load:max
        expr: max(e2e_load)
"#
    )
}

fn am_config(url: &str) -> String {
    format!(
        r#"route:
  receiver: hook
  group_by: [alertname, instance]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {url}
"#
    )
}

fn write_file(c: &Cluster, name: &str, text: &str) -> String {
    let p = c.dir.path().join(name);
    std::fs::write(&p, text).expect("write file");
    p.display().to_string()
}

fn ok(out: CtlOutput) -> CtlOutput {
    assert_eq!(out.code, 0, "raftwatchctl failed: {out:?}");
    out
}

/// Applies the rules and the Alertmanager configuration.
fn configure(c: &Cluster, for_: &str, url: &str) {
    let r = write_file(c, "rules.yml", &rules(for_));
    ok(c.ctl(&["rules", "apply", "-f", &r]));
    let a = write_file(c, "am.yml", &am_config(url));
    ok(c.ctl(&["alertmanager", "apply", "-f", &a]));
}

fn alerts(c: &Cluster) -> Vec<Value> {
    let out = c.ctl(&["--output", "json", "alerts", "list"]);
    if out.code != 0 {
        return vec![];
    }
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    v["alerts"].as_array().cloned().unwrap_or_default()
}

fn alert_of(c: &Cluster, instance: &str) -> Option<Value> {
    alerts(c)
        .into_iter()
        .find(|a| a["labels"]["instance"] == instance)
}

fn notifications(c: &Cluster) -> Vec<Value> {
    let out = c.ctl(&["--output", "json", "notifications", "list"]);
    if out.code != 0 {
        return vec![];
    }
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    v["notifications"].as_array().cloned().unwrap_or_default()
}

fn wait<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn control_leader(c: &Cluster) -> u64 {
    c.status()["control_leader"].as_u64().expect("a leader")
}

/// Deliveries that mention `instance` with `status` for that alert.
fn deliveries_for(rx: &Receiver, instance: &str, status: &str) -> Vec<(String, Value)> {
    rx.received()
        .into_iter()
        .filter(|d| {
            d.body["alerts"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x["labels"]["instance"] == instance && x["status"] == status)
            })
        })
        .map(|d| (d.key.clone(), d.body.clone()))
        .collect()
}

#[test]
fn an_alert_fires_once_is_silenced_and_resolves() {
    let rx = Receiver::start();
    let c = Cluster::start(3, 2, 3);
    configure(&c, "2s", &rx.url());
    let writer = Writer::start((1..=3).map(|i| c.endpoint(i)).collect());
    writer.set("a", Some(20.0));
    writer.set("b", Some(20.0));
    // Pending first (for: 2s at a 1 s interval), then firing.
    let pending = wait("a pending alert", Duration::from_secs(60), || {
        alert_of(&c, "a").filter(|a| a["state"] == "pending")
    });
    let active_at = pending["active_at_ms"].as_i64().expect("active_at");
    let firing = wait("the alert firing", Duration::from_secs(30), || {
        alert_of(&c, "a").filter(|a| a["state"] == "firing")
    });
    assert_eq!(firing["active_at_ms"].as_i64(), Some(active_at));
    let fired_after = firing["fired_at_ms"].as_i64().expect("fired_at") - active_at;
    // Never early; later only by evaluations a loaded machine missed.
    assert!(
        (2000..10_000).contains(&fired_after),
        "fired {fired_after} ms after it became active"
    );
    assert_eq!(firing["annotations"]["summary"], "a load is 20");
    // One notification per alert group, delivered with one key.
    wait(
        "firing notifications for a and b",
        Duration::from_secs(30),
        || {
            (!deliveries_for(&rx, "a", "firing").is_empty()
                && !deliveries_for(&rx, "b", "firing").is_empty())
            .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    let a_keys: BTreeSet<String> = deliveries_for(&rx, "a", "firing")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        a_keys.len(),
        1,
        "one key for a's firing notification: {a_keys:?}"
    );
    let (key, body) = &deliveries_for(&rx, "a", "firing")[0];
    assert_eq!(body["idempotencyKey"].as_str(), Some(key.as_str()));
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "hook");
    // The recording rule wrote its series.
    let q = c.ctl(&["--output", "json", "query", "e2e:load:max"]);
    assert!(q.code == 0 && q.stdout.contains("20"), "{q:?}");

    // Silence b with amtool (raftwatchctl when RAFTWATCH_SKIP_AMTOOL=1);
    // once acknowledged, no notification mentions b.
    let silence_id = match crate::alerting_api::amtool() {
        Some(amtool) => {
            let r = crate::alerting_api::run_amtool(
                &amtool,
                &c.specs[&1].http,
                &[
                    "silence",
                    "add",
                    "instance=b",
                    "--comment=e2e",
                    "--duration=1h",
                ],
            );
            assert_eq!(r.code, 0, "amtool silence add: {r:?}");
            r.stdout.trim().to_string()
        }
        None => ok(c.ctl(&[
            "silences",
            "add",
            "--matcher",
            "instance=b",
            "--duration",
            "1h",
            "--comment",
            "e2e",
        ]))
        .stdout
        .trim()
        .to_string(),
    };
    assert!(!silence_id.is_empty());
    let seen_before = rx.received().len();
    // Both series end (staleness markers): a resolves and is notified as
    // resolved; b resolves silently.
    writer.set("a", None);
    writer.set("b", None);
    wait(
        "a resolved notification for a",
        Duration::from_secs(60),
        || (!deliveries_for(&rx, "a", "resolved").is_empty()).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(3));
    let after: Vec<_> = rx.received().into_iter().skip(seen_before).collect();
    for d in &after {
        let mentions_b = d.body["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["labels"]["instance"] == "b"));
        assert!(
            !mentions_b,
            "a notification after the silence mentions b: {}",
            d.body
        );
    }
    // Series that disappear get staleness markers, as Prometheus writes
    // them: the recording rule's output and a's ALERTS series are gone at
    // once, not after the 5-minute lookback.
    wait(
        "the recorded series and ALERTS gone",
        Duration::from_secs(30),
        || {
            let rec = c.ctl(&["--output", "json", "query", "e2e:load:max"]);
            let alerts = c.ctl(&["--output", "json", "query", "ALERTS{instance=\"a\"}"]);
            (rec.code == 0
                && alerts.code == 0
                && !rec.stdout.contains("e2e:load:max")
                && !alerts.stdout.contains("HighLoad"))
            .then_some(())
        },
    );
    let silences = ok(c.ctl(&["--output", "json", "silences", "list"]));
    assert!(silences.stdout.contains(&silence_id));
    ok(c.ctl(&["silences", "expire", &silence_id]));
    // Every committed notification was delivered, each key at least once.
    let committed = notifications(&c);
    assert!(committed.len() >= 3, "{committed:?}");
    let delivered: BTreeSet<String> = rx.received().into_iter().map(|d| d.key).collect();
    for n in &committed {
        let key = n["key"].as_str().expect("key").to_string();
        wait(
            "every notification delivered",
            Duration::from_secs(20),
            || {
                let now: BTreeSet<String> = rx.received().into_iter().map(|d| d.key).collect();
                now.contains(&key).then_some(())
            },
        );
    }
    assert!(
        delivered
            .iter()
            .all(|k| committed.iter().any(|n| n["key"] == k.as_str()))
    );
    drop(writer);
}

#[test]
fn a_notification_committed_before_a_leader_dies_is_delivered_with_its_key() {
    let rx = Receiver::start();
    let mut c = Cluster::start(3, 2, 3);
    ok(c.ctl(&["settings", "set", "alerting.delivery_paused", "true"]));
    configure(&c, "0s", &rx.url());
    let writer = Writer::start((1..=3).map(|i| c.endpoint(i)).collect());
    writer.set("k", Some(50.0));
    let committed = wait("a committed notification", Duration::from_secs(60), || {
        notifications(&c)
            .into_iter()
            .find(|n| n["status"] == "pending" && n["alerts_status"] == "firing")
    });
    let key = committed["key"].as_str().expect("key").to_string();
    assert!(rx.received().is_empty(), "delivery is paused");
    let leader = control_leader(&c);
    c.kill(leader);
    let others: Vec<u64> = (1..=3).filter(|i| *i != leader).collect();
    let out = wait(
        "the setting changed on the new leader",
        Duration::from_secs(30),
        || {
            let out = raftwatch_tests::ctl(
                &c.endpoint(others[0]),
                &["settings", "set", "alerting.delivery_paused", "false"],
            );
            (out.code == 0).then_some(out)
        },
    );
    assert_eq!(out.code, 0);
    wait(
        "the notification delivered",
        Duration::from_secs(60),
        || rx.received().iter().any(|d| d.key == key).then_some(()),
    );
    // Every delivery of this notification carries its one key and the
    // same alerts.
    let same: Vec<_> = rx
        .received()
        .into_iter()
        .filter(|d| d.body["groupKey"] == committed_group_key(&committed))
        .filter(|d| d.body["status"] == "firing")
        .collect();
    let keys: BTreeSet<_> = same.iter().map(|d| d.key.clone()).collect();
    assert_eq!(keys, BTreeSet::from([key.clone()]), "one identity");
    let out = raftwatch_tests::ctl(
        &c.endpoint(others[0]),
        &["--output", "json", "notifications", "list"],
    );
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    let n = v["notifications"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["key"] == key.as_str()).cloned())
        .expect("still in the log");
    let marked = wait("marked delivered", Duration::from_secs(30), || {
        let out = raftwatch_tests::ctl(
            &c.endpoint(others[0]),
            &["--output", "json", "notifications", "list"],
        );
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        v["notifications"]
            .as_array()?
            .iter()
            .find(|m| m["key"] == key.as_str() && m["status"] == "delivered")
            .cloned()
    });
    assert_eq!(marked["id"], n["id"]);
    drop(writer);
}

fn committed_group_key(n: &Value) -> Value {
    n["group_key"].clone()
}

#[test]
fn a_control_leader_killed_during_for_does_not_restart_the_timer() {
    let rx = Receiver::start();
    let mut c = Cluster::start(3, 2, 3);
    configure(&c, "6s", &rx.url());
    let writer = Writer::start((1..=3).map(|i| c.endpoint(i)).collect());
    writer.set("f", Some(30.0));
    let pending = wait("a pending alert", Duration::from_secs(60), || {
        alert_of(&c, "f").filter(|a| a["state"] == "pending")
    });
    let active_at = pending["active_at_ms"].as_i64().expect("active_at");
    // Kill the leader about 2 s into the 6 s.
    while now_ms() < active_at + 2000 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let leader = control_leader(&c);
    c.kill(leader);
    let other = (1..=3).find(|i| *i != leader).expect("another node");
    let firing = wait("the alert firing", Duration::from_secs(60), || {
        let out = raftwatch_tests::ctl(&c.endpoint(other), &["--output", "json", "alerts", "list"]);
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        v["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["instance"] == "f" && a["state"] == "firing")
            .cloned()
    });
    assert_eq!(
        firing["active_at_ms"].as_i64(),
        Some(active_at),
        "the new leader kept the alert's active-since time"
    );
    let took = firing["fired_at_ms"].as_i64().expect("fired_at") - active_at;
    // On schedule: 6 s after the unchanged active_at (the reset detector
    // is that equality), later only by the election and evaluations a
    // loaded machine missed; never early.
    assert!(
        (6000..15_000).contains(&took),
        "fired {took} ms after it became active"
    );
    wait("the firing notification", Duration::from_secs(30), || {
        (!deliveries_for(&rx, "f", "firing").is_empty()).then_some(())
    });
    drop(writer);
}

#[test]
fn invalid_rules_silences_and_configs_commit_nothing() {
    let c = Cluster::start(3, 1, 3);
    let before = ok(c.ctl(&["--output", "json", "rules", "list"])).stdout;
    let bad_rules = [
        (
            "bad expression",
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m]\n",
            "expr",
        ),
        (
            "bad duration",
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        for: 5parsecs\n",
            "for",
        ),
        (
            "bad template",
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        annotations:\n          s: \"{{ $labels.x \"\n",
            "unclosed action",
        ),
        (
            "unknown field",
            "groups:\n  - name: g\n    rulez: []\n",
            "rulez",
        ),
    ];
    for (what, yaml, mention) in bad_rules {
        let p = write_file(&c, "bad.yml", yaml);
        let out = c.ctl(&["rules", "apply", "-f", &p]);
        assert_eq!(out.code, 1, "{what}: {out:?}");
        assert!(
            out.stderr.contains("INVALID_ARGUMENT") && out.stderr.contains(mention),
            "{what}: {}",
            out.stderr
        );
    }
    assert_eq!(
        ok(c.ctl(&["--output", "json", "rules", "list"])).stdout,
        before
    );

    // Silences: a bad regex, one matching everything, one without comment.
    for (args, mention) in [
        (
            vec!["--matcher", "job=~\"(\"", "--comment", "x"],
            "regular expression",
        ),
        (
            vec!["--matcher", "job=~\".*\"", "--comment", "x"],
            "empty string",
        ),
        (vec!["--matcher", "job=x", "--comment", ""], "comment"),
    ] {
        let mut full = vec!["silences", "add"];
        full.extend(args);
        let out = c.ctl(&full);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.stderr.contains(mention), "{}", out.stderr);
    }
    // End before start, straight through the API.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let err = rt.block_on(async {
        let ch = tonic::transport::Endpoint::from_shared(c.endpoint(1))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        pb::admin_client::AdminClient::new(ch)
            .add_silence(pb::AddSilenceRequest {
                matchers: vec!["job=x".into()],
                starts_at_ms: now_ms() + 60_000,
                ends_at_ms: now_ms(),
                created_by: "t".into(),
                comment: "c".into(),
                id: String::new(),
            })
            .await
            .expect_err("refused")
    });
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("ends before it starts"), "{err:?}");
    let silences = ok(c.ctl(&["--output", "json", "silences", "list"])).stdout;
    assert!(silences.contains("\"silences\":[]"), "{silences}");

    // An Alertmanager configuration naming an unknown receiver.
    let p = write_file(
        &c,
        "am-bad.yml",
        "route:\n  receiver: nope\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:1/\n",
    );
    let out = c.ctl(&["alertmanager", "apply", "-f", &p]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("nope"), "{}", out.stderr);
    let shown = ok(c.ctl(&["--output", "json", "alertmanager", "show"])).stdout;
    assert!(shown.contains("\"yaml\":\"\""), "nothing applied: {shown}");
    // Deleting an unknown group is refused.
    let out = c.ctl(&["rules", "delete", "nope"]);
    assert_eq!(out.code, 1, "{out:?}");
}
