//! `raftwatch-alerting`: the pure half of alerting.
//!
//! - [`rules`]: Prometheus rule files, parsed and validated as
//!   `promtool check rules` does, into [`rules::RuleGroup`]s.
//! - [`template`]: the Go `text/template` subset Prometheus uses for alert
//!   labels and annotations (`$labels`, `$value`, `humanize`, ...).
//! - [`matcher`]: Alertmanager label matchers (`=`, `!=`, `=~`, `!~`), as
//!   silences, routes and inhibition rules use them.
//! - [`amconfig`]: the Alertmanager configuration subset (route tree,
//!   webhook receivers, inhibition rules) and route matching.
//! - [`webhook`]: fingerprints, RFC 3339 times and the webhook payload
//!   (Alertmanager's version 4, plus `idempotencyKey`).
//!
//! Nothing here reads a clock, draws a random number or performs I/O:
//! the control-plane state machine calls it from inside apply.

pub mod amconfig;
pub mod matcher;
pub mod rules;
pub mod template;
pub mod webhook;

/// `LabelSet` is a sorted label set (name → value), the shape alerts and
/// templates use.
pub type LabelSet = std::collections::BTreeMap<String, String>;
