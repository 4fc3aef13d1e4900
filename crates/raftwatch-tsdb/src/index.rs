//! The inverted index: label name → label value → postings (sorted series
//! refs), plus the string interner that label sets share.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use raftwatch_model::{Matcher, SeriesRef};

/// `Postings` is a strictly ascending list of series refs.
pub type Postings = Vec<SeriesRef>;

/// `InternedLabels` is a series' label pairs as shared strings, in
/// canonical order.
pub type InternedLabels = Box<[(Arc<str>, Arc<str>)]>;

/// `Interner` stores each distinct label string once; series and index
/// share the `Arc`s. Order never drives behaviour here (lookups only).
#[derive(Debug, Default)]
pub struct Interner {
    strings: HashSet<Arc<str>>,
}

impl Interner {
    /// `intern` returns the shared copy of `s`, creating it if new.
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(existing) = self.strings.get(s) {
            return existing.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.strings.insert(a.clone());
        a
    }

    /// `collect_garbage` drops strings no series or index entry uses.
    pub fn collect_garbage(&mut self) {
        self.strings.retain(|s| Arc::strong_count(s) > 1);
    }

    /// `heap_bytes` estimates the interner's own memory and the strings'.
    pub fn heap_bytes(&self) -> usize {
        // Table slots (pointer + length + control byte) and each string's
        // allocation (two counters plus the bytes).
        self.strings.capacity() * (std::mem::size_of::<Arc<str>>() + 1)
            + self.strings.iter().map(|s| 16 + s.len()).sum::<usize>()
    }
}

/// `Index` maps label pairs to the series that carry them.
#[derive(Debug, Default)]
pub struct Index {
    map: BTreeMap<Arc<str>, BTreeMap<Arc<str>, Postings>>,
    all: Postings,
}

impl Index {
    /// `add` indexes a new series. Series must be added in ascending ref
    /// order (refs are handed out monotonically), which keeps postings
    /// sorted by pushing.
    pub fn add(&mut self, r: SeriesRef, labels: &[(Arc<str>, Arc<str>)]) {
        push_sorted(&mut self.all, r);
        for (name, value) in labels {
            let values = self.map.entry(name.clone()).or_default();
            push_sorted(values.entry(value.clone()).or_default(), r);
        }
    }

    /// `remove` takes a set of series out of the index.
    pub fn remove(&mut self, removed: &[(SeriesRef, InternedLabels)]) {
        let mut gone: Vec<SeriesRef> = removed.iter().map(|(r, _)| *r).collect();
        gone.sort_unstable();
        self.all.retain(|r| gone.binary_search(r).is_err());
        for (r, labels) in removed {
            for (name, value) in labels.iter() {
                let Some(values) = self.map.get_mut(name) else {
                    continue;
                };
                if let Some(p) = values.get_mut(value) {
                    if let Ok(i) = p.binary_search(r) {
                        p.remove(i);
                    }
                    if p.is_empty() {
                        values.remove(value);
                    }
                }
                if values.is_empty() {
                    self.map.remove(name);
                }
            }
        }
    }

    /// `values` yields `(value, postings)` for one label name, ascending.
    pub fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = (&'a Arc<str>, &'a Postings)> {
        self.map.get(name).into_iter().flat_map(|v| v.iter())
    }

    /// `select` returns the series matching every matcher, with Prometheus
    /// semantics: an absent label has value "", so a matcher that accepts
    /// "" also selects series without the label.
    pub fn select(&self, matchers: &[Matcher]) -> Postings {
        let (empty_ok, needs_label): (Vec<&Matcher>, Vec<&Matcher>) =
            matchers.iter().partition(|m| m.matches_empty());
        let mut result: Option<Postings> = None;
        for m in needs_label {
            let matched = union_all(
                self.values(m.name())
                    .filter(|(v, _)| m.matches(v))
                    .map(|(_, p)| p),
            );
            result = Some(match result {
                None => matched,
                Some(acc) => intersect(&acc, &matched),
            });
            if result.as_ref().is_some_and(|r| r.is_empty()) {
                return Vec::new();
            }
        }
        let mut result = result.unwrap_or_else(|| self.all.clone());
        for m in empty_ok {
            // Series that have the label with a value the matcher refuses.
            let excluded = union_all(
                self.values(m.name())
                    .filter(|(v, _)| !m.matches(v))
                    .map(|(_, p)| p),
            );
            if !excluded.is_empty() {
                result = difference(&result, &excluded);
            }
        }
        result
    }

    /// `heap_bytes` estimates the memory of the maps and postings (strings
    /// are counted by the [`Interner`]).
    pub fn heap_bytes(&self) -> usize {
        // A BTreeMap entry costs roughly its key and value plus ~1/6 of an
        // 11-slot node's overhead; 16 bytes per entry is a fair estimate.
        let entry = std::mem::size_of::<Arc<str>>() + std::mem::size_of::<Postings>() + 16;
        let mut total = self.all.capacity() * std::mem::size_of::<SeriesRef>();
        for values in self.map.values() {
            total += entry;
            for p in values.values() {
                total += entry + p.capacity() * std::mem::size_of::<SeriesRef>();
            }
        }
        total
    }
}

fn push_sorted(p: &mut Postings, r: SeriesRef) {
    match p.last() {
        Some(last) if *last >= r => {
            if let Err(i) = p.binary_search(&r) {
                p.insert(i, r);
            }
        }
        _ => p.push(r),
    }
}

/// `union_all` merges sorted lists into one sorted list without duplicates.
pub fn union_all<'a>(lists: impl Iterator<Item = &'a Postings>) -> Postings {
    let lists: Vec<&Postings> = lists.collect();
    match lists.len() {
        0 => Vec::new(),
        1 => lists[0].clone(),
        _ => {
            let mut out: Postings = lists.iter().flat_map(|l| l.iter().copied()).collect();
            out.sort_unstable();
            out.dedup();
            out
        }
    }
}

/// `intersect` returns the refs present in both sorted lists.
pub fn intersect(a: &[SeriesRef], b: &[SeriesRef]) -> Postings {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// `difference` returns the refs of sorted `a` that are not in sorted `b`.
pub fn difference(a: &[SeriesRef], b: &[SeriesRef]) -> Postings {
    let mut j = 0;
    let mut out = Vec::with_capacity(a.len());
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j >= b.len() || b[j] != x {
            out.push(x);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn set(v: &[u64]) -> BTreeSet<u64> {
        v.iter().copied().collect()
    }

    fn refs(v: &BTreeSet<u64>) -> Postings {
        v.iter().map(|&x| SeriesRef(x)).collect()
    }

    proptest! {
        #[test]
        fn set_operations_match_btreeset(a in proptest::collection::vec(0u64..50, 0..40),
                                          b in proptest::collection::vec(0u64..50, 0..40)) {
            let (sa, sb) = (set(&a), set(&b));
            let (pa, pb) = (refs(&sa), refs(&sb));
            prop_assert_eq!(intersect(&pa, &pb), refs(&sa.intersection(&sb).copied().collect()));
            prop_assert_eq!(difference(&pa, &pb), refs(&sa.difference(&sb).copied().collect()));
            prop_assert_eq!(union_all([&pa, &pb].into_iter()), refs(&sa.union(&sb).copied().collect()));
        }
    }
}
