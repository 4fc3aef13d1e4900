//! An in-memory [`Queryable`]: the conformance runner's storage, and the
//! shape a caller's prefetched data takes.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::labels::Labels;
use crate::plan::{PushdownRequest, SelectRequest};
use crate::value::RawSeries;
use crate::{Engine, EngineConfig, Error, PushdownAnswer, Queryable};

/// `MemStorage` holds series in memory, keyed by label set.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    pub(crate) series: BTreeMap<Labels, Vec<(i64, f64)>>,
}

impl MemStorage {
    /// `new` is an empty store.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// `add` appends a sample; a sample at a timestamp already present
    /// replaces it (the conformance scripts never rely on either).
    pub fn add(&mut self, labels: Labels, t: i64, v: f64) {
        let s = self.series.entry(labels).or_default();
        match s.binary_search_by_key(&t, |p| p.0) {
            Ok(i) => s[i].1 = v,
            Err(i) => s.insert(i, (t, v)),
        }
    }

    /// `clear` drops everything.
    pub fn clear(&mut self) {
        self.series.clear();
    }

    /// `series_count` is the number of series held.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }
}

impl Queryable for MemStorage {
    fn select(&self, req: &SelectRequest) -> Result<Vec<RawSeries>, Error> {
        let mut out = Vec::new();
        for (labels, samples) in &self.series {
            if !req.matchers.iter().all(|m| m.matches(labels.get(m.name()))) {
                continue;
            }
            let lo = samples.partition_point(|p| p.0 < req.start_ms);
            let hi = samples.partition_point(|p| p.0 <= req.end_ms);
            if lo < hi {
                out.push(RawSeries {
                    labels: labels.clone(),
                    samples: samples[lo..hi].to_vec(),
                });
            }
        }
        Ok(out)
    }
}

/// `ShardedMemStorage` splits a [`MemStorage`] into shards by a hash of
/// each series' labels and answers push-downs shard by shard with the
/// engine, as the cluster does: the conformance runner's proof that
/// partial aggregation gives Prometheus's answers.
#[derive(Debug)]
pub struct ShardedMemStorage {
    shards: Vec<MemStorage>,
    pushdowns: AtomicUsize,
}

impl ShardedMemStorage {
    /// `new` spreads `all` over `n` shards (`n >= 1`).
    pub fn new(all: &MemStorage, n: usize) -> ShardedMemStorage {
        let n = n.max(1);
        let mut shards = vec![MemStorage::new(); n];
        for (labels, samples) in &all.series {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            labels.hash(&mut h);
            let shard = &mut shards[(h.finish() % n as u64) as usize];
            shard.series.insert(labels.clone(), samples.clone());
        }
        ShardedMemStorage {
            shards,
            pushdowns: AtomicUsize::new(0),
        }
    }

    /// `pushdowns_answered` counts the push-downs answered so far.
    pub fn pushdowns_answered(&self) -> usize {
        self.pushdowns.load(Ordering::Relaxed)
    }
}

impl Queryable for ShardedMemStorage {
    fn select(&self, req: &SelectRequest) -> Result<Vec<RawSeries>, Error> {
        let mut out = Vec::new();
        for s in &self.shards {
            out.extend(s.select(req)?);
        }
        Ok(out)
    }

    fn pushdown(&self, req: &PushdownRequest) -> Result<Option<PushdownAnswer>, Error> {
        self.pushdowns.fetch_add(1, Ordering::Relaxed);
        let answer = evaluate_pushdown(self.shards.iter().map(|s| s as &dyn Queryable), req)?;
        Ok(Some(answer))
    }
}

/// `evaluate_pushdown` evaluates `req` on each shard's data and
/// concatenates the answers (what every shard replica does for its part).
pub fn evaluate_pushdown<'a>(
    shards: impl Iterator<Item = &'a dyn Queryable>,
    req: &PushdownRequest,
) -> Result<PushdownAnswer, Error> {
    let engine = Engine::new(EngineConfig {
        lookback_delta_ms: req.lookback_delta_ms,
        experimental_functions: true,
        ..EngineConfig::default()
    });
    let mut answer = PushdownAnswer::default();
    let cancel = AtomicBool::new(false);
    for shard in shards {
        let q = if req.step_ms == 0 {
            engine.instant_query(&req.expr, req.start_ms)?
        } else {
            engine.range_query(&req.expr, req.start_ms, req.end_ms, req.step_ms)?
        };
        let r = q.exec_partial(shard, &cancel)?;
        answer.series.extend(r.series);
        answer.drop_name.extend(r.drop_name);
        answer.annotations.warnings.extend(r.annotations.warnings);
        answer.annotations.infos.extend(r.annotations.infos);
    }
    Ok(answer)
}
