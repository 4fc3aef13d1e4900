//! Workspace-level integration tests.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod alerting;
mod alerting_api;
mod client_routing;
mod cluster;
mod dependency_rules;
mod metrics;
mod prom_api;
mod query_api;
mod remote_write;
mod settings;
mod write_path;
