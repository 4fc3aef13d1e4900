//! Integration tests of the `raftwatch` process shell: configuration,
//! `raftwatch dev`'s planning and readiness rules, and the binary's exit
//! codes. None of them needs a working node.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod config;
mod dev;
mod process;
