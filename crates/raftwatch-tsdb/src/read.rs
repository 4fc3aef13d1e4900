//! Reads: series selection, label queries and per-series sample iterators
//! that merge persisted chunks, the head chunk and the out-of-order buffer
//! lazily, one chunk at a time.

use std::collections::{BTreeSet, VecDeque};

use raftwatch_chunk::ChunkRecord;
use raftwatch_model::{Labels, Matcher, Sample, SeriesRef, TimestampMs};
use raftwatch_storage::KvStore;

use crate::cache::BlockCache;
use crate::error::TsdbError;
use crate::keys;
use crate::{MemSeries, Tsdb};

/// `SeriesEntry` is one selected series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesEntry {
    /// The engine-local reference, for [`Tsdb::samples`].
    pub series_ref: SeriesRef,
    /// The series' labels.
    pub labels: Labels,
}

fn overlaps(s: &MemSeries, mint: i64, maxt: i64) -> bool {
    match s.newest {
        Some((newest, _)) => s.min_time <= maxt && newest >= mint,
        None => false,
    }
}

impl<S: KvStore> Tsdb<S> {
    fn selected_refs(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesRef> {
        let mut refs = self.index.select(matchers);
        refs.retain(|&r| self.get(r).is_some_and(|s| overlaps(s, mint, maxt)));
        refs
    }

    /// `select` returns the series matching every matcher (Prometheus
    /// semantics, see `Index::select`) that have samples in `[mint, maxt]`
    /// (inclusive; judged by the series' first and newest sample times, so a
    /// series with a gap spanning the range is included with no samples).
    /// Sorted by labels.
    pub fn select(
        &self,
        matchers: &[Matcher],
        mint: TimestampMs,
        maxt: TimestampMs,
    ) -> Vec<SeriesEntry> {
        // Sorted by each series' contiguous key, which orders as its labels
        // do (see `cmp_label_keys`) and is one allocation to follow instead
        // of two per label; labels are copied out only in their final order.
        let mut found: Vec<(&MemSeries, SeriesRef)> = self
            .selected_refs(matchers, mint.0, maxt.0)
            .into_iter()
            .filter_map(|r| Some((self.get(r)?, r)))
            .collect();
        found.sort_unstable_by(|a, b| crate::cmp_label_keys(&a.0.key, &b.0.key));
        found
            .into_iter()
            .map(|(s, r)| SeriesEntry {
                series_ref: r,
                labels: s.labels(),
            })
            .collect()
    }

    /// `label_names` returns the sorted label names of the series that
    /// [`Tsdb::select`] would return for the same arguments.
    pub fn label_names(
        &self,
        matchers: &[Matcher],
        mint: TimestampMs,
        maxt: TimestampMs,
    ) -> Vec<String> {
        let mut names = BTreeSet::new();
        for r in self.selected_refs(matchers, mint.0, maxt.0) {
            if let Some(s) = self.get(r) {
                names.extend(s.labels.iter().map(|(n, _)| n.clone()));
            }
        }
        names.into_iter().map(|n| n.to_string()).collect()
    }

    /// `label_values` returns the sorted values of label `name` among the
    /// series that [`Tsdb::select`] would return for the same arguments.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: TimestampMs,
        maxt: TimestampMs,
    ) -> Vec<String> {
        let mut values = BTreeSet::new();
        for r in self.selected_refs(matchers, mint.0, maxt.0) {
            if let Some(s) = self.get(r)
                && let Some((_, v)) = s.labels.iter().find(|(n, _)| &**n == name)
            {
                values.insert(v.clone());
            }
        }
        values.into_iter().map(|v| v.to_string()).collect()
    }

    /// `samples` iterates series `r`'s samples in `[mint, maxt]` in
    /// ascending time order. Chunks are read from the store one at a time
    /// as the iteration reaches them. An unknown ref yields nothing.
    pub fn samples(
        &self,
        r: SeriesRef,
        mint: TimestampMs,
        maxt: TimestampMs,
    ) -> Result<SampleIter<'_>, TsdbError> {
        // Retention hides everything before its cutoff, whether or not the
        // flush that deletes it has happened yet.
        let (mint, maxt) = (mint.0.max(self.meta.retention_cutoff), maxt.0);
        let mut it = SampleIter::empty(r, mint, maxt, &self.store, &self.block_cache);
        let Some(s) = self.get(r) else { return Ok(it) };
        if mint > maxt || !overlaps(s, mint, maxt) {
            return Ok(it);
        }
        for chunk in s.sealed.iter().chain(std::iter::once(&s.head)) {
            if chunk.min_time().is_some_and(|t| t <= maxt)
                && chunk.max_time().is_some_and(|t| t >= mint)
            {
                let mut buf = Vec::new();
                chunk
                    .iter()
                    .append_to(&mut buf)
                    .map_err(|e| TsdbError::Corruption {
                        what: format!("in-memory chunk of series {r}"),
                        reason: e.to_string(),
                    })?;
                keep_range(&mut buf, mint, maxt);
                it.push_memory(buf);
            }
        }
        let ooo: Vec<Sample> = s
            .ooo
            .iter()
            .copied()
            .filter(|x| x.timestamp.0 >= mint && x.timestamp.0 <= maxt)
            .collect();
        it.push_memory(ooo);
        // Only when the store may hold a chunk reaching into the range: a
        // read of recent data is then served from memory alone.
        if s.persisted_max >= mint {
            let mut persisted = Vec::new();
            if self.inline_bytes > 0 {
                let (start, end) = self.chunk_scan_bounds(r, mint, maxt);
                for kv in self.store.scan(&start, end.as_deref()) {
                    let (k, v) = kv?;
                    let (_, min_t) =
                        keys::parse_chunk_key(&k).ok_or_else(|| TsdbError::Corruption {
                            what: format!("chunk key of series {r}"),
                            reason: format!("{k:?}"),
                        })?;
                    persisted.push((min_t, Persisted::Inline(v)));
                }
            }
            // A chunk spans less than `chunk_span_ms_max`: one starting
            // earlier cannot reach `mint`.
            let from = mint
                .saturating_sub(self.meta.chunk_span_ms_max)
                .saturating_add(1)
                .min(maxt);
            for b in &self.blocks {
                if b.max_time < mint || b.min_time > maxt {
                    continue;
                }
                for e in b.entries_of(r, from) {
                    if e.min_time > maxt {
                        break;
                    }
                    if e.max_time >= mint {
                        persisted.push((
                            e.min_time,
                            Persisted::Block {
                                id: b.id,
                                chunk_bytes: b.chunk_bytes,
                                offset: e.offset,
                                len: e.len,
                                bare: b.bare,
                                max_time: e.max_time,
                            },
                        ));
                    }
                }
            }
            persisted.sort_by_key(|p| p.0);
            it.persisted = persisted.into();
        }
        Ok(it)
    }
}

/// Where a persisted chunk is.
#[derive(Debug)]
enum Persisted {
    /// Stored one key each; the whole record, already read.
    Inline(Vec<u8>),
    /// Read from a block with the chunks before it: bytes `at..at + len` of
    /// [`SampleIter::run`], with the max time when bare.
    Loaded {
        at: usize,
        len: usize,
        bare_max: Option<i64>,
    },
    /// In a block's blob; `bare` records leave their time bounds to the
    /// directory, which says they are `min_time..=max_time`.
    Block {
        id: u64,
        /// Where the block's chunk bytes end.
        chunk_bytes: u64,
        offset: u32,
        len: u32,
        bare: bool,
        max_time: i64,
    },
}

/// A decoded chunk (or in-memory source) being merged: its samples in
/// `[mint, maxt]`, the read position, and how far the samples need no
/// merge.
#[derive(Debug)]
struct Active {
    samples: Vec<Sample>,
    pos: usize,
    /// `samples[pos..run_end]` are older than the first sample of every
    /// source still unopened when this was the only open one, so they are
    /// yielded as they are. Stays true as sources open later: each starts
    /// at or after that bound.
    run_end: usize,
}

/// `SampleIter` yields one series' samples in ascending time order, merging
/// (possibly overlapping) persisted chunks, the head chunk and the
/// out-of-order buffer. It decodes a chunk only when the merge reaches its
/// first sample, so memory stays at a few chunks whatever the range. After
/// an error it yields nothing more.
pub struct SampleIter<'a> {
    series: SeriesRef,
    mint: i64,
    maxt: i64,
    store: &'a dyn KvStore,
    cache: &'a BlockCache,
    /// Persisted chunks that may overlap the range, by first-sample time,
    /// not yet decoded.
    persisted: VecDeque<(i64, Persisted)>,
    /// In-memory sources not yet opened, sorted by descending first time.
    memory: Vec<Vec<Sample>>,
    active: Vec<Active>,
    spare: Vec<Vec<Sample>>,
    /// The bytes of the last run of adjacent chunks read from a block (see
    /// [`SampleIter::read_block_run`]).
    run: Vec<u8>,
    /// Where [`SampleIter::next_run`] puts a sample the merge picked.
    single: [Sample; 1],
    failed: bool,
}

impl std::fmt::Debug for SampleIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleIter")
            .field("series", &self.series)
            .field("active", &self.active.len())
            .finish()
    }
}

/// `READ_RUN_BYTES` bounds one read of adjacent chunks (see
/// `SampleIter::read_block_run`): a read never holds more than this many
/// bytes of chunks not yet decoded.
const READ_RUN_BYTES: u64 = 64 << 10;

/// `decode_persisted` decodes a stored chunk: a whole record, or with
/// `bare_max`, a bare one whose bounds are `min_t..=bare_max`.
fn decode_persisted(
    bytes: &[u8],
    min_t: i64,
    bare_max: Option<i64>,
) -> Result<ChunkRecord<'_>, raftwatch_chunk::ChunkError> {
    match bare_max {
        Some(max_t) => ChunkRecord::decode_bare(bytes, min_t, max_t),
        None => ChunkRecord::decode(bytes),
    }
}

/// `keep_range` drops the samples of `samples` (ascending) outside
/// `[mint, maxt]`.
fn keep_range(samples: &mut Vec<Sample>, mint: i64, maxt: i64) {
    if samples.last().is_some_and(|s| s.timestamp.0 > maxt) {
        let keep = samples.partition_point(|s| s.timestamp.0 <= maxt);
        samples.truncate(keep);
    }
    if samples.first().is_some_and(|s| s.timestamp.0 < mint) {
        let drop = samples.partition_point(|s| s.timestamp.0 < mint);
        samples.drain(..drop);
    }
}

impl<'a> SampleIter<'a> {
    /// `empty` reads series `series` in `[mint, maxt]` from no source yet.
    fn empty(
        series: SeriesRef,
        mint: i64,
        maxt: i64,
        store: &'a dyn KvStore,
        cache: &'a BlockCache,
    ) -> SampleIter<'a> {
        SampleIter {
            series,
            mint,
            maxt,
            store,
            cache,
            persisted: VecDeque::new(),
            memory: Vec::new(),
            active: Vec::new(),
            spare: Vec::new(),
            run: Vec::new(),
            single: [Sample::new(0, 0.0)],
            failed: false,
        }
    }

    fn push_memory(&mut self, samples: Vec<Sample>) {
        if samples.is_empty() {
            return;
        }
        self.memory.push(samples);
        self.memory
            .sort_by(|a, b| b[0].timestamp.cmp(&a[0].timestamp));
    }

    /// `read_block_run` reads the chunk at `offset..offset + len` in block
    /// `id` into [`SampleIter::run`], at its start. The chunks queued right
    /// after it that follow it in the same block (a series' chunks are
    /// adjacent in a block) are read in the same call, up to
    /// [`READ_RUN_BYTES`], and queued as loaded: one read per series and
    /// block, not per chunk.
    fn read_block_run(
        &mut self,
        min_t: i64,
        id: u64,
        chunk_bytes: u64,
        offset: u32,
        len: u32,
    ) -> Result<(), TsdbError> {
        let start = u64::from(offset);
        let mut end = start + u64::from(len);
        let mut run = 0;
        for (_, p) in &self.persisted {
            match *p {
                Persisted::Block {
                    id: next_id,
                    offset: next_offset,
                    len: next_len,
                    ..
                } if next_id == id
                    && u64::from(next_offset) == end
                    && end - start + u64::from(next_len) <= READ_RUN_BYTES =>
                {
                    end += u64::from(next_len);
                    run += 1;
                }
                _ => break,
            }
        }
        self.cache
            .read(
                self.store,
                id,
                chunk_bytes,
                start,
                (end - start) as usize,
                &mut self.run,
            )
            .map_err(|e| TsdbError::Corruption {
                what: format!(
                    "chunk of series {} starting at {min_t}ms in block {id}",
                    self.series
                ),
                reason: e.to_string(),
            })?;
        if self.run.len() as u64 != end - start {
            return Err(TsdbError::Corruption {
                what: format!("block {id}"),
                reason: format!("read {} bytes of {}", self.run.len(), end - start),
            });
        }
        for (_, p) in self.persisted.iter_mut().take(run) {
            if let Persisted::Block {
                offset,
                len,
                bare,
                max_time,
                ..
            } = *p
            {
                *p = Persisted::Loaded {
                    at: (u64::from(offset) - start) as usize,
                    len: len as usize,
                    bare_max: bare.then_some(max_time),
                };
            }
        }
        Ok(())
    }

    /// `open_persisted` decodes the next persisted chunk's samples in the
    /// range and makes them an open source (none if it has none there).
    fn open_persisted(&mut self) -> Result<(), TsdbError> {
        let Some((min_t, source)) = self.persisted.pop_front() else {
            return Ok(());
        };
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        let (series, mint, maxt) = (self.series, self.mint, self.maxt);
        let decode = |bytes: &[u8], bare_max: Option<i64>, out: &mut Vec<Sample>| {
            let rec = decode_persisted(bytes, min_t, bare_max)
                .map_err(|e| TsdbError::chunk_corruption(series, min_t, e))?;
            if rec.min_time != min_t {
                return Err(TsdbError::Corruption {
                    what: format!("chunk of series {series} starting at {min_t}ms"),
                    reason: format!("record says it starts at {}ms", rec.min_time),
                });
            }
            if rec.max_time >= mint && min_t <= maxt {
                rec.iter()
                    .append_to(out)
                    .map_err(|e| TsdbError::chunk_corruption(series, min_t, e))?;
                keep_range(out, mint, maxt);
            }
            Ok(())
        };
        match source {
            Persisted::Inline(v) => decode(&v, None, &mut buf)?,
            Persisted::Loaded { at, len, bare_max } => {
                decode(&self.run[at..at + len], bare_max, &mut buf)?;
            }
            Persisted::Block {
                id,
                chunk_bytes,
                offset,
                len,
                bare,
                max_time,
            } => {
                self.read_block_run(min_t, id, chunk_bytes, offset, len)?;
                decode(
                    &self.run[..len as usize],
                    bare.then_some(max_time),
                    &mut buf,
                )?;
            }
        }
        if buf.is_empty() {
            self.spare.push(buf);
        } else {
            self.active.push(Active {
                samples: buf,
                pos: 0,
                run_end: 0,
            });
        }
        Ok(())
    }

    /// `close_exhausted` drops the open sources with nothing left.
    fn close_exhausted(&mut self) {
        let mut k = 0;
        while k < self.active.len() {
            if self.active[k].pos == self.active[k].samples.len() {
                let done = self.active.swap_remove(k);
                self.spare.push(done.samples);
            } else {
                k += 1;
            }
        }
    }

    fn step(&mut self) -> Result<Option<Sample>, TsdbError> {
        loop {
            self.close_exhausted();
            let next_persisted = self.persisted.front().map(|(t, _)| *t);
            let next_memory = self.memory.last().map(|m| m[0].timestamp.0);
            // One open source: its samples before the first of every
            // unopened source need no merge. Mark them for `next`.
            if let [a] = self.active.as_mut_slice() {
                let rest = &a.samples[a.pos..];
                let free = match next_persisted.into_iter().chain(next_memory).min() {
                    Some(limit) => rest.partition_point(|s| s.timestamp.0 < limit),
                    None => rest.len(),
                };
                if free > 0 {
                    a.run_end = a.pos + free;
                    let out = a.samples[a.pos];
                    a.pos += 1;
                    return Ok(Some(out));
                }
            }
            // The smallest pending sample among opened sources.
            let best = self
                .active
                .iter()
                .enumerate()
                .map(|(i, a)| (a.samples[a.pos].timestamp, i))
                .min();
            let must_open = |t: Option<i64>| match (t, best) {
                (Some(t), Some((b, _))) => t <= b.0,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if must_open(next_persisted) && (next_memory.is_none() || next_persisted <= next_memory)
            {
                self.open_persisted()?;
                continue;
            }
            if must_open(next_memory) {
                if let Some(m) = self.memory.pop() {
                    self.active.push(Active {
                        samples: m,
                        pos: 0,
                        run_end: 0,
                    });
                }
                continue;
            }
            let Some((t, i)) = best else { return Ok(None) };
            let a = &mut self.active[i];
            let out = a.samples[a.pos];
            a.pos += 1;
            // Drop the same timestamp from other sources (only possible if
            // the store holds overlapping copies; the first one wins).
            for a in &mut self.active {
                if a.pos < a.samples.len() && a.samples[a.pos].timestamp == t {
                    a.pos += 1;
                }
            }
            return Ok(Some(out));
        }
    }
}

impl SampleIter<'_> {
    /// `next_run` is the iterator's next samples as a slice, as many as
    /// need no merge at once (typically a chunk's), rather than one at a
    /// time: what [`Iterator::next`] would yield, in the same order, for
    /// a caller that copies samples out in bulk. `Ok(None)` at the end;
    /// after an error, `Ok(None)` from then on.
    pub fn next_run(&mut self) -> Result<Option<&[Sample]>, TsdbError> {
        if let Some(a) = self.active.first()
            && a.pos < a.run_end
        {
            let (from, to) = (a.pos, a.run_end);
            let a = &mut self.active[0];
            a.pos = to;
            return Ok(Some(&a.samples[from..to]));
        }
        if self.failed {
            return Ok(None);
        }
        match self.step() {
            Ok(Some(s)) => {
                self.single = [s];
                Ok(Some(&self.single))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = true;
                self.active.clear();
                Err(e)
            }
        }
    }
}

impl Iterator for SampleIter<'_> {
    type Item = Result<Sample, TsdbError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        // The common case: the next sample needs no merge.
        if let Some(a) = self.active.first_mut()
            && a.pos < a.run_end
        {
            let out = a.samples[a.pos];
            a.pos += 1;
            return Some(Ok(out));
        }
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(s) => s.map(Ok),
            Err(e) => {
                self.failed = true;
                self.active.clear();
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftwatch_storage::MemStore;

    fn source(ts: &[i64], v: f64) -> Vec<Sample> {
        ts.iter().map(|&t| Sample::new(t, v)).collect()
    }

    /// Overlapping sources sharing timestamps (what a store holding two
    /// copies of a chunk would give): each timestamp comes out once, from
    /// the source opened first, in ascending order, including where an
    /// open source runs ahead of one that opens later.
    #[test]
    fn overlapping_sources_yield_each_timestamp_once() {
        let store = MemStore::new();
        let cache = BlockCache::new(0);
        let mut it = SampleIter::empty(SeriesRef(1), i64::MIN, i64::MAX, &store, &cache);
        it.push_memory(source(&[10, 20, 30], 1.0));
        it.push_memory(source(&[30, 40], 2.0));
        it.push_memory(source(&[20, 25], 3.0));
        let got: Vec<(i64, f64)> = it
            .map(|s| s.map(|s| (s.timestamp.0, s.value)))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got, [(10, 1.0), (20, 1.0), (25, 3.0), (30, 1.0), (40, 2.0)]);
    }
}
