//! What happened in a run: the operations the clients invoked and how they
//! completed (in real-time order: every client runs on this one thread, so
//! push order is the order events happened), and the event log whose hash
//! proves a run reproducible.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A sample's identity: (writer, series, timestamp).
pub type SampleKey = (u64, u64, i64);

/// `Op` is a client operation.
#[derive(Clone, Debug)]
pub enum Op {
    /// A write of `samples` (each with its exact value bits) under `id`.
    WriteInvoke {
        op: u64,
        id: String,
        samples: Vec<(SampleKey, u64)>,
    },
    /// A write's outcome.
    WriteComplete { op: u64, outcome: WriteOutcome },
    /// A read at `linearizable` or stale consistency.
    ReadInvoke { op: u64, linearizable: bool },
    /// A read's answer: every sample seen, with its value bits (`None`: the
    /// read failed).
    ReadComplete {
        op: u64,
        samples: Option<BTreeMap<SampleKey, u64>>,
    },
    /// A control-plane command applied only if the state is still at
    /// `expected_version`.
    CasInvoke {
        op: u64,
        kind: CasKind,
        expected_version: u64,
    },
    /// Its outcome.
    CasComplete { op: u64, outcome: CasOutcome },
    /// A linearizable read of the control-plane state version.
    VersionRead { op: u64 },
    /// Its answer (`None`: failed).
    VersionComplete { op: u64, version: Option<u64> },
}

impl Op {
    /// `set_op` numbers an invoke event.
    pub fn set_op(&mut self, n: u64) {
        match self {
            Op::WriteInvoke { op, .. }
            | Op::ReadInvoke { op, .. }
            | Op::CasInvoke { op, .. }
            | Op::VersionRead { op } => *op = n,
            _ => {}
        }
    }
}

/// `CasKind` is what a conditional command does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CasKind {
    /// Move a shard's replica.
    Move { shard: u64, from: u64, to: u64 },
    /// Drain a node.
    Drain { node: u64 },
    /// Promote a joined node to an active member.
    Promote { node: u64 },
    /// Remove a drained node.
    Remove { node: u64 },
}

/// `CasOutcome` is how a conditional command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CasOutcome {
    /// Applied at the expected version.
    Applied,
    /// Not applied: the version had moved on.
    Precondition,
    /// Not applied: invalid here (unknown shard, node holds no replica...).
    Refused,
    /// Timed out or failed in transit: may or may not have applied.
    Unknown,
}

/// `WriteOutcome` is what a writer learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Acknowledged; these sample indices were refused one by one.
    Acked { rejected: Vec<usize> },
    /// Unknown (timed out, gave up, refused for a retryable reason): the
    /// samples may or may not be applied.
    Unknown { code: String },
    /// Refused for a reason that cannot be retried (bad input).
    Refused { code: String },
}

/// `EventLog` collects the run's events, one line each, and hashes them.
#[derive(Debug, Default)]
pub struct EventLog {
    lines: Vec<String>,
}

impl EventLog {
    /// `push` records `kind` with `fields` at simulated time `t_ms`.
    pub fn push(&mut self, t_ms: u64, kind: &str, fields: std::fmt::Arguments<'_>) {
        let mut line = String::new();
        let _ = write!(line, "{t_ms} {kind} {fields}");
        self.lines.push(line);
    }

    /// `hash` is the xxh3-128 of every line, hex.
    pub fn hash(&self) -> String {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for l in &self.lines {
            h.update(l.as_bytes());
            h.update(b"\n");
        }
        format!("{:032x}", h.digest128())
    }

    /// `text` is the whole log.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

/// `History` is the run's operations in real-time order.
#[derive(Debug, Default)]
pub struct History {
    pub ops: Vec<Op>,
}

/// `digest` is a short hash of a read's answer for the event log.
pub fn digest(samples: &BTreeMap<SampleKey, u64>) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for ((w, s, t), v) in samples {
        h.update(&w.to_le_bytes());
        h.update(&s.to_le_bytes());
        h.update(&t.to_le_bytes());
        h.update(&v.to_le_bytes());
    }
    format!("{:016x}", h.digest())
}
