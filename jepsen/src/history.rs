//! The history: every client operation as an invocation and a completion
//! (`ok`, `fail` or `info`), and every nemesis action, with times since the
//! start of the run, written as `history.jsonl` the way Jepsen records it.
//!
//! - `ok`: the operation took effect (a read returned this value).
//! - `fail`: it certainly did not take effect (a definite refusal).
//! - `info`: unknown (a timeout, a lost connection): it may have taken
//!   effect, at any time after its invocation, or never.

use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It took effect.
    Ok,
    /// It certainly did not.
    Fail,
    /// Unknown.
    Info,
}

/// `Op` is one completed client operation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Op {
    /// Client process (a process that saw `info` is retired and its
    /// client continues as a new process, as in Jepsen).
    pub process: u64,
    /// Workload.
    pub workload: String,
    /// Operation kind (`write`, `read`, `cas`, ...).
    pub f: String,
    /// The key (series, register, alert) it is about.
    pub key: String,
    /// Invocation time, ns since the start.
    pub invoke_ns: u64,
    /// Completion time, ns since the start (for `info`: when the client
    /// gave up).
    pub complete_ns: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// The input.
    pub value: Value,
    /// The output (`null` unless `ok`, or a `fail`'s refusal details).
    pub result: Value,
    /// The error, for `fail` and `info`.
    pub error: Option<String>,
}

/// `NemesisEvent` is one fault starting or ending.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NemesisEvent {
    /// When, ns since the start.
    pub time_ns: u64,
    /// `start` or `stop`.
    pub phase: String,
    /// The fault kind (`kill`, `pause`, `partition`, `clock`,
    /// `membership`).
    pub fault: String,
    /// What exactly (nodes, halves, offsets, commands).
    pub detail: String,
    /// An error if the action failed.
    pub error: Option<String>,
}

/// `Recorder` collects operations and nemesis events from every task.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    ops: Mutex<Vec<Op>>,
    nemesis: Mutex<Vec<NemesisEvent>>,
}

/// `Pending` is an invoked operation; complete it with
/// [`Recorder::complete`].
#[derive(Debug)]
pub struct Pending {
    process: u64,
    workload: &'static str,
    f: String,
    key: String,
    value: Value,
    invoke_ns: u64,
}

impl Recorder {
    /// `new` starts the clock.
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
            nemesis: Mutex::new(Vec::new()),
        }
    }

    /// Nanoseconds since the start.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// `invoke` records the start of an operation.
    pub fn invoke(
        &self,
        process: u64,
        workload: &'static str,
        f: &str,
        key: &str,
        value: Value,
    ) -> Pending {
        Pending {
            process,
            workload,
            f: f.to_string(),
            key: key.to_string(),
            value,
            invoke_ns: self.now_ns(),
        }
    }

    /// `complete` records how `pending` ended.
    pub fn complete(
        &self,
        pending: Pending,
        outcome: Outcome,
        result: Value,
        error: Option<String>,
    ) {
        let op = Op {
            process: pending.process,
            workload: pending.workload.to_string(),
            f: pending.f,
            key: pending.key,
            invoke_ns: pending.invoke_ns,
            complete_ns: self.now_ns(),
            outcome,
            value: pending.value,
            result,
            error,
        };
        self.ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(op);
    }

    /// `nemesis` records a fault event.
    pub fn nemesis(&self, phase: &str, fault: &str, detail: String, error: Option<String>) {
        let e = NemesisEvent {
            time_ns: self.now_ns(),
            phase: phase.to_string(),
            fault: fault.to_string(),
            detail,
            error,
        };
        self.nemesis
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(e);
    }

    /// Every completed operation so far, by invocation time.
    pub fn ops(&self) -> Vec<Op> {
        let mut ops = self
            .ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        ops.sort_by_key(|o| (o.invoke_ns, o.process));
        ops
    }

    /// Every nemesis event so far.
    pub fn nemesis_events(&self) -> Vec<NemesisEvent> {
        self.nemesis
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder::new()
    }
}

/// `write_jsonl` writes `history.jsonl`: one line per invocation, per
/// completion and per nemesis event, in time order; `index` numbers the
/// lines and a completion's `invoke_index` points at its invocation.
pub fn write_jsonl(path: &Path, ops: &[Op], nemesis: &[NemesisEvent]) -> std::io::Result<()> {
    // (time, order within equal times, line)
    let mut lines: Vec<(u64, u8, usize, Value)> = Vec::with_capacity(ops.len() * 2 + nemesis.len());
    for (i, op) in ops.iter().enumerate() {
        lines.push((
            op.invoke_ns,
            1,
            i,
            json!({
                "type": "invoke", "process": op.process, "workload": op.workload,
                "f": op.f, "key": op.key, "value": op.value, "time": op.invoke_ns,
            }),
        ));
        lines.push((
            op.complete_ns,
            2,
            i,
            json!({
                "type": op.outcome, "process": op.process, "workload": op.workload,
                "f": op.f, "key": op.key, "value": op.value, "result": op.result,
                "error": op.error, "time": op.complete_ns,
            }),
        ));
    }
    for (i, e) in nemesis.iter().enumerate() {
        lines.push((
            e.time_ns,
            0,
            i,
            json!({
                "type": "info", "process": "nemesis", "f": format!("{}-{}", e.phase, e.fault),
                "value": e.detail, "error": e.error, "time": e.time_ns,
            }),
        ));
    }
    lines.sort_by_key(|(t, order, i, _)| (*t, *order, *i));
    let mut invoke_index = vec![0usize; ops.len()];
    let file = std::fs::File::create(path)?;
    let mut out = std::io::BufWriter::new(file);
    for (index, (_, order, i, mut line)) in lines.into_iter().enumerate() {
        if let Value::Object(m) = &mut line {
            m.insert("index".into(), json!(index));
            if order == 1 {
                invoke_index[i] = index;
            } else if order == 2 {
                m.insert("invoke_index".into(), json!(invoke_index[i]));
            }
        }
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn history_lines_pair_invocations_with_completions_in_time_order() {
        let r = Recorder::new();
        let a = r.invoke(1, "append", "write", "k1", json!([1, 1.0]));
        let b = r.invoke(2, "append", "read", "k1", Value::Null);
        r.complete(b, Outcome::Ok, json!([[1, 1.0]]), None);
        r.nemesis("start", "kill", "n1".into(), None);
        r.complete(a, Outcome::Info, Value::Null, Some("timeout".into()));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("history.jsonl");
        write_jsonl(&p, &r.ops(), &r.nemesis_events()).unwrap();
        let lines: Vec<Value> = std::fs::read_to_string(&p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 5);
        let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["invoke", "invoke", "ok", "info", "info"]);
        assert_eq!(lines[3]["process"], "nemesis");
        // The info completion of process 1 points at its invocation.
        assert_eq!(lines[4]["process"], 1);
        assert_eq!(lines[4]["invoke_index"], 0);
        assert_eq!(lines[2]["invoke_index"], 1);
        let times: Vec<u64> = lines.iter().map(|l| l["time"].as_u64().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }
}
