//! Differential tests of the XOR and decimal chunk codecs against a dumb
//! reference, a `Vec<(i64, f64)>` compared bit-exactly.
//!
//! Randomized with proptest: a failure prints the minimal failing input and
//! is persisted under `proptest-regressions/`; set `PROPTEST_RNG_SEED` to
//! replay a run and `PROPTEST_CASES` to run more cases.

use proptest::prelude::*;
use raftwatch_chunk::{
    CHUNK_SAMPLES_TARGET, ChunkError, ChunkIter, ChunkRecord, DecimalIter, ENCODING_DECIMAL,
    ENCODING_DECIMAL_SCALED, ENCODING_XOR, RECORD_VERSION, ScaledDecimalIter, XorChunk, XorIter,
    encode_decimal, encode_scaled_decimal,
};
use raftwatch_model::{STALE_NAN_BITS, Sample};

/// `Series` is the reference: what went in, in order.
type Series = Vec<(i64, f64)>;

/// `bits` makes a series comparable bit-exactly (NaN payloads, -0.0).
fn bits(series: &[(i64, f64)]) -> Vec<(i64, u64)> {
    series.iter().map(|&(t, v)| (t, v.to_bits())).collect()
}

fn decoded(
    it: impl Iterator<Item = Result<Sample, ChunkError>>,
) -> Result<Vec<(i64, u64)>, ChunkError> {
    it.map(|s| s.map(|s| (s.timestamp.0, s.value.to_bits())))
        .collect()
}

fn build(series: &[(i64, f64)]) -> XorChunk {
    let mut c = XorChunk::new();
    for &(t, v) in series {
        c.append(t, v);
    }
    c
}

// ---- strategies -------------------------------------------------------------

fn special_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::from_bits(STALE_NAN_BITS)),
        Just(f64::from_bits(0x7ff8_0000_0000_0001)),
        Just(f64::from_bits(0xfff0_0000_0000_0001)),
        Just(f64::from_bits(0xffff_ffff_ffff_ffff)),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
        Just(f64::from_bits(1)), // smallest subnormal
        Just(f64::MAX),
        Just(f64::MIN),
    ]
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        // A small pool, so constant runs and repeats are common.
        3 => prop_oneof![Just(1.0), Just(2.0), Just(100.0)],
        2 => special_value(),
        2 => any::<u64>().prop_map(f64::from_bits),
        2 => (-1_000_000i64..1_000_000).prop_map(|i| i as f64),
        1 => -1e6f64..1e6,
    ]
}

/// `values` makes `n` values: either independent draws, a constant, an
/// integer counter or a random walk.
fn values(n: usize) -> impl Strategy<Value = Vec<f64>> {
    prop_oneof![
        proptest::collection::vec(value(), n),
        value().prop_map(move |v| vec![v; n]),
        proptest::collection::vec(0u32..1000, n).prop_map(|incs| {
            let mut acc = 0.0;
            incs.into_iter()
                .map(|i| {
                    acc += f64::from(i);
                    acc
                })
                .collect()
        }),
        proptest::collection::vec(-1.0f64..1.0, n).prop_map(|steps| {
            let mut acc = 50.0;
            steps
                .into_iter()
                .map(|s| {
                    acc += s;
                    acc
                })
                .collect()
        }),
    ]
}

/// `from_deltas` accumulates positive deltas from `start`, stopping before
/// the first overflow, so the result is strictly increasing.
fn from_deltas(start: i64, deltas: Vec<u64>) -> Vec<i64> {
    let mut out = vec![start];
    let mut t = start;
    for d in deltas {
        match t.checked_add_unsigned(d.max(1)) {
            Some(next) => {
                out.push(next);
                t = next;
            }
            None => break,
        }
    }
    out
}

fn timestamps() -> impl Strategy<Value = Vec<i64>> {
    let len = 0usize..300;
    prop_oneof![
        // Anywhere in i64: huge, irregular gaps.
        proptest::collection::btree_set(any::<i64>(), len.clone())
            .prop_map(|s| s.into_iter().collect::<Vec<_>>()),
        // Including both extremes in one chunk.
        proptest::collection::btree_set(any::<i64>(), 0usize..20).prop_map(|mut s| {
            s.insert(i64::MIN);
            s.insert(i64::MAX);
            s.into_iter().collect::<Vec<_>>()
        }),
        // Regular 15 s scrapes with jitter, around any epoch (negative too).
        (
            -1_000_000_000_000_000i64..1_000_000_000_000_000,
            proptest::collection::vec(-500i64..500, len.clone())
        )
            .prop_map(|(start, jitter)| {
                jitter
                    .into_iter()
                    .enumerate()
                    .map(|(i, j)| start + i as i64 * 15_000 + j)
                    .collect::<Vec<_>>()
            }),
        // Irregular small deltas.
        (
            any::<i64>(),
            proptest::collection::vec(1u64..5_000, len.clone())
        )
            .prop_map(|(s, d)| from_deltas(s / 2, d)),
        // Deltas hopping between every dod bucket and the 64-bit escape.
        (
            any::<i64>(),
            proptest::collection::vec(
                prop_oneof![
                    1u64..10,
                    8_000u64..9_000,
                    (1u64 << 16)..(1u64 << 17),
                    (1u64 << 19)..(1u64 << 20),
                    1u64..(1u64 << 40),
                    1u64..u64::MAX,
                ],
                len
            )
        )
            .prop_map(|(s, d)| from_deltas(s, d)),
    ]
}

fn series() -> impl Strategy<Value = Series> {
    timestamps().prop_flat_map(|ts| {
        let n = ts.len();
        values(n).prop_map(move |vs| ts.iter().copied().zip(vs).collect())
    })
}

/// `decimal_values` makes `n` values that are decimals with up to `k`
/// digits after the point: counters, random walks, constants and
/// independent draws of mantissas of any size up to 2^53, sometimes with
/// one value that is not a decimal at all.
fn decimal_values(n: usize) -> impl Strategy<Value = Vec<f64>> {
    let mantissas = prop_oneof![
        proptest::collection::vec(0i64..100_000, n).prop_map(|incs| {
            let mut acc = 1_000_000_000i64;
            incs.into_iter()
                .map(|i| {
                    acc += i;
                    acc
                })
                .collect::<Vec<_>>()
        }),
        proptest::collection::vec(-20i64..=20, n).prop_map(|steps| {
            let mut acc = 0i64;
            steps
                .into_iter()
                .map(|s| {
                    acc += s;
                    acc
                })
                .collect::<Vec<_>>()
        }),
        any::<i32>().prop_map(move |m| vec![i64::from(m); n]),
        proptest::collection::vec(-(1i64 << 53)..=(1i64 << 53), n),
        // Steps of a fixed size: pages, MHz, sectors.
        (
            prop_oneof![Just(2i64), Just(4_096), Just(1_000_000), 2i64..1 << 40],
            proptest::collection::vec(-40i64..=40, n),
        )
            .prop_map(|(q, steps)| {
                let mut acc = 1i64 << 32;
                steps
                    .into_iter()
                    .map(|s| {
                        acc = (acc + s * q).clamp(-(1 << 53), 1 << 53);
                        acc
                    })
                    .collect::<Vec<_>>()
            }),
    ];
    (
        mantissas,
        0u8..=18,
        proptest::option::weighted(0.2, (any::<prop::sample::Index>(), value())),
    )
        .prop_map(|(ms, k, odd)| {
            let p = 10f64.powi(i32::from(k));
            let mut vs: Vec<f64> = ms.into_iter().map(|m| m as f64 / p).collect();
            if let Some((at, v)) = odd
                && !vs.is_empty()
            {
                let i = at.index(vs.len());
                vs[i] = v;
            }
            vs
        })
}

fn decimal_series() -> impl Strategy<Value = Series> {
    timestamps().prop_flat_map(|ts| {
        let n = ts.len();
        decimal_values(n).prop_map(move |vs| ts.iter().copied().zip(vs).collect())
    })
}

/// `all_decimal` is the reference for "every value is `m / 10^k` with
/// `|m| <= 2^53`, bit-exactly".
fn all_decimal(series: &[(i64, f64)], k: i32) -> bool {
    let p = 10f64.powi(k);
    series.iter().all(|&(_, v)| {
        let m = (v * p).round();
        v.is_finite()
            && m.abs() <= (1u64 << 53) as f64
            && ((m as i64) as f64 / p).to_bits() == v.to_bits()
    })
}

/// `mantissa_gcd` is the reference for the scaled payload's divisor: the
/// gcd of the differences of consecutive mantissas at exponent `k`.
fn mantissa_gcd(series: &[(i64, f64)], k: i32) -> u64 {
    let p = 10f64.powi(k);
    let ms: Vec<i64> = series
        .iter()
        .map(|&(_, v)| (v * p).round() as i64)
        .collect();
    let gcd = |mut a: u64, mut b: u64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    ms.windows(2).fold(0, |g, w| gcd(g, w[1].abs_diff(w[0])))
}

fn samples_of(series: &[(i64, f64)]) -> Vec<Sample> {
    series.iter().map(|&(t, v)| Sample::new(t, v)).collect()
}

/// `record_of` encodes a non-empty series as a record.
fn record_of(series: &[(i64, f64)]) -> Vec<u8> {
    let mut buf = Vec::new();
    build(series).encode_record(&mut buf);
    buf
}

/// `config` runs 512 cases unless `PROPTEST_CASES` says otherwise
/// (`with_cases` alone would override the environment).
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_some() {
        default
    } else {
        ProptestConfig {
            cases: 512,
            ..default
        }
    }
}

// ---- differential round trips ----------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn append_then_iterate_matches_reference(s in series()) {
        let c = build(&s);
        prop_assert_eq!(c.num_samples(), s.len());
        prop_assert_eq!(c.is_empty(), s.is_empty());
        prop_assert_eq!(c.min_time(), s.first().map(|p| p.0));
        prop_assert_eq!(c.max_time(), s.last().map(|p| p.0));
        prop_assert_eq!(c.last_value().map(f64::to_bits), s.last().map(|p| p.1.to_bits()));
        prop_assert_eq!(decoded(c.iter()), Ok(bits(&s)));
        prop_assert_eq!(decoded(XorIter::new(c.payload(), s.len())), Ok(bits(&s)));
        prop_assert!(c.heap_bytes() >= c.payload().len());
    }

    #[test]
    fn record_round_trip_matches_reference(s in series()) {
        prop_assume!(!s.is_empty());
        let buf = record_of(&s);
        let rec = ChunkRecord::decode(&buf).unwrap();
        prop_assert_eq!(rec.min_time, s[0].0);
        prop_assert_eq!(rec.max_time, s[s.len() - 1].0);
        prop_assert_eq!(rec.num_samples, s.len());
        prop_assert_eq!(decoded(rec.iter()), Ok(bits(&s)));
    }

    #[test]
    fn record_appends_to_existing_buffer(s in series(), prefix in proptest::collection::vec(any::<u8>(), 0..8)) {
        prop_assume!(!s.is_empty());
        let mut buf = prefix.clone();
        build(&s).encode_record(&mut buf);
        prop_assert_eq!(&buf[..prefix.len()], &prefix[..]);
        let rec = ChunkRecord::decode(&buf[prefix.len()..]).unwrap();
        prop_assert_eq!(decoded(rec.iter()), Ok(bits(&s)));
    }

    #[test]
    fn from_payload_then_append_matches_reference(s in series(), split in any::<prop::sample::Index>()) {
        let k = split.index(s.len() + 1);
        let head = build(&s[..k]);
        let mut resumed = XorChunk::from_payload(head.payload(), k).unwrap();
        prop_assert_eq!(resumed.max_time(), head.max_time());
        prop_assert_eq!(resumed.min_time(), head.min_time());
        prop_assert_eq!(resumed.last_value().map(f64::to_bits), head.last_value().map(f64::to_bits));
        for &(t, v) in &s[k..] {
            resumed.append(t, v);
        }
        prop_assert_eq!(decoded(resumed.iter()), Ok(bits(&s)));
        // Resuming recovers the appender state exactly: same bytes as
        // appending everything to one chunk.
        let straight = build(&s);
        prop_assert_eq!(resumed.payload(), straight.payload());
    }

    #[test]
    fn decimal_payload_matches_reference(s in prop_oneof![decimal_series(), series()]) {
        match encode_decimal(&samples_of(&s)) {
            Some(p) => prop_assert_eq!(decoded(DecimalIter::new(&p, s.len())), Ok(bits(&s))),
            // Refused only when no exponent fits every value.
            None => prop_assert!(s.is_empty() || !(0..=15).any(|k| all_decimal(&s, k))),
        }
    }

    #[test]
    fn scaled_decimal_payload_matches_reference(s in prop_oneof![decimal_series(), series()]) {
        match encode_scaled_decimal(&samples_of(&s)) {
            Some(p) => prop_assert_eq!(decoded(ScaledDecimalIter::new(&p, s.len())), Ok(bits(&s))),
            // Refused when no exponent fits every value, or when the
            // mantissas' differences share no factor: at the smallest
            // exponent that fits, their gcd is 0 or 1.
            None => prop_assert!(
                s.is_empty()
                    || (0..=15)
                        .find(|&k| all_decimal(&s, k))
                        .is_none_or(|k| mantissa_gcd(&s, k) < 2)
            ),
        }
    }

    #[test]
    fn compact_record_matches_reference_and_is_never_larger(s in prop_oneof![decimal_series(), series()]) {
        prop_assume!(!s.is_empty());
        let c = build(&s);
        let mut compact = Vec::new();
        c.encode_compact_record(&mut compact);
        let xor = record_of(&s);
        prop_assert!(compact.len() <= xor.len());
        let rec = ChunkRecord::decode(&compact).unwrap();
        prop_assert_eq!(rec.min_time, s[0].0);
        prop_assert_eq!(rec.max_time, s[s.len() - 1].0);
        prop_assert_eq!(rec.num_samples, s.len());
        prop_assert!(
            [ENCODING_XOR, ENCODING_DECIMAL, ENCODING_DECIMAL_SCALED].contains(&rec.encoding)
        );
        prop_assert_eq!(decoded(rec.iter()), Ok(bits(&s)));
        check_append_to_agrees(rec.iter(), ChunkIter::append_to, s.len() % 4)?;
        // Never larger than either decimal payload would have made it.
        for p in [encode_decimal(&samples_of(&s)), encode_scaled_decimal(&samples_of(&s))]
            .into_iter()
            .flatten()
        {
            prop_assert!(rec.payload.len() <= p.len());
        }
    }

    // ---- corruption ---------------------------------------------------------

    #[test]
    fn any_flipped_byte_is_detected(s in series(), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        prop_assume!(!s.is_empty());
        let mut buf = record_of(&s);
        let i = at.index(buf.len());
        buf[i] ^= flip;
        match ChunkRecord::decode(&buf) {
            // The version byte is checked first: it decides the layout.
            Err(ChunkError::UnsupportedVersion(v)) => prop_assert!(i == 0 && v == RECORD_VERSION ^ flip),
            // CRC-32C detects every error confined to one byte.
            Err(ChunkError::ChecksumMismatch { .. }) => prop_assert!(i != 0),
            other => prop_assert!(false, "flip at {} decoded as {:?}", i, other),
        }
    }

    #[test]
    fn a_bare_record_round_trips_and_any_flipped_byte_is_detected(s in prop_oneof![decimal_series(), series()], at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        prop_assume!(!s.is_empty());
        let mut full = Vec::new();
        build(&s).encode_compact_record(&mut full);
        let rec = ChunkRecord::decode(&full).unwrap();
        let mut bare = Vec::new();
        rec.encode_bare(&mut bare);
        // Version, min_time, span, payload length and the payload's first
        // timestamp are left out.
        prop_assert!(bare.len() + 5 <= full.len());
        let back = ChunkRecord::decode_bare(&bare, rec.min_time, rec.max_time).unwrap();
        prop_assert_eq!(
            (back.min_time, back.max_time, back.num_samples, back.encoding),
            (rec.min_time, rec.max_time, rec.num_samples, rec.encoding)
        );
        prop_assert_eq!(decoded(back.iter()), Ok(bits(&s)));
        let mut bare_again = Vec::new();
        back.encode_bare(&mut bare_again);
        prop_assert_eq!(&bare_again, &bare);
        let mut again = Vec::new();
        back.encode(&mut again);
        prop_assert_eq!(&again, &full);
        let i = at.index(bare.len());
        bare[i] ^= flip;
        let damaged = ChunkRecord::decode_bare(&bare, rec.min_time, rec.max_time);
        prop_assert!(
            matches!(damaged, Err(ChunkError::ChecksumMismatch { .. })),
            "flip at {} decoded as {:?}", i, damaged
        );
        // Bounds that do not fit the sample count are refused too.
        bare[i] ^= flip;
        if rec.num_samples == 1 {
            prop_assert!(ChunkRecord::decode_bare(&bare, rec.min_time.wrapping_sub(1), rec.max_time).is_err());
        }
        if let Some(after) = rec.max_time.checked_add(1) {
            prop_assert!(ChunkRecord::decode_bare(&bare, after, rec.max_time).is_err());
        }
    }

    #[test]
    fn truncated_or_extended_records_are_rejected(s in series(), cut in any::<prop::sample::Index>(), extra in 1u8..=255) {
        prop_assume!(!s.is_empty());
        let buf = record_of(&s);
        let k = cut.index(buf.len());
        prop_assert!(ChunkRecord::decode(&buf[..k]).is_err());
        let mut longer = buf.clone();
        longer.push(extra);
        prop_assert!(ChunkRecord::decode(&longer).is_err());
    }

    #[test]
    fn payload_iteration_with_wrong_count_fails_or_stops(s in series(), extra in 1usize..50) {
        let c = build(&s);
        // Asking for more samples than were written must not produce
        // samples out of thin air silently beyond the padding: it either
        // errors or yields strictly increasing timestamps (the zero padding
        // can legitimately decode as a few "repeat" samples).
        let got: Vec<_> = XorIter::new(c.payload(), s.len() + extra).collect();
        prop_assert!(got.len() <= s.len() + extra);
        let ok: Vec<_> = got.iter().take_while(|r| r.is_ok()).collect();
        prop_assert!(ok.len() >= s.len());
        // Decoding fewer than written yields a prefix.
        let fewer = s.len() / 2;
        prop_assert_eq!(decoded(XorIter::new(c.payload(), fewer)), Ok(bits(&s[..fewer])));
    }

    // ---- garbage --------------------------------------------------------------

    #[test]
    fn garbage_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), n in 0usize..2_000, skip in 0usize..4) {
        check_garbage_payload(&bytes, n)?;
        check_append_to_agrees(XorIter::new(&bytes, n), XorIter::append_to, skip)?;
    }

    /// A count no payload of that size can hold does not size the decode
    /// buffer (which would abort the process on allocation).
    #[test]
    fn impossible_counts_are_truncation(bytes in proptest::collection::vec(any::<u8>(), 0..64), skip in 0usize..4) {
        check_append_to_agrees(XorIter::new(&bytes, usize::MAX), XorIter::append_to, skip)?;
        check_append_to_agrees(DecimalIter::new(&bytes, usize::MAX), DecimalIter::append_to, skip)?;
        check_append_to_agrees(ScaledDecimalIter::new(&bytes, usize::MAX), ScaledDecimalIter::append_to, skip)?;
    }

    #[test]
    fn mutated_payloads_never_panic(s in series(), at in any::<prop::sample::Index>(), flip in 1u8..=255, skip in 0usize..4) {
        let c = build(&s);
        let mut p = c.payload().to_vec();
        prop_assume!(!p.is_empty());
        let i = at.index(p.len());
        p[i] ^= flip;
        check_garbage_payload(&p, s.len())?;
        check_append_to_agrees(XorIter::new(&p, s.len()), XorIter::append_to, skip)?;
    }

    #[test]
    fn garbage_decimal_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), n in 0usize..2_000, skip in 0usize..4) {
        check_iter_contract(DecimalIter::new(&bytes, n).collect(), n)?;
        check_append_to_agrees(DecimalIter::new(&bytes, n), DecimalIter::append_to, skip)?;
    }

    #[test]
    fn mutated_decimal_payloads_never_panic(s in decimal_series(), at in any::<prop::sample::Index>(), flip in 1u8..=255, skip in 0usize..4) {
        let Some(mut p) = encode_decimal(&samples_of(&s)) else { return Ok(()) };
        let i = at.index(p.len());
        p[i] ^= flip;
        check_iter_contract(DecimalIter::new(&p, s.len()).collect(), s.len())?;
        check_append_to_agrees(DecimalIter::new(&p, s.len()), DecimalIter::append_to, skip)?;
    }

    #[test]
    fn garbage_scaled_decimal_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), n in 0usize..2_000, skip in 0usize..4) {
        check_iter_contract(ScaledDecimalIter::new(&bytes, n).collect(), n)?;
        check_append_to_agrees(ScaledDecimalIter::new(&bytes, n), ScaledDecimalIter::append_to, skip)?;
    }

    #[test]
    fn mutated_scaled_decimal_payloads_never_panic(s in decimal_series(), at in any::<prop::sample::Index>(), flip in 1u8..=255, skip in 0usize..4) {
        let Some(mut p) = encode_scaled_decimal(&samples_of(&s)) else { return Ok(()) };
        let i = at.index(p.len());
        p[i] ^= flip;
        check_iter_contract(ScaledDecimalIter::new(&p, s.len()).collect(), s.len())?;
        check_append_to_agrees(ScaledDecimalIter::new(&p, s.len()), ScaledDecimalIter::append_to, skip)?;
    }

    #[test]
    fn garbage_bare_records_with_a_valid_checksum_never_panic(
        encoding in 1u8..=3,
        n in 1usize..300,
        payload in proptest::collection::vec(any::<u8>(), 0..256),
        min_time in any::<i64>(),
        span in 0i64..1_000_000,
    ) {
        let mut bare = vec![encoding];
        raftwatch_model::encoding::put_uvarint(&mut bare, n as u64);
        bare.extend_from_slice(&payload);
        let crc = crc32c::crc32c(&bare);
        bare.extend_from_slice(&crc.to_le_bytes());
        let max_time = min_time.saturating_add(if n == 1 { 0 } else { span });
        if let Ok(rec) = ChunkRecord::decode_bare(&bare, min_time, max_time) {
            check_iter_contract(rec.iter().collect(), n)?;
            check_append_to_agrees(rec.iter(), ChunkIter::append_to, (n + encoding as usize) % 4)?;
        }
    }

    #[test]
    fn garbage_records_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(rec) = ChunkRecord::decode(&bytes) {
            let _ = rec.iter().count();
        }
    }

    #[test]
    fn garbage_behind_a_valid_checksum_never_panics(
        header in proptest::collection::vec(any::<u8>(), 0..24),
        payload in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        // Random header fields, then a record-shaped random payload, both
        // under a correct CRC, so decoding gets past the checksum.
        for body in [
            [&[RECORD_VERSION][..], &header].concat(),
            [&[RECORD_VERSION, 1][..], &header, &payload].concat(),
            [&[RECORD_VERSION, 2][..], &header, &payload].concat(),
        ] {
            let mut buf = body.clone();
            buf.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
            if let Ok(rec) = ChunkRecord::decode(&buf) {
                prop_assert!(rec.min_time <= rec.max_time);
                prop_assert!((1..=65_535).contains(&rec.num_samples));
                check_iter_contract(rec.iter().collect(), rec.num_samples)?;
                check_append_to_agrees(rec.iter(), ChunkIter::append_to, payload.len() % 4)?;
            }
        }
    }
}

/// `check_garbage_payload` decodes untrusted bytes and checks the
/// iterator's contract: at most `n` items, at most one `Err` and only last,
/// strictly increasing timestamps; and that `from_payload` agrees.
fn check_garbage_payload(bytes: &[u8], n: usize) -> Result<(), TestCaseError> {
    let items: Vec<_> = XorIter::new(bytes, n).collect();
    let (errs, ts) = check_iter_contract(items.clone(), n)?;
    // `from_payload` may refuse even when iteration succeeded (bytes after
    // the last sample, non-zero padding bits); when it accepts, iteration
    // must have succeeded too.
    if let Ok(mut c) = XorChunk::from_payload(bytes, n) {
        prop_assert_eq!(errs, 0);
        prop_assert_eq!(items.len(), n);
        prop_assert_eq!(c.payload(), bytes);
        prop_assert_eq!(c.max_time(), ts.last().copied());
        // A resumed chunk keeps working.
        if let Some(t) = c.max_time().and_then(|t| t.checked_add(1)) {
            c.append(t, 1.5);
            let again = decoded(c.iter());
            prop_assert!(again.is_ok());
        }
    }
    Ok(())
}

/// `check_iter_contract` checks what any payload iterator promises on
/// untrusted input: at most `n` items, at most one `Err` and only last,
/// strictly increasing timestamps. Returns the error count and timestamps.
fn check_iter_contract(
    items: Vec<Result<Sample, ChunkError>>,
    n: usize,
) -> Result<(usize, Vec<i64>), TestCaseError> {
    prop_assert!(items.len() <= n);
    let errs = items.iter().filter(|r| r.is_err()).count();
    prop_assert!(errs <= 1);
    if errs == 1 {
        prop_assert!(items.last().is_some_and(Result::is_err));
    }
    let ts: Vec<i64> = items
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|s| s.timestamp.0)
        .collect();
    prop_assert!(ts.windows(2).all(|w| w[0] < w[1]));
    Ok((errs, ts))
}

/// `check_append_to_agrees` checks that `append_to`, called after `skip`
/// calls to `next`, decodes exactly what iterating `it` yields: the same
/// samples bit-exactly, and the same error after them, if any.
fn check_append_to_agrees<I>(
    it: I,
    append_to: impl Fn(&mut I, &mut Vec<Sample>) -> Result<(), ChunkError>,
    skip: usize,
) -> Result<(), TestCaseError>
where
    I: Iterator<Item = Result<Sample, ChunkError>> + Clone,
{
    let as_bits = |items: Vec<Result<Sample, ChunkError>>| -> Vec<Result<(i64, u64), ChunkError>> {
        items
            .into_iter()
            .map(|r| r.map(|s| (s.timestamp.0, s.value.to_bits())))
            .collect()
    };
    let want = as_bits(it.clone().collect());
    let mut it = it;
    let mut got: Vec<Result<Sample, ChunkError>> = it.by_ref().take(skip).collect();
    let mut out = Vec::new();
    let res = append_to(&mut it, &mut out);
    got.extend(out.into_iter().map(Ok));
    if let Err(e) = res {
        got.push(Err(e));
    }
    prop_assert_eq!(as_bits(got), want);
    // Exhausted afterwards, like the iterator.
    prop_assert!(it.next().is_none());
    Ok(())
}

// ---- pinned cases -------------------------------------------------------------

#[test]
fn regular_constant_series_compresses_to_two_bits_per_sample() {
    let s: Series = (0..CHUNK_SAMPLES_TARGET as i64)
        .map(|i| (1_700_000_000_000 + i * 15_000, 42.0))
        .collect();
    let c = build(&s);
    assert!(
        c.payload().len() <= 30 + CHUNK_SAMPLES_TARGET * 2 / 8,
        "payload is {} bytes",
        c.payload().len()
    );
    assert_eq!(decoded(c.iter()), Ok(bits(&s)));
}

#[test]
fn payload_bytes_are_pinned() {
    // Hand-checked against the format spec; Prometheus' XOR chunk for the
    // same samples is these bytes behind its 2-byte count header.
    // t0=1000 -> zigzag 2000 -> varint d0 0f; v0=1.0 -> 3ff0000000000000;
    // delta 1000 -> uvarint e8 07; v1=1.0 -> '0';
    // t2=3000: dod 0 -> '0'; v2=2.0: xor 7ff0000000000000, lead 1,
    //   trail 52, sig 11 -> '11' 00001 001011 11111111111;
    // t3=4500: dod 500 -> '10' 00000111110100; v3=2.0 -> '0'.
    let c = build(&[(1000, 1.0), (2000, 1.0), (3000, 2.0), (4500, 2.0)]);
    let mut want = vec![0xd0, 0x0f, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0xe8, 0x07];
    // Bits after the varint: 0 0 11 00001 001011 11111111111 10 00000111110100 0
    // = 0011 0000 1001 0111 1111 1111 1110 0000 0111 1101 000 (+ 5 pad bits)
    want.extend_from_slice(&[0x30, 0x97, 0xff, 0xe0, 0x7d, 0x00]);
    assert_eq!(c.payload(), &want[..]);

    let mut rec = Vec::new();
    c.encode_record(&mut rec);
    // version, encoding, num_samples 4, min_time 1000 (zigzag 2000), span
    // 3500, payload_len 18, payload, crc.
    assert_eq!(&rec[..8], &[1, 1, 4, 0xd0, 0x0f, 0xac, 0x1b, 18]);
    assert_eq!(rec.len(), 8 + 18 + 4);
}

#[test]
fn stale_marker_and_nan_payloads_survive_a_record() {
    let s: Series = vec![
        (-5, f64::from_bits(STALE_NAN_BITS)),
        (0, f64::NAN),
        (1, f64::from_bits(STALE_NAN_BITS)),
        (2, -0.0),
        (3, 0.0),
        (4, f64::INFINITY),
        (5, f64::NEG_INFINITY),
        (6, f64::from_bits(0x7ff8_dead_beef_0001)),
    ];
    let buf = record_of(&s);
    let rec = ChunkRecord::decode(&buf).unwrap();
    assert_eq!(decoded(rec.iter()), Ok(bits(&s)));
}

#[test]
fn header_errors_are_specific() {
    let buf = record_of(&[(10, 1.0), (20, 2.0)]);
    assert_eq!(ChunkRecord::decode(&[]), Err(ChunkError::Truncated));
    assert_eq!(ChunkRecord::decode(&[1, 1, 1]), Err(ChunkError::Truncated));
    let mut v2 = buf.clone();
    v2[0] = 2;
    assert_eq!(
        ChunkRecord::decode(&v2),
        Err(ChunkError::UnsupportedVersion(2))
    );
    // Re-checksum a record with a different encoding byte.
    let mut enc = buf[..buf.len() - 4].to_vec();
    enc[1] = 9;
    let crc = crc32c::crc32c(&enc);
    enc.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(
        ChunkRecord::decode(&enc),
        Err(ChunkError::UnsupportedEncoding(9))
    );
}

#[test]
fn non_monotonic_payload_is_reported() {
    // Sample 0 at t=5, then a first delta of zero.
    let mut p = vec![10u8];
    p.extend_from_slice(&1f64.to_bits().to_be_bytes());
    p.push(0);
    p.push(0);
    let got: Vec<_> = XorIter::new(&p, 2).collect();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[1],
        Err(ChunkError::NonMonotonic {
            previous: 5,
            next: 5
        })
    );
    assert!(XorChunk::from_payload(&p, 2).is_err());
}

#[test]
#[should_panic(expected = "encode_record")]
fn encoding_an_empty_chunk_is_a_programmer_error() {
    XorChunk::new().encode_record(&mut Vec::new());
}

#[test]
fn a_centisecond_counter_is_stored_decimal_and_smaller() {
    // node_cpu_seconds_total-like: hundredths of a second, irregular
    // increments. XOR pays for the binary expansion of every value.
    let mut v = 123_456.78f64;
    let s: Series = (0..CHUNK_SAMPLES_TARGET as i64)
        .map(|i| {
            v = ((v * 100.0).round() + (1_300 + (i * 37) % 400) as f64) / 100.0;
            (1_700_000_000_000 + i * 15_000, v)
        })
        .collect();
    let c = build(&s);
    let mut compact = Vec::new();
    c.encode_compact_record(&mut compact);
    let rec = ChunkRecord::decode(&compact).unwrap();
    assert_eq!(rec.encoding, ENCODING_DECIMAL);
    assert_eq!(decoded(rec.iter()), Ok(bits(&s)));
    let xor = record_of(&s);
    assert!(
        compact.len() * 2 < xor.len(),
        "decimal {} bytes, XOR {} bytes",
        compact.len(),
        xor.len()
    );
}

#[test]
fn a_gauge_moving_in_pages_is_stored_scaled_and_smaller() {
    // node_memory_*_bytes-like: a random walk in 4 KiB pages.
    let mut v = 6_442_450_944.0f64;
    let s: Series = (0..CHUNK_SAMPLES_TARGET as i64)
        .map(|i| {
            v += 4_096.0 * ((i * 7_919) % 61 - 30) as f64;
            (1_700_000_000_000 + i * 15_000, v)
        })
        .collect();
    let mut compact = Vec::new();
    build(&s).encode_compact_record(&mut compact);
    let rec = ChunkRecord::decode(&compact).unwrap();
    assert_eq!(rec.encoding, ENCODING_DECIMAL_SCALED);
    assert_eq!(decoded(rec.iter()), Ok(bits(&s)));
    let plain = encode_decimal(&samples_of(&s)).unwrap();
    // 12 bits fewer for each of 119 differences, less the divisor's 2 bytes.
    assert!(
        rec.payload.len() + 150 < plain.len(),
        "scaled {} bytes, plain decimal {} bytes",
        rec.payload.len(),
        plain.len()
    );
}

#[test]
fn a_scaled_payload_with_a_divisor_below_two_is_malformed() {
    let s = samples_of(&[(1_000, 4_096.0), (2_000, 8_192.0), (3_000, 0.0)]);
    let p = encode_scaled_decimal(&s).unwrap();
    // t0 = 1000 (2 bytes), k = 0, then the divisor 4096 as a 2-byte uvarint.
    assert_eq!(&p[2..5], &[0, 0x80, 0x20]);
    for g in [0u8, 1] {
        let mut bad = p.clone();
        bad.splice(3..5, [g]);
        let got: Vec<_> = ScaledDecimalIter::new(&bad, s.len()).collect();
        assert_eq!(
            got,
            vec![Err(ChunkError::Malformed("decimal scale outside 2..=2^54"))]
        );
    }
}

#[test]
fn a_stale_marker_keeps_a_chunk_xor() {
    let s: Series = vec![(1, 1.0), (2, 2.0), (3, f64::from_bits(STALE_NAN_BITS))];
    let mut compact = Vec::new();
    build(&s).encode_compact_record(&mut compact);
    let rec = ChunkRecord::decode(&compact).unwrap();
    assert_eq!(rec.encoding, ENCODING_XOR);
    assert_eq!(decoded(rec.iter()), Ok(bits(&s)));
}
