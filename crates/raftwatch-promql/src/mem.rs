//! An in-memory [`Queryable`]: the conformance runner's storage, and the
//! shape a caller's prefetched data takes.

use std::collections::BTreeMap;

use crate::labels::Labels;
use crate::plan::SelectRequest;
use crate::value::RawSeries;
use crate::{Error, Queryable};

/// `MemStorage` holds series in memory, keyed by label set.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    series: BTreeMap<Labels, Vec<(i64, f64)>>,
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
