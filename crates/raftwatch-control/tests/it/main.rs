//! Tests of the control-plane state: a model-based proptest of
//! `ControlState::apply` against a dumb reference with invariant checks
//! after every command, determinism through `ControlStateMachine`, drain and
//! rebalance scenarios, refusals, leader hints, the placement planner and
//! the command codec.
//!
//! The proptests use proptest's defaults (256 cases, a fresh random seed per
//! run). A failure prints the minimal failing command sequence and persists
//! its seed under `tests/proptest-regressions/<module>.txt` (replayed first
//! on every later run; commit the file to pin the regression). To replay a
//! whole run set `PROPTEST_RNG_SEED=<u64>`; to search harder set
//! `PROPTEST_CASES`, e.g. `PROPTEST_CASES=10000 cargo test -p
//! raftwatch-control --test it model`.

mod alerting;
mod codec;
mod determinism;
mod drain;
mod hints;
mod model;
mod placement;
mod rebalance;
mod refusals;
mod settings;
mod support;
