//! raftwatch-promql integration tests.

mod conformance;
mod robustness;
