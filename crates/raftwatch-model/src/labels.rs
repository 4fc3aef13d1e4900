//! Label sets: sorted, validated, hashed and encoded.
//!
//! Validation follows Prometheus 3: label names and values are arbitrary
//! UTF-8 (guaranteed by `str`), names must not be empty and must not repeat,
//! and a label with an empty value is the same as an absent label, so it is
//! dropped. On top of that raftwatch enforces explicit [`LabelLimits`].

use std::fmt;

use thiserror::Error;
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::encoding::{Reader, put_uvarint};
use crate::ids::SeriesHash;
use crate::limits::LabelLimits;

/// `METRIC_NAME_LABEL` is the reserved label that carries the metric name.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// `SEPARATOR` ends every name and value in the canonical encoding. The
/// byte 0xFF never occurs in UTF-8, so the encoding is unambiguous (the
/// same separator Prometheus hashes with).
const SEPARATOR: u8 = 0xff;

/// `LabelError` says why a label set was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LabelError {
    /// A label had an empty name.
    #[error("label name is empty")]
    EmptyName,
    /// The same name appeared twice.
    #[error("duplicate label name {name:?}")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// No labels remained after dropping empty values.
    #[error("series has no labels")]
    EmptyLabelSet,
    /// More labels than `labels_per_series_max`.
    #[error("series has {count} labels, limit is {limit}")]
    TooManyLabels {
        /// Labels in the set (after dropping empty values).
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A name longer than `label_name_bytes_max`.
    #[error("label name of {bytes} bytes exceeds limit of {limit} bytes (name starts {prefix:?})")]
    NameTooLong {
        /// Length of the name in bytes.
        bytes: usize,
        /// The configured limit.
        limit: usize,
        /// The first characters of the name, for the error message.
        prefix: String,
    },
    /// A value longer than `label_value_bytes_max`.
    #[error("value of label {name:?} has {bytes} bytes, limit is {limit} bytes")]
    ValueTooLong {
        /// The label whose value is too long.
        name: String,
        /// Length of the value in bytes.
        bytes: usize,
        /// The configured limit.
        limit: usize,
    },
    /// An encoded label set could not be decoded.
    #[error("malformed encoded label set: {reason}")]
    Malformed {
        /// What was wrong.
        reason: &'static str,
    },
}

/// `Label` is one name/value pair.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// The label name; never empty in a valid [`Labels`].
    pub name: String,
    /// The label value; never empty in a valid [`Labels`].
    pub value: String,
}

impl Label {
    /// `new` builds a label from anything string-like.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// `hash_pairs` is [`Labels::hash`] over `(name, value)` pairs given in
/// canonical order, without building a [`Labels`].
///
/// The digest is XXH3-64 of `name 0xFF value 0xFF …`. Label sets that fit
/// [`HASH_BUFFER_BYTES`] are laid out on the stack and hashed in one call;
/// larger ones stream. Both give the same digest (XXH3 is defined over the
/// whole input), and the one-shot call is several times cheaper than
/// feeding four small slices per label: this runs for every series of
/// every write, on the node that takes it and on each replica's apply.
pub fn hash_pairs(pairs: &mut dyn Iterator<Item = (&str, &str)>) -> SeriesHash {
    let mut buf = [0u8; HASH_BUFFER_BYTES];
    let mut len = 0;
    while let Some((name, value)) = pairs.next() {
        let end = len + name.len() + value.len() + 2;
        if end > buf.len() {
            let mut h = Xxh3::new();
            h.update(&buf[..len]);
            stream_pair(&mut h, name, value);
            for (name, value) in pairs {
                stream_pair(&mut h, name, value);
            }
            return SeriesHash(h.digest());
        }
        let value_at = len + name.len() + 1;
        buf[len..value_at - 1].copy_from_slice(name.as_bytes());
        buf[value_at - 1] = SEPARATOR;
        buf[value_at..end - 1].copy_from_slice(value.as_bytes());
        buf[end - 1] = SEPARATOR;
        len = end;
    }
    SeriesHash(xxh3_64(&buf[..len]))
}

/// `HASH_BUFFER_BYTES` is the encoded size up to which [`hash_pairs`]
/// hashes in one call (a node_exporter series takes 60–200 bytes).
pub const HASH_BUFFER_BYTES: usize = 512;

fn stream_pair(h: &mut Xxh3, name: &str, value: &str) {
    h.update(name.as_bytes());
    h.update(&[SEPARATOR]);
    h.update(value.as_bytes());
    h.update(&[SEPARATOR]);
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}", self.name, self.value)
    }
}

/// `Labels` is a canonical label set: sorted by name (byte order), names
/// unique and non-empty, values non-empty, within the limits it was built
/// with. Its identity is its content; [`Labels::hash`] is a stable digest.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// `new` validates and canonicalises `labels`: drops empty values, sorts
    /// by name, and refuses empty names, duplicate names (whether or not one
    /// of them has an empty value), an empty result, and anything over
    /// `limits`.
    pub fn new(mut labels: Vec<Label>, limits: &LabelLimits) -> Result<Labels, LabelError> {
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        for pair in labels.windows(2) {
            if pair[0].name == pair[1].name {
                return Err(LabelError::DuplicateName {
                    name: pair[0].name.clone(),
                });
            }
        }
        labels.retain(|l| !l.value.is_empty());
        Self::check(&labels, limits)?;
        Ok(Labels(labels))
    }

    /// `from_pairs` is [`Labels::new`] over `(name, value)` pairs.
    pub fn from_pairs<N, V>(
        pairs: impl IntoIterator<Item = (N, V)>,
        limits: &LabelLimits,
    ) -> Result<Labels, LabelError>
    where
        N: Into<String>,
        V: Into<String>,
    {
        Self::new(
            pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect(),
            limits,
        )
    }

    fn check(labels: &[Label], limits: &LabelLimits) -> Result<(), LabelError> {
        if labels.is_empty() {
            return Err(LabelError::EmptyLabelSet);
        }
        if labels.len() > limits.labels_per_series_max {
            return Err(LabelError::TooManyLabels {
                count: labels.len(),
                limit: limits.labels_per_series_max,
            });
        }
        for l in labels {
            if l.name.is_empty() {
                return Err(LabelError::EmptyName);
            }
            if l.name.len() > limits.label_name_bytes_max {
                return Err(LabelError::NameTooLong {
                    bytes: l.name.len(),
                    limit: limits.label_name_bytes_max,
                    prefix: l.name.chars().take(32).collect(),
                });
            }
            if l.value.len() > limits.label_value_bytes_max {
                return Err(LabelError::ValueTooLong {
                    name: l.name.clone(),
                    bytes: l.value.len(),
                    limit: limits.label_value_bytes_max,
                });
            }
        }
        Ok(())
    }

    /// `iter` yields the labels in canonical (name) order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// `len` is the number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `is_empty` is true only for `Labels::default()`, which is not a
    /// valid series label set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `get` returns the value of label `name`, or `None` if absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// `metric_name` returns the value of `__name__`, if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME_LABEL)
    }

    /// `hash` is the stable series hash: XXH3-64 (seed 0) over, for each
    /// label in canonical order, `name 0xFF value 0xFF`. Documented in
    /// `docs/format/series-hash.md`; changing it would move series between
    /// shards, so it never changes.
    pub fn hash(&self) -> SeriesHash {
        hash_pairs(&mut self.pairs())
    }

    /// `pairs` yields `(name, value)` in canonical order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|l| (l.name.as_str(), l.value.as_str()))
    }

    /// `is_canonical` is true when [`Labels::new`] would accept `pairs`
    /// unchanged: names strictly ascending (hence unique) and non-empty,
    /// no empty value, and within `limits`. Hot paths that receive labels
    /// already canonicalised upstream (a shard's log entries) check this
    /// instead of building a `Labels`, and fall back to [`Labels::new`]
    /// when it is false.
    pub fn is_canonical(pairs: &[(&str, &str)], limits: &LabelLimits) -> bool {
        !pairs.is_empty()
            && pairs.len() <= limits.labels_per_series_max
            && pairs.iter().all(|(n, v)| {
                !n.is_empty()
                    && !v.is_empty()
                    && n.len() <= limits.label_name_bytes_max
                    && v.len() <= limits.label_value_bytes_max
            })
            && pairs.windows(2).all(|w| w[0].0 < w[1].0)
    }

    /// `encode` appends the binary form: `uvarint(count)` then per label
    /// `uvarint(len) name uvarint(len) value`, in canonical order.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        put_uvarint(buf, self.0.len() as u64);
        for l in &self.0 {
            put_uvarint(buf, l.name.len() as u64);
            buf.extend_from_slice(l.name.as_bytes());
            put_uvarint(buf, l.value.len() as u64);
            buf.extend_from_slice(l.value.as_bytes());
        }
    }

    /// `decode` parses what [`Labels::encode`] wrote, from untrusted bytes:
    /// it checks UTF-8, strict name order (hence no duplicates), non-empty
    /// names and values, and `limits`. It returns the labels and the number
    /// of bytes consumed.
    pub fn decode(buf: &[u8], limits: &LabelLimits) -> Result<(Labels, usize), LabelError> {
        let malformed = |reason| LabelError::Malformed { reason };
        let mut r = Reader::new(buf);
        let count = r.uvarint().ok_or(malformed("truncated label count"))?;
        // Each label takes at least 4 bytes, so a count beyond that is
        // corrupt; checking first avoids a huge allocation.
        if count > (buf.len() as u64) / 4 {
            return Err(malformed("label count exceeds input"));
        }
        let mut labels = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let name = read_str(&mut r).ok_or(malformed("truncated or non-UTF-8 label name"))?;
            let value = read_str(&mut r).ok_or(malformed("truncated or non-UTF-8 label value"))?;
            if value.is_empty() {
                return Err(malformed("empty label value"));
            }
            if let Some(prev) = labels.last() {
                let prev: &Label = prev;
                if prev.name.as_str() >= name {
                    return Err(malformed("label names not strictly sorted"));
                }
            }
            labels.push(Label::new(name, value));
        }
        Self::check(&labels, limits)?;
        Ok((Labels(labels), r.position()))
    }

    /// `into_vec` returns the labels in canonical order.
    pub fn into_vec(self) -> Vec<Label> {
        self.0
    }
}

fn read_str<'a>(r: &mut Reader<'a>) -> Option<&'a str> {
    let len = usize::try_from(r.uvarint()?).ok()?;
    std::str::from_utf8(r.bytes(len)?).ok()
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Labels {
    /// Prometheus' notation: `{a="1", b="2"}` (the name inside the braces).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lim() -> LabelLimits {
        LabelLimits::default()
    }

    #[test]
    fn sorts_and_drops_empty_values() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", "")], &lim()).unwrap();
        assert_eq!(l.to_string(), r#"{a="1", b="2"}"#);
        assert_eq!(l.get("c"), None);
        assert_eq!(l.get("a"), Some("1"));
    }

    #[test]
    fn utf8_names_are_allowed() {
        let l = Labels::from_pairs(
            [("__name__", "http.requests.total"), ("🙂 name", "v")],
            &lim(),
        )
        .unwrap();
        assert_eq!(l.metric_name(), Some("http.requests.total"));
    }

    #[test]
    fn refusals_are_typed() {
        assert_eq!(
            Labels::from_pairs([("", "x")], &lim()),
            Err(LabelError::EmptyName)
        );
        assert_eq!(
            Labels::from_pairs([("a", "1"), ("a", "2")], &lim()),
            Err(LabelError::DuplicateName { name: "a".into() })
        );
        assert_eq!(
            Labels::from_pairs([("a", "1"), ("a", "")], &lim()),
            Err(LabelError::DuplicateName { name: "a".into() })
        );
        assert_eq!(
            Labels::from_pairs([("a", "")], &lim()),
            Err(LabelError::EmptyLabelSet)
        );
        let small = LabelLimits {
            labels_per_series_max: 1,
            label_name_bytes_max: 3,
            label_value_bytes_max: 3,
        };
        assert_eq!(
            Labels::from_pairs([("a", "1"), ("b", "2")], &small),
            Err(LabelError::TooManyLabels { count: 2, limit: 1 })
        );
        assert!(matches!(
            Labels::from_pairs([("abcd", "1")], &small),
            Err(LabelError::NameTooLong {
                bytes: 4,
                limit: 3,
                ..
            })
        ));
        assert!(matches!(
            Labels::from_pairs([("a", "1234")], &small),
            Err(LabelError::ValueTooLong {
                bytes: 4,
                limit: 3,
                ..
            })
        ));
    }

    #[test]
    fn hash_is_stable_across_versions() {
        // Pinned: shard placement depends on these exact values.
        let l = Labels::from_pairs([("__name__", "up"), ("job", "node")], &lim()).unwrap();
        assert_eq!(l.hash(), SeriesHash(PINNED_UP_JOB_NODE));
        let single = Labels::from_pairs([("a", "b")], &lim()).unwrap();
        assert_eq!(
            single.hash(),
            SeriesHash(xxhash_rust::xxh3::xxh3_64(b"a\xffb\xff"))
        );
    }

    const PINNED_UP_JOB_NODE: u64 = 0x85d6_66c2_8b44_5bb9;

    #[test]
    fn hashing_agrees_on_both_sides_of_the_buffer_edge() {
        // Two labels whose encoding ends just before, at and after the
        // buffer's end, in the first or the second label.
        for first in HASH_BUFFER_BYTES - 8..HASH_BUFFER_BYTES + 8 {
            for second in [0, 1, 5] {
                let pairs = vec![
                    ("a".to_string(), "x".repeat(first - 3)),
                    ("b".to_string(), "y".repeat(second + 1)),
                ];
                let got = hash_pairs(&mut pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
                assert_eq!(got, streamed(&pairs), "first {first}, second {second}");
            }
        }
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(Labels::decode(&[], &lim()).is_err());
        assert!(Labels::decode(&[200, 1], &lim()).is_err());
        // Unsorted names.
        let mut buf = Vec::new();
        for part in [&[2u8][..], &[1, b'b', 1, b'1'], &[1, b'a', 1, b'1']] {
            buf.extend_from_slice(part);
        }
        assert_eq!(
            Labels::decode(&buf, &lim()),
            Err(LabelError::Malformed {
                reason: "label names not strictly sorted"
            })
        );
        // Invalid UTF-8.
        assert!(Labels::decode(&[1, 1, 0xc3, 1, b'x'], &lim()).is_err());
    }

    fn arb_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec(("[a-z_]{0,4}", "\\PC{0,4}"), 0..8)
    }

    /// The streaming digest [`hash_pairs`] must equal, however the input
    /// straddles its buffer.
    fn streamed(pairs: &[(String, String)]) -> SeriesHash {
        let mut h = Xxh3::new();
        for (n, v) in pairs {
            stream_pair(&mut h, n, v);
        }
        SeriesHash(h.digest())
    }

    proptest! {
        #[test]
        fn one_shot_hashing_equals_streaming_across_the_buffer_edge(
            pairs in proptest::collection::vec(("[a-z_]{0,40}", "\\PC{0,200}"), 0..12),
        ) {
            let got = hash_pairs(&mut pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            prop_assert_eq!(got, streamed(&pairs));
        }

        #[test]
        fn encode_decode_round_trips(pairs in arb_pairs()) {
            if let Ok(l) = Labels::from_pairs(pairs, &lim()) {
                let mut buf = Vec::new();
                l.encode(&mut buf);
                let (back, n) = Labels::decode(&buf, &lim()).unwrap();
                prop_assert_eq!(n, buf.len());
                prop_assert_eq!(back.hash(), l.hash());
                prop_assert_eq!(back, l);
            }
        }

        #[test]
        fn order_of_input_does_not_change_identity(mut pairs in arb_pairs()) {
            if let Ok(a) = Labels::from_pairs(pairs.clone(), &lim()) {
                pairs.reverse();
                let b = Labels::from_pairs(pairs, &lim()).unwrap();
                prop_assert_eq!(a.hash(), b.hash());
                prop_assert_eq!(a, b);
            }
        }

        /// The shard's fast path trusts `is_canonical` to mean exactly
        /// "Labels::new accepts these pairs unchanged"; either direction
        /// failing would make a replica's apply differ from the slow path.
        #[test]
        fn is_canonical_iff_new_accepts_unchanged(
            pairs in arb_pairs(),
            sort in any::<bool>(),
            labels_max in 1usize..6,
            bytes_max in 1usize..6,
        ) {
            let mut pairs = pairs;
            if sort {
                pairs.sort();
            }
            let limits = LabelLimits {
                labels_per_series_max: labels_max,
                label_name_bytes_max: bytes_max,
                label_value_bytes_max: bytes_max,
            };
            let borrowed: Vec<(&str, &str)> =
                pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let unchanged = Labels::from_pairs(pairs.clone(), &limits)
                .is_ok_and(|l| l.pairs().eq(borrowed.iter().copied()));
            prop_assert_eq!(Labels::is_canonical(&borrowed, &limits), unchanged);
            if unchanged {
                let l = Labels::from_pairs(pairs.clone(), &limits).unwrap();
                prop_assert_eq!(hash_pairs(&mut borrowed.iter().copied()), l.hash());
            }
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Labels::decode(&bytes, &lim());
        }
    }
}
