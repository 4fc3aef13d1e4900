//! The clients: writers, readers and the final audit, all through the real
//! client library (`raftwatch-client`) over the simulated network. Each
//! runs as its own simulated host.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use raftwatch_client::{Client, ClientConfig, ClientError};
use raftwatch_proto::v1 as pb;
use raftwatch_seams::DetRng;

use crate::history::{History, Op, SampleKey, WriteOutcome};
use crate::params::{PORT, Params};

/// Where the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Faults on; clients issue new operations.
    Safety,
    /// Faults healed; writers resolve every unknown write, then the audit
    /// reads everything back.
    Liveness,
}

/// `Shared` is the state the clients and the driver share (one thread).
#[derive(Debug)]
pub struct Shared {
    pub phase: Phase,
    pub history: History,
    pub next_op: u64,
    pub writers_done: u64,
    /// Writes still unknown, by writer (for the liveness report).
    pub unresolved: BTreeMap<u64, u64>,
    /// The audit's final linearizable read of everything.
    pub audit: Option<BTreeMap<SampleKey, u64>>,
    /// The operator's final check: shards left below their replication
    /// factor (`None`: the operator has not finished).
    pub operator_done: Option<Vec<String>>,
    /// The alerting workload's history (`crate::alerting`).
    pub alert: crate::alerting::AlertHistory,
}

pub type SharedRef = Rc<RefCell<Shared>>;

impl Shared {
    pub fn new() -> SharedRef {
        Rc::new(RefCell::new(Shared {
            phase: Phase::Safety,
            history: History::default(),
            next_op: 0,
            writers_done: 0,
            unresolved: BTreeMap::new(),
            audit: None,
            operator_done: None,
            alert: crate::alerting::AlertHistory::default(),
        }))
    }

    fn op(&mut self) -> u64 {
        self.next_op += 1;
        self.next_op
    }

    /// `invoke` numbers `op`, records it and returns its number.
    pub fn invoke(&mut self, mut op: Op) -> u64 {
        let n = self.op();
        op.set_op(n);
        self.history.ops.push(op);
        n
    }
}

pub(crate) fn client(params: &Params, seed: u64) -> Result<Client, ClientError> {
    let endpoints = (1..=params.nodes)
        .map(|i| format!("http://{}:{PORT}", crate::cluster::host_name(i)))
        .collect();
    Client::new(
        endpoints,
        ClientConfig {
            attempts_max: 8,
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(500),
            request_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_millis(500),
            // Distinct per client: request ids are derived from it.
            seed: seed | 1,
            dialer: Some(crate::net::dialer()),
            ..ClientConfig::default()
        },
    )
}

/// Series per writer; each write puts one sample in each.
pub const SERIES_PER_WRITER: u64 = 4;

/// The exact value writer `w` writes to series `s` at `ts` (never NaN).
pub fn value(w: u64, s: u64, ts: i64) -> f64 {
    let h =
        xxhash_rust::xxh3::xxh3_64(&[w.to_le_bytes(), s.to_le_bytes(), ts.to_le_bytes()].concat());
    (h >> 11) as f64 / (1u64 << 20) as f64
}

fn series(w: u64, ts: i64) -> (Vec<pb::Series>, Vec<(SampleKey, u64)>) {
    let mut out = Vec::new();
    let mut keys = Vec::new();
    for s in 0..SERIES_PER_WRITER {
        let v = value(w, s, ts);
        out.push(pb::Series {
            labels: vec![
                label("__name__", "sim"),
                label("s", &s.to_string()),
                label("w", &w.to_string()),
            ],
            samples: vec![pb::Sample {
                timestamp_ms: ts,
                value: v,
            }],
        });
        keys.push(((w, s, ts), v.to_bits()));
    }
    (out, keys)
}

fn label(name: &str, value: &str) -> pb::Label {
    pb::Label {
        name: name.into(),
        value: value.into(),
    }
}

fn code(e: &ClientError) -> String {
    match e.status() {
        Some(s) => format!("{:?}", s.code()),
        None => "client".into(),
    }
}

/// What an error means for a write: only bad input is a definite refusal;
/// anything else may have been applied (partly, on some shards).
fn outcome(e: &ClientError) -> WriteOutcome {
    match e {
        ClientError::Refused(s) if s.code() == tonic::Code::InvalidArgument => {
            WriteOutcome::Refused {
                code: format!("{:?}", s.code()),
            }
        }
        _ => WriteOutcome::Unknown { code: code(e) },
    }
}

/// `writer` writes one sample to each of its series every few ms with a
/// fresh timestamp and request id; in the liveness phase it re-sends every
/// write whose outcome it does not know, with the same request id, until
/// each is acknowledged.
pub async fn writer(w: u64, params: Params, shared: SharedRef, seed: u64) -> turmoil::Result {
    let client = client(&params, seed)?;
    let mut rng = DetRng::new(seed);
    let mut unknown: Vec<(String, i64)> = Vec::new();
    let mut n: i64 = 0;
    while shared.borrow().phase == Phase::Safety {
        n += 1;
        let ts = n * 1_000;
        let id = format!("w{w}-{n}");
        if let WriteOutcome::Unknown { .. } = write_once(&client, &shared, w, &id, ts).await {
            unknown.push((id, ts));
        }
        shared
            .borrow_mut()
            .unresolved
            .insert(w, unknown.len() as u64);
        let gap = params.write_gap_ms.0 + rng.below(params.write_gap_ms.1 - params.write_gap_ms.0);
        tokio::time::sleep(Duration::from_millis(gap)).await;
    }
    while let Some((id, ts)) = unknown.first().cloned() {
        match write_once(&client, &shared, w, &id, ts).await {
            WriteOutcome::Unknown { .. } => tokio::time::sleep(Duration::from_millis(200)).await,
            _ => {
                unknown.remove(0);
                shared
                    .borrow_mut()
                    .unresolved
                    .insert(w, unknown.len() as u64);
            }
        }
    }
    shared.borrow_mut().writers_done += 1;
    Ok(())
}

async fn write_once(
    client: &Client,
    shared: &SharedRef,
    w: u64,
    id: &str,
    ts: i64,
) -> WriteOutcome {
    let (batch, samples) = series(w, ts);
    let op = {
        let mut s = shared.borrow_mut();
        let op = s.op();
        s.history.ops.push(Op::WriteInvoke {
            op,
            id: id.to_owned(),
            samples,
        });
        op
    };
    let outcome = match client.write(batch, Some(id.to_owned())).await {
        Ok(resp) => WriteOutcome::Acked {
            rejected: resp
                .rejections
                .iter()
                .map(|r| r.series_index as usize)
                .collect(),
        },
        Err(e) => outcome(&e),
    };
    shared.borrow_mut().history.ops.push(Op::WriteComplete {
        op,
        outcome: outcome.clone(),
    });
    outcome
}

/// `reader` reads every series back, linearizably or (at the run's ratio)
/// stale, until the safety phase ends.
pub async fn reader(params: Params, shared: SharedRef, seed: u64) -> turmoil::Result {
    let client = client(&params, seed)?;
    let mut rng = DetRng::new(seed);
    while shared.borrow().phase == Phase::Safety {
        let linearizable = !rng.chance(params.stale_ratio);
        read_once(&client, &shared, linearizable).await;
        let gap = params.read_gap_ms.0 + rng.below(params.read_gap_ms.1 - params.read_gap_ms.0);
        tokio::time::sleep(Duration::from_millis(gap)).await;
    }
    Ok(())
}

async fn read_once(
    client: &Client,
    shared: &SharedRef,
    linearizable: bool,
) -> Option<BTreeMap<SampleKey, u64>> {
    let op = {
        let mut s = shared.borrow_mut();
        let op = s.op();
        s.history.ops.push(Op::ReadInvoke { op, linearizable });
        op
    };
    let consistency = if linearizable {
        pb::Consistency::Linearizable
    } else {
        pb::Consistency::Stale
    };
    let matchers = vec![pb::LabelMatcher {
        r#type: pb::MatchType::MatchEqual as i32,
        name: "__name__".into(),
        value: "sim".into(),
    }];
    let samples = match client.select(matchers, 0, i64::MAX, consistency).await {
        Ok(resp) => Some(decode(&resp)),
        Err(_) => None,
    };
    shared.borrow_mut().history.ops.push(Op::ReadComplete {
        op,
        samples: samples.clone(),
    });
    samples
}

/// Turns an answer into sample keys. A series the workload never wrote
/// gets writer `u64::MAX`, which no writer has (the checkers report it).
fn decode(resp: &pb::SelectResponse) -> BTreeMap<SampleKey, u64> {
    let mut out = BTreeMap::new();
    for s in &resp.series {
        let get = |name: &str| {
            s.labels
                .iter()
                .find(|l| l.name == name)
                .and_then(|l| l.value.parse::<u64>().ok())
        };
        let (w, si) = match (get("w"), get("s")) {
            (Some(w), Some(si)) if s.labels.len() == 3 => (w, si),
            _ => (u64::MAX, u64::MAX),
        };
        for x in &s.samples {
            out.insert((w, si, x.timestamp_ms), x.value.to_bits());
        }
    }
    out
}

/// `audit` waits for every writer to resolve its writes, then reads
/// everything back linearizably (retrying until a read succeeds).
pub async fn audit(params: Params, shared: SharedRef, seed: u64) -> turmoil::Result {
    let client = client(&params, seed)?;
    loop {
        let ready = {
            let s = shared.borrow();
            s.phase == Phase::Liveness && s.writers_done == params.writers
        };
        if ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    loop {
        if let Some(samples) = read_once(&client, &shared, true).await {
            shared.borrow_mut().audit = Some(samples);
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
