//! raftwatch-wal integration tests: one binary (STYLE.md).
#![allow(clippy::unwrap_used)]

mod common;
mod corruption;
mod crash;
mod gc;
mod group_commit;
mod preallocation;
mod roundtrip;
