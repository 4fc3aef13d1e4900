//! [`ShardStateMachine`]: a shard's engine as a Raft state machine.

use prost::Message;
use raftwatch_model::{Label, Labels, MatchOp, Matcher, Sample, TimestampMs};
use raftwatch_raft::GroupStateMachine;
use raftwatch_storage::KvStore;
use raftwatch_tsdb::{AppendReport, Tsdb, TsdbConfig};

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;

use crate::codec::{
    COMMAND_VERSION, RejectionPb, SeriesPb, ShardCommand, ShardQuery, ShardQueryResult,
    ShardWriteResult,
};
use crate::wire::{CommandView, SeriesBatch};

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
/// Version 2 adds the request-id table; version 1 is still read.
const SNAPSHOT_VERSION: u8 = 2;
/// `DEDUP_WINDOW_ENTRIES`: a request id is remembered until this many log
/// entries after the one that applied it (by log index, never by time, so
/// every replica forgets it at the same point). A client retrying within
/// the window gets the stored result and nothing is applied twice.
pub const DEDUP_WINDOW_ENTRIES: u64 = 200_000;
/// `DEDUP_IDS_MAX` bounds the table's size whatever the window; the oldest
/// ids go first.
pub const DEDUP_IDS_MAX: usize = 500_000;
/// `REQUEST_ID_BYTES_MAX` bounds one request id.
pub const REQUEST_ID_BYTES_MAX: usize = 128;

/// The request-id table: id → (log index that applied it, its result).
#[derive(Debug, Default, Clone, PartialEq)]
struct Dedup {
    by_id: BTreeMap<String, (u64, ShardWriteResult)>,
    order: VecDeque<(u64, String)>,
}

impl Dedup {
    fn get(&self, id: &str) -> Option<&ShardWriteResult> {
        self.by_id.get(id).map(|(_, r)| r)
    }

    fn insert(&mut self, index: u64, id: String, result: ShardWriteResult) {
        self.order.push_back((index, id.clone()));
        self.by_id.insert(id, (index, result));
        while self.order.len() > DEDUP_IDS_MAX {
            self.pop_oldest();
        }
    }

    fn expire(&mut self, index: u64) {
        while let Some((i, _)) = self.order.front() {
            if i.saturating_add(DEDUP_WINDOW_ENTRIES) >= index {
                break;
            }
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((i, id)) = self.order.pop_front() {
            // Only if not re-inserted later (ids are unique while remembered).
            if self.by_id.get(&id).is_some_and(|(at, _)| *at == i) {
                self.by_id.remove(&id);
            }
        }
    }

    /// `u32 count | (u64 index | u32 id_len | id | u32 result_len | result)*`
    /// in application order.
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.order.len() as u32).to_le_bytes());
        for (i, id) in &self.order {
            let result = self
                .by_id
                .get(id)
                .map(|(_, r)| r.encode_to_vec())
                .unwrap_or_default();
            out.extend_from_slice(&i.to_le_bytes());
            out.extend_from_slice(&(id.len() as u32).to_le_bytes());
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(&(result.len() as u32).to_le_bytes());
            out.extend_from_slice(&result);
        }
    }

    fn decode(mut b: &[u8]) -> Result<(Dedup, &[u8]), String> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
            if b.len() < n {
                return Err("truncated request-id table".into());
            }
            let (head, tail) = b.split_at(n);
            *b = tail;
            Ok(head)
        }
        fn u32_at(b: &mut &[u8]) -> Result<u32, String> {
            let h = take(b, 4)?;
            Ok(u32::from_le_bytes([h[0], h[1], h[2], h[3]]))
        }
        let count = u32_at(&mut b)? as usize;
        let mut d = Dedup::default();
        for _ in 0..count {
            let h = take(&mut b, 8)?;
            let mut idx = [0u8; 8];
            idx.copy_from_slice(h);
            let index = u64::from_le_bytes(idx);
            let n = u32_at(&mut b)? as usize;
            let id = String::from_utf8(take(&mut b, n)?.to_vec())
                .map_err(|_| "request id is not UTF-8".to_string())?;
            let n = u32_at(&mut b)? as usize;
            let result = ShardWriteResult::decode(take(&mut b, n)?)
                .map_err(|e| format!("request-id table: {e}"))?;
            d.insert(index, id, result);
        }
        Ok((d, b))
    }
}

/// `ShardStateMachine` applies [`ShardCommand`]s to a [`Tsdb`].
pub struct ShardStateMachine<S: KvStore> {
    db: Option<Tsdb<S>>,
    config: TsdbConfig,
    factory: Box<dyn StoreFactory<S>>,
    applied_since_flush: u64,
    dedup: Dedup,
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
    ///
    /// The engine is not [`TsdbConfig::reopenable`]: a replica is rebuilt
    /// from its Raft snapshot and log at every start, never from a store a
    /// previous run left, so its flushes only move sealed chunks out of
    /// memory. Writing series and head records (and syncing them) on the
    /// apply path bought nothing and stalled the shard at every flush.
    pub fn open(
        mut config: TsdbConfig,
        mut factory: Box<dyn StoreFactory<S>>,
    ) -> Result<ShardStateMachine<S>, String> {
        config.reopenable = false;
        let store = factory.create()?;
        let db = Tsdb::open(store, config.clone()).map_err(|e| e.to_string())?;
        Ok(ShardStateMachine {
            db: Some(db),
            config,
            factory,
            applied_since_flush: 0,
            dedup: Dedup::default(),
            failed: None,
        })
    }

    /// `db` is the engine (tests).
    pub fn db(&self) -> Option<&Tsdb<S>> {
        self.db.as_ref()
    }

    fn apply_command(&mut self, index: u64, command: &[u8]) -> ShardWriteResult {
        let fail = |error: String| ShardWriteResult {
            error,
            ..Default::default()
        };
        if let Some(f) = &self.failed {
            return fail(format!("replica failed: {f}"));
        }
        // The borrowed view reads what our own leaders write; an encoding
        // it refuses but prost accepts (another writer's) is re-encoded by
        // prost, which the view always reads.
        let reencoded;
        let cmd = match CommandView::parse(command) {
            Ok(c) => c,
            Err(_) => match ShardCommand::decode(command) {
                Ok(c) => {
                    reencoded = c.encode_to_vec();
                    match CommandView::parse(&reencoded) {
                        Ok(c) => c,
                        Err(e) => return fail(format!("undecodable shard command: {}", e.0)),
                    }
                }
                Err(e) => return fail(format!("undecodable shard command: {e}")),
            },
        };
        if cmd.version != COMMAND_VERSION {
            return fail(format!(
                "shard command version {} is not supported",
                cmd.version
            ));
        }
        self.dedup.expire(index);
        let result = if cmd.requests.is_empty() {
            self.apply_request(index, &cmd.batch, cmd.series.clone(), cmd.request_id)
        } else {
            let results = cmd
                .requests
                .iter()
                .map(|r| self.apply_request(index, &cmd.batch, r.series.clone(), r.request_id))
                .collect();
            ShardWriteResult {
                results,
                ..Default::default()
            }
        };
        self.applied_since_flush += 1;
        if self.applied_since_flush >= FLUSH_EVERY_ENTRIES {
            self.applied_since_flush = 0;
            if let Some(db) = self.db.as_mut()
                && let Err(e) = db.flush()
            {
                let msg = e.to_string();
                tracing::error!(error = %msg, "shard engine flush failed");
                self.failed = Some(msg);
            }
        }
        result
    }

    /// Applies one request, or answers a remembered request id's result.
    fn apply_request(
        &mut self,
        index: u64,
        batch: &SeriesBatch<'_>,
        series: Range<usize>,
        request_id: &str,
    ) -> ShardWriteResult {
        if !request_id.is_empty()
            && let Some(r) = self.dedup.get(request_id)
        {
            let mut r = r.clone();
            r.deduplicated = true;
            return r;
        }
        let result = self.append(batch, series);
        if !request_id.is_empty()
            && request_id.len() <= REQUEST_ID_BYTES_MAX
            && result.error.is_empty()
        {
            self.dedup
                .insert(index, request_id.to_string(), result.clone());
        }
        result
    }

    /// Appends the series of `batch` in `range`. Samples are numbered
    /// across them in order; a series whose labels are invalid has all its
    /// samples rejected, the rest is applied.
    fn append(&mut self, batch: &SeriesBatch<'_>, range: Range<usize>) -> ShardWriteResult {
        let fail = |error: String| ShardWriteResult {
            error,
            ..Default::default()
        };
        if let Some(f) = &self.failed {
            return fail(format!("replica failed: {f}"));
        }
        let Some(db) = self.db.as_mut() else {
            return fail("no engine".into());
        };
        let limits = db.config().label_limits;
        let mut report = AppendReport::default();
        let mut rejections = Vec::new();
        let mut index: usize = 0;
        for s in range.filter_map(|i| batch.get(i)) {
            let n = s.timestamps.len().min(s.values.len());
            let samples = s
                .timestamps
                .iter()
                .zip(s.values.iter())
                .map(|(&t, &v)| Sample::new(t, v));
            // Fast path: labels already canonical (our routers send them
            // so) and the series known: append by reference. Otherwise
            // the same steps with owned labels; both give the same result.
            let known = if Labels::is_canonical(s.labels, &limits) {
                db.lookup_pairs(s.labels)
            } else {
                None
            };
            let appended = match known {
                Some(r) => db.append_run(index, r, samples, &mut report),
                None => {
                    let labels = s.labels.iter().map(|&(n, v)| Label::new(n, v)).collect();
                    match Labels::new(labels, &limits) {
                        Ok(labels) => db.append_labeled(index, &labels, samples, &mut report),
                        Err(e) => {
                            let reason = format!("invalid series labels: {e}");
                            for k in 0..n {
                                rejections.push(RejectionPb {
                                    index: u32::try_from(index + k).unwrap_or(u32::MAX),
                                    reason: reason.clone(),
                                });
                            }
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = appended {
                let msg = e.to_string();
                tracing::error!(error = %msg, "shard engine failed while applying");
                self.failed = Some(msg.clone());
                return fail(msg);
            }
            index += n;
        }
        for r in report.rejections {
            rejections.push(RejectionPb {
                index: u32::try_from(r.index).unwrap_or(u32::MAX),
                reason: r.reason.to_string(),
            });
        }
        rejections.sort_by_key(|r| r.index);
        ShardWriteResult {
            accepted: (report.accepted + report.duplicates) as u64,
            rejections,
            ..Default::default()
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
            let mut iter = match db.samples(e.series_ref, mint, maxt) {
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
            // Copied out a run at a time (see `SampleIter::next_run`).
            loop {
                let run = match iter.next_run() {
                    Ok(Some(run)) => run,
                    Ok(None) => break,
                    Err(err) => return refuse(err.to_string()),
                };
                samples_count += run.len() as u64;
                if q.samples_max > 0 && samples_count > q.samples_max {
                    return refuse(format!(
                        "{} {} samples",
                        crate::codec::SAMPLES_LIMIT_REFUSAL,
                        q.samples_max
                    ));
                }
                s.timestamps.extend(run.iter().map(|x| x.timestamp.0));
                s.values.extend(run.iter().map(|x| x.value));
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
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        self.apply_command(index, command).encode_to_vec()
    }

    fn query(&self, request: &[u8]) -> Vec<u8> {
        // Instant, range, series and label queries (`query.rs`); kind 0,
        // the raw select, below.
        if let Some(answer) =
            crate::query::answer(self.db.as_ref(), self.failed.as_deref(), request)
        {
            return answer;
        }
        self.run_query(request).encode_to_vec()
    }

    /// Layout: `b"RWSS" | version u8 | request-id table (version ≥ 2) |
    /// (u32 LE length | engine piece)*`; the engine's pieces carry their own
    /// checksums and last-piece flag.
    fn snapshot(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.push(SNAPSHOT_VERSION);
        self.dedup.encode(&mut out);
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
        let (&version, rest) = body.split_first().ok_or("truncated shard snapshot")?;
        let (dedup, mut rest) = match version {
            1 => (Dedup::default(), rest),
            2 => Dedup::decode(rest)?,
            v => return Err(format!("shard snapshot version {v} is not supported")),
        };
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
        self.dedup = dedup;
        self.failed = None;
        self.applied_since_flush = 0;
        Ok(())
    }
}
