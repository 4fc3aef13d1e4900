//! A Wing–Gong–Lowe (WGL) linearizability checker, in the style of Knossos
//! and Porcupine.
//!
//! The caller partitions a history by key and calls [`check`] once per key
//! with a [`Model`] of one object (see [`crate::models`]).
//!
//! # Conventions
//!
//! * **Real-time order is strict.** Operation `a` precedes operation `b` (so
//!   `a` must take effect before `b`) only if `a.ret < b.call`. An operation
//!   that returned at `t` and one called at the same `t` are *concurrent*:
//!   either may take effect first. (In the event list, calls sort before
//!   returns at equal timestamps.) This never reports a violation that only
//!   exists because two clock readings happened to be equal.
//! * **Info operations are optional.** An operation with `ret = None` never
//!   returned (timeout, crash): it may take effect at any point after its
//!   `call`, or never. The search succeeds as soon as every operation that
//!   *did* return has been linearized; info operations still pending then are
//!   taken never to have happened. Models therefore do not need to offer a
//!   "no effect" successor for info operations; if they do, the checker
//!   ignores it (a successor equal to the current state is the same as not
//!   linearizing the operation yet, which keeps strictly more options open).
//! * An operation whose `ret` is earlier than its `call` is malformed; its
//!   return is clamped to its call time.
//!
//! # Algorithm
//!
//! Lowe's variant of the Wing–Gong search: the calls and returns sit in a
//! doubly-linked list sorted by time. Scanning from the head, a call entry is
//! an operation that may be linearized next; linearizing it applies the model
//! and lifts its call and return entries out of the list, then the scan
//! restarts at the head. Reaching a return entry means that operation's
//! deadline passed without it being linearized: backtrack. Every
//! (set of linearized operations, model state) configuration reached is
//! memoised, so no configuration is explored twice; `budget` caps how many are
//! explored.

use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A budget that comfortably covers per-key histories of a few thousand
/// operations with a handful of concurrent clients, while bounding memory
/// (each explored configuration stores one bit per operation).
pub const DEFAULT_BUDGET: u64 = 1_000_000;

/// A sequential specification of one object.
pub trait Model {
    /// The object's state. Keep it small: it is cloned and hashed for every
    /// configuration the search explores.
    type State: Clone + Eq + Hash + fmt::Debug;
    /// What an operation asked for.
    type Input: fmt::Debug;
    /// What an operation returned.
    type Output: fmt::Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The possible states after the operation `input` takes effect in
    /// `state`, given that it returned `output`. An empty result means the
    /// operation cannot take effect here with that output.
    ///
    /// `output = None` is an info operation (it never returned): return the
    /// states it could leave if it took effect at this point. Whether it took
    /// effect at all is the checker's business (see the module docs), so a
    /// "no effect" successor is unnecessary, though harmless.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Vec<Self::State>;
}

/// One operation of a single-key history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The caller's identifier for this operation (e.g. its history line);
    /// reported back in a [`Witness`].
    pub id: usize,
    /// When the operation was invoked.
    pub call: u64,
    /// When it returned, or `None` for an info operation that never returned
    /// (its return is treated as +infinity, and it may never take effect).
    pub ret: Option<u64>,
    /// What the operation asked for.
    pub input: I,
    /// What it returned; `None` exactly when `ret` is `None`.
    pub output: Option<O>,
}

impl<I, O> Operation<I, O> {
    /// An operation that returned `output` at `ret`.
    pub fn ok(id: usize, call: u64, ret: u64, input: I, output: O) -> Self {
        Self {
            id,
            call,
            ret: Some(ret),
            input,
            output: Some(output),
        }
    }

    /// An info operation: invoked at `call`, never returned.
    pub fn info(id: usize, call: u64, input: I) -> Self {
        Self {
            id,
            call,
            ret: None,
            input,
            output: None,
        }
    }
}

/// The outcome of [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Some order of the operations respects real time and the model.
    Linearizable,
    /// No such order exists.
    NotLinearizable(Witness),
    /// The search gave up after exploring `explored` configurations.
    Unknown {
        /// How many configurations were explored (equals the budget).
        explored: u64,
    },
}

impl Verdict {
    /// Whether the verdict is [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

/// Evidence for [`Verdict::NotLinearizable`]: the deepest point the search
/// reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// The longest linearized prefix found: operation ids in linearization
    /// order.
    pub linearized: Vec<usize>,
    /// The operations (ids, in call order) that could be linearized next
    /// after that prefix and were not legal in `state`. It includes the
    /// operation whose return bounded the search (the first one still owing
    /// a linearization point). Info operations with no effect here may be
    /// listed too.
    pub pending: Vec<usize>,
    /// The model state after the prefix, as `Debug` text.
    pub state: String,
}

impl fmt::Display for Witness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no legal next operation among {:?} in state {} after linearizing {} operations",
            self.pending,
            self.state,
            self.linearized.len()
        )?;
        if let Some(last) = self.linearized.last() {
            write!(f, " (last: {last})")?;
        }
        Ok(())
    }
}

const NIL: usize = usize::MAX;

/// One entry of the time-ordered event list.
#[derive(Debug, Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
}

/// The event list as a doubly-linked list over a vector, with a sentinel
/// head at index `events.len()`.
#[derive(Debug)]
struct EventList {
    events: Vec<Event>,
    next: Vec<usize>,
    prev: Vec<usize>,
    call_node: Vec<usize>,
    ret_node: Vec<usize>,
}

impl EventList {
    fn new<I, O>(ops: &[Operation<I, O>]) -> Self {
        // (time, calls before returns, op index): see the module docs.
        let mut keyed: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            keyed.push((op.call, 0, i));
            if let Some(ret) = op.ret {
                keyed.push((ret.max(op.call), 1, i));
            }
        }
        keyed.sort_unstable();
        let m = keyed.len();
        let head = m;
        let mut events = Vec::with_capacity(m);
        let mut call_node = vec![NIL; ops.len()];
        let mut ret_node = vec![NIL; ops.len()];
        for (pos, &(_, kind, op)) in keyed.iter().enumerate() {
            let is_call = kind == 0;
            events.push(Event { op, is_call });
            if is_call {
                call_node[op] = pos;
            } else {
                ret_node[op] = pos;
            }
        }
        // Node `pos` follows `pos - 1` (the head for 0) and precedes
        // `pos + 1` (nothing for the last); the head precedes node 0.
        let mut next: Vec<usize> = (1..=m).map(|n| if n == m { NIL } else { n }).collect();
        next.push(if m == 0 { NIL } else { 0 });
        let mut prev: Vec<usize> = (0..m).map(|p| if p == 0 { head } else { p - 1 }).collect();
        prev.push(NIL);
        Self {
            events,
            next,
            prev,
            call_node,
            ret_node,
        }
    }

    fn head(&self) -> usize {
        self.events.len()
    }

    fn first(&self) -> usize {
        self.next[self.head()]
    }

    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        if n != NIL {
            self.prev[n] = node;
        }
    }

    /// Removes an operation's entries (linearizing it).
    fn lift(&mut self, op: usize) {
        self.unlink(self.call_node[op]);
        if self.ret_node[op] != NIL {
            self.unlink(self.ret_node[op]);
        }
    }

    /// Undoes [`EventList::lift`]; lifts and unlifts nest like a stack.
    fn unlift(&mut self, op: usize) {
        if self.ret_node[op] != NIL {
            self.relink(self.ret_node[op]);
        }
        self.relink(self.call_node[op]);
    }
}

/// A memoised configuration. Hashing uses the incrementally maintained
/// Zobrist hash of the bitset; equality compares the bitset itself, so hash
/// collisions cost time, never soundness.
#[derive(Debug)]
struct Config<S> {
    bits_hash: u64,
    bits: Box<[u64]>,
    state: S,
}

impl<S: Hash> Hash for Config<S> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.bits_hash);
        self.state.hash(h);
    }
}

impl<S: Eq> PartialEq for Config<S> {
    fn eq(&self, other: &Self) -> bool {
        self.bits_hash == other.bits_hash && self.bits == other.bits && self.state == other.state
    }
}

impl<S: Eq> Eq for Config<S> {}

/// A linearized operation on the backtracking stack.
#[derive(Debug)]
struct Frame<S> {
    op: usize,
    /// The state before the operation took effect.
    before: S,
    /// Successors not tried yet (tried from the back).
    untried: Vec<S>,
}

fn zobrist(op: usize) -> u64 {
    // splitmix64 of the index: distinct, well-mixed per-operation keys.
    let mut z = (op as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The mutable search state shared by the forward and backtracking steps.
struct Search<'a, M: Model> {
    model: &'a M,
    ops: &'a [Operation<M::Input, M::Output>],
    list: EventList,
    bits: Vec<u64>,
    bits_hash: u64,
    state: M::State,
    memo: HashSet<Config<M::State>>,
    explored: u64,
    budget: u64,
    stack: Vec<Frame<M::State>>,
    /// Operations that returned and are not linearized yet.
    owed: usize,
    best_prefix: Vec<usize>,
    best_state: M::State,
}

/// The budget ran out.
struct OutOfBudget;

impl<M: Model> Search<'_, M> {
    fn toggle(&mut self, op: usize) {
        self.bits[op / 64] ^= 1 << (op % 64);
        self.bits_hash ^= zobrist(op);
    }

    /// With `op`'s bit already set, takes the first successor in `untried`
    /// (from the back) whose configuration is new. `Ok(None)` when every
    /// successor was seen before.
    fn take_new(&mut self, untried: &mut Vec<M::State>) -> Result<Option<M::State>, OutOfBudget> {
        while let Some(s) = untried.pop() {
            let config = Config {
                bits_hash: self.bits_hash,
                bits: self.bits.clone().into_boxed_slice(),
                state: s.clone(),
            };
            if self.memo.contains(&config) {
                continue;
            }
            if self.explored >= self.budget {
                return Err(OutOfBudget);
            }
            self.explored += 1;
            self.memo.insert(config);
            return Ok(Some(s));
        }
        Ok(None)
    }

    /// Makes `op` (bit set, entries in the list) linearized with state `s`.
    fn enter(&mut self, op: usize, s: M::State, untried: Vec<M::State>) {
        let before = std::mem::replace(&mut self.state, s);
        self.stack.push(Frame {
            op,
            before,
            untried,
        });
        self.list.lift(op);
        if self.ops[op].ret.is_some() {
            self.owed -= 1;
        }
        if self.stack.len() > self.best_prefix.len() {
            self.best_prefix = self.stack.iter().map(|f| f.op).collect();
            self.best_state = self.state.clone();
        }
    }

    /// Tries to linearize the operation whose call entry is `node`. Returns
    /// the node to continue scanning from.
    fn forward(&mut self, node: usize, op: usize) -> Result<usize, OutOfBudget> {
        let o = &self.ops[op];
        let mut succ = self.model.step(&self.state, &o.input, o.output.as_ref());
        if o.ret.is_none() {
            let current = &self.state;
            succ.retain(|s| s != current);
        }
        if succ.is_empty() {
            return Ok(self.list.next[node]);
        }
        succ.reverse();
        self.toggle(op);
        match self.take_new(&mut succ)? {
            Some(s) => {
                self.enter(op, s, succ);
                Ok(self.list.first())
            }
            None => {
                self.toggle(op);
                Ok(self.list.next[node])
            }
        }
    }

    /// Undoes linearizations until one has an untried successor, or the
    /// stack is empty (`Ok(None)`: not linearizable). Returns the node to
    /// continue scanning from.
    fn backtrack(&mut self) -> Result<Option<usize>, OutOfBudget> {
        while let Some(frame) = self.stack.pop() {
            let Frame {
                op,
                before,
                mut untried,
            } = frame;
            self.list.unlift(op);
            if self.ops[op].ret.is_some() {
                self.owed += 1;
            }
            self.state = before;
            // The bit for `op` is still set here.
            if let Some(s) = self.take_new(&mut untried)? {
                self.enter(op, s, untried);
                return Ok(Some(self.list.first()));
            }
            self.toggle(op);
            let next = self.list.next[self.list.call_node[op]];
            if next != NIL && self.list.events[next].is_call {
                return Ok(Some(next));
            }
            // The next entry is a return (or nothing): this level is a dead
            // end too, keep unwinding.
        }
        Ok(None)
    }

    fn run(&mut self) -> Result<bool, OutOfBudget> {
        let mut node = self.list.first();
        loop {
            if self.owed == 0 {
                return Ok(true);
            }
            let event = if node == NIL {
                None
            } else {
                Some(self.list.events[node])
            };
            node = match event {
                Some(Event { op, is_call: true }) => self.forward(node, op)?,
                // A return entry (or the end of the list, which cannot be
                // reached while an operation is owed): dead end.
                _ => match self.backtrack()? {
                    Some(next) => next,
                    None => return Ok(false),
                },
            };
        }
    }

    fn witness(&self) -> Witness {
        let mut done = vec![false; self.ops.len()];
        for &op in &self.best_prefix {
            done[op] = true;
        }
        let mut pending = Vec::new();
        for event in &self.list.events {
            if done[event.op] {
                continue;
            }
            if event.is_call {
                pending.push(self.ops[event.op].id);
            } else {
                break;
            }
        }
        Witness {
            linearized: self.best_prefix.iter().map(|&op| self.ops[op].id).collect(),
            pending,
            state: format!("{:?}", self.best_state),
        }
    }
}

/// Checks whether the single-object history `ops` (any order) is
/// linearizable with respect to `model`, exploring at most `budget`
/// configurations (see [`DEFAULT_BUDGET`]). See the module docs for the
/// real-time and info-operation conventions.
pub fn check<M: Model>(model: &M, ops: &[Operation<M::Input, M::Output>], budget: u64) -> Verdict {
    check_explored(model, ops, budget).0
}

/// [`check`], also returning how many configurations the search explored
/// (the margin left under `budget`).
pub fn check_explored<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    budget: u64,
) -> (Verdict, u64) {
    let init = model.init();
    let mut search = Search {
        model,
        ops,
        list: EventList::new(ops),
        bits: vec![0; ops.len().div_ceil(64)],
        bits_hash: 0,
        state: init.clone(),
        memo: HashSet::new(),
        explored: 0,
        budget,
        stack: Vec::new(),
        owed: ops.iter().filter(|o| o.ret.is_some()).count(),
        best_prefix: Vec::new(),
        best_state: init,
    };
    let verdict = match search.run() {
        Ok(true) => Verdict::Linearizable,
        Ok(false) => Verdict::NotLinearizable(search.witness()),
        Err(OutOfBudget) => Verdict::Unknown {
            explored: search.explored,
        },
    };
    (verdict, search.explored)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::models::{
        AppendSeries, CasRegister, RegisterInput as In, RegisterOutput as Out, SeriesInput,
        SeriesOutput,
    };

    type RegOp = Operation<In, Out>;

    fn ok(id: usize, call: u64, ret: u64, input: In, output: Out) -> RegOp {
        Operation::ok(id, call, ret, input, output)
    }

    fn info(id: usize, call: u64, input: In) -> RegOp {
        Operation::info(id, call, input)
    }

    fn reg(ops: &[RegOp]) -> Verdict {
        check(&CasRegister, ops, DEFAULT_BUDGET)
    }

    fn witness(v: Verdict) -> Witness {
        match v {
            Verdict::NotLinearizable(w) => w,
            other => panic!("expected NotLinearizable, got {other:?}"),
        }
    }

    #[test]
    fn empty_history_is_linearizable_even_with_no_budget() {
        assert_eq!(check(&CasRegister, &[], 0), Verdict::Linearizable);
    }

    #[test]
    fn sequential_ok_history_is_linearizable() {
        let ops = [
            ok(0, 0, 1, In::Read, Out::ReadOk(0)),
            ok(1, 2, 3, In::Write(1), Out::WriteOk),
            ok(2, 4, 5, In::Read, Out::ReadOk(1)),
            ok(
                3,
                6,
                7,
                In::Cas {
                    expected: 1,
                    new: 2,
                },
                Out::CasOk,
            ),
            ok(
                4,
                8,
                9,
                In::Cas {
                    expected: 1,
                    new: 3,
                },
                Out::CasFailed,
            ),
            ok(5, 10, 11, In::Read, Out::ReadOk(2)),
            ok(6, 12, 13, In::Write(0), Out::WriteOk),
            ok(7, 14, 15, In::Read, Out::ReadOk(0)),
        ];
        assert_eq!(reg(&ops), Verdict::Linearizable);
    }

    #[test]
    fn input_order_does_not_matter() {
        let ops = [
            ok(2, 4, 5, In::Read, Out::ReadOk(1)),
            ok(0, 0, 1, In::Write(1), Out::WriteOk),
            ok(1, 2, 3, In::Read, Out::ReadOk(1)),
        ];
        assert_eq!(reg(&ops), Verdict::Linearizable);
        let bad = [
            ok(2, 4, 5, In::Read, Out::ReadOk(0)),
            ok(0, 0, 1, In::Write(1), Out::WriteOk),
        ];
        let w = witness(reg(&bad));
        assert_eq!(w.linearized, vec![0]);
        assert_eq!(w.pending, vec![2]);
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        // The read overlaps the write, so it may see the old or new value.
        for seen in [0, 1] {
            let ops = [
                ok(0, 0, 10, In::Write(1), Out::WriteOk),
                ok(1, 2, 4, In::Read, Out::ReadOk(seen)),
            ];
            assert_eq!(reg(&ops), Verdict::Linearizable, "read saw {seen}");
        }
        // But two sequential reads inside the write cannot see new then old.
        let ops = [
            ok(0, 0, 10, In::Write(1), Out::WriteOk),
            ok(1, 2, 4, In::Read, Out::ReadOk(1)),
            ok(2, 5, 7, In::Read, Out::ReadOk(0)),
        ];
        let w = witness(reg(&ops));
        assert_eq!(w.linearized, vec![0, 1]);
        assert_eq!(w.pending, vec![2]);
        assert_eq!(w.state, "1");
    }

    #[test]
    fn read_of_a_write_that_started_after_it_returned() {
        let ops = [
            ok(0, 0, 1, In::Read, Out::ReadOk(1)),
            ok(1, 2, 3, In::Write(1), Out::WriteOk),
        ];
        let w = witness(reg(&ops));
        assert_eq!(w.linearized, Vec::<usize>::new());
        assert_eq!(w.pending, vec![0]);
        assert_eq!(w.state, "0");
    }

    #[test]
    fn stale_read_after_a_completed_write() {
        let ops = [
            ok(0, 0, 1, In::Write(1), Out::WriteOk),
            ok(1, 2, 3, In::Write(2), Out::WriteOk),
            ok(2, 4, 5, In::Read, Out::ReadOk(1)),
        ];
        let w = witness(reg(&ops));
        assert_eq!(w.linearized, vec![0, 1]);
        assert_eq!(w.pending, vec![2]);
        assert_eq!(w.state, "2");
    }

    #[test]
    fn lost_acknowledged_write() {
        // Register: an acknowledged write vanishes.
        let ops = [
            ok(0, 0, 1, In::Write(1), Out::WriteOk),
            ok(1, 2, 3, In::Read, Out::ReadOk(0)),
        ];
        assert!(matches!(reg(&ops), Verdict::NotLinearizable(_)));

        // Series: the read is missing the first acknowledged sample.
        let s = |ts: i64| (ts, (ts as f64).to_bits());
        let write = |id, call, ts: i64| {
            Operation::ok(
                id,
                call,
                call + 1,
                SeriesInput::Write {
                    ts,
                    value_bits: s(ts).1,
                },
                SeriesOutput::WriteOk,
            )
        };
        let read = |id, call, samples: &[(i64, u64)]| {
            Operation::ok(
                id,
                call,
                call + 1,
                SeriesInput::Read,
                AppendSeries::read_output(samples),
            )
        };
        let good = [
            write(0, 0, 10),
            write(1, 2, 20),
            read(2, 4, &[s(10), s(20)]),
        ];
        assert_eq!(
            check(&AppendSeries, &good, DEFAULT_BUDGET),
            Verdict::Linearizable
        );
        let lost = [write(0, 0, 10), write(1, 2, 20), read(2, 4, &[s(20)])];
        let w = witness(check(&AppendSeries, &lost, DEFAULT_BUDGET));
        assert_eq!(w.linearized, vec![0, 1]);
        assert_eq!(w.pending, vec![2]);
        assert!(w.state.starts_with("series(len=2"), "{}", w.state);
    }

    #[test]
    fn two_concurrent_cas_cannot_both_succeed_from_the_same_value() {
        let both = [
            ok(0, 0, 1, In::Write(1), Out::WriteOk),
            ok(
                1,
                2,
                10,
                In::Cas {
                    expected: 1,
                    new: 2,
                },
                Out::CasOk,
            ),
            ok(
                2,
                3,
                9,
                In::Cas {
                    expected: 1,
                    new: 3,
                },
                Out::CasOk,
            ),
        ];
        let w = witness(reg(&both));
        // The first CAS in call order is linearized; the other is stuck.
        assert_eq!(w.linearized, vec![0, 1]);
        assert_eq!(w.pending, vec![2]);
        assert_eq!(w.state, "2");

        let one_fails = [
            ok(0, 0, 1, In::Write(1), Out::WriteOk),
            ok(
                1,
                2,
                10,
                In::Cas {
                    expected: 1,
                    new: 2,
                },
                Out::CasOk,
            ),
            ok(
                2,
                3,
                9,
                In::Cas {
                    expected: 1,
                    new: 3,
                },
                Out::CasFailed,
            ),
            ok(3, 11, 12, In::Read, Out::ReadOk(2)),
        ];
        assert_eq!(reg(&one_fails), Verdict::Linearizable);
    }

    #[test]
    fn equal_timestamps_are_concurrent_strictly_earlier_ones_are_not() {
        // The read was called at the instant the write returned: concurrent.
        let tie = [
            ok(0, 0, 5, In::Write(1), Out::WriteOk),
            ok(1, 5, 6, In::Read, Out::ReadOk(0)),
        ];
        assert_eq!(reg(&tie), Verdict::Linearizable);
        // One tick later the write strictly precedes the read.
        let after = [
            ok(0, 0, 5, In::Write(1), Out::WriteOk),
            ok(1, 6, 7, In::Read, Out::ReadOk(0)),
        ];
        assert!(matches!(reg(&after), Verdict::NotLinearizable(_)));
        // Instantaneous operations at the same time are concurrent as well.
        let instants = [
            ok(0, 3, 3, In::Read, Out::ReadOk(1)),
            ok(1, 3, 3, In::Write(1), Out::WriteOk),
        ];
        assert_eq!(reg(&instants), Verdict::Linearizable);
    }

    #[test]
    fn info_write_that_is_later_observed() {
        let ops = [
            ok(0, 0, 1, In::Write(1), Out::WriteOk),
            info(1, 2, In::Write(7)),
            ok(2, 3, 4, In::Read, Out::ReadOk(1)),
            ok(3, 50, 51, In::Read, Out::ReadOk(7)),
            ok(4, 52, 53, In::Read, Out::ReadOk(7)),
        ];
        assert_eq!(reg(&ops), Verdict::Linearizable);
    }

    #[test]
    fn info_write_that_is_never_observed() {
        let ops = [
            ok(0, 0, 1, In::Write(1), Out::WriteOk),
            info(1, 2, In::Write(7)),
            ok(2, 3, 4, In::Read, Out::ReadOk(1)),
            ok(3, 50, 51, In::Read, Out::ReadOk(1)),
        ];
        assert_eq!(reg(&ops), Verdict::Linearizable);
    }

    #[test]
    fn info_write_takes_effect_at_most_once_and_not_before_its_call() {
        // Seen, then overwritten, then seen again: it would need two effects.
        let twice = [
            info(0, 0, In::Write(7)),
            ok(1, 10, 11, In::Read, Out::ReadOk(7)),
            ok(2, 12, 13, In::Write(1), Out::WriteOk),
            ok(3, 14, 15, In::Read, Out::ReadOk(7)),
        ];
        assert!(matches!(reg(&twice), Verdict::NotLinearizable(_)));
        // Seen before it was invoked.
        let early = [
            ok(0, 0, 1, In::Read, Out::ReadOk(7)),
            info(1, 2, In::Write(7)),
        ];
        let w = witness(reg(&early));
        assert_eq!(w.pending, vec![0]);
    }

    #[test]
    fn info_cas() {
        let base = [
            ok(0, 0, 1, In::Write(1), Out::WriteOk),
            info(
                1,
                2,
                In::Cas {
                    expected: 1,
                    new: 5,
                },
            ),
        ];
        for (seen, expect_ok) in [(5, true), (1, true), (9, false)] {
            let mut ops = base.to_vec();
            ops.push(ok(2, 10, 11, In::Read, Out::ReadOk(seen)));
            assert_eq!(reg(&ops).is_linearizable(), expect_ok, "read saw {seen}");
        }
        // A CAS whose expectation never held cannot explain the value.
        let wrong = [
            ok(0, 0, 1, In::Write(2), Out::WriteOk),
            info(
                1,
                2,
                In::Cas {
                    expected: 1,
                    new: 5,
                },
            ),
            ok(2, 10, 11, In::Read, Out::ReadOk(5)),
        ];
        assert!(matches!(reg(&wrong), Verdict::NotLinearizable(_)));
        // It may take effect after a later operation made it applicable.
        let later = [
            info(
                0,
                0,
                In::Cas {
                    expected: 1,
                    new: 5,
                },
            ),
            ok(1, 2, 3, In::Write(1), Out::WriteOk),
            ok(2, 4, 5, In::Read, Out::ReadOk(1)),
            ok(3, 6, 7, In::Read, Out::ReadOk(5)),
        ];
        assert_eq!(reg(&later), Verdict::Linearizable);
    }

    #[test]
    fn info_reads_are_ignored() {
        let ops = [
            info(0, 0, In::Read),
            ok(1, 1, 2, In::Write(3), Out::WriteOk),
            info(2, 3, In::Read),
            ok(3, 4, 5, In::Read, Out::ReadOk(3)),
        ];
        assert_eq!(reg(&ops), Verdict::Linearizable);
    }

    #[test]
    fn exhausted_budget_is_unknown() {
        let ops = [
            ok(0, 0, 1, In::Write(1), Out::WriteOk),
            ok(1, 2, 3, In::Read, Out::ReadOk(1)),
            ok(2, 4, 5, In::Read, Out::ReadOk(1)),
        ];
        assert_eq!(
            check(&CasRegister, &ops, 2),
            Verdict::Unknown { explored: 2 }
        );
        assert_eq!(check(&CasRegister, &ops, 3), Verdict::Linearizable);
    }

    /// A nondeterministic model: `Flip` leaves 1 or 2; `See(v)` checks it.
    #[derive(Debug)]
    struct Coin;

    impl Model for Coin {
        type State = u8;
        type Input = Option<u8>;
        type Output = ();

        fn init(&self) -> u8 {
            0
        }

        fn step(&self, &state: &u8, input: &Option<u8>, _: Option<&()>) -> Vec<u8> {
            match *input {
                None => vec![1, 2],
                Some(v) if v == state => vec![state],
                Some(_) => Vec::new(),
            }
        }
    }

    #[test]
    fn every_successor_of_a_nondeterministic_step_is_tried() {
        for seen in [1, 2] {
            let ops = [
                Operation::ok(0, 0, 1, None, ()),
                Operation::ok(1, 2, 3, Some(seen), ()),
                Operation::ok(2, 4, 5, Some(seen), ()),
            ];
            assert_eq!(check(&Coin, &ops, DEFAULT_BUDGET), Verdict::Linearizable);
        }
        let ops = [
            Operation::ok(0, 0, 1, None, ()),
            Operation::ok(1, 2, 3, Some(1), ()),
            Operation::ok(2, 4, 5, Some(2), ()),
        ];
        let w = witness(check(&Coin, &ops, DEFAULT_BUDGET));
        assert_eq!(w.linearized, vec![0, 1]);
        assert_eq!(w.pending, vec![2]);
    }
}
