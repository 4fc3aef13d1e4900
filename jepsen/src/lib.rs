//! `raftwatch-jepsen`: real `raftwatch server` processes in network
//! namespaces, nemeses that kill, pause, partition and skew them, concurrent
//! clients that record every operation, and checkers over the history.
//!
//! The harness drives real processes in real time from outside the system
//! under test: the wall clock, real threads and tokio's spawn are what it is
//! for (the simulator never runs it), so the workspace's determinism lint is
//! lifted for this crate.
#![allow(clippy::disallowed_methods)]

pub mod checkers;
pub mod cluster;
pub mod history;
pub mod models;
pub mod nemesis;
pub mod net;
pub mod nsrt;
pub mod plot;
pub mod receiver;
pub mod runner;
pub mod wgl;
pub mod workloads;
