//! The Alertmanager configuration subset raftwatch implements: a route
//! tree (`receiver`, `group_by`, `group_wait`, `group_interval`,
//! `repeat_interval`, `matchers` / `match` / `match_re`, `continue`,
//! `routes`), receivers with `webhook_configs`, and `inhibit_rules`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::LabelSet;
use crate::matcher::Matcher;

/// `AlertmanagerConfig` is a parsed, validated configuration; every
/// route's inherited settings are resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertmanagerConfig {
    /// The root route.
    pub route: Route,
    /// Receivers by name (every route's receiver exists).
    pub receivers: Vec<Receiver>,
    /// Inhibition rules.
    pub inhibit_rules: Vec<InhibitRule>,
    /// The YAML as given (served by `/api/v2/status`).
    pub original: String,
}

/// `GroupBy` is a route's `group_by`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "labels", rename_all = "snake_case")]
pub enum GroupBy {
    /// `group_by: ['...']`: every label; each alert is its own group.
    All,
    /// These label names (sorted, unique).
    Labels(Vec<String>),
}

/// `Route` is one node of the route tree, its inherited settings resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// The position in the tree: `"0"` for the root, `"0.1.0"` for the
    /// first child of the root's second child. Part of every group key.
    pub id: String,
    /// The receiver's name.
    pub receiver: String,
    /// Grouping labels.
    pub group_by: GroupBy,
    /// `group_wait`, ms (default 30 s).
    pub group_wait_ms: i64,
    /// `group_interval`, ms (default 5 m).
    pub group_interval_ms: i64,
    /// `repeat_interval`, ms (default 4 h).
    pub repeat_interval_ms: i64,
    /// Every matcher must match (empty: matches all).
    pub matchers: Vec<Matcher>,
    /// `continue`: keep matching siblings after this route matched.
    pub continue_matching: bool,
    /// Child routes.
    pub routes: Vec<Route>,
}

/// `Receiver` is a named notification target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receiver {
    /// The name.
    pub name: String,
    /// Its webhooks.
    pub webhook_configs: Vec<WebhookConfig>,
}

/// `WebhookConfig` is one `webhook_configs` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookConfig {
    /// `http://host:port/path` (https is refused: no TLS client here).
    pub url: String,
    /// `send_resolved` (default true).
    pub send_resolved: bool,
    /// `max_alerts` (0 = all).
    pub max_alerts: u64,
}

/// `InhibitRule` mutes target alerts while a matching source alert fires
/// with equal values of the `equal` labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InhibitRule {
    /// Source matchers.
    pub source_matchers: Vec<Matcher>,
    /// Target matchers.
    pub target_matchers: Vec<Matcher>,
    /// Labels that must be equal.
    pub equal: Vec<String>,
}

/// `ConfigError` is why a configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("alertmanager config: {0}")]
pub struct ConfigError(pub String);

/// `RouteMatch` is a route an alert matched, and the alert's group there.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteMatch<'a> {
    /// The route.
    pub route: &'a Route,
    /// The alert's values of the route's `group_by` labels.
    pub group_labels: LabelSet,
    /// Alertmanager's group key, `{<route matchers path>}:{group labels}`,
    /// made unique per route by the route id.
    pub group_key: String,
}
