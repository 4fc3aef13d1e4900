//! Sequential models for the [`crate::wgl`] linearizability checker.
//!
//! * [`AppendSeries`]: one time series that a single writer appends to.
//! * [`CasRegister`]: a compare-and-set register.
//!
//! Both keep their state a few words long, since the checker clones and
//! hashes it for every configuration it explores. Info operations (output
//! `None`) are handled as the checker documents: `step` describes the effect
//! *if* the operation took effect at that point; "it never took effect" is
//! covered by the checker.

use std::fmt;

use crate::wgl::Model;

/// One step of the rolling hash over a series' `(ts, value_bits)` samples.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const EMPTY_HASH: u64 = 0x6A09_E667_F3BC_C908;

fn extend_hash(hash: u64, ts: i64, value_bits: u64) -> u64 {
    let sample = mix64((ts as u64) ^ mix64(value_bits.wrapping_add(0x9E37_79B9_7F4A_7C15)));
    mix64(hash.rotate_left(23) ^ sample)
}

/// A constant-size summary of a whole series: its length, last sample and a
/// 64-bit rolling hash of every `(ts, value_bits)` in order. Two series with
/// equal summaries are taken to be equal (a hash collision could hide a
/// difference; with 64 bits that is negligible for test histories).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesState {
    len: u64,
    last: Option<(i64, u64)>,
    hash: u64,
}

impl SeriesState {
    /// The empty series.
    pub const EMPTY: SeriesState = SeriesState {
        len: 0,
        last: None,
        hash: EMPTY_HASH,
    };

    /// Summarises a series given as `(ts, value_bits)` samples, oldest first.
    pub fn of(samples: &[(i64, u64)]) -> Self {
        samples
            .iter()
            .fold(Self::EMPTY, |s, &(ts, v)| s.appended(ts, v))
    }

    /// The series with one more sample (no ordering check).
    pub fn appended(&self, ts: i64, value_bits: u64) -> Self {
        SeriesState {
            len: self.len + 1,
            last: Some((ts, value_bits)),
            hash: extend_hash(self.hash, ts, value_bits),
        }
    }

    /// How many samples the series holds.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the series is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The newest sample, as `(ts, value_bits)`.
    pub fn last(&self) -> Option<(i64, u64)> {
        self.last
    }
}

impl Default for SeriesState {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl fmt::Debug for SeriesState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "series(len={}", self.len)?;
        if let Some((ts, bits)) = self.last {
            write!(
                f,
                ", last=(ts={ts}, value={} bits={bits:#018x})",
                f64::from_bits(bits)
            )?;
        }
        write!(f, ", hash={:#018x})", self.hash)
    }
}

/// An operation on an [`AppendSeries`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesInput {
    /// Append the sample `(ts, f64::from_bits(value_bits))`.
    Write {
        /// The sample's timestamp.
        ts: i64,
        /// The sample's value, as `f64::to_bits`.
        value_bits: u64,
    },
    /// Read the whole series.
    Read,
}

/// What an operation on an [`AppendSeries`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesOutput {
    /// The write was acknowledged.
    WriteOk,
    /// The series a read returned, summarised (see
    /// [`AppendSeries::read_output`]).
    Samples(SeriesState),
}

/// One time series that a single writer appends to with strictly increasing
/// timestamps, while readers read the whole series.
///
/// The database rejects (with no effect) a sample whose timestamp is not
/// after the newest one, except an exact duplicate of the newest sample (same
/// timestamp and value bits), which it accepts as a no-op. So:
///
/// * an acknowledged write either appended its sample or was an exact
///   duplicate of the newest sample at that point;
/// * an acknowledged read returned exactly the series at that point;
/// * an info write, if it took effect, appended its sample when that was
///   legal and otherwise changed nothing; an info read changes nothing.
///
/// Writes the database refused definitely had no effect: leave them out of
/// the history.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppendSeries;

impl AppendSeries {
    /// The output of a read that returned `samples` (`(ts, value_bits)`,
    /// oldest first), summarised so that checking it costs O(1).
    pub fn read_output(samples: &[(i64, u64)]) -> SeriesOutput {
        SeriesOutput::Samples(SeriesState::of(samples))
    }
}

impl Model for AppendSeries {
    type State = SeriesState;
    type Input = SeriesInput;
    type Output = SeriesOutput;

    fn init(&self) -> SeriesState {
        SeriesState::EMPTY
    }

    fn step(
        &self,
        state: &SeriesState,
        input: &SeriesInput,
        output: Option<&SeriesOutput>,
    ) -> Vec<SeriesState> {
        match (input, output) {
            (&SeriesInput::Write { ts, value_bits }, None | Some(SeriesOutput::WriteOk)) => {
                match state.last {
                    Some((last_ts, _)) if ts > last_ts => vec![state.appended(ts, value_bits)],
                    None => vec![state.appended(ts, value_bits)],
                    Some(last) if last == (ts, value_bits) => vec![*state],
                    // Rejected: impossible for an acknowledged write, no
                    // effect for an info one.
                    Some(_) if output.is_none() => vec![*state],
                    Some(_) => Vec::new(),
                }
            }
            (SeriesInput::Read, None) => vec![*state],
            (SeriesInput::Read, Some(SeriesOutput::Samples(seen))) if seen == state => {
                vec![*state]
            }
            _ => Vec::new(),
        }
    }
}

/// An operation on a [`CasRegister`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterInput {
    /// Read the value.
    Read,
    /// Set the value.
    Write(u64),
    /// Set the value to `new` if it is `expected`.
    Cas {
        /// The value the register must hold.
        expected: u64,
        /// The value to store.
        new: u64,
    },
}

/// What an operation on a [`CasRegister`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOutput {
    /// A read returned this value (0 = absent).
    ReadOk(u64),
    /// The write was acknowledged.
    WriteOk,
    /// The compare-and-set found `expected` and stored `new`.
    CasOk,
    /// A definite refusal: the value was not `expected`; nothing changed.
    CasFailed,
}

/// A register holding a `u64`, where 0 means absent (the initial state).
///
/// Info operations, if they took effect: a write stores its value, a
/// compare-and-set stores `new` if the value was `expected` and otherwise
/// changes nothing, a read changes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct CasRegister;

impl Model for CasRegister {
    type State = u64;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn init(&self) -> u64 {
        0
    }

    fn step(
        &self,
        &state: &u64,
        input: &RegisterInput,
        output: Option<&RegisterOutput>,
    ) -> Vec<u64> {
        match (*input, output) {
            (RegisterInput::Read, None) => vec![state],
            (RegisterInput::Read, Some(&RegisterOutput::ReadOk(v))) if v == state => vec![state],
            (RegisterInput::Write(v), None | Some(RegisterOutput::WriteOk)) => vec![v],
            (RegisterInput::Cas { expected, new }, None) => {
                vec![if state == expected { new } else { state }]
            }
            (RegisterInput::Cas { expected, new }, Some(RegisterOutput::CasOk))
                if state == expected =>
            {
                vec![new]
            }
            (RegisterInput::Cas { expected, .. }, Some(RegisterOutput::CasFailed))
                if state != expected =>
            {
                vec![state]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::wgl::{DEFAULT_BUDGET, Operation, Verdict, check};

    fn bits(v: f64) -> u64 {
        v.to_bits()
    }

    fn write(ts: i64, v: f64) -> SeriesInput {
        SeriesInput::Write {
            ts,
            value_bits: bits(v),
        }
    }

    #[test]
    fn series_summary_matches_incremental_appends_and_is_order_sensitive() {
        let a = [(1, bits(1.0)), (2, bits(2.0))];
        let b = [(2, bits(2.0)), (1, bits(1.0))];
        let c = [(1, bits(1.0)), (2, bits(2.5))];
        let inc = SeriesState::EMPTY
            .appended(1, bits(1.0))
            .appended(2, bits(2.0));
        assert_eq!(SeriesState::of(&a), inc);
        assert_ne!(SeriesState::of(&a), SeriesState::of(&b));
        assert_ne!(SeriesState::of(&a), SeriesState::of(&c));
        assert_ne!(SeriesState::of(&a[..1]), SeriesState::of(&a));
        assert_eq!(SeriesState::of(&[]), SeriesState::EMPTY);
        assert_eq!(inc.len(), 2);
        assert_eq!(inc.last(), Some((2, bits(2.0))));
    }

    #[test]
    fn series_step_rules() {
        let m = AppendSeries;
        let s1 = SeriesState::EMPTY.appended(10, bits(1.0));
        let ok = Some(&SeriesOutput::WriteOk);
        // Ok writes: newer ts appends, exact duplicate is a no-op, the rest
        // would have been rejected and cannot be acknowledged.
        assert_eq!(
            m.step(&s1, &write(11, 2.0), ok),
            vec![s1.appended(11, bits(2.0))]
        );
        assert_eq!(m.step(&s1, &write(10, 1.0), ok), vec![s1]);
        assert!(m.step(&s1, &write(10, 3.0), ok).is_empty());
        assert!(m.step(&s1, &write(9, 1.0), ok).is_empty());
        // Info writes: applied when legal, otherwise no effect.
        assert_eq!(
            m.step(&s1, &write(11, 2.0), None),
            vec![s1.appended(11, bits(2.0))]
        );
        assert_eq!(m.step(&s1, &write(9, 1.0), None), vec![s1]);
        // Reads.
        let seen = AppendSeries::read_output(&[(10, bits(1.0))]);
        assert_eq!(m.step(&s1, &SeriesInput::Read, Some(&seen)), vec![s1]);
        let empty = AppendSeries::read_output(&[]);
        assert!(m.step(&s1, &SeriesInput::Read, Some(&empty)).is_empty());
        assert_eq!(m.step(&s1, &SeriesInput::Read, None), vec![s1]);
        // Mismatched outputs are illegal.
        assert!(m.step(&s1, &write(11, 2.0), Some(&seen)).is_empty());
        assert!(
            m.step(&s1, &SeriesInput::Read, Some(&SeriesOutput::WriteOk))
                .is_empty()
        );
    }

    #[test]
    fn register_step_rules() {
        use RegisterInput as In;
        use RegisterOutput as Out;
        let m = CasRegister;
        let cas = In::Cas {
            expected: 1,
            new: 2,
        };
        assert_eq!(m.step(&1, &In::Read, Some(&Out::ReadOk(1))), vec![1]);
        assert!(m.step(&1, &In::Read, Some(&Out::ReadOk(0))).is_empty());
        assert_eq!(m.step(&1, &In::Write(5), Some(&Out::WriteOk)), vec![5]);
        assert_eq!(m.step(&1, &cas, Some(&Out::CasOk)), vec![2]);
        assert!(m.step(&3, &cas, Some(&Out::CasOk)).is_empty());
        assert_eq!(m.step(&3, &cas, Some(&Out::CasFailed)), vec![3]);
        assert!(m.step(&1, &cas, Some(&Out::CasFailed)).is_empty());
        assert_eq!(m.step(&1, &cas, None), vec![2]);
        assert_eq!(m.step(&3, &cas, None), vec![3]);
        assert_eq!(m.step(&3, &In::Write(5), None), vec![5]);
        assert!(m.step(&1, &In::Write(5), Some(&Out::CasOk)).is_empty());
    }

    /// One generated operation: what it is, whether it is an info op (and if
    /// so whether its effect happened), and how far its call and return lie
    /// from its linearization point.
    #[derive(Debug, Clone)]
    struct Gen {
        kind: u8,
        a: u64,
        b: u64,
        info: bool,
        happened: bool,
        before: u64,
        after: u64,
    }

    fn gen_op() -> impl Strategy<Value = Gen> {
        (
            0u8..4,
            1u64..5,
            0u64..5,
            prop::bool::weighted(0.15),
            any::<bool>(),
            0u64..35,
            0u64..35,
        )
            .prop_map(|(kind, a, b, info, happened, before, after)| Gen {
                kind,
                a,
                b,
                info,
                happened,
                before,
                after,
            })
    }

    /// Runs `gens` sequentially on a register, the i-th effect at time
    /// 100 + 10 i, each op's interval containing that point.
    fn register_history(gens: &[Gen]) -> Vec<Operation<RegisterInput, RegisterOutput>> {
        let mut state = 0u64;
        let mut ops = Vec::new();
        for (i, g) in gens.iter().enumerate() {
            let at = 100 + 10 * i as u64;
            let input = match g.kind {
                0 => RegisterInput::Read,
                1 => RegisterInput::Write(g.a),
                _ => RegisterInput::Cas {
                    expected: g.b,
                    new: g.a,
                },
            };
            let call = at - g.before;
            if g.info {
                if g.happened {
                    state = CasRegister.step(&state, &input, None)[0];
                }
                ops.push(Operation::info(i, call, input));
                continue;
            }
            let output = match input {
                RegisterInput::Read => RegisterOutput::ReadOk(state),
                RegisterInput::Write(v) => {
                    state = v;
                    RegisterOutput::WriteOk
                }
                RegisterInput::Cas { expected, new } if expected == state => {
                    state = new;
                    RegisterOutput::CasOk
                }
                RegisterInput::Cas { .. } => RegisterOutput::CasFailed,
            };
            ops.push(Operation::ok(i, call, at + g.after, input, output));
        }
        ops
    }

    /// The same for a series: kind 0 reads, 1 and 2 write a fresh sample,
    /// 3 rewrites the newest sample (an acknowledged no-op duplicate).
    fn series_history(gens: &[Gen]) -> Vec<Operation<SeriesInput, SeriesOutput>> {
        let mut series: Vec<(i64, u64)> = Vec::new();
        let mut next_ts = 0i64;
        let mut ops = Vec::new();
        for (i, g) in gens.iter().enumerate() {
            let at = 100 + 10 * i as u64;
            let call = at - g.before;
            let input = match (g.kind, series.last()) {
                (0, _) => SeriesInput::Read,
                (3, Some(&(ts, value_bits))) => SeriesInput::Write { ts, value_bits },
                _ => {
                    next_ts += g.a as i64;
                    SeriesInput::Write {
                        ts: next_ts,
                        value_bits: bits(g.b as f64),
                    }
                }
            };
            let appends = match input {
                SeriesInput::Write { ts, .. } => series.last().is_none_or(|&(last, _)| ts > last),
                SeriesInput::Read => false,
            };
            if g.info {
                if g.happened
                    && appends
                    && let SeriesInput::Write { ts, value_bits } = input
                {
                    series.push((ts, value_bits));
                }
                ops.push(Operation::info(i, call, input));
                continue;
            }
            let output = match input {
                SeriesInput::Read => AppendSeries::read_output(&series),
                SeriesInput::Write { ts, value_bits } => {
                    if appends {
                        series.push((ts, value_bits));
                    }
                    SeriesOutput::WriteOk
                }
            };
            ops.push(Operation::ok(i, call, at + g.after, input, output));
        }
        ops
    }

    /// Index of the `pick`-th (mod count) acknowledged read, if any.
    fn nth_ok_read<I, O>(
        ops: &[Operation<I, O>],
        is_read: impl Fn(&I) -> bool,
        pick: usize,
    ) -> Option<usize> {
        let reads: Vec<usize> = (0..ops.len())
            .filter(|&i| ops[i].ret.is_some() && is_read(&ops[i].input))
            .collect();
        (!reads.is_empty()).then(|| reads[pick % reads.len()])
    }

    proptest! {
        #[test]
        fn generated_register_histories_are_linearizable_until_a_read_lies(
            gens in prop::collection::vec(gen_op(), 1..60),
            pick in any::<usize>(),
            shuffle in any::<u64>(),
        ) {
            let mut ops = register_history(&gens);
            // The checker must not depend on the order of its input.
            let len = ops.len();
            ops.rotate_left((shuffle as usize) % len);
            prop_assert_eq!(check(&CasRegister, &ops, DEFAULT_BUDGET), Verdict::Linearizable);
            if let Some(i) = nth_ok_read(&ops, |inp| *inp == RegisterInput::Read, pick) {
                // No operation ever stores 1000.
                ops[i].output = Some(RegisterOutput::ReadOk(1000));
                let verdict = check(&CasRegister, &ops, DEFAULT_BUDGET);
                prop_assert!(matches!(verdict, Verdict::NotLinearizable(_)), "{:?}", verdict);
            }
        }

        #[test]
        fn generated_series_histories_are_linearizable_until_a_read_lies(
            gens in prop::collection::vec(gen_op(), 1..60),
            pick in any::<usize>(),
        ) {
            let mut ops = series_history(&gens);
            prop_assert_eq!(check(&AppendSeries, &ops, DEFAULT_BUDGET), Verdict::Linearizable);
            if let Some(i) = nth_ok_read(&ops, |inp| *inp == SeriesInput::Read, pick) {
                // A series no write could have produced: one extra sample.
                let Some(SeriesOutput::Samples(seen)) = ops[i].output else {
                    panic!("a read's output is Samples");
                };
                ops[i].output = Some(SeriesOutput::Samples(seen.appended(i64::MAX, 0xDEAD)));
                let verdict = check(&AppendSeries, &ops, DEFAULT_BUDGET);
                prop_assert!(matches!(verdict, Verdict::NotLinearizable(_)), "{:?}", verdict);
            }
        }
    }

    /// 2,000 operations on one series: one writer (some of its writes time
    /// out, of which some took effect) and three readers whose reads overlap
    /// each other and one to three writes.
    fn busy_series() -> Vec<Operation<SeriesInput, SeriesOutput>> {
        const WRITES: u64 = 500;
        let mut effects: Vec<(u64, usize)> = Vec::new(); // (time, write index)
        let mut samples: Vec<(i64, u64)> = Vec::new();
        let mut ops = Vec::new();
        for j in 0..WRITES {
            let call = 10 * j;
            let (ts, v) = (j as i64 * 1000, bits(j as f64 * 0.5));
            let input = SeriesInput::Write { ts, value_bits: v };
            let id = ops.len();
            if j % 97 == 13 {
                // Timed out; every other one still took effect.
                ops.push(Operation::info(id, call, input));
                if j % 2 == 1 {
                    effects.push((call + 3, samples.len()));
                    samples.push((ts, v));
                }
            } else {
                ops.push(Operation::ok(
                    id,
                    call,
                    call + 6,
                    input,
                    SeriesOutput::WriteOk,
                ));
                effects.push((call + 3, samples.len()));
                samples.push((ts, v));
            }
        }
        for r in 0..3u64 {
            for k in 0..WRITES {
                let call = 10 * k + 3 * r + 1;
                let ret = call + 9 + 2 * r;
                let at = call + (k * 7 + r) % (ret - call + 1);
                let seen = effects.iter().filter(|&&(t, _)| t <= at).count();
                let output = AppendSeries::read_output(&samples[..seen]);
                ops.push(Operation::ok(
                    ops.len(),
                    call,
                    ret,
                    SeriesInput::Read,
                    output,
                ));
            }
        }
        ops
    }

    #[test]
    fn two_thousand_op_series_history_checks_within_the_default_budget() {
        let mut ops = busy_series();
        assert_eq!(ops.len(), 2000);
        assert_eq!(
            check(&AppendSeries, &ops, DEFAULT_BUDGET),
            Verdict::Linearizable
        );

        // A late read that misses one early sample: a lost write.
        let last = ops.len() - 1;
        let Some(SeriesOutput::Samples(full)) = ops[last].output else {
            panic!("a read's output is Samples");
        };
        let mut lossy: Vec<(i64, u64)> = (0..500)
            .filter(|j| j % 97 != 13 || j % 2 == 1)
            .map(|j| (j as i64 * 1000, bits(j as f64 * 0.5)))
            .collect();
        assert_eq!(SeriesState::of(&lossy), full);
        lossy.remove(3);
        ops[last].output = Some(AppendSeries::read_output(&lossy));
        match check(&AppendSeries, &ops, DEFAULT_BUDGET) {
            Verdict::NotLinearizable(w) => {
                assert!(w.pending.contains(&last), "{w:?}");
                assert!(w.linearized.len() > 1500, "{}", w.linearized.len());
            }
            other => panic!("expected NotLinearizable, got {other:?}"),
        }
    }
}
