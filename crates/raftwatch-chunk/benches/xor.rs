//! Encode and decode throughput of 120-sample XOR chunks (the size callers
//! cut at) for three value shapes, and of the decimal payload for the shapes
//! where it is smaller. Throughput is in samples, so criterion's
//! "elem/s" inverts to ns/sample.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use raftwatch_chunk::{CHUNK_SAMPLES_TARGET, DecimalIter, XorChunk, XorIter, encode_decimal};
use raftwatch_model::Sample;

/// `series` returns 120 samples at a jittered 15 s interval.
fn series(shape: &str) -> Vec<(i64, f64)> {
    // A fixed-seed xorshift: benchmarks must be reproducible, and this
    // crate has no RNG dependency.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut t = 1_700_000_000_000i64;
    let mut v = 100.0f64;
    (0..CHUNK_SAMPLES_TARGET)
        .map(|_| {
            let r = next();
            t += 15_000 + (r % 21) as i64 - 10;
            match shape {
                "constant" => {}
                "counter" => v += (r >> 8) as f64 % 1_000.0,
                _ => v += ((r >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 2.0,
            }
            (t, v)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    for shape in ["constant", "counter", "gauge"] {
        let s = series(shape);
        let mut g = c.benchmark_group(format!("xor/{shape}"));
        g.throughput(Throughput::Elements(s.len() as u64));
        g.bench_function("encode", |b| {
            b.iter(|| {
                let mut chunk = XorChunk::new();
                for &(t, v) in black_box(&s) {
                    chunk.append(t, v);
                }
                chunk
            })
        });
        let mut chunk = XorChunk::new();
        for &(t, v) in &s {
            chunk.append(t, v);
        }
        let payload = chunk.payload().to_vec();
        g.bench_function("decode", |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for sample in XorIter::new(black_box(&payload), s.len()) {
                    match sample {
                        Ok(sample) => sum += sample.value + sample.timestamp.0 as f64,
                        Err(e) => panic!("{e}"),
                    }
                }
                sum
            })
        });
        // What the engine's reads use: the whole chunk into a reused buffer.
        let mut out = Vec::with_capacity(s.len());
        g.bench_function("decode_append", |b| {
            b.iter(|| {
                out.clear();
                if let Err(e) = XorIter::new(black_box(&payload), s.len()).append_to(&mut out) {
                    panic!("{e}");
                }
                out.len()
            })
        });
        // The decimal payload of the same samples, where every value is a
        // decimal (the integer counter and the constant).
        let samples: Vec<Sample> = s.iter().map(|&(t, v)| Sample::new(t, v)).collect();
        if let Some(decimal) = encode_decimal(&samples).filter(|p| p.len() < payload.len()) {
            g.bench_function("decimal_encode", |b| {
                b.iter(|| encode_decimal(black_box(&samples)))
            });
            g.bench_function("decimal_decode", |b| {
                b.iter(|| {
                    let mut sum = 0.0;
                    for sample in DecimalIter::new(black_box(&decimal), s.len()) {
                        match sample {
                            Ok(sample) => sum += sample.value + sample.timestamp.0 as f64,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    sum
                })
            });
            g.bench_function("decimal_decode_append", |b| {
                b.iter(|| {
                    out.clear();
                    if let Err(e) =
                        DecimalIter::new(black_box(&decimal), s.len()).append_to(&mut out)
                    {
                        panic!("{e}");
                    }
                    out.len()
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
