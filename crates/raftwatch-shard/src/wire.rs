//! Borrowed views of a [`ShardCommand`]: the apply hot path reads label
//! names and values as `&str` slices of the log entry instead of decoding
//! every series into owned `String`s (which, with the label sets they feed,
//! took a third of a replica's apply time).
//!
//! The views accept a subset of what prost accepts and, where they accept,
//! yield exactly what prost would decode; anything else (a group, an
//! unexpected wire type, a truncated field) is refused and the caller falls
//! back to prost. A differential proptest holds them to that.

use std::ops::Range;

use crate::codec::{LabelPb, SeriesPb, ShardCommand, ShardRequest};

/// `WireError` is why a view refused its input; the caller then decodes
/// with prost, which either accepts (and must agree) or reports the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireError(pub &'static str);

/// `CommandView` is a decoded [`ShardCommand`] whose strings borrow from
/// the entry and whose series live in one flat [`SeriesBatch`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CommandView<'a> {
    /// Format version.
    pub version: u32,
    /// Every series of the command, requests' series included.
    pub batch: SeriesBatch<'a>,
    /// The series of a single-request command (indices into `batch`).
    pub series: Range<usize>,
    /// The request id of a single-request command.
    pub request_id: &'a str,
    /// Coalesced requests.
    pub requests: Vec<RequestView<'a>>,
}

/// `RequestView` is one coalesced [`ShardRequest`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RequestView<'a> {
    /// Its series (indices into the command's batch).
    pub series: Range<usize>,
    /// The client's request id, or empty.
    pub request_id: &'a str,
}

/// `SeriesBatch` holds decoded series in three flat arrays, so a command
/// of any size costs a handful of allocations.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SeriesBatch<'a> {
    labels: Vec<(&'a str, &'a str)>,
    timestamps: Vec<i64>,
    values: Vec<f64>,
    spans: Vec<Span>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Span {
    labels: (usize, usize),
    timestamps: (usize, usize),
    values: (usize, usize),
}

/// `SeriesView` is one series of a [`SeriesBatch`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesView<'b, 'a> {
    /// `(name, value)` in wire order.
    pub labels: &'b [(&'a str, &'a str)],
    /// Timestamps, ms.
    pub timestamps: &'b [i64],
    /// Values (as many as timestamps in a well-formed series).
    pub values: &'b [f64],
}

impl<'a> SeriesBatch<'a> {
    /// `len` is the number of series.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// `is_empty` is true when there is no series.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// `get` returns series `i`.
    pub fn get(&self, i: usize) -> Option<SeriesView<'_, 'a>> {
        let s = self.spans.get(i)?;
        Some(SeriesView {
            labels: &self.labels[s.labels.0..s.labels.1],
            timestamps: &self.timestamps[s.timestamps.0..s.timestamps.1],
            values: &self.values[s.values.0..s.values.1],
        })
    }

    /// `reserve` makes room for `series` more series, encoded in `bytes`
    /// bytes, of 8 labels and one sample each, so a command's arrays grow
    /// once instead of doubling their way up. Never more than the bytes
    /// could hold (a label takes at least 2 bytes, a timestamp 1, a value
    /// 8), so odd input cannot make it allocate out of proportion.
    fn reserve(&mut self, series: usize, bytes: usize) {
        self.spans.reserve(series.min(bytes / 2));
        self.labels.reserve(series.saturating_mul(8).min(bytes / 2));
        self.timestamps.reserve(series.min(bytes));
        self.values.reserve(series.min(bytes / 8));
    }

    /// `iter` yields the series in order.
    pub fn iter(&self) -> impl Iterator<Item = SeriesView<'_, 'a>> {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// `samples_total` is the number of timestamps over all series (as
    /// many samples, in a well-formed batch).
    pub fn samples_total(&self) -> usize {
        self.timestamps.len()
    }

    /// `push_series` appends a series given as borrowed labels and
    /// `(timestamp, value)` samples (a request already decoded by prost,
    /// or built in process).
    pub fn push_series(
        &mut self,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        samples: impl IntoIterator<Item = (i64, f64)>,
    ) {
        let start = self.start();
        self.labels.extend(labels);
        for (t, v) in samples {
            self.timestamps.push(t);
            self.values.push(v);
        }
        self.finish(start);
    }

    fn start(&self) -> (usize, usize, usize) {
        (self.labels.len(), self.timestamps.len(), self.values.len())
    }

    /// Closes the series begun at `start`.
    fn finish(&mut self, start: (usize, usize, usize)) {
        self.spans.push(Span {
            labels: (start.0, self.labels.len()),
            timestamps: (start.1, self.timestamps.len()),
            values: (start.2, self.values.len()),
        });
    }

    /// Decodes one encoded `raftwatch.v1.Series` (the public API's: labels
    /// 1, samples 2 as `Sample` messages) and appends it.
    fn push_write_series(&mut self, mut b: &'a [u8]) -> Result<(), WireError> {
        let start = self.start();
        let text = leading_labels_text(b);
        while !b.is_empty() {
            match key(&mut b)? {
                (1, wire) => self.labels.push(label(bytes(&mut b, wire)?, text)?),
                (2, wire) => {
                    let (t, v) = sample(bytes(&mut b, wire)?)?;
                    self.timestamps.push(t);
                    self.values.push(v);
                }
                (_, wire) => skip(&mut b, wire)?,
            }
        }
        self.finish(start);
        Ok(())
    }

    /// Decodes one encoded [`SeriesPb`] and appends it.
    fn push(&mut self, mut b: &'a [u8]) -> Result<(), WireError> {
        let start = self.start();
        let text = leading_labels_text(b);
        while !b.is_empty() {
            match key(&mut b)? {
                (1, w) => self.labels.push(label(bytes(&mut b, w)?, text)?),
                (2, VARINT) => self.timestamps.push(varint(&mut b)? as i64),
                (2, LEN) => {
                    let n = varint(&mut b)?;
                    let mut packed = take(&mut b, n)?;
                    while !packed.is_empty() {
                        self.timestamps.push(varint(&mut packed)? as i64);
                    }
                }
                (3, FIXED64) => {
                    let raw = take(&mut b, 8)?;
                    self.values.push(f64_at(raw));
                }
                (3, LEN) => {
                    let n = varint(&mut b)?;
                    let packed = take(&mut b, n)?;
                    if packed.len() % 8 != 0 {
                        return Err(WireError("packed doubles not a multiple of 8 bytes"));
                    }
                    self.values.extend(packed.chunks_exact(8).map(f64_at));
                }
                (2 | 3, _) => return Err(WireError("samples have the wrong wire type")),
                (_, w) => skip(&mut b, w)?,
            }
        }
        self.finish(start);
        Ok(())
    }

    fn to_owned(&self, range: Range<usize>) -> Vec<SeriesPb> {
        range
            .filter_map(|i| self.get(i))
            .map(|s| SeriesPb {
                labels: s
                    .labels
                    .iter()
                    .map(|(n, v)| LabelPb {
                        name: n.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
                timestamps: s.timestamps.to_vec(),
                values: s.values.to_vec(),
            })
            .collect()
    }
}

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

fn varint(b: &mut &[u8]) -> Result<u64, WireError> {
    let mut v = 0u64;
    for i in 0..10 {
        let Some((&byte, rest)) = b.split_first() else {
            return Err(WireError("truncated varint"));
        };
        *b = rest;
        if i == 9 && byte > 1 {
            return Err(WireError("varint overflows 64 bits"));
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err(WireError("varint overflows 64 bits"))
}

fn take<'a>(b: &mut &'a [u8], n: u64) -> Result<&'a [u8], WireError> {
    let n = usize::try_from(n).map_err(|_| WireError("length overflows"))?;
    if n > b.len() {
        return Err(WireError("truncated field"));
    }
    let (head, tail) = b.split_at(n);
    *b = tail;
    Ok(head)
}

/// Reads a field key: (field number, wire type).
fn key(b: &mut &[u8]) -> Result<(u64, u64), WireError> {
    let k = varint(b)?;
    if k > u64::from(u32::MAX) {
        return Err(WireError("field key overflows"));
    }
    let (tag, wire) = (k >> 3, k & 7);
    if tag == 0 {
        return Err(WireError("field number 0"));
    }
    Ok((tag, wire))
}

fn bytes<'a>(b: &mut &'a [u8], wire: u64) -> Result<&'a [u8], WireError> {
    if wire != LEN {
        return Err(WireError("expected a length-delimited field"));
    }
    let n = varint(b)?;
    take(b, n)
}

fn string<'a>(b: &mut &'a [u8], wire: u64) -> Result<&'a str, WireError> {
    std::str::from_utf8(bytes(b, wire)?).map_err(|_| WireError("string is not UTF-8"))
}

fn skip(b: &mut &[u8], wire: u64) -> Result<(), WireError> {
    match wire {
        VARINT => varint(b).map(drop),
        FIXED64 => take(b, 8).map(drop),
        LEN => bytes(b, wire).map(drop),
        FIXED32 => take(b, 4).map(drop),
        _ => Err(WireError("unsupported wire type")),
    }
}

impl<'a> CommandView<'a> {
    /// `parse` decodes a whole command, every series included, so a
    /// refusal happens before anything is applied.
    pub fn parse(mut b: &'a [u8]) -> Result<CommandView<'a>, WireError> {
        let len = b.len();
        let mut c = CommandView::default();
        // Top-level series may interleave with requests: collect them first.
        let mut top: Vec<&'a [u8]> = Vec::new();
        let mut requests: Vec<(Vec<&'a [u8]>, &'a str)> = Vec::new();
        while !b.is_empty() {
            match key(&mut b)? {
                (1, VARINT) => c.version = varint(&mut b)? as u32,
                (2, w) => top.push(bytes(&mut b, w)?),
                (3, w) => c.request_id = string(&mut b, w)?,
                (4, w) => requests.push(request(bytes(&mut b, w)?)?),
                (1, _) => return Err(WireError("version has the wrong wire type")),
                (_, w) => skip(&mut b, w)?,
            }
        }
        let n = top.len() + requests.iter().map(|(s, _)| s.len()).sum::<usize>();
        c.batch.reserve(n, len);
        for s in top {
            c.batch.push(s)?;
        }
        c.series = 0..c.batch.len();
        for (series, request_id) in requests {
            let first = c.batch.len();
            for s in series {
                c.batch.push(s)?;
            }
            c.requests.push(RequestView {
                series: first..c.batch.len(),
                request_id,
            });
        }
        Ok(c)
    }

    /// `to_owned` is the command as prost decodes it (tests).
    pub fn to_owned(&self) -> ShardCommand {
        ShardCommand {
            version: self.version,
            series: self.batch.to_owned(self.series.clone()),
            request_id: self.request_id.to_string(),
            requests: self
                .requests
                .iter()
                .map(|r| ShardRequest {
                    series: self.batch.to_owned(r.series.clone()),
                    request_id: r.request_id.to_string(),
                })
                .collect(),
        }
    }
}

/// `WriteView` is a decoded `raftwatch.v1.WriteRequest`, the public
/// `Ingest.Write` request (`proto/raftwatch/v1/admin.proto`: `series` 1,
/// `request_id` 2, `shard_map_epoch` 3, `shard` 4; a `Series` is `labels`
/// 1 and `samples` 2; a `Sample` is `timestamp_ms` 1 and `value` 2), with
/// its strings borrowed from the request's bytes and its series in a
/// [`SeriesBatch`], as a shard command's. The ingest path validates, hashes and re-encodes labels from
/// these slices, so a request costs a handful of allocations instead of
/// two `String`s per label and a struct per sample.
///
/// Like [`CommandView`], it refuses what it does not expect (the caller
/// then decodes with prost) and where it accepts, it yields exactly what
/// prost decodes; a differential proptest holds it to that.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WriteView<'a> {
    /// The client's request id, or empty.
    pub request_id: &'a str,
    /// The shard-map epoch the client routed with, or 0.
    pub shard_map_epoch: u64,
    /// The shard the client routed to, or 0.
    pub shard: u64,
    /// Its series, in request order.
    pub batch: SeriesBatch<'a>,
}

impl<'a> WriteView<'a> {
    /// `parse` decodes a whole request.
    pub fn parse(mut b: &'a [u8]) -> Result<WriteView<'a>, WireError> {
        let mut w = WriteView::default();
        while !b.is_empty() {
            match key(&mut b)? {
                (1, wire) => w.batch.push_write_series(bytes(&mut b, wire)?)?,
                (2, wire) => w.request_id = string(&mut b, wire)?,
                (3, VARINT) => w.shard_map_epoch = varint(&mut b)?,
                (4, VARINT) => w.shard = varint(&mut b)?,
                (3 | 4, _) => return Err(WireError("a uint64 field has the wrong wire type")),
                (_, wire) => skip(&mut b, wire)?,
            }
        }
        Ok(w)
    }
}

/// Reads a `raftwatch.v1.Sample`: absent fields are 0, as in proto3.
fn sample(mut b: &[u8]) -> Result<(i64, f64), WireError> {
    let (mut t, mut v) = (0i64, 0f64);
    while !b.is_empty() {
        match key(&mut b)? {
            (1, VARINT) => t = varint(&mut b)? as i64,
            (2, FIXED64) => v = f64_at(take(&mut b, 8)?),
            (1 | 2, _) => return Err(WireError("a sample field has the wrong wire type")),
            (_, wire) => skip(&mut b, wire)?,
        }
    }
    Ok((t, v))
}

/// Reads a [`ShardRequest`]: its encoded series and its id.
fn request(mut b: &[u8]) -> Result<(Vec<&[u8]>, &str), WireError> {
    let (mut series, mut id) = (Vec::new(), "");
    while !b.is_empty() {
        match key(&mut b)? {
            (1, w) => series.push(bytes(&mut b, w)?),
            (2, w) => id = string(&mut b, w)?,
            (_, w) => skip(&mut b, w)?,
        }
    }
    Ok((series, id))
}

fn f64_at(raw: &[u8]) -> f64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(raw);
    f64::from_bits(u64::from_le_bytes(a))
}

/// `label` reads a label message. Its strings are sliced out of `text`
/// when they lie inside it (UTF-8 already checked), else checked here.
fn label<'a>(mut b: &'a [u8], text: Option<&'a str>) -> Result<(&'a str, &'a str), WireError> {
    let (mut name, mut value) = ("", "");
    while !b.is_empty() {
        match key(&mut b)? {
            (1, w) => name = checked_str(bytes(&mut b, w)?, text)?,
            (2, w) => value = checked_str(bytes(&mut b, w)?, text)?,
            (_, w) => skip(&mut b, w)?,
        }
    }
    Ok((name, value))
}

/// `leading_labels_text` is the run of label fields (field 1,
/// length-delimited) a series message starts with, as one `&str` if it is
/// valid UTF-8. Our encoders write the labels first, and with names and
/// values under 128 bytes every tag and length byte is ASCII, so one check
/// covers a series' labels instead of one per name and per value (which
/// was 4.4 % of the nodes' CPU during ingest). `None` (a length of 128 or
/// more, bad UTF-8, a malformed field): each string is checked alone.
fn leading_labels_text(b: &[u8]) -> Option<&str> {
    let mut rest = b;
    loop {
        let mut at = rest;
        match key(&mut at) {
            Ok((1, LEN)) => {}
            _ => break,
        }
        if bytes(&mut at, LEN).is_err() {
            break;
        }
        rest = at;
    }
    let run = &b[..b.len() - rest.len()];
    if run.is_empty() {
        return None;
    }
    std::str::from_utf8(run).ok()
}

/// `checked_str` is `part` as a string: a slice of `text` when `part` lies
/// inside it on character boundaries (already checked), else checked now.
fn checked_str<'a>(part: &'a [u8], text: Option<&'a str>) -> Result<&'a str, WireError> {
    if let Some(text) = text {
        let offset = (part.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
        if let Some(s) = offset
            .checked_add(part.len())
            .and_then(|end| text.get(offset..end))
        {
            return Ok(s);
        }
    }
    std::str::from_utf8(part).map_err(|_| WireError("string is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use prost::Message;
    use raftwatch_model::encoding::put_uvarint as put_varint;

    /// Mostly short strings (any characters), sometimes 120–140 bytes:
    /// from 128 bytes a length takes two varint bytes, one not ASCII, and
    /// the series' labels are then checked string by string.
    fn label_value() -> impl Strategy<Value = String> {
        prop_oneof![4 => "\\PC{0,3}", 1 => "[a-zé]{60,70}"]
    }

    fn arb_series() -> impl Strategy<Value = SeriesPb> {
        (
            proptest::collection::vec(("\\PC{0,3}", label_value()), 0..4),
            proptest::collection::vec(any::<i64>(), 0..4),
            proptest::collection::vec(any::<u64>(), 0..4),
        )
            .prop_map(|(labels, timestamps, values)| SeriesPb {
                labels: labels
                    .into_iter()
                    .map(|(name, value)| LabelPb { name, value })
                    .collect(),
                timestamps,
                values: values.into_iter().map(f64::from_bits).collect(),
            })
    }

    fn arb_command() -> impl Strategy<Value = ShardCommand> {
        (
            any::<u32>(),
            proptest::collection::vec(arb_series(), 0..3),
            "\\PC{0,3}",
            proptest::collection::vec(
                (proptest::collection::vec(arb_series(), 0..3), "\\PC{0,3}"),
                0..3,
            ),
        )
            .prop_map(|(version, series, request_id, requests)| ShardCommand {
                version,
                series,
                request_id,
                requests: requests
                    .into_iter()
                    .map(|(series, request_id)| ShardRequest { series, request_id })
                    .collect(),
            })
    }

    /// Encodes a series the way other protobuf writers may: samples
    /// unpacked, fields interleaved, unknown fields added.
    fn encode_unpacked(s: &SeriesPb, out: &mut Vec<u8>) {
        for l in &s.labels {
            let inner = l.encode_to_vec();
            put_varint(out, (1 << 3) | LEN);
            put_varint(out, inner.len() as u64);
            out.extend_from_slice(&inner);
            put_varint(out, (9 << 3) | VARINT); // unknown
            put_varint(out, 300);
        }
        for (t, v) in s.timestamps.iter().zip(s.values.iter()) {
            put_varint(out, (2 << 3) | VARINT);
            put_varint(out, *t as u64);
            put_varint(out, (3 << 3) | FIXED64);
            out.extend_from_slice(&v.to_bits().to_le_bytes());
            put_varint(out, (10 << 3) | FIXED32); // unknown
            out.extend_from_slice(&[1, 2, 3, 4]);
        }
    }

    /// Equal content, values compared by bits (NaN payloads must
    /// survive): prost's encoding is a function of the content.
    fn same(a: &ShardCommand, b: &ShardCommand) -> bool {
        a.encode_to_vec() == b.encode_to_vec()
    }

    use raftwatch_proto::v1 as pb;

    /// `mutated` is `bytes` with each `(at, byte)` of `flips` written and
    /// then cut at `cut`, if any; `None` when there are no bytes to damage.
    fn mutated(
        mut bytes: Vec<u8>,
        flips: &[(prop::sample::Index, u8)],
        cut: Option<prop::sample::Index>,
    ) -> Option<Vec<u8>> {
        if bytes.is_empty() {
            return None;
        }
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = *b;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        Some(bytes)
    }

    fn arb_write() -> impl Strategy<Value = pb::WriteRequest> {
        let label =
            ("\\PC{0,3}", label_value()).prop_map(|(name, value)| pb::Label { name, value });
        let sample = (any::<i64>(), any::<u64>()).prop_map(|(timestamp_ms, v)| pb::Sample {
            timestamp_ms,
            value: f64::from_bits(v),
        });
        let series = (
            proptest::collection::vec(label, 0..4),
            proptest::collection::vec(sample, 0..4),
        )
            .prop_map(|(labels, samples)| pb::Series { labels, samples });
        (
            proptest::collection::vec(series, 0..4),
            "\\PC{0,3}",
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(
                |(series, request_id, shard_map_epoch, shard)| pb::WriteRequest {
                    series,
                    request_id,
                    shard_map_epoch,
                    shard,
                },
            )
    }

    /// The view as a prost message again, to compare by encoding (values
    /// by bits).
    fn write_to_owned(v: &WriteView<'_>) -> pb::WriteRequest {
        pb::WriteRequest {
            series: v
                .batch
                .iter()
                .map(|s| pb::Series {
                    labels: s
                        .labels
                        .iter()
                        .map(|(n, v)| pb::Label {
                            name: n.to_string(),
                            value: v.to_string(),
                        })
                        .collect(),
                    samples: s
                        .timestamps
                        .iter()
                        .zip(s.values)
                        .map(|(&timestamp_ms, &value)| pb::Sample {
                            timestamp_ms,
                            value,
                        })
                        .collect(),
                })
                .collect(),
            request_id: v.request_id.to_string(),
            shard_map_epoch: v.shard_map_epoch,
            shard: v.shard,
        }
    }

    proptest! {
        #[test]
        fn write_views_decode_what_prost_decodes(req in arb_write()) {
            let bytes = req.encode_to_vec();
            let view = WriteView::parse(&bytes).unwrap();
            prop_assert_eq!(view.batch.samples_total(), req.series.iter().map(|s| s.samples.len()).sum::<usize>());
            prop_assert_eq!(write_to_owned(&view).encode_to_vec(), bytes);
        }

        /// Whatever the bytes, a write view that accepts them agrees with
        /// prost, and prost accepts them too.
        #[test]
        fn mutated_writes_never_disagree(
            req in arb_write(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
            do_cut in any::<bool>(),
        ) {
            let Some(bytes) = mutated(req.encode_to_vec(), &flips, do_cut.then_some(cut)) else {
                return Ok(());
            };
            if let Ok(view) = WriteView::parse(&bytes) {
                let by_prost = pb::WriteRequest::decode(bytes.as_slice());
                prop_assert!(by_prost.is_ok(), "view accepted what prost refuses: {by_prost:?}");
                prop_assert_eq!(
                    write_to_owned(&view).encode_to_vec(),
                    by_prost.unwrap().encode_to_vec()
                );
            }
        }
    }

    proptest! {
        #[test]
        fn views_decode_what_prost_decodes(cmd in arb_command()) {
            let bytes = cmd.encode_to_vec();
            let view = CommandView::parse(&bytes).unwrap();
            let back = view.to_owned();
            prop_assert!(same(&back, &cmd), "{back:?} != {cmd:?}");
        }

        #[test]
        fn unpacked_samples_and_unknown_fields_agree_with_prost(s in arb_series()) {
            let mut inner = Vec::new();
            encode_unpacked(&s, &mut inner);
            let mut bytes = Vec::new();
            put_varint(&mut bytes, (1 << 3) | VARINT);
            put_varint(&mut bytes, 1);
            put_varint(&mut bytes, (2 << 3) | LEN);
            put_varint(&mut bytes, inner.len() as u64);
            bytes.extend_from_slice(&inner);
            let by_prost = ShardCommand::decode(bytes.as_slice()).unwrap();
            let by_view = CommandView::parse(&bytes).unwrap().to_owned();
            prop_assert!(same(&by_view, &by_prost));
        }

        /// Whatever the bytes, a view that accepts them agrees with prost,
        /// and prost accepts them too.
        #[test]
        fn mutated_input_never_disagrees(
            cmd in arb_command(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
            do_cut in any::<bool>(),
        ) {
            let Some(bytes) = mutated(cmd.encode_to_vec(), &flips, do_cut.then_some(cut)) else {
                return Ok(());
            };
            if let Ok(owned) = CommandView::parse(&bytes).map(|v| v.to_owned()) {
                let by_prost = ShardCommand::decode(bytes.as_slice());
                prop_assert!(by_prost.is_ok(), "view accepted what prost refuses: {by_prost:?}");
                prop_assert!(same(&owned, &by_prost.unwrap()));
            }
        }
    }
}
