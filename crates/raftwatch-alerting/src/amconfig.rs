//! The Alertmanager configuration subset raftwatch implements: a route
//! tree (`receiver`, `group_by`, `group_wait`, `group_interval`,
//! `repeat_interval`, `matchers` / `match` / `match_re`, `continue`,
//! `routes`), receivers with `webhook_configs`, and `inhibit_rules`.
//!
//! Where it departs from Alertmanager, it refuses the configuration with
//! an error saying so, rather than ignoring a setting the operator relies
//! on:
//!
//! - receivers have webhooks only, plain `http://` ones, with `url`,
//!   `send_resolved` and `max_alerts` (an empty `http_config` is allowed);
//!   other integrations, `url_file`, `timeout` and `payload` are refused;
//! - `templates`, time intervals and route or receiver `labels` are
//!   refused;
//! - YAML merge keys (`<<:`), which Go's yaml.v2 applies, are not, and
//!   fail as unknown keys;
//! - trees are limited ([`MAX_ROUTE_DEPTH`], [`MAX_ROUTES`]), as are the
//!   text ([`MAX_CONFIG_BYTES`]) and its alias expansion
//!   ([`MAX_YAML_NODES`]).
//!
//! Accepted and ignored: the whole `global` section and an inhibition
//! rule's `name`.
//!
//! Routing ([`AlertmanagerConfig::route_alert`]), group keys and inhibition
//! ([`inhibited`]) follow Alertmanager exactly.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::de::{self, DeserializeSeed, Visitor};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::LabelSet;
use crate::matcher::{MatchOp, Matcher, MatcherError, parse_matchers};

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
    /// Alertmanager's group key, exactly in its format:
    /// `<route key>:<group labels>`, where the route key is the path of
    /// matcher sets from the root (`{}` for the root,
    /// `{}/{severity="page"}` for a child) and the group labels are Go's
    /// `LabelSet.String()` (`{alertname="X", job="api"}`). Two sibling
    /// routes with the same matchers share a route key in Alertmanager and
    /// here alike; key aggregation groups by `(route.id, group_key)` to
    /// keep them apart.
    pub group_key: String,
}

/// `MAX_CONFIG_BYTES` is the largest configuration [`parse_config`]
/// accepts, in bytes (1 MiB).
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

/// `MAX_ROUTE_DEPTH` is the deepest route tree accepted, counting the root
/// as depth 1.
///
/// The YAML parser refuses documents nested deeper than 128 levels, and a
/// route at depth `d` with a `matchers` list sits at level `2d + 1`, so any
/// limit above 63 would never be reached and the operator would see the
/// parser's "recursion limit exceeded" instead of this limit's message.
pub const MAX_ROUTE_DEPTH: usize = 50;

/// `MAX_ROUTES` is the most routes a tree may hold, the root included.
pub const MAX_ROUTES: usize = 10_000;

/// `MAX_YAML_NODES` bounds the YAML nodes a configuration may expand to,
/// aliases expanded. Without it a 1 MiB document whose aliases refer to a
/// large anchor many times would expand to billions of nodes.
pub const MAX_YAML_NODES: usize = 1_000_000;

/// The nesting depth `serde_norway` allows; not configurable there.
const YAML_NESTING_LIMIT: usize = 128;

// A route at depth `d` with a `matchers` list needs nesting level `2d + 1`.
const _: () = assert!(2 * MAX_ROUTE_DEPTH < YAML_NESTING_LIMIT);
const _: () = assert!(MAX_ROUTES <= MAX_YAML_NODES);

/// `DEFAULT_GROUP_WAIT_MS` is the root route's default `group_wait` (30 s).
pub const DEFAULT_GROUP_WAIT_MS: i64 = 30_000;

/// `DEFAULT_GROUP_INTERVAL_MS` is the root route's default
/// `group_interval` (5 m).
pub const DEFAULT_GROUP_INTERVAL_MS: i64 = 5 * 60_000;

/// `DEFAULT_REPEAT_INTERVAL_MS` is the root route's default
/// `repeat_interval` (4 h).
pub const DEFAULT_REPEAT_INTERVAL_MS: i64 = 4 * 3_600_000;

/// `DEFAULT_RECEIVER` is the receiver of [`default_config`].
pub const DEFAULT_RECEIVER: &str = "default";

/// The YAML [`default_config`] is parsed from; kept as its `original`.
const DEFAULT_CONFIG_YAML: &str = "route:\n  receiver: default\nreceivers:\n  - name: default\n";

fn err(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

// ---------------------------------------------------------------------
// The YAML as written. Every struct denies unknown keys, so a typo is an
// error naming the key (with its path and line), not a silent default.
// Strings are read with `deserialize_str`, which hands over the scalar as
// written: `code: 500` is the string "500", and `1.10` stays "1.10", as
// Go's yaml.v2 gives Alertmanager.
// ---------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `route`, `receivers` and optionally `global`, `inhibit_rules`"
)]
struct RawConfig {
    /// Accepted and ignored: every global either configures an integration
    /// raftwatch lacks or (`resolve_timeout`) is the alert API's concern.
    #[serde(rename = "global")]
    _global: Option<BTreeMap<String, de::IgnoredAny>>,
    route: Option<RawRoute>,
    receivers: Option<Vec<RawReceiver>>,
    inhibit_rules: Option<Vec<RawInhibitRule>>,
    templates: Option<Vec<String>>,
    time_intervals: Option<Vec<de::IgnoredAny>>,
    mute_time_intervals: Option<Vec<de::IgnoredAny>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a route (a mapping)")]
struct RawRoute {
    receiver: Option<String>,
    group_by: Option<Vec<String>>,
    group_wait: Option<String>,
    group_interval: Option<String>,
    repeat_interval: Option<String>,
    matchers: Option<Vec<String>>,
    #[serde(rename = "match")]
    match_eq: Option<UniqueMap>,
    match_re: Option<UniqueMap>,
    #[serde(rename = "continue")]
    continue_matching: Option<bool>,
    routes: Option<Vec<RawRoute>>,
    mute_time_intervals: Option<Vec<de::IgnoredAny>>,
    active_time_intervals: Option<Vec<de::IgnoredAny>>,
    labels: Option<BTreeMap<String, de::IgnoredAny>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a receiver (a mapping)")]
struct RawReceiver {
    name: Option<String>,
    webhook_configs: Option<Vec<RawWebhook>>,
    labels: Option<BTreeMap<String, de::IgnoredAny>>,
    // Alertmanager's other integrations, listed so that the error can say
    // "not supported" rather than "unknown field".
    discord_configs: Option<Vec<de::IgnoredAny>>,
    email_configs: Option<Vec<de::IgnoredAny>>,
    incidentio_configs: Option<Vec<de::IgnoredAny>>,
    jira_configs: Option<Vec<de::IgnoredAny>>,
    mattermost_configs: Option<Vec<de::IgnoredAny>>,
    msteams_configs: Option<Vec<de::IgnoredAny>>,
    msteamsv2_configs: Option<Vec<de::IgnoredAny>>,
    opsgenie_configs: Option<Vec<de::IgnoredAny>>,
    pagerduty_configs: Option<Vec<de::IgnoredAny>>,
    pushover_configs: Option<Vec<de::IgnoredAny>>,
    rocketchat_configs: Option<Vec<de::IgnoredAny>>,
    slack_configs: Option<Vec<de::IgnoredAny>>,
    sns_configs: Option<Vec<de::IgnoredAny>>,
    telegram_configs: Option<Vec<de::IgnoredAny>>,
    victorops_configs: Option<Vec<de::IgnoredAny>>,
    webex_configs: Option<Vec<de::IgnoredAny>>,
    wechat_configs: Option<Vec<de::IgnoredAny>>,
}

impl RawReceiver {
    /// The unsupported integrations and how many entries each has.
    fn unsupported(&self) -> [(&'static str, usize); 17] {
        fn n(v: &Option<Vec<de::IgnoredAny>>) -> usize {
            v.as_ref().map_or(0, Vec::len)
        }
        [
            ("discord_configs", n(&self.discord_configs)),
            ("email_configs", n(&self.email_configs)),
            ("incidentio_configs", n(&self.incidentio_configs)),
            ("jira_configs", n(&self.jira_configs)),
            ("mattermost_configs", n(&self.mattermost_configs)),
            ("msteams_configs", n(&self.msteams_configs)),
            ("msteamsv2_configs", n(&self.msteamsv2_configs)),
            ("opsgenie_configs", n(&self.opsgenie_configs)),
            ("pagerduty_configs", n(&self.pagerduty_configs)),
            ("pushover_configs", n(&self.pushover_configs)),
            ("rocketchat_configs", n(&self.rocketchat_configs)),
            ("slack_configs", n(&self.slack_configs)),
            ("sns_configs", n(&self.sns_configs)),
            ("telegram_configs", n(&self.telegram_configs)),
            ("victorops_configs", n(&self.victorops_configs)),
            ("webex_configs", n(&self.webex_configs)),
            ("wechat_configs", n(&self.wechat_configs)),
        ]
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a webhook config (a mapping)")]
struct RawWebhook {
    url: Option<String>,
    url_file: Option<String>,
    send_resolved: Option<bool>,
    max_alerts: Option<u64>,
    http_config: Option<BTreeMap<String, de::IgnoredAny>>,
    timeout: Option<de::IgnoredAny>,
    payload: Option<de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an inhibit rule (a mapping)")]
struct RawInhibitRule {
    /// Accepted and ignored: Alertmanager uses it in traces only.
    #[serde(rename = "name")]
    _name: Option<String>,
    source_match: Option<UniqueMap>,
    source_match_re: Option<UniqueMap>,
    source_matchers: Option<Vec<String>>,
    target_match: Option<UniqueMap>,
    target_match_re: Option<UniqueMap>,
    target_matchers: Option<Vec<String>>,
    equal: Option<Vec<String>>,
}

/// A string-to-string mapping that refuses duplicate keys (as Go's
/// yaml.v2 in strict mode does), in document order.
struct UniqueMap(Vec<(String, String)>);

impl<'de> Deserialize<'de> for UniqueMap {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<UniqueMap, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UniqueMap;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of label names to strings")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<UniqueMap, A::Error> {
                let mut seen = BTreeSet::new();
                let mut pairs = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    if !seen.insert(k.clone()) {
                        return Err(de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    pairs.push((k, v));
                }
                Ok(UniqueMap(pairs))
            }
        }
        d.deserialize_map(V)
    }
}

/// Walks a YAML document, aliases expanded, counting nodes and failing
/// past [`MAX_YAML_NODES`]. Allocates nothing.
struct Budget<'a>(&'a Cell<usize>);

impl Budget<'_> {
    fn tick<E: de::Error>(&self) -> Result<(), E> {
        let n = self.0.get() + 1;
        self.0.set(n);
        if n > MAX_YAML_NODES {
            return Err(E::custom(format!(
                "the document expands to more than {MAX_YAML_NODES} YAML nodes (are aliases repeating a large anchor?)"
            )));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Budget<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Budget<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.tick()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.tick()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.tick()
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.tick()
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.tick()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.tick()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.tick()
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<(), E> {
        self.tick()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.tick()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.tick()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.tick()?;
        Budget(self.0).deserialize(d)
    }
    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.tick()?;
        Budget(self.0).deserialize(d)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.tick()?;
        while seq.next_element_seed(Budget(self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.tick()?;
        while map.next_key_seed(Budget(self.0))?.is_some() {
            map.next_value_seed(Budget(self.0))?;
        }
        Ok(())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged node (`!tag value`).
        self.tick()?;
        let ((), variant) = data.variant_seed(Budget(self.0))?;
        de::VariantAccess::newtype_variant_seed(variant, Budget(self.0))
    }
}

// ---------------------------------------------------------------------
// Parsing and validation.
// ---------------------------------------------------------------------

/// `parse_config` parses and validates an Alertmanager configuration
/// (the subset described in the module docs) and resolves every route's
/// inherited settings; the text is kept in `original`.
///
/// Refused, each with an error saying why (and for YAML errors, where):
/// what the module docs list as unsupported, unknown keys anywhere, a
/// root route without a receiver or with matchers or `continue`, zero
/// `group_interval` / `repeat_interval`, bad durations, matchers or label
/// names, duplicate or unnamed receivers, a route naming an undefined
/// receiver, and anything past the limits. Inherited settings, defaults
/// and `group_by` follow Alertmanager: a child takes its parent's
/// receiver, `group_by` and timings unless it sets them (an empty
/// `receiver` inherits; `group_by: []` means one group, `['...']` every
/// label); a route's matchers are sorted by name, value, operator.
pub fn parse_config(yaml: &str) -> Result<AlertmanagerConfig, ConfigError> {
    if yaml.len() > MAX_CONFIG_BYTES {
        return Err(err(format!(
            "the configuration is {} bytes, more than the limit of {MAX_CONFIG_BYTES}",
            yaml.len()
        )));
    }
    if yaml.trim().is_empty() {
        return Err(err(
            "the configuration is empty (a route and receivers are required)",
        ));
    }
    // First walk the document to bound what the typed pass will allocate.
    let nodes = Cell::new(0);
    Budget(&nodes)
        .deserialize(serde_norway::Deserializer::from_str(yaml))
        .map_err(|e| err(e.to_string()))?;
    let raw: RawConfig = serde_norway::from_str(yaml).map_err(|e| err(e.to_string()))?;

    if raw.templates.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(err(
            "templates: custom notification templates are not supported (webhooks send the fixed JSON payload)",
        ));
    }
    for (key, v) in [
        ("time_intervals", &raw.time_intervals),
        ("mute_time_intervals", &raw.mute_time_intervals),
    ] {
        if v.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(err(format!("{key}: time intervals are not supported")));
        }
    }

    let receivers = build_receivers(raw.receivers.as_deref().unwrap_or_default())?;

    let Some(raw_route) = raw.route else {
        return Err(err("no route provided (the root `route` is required)"));
    };
    if raw_route.receiver.as_deref().unwrap_or_default().is_empty() {
        return Err(err("root route must specify a default receiver"));
    }
    let has = |m: &Option<UniqueMap>| m.as_ref().is_some_and(|m| !m.0.is_empty());
    if has(&raw_route.match_eq)
        || has(&raw_route.match_re)
        || raw_route.matchers.as_ref().is_some_and(|m| !m.is_empty())
    {
        return Err(err("root route must not have any matchers"));
    }
    if raw_route.continue_matching == Some(true) {
        return Err(err("cannot have continue in root route"));
    }
    let root_opts = Opts {
        receiver: String::new(),
        group_by: GroupBy::Labels(Vec::new()),
        group_wait_ms: DEFAULT_GROUP_WAIT_MS,
        group_interval_ms: DEFAULT_GROUP_INTERVAL_MS,
        repeat_interval_ms: DEFAULT_REPEAT_INTERVAL_MS,
    };
    let mut routes_count = 0;
    let route = build_route(
        &raw_route,
        &root_opts,
        "0".to_string(),
        1,
        &mut routes_count,
    )?;

    let names: BTreeSet<&str> = receivers.iter().map(|r| r.name.as_str()).collect();
    check_receivers(&route, &names)?;

    let inhibit_rules = raw
        .inhibit_rules
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, r)| build_inhibit_rule(r).map_err(|e| err(format!("inhibit_rules[{i}]: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;

    Ok(AlertmanagerConfig {
        route,
        receivers,
        inhibit_rules,
        original: yaml.to_string(),
    })
}

/// `default_config` is the configuration in force before an operator
/// applies one: a root route (default timings, no grouping) to the
/// receiver [`DEFAULT_RECEIVER`], which has no webhooks, so notifications
/// go nowhere. Equal to parsing its own `original`.
pub fn default_config() -> AlertmanagerConfig {
    AlertmanagerConfig {
        route: Route {
            id: "0".to_string(),
            receiver: DEFAULT_RECEIVER.to_string(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait_ms: DEFAULT_GROUP_WAIT_MS,
            group_interval_ms: DEFAULT_GROUP_INTERVAL_MS,
            repeat_interval_ms: DEFAULT_REPEAT_INTERVAL_MS,
            matchers: Vec::new(),
            continue_matching: false,
            routes: Vec::new(),
        },
        receivers: vec![Receiver {
            name: DEFAULT_RECEIVER.to_string(),
            webhook_configs: Vec::new(),
        }],
        inhibit_rules: Vec::new(),
        original: DEFAULT_CONFIG_YAML.to_string(),
    }
}

/// The settings a route passes to its children.
#[derive(Clone)]
struct Opts {
    receiver: String,
    group_by: GroupBy,
    group_wait_ms: i64,
    group_interval_ms: i64,
    repeat_interval_ms: i64,
}

fn build_route(
    raw: &RawRoute,
    inherited: &Opts,
    id: String,
    depth: usize,
    routes_count: &mut usize,
) -> Result<Route, ConfigError> {
    if depth > MAX_ROUTE_DEPTH {
        return Err(err(format!(
            "route {id}: routes nest deeper than the limit of {MAX_ROUTE_DEPTH} levels"
        )));
    }
    *routes_count += 1;
    if *routes_count > MAX_ROUTES {
        return Err(err(format!(
            "the route tree has more than the limit of {MAX_ROUTES} routes"
        )));
    }
    let at = |message: String| err(format!("route {id}: {message}"));

    let mut opts = inherited.clone();
    if let Some(receiver) = raw.receiver.as_deref().filter(|r| !r.is_empty()) {
        opts.receiver = receiver.to_string();
    }
    if let Some(list) = &raw.group_by {
        opts.group_by = parse_group_by(list).map_err(at)?;
    }
    if let Some(text) = &raw.group_wait {
        opts.group_wait_ms = parse_duration_ms(text).map_err(|e| at(format!("group_wait: {e}")))?;
    }
    if let Some(text) = &raw.group_interval {
        opts.group_interval_ms =
            parse_duration_ms(text).map_err(|e| at(format!("group_interval: {e}")))?;
        if opts.group_interval_ms == 0 {
            return Err(at("group_interval cannot be zero".to_string()));
        }
    }
    if let Some(text) = &raw.repeat_interval {
        opts.repeat_interval_ms =
            parse_duration_ms(text).map_err(|e| at(format!("repeat_interval: {e}")))?;
        if opts.repeat_interval_ms == 0 {
            return Err(at("repeat_interval cannot be zero".to_string()));
        }
    }
    for (key, v) in [
        ("mute_time_intervals", &raw.mute_time_intervals),
        ("active_time_intervals", &raw.active_time_intervals),
    ] {
        if v.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(at(format!("{key}: time intervals are not supported")));
        }
    }
    if raw.labels.as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(at("labels: route labels are not supported".to_string()));
    }

    let mut matchers = legacy_matchers(raw.match_eq.as_ref(), MatchOp::Eq, "match").map_err(at)?;
    matchers.extend(legacy_matchers(raw.match_re.as_ref(), MatchOp::Re, "match_re").map_err(at)?);
    matchers.extend(matcher_lines(raw.matchers.as_deref()).map_err(at)?);
    // Alertmanager sorts a route's matchers (name, then value, then
    // operator); the order shows in the route key.
    matchers.sort_by(|a, b| (&a.name, &a.value, a.op).cmp(&(&b.name, &b.value, b.op)));

    let children = raw.routes.as_deref().unwrap_or_default();
    let mut routes = Vec::with_capacity(children.len());
    for (i, child) in children.iter().enumerate() {
        routes.push(build_route(
            child,
            &opts,
            format!("{id}.{i}"),
            depth + 1,
            routes_count,
        )?);
    }

    Ok(Route {
        id,
        receiver: opts.receiver,
        group_by: opts.group_by,
        group_wait_ms: opts.group_wait_ms,
        group_interval_ms: opts.group_interval_ms,
        repeat_interval_ms: opts.repeat_interval_ms,
        matchers,
        continue_matching: raw.continue_matching.unwrap_or(false),
        routes,
    })
}

/// `group_by` as Alertmanager reads it: `['...']` is every label, an
/// empty list is no label (one group), anything else sorted label names.
fn parse_group_by(list: &[String]) -> Result<GroupBy, String> {
    let all = list.iter().any(|l| l == "...");
    let mut names: Vec<String> = list.iter().filter(|l| *l != "...").cloned().collect();
    if all {
        if !names.is_empty() {
            return Err(
                "group_by: cannot have wildcard group_by (`...`) and other labels at the same time"
                    .to_string(),
            );
        }
        return Ok(GroupBy::All);
    }
    if let Some(bad) = names.iter().find(|n| n.is_empty()) {
        return Err(format!("invalid label name {bad:?} in group_by list"));
    }
    names.sort();
    if let Some(dup) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("duplicated label {:?} in group_by", dup[0]));
    }
    Ok(GroupBy::Labels(names))
}

/// Whether `name` matches `[a-zA-Z_][a-zA-Z0-9_]*`, the names
/// Alertmanager allows as keys of the legacy `match` maps.
fn is_legacy_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Matchers from a legacy `match` / `match_re` map. A `match_re` value
/// `re` becomes the regex `^(?:re)$`, as in Alertmanager (its config
/// anchors the regex and the route builds the matcher from the anchored
/// source), so that route keys read `{owner=~"^(?:team-(B|C))$"}` there
/// and here alike; anchoring twice matches the same values.
fn legacy_matchers(
    map: Option<&UniqueMap>,
    op: MatchOp,
    key: &str,
) -> Result<Vec<Matcher>, String> {
    let Some(map) = map else {
        return Ok(Vec::new());
    };
    map.0
        .iter()
        .map(|(name, value)| {
            if !is_legacy_label_name(name) {
                return Err(format!("{key}: invalid label name {name:?}"));
            }
            let source = match op {
                MatchOp::Re | MatchOp::Nre => format!("^(?:{value})$"),
                MatchOp::Eq | MatchOp::Ne => value.clone(),
            };
            Matcher::new(name.as_str(), op, source).map_err(|e| match e {
                MatcherError::Regex { reason, .. } => {
                    format!("{key}: bad regular expression {value:?} for {name:?}: {reason}")
                }
                other => format!("{key}: {other}"),
            })
        })
        .collect()
}

/// Matchers from a `matchers` list; each entry may hold several.
fn matcher_lines(lines: Option<&[String]>) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    for line in lines.unwrap_or_default() {
        out.extend(parse_matchers(line).map_err(|e| format!("matchers: {e}"))?);
    }
    Ok(out)
}

fn build_receivers(raw: &[RawReceiver]) -> Result<Vec<Receiver>, ConfigError> {
    let mut names = BTreeSet::new();
    let mut receivers = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let name = r.name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(err(format!("receivers[{i}]: missing name in receiver")));
        }
        if !names.insert(name.clone()) {
            return Err(err(format!("receiver name {name:?} is not unique")));
        }
        if let Some((kind, _)) = r.unsupported().into_iter().find(|(_, n)| *n > 0) {
            return Err(err(format!(
                "receiver {name:?}: {kind} are not supported (only webhook_configs)"
            )));
        }
        if r.labels.as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(err(format!(
                "receiver {name:?}: receiver labels are not supported"
            )));
        }
        let webhook_configs = r
            .webhook_configs
            .as_deref()
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(j, w)| {
                build_webhook(w)
                    .map_err(|e| err(format!("receiver {name:?}: webhook_configs[{j}]: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        receivers.push(Receiver {
            name,
            webhook_configs,
        });
    }
    Ok(receivers)
}

fn build_webhook(raw: &RawWebhook) -> Result<WebhookConfig, String> {
    if raw.url_file.is_some() {
        return Err("url_file is not supported (write the URL in `url`)".to_string());
    }
    if raw.http_config.as_ref().is_some_and(|h| !h.is_empty()) {
        return Err("http_config is not supported (webhooks are plain HTTP without authentication, proxy or TLS settings); remove it".to_string());
    }
    if raw.timeout.is_some() {
        return Err("timeout is not supported (the cluster sets delivery timeouts)".to_string());
    }
    if raw.payload.is_some() {
        return Err(
            "payload is not supported (the body is Alertmanager's version 4 webhook payload)"
                .to_string(),
        );
    }
    let url = raw.url.clone().unwrap_or_default();
    if url.is_empty() {
        return Err("url is required".to_string());
    }
    parse_webhook_url(&url).map_err(|e| e.0)?;
    Ok(WebhookConfig {
        url,
        send_resolved: raw.send_resolved.unwrap_or(true),
        max_alerts: raw.max_alerts.unwrap_or(0),
    })
}

fn check_receivers(route: &Route, names: &BTreeSet<&str>) -> Result<(), ConfigError> {
    if !names.contains(route.receiver.as_str()) {
        return Err(err(format!(
            "undefined receiver {:?} used in route {}",
            route.receiver, route.id
        )));
    }
    route
        .routes
        .iter()
        .try_for_each(|r| check_receivers(r, names))
}

fn build_inhibit_rule(raw: &RawInhibitRule) -> Result<InhibitRule, String> {
    let mut source_matchers =
        legacy_matchers(raw.source_match.as_ref(), MatchOp::Eq, "source_match")?;
    source_matchers.extend(legacy_matchers(
        raw.source_match_re.as_ref(),
        MatchOp::Re,
        "source_match_re",
    )?);
    source_matchers
        .extend(matcher_lines(raw.source_matchers.as_deref()).map_err(|e| format!("source_{e}"))?);
    let mut target_matchers =
        legacy_matchers(raw.target_match.as_ref(), MatchOp::Eq, "target_match")?;
    target_matchers.extend(legacy_matchers(
        raw.target_match_re.as_ref(),
        MatchOp::Re,
        "target_match_re",
    )?);
    target_matchers
        .extend(matcher_lines(raw.target_matchers.as_deref()).map_err(|e| format!("target_{e}"))?);
    let mut equal = raw.equal.clone().unwrap_or_default();
    if let Some(bad) = equal.iter().find(|n| n.is_empty()) {
        return Err(format!("invalid label name {bad:?} in equal list"));
    }
    equal.sort();
    equal.dedup();
    Ok(InhibitRule {
        source_matchers,
        target_matchers,
        equal,
    })
}

/// Parses a Prometheus duration (`model.ParseDuration`) into
/// milliseconds: one or more `<integer><unit>` terms with units `y`
/// (365 d), `w`, `d`, `h`, `m`, `s`, `ms`, each unit at most once and in
/// that order; a bare `0` is zero. At most 2^63 - 1 ns in total.
fn parse_duration_ms(text: &str) -> Result<i64, String> {
    const NS_PER_MS: u128 = 1_000_000;
    const UNITS: [(&str, u128); 7] = [
        ("y", 365 * 24 * 3_600_000 * NS_PER_MS),
        ("w", 7 * 24 * 3_600_000 * NS_PER_MS),
        ("d", 24 * 3_600_000 * NS_PER_MS),
        ("h", 3_600_000 * NS_PER_MS),
        ("m", 60_000 * NS_PER_MS),
        ("s", 1_000 * NS_PER_MS),
        ("ms", NS_PER_MS),
    ];
    match text {
        "0" => return Ok(0),
        "" => return Err("empty duration string".to_string()),
        _ => {}
    }
    let bad = || format!("not a valid duration string: {text:?}");
    let mut rest = text;
    let mut total_ns: u128 = 0;
    // Index into UNITS of the next unit allowed: units go largest first.
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| "duration out of range".to_string())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(bad());
        }
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some(pos) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(format!("unknown unit {unit:?} in duration {text:?}"));
        };
        if pos < next_unit {
            return Err(bad());
        }
        next_unit = pos + 1;
        total_ns += u128::from(value) * UNITS[pos].1;
        if total_ns > i64::MAX as u128 {
            return Err("duration out of range".to_string());
        }
    }
    i64::try_from(total_ns / NS_PER_MS).map_err(|_| "duration out of range".to_string())
}

// ---------------------------------------------------------------------
// Webhook URLs.
// ---------------------------------------------------------------------

/// `WebhookUrl` is a webhook URL taken apart for a plain HTTP/1.1 client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookUrl {
    /// The host: a DNS name, an IPv4 address, or an IPv6 address in
    /// brackets (`[::1]`), as written.
    pub host: String,
    /// The port (80 when the URL names none).
    pub port: u16,
    /// The path and query to request, starting with `/` (`/` when the URL
    /// has no path); any `#fragment` dropped.
    pub path_and_query: String,
}

/// `parse_webhook_url` checks and splits `http://host[:port][/path][?query]`.
/// `https://` is refused (there is no TLS client), as are other schemes,
/// credentials (`user@`), an empty or malformed host, port 0 or above
/// 65535, and characters a URL may not contain unescaped (spaces,
/// non-ASCII, `"<>\^`{|}`).
pub fn parse_webhook_url(url: &str) -> Result<WebhookUrl, ConfigError> {
    if url
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
    {
        return Err(err(format!(
            "url {url:?}: https is not supported (no TLS client); use http://"
        )));
    }
    let rest = match url.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("http://") => &url[7..],
        _ => return Err(err(format!("url {url:?} must start with http://"))),
    };
    if let Some(c) = url
        .chars()
        .find(|c| !c.is_ascii_graphic() || "\"<>\\^`{|}".contains(*c))
    {
        return Err(err(format!(
            "url {url:?} contains {c:?}, which a URL may not contain"
        )));
    }
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_len);
    if authority.contains('@') {
        return Err(err(format!(
            "url {url:?}: credentials in the URL are not supported"
        )));
    }
    let bad_host = || err(format!("url {url:?}: invalid host"));
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']').ok_or_else(bad_host)?;
        let inner = &authority[1..close];
        if inner.is_empty()
            || !inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(bad_host());
        }
        let after = &authority[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(bad_host()),
        };
        (&authority[..=close], port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        {
            return Err(bad_host());
        }
        (host, port)
    };
    let port = match port {
        None => 80,
        Some(p) => {
            let n: u16 = if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                0
            } else {
                p.parse().unwrap_or(0)
            };
            if n == 0 {
                return Err(err(format!("url {url:?}: invalid port {p:?}")));
            }
            n
        }
    };
    let tail = tail.split('#').next().unwrap_or_default();
    let path_and_query = if tail.is_empty() {
        "/".to_string()
    } else if tail.starts_with('?') {
        format!("/{tail}")
    } else {
        tail.to_string()
    };
    Ok(WebhookUrl {
        host: host.to_string(),
        port,
        path_and_query,
    })
}

// ---------------------------------------------------------------------
// Routing and inhibition.
// ---------------------------------------------------------------------

impl AlertmanagerConfig {
    /// `receiver` is the receiver named `name`, if any.
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }

    /// `route` is the route with id `id` (`"0"`, `"0.1"`, ...), if any.
    pub fn route(&self, id: &str) -> Option<&Route> {
        let mut parts = id.split('.');
        if parts.next() != Some("0") {
            return None;
        }
        let mut route = &self.route;
        for part in parts {
            let i: usize = part.parse().ok()?;
            route = route.routes.get(i)?;
        }
        Some(route)
    }

    /// `route_alert` is where an alert with `labels` goes, by
    /// Alertmanager's rules (`dispatch/route.go` `Match`): depth first,
    /// a route matches when all its matchers do; a matching route's
    /// children are tried in order, stopping after the first that matches
    /// unless that child has `continue: true`; a matching route none of
    /// whose children matched is itself a result. The root always
    /// matches, so the result is never empty. In tree order.
    pub fn route_alert(&self, labels: &LabelSet) -> Vec<RouteMatch<'_>> {
        let mut found = Vec::new();
        let root_key = matchers_key(&self.route.matchers);
        match_route(&self.route, root_key, labels, &mut found);
        found
            .into_iter()
            .map(|(route, route_key)| {
                let group_labels: LabelSet = match &route.group_by {
                    GroupBy::All => labels.clone(),
                    GroupBy::Labels(names) => names
                        .iter()
                        .filter_map(|n| labels.get_key_value(n))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                };
                let group_key = format!("{route_key}:{}", format_label_set(&group_labels));
                RouteMatch {
                    route,
                    group_labels,
                    group_key,
                }
            })
            .collect()
    }
}

/// Appends the routes `route` yields for `labels` with their route keys;
/// returns whether `route` matched.
fn match_route<'a>(
    route: &'a Route,
    key: String,
    labels: &LabelSet,
    found: &mut Vec<(&'a Route, String)>,
) -> bool {
    if !Matcher::matches_all(&route.matchers, labels) {
        return false;
    }
    let before = found.len();
    for child in &route.routes {
        let child_key = format!("{key}/{}", matchers_key(&child.matchers));
        if match_route(child, child_key, labels, found) && !child.continue_matching {
            break;
        }
    }
    if found.len() == before {
        found.push((route, key));
    }
    true
}

/// A route's matchers as Alertmanager's `Matchers.String()`:
/// `{a="b",c=~"d"}`.
fn matchers_key(matchers: &[Matcher]) -> String {
    let mut out = String::from("{");
    for (i, m) in matchers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{m}");
    }
    out.push('}');
    out
}

/// `format_label_set` writes a label set as Go's `model.LabelSet.String()`:
/// `{alertname="X", job="api"}`, names sorted and bare, values quoted as
/// Go's `strconv.Quote` does.
///
/// `strconv.Quote` escapes every rune Go's `unicode.IsPrint` rejects; this
/// escapes control characters, whitespace other than the space, and the
/// common invisible format characters (U+00AD, U+200B–U+200F,
/// U+2028–U+202E, U+2060–U+206F, U+FEFF), private-use characters and
/// noncharacters, but prints unassigned code points as they are.
pub fn format_label_set(labels: &LabelSet) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push('=');
        go_quote(&mut out, value);
    }
    out.push('}');
    out
}

/// Appends `s` quoted as Go's `strconv.Quote` does (see
/// [`format_label_set`] for where it differs).
fn go_quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if !go_is_print(c) => {
                let code = u32::from(c);
                if code < 0x10000 {
                    let _ = write!(out, "\\u{code:04x}");
                } else {
                    let _ = write!(out, "\\U{code:08x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// An approximation of Go's `unicode.IsPrint` for non-ASCII characters.
fn go_is_print(c: char) -> bool {
    let code = u32::from(c);
    !(c.is_control()
        || (c.is_whitespace() && c != ' ')
        || code == 0xad
        || (0x200b..=0x200f).contains(&code)
        || (0x2028..=0x202e).contains(&code)
        || (0x2060..=0x206f).contains(&code)
        || code == 0xfeff
        || (0xe000..=0xf8ff).contains(&code)
        || code >= 0xf0000
        || (code & 0xfffe) == 0xfffe
        || (0xfdd0..=0xfdef).contains(&code))
}

impl InhibitRule {
    /// `inhibiting_source` is the first of `firing_sources` that mutes
    /// `target` under this rule, by Alertmanager's rules
    /// (`inhibit/inhibit.go`): `target` must match the target matchers; the
    /// source must match the source matchers and have the same value as
    /// `target` for every `equal` label (an absent label counts as `""`, so
    /// absent equals absent). When `target` itself also matches the source
    /// matchers, sources that also match the target matchers are skipped,
    /// so an alert never inhibits itself and two alerts on both sides of
    /// a rule do not mute each other.
    ///
    /// `firing_sources` must hold only firing alerts; their order decides
    /// which one is returned.
    pub fn inhibiting_source<'a>(
        &self,
        target: &LabelSet,
        firing_sources: &[&'a LabelSet],
    ) -> Option<&'a LabelSet> {
        if !Matcher::matches_all(&self.target_matchers, target) {
            return None;
        }
        let exclude_two_sided = Matcher::matches_all(&self.source_matchers, target);
        let value = |labels: &LabelSet, name: &str| -> String {
            labels.get(name).cloned().unwrap_or_default()
        };
        firing_sources.iter().copied().find(|source| {
            Matcher::matches_all(&self.source_matchers, source)
                && self
                    .equal
                    .iter()
                    .all(|n| value(source, n) == value(target, n))
                && !(exclude_two_sided && Matcher::matches_all(&self.target_matchers, source))
        })
    }

    /// `mutes` is whether some alert in `firing_sources` mutes `target`
    /// under this rule (see [`InhibitRule::inhibiting_source`]).
    pub fn mutes(&self, target: &LabelSet, firing_sources: &[&LabelSet]) -> bool {
        self.inhibiting_source(target, firing_sources).is_some()
    }
}

/// `inhibited` is whether any of `rules` mutes `target` given the alerts
/// firing now (see [`InhibitRule::inhibiting_source`]).
pub fn inhibited(rules: &[InhibitRule], target: &LabelSet, firing_sources: &[&LabelSet]) -> bool {
    rules.iter().any(|r| r.mutes(target, firing_sources))
}
