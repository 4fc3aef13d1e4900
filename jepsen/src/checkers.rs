//! Checkers over the history. Each returns a [`Verdict`] with counts and
//! the anomalies it found (the first few spelled out).
//!
//! - `append`: per series, the linearizable reads and the acknowledged
//!   and timed-out writes must be linearizable ([`crate::wgl`] with
//!   [`AppendSeries`]); every sample any read returned was written, with
//!   its value intact, by a write that was not refused (no phantoms); every
//!   acknowledged write is in the final read (nothing lost); every stale
//!   read is a prefix of the final read (a replica's state is a prefix of
//!   the log).
//! - `register`: per register, reads, writes and compare-and-sets must be
//!   linearizable ([`CasRegister`]); a refused compare-and-set counts as
//!   one that saw another value.
//! - `alerts`: every committed notification reached the receiver; every
//!   delivery belongs to a committed notification; one idempotency key per
//!   notification, and the same body on every redelivery; no firing alert
//!   in a notification committed while a silence matching it was active;
//!   every alert still triggered and unsilenced at the end was notified.

use std::collections::{BTreeMap, BTreeSet};

use raftwatch_alerting::matcher::{Matcher, parse_matcher};
use raftwatch_proto::v1 as pb;
use serde::Serialize;
use serde_json::{Value, json};

use crate::history::{Op, Outcome};
use crate::models::{
    AppendSeries, CasRegister, RegisterInput, RegisterOutput, SeriesInput, SeriesOutput,
};
use crate::receiver::Delivery;
use crate::wgl::{self, Operation};

/// How many anomalies a verdict spells out (all are counted).
pub const ANOMALIES_SHOWN: usize = 20;

/// `Verdict` is one checker's result.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// The checker.
    pub checker: String,
    /// `true`, `false`, or `"unknown"` (not enough evidence, e.g. a
    /// linearizability search over budget).
    pub valid: Value,
    /// Counts of what was checked.
    pub counts: BTreeMap<String, u64>,
    /// Anomalies found, by kind.
    pub anomaly_counts: BTreeMap<String, u64>,
    /// The first [`ANOMALIES_SHOWN`] anomalies.
    pub anomalies: Vec<String>,
}

impl Verdict {
    fn new(checker: &str) -> Verdict {
        Verdict {
            checker: checker.to_string(),
            valid: json!(true),
            counts: BTreeMap::new(),
            anomaly_counts: BTreeMap::new(),
            anomalies: Vec::new(),
        }
    }

    fn count(&mut self, what: &str, n: u64) {
        *self.counts.entry(what.to_string()).or_default() += n;
    }

    fn count_max(&mut self, what: &str, n: u64) {
        let c = self.counts.entry(what.to_string()).or_default();
        *c = (*c).max(n);
    }

    fn anomaly(&mut self, kind: &str, text: String) {
        *self.anomaly_counts.entry(kind.to_string()).or_default() += 1;
        if self.anomalies.len() < ANOMALIES_SHOWN {
            self.anomalies.push(format!("{kind}: {text}"));
        }
        self.valid = json!(false);
    }

    fn unknown(&mut self, text: String) {
        if self.valid == json!(true) {
            self.valid = json!("unknown");
        }
        if self.anomalies.len() < ANOMALIES_SHOWN {
            self.anomalies.push(format!("unknown: {text}"));
        }
    }

    /// Whether the checker found an anomaly.
    pub fn failed(&self) -> bool {
        self.valid == json!(false)
    }
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Info => "info",
    }
}

/// A read's samples as `(seq, value)`.
fn samples(v: &Value) -> Vec<(i64, f64)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| Some((s.get(0)?.as_i64()?, s.get(1)?.as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn describe(op: &Op) -> String {
    format!(
        "process {} {} {} {} at {:.3}s..{:.3}s -> {} {}",
        op.process,
        op.f,
        op.key,
        op.value,
        op.invoke_ns as f64 / 1e9,
        op.complete_ns as f64 / 1e9,
        outcome_name(op.outcome),
        if op.result.is_null() {
            op.error.clone().unwrap_or_default()
        } else {
            let s = op.result.to_string();
            if s.len() > 200 {
                format!("{}…", &s[..200])
            } else {
                s
            }
        }
    )
}

/// `by_key` groups `workload`'s operations by key, counting them by kind
/// and outcome in `v`.
fn by_key<'a>(v: &mut Verdict, ops: &'a [Op], workload: &str) -> BTreeMap<&'a str, Vec<&'a Op>> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.workload == workload) {
        by_key.entry(op.key.as_str()).or_default().push(op);
        v.count(&format!("{}_{}", op.f, outcome_name(op.outcome)), 1);
    }
    by_key
}

/// `check_wgl` checks one key's `history` against `model` and adds the
/// verdict to `v` (with the operations checked and the configurations the
/// search explored), naming the operations that could not go next; a key
/// that passes counts under `passed`.
fn check_wgl<M: wgl::Model>(
    v: &mut Verdict,
    key: &str,
    ops: &[&Op],
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    budget: u64,
    passed: &str,
) {
    let (verdict, explored) = wgl::check_explored(model, history, budget);
    v.count("linearizability_ops", history.len() as u64);
    // The largest search of any key: how close the run came to the budget.
    v.count_max("max_configurations_explored", explored);
    match verdict {
        wgl::Verdict::Linearizable => v.count(passed, 1),
        wgl::Verdict::NotLinearizable(w) => {
            let pending: Vec<String> = w
                .pending
                .iter()
                .filter_map(|i| ops.get(*i))
                .map(|o| describe(o))
                .collect();
            v.anomaly(
                "not-linearizable",
                format!(
                    "{key}: after {} operations, state {}, none of these can go next: {}",
                    w.linearized.len(),
                    w.state,
                    pending.join(" | ")
                ),
            );
        }
        wgl::Verdict::Unknown { explored } => v.unknown(format!(
            "{key}: search gave up after {explored} configurations"
        )),
    }
}

/// `check_append` checks the append workload's operations.
pub fn check_append(ops: &[Op], budget: u64) -> Verdict {
    let mut v = Verdict::new("append");
    let by_key = by_key(&mut v, ops, "append");
    v.count("series", by_key.len() as u64);
    for (key, ops) in by_key {
        // seq → (value, outcome) of its write.
        let mut written: BTreeMap<i64, (f64, Outcome)> = BTreeMap::new();
        for op in ops.iter().filter(|o| o.f == "write") {
            let seq = op.value.get(0).and_then(Value::as_i64).unwrap_or(-1);
            let value = op.value.get(1).and_then(Value::as_f64).unwrap_or(f64::NAN);
            written.insert(seq, (value, op.outcome));
        }
        // Phantoms and corruption, in every read.
        for op in ops
            .iter()
            .filter(|o| o.f.contains("read") && o.outcome == Outcome::Ok)
        {
            for (seq, value) in samples(&op.result) {
                match written.get(&seq) {
                    None => v.anomaly("phantom", format!("{key} seq {seq} in {}", describe(op))),
                    Some((w, _)) if w.to_bits() != value.to_bits() => v.anomaly(
                        "corrupt",
                        format!(
                            "{key} seq {seq}: wrote {w}, read {value} in {}",
                            describe(op)
                        ),
                    ),
                    Some((_, Outcome::Fail)) => v.anomaly(
                        "refused-write-visible",
                        format!("{key} seq {seq} in {}", describe(op)),
                    ),
                    Some(_) => {}
                }
            }
        }
        // Lost writes and stale prefixes, against the final read.
        let last_final = ops
            .iter()
            .rfind(|o| o.f == "final-read" && o.outcome == Outcome::Ok);
        match last_final {
            Some(fin) => {
                let fin_samples = samples(&fin.result);
                let present: BTreeSet<i64> = fin_samples.iter().map(|s| s.0).collect();
                for (seq, (_, outcome)) in &written {
                    if *outcome == Outcome::Ok && !present.contains(seq) {
                        v.anomaly(
                            "lost",
                            format!("{key} seq {seq} acknowledged but not in the final read"),
                        );
                    }
                }
                v.count("samples_in_final_reads", present.len() as u64);
                for op in ops
                    .iter()
                    .filter(|o| o.f == "read-stale" && o.outcome == Outcome::Ok)
                {
                    let got = samples(&op.result);
                    let prefix = got.len() <= fin_samples.len()
                        && got
                            .iter()
                            .zip(&fin_samples)
                            .all(|(a, b)| a.0 == b.0 && a.1.to_bits() == b.1.to_bits());
                    if !prefix {
                        v.anomaly(
                            "stale-read-not-a-prefix",
                            format!("{key}: {}", describe(op)),
                        );
                    }
                }
            }
            None => v.unknown(format!("{key}: no final read succeeded")),
        }
        // Linearizability. Samples are never deleted, so the final read
        // settles every timed-out write: in it, the write took effect (and
        // stays optional, pinned by the reads that saw it); absent, it never
        // did and is left out. Without this, every unobserved timed-out
        // write multiplies the search.
        let final_present: Option<BTreeSet<i64>> =
            last_final.map(|f| samples(&f.result).iter().map(|s| s.0).collect());
        let mut history = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match (op.f.as_str(), op.outcome) {
                ("write", Outcome::Fail) | (_, Outcome::Fail) => {}
                ("write", outcome) => {
                    let seq = op.value.get(0).and_then(Value::as_i64).unwrap_or(-1);
                    if outcome == Outcome::Info
                        && final_present.as_ref().is_some_and(|p| !p.contains(&seq))
                    {
                        v.count("info_writes_never_applied", 1);
                        continue;
                    }
                    let value = op.value.get(1).and_then(Value::as_f64).unwrap_or(f64::NAN);
                    let input = SeriesInput::Write {
                        ts: seq,
                        value_bits: value.to_bits(),
                    };
                    history.push(match outcome {
                        Outcome::Ok => Operation::ok(
                            i,
                            op.invoke_ns,
                            op.complete_ns,
                            input,
                            SeriesOutput::WriteOk,
                        ),
                        _ => Operation::info(i, op.invoke_ns, input),
                    });
                }
                ("read" | "final-read", Outcome::Ok) => {
                    let s: Vec<(i64, u64)> = samples(&op.result)
                        .into_iter()
                        .map(|(seq, value)| (seq, value.to_bits()))
                        .collect();
                    history.push(Operation::ok(
                        i,
                        op.invoke_ns,
                        op.complete_ns,
                        SeriesInput::Read,
                        AppendSeries::read_output(&s),
                    ));
                }
                _ => {}
            }
        }
        check_wgl(
            &mut v,
            key,
            &ops,
            &AppendSeries,
            &history,
            budget,
            "series_linearizable",
        );
    }
    v
}

/// `check_register` checks the register workload's operations.
pub fn check_register(ops: &[Op], budget: u64) -> Verdict {
    let mut v = Verdict::new("register");
    let by_key = by_key(&mut v, ops, "register");
    v.count("registers", by_key.len() as u64);
    for (key, ops) in by_key {
        let mut history = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let input = match op.f.as_str() {
                "read" => RegisterInput::Read,
                "write" => RegisterInput::Write(op.value.as_u64().unwrap_or(0)),
                _ => RegisterInput::Cas {
                    expected: op.value.get(0).and_then(Value::as_u64).unwrap_or(0),
                    new: op.value.get(1).and_then(Value::as_u64).unwrap_or(0),
                },
            };
            let output = match (input, op.outcome) {
                // A read that never returned observed nothing and changed
                // nothing: it constrains no order, and as an optional
                // operation it would only multiply the search.
                (RegisterInput::Read, Outcome::Info) => continue,
                (_, Outcome::Info) => {
                    history.push(Operation::info(i, op.invoke_ns, input));
                    continue;
                }
                (RegisterInput::Read, Outcome::Ok) => {
                    RegisterOutput::ReadOk(op.result.as_u64().unwrap_or(u64::MAX))
                }
                (RegisterInput::Write(_), Outcome::Ok) => RegisterOutput::WriteOk,
                (RegisterInput::Cas { .. }, Outcome::Ok) => RegisterOutput::CasOk,
                (RegisterInput::Cas { .. }, Outcome::Fail) => RegisterOutput::CasFailed,
                // A refused read or write had no effect.
                _ => continue,
            };
            history.push(Operation::ok(
                i,
                op.invoke_ns,
                op.complete_ns,
                input,
                output,
            ));
        }
        check_wgl(
            &mut v,
            key,
            &ops,
            &CasRegister,
            &history,
            budget,
            "registers_linearizable",
        );
    }
    v
}

/// `AlertsEvidence` is what the alerts checker reads besides the history.
#[derive(Debug, Default)]
pub struct AlertsEvidence {
    /// Every committed notification the observer saw, by id.
    pub notifications: BTreeMap<u64, pb::NotificationInfo>,
    /// Every silence at the end (expired ones included).
    pub silences: Vec<pb::SilenceInfo>,
    /// Silence id → `updated_at_ms` when the observer first saw it: no
    /// earlier than the state-machine time the silence was committed at.
    pub silence_first_seen: BTreeMap<String, i64>,
    /// What the receiver got.
    pub deliveries: Vec<Delivery>,
    /// Whether the final reads of the notification log and silences
    /// succeeded (without them, loss cannot be judged).
    pub complete: bool,
}

/// `(status, labels)` of every alert in a webhook body.
fn payload_alerts(body: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return Vec::new();
    };
    v["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    let labels = x["labels"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                                .collect()
                        })
                        .unwrap_or_default();
                    (x["status"].as_str().unwrap_or("").to_string(), labels)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `check_alerts` checks notifications against the log, the silences and
/// the triggers the clients set.
pub fn check_alerts(ops: &[Op], e: &AlertsEvidence) -> Verdict {
    let mut v = Verdict::new("alerts");
    by_key(&mut v, ops, "alerts");
    v.count("notifications", e.notifications.len() as u64);
    v.count("deliveries", e.deliveries.len() as u64);
    v.count("silences", e.silences.len() as u64);
    if !e.complete {
        v.unknown("the final notification log or silences could not be read".into());
    }
    // Deliveries by key.
    let mut delivered: BTreeMap<&str, Vec<&Delivery>> = BTreeMap::new();
    for d in &e.deliveries {
        delivered.entry(d.key.as_str()).or_default().push(d);
    }
    v.count("distinct_keys_delivered", delivered.len() as u64);
    v.count(
        "redeliveries",
        delivered.values().map(|d| d.len() as u64 - 1).sum(),
    );
    // Keys must be unique per notification.
    let mut keys: BTreeMap<&str, u64> = BTreeMap::new();
    for n in e.notifications.values() {
        if let Some(other) = keys.insert(n.key.as_str(), n.id) {
            v.anomaly(
                "key-reused",
                format!("notifications {other} and {} share key {}", n.id, n.key),
            );
        }
    }
    for (key, ds) in &delivered {
        if key.is_empty() {
            v.anomaly(
                "no-idempotency-key",
                format!("{} deliveries without a key", ds.len()),
            );
            continue;
        }
        if !keys.contains_key(key) {
            v.anomaly(
                "unknown-delivery",
                format!("key {key} is in no committed notification"),
            );
        }
        let bodies: BTreeSet<&str> = ds.iter().map(|d| d.body.as_str()).collect();
        if bodies.len() > 1 {
            v.anomaly(
                "redelivery-differs",
                format!("key {key} delivered with {} different bodies", bodies.len()),
            );
        }
    }
    // Lost notifications.
    if e.complete {
        for n in e.notifications.values() {
            if !delivered.contains_key(n.key.as_str()) {
                let state = if n.delivered_ms != 0 {
                    "marked delivered"
                } else {
                    "still pending at the end"
                };
                v.anomaly(
                    "lost-notification",
                    format!(
                        "notification {} ({}, key {}) never reached the receiver ({state})",
                        n.id, n.alerts_status, n.key
                    ),
                );
            }
        }
    }
    // Silenced alerts notified.
    let silences: Vec<(Vec<Matcher>, &pb::SilenceInfo)> = e
        .silences
        .iter()
        .filter_map(|s| {
            let m: Result<Vec<Matcher>, _> = s.matchers.iter().map(|t| parse_matcher(t)).collect();
            m.ok().map(|m| (m, s))
        })
        .collect();
    let mut firing_keys: BTreeSet<String> = BTreeSet::new();
    let mut checked = 0;
    for n in e.notifications.values() {
        for (status, labels) in payload_alerts(&n.payload_json) {
            if status != "firing" {
                continue;
            }
            checked += 1;
            if let Some(k) = labels.get("key") {
                firing_keys.insert(k.clone());
            }
            for (m, s) in &silences {
                // Committed before the notification (state-machine time is
                // monotonic in log order; equal times are not ordered), and
                // active at its time. `starts_at` alone is no evidence: a
                // silence starts at its proposer's clock, which may lag.
                let committed = e
                    .silence_first_seen
                    .get(&s.id)
                    .copied()
                    .unwrap_or(s.updated_at_ms);
                if Matcher::matches_all(m, &labels)
                    && committed < n.created_ms
                    && s.starts_at_ms <= n.created_ms
                    && n.created_ms < s.ends_at_ms
                {
                    v.anomaly(
                        "silenced-alert-notified",
                        format!(
                            "notification {} at {} ms notified {:?}, silenced by {} (committed by {} ms, active [{}, {}))",
                            n.id, n.created_ms, labels, s.id, committed, s.starts_at_ms, s.ends_at_ms
                        ),
                    );
                }
            }
        }
    }
    v.count("firing_alerts_checked_against_silences", checked);
    // Every alert triggered at the end and never silenced at the end was
    // notified (liveness, after the faults are healed).
    if e.complete {
        let mut last_trigger: BTreeMap<&str, &Op> = BTreeMap::new();
        for op in ops
            .iter()
            .filter(|o| o.workload == "alerts" && o.f == "trigger")
        {
            last_trigger.insert(op.key.as_str(), op);
        }
        for (key, op) in last_trigger {
            if op.outcome != Outcome::Ok || op.value.as_f64() != Some(1.0) {
                continue;
            }
            let labels: BTreeMap<String, String> =
                [("key".to_string(), key.to_string())].into_iter().collect();
            let silenced = silences
                .iter()
                .any(|(m, s)| Matcher::matches_all(m, &labels) && s.state != "expired");
            if silenced {
                continue;
            }
            v.count("alerts_expected_notified", 1);
            if !firing_keys.contains(key) {
                v.anomaly(
                    "alert-never-notified",
                    format!("{key}: triggered at the end, not silenced, no firing notification"),
                );
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn op(
        process: u64,
        f: &str,
        key: &str,
        t: (u64, u64),
        outcome: Outcome,
        value: Value,
        result: Value,
    ) -> Op {
        Op {
            process,
            workload: "append".into(),
            f: f.into(),
            key: key.into(),
            invoke_ns: t.0,
            complete_ns: t.1,
            outcome,
            value,
            result,
            error: None,
        }
    }

    fn write(seq: i64, t: (u64, u64), outcome: Outcome) -> Op {
        op(
            1,
            "write",
            "k",
            t,
            outcome,
            json!([seq, seq as f64]),
            Value::Null,
        )
    }

    fn read(f: &str, seqs: &[i64], t: (u64, u64)) -> Op {
        let samples: Vec<Value> = seqs.iter().map(|s| json!([s, *s as f64])).collect();
        op(
            2,
            f,
            "k",
            t,
            Outcome::Ok,
            Value::Null,
            Value::Array(samples),
        )
    }

    #[test]
    fn a_clean_append_history_passes() {
        let ops = vec![
            write(1, (0, 10), Outcome::Ok),
            read("read", &[1], (11, 20)),
            write(2, (21, 30), Outcome::Info),
            read("read-stale", &[1], (31, 40)),
            write(3, (41, 50), Outcome::Ok),
            read("final-read", &[1, 3], (60, 70)),
        ];
        let v = check_append(&ops, wgl::DEFAULT_BUDGET);
        assert_eq!(v.valid, json!(true), "{v:?}");
        assert_eq!(v.counts["info_writes_never_applied"], 1);
    }

    #[test]
    fn lost_phantom_corrupt_and_stale_anomalies_are_reported() {
        let mut corrupt = read("read", &[1], (11, 20));
        corrupt.result = json!([[1, 99.0]]);
        let ops = vec![
            write(1, (0, 10), Outcome::Ok),
            corrupt,
            write(2, (21, 30), Outcome::Ok),
            read("read", &[1, 2, 7], (31, 40)),
            read("read-stale", &[2], (41, 45)),
            read("final-read", &[1], (60, 70)),
        ];
        let v = check_append(&ops, wgl::DEFAULT_BUDGET);
        assert_eq!(v.valid, json!(false));
        for kind in [
            "lost",
            "phantom",
            "corrupt",
            "stale-read-not-a-prefix",
            "not-linearizable",
        ] {
            assert!(v.anomaly_counts.contains_key(kind), "{kind} missing: {v:?}");
        }
    }

    #[test]
    fn a_stale_linearizable_read_is_not_linearizable() {
        let ops = vec![
            write(1, (0, 10), Outcome::Ok),
            write(2, (11, 20), Outcome::Ok),
            // Began after write 2 was acknowledged, yet misses it.
            read("read", &[1], (30, 40)),
            read("final-read", &[1, 2], (60, 70)),
        ];
        let v = check_append(&ops, wgl::DEFAULT_BUDGET);
        assert_eq!(v.anomaly_counts.get("not-linearizable"), Some(&1), "{v:?}");
        assert!(!v.anomaly_counts.contains_key("lost"));
    }

    fn reg(f: &str, t: (u64, u64), outcome: Outcome, value: Value, result: Value) -> Op {
        Op {
            workload: "register".into(),
            ..op(1, f, "r", t, outcome, value, result)
        }
    }

    #[test]
    fn register_histories_are_checked_for_linearizability() {
        let good = vec![
            reg("write", (0, 10), Outcome::Ok, json!(3), Value::Null),
            reg("cas", (11, 20), Outcome::Ok, json!([3, 4]), Value::Null),
            reg("cas", (21, 30), Outcome::Fail, json!([3, 5]), Value::Null),
            reg("read", (31, 40), Outcome::Ok, Value::Null, json!(4)),
        ];
        assert_eq!(
            check_register(&good, wgl::DEFAULT_BUDGET).valid,
            json!(true)
        );
        let mut bad = good.clone();
        // A refused CAS that expected the value the register held.
        bad[2] = reg("cas", (21, 30), Outcome::Fail, json!([4, 5]), Value::Null);
        let v = check_register(&bad, wgl::DEFAULT_BUDGET);
        assert_eq!(v.valid, json!(false), "{v:?}");
    }

    #[test]
    fn timed_out_register_reads_are_left_out_of_the_search() {
        // 40 reads that never returned, each concurrent with everything
        // after it, among 3 operations that did. Kept in, they would be 40
        // optional operations; left out, 3 remain.
        let mut ops = vec![reg("write", (0, 10), Outcome::Ok, json!(3), Value::Null)];
        for i in 0..40 {
            ops.push(reg(
                "read",
                (11 + i, 12 + i),
                Outcome::Info,
                Value::Null,
                Value::Null,
            ));
        }
        ops.push(reg("write", (60, 70), Outcome::Info, json!(5), Value::Null));
        ops.push(reg("read", (80, 90), Outcome::Ok, Value::Null, json!(5)));
        ops.push(reg(
            "cas",
            (91, 95),
            Outcome::Ok,
            json!([5, 1]),
            Value::Null,
        ));
        let v = check_register(&ops, wgl::DEFAULT_BUDGET);
        assert_eq!(v.valid, json!(true), "{v:?}");
        assert_eq!(v.counts["linearizability_ops"], 4, "{v:?}");
        assert_eq!(v.counts["read_info"], 40, "{v:?}");
    }

    fn notification(id: u64, key: &str, created_ms: i64, alert_key: &str) -> pb::NotificationInfo {
        pb::NotificationInfo {
            id,
            key: key.into(),
            created_ms,
            delivered_ms: created_ms + 5,
            alerts_status: "firing".into(),
            payload_json: json!({"alerts": [{"status": "firing", "labels": {"alertname": "JepsenAlert", "key": alert_key}}]})
                .to_string(),
            ..Default::default()
        }
    }

    fn delivery(key: &str, body: &str) -> Delivery {
        Delivery {
            key: key.into(),
            body: body.into(),
            at_ns: 0,
        }
    }

    #[test]
    fn alert_anomalies_are_reported_and_clean_evidence_passes() {
        let n1 = notification(1, "k1", 1_000, "a0");
        let n2 = notification(2, "k2", 2_000, "a1");
        let silence = pb::SilenceInfo {
            id: "s1".into(),
            matchers: vec!["key=\"a1\"".into()],
            starts_at_ms: 500,
            ends_at_ms: 3_000,
            updated_at_ms: 3_000,
            state: "expired".into(),
            ..Default::default()
        };
        let clean = AlertsEvidence {
            notifications: [(1, n1.clone())].into_iter().collect(),
            silences: vec![silence.clone()],
            silence_first_seen: BTreeMap::new(),
            deliveries: vec![
                delivery("k1", &n1.payload_json),
                delivery("k1", &n1.payload_json),
            ],
            complete: true,
        };
        let v = check_alerts(&[], &clean);
        assert_eq!(v.valid, json!(true), "{v:?}");

        // n2 was committed while s1 (committed at 1,500) silenced a1; n1 is
        // lost; a delivery nobody committed; a key redelivered with another
        // body.
        let bad = AlertsEvidence {
            notifications: [(1, n1.clone()), (2, n2.clone())].into_iter().collect(),
            silences: vec![silence.clone()],
            silence_first_seen: [("s1".to_string(), 1_500)].into_iter().collect(),
            deliveries: vec![
                delivery("k2", &n2.payload_json),
                delivery("k2", "{}"),
                delivery("k9", "{}"),
            ],
            complete: true,
        };
        let v = check_alerts(&[], &bad);
        for kind in [
            "silenced-alert-notified",
            "lost-notification",
            "unknown-delivery",
            "redelivery-differs",
        ] {
            assert!(v.anomaly_counts.contains_key(kind), "{kind} missing: {v:?}");
        }
        // A silence first seen after the notification was committed (its
        // start backdated to the proposer's clock) is not evidence.
        let late = AlertsEvidence {
            notifications: [(2, n2.clone())].into_iter().collect(),
            silences: vec![silence],
            silence_first_seen: [("s1".to_string(), 2_500)].into_iter().collect(),
            deliveries: vec![delivery("k2", &n2.payload_json)],
            complete: true,
        };
        assert_eq!(check_alerts(&[], &late).valid, json!(true));
    }
}
