//! Workspace-level integration tests.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod dependency_rules;
