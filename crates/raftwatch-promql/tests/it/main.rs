//! raftwatch-promql integration tests.

mod conformance;
