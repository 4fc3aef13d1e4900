//! [`ShardStateMachine`]: a shard's engine as a Raft state machine.

use prost::Message;
use raftwatch_model::{Label, MatchOp, Matcher, Sample, TimestampMs};
use raftwatch_raft::GroupStateMachine;
use raftwatch_storage::KvStore;
use raftwatch_tsdb::{Tsdb, TsdbConfig};

use crate::codec::{
    COMMAND_VERSION, RejectionPb, SeriesPb, ShardCommand, ShardQuery, ShardQueryResult,
    ShardWriteResult,
};

/// `StoreFactory` hands the state machine empty stores: one at start (the
/// state is rebuilt from the group's snapshot and log, never trusted from a
/// previous run's store) and one per snapshot install.
pub trait StoreFactory<S>: Send + Sync + 'static {
    /// `create` returns a new, empty store.
    fn create(&mut self) -> Result<S, String>;
    /// `retire` disposes of a store no longer in use (deletes its files).
    fn retire(&mut self, store: S);
}

/// `FLUSH_EVERY_ENTRIES` bounds the head memory: the engine writes its
/// sealed chunks out every this many applied entries. When a flush happens
/// never changes a query result.
pub const FLUSH_EVERY_ENTRIES: u64 = 1_024;
/// `SNAPSHOT_PIECE_BYTES` is the engine snapshot's piece size.
pub const SNAPSHOT_PIECE_BYTES: usize = 1 << 20;
const SNAPSHOT_MAGIC: &[u8; 4] = b"RWSS";
const SNAPSHOT_VERSION: u8 = 1;

/// `ShardStateMachine` applies [`ShardCommand`]s to a [`Tsdb`].
pub struct ShardStateMachine<S: KvStore> {
    db: Option<Tsdb<S>>,
    config: TsdbConfig,
    factory: Box<dyn StoreFactory<S>>,
    applied_since_flush: u64,
    /// Set when the local engine failed (an I/O error); the replica then
    /// refuses reads rather than serve a state that may differ from its
    /// peers'. A restart rebuilds it from the snapshot and the log.
    failed: Option<String>,
}

impl<S: KvStore> std::fmt::Debug for ShardStateMachine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardStateMachine")
            .field("failed", &self.failed)
            .finish()
    }
}

impl<S: KvStore + Send + Sync + 'static> ShardStateMachine<S> {
    /// `open` builds an empty engine on a fresh store from `factory`.
    pub fn open(
        config: TsdbConfig,
        mut factory: Box<dyn StoreFactory<S>>,
    ) -> Result<ShardStateMachine<S>, String> {
        let store = factory.create()?;
        let db = Tsdb::open(store, config.clone()).map_err(|e| e.to_string())?;
        Ok(ShardStateMachine {
            db: Some(db),
            config,
            factory,
            applied_since_flush: 0,
            failed: None,
        })
    }

    /// `db` is the engine (tests).
    pub fn db(&self) -> Option<&Tsdb<S>> {
        self.db.as_ref()
    }

    fn apply_command(&mut self, command: &[u8]) -> ShardWriteResult {
        let fail = |error: String| ShardWriteResult {
            error,
            ..Default::default()
        };
        if let Some(f) = &self.failed {
            return fail(format!("replica failed: {f}"));
        }
        let cmd = match ShardCommand::decode(command) {
            Ok(c) => c,
            Err(e) => return fail(format!("undecodable shard command: {e}")),
        };
        if cmd.version != COMMAND_VERSION {
            return fail(format!(
                "shard command version {} is not supported",
                cmd.version
            ));
        }
        let Some(db) = self.db.as_mut() else {
            return fail("no engine".into());
        };
        let limits = db.config().label_limits;
        let mut batch = Vec::with_capacity(cmd.series.len());
        let mut rejections = Vec::new();
        let mut index: u32 = 0;
        let mut skipped: Vec<(u32, usize, String)> = Vec::new();
        for s in cmd.series {
            let n = s.timestamps.len().min(s.values.len());
            let labels: Vec<Label> = s
                .labels
                .into_iter()
                .map(|l| Label::new(l.name, l.value))
                .collect();
            match raftwatch_model::Labels::new(labels, &limits) {
                Ok(labels) => {
                    let samples = s
                        .timestamps
                        .iter()
                        .zip(s.values.iter())
                        .map(|(&t, &v)| Sample::new(t, v))
                        .collect();
                    batch.push((labels, samples));
                }
                Err(e) => skipped.push((index, n, format!("invalid series labels: {e}"))),
            }
            index += n as u32;
        }
        // The engine numbers samples across the series it was given;
        // translate back to the command's numbering (skipped series removed).
        let report = match db.append_series(&batch) {
            Ok(r) => r,
            Err(e) => {
                let msg = e.to_string();
                tracing::error!(error = %msg, "shard engine failed while applying");
                self.failed = Some(msg.clone());
                return fail(msg);
            }
        };
        let mut offsets = Vec::new(); // engine index → command index
        {
            let mut cmd_index: u32 = 0;
            let mut sk = skipped.iter().peekable();
            for (_, samples) in &batch {
                while let Some((at, n, _)) = sk.peek() {
                    if *at == cmd_index {
                        cmd_index += *n as u32;
                        sk.next();
                    } else {
                        break;
                    }
                }
                for _ in samples {
                    offsets.push(cmd_index);
                    cmd_index += 1;
                }
            }
        }
        for r in report.rejections {
            rejections.push(RejectionPb {
                index: offsets.get(r.index).copied().unwrap_or(u32::MAX),
                reason: r.reason.to_string(),
            });
        }
        for (at, n, reason) in skipped {
            for k in 0..n as u32 {
                rejections.push(RejectionPb {
                    index: at + k,
                    reason: reason.clone(),
                });
            }
        }
        rejections.sort_by_key(|r| r.index);
        self.applied_since_flush += 1;
        if self.applied_since_flush >= FLUSH_EVERY_ENTRIES {
            self.applied_since_flush = 0;
            if let Err(e) = db.flush() {
                let msg = e.to_string();
                tracing::error!(error = %msg, "shard engine flush failed");
                self.failed = Some(msg);
            }
        }
        ShardWriteResult {
            accepted: (report.accepted + report.duplicates) as u64,
            rejections,
            error: String::new(),
        }
    }

    fn run_query(&self, request: &[u8]) -> ShardQueryResult {
        let refuse = |error: String| ShardQueryResult {
            series: vec![],
            error,
        };
        if let Some(f) = &self.failed {
            return refuse(format!("replica failed: {f}"));
        }
        let Some(db) = self.db.as_ref() else {
            return refuse("no engine".into());
        };
        let q = match ShardQuery::decode(request) {
            Ok(q) => q,
            Err(e) => return refuse(format!("undecodable shard query: {e}")),
        };
        let mut matchers = Vec::with_capacity(q.matchers.len());
        for m in q.matchers {
            let op = match m.op {
                0 => MatchOp::Equal,
                1 => MatchOp::NotEqual,
                2 => MatchOp::RegexMatch,
                3 => MatchOp::RegexNoMatch,
                other => return refuse(format!("unknown matcher op {other}")),
            };
            match Matcher::new(op, m.name, m.value) {
                Ok(m) => matchers.push(m),
                Err(e) => return refuse(e.to_string()),
            }
        }
        let (mint, maxt) = (TimestampMs(q.start_ms), TimestampMs(q.end_ms));
        let selected = db.select(&matchers, mint, maxt);
        if q.series_max > 0 && selected.len() as u64 > q.series_max {
            return refuse(format!(
                "query matches {} series, more than the limit of {}",
                selected.len(),
                q.series_max
            ));
        }
        let mut out = Vec::with_capacity(selected.len());
        let mut samples_count: u64 = 0;
        for e in selected {
            let iter = match db.samples(e.series_ref, mint, maxt) {
                Ok(i) => i,
                Err(err) => return refuse(err.to_string()),
            };
            let mut s = SeriesPb {
                labels: e
                    .labels
                    .iter()
                    .map(|l| crate::codec::LabelPb {
                        name: l.name.clone(),
                        value: l.value.clone(),
                    })
                    .collect(),
                ..Default::default()
            };
            for sample in iter {
                let sample = match sample {
                    Ok(x) => x,
                    Err(err) => return refuse(err.to_string()),
                };
                samples_count += 1;
                if q.samples_max > 0 && samples_count > q.samples_max {
                    return refuse(format!(
                        "query would return more than the limit of {} samples",
                        q.samples_max
                    ));
                }
                s.timestamps.push(sample.timestamp.0);
                s.values.push(sample.value);
            }
            out.push(s);
        }
        ShardQueryResult {
            series: out,
            error: String::new(),
        }
    }
}

impl<S: KvStore + Send + Sync + 'static> GroupStateMachine for ShardStateMachine<S> {
    fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
        self.apply_command(command).encode_to_vec()
    }

    fn query(&self, request: &[u8]) -> Vec<u8> {
        self.run_query(request).encode_to_vec()
    }

    /// Layout: `b"RWSS" | version u8 | (u32 LE length | engine piece)*`;
    /// the engine's pieces carry their own checksums and last-piece flag.
    fn snapshot(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.push(SNAPSHOT_VERSION);
        if let Some(db) = &self.db {
            for piece in db.snapshot(SNAPSHOT_PIECE_BYTES) {
                let piece = piece.map_err(|e| e.to_string())?;
                out.extend_from_slice(&(piece.len() as u32).to_le_bytes());
                out.extend_from_slice(&piece);
            }
        }
        Ok(out)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let body = snapshot
            .strip_prefix(SNAPSHOT_MAGIC.as_slice())
            .ok_or("not a shard snapshot (bad magic)")?;
        let (&version, mut rest) = body.split_first().ok_or("truncated shard snapshot")?;
        if version != SNAPSHOT_VERSION {
            return Err(format!("shard snapshot version {version} is not supported"));
        }
        let mut pieces = Vec::new();
        while !rest.is_empty() {
            let (len, tail) = rest
                .split_first_chunk::<4>()
                .ok_or("truncated shard snapshot piece length")?;
            let len = u32::from_le_bytes(*len) as usize;
            if tail.len() < len {
                return Err("truncated shard snapshot piece".into());
            }
            pieces.push(tail[..len].to_vec());
            rest = &tail[len..];
        }
        let store = self.factory.create()?;
        let db = Tsdb::restore(store, self.config.clone(), pieces).map_err(|e| e.to_string())?;
        if let Some(old) = self.db.replace(db) {
            self.factory.retire(old.into_store());
        }
        self.failed = None;
        self.applied_since_flush = 0;
        Ok(())
    }
}
