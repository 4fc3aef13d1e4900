//! Node configuration: flags, then a TOML file, then `RAFTWATCH_*`
//! environment variables, in that order of precedence.
//!
//! Every setting has one key (`grpc_addr`), which is also its TOML key, its
//! flag with dashes (`--grpc-addr`) and, upper-cased, its environment
//! variable (`RAFTWATCH_GRPC_ADDR`). [`load`] reads the three sources,
//! takes each key from the first source that sets it, fills defaults and
//! validates the result. It reads the config file and nothing else: it binds
//! no socket and creates no directory, so a bad configuration is refused
//! before the node touches anything.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// `SHARDS_DEFAULT` is how many shards a new cluster is created with.
pub const SHARDS_DEFAULT: u32 = 8;
/// `SHARDS_MAX` is the most shards a cluster may be created with.
pub const SHARDS_MAX: u32 = 4096;
/// `REPLICAS_DEFAULT` is how many replicas each shard has.
pub const REPLICAS_DEFAULT: u32 = 3;
/// `REPLICAS_MAX` bounds the replication factor: every write waits for a
/// majority of the replicas, so more than 7 buys latency, not safety.
pub const REPLICAS_MAX: u32 = 7;
/// `HEARTBEAT_INTERVAL_MS_DEFAULT`: every group on a node heartbeats, so the
/// interval is a CPU cost per group (see the raft bench numbers in README).
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 300;
/// `ELECTION_TIMEOUT_MS_MIN_DEFAULT` is the lower end of the randomised
/// election timeout.
pub const ELECTION_TIMEOUT_MS_MIN_DEFAULT: u64 = 1_000;
/// `ELECTION_TIMEOUT_MS_MAX_DEFAULT` is the upper end of the randomised
/// election timeout.
pub const ELECTION_TIMEOUT_MS_MAX_DEFAULT: u64 = 2_000;

// A follower must miss at least two heartbeats before it stands for
// election, and the range must not be empty; the defaults obey the rules
// `load` enforces on user values.
const _: () = assert!(ELECTION_TIMEOUT_MS_MIN_DEFAULT > 2 * HEARTBEAT_INTERVAL_MS_DEFAULT);
const _: () = assert!(ELECTION_TIMEOUT_MS_MAX_DEFAULT > ELECTION_TIMEOUT_MS_MIN_DEFAULT);
const _: () = assert!(SHARDS_DEFAULT >= 1 && SHARDS_DEFAULT <= SHARDS_MAX);
const _: () = assert!(REPLICAS_DEFAULT >= 1 && REPLICAS_DEFAULT <= REPLICAS_MAX);

/// `REQUEST_BYTES_MAX_DEFAULT` is the longest request message, in bytes,
/// the public gRPC services (`Admin`, `Ingest`, `Query`) accept by default.
pub const REQUEST_BYTES_MAX_DEFAULT: u64 = crate::node::REQUEST_BYTES_MAX as u64;
/// `REQUEST_BYTES_MAX_LOWEST` is the smallest `request_bytes_max` allowed:
/// below it, ordinary admin and query requests stop fitting.
pub const REQUEST_BYTES_MAX_LOWEST: u64 = 4 << 10;
/// `REQUEST_BYTES_MAX_HIGHEST` is the largest `request_bytes_max` allowed:
/// node-to-node forwarding and the Raft entries a write becomes are sized
/// for requests up to the node's fixed ceiling
/// (`node::REQUEST_BYTES_MAX`), so the setting can only lower it.
pub const REQUEST_BYTES_MAX_HIGHEST: u64 = crate::node::REQUEST_BYTES_MAX as u64;

const _: () = assert!(REQUEST_BYTES_MAX_LOWEST <= REQUEST_BYTES_MAX_DEFAULT);
const _: () = assert!(REQUEST_BYTES_MAX_DEFAULT <= REQUEST_BYTES_MAX_HIGHEST);

/// `QUERY_MAX_SAMPLES_DEFAULT` is the most samples one PromQL query may
/// hold in memory at once, raw samples fetched from the shards included
/// (Prometheus's `--query.max-samples` default). Over it the query fails
/// with Prometheus's "query processing would load too many samples into
/// memory" error.
pub const QUERY_MAX_SAMPLES_DEFAULT: u64 = raftwatch_promql::MAX_SAMPLES_DEFAULT as u64;
/// `QUERY_MAX_SAMPLES_HIGHEST` bounds `query_max_samples`: at 16 bytes a
/// sample, a billion samples is 16 GB of one query's memory.
pub const QUERY_MAX_SAMPLES_HIGHEST: u64 = 1_000_000_000;
/// `QUERY_TIMEOUT_MS_DEFAULT` is how long one PromQL query may take, every
/// shard read and the evaluation included (Prometheus's `--query.timeout`
/// default, 2 minutes); a request's `timeout` may only lower it.
pub const QUERY_TIMEOUT_MS_DEFAULT: u64 = 120_000;
/// `QUERY_TIMEOUT_MS_LOWEST` is the smallest `query_timeout_ms` allowed.
pub const QUERY_TIMEOUT_MS_LOWEST: u64 = 100;
/// `QUERY_TIMEOUT_MS_HIGHEST` is the largest `query_timeout_ms` allowed
/// (one hour).
pub const QUERY_TIMEOUT_MS_HIGHEST: u64 = 3_600_000;

/// `QUIESCE_AFTER_HEARTBEATS_DEFAULT` is how many heartbeat intervals a
/// Raft group must stay idle, every member caught up, before it stops
/// ticking and heartbeating (`raftwatch_raft::quiesce`); 0 never quiesces.
pub const QUIESCE_AFTER_HEARTBEATS_DEFAULT: u64 = 3;
/// `QUIESCE_AFTER_HEARTBEATS_HIGHEST` bounds `quiesce_after_heartbeats`.
pub const QUIESCE_AFTER_HEARTBEATS_HIGHEST: u64 = 1_000_000;

/// `SHARD_BLOCK_CACHE_BYTES_DEFAULT` is the block page cache of each shard
/// replica's engine (`raftwatch_tsdb::TsdbConfig::block_cache_bytes`): the
/// most memory it keeps of chunk blocks read from disk, 16 MiB. A node's
/// total is this times the shard replicas it holds.
pub const SHARD_BLOCK_CACHE_BYTES_DEFAULT: u64 = raftwatch_tsdb::BLOCK_CACHE_BYTES_DEFAULT as u64;
/// `SHARD_BLOCK_CACHE_BYTES_HIGHEST` bounds `shard_block_cache_bytes`
/// (4 GiB per replica); 0 turns the cache off.
pub const SHARD_BLOCK_CACHE_BYTES_HIGHEST: u64 = 4 << 30;

const _: () = assert!(QUIESCE_AFTER_HEARTBEATS_DEFAULT <= QUIESCE_AFTER_HEARTBEATS_HIGHEST);
const _: () = assert!(SHARD_BLOCK_CACHE_BYTES_DEFAULT <= SHARD_BLOCK_CACHE_BYTES_HIGHEST);
const _: () = assert!(QUERY_MAX_SAMPLES_DEFAULT >= 1);
const _: () = assert!(QUERY_MAX_SAMPLES_DEFAULT <= QUERY_MAX_SAMPLES_HIGHEST);
const _: () = assert!(QUERY_TIMEOUT_MS_LOWEST <= QUERY_TIMEOUT_MS_DEFAULT);
const _: () = assert!(QUERY_TIMEOUT_MS_DEFAULT <= QUERY_TIMEOUT_MS_HIGHEST);

/// `ENV_PREFIX` starts the name of every configuration environment variable.
pub const ENV_PREFIX: &str = "RAFTWATCH_";

/// `ENV_CONFIG` names the config file when `--config` is not given.
pub const ENV_CONFIG: &str = "RAFTWATCH_CONFIG";

/// `KEYS` lists every configuration key: the TOML keys `load` accepts, the
/// flags (with `-` for `_`) and the environment variables (upper-cased,
/// after [`ENV_PREFIX`]).
pub const KEYS: [&str; 20] = [
    "node_id",
    "data_dir",
    "grpc_addr",
    "http_addr",
    "advertise_grpc_addr",
    "advertise_http_addr",
    "initial_cluster",
    "join",
    "shards",
    "replicas",
    "heartbeat_interval_ms",
    "election_timeout_ms_min",
    "election_timeout_ms_max",
    "quiesce_after_heartbeats",
    "request_bytes_max",
    "query_max_samples",
    "query_timeout_ms",
    "shard_block_cache_bytes",
    "log_format",
    "inject_bug",
];

/// `PLANTED_BUGS_MISSING` is why `inject_bug` is refused by a build without
/// the `inject-bugs` feature: silently ignoring it would let a test believe
/// it ran against a buggy server.
pub const PLANTED_BUGS_MISSING: &str =
    "this build has no planted bugs; rebuild with --features inject-bugs";

/// `LogFormat` is how log lines are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// `as_str` is the format's name as flags, TOML and environment spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }

    /// `parse` reads a format name (`text` or `json`, any case).
    pub fn parse(s: &str) -> Option<LogFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// `ServerConfig` is one node's validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// This node's id, ≥ 1.
    pub node_id: u64,
    /// Where the node keeps its data (log, snapshots, shard stores).
    pub data_dir: PathBuf,
    /// gRPC listen address (Admin, Ingest, Query, NodeInternal, Raft).
    pub grpc_addr: SocketAddr,
    /// HTTP listen address.
    pub http_addr: SocketAddr,
    /// Address other nodes use to reach this node's gRPC server, when it
    /// differs from `grpc_addr` (e.g. bound on 0.0.0.0). Default: grpc_addr.
    pub advertise_grpc_addr: String,
    /// Advertised HTTP address. Default: http_addr.
    pub advertise_http_addr: String,
    /// Bootstrap members, node id → gRPC address. Empty unless bootstrapping.
    pub initial_cluster: BTreeMap<u64, String>,
    /// A running node's gRPC address to join through.
    pub join: Option<String>,
    /// Shards created at bootstrap.
    pub shards: u32,
    /// Replicas per shard.
    pub replicas: u32,
    /// Raft heartbeat interval of every group, ms.
    pub heartbeat_interval_ms: u64,
    /// Raft election timeout range, ms.
    pub election_timeout_ms_min: u64,
    /// Raft election timeout range, ms.
    pub election_timeout_ms_max: u64,
    /// Heartbeat intervals an idle group waits before it quiesces (0:
    /// never).
    pub quiesce_after_heartbeats: u32,
    /// The longest request message the public gRPC services accept, bytes
    /// (inclusive); longer ones get `RESOURCE_EXHAUSTED`.
    pub request_bytes_max: usize,
    /// The most samples one PromQL query may hold at once (inclusive).
    pub query_max_samples: usize,
    /// How long one PromQL query may take, ms.
    pub query_timeout_ms: u64,
    /// Block page cache of each shard replica's engine, bytes (0: off).
    pub shard_block_cache_bytes: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// The planted bug to arm in this process (a name from
    /// `raftwatch_seams::bugs::Bug::name`), for fault-injection tests such
    /// as Jepsen's. Always `None` in a build without the `inject-bugs`
    /// feature, which refuses the key instead.
    pub inject_bug: Option<String>,
}

/// `ServerArgs` are the flags of `raftwatch server`. Every field is an
/// `Option` so that "not given" falls through to the config file, the
/// environment and the default, in that order ([`load`]).
///
/// Flags deliberately do not use clap's `env` attribute: that would make an
/// environment variable beat the config file.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerArgs {
    /// This node's id (≥ 1), unique in the cluster.
    #[arg(long, value_name = "N")]
    pub node_id: Option<u64>,
    /// Directory for this node's data.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long, value_name = "HOST:PORT")]
    pub grpc_addr: Option<String>,
    /// HTTP listen address (Prometheus and Alertmanager APIs).
    #[arg(long, value_name = "HOST:PORT")]
    pub http_addr: Option<String>,
    /// gRPC address other nodes and clients dial [default: --grpc-addr].
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise_grpc_addr: Option<String>,
    /// HTTP address advertised to clients [default: --http-addr].
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise_http_addr: Option<String>,
    /// Bootstrap a new cluster of these members (gRPC addresses); every
    /// initial member passes the same list. Ignored once the data dir holds a
    /// node.
    #[arg(long, value_name = "ID=HOST:PORT,...")]
    pub initial_cluster: Option<String>,
    /// Join a running cluster through this node's gRPC address, as a learner
    /// that an operator then promotes.
    #[arg(long, value_name = "HOST:PORT")]
    pub join: Option<String>,
    /// Shards created at bootstrap (1..=4096) [default: 8].
    #[arg(long, value_name = "N")]
    pub shards: Option<u32>,
    /// Replicas per shard (1..=7, at most the initial members) [default: 3].
    #[arg(long, value_name = "N")]
    pub replicas: Option<u32>,
    /// Raft heartbeat interval of every group, ms [default: 300].
    #[arg(long, value_name = "MS")]
    pub heartbeat_interval_ms: Option<u64>,
    /// Lower end of the Raft election timeout, ms; more than twice the
    /// heartbeat interval [default: 1000].
    #[arg(long, value_name = "MS")]
    pub election_timeout_ms_min: Option<u64>,
    /// Upper end of the Raft election timeout, ms [default: 2000].
    #[arg(long, value_name = "MS")]
    pub election_timeout_ms_max: Option<u64>,
    /// Heartbeat intervals a Raft group must stay idle, every member caught
    /// up, before it stops ticking and heartbeating until written to; 0
    /// never quiesces (0..=1000000) [default: 3].
    #[arg(long, value_name = "N")]
    pub quiesce_after_heartbeats: Option<u64>,
    /// Longest request message the public gRPC services (Admin, Ingest,
    /// Query) accept, bytes; longer ones get RESOURCE_EXHAUSTED
    /// (4096..=33554432) [default: 33554432].
    #[arg(long, value_name = "BYTES")]
    pub request_bytes_max: Option<u64>,
    /// Most samples one PromQL query may hold in memory at once, raw
    /// samples read from the shards included; over it the query fails
    /// (1..=1000000000) [default: 50000000, Prometheus's
    /// --query.max-samples].
    #[arg(long, value_name = "N")]
    pub query_max_samples: Option<u64>,
    /// Longest a PromQL query may take, ms; a request's `timeout` may only
    /// lower it (100..=3600000) [default: 120000].
    #[arg(long, value_name = "MS")]
    pub query_timeout_ms: Option<u64>,
    /// Memory each shard replica's engine keeps of chunk blocks read from
    /// disk, bytes; a node holds this times its shard replicas at most; 0
    /// reads the store every time (0..=4294967296) [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    pub shard_block_cache_bytes: Option<u64>,
    /// TOML file with any of the keys above (snake_case, e.g. `grpc_addr`);
    /// flags beat it, it beats `RAFTWATCH_*` variables [env: RAFTWATCH_CONFIG].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Filled from the global `--log-format` flag, which clap parses on the
    /// top-level command.
    #[arg(skip)]
    pub log_format: Option<LogFormat>,
    /// Arm a planted bug (testing only; needs a build with
    /// `--features inject-bugs`, refused otherwise). Hidden from `--help`.
    #[arg(long, value_name = "NAME", hide = true)]
    pub inject_bug: Option<String>,
}

/// `ConfigError` is a refused configuration: the key at fault and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    /// The configuration key (`grpc_addr`), or `config` for the file itself.
    pub key: String,
    /// What is wrong, naming the value and where it came from.
    pub message: String,
}

impl ConfigError {
    fn new(key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// `env_from_process` returns this process's `RAFTWATCH_*` environment
/// variables, the `env` argument of [`load`]. A value that is not UTF-8 is
/// kept lossily, so that validation refuses it by name.
pub fn env_from_process() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| {
            let k = k.into_string().ok()?;
            k.starts_with(ENV_PREFIX)
                .then(|| (k, v.to_string_lossy().into_owned()))
        })
        .collect()
}

/// `env_var` is the environment variable of a configuration key.
pub fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// `load` builds a node's configuration from its flags, the TOML file named
/// by `--config` (or `RAFTWATCH_CONFIG`), and `env` (the `RAFTWATCH_*`
/// variables; others are ignored). Each key comes from the first of flags,
/// file, environment that sets it, else its default. An environment
/// variable set to the empty string counts as unset.
///
/// Errors name the key: an unknown TOML key, a value of the wrong type, or a
/// configuration that fails validation (see the rules in the code below).
/// Neither `initial_cluster` nor `join` is fine: a node restarting from its
/// data dir needs neither, and only the node can tell whether it has one.
pub fn load(
    args: &ServerArgs,
    env: &BTreeMap<String, String>,
) -> Result<ServerConfig, ConfigError> {
    let flags = Layer::from_args(args);
    let env_layer = Layer::from_env(env)?;
    let config_path = match &args.config {
        Some(path) => Some(path.clone()),
        None => env
            .get(ENV_CONFIG)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
    };
    let file = match &config_path {
        Some(path) => Layer::from_file(path)?,
        None => Layer::empty(Source::File(PathBuf::new())),
    };
    Merged {
        layers: [flags, file, env_layer],
    }
    .validate()
}

/// Where a value came from, for error messages.
#[derive(Clone, Debug)]
enum Source {
    Flag,
    File(PathBuf),
    Env,
}

impl Source {
    fn describe(&self, key: &str) -> String {
        match self {
            Source::Flag => format!("--{}", key.replace('_', "-")),
            Source::File(path) => format!("{} in {}", key, path.display()),
            Source::Env => env_var(key),
        }
    }
}

/// One source's settings, not yet validated. Integers are `u64` here so that
/// a range error can quote the value as given.
#[derive(Debug)]
struct Layer {
    source: Source,
    node_id: Option<u64>,
    data_dir: Option<PathBuf>,
    grpc_addr: Option<String>,
    http_addr: Option<String>,
    advertise_grpc_addr: Option<String>,
    advertise_http_addr: Option<String>,
    initial_cluster: Option<String>,
    join: Option<String>,
    shards: Option<u64>,
    replicas: Option<u64>,
    heartbeat_interval_ms: Option<u64>,
    election_timeout_ms_min: Option<u64>,
    election_timeout_ms_max: Option<u64>,
    quiesce_after_heartbeats: Option<u64>,
    request_bytes_max: Option<u64>,
    query_max_samples: Option<u64>,
    query_timeout_ms: Option<u64>,
    shard_block_cache_bytes: Option<u64>,
    log_format: Option<LogFormat>,
    inject_bug: Option<String>,
}

impl Layer {
    fn empty(source: Source) -> Layer {
        Layer {
            source,
            node_id: None,
            data_dir: None,
            grpc_addr: None,
            http_addr: None,
            advertise_grpc_addr: None,
            advertise_http_addr: None,
            initial_cluster: None,
            join: None,
            shards: None,
            replicas: None,
            heartbeat_interval_ms: None,
            election_timeout_ms_min: None,
            election_timeout_ms_max: None,
            quiesce_after_heartbeats: None,
            request_bytes_max: None,
            query_max_samples: None,
            query_timeout_ms: None,
            shard_block_cache_bytes: None,
            log_format: None,
            inject_bug: None,
        }
    }

    fn from_args(args: &ServerArgs) -> Layer {
        Layer {
            source: Source::Flag,
            node_id: args.node_id,
            data_dir: args.data_dir.clone(),
            grpc_addr: args.grpc_addr.clone(),
            http_addr: args.http_addr.clone(),
            advertise_grpc_addr: args.advertise_grpc_addr.clone(),
            advertise_http_addr: args.advertise_http_addr.clone(),
            initial_cluster: args.initial_cluster.clone(),
            join: args.join.clone(),
            shards: args.shards.map(u64::from),
            replicas: args.replicas.map(u64::from),
            heartbeat_interval_ms: args.heartbeat_interval_ms,
            election_timeout_ms_min: args.election_timeout_ms_min,
            election_timeout_ms_max: args.election_timeout_ms_max,
            quiesce_after_heartbeats: args.quiesce_after_heartbeats,
            request_bytes_max: args.request_bytes_max,
            query_max_samples: args.query_max_samples,
            query_timeout_ms: args.query_timeout_ms,
            shard_block_cache_bytes: args.shard_block_cache_bytes,
            log_format: args.log_format,
            // Empty counts as unset, as for an environment variable.
            inject_bug: args.inject_bug.clone().filter(|s| !s.is_empty()),
        }
    }

    fn from_env(env: &BTreeMap<String, String>) -> Result<Layer, ConfigError> {
        let mut layer = Layer::empty(Source::Env);
        for key in KEYS {
            let var = env_var(key);
            let Some(raw) = env.get(&var).filter(|v| !v.is_empty()) else {
                continue;
            };
            layer.set(key, RawValue::Str(raw))?;
        }
        Ok(layer)
    }

    fn from_file(path: &Path) -> Result<Layer, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("config", format!("cannot read {}: {e}", path.display()))
        })?;
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigError::new(
                "config",
                format!(
                    "{} is not valid TOML: {}",
                    path.display(),
                    e.to_string().trim_end()
                ),
            )
        })?;
        let mut layer = Layer::empty(Source::File(path.to_path_buf()));
        for (key, value) in &table {
            if !KEYS.contains(&key.as_str()) {
                return Err(ConfigError::new(
                    key,
                    format!(
                        "unknown key in {} (known keys: {})",
                        path.display(),
                        KEYS.join(", ")
                    ),
                ));
            }
            layer.set(key, RawValue::Toml(value))?;
        }
        Ok(layer)
    }

    /// Sets `key` from an environment string or a TOML value.
    fn set(&mut self, key: &str, raw: RawValue<'_>) -> Result<(), ConfigError> {
        let source = self.source.clone();
        match key {
            "node_id" => self.node_id = Some(raw.integer(key, &source)?),
            "data_dir" => self.data_dir = Some(PathBuf::from(raw.string(key, &source)?)),
            "grpc_addr" => self.grpc_addr = Some(raw.string(key, &source)?),
            "http_addr" => self.http_addr = Some(raw.string(key, &source)?),
            "advertise_grpc_addr" => self.advertise_grpc_addr = Some(raw.string(key, &source)?),
            "advertise_http_addr" => self.advertise_http_addr = Some(raw.string(key, &source)?),
            "initial_cluster" => self.initial_cluster = Some(raw.string(key, &source)?),
            "join" => self.join = Some(raw.string(key, &source)?),
            "shards" => self.shards = Some(raw.integer(key, &source)?),
            "replicas" => self.replicas = Some(raw.integer(key, &source)?),
            "heartbeat_interval_ms" => {
                self.heartbeat_interval_ms = Some(raw.integer(key, &source)?)
            }
            "election_timeout_ms_min" => {
                self.election_timeout_ms_min = Some(raw.integer(key, &source)?)
            }
            "election_timeout_ms_max" => {
                self.election_timeout_ms_max = Some(raw.integer(key, &source)?)
            }
            "request_bytes_max" => self.request_bytes_max = Some(raw.integer(key, &source)?),
            "query_max_samples" => self.query_max_samples = Some(raw.integer(key, &source)?),
            "query_timeout_ms" => self.query_timeout_ms = Some(raw.integer(key, &source)?),
            "shard_block_cache_bytes" => {
                self.shard_block_cache_bytes = Some(raw.integer(key, &source)?)
            }
            "quiesce_after_heartbeats" => {
                self.quiesce_after_heartbeats = Some(raw.integer(key, &source)?)
            }
            "inject_bug" => {
                let s = raw.string(key, &source)?;
                self.inject_bug = (!s.is_empty()).then_some(s);
            }
            "log_format" => {
                let s = raw.string(key, &source)?;
                self.log_format = Some(LogFormat::parse(&s).ok_or_else(|| {
                    ConfigError::new(
                        key,
                        format!(
                            "{s:?} is not a log format (text or json) (from {})",
                            source.describe(key)
                        ),
                    )
                })?);
            }
            // `KEYS` and this match list the same keys; the callers only pass
            // keys from `KEYS`.
            _ => {
                return Err(ConfigError::new(key, "unknown key"));
            }
        }
        Ok(())
    }
}

/// A value as a source holds it, before it is converted to its key's type.
enum RawValue<'a> {
    Str(&'a str),
    Toml(&'a toml::Value),
}

impl RawValue<'_> {
    fn string(&self, key: &str, source: &Source) -> Result<String, ConfigError> {
        match self {
            RawValue::Str(s) => Ok((*s).to_string()),
            RawValue::Toml(toml::Value::String(s)) => Ok(s.clone()),
            RawValue::Toml(v) => Err(ConfigError::new(
                key,
                format!(
                    "expected a string, found {} (from {})",
                    v.type_str(),
                    source.describe(key)
                ),
            )),
        }
    }

    fn integer(&self, key: &str, source: &Source) -> Result<u64, ConfigError> {
        match self {
            RawValue::Str(s) => s.trim().parse::<u64>().map_err(|_| {
                ConfigError::new(
                    key,
                    format!(
                        "{s:?} is not a non-negative integer (from {})",
                        source.describe(key)
                    ),
                )
            }),
            RawValue::Toml(toml::Value::Integer(i)) => u64::try_from(*i).map_err(|_| {
                ConfigError::new(
                    key,
                    format!(
                        "{i} is not a non-negative integer (from {})",
                        source.describe(key)
                    ),
                )
            }),
            RawValue::Toml(v) => Err(ConfigError::new(
                key,
                format!(
                    "expected an integer, found {} (from {})",
                    v.type_str(),
                    source.describe(key)
                ),
            )),
        }
    }
}

/// A value and the source it was taken from.
struct Given<'a, T> {
    value: T,
    source: &'a Source,
}

impl<T> Given<'_, T> {
    /// An error about this value: `message (from --flag)`.
    fn error(&self, key: &str, message: impl std::fmt::Display) -> ConfigError {
        ConfigError::new(
            key,
            format!("{message} (from {})", self.source.describe(key)),
        )
    }
}

/// `arm_planted_bug` arms `config.inject_bug` for this whole process (every
/// group the node hosts) and returns its name; `None` when the
/// configuration names none, which is always the case in a build without
/// the `inject-bugs` feature ([`load`] refuses the key there). Call it once,
/// before the node starts.
pub fn arm_planted_bug(config: &ServerConfig) -> Option<&str> {
    let name = config.inject_bug.as_deref()?;
    #[cfg(feature = "inject-bugs")]
    {
        use raftwatch_seams::bugs::{Bug, arm};
        // `load` checked the name; a config built by hand may not have.
        let bug = Bug::from_name(name)?;
        arm(Some(bug));
        Some(name)
    }
    #[cfg(not(feature = "inject-bugs"))]
    {
        let _ = name;
        None
    }
}

/// `planted_bug` checks an `inject_bug` value: the name of a planted bug in
/// a build with the `inject-bugs` feature; refused in any other build.
#[cfg(feature = "inject-bugs")]
fn planted_bug(given: &Given<'_, String>) -> Result<String, ConfigError> {
    use raftwatch_seams::bugs::Bug;
    match Bug::from_name(given.value.trim()) {
        Some(bug) => Ok(bug.name().to_string()),
        None => {
            let known: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
            Err(given.error(
                "inject_bug",
                format!(
                    "unknown planted bug {:?} (known: {})",
                    given.value,
                    known.join(", ")
                ),
            ))
        }
    }
}

/// `planted_bug` checks an `inject_bug` value: the name of a planted bug in
/// a build with the `inject-bugs` feature; refused in any other build.
#[cfg(not(feature = "inject-bugs"))]
fn planted_bug(given: &Given<'_, String>) -> Result<String, ConfigError> {
    Err(given.error(
        "inject_bug",
        format!("{PLANTED_BUGS_MISSING} (got {:?})", given.value),
    ))
}

/// The three sources, highest precedence first.
struct Merged {
    layers: [Layer; 3],
}

impl Merged {
    /// The first source's value of a key.
    fn pick<T: Clone>(&self, get: impl Fn(&Layer) -> Option<&T>) -> Option<Given<'_, T>> {
        self.layers.iter().find_map(|layer| {
            get(layer).map(|value| Given {
                value: value.clone(),
                source: &layer.source,
            })
        })
    }

    fn validate(&self) -> Result<ServerConfig, ConfigError> {
        let node_id = self
            .pick(|l| l.node_id.as_ref())
            .ok_or_else(|| missing("node_id"))?;
        if node_id.value == 0 {
            return Err(node_id.error("node_id", "0 is not a node id; ids start at 1"));
        }
        let node_id = node_id.value;

        let data_dir = self
            .pick(|l| l.data_dir.as_ref())
            .ok_or_else(|| missing("data_dir"))?;
        if data_dir.value.as_os_str().is_empty() {
            return Err(data_dir.error("data_dir", "the path is empty"));
        }

        let grpc_addr = self.listen_addr("grpc_addr", |l| l.grpc_addr.as_ref())?;
        let http_addr = self.listen_addr("http_addr", |l| l.http_addr.as_ref())?;
        if grpc_addr == http_addr {
            return Err(ConfigError::new(
                "http_addr",
                format!("{http_addr} is also grpc_addr; the two servers need their own ports"),
            ));
        }
        let advertise_grpc_addr =
            self.advertise_addr("advertise_grpc_addr", "grpc_addr", grpc_addr, |l| {
                l.advertise_grpc_addr.as_ref()
            })?;
        let advertise_http_addr =
            self.advertise_addr("advertise_http_addr", "http_addr", http_addr, |l| {
                l.advertise_http_addr.as_ref()
            })?;

        let initial_cluster = match self.pick(|l| l.initial_cluster.as_ref()) {
            Some(given) => parse_initial_cluster(&given, node_id)?,
            None => BTreeMap::new(),
        };
        let join = self.pick(|l| l.join.as_ref());
        if let Some(join) = &join {
            check_host_port(&join.value).map_err(|why| {
                join.error("join", format!("{:?} is not HOST:PORT: {why}", join.value))
            })?;
            if !initial_cluster.is_empty() {
                return Err(join.error(
                    "join",
                    "cannot be combined with initial_cluster: initial_cluster bootstraps a \
                     new cluster, join adds this node to a running one",
                ));
            }
        }

        let shards = self.pick(|l| l.shards.as_ref());
        let shards = match shards {
            Some(given) if !(1..=u64::from(SHARDS_MAX)).contains(&given.value) => {
                return Err(given.error(
                    "shards",
                    format!("{} is outside 1..={SHARDS_MAX}", given.value),
                ));
            }
            Some(given) => narrow(given.value),
            None => SHARDS_DEFAULT,
        };

        let replicas_given = self.pick(|l| l.replicas.as_ref());
        let replicas = match &replicas_given {
            Some(given) if !(1..=u64::from(REPLICAS_MAX)).contains(&given.value) => {
                return Err(given.error(
                    "replicas",
                    format!("{} is outside 1..={REPLICAS_MAX}", given.value),
                ));
            }
            Some(given) => narrow(given.value),
            None => REPLICAS_DEFAULT,
        };
        if !initial_cluster.is_empty() && replicas as usize > initial_cluster.len() {
            let message = format!(
                "{replicas} replicas per shard need at least {replicas} nodes, but \
                 initial_cluster has {}",
                initial_cluster.len()
            );
            return Err(match &replicas_given {
                Some(given) => given.error("replicas", message),
                None => ConfigError::new(
                    "replicas",
                    format!("{message} (the default is {REPLICAS_DEFAULT}; set replicas)"),
                ),
            });
        }

        let heartbeat = self.pick(|l| l.heartbeat_interval_ms.as_ref());
        let heartbeat_interval_ms = match &heartbeat {
            Some(given) if given.value == 0 => {
                return Err(given.error("heartbeat_interval_ms", "0 ms is not an interval"));
            }
            Some(given) => given.value,
            None => HEARTBEAT_INTERVAL_MS_DEFAULT,
        };
        let election_min = self.pick(|l| l.election_timeout_ms_min.as_ref());
        let election_timeout_ms_min = election_min
            .as_ref()
            .map_or(ELECTION_TIMEOUT_MS_MIN_DEFAULT, |g| g.value);
        if election_timeout_ms_min <= heartbeat_interval_ms.saturating_mul(2) {
            let message = format!(
                "{election_timeout_ms_min} ms must be more than twice heartbeat_interval_ms \
                 ({heartbeat_interval_ms} ms), or followers time out between heartbeats"
            );
            return Err(match &election_min {
                Some(given) => given.error("election_timeout_ms_min", message),
                None => ConfigError::new("election_timeout_ms_min", format!("{message} (default)")),
            });
        }
        let election_max = self.pick(|l| l.election_timeout_ms_max.as_ref());
        let election_timeout_ms_max = election_max
            .as_ref()
            .map_or(ELECTION_TIMEOUT_MS_MAX_DEFAULT, |g| g.value);
        if election_timeout_ms_max <= election_timeout_ms_min {
            let message = format!(
                "{election_timeout_ms_max} ms must be more than election_timeout_ms_min \
                 ({election_timeout_ms_min} ms)"
            );
            return Err(match &election_max {
                Some(given) => given.error("election_timeout_ms_max", message),
                None => ConfigError::new("election_timeout_ms_max", format!("{message} (default)")),
            });
        }

        let request_bytes_max = match self.pick(|l| l.request_bytes_max.as_ref()) {
            Some(given)
                if !(REQUEST_BYTES_MAX_LOWEST..=REQUEST_BYTES_MAX_HIGHEST)
                    .contains(&given.value) =>
            {
                return Err(given.error(
                    "request_bytes_max",
                    format!(
                        "{} is outside {REQUEST_BYTES_MAX_LOWEST}..={REQUEST_BYTES_MAX_HIGHEST} \
                         bytes",
                        given.value
                    ),
                ));
            }
            Some(given) => given.value,
            None => REQUEST_BYTES_MAX_DEFAULT,
        };
        // Within REQUEST_BYTES_MAX_HIGHEST, which is a usize.
        let request_bytes_max = usize::try_from(request_bytes_max).unwrap_or(usize::MAX);

        let query_max_samples = self.bounded(
            "query_max_samples",
            |l| l.query_max_samples.as_ref(),
            1..=QUERY_MAX_SAMPLES_HIGHEST,
            QUERY_MAX_SAMPLES_DEFAULT,
        )?;
        // Within QUERY_MAX_SAMPLES_HIGHEST, which fits a usize on 64 bits.
        let query_max_samples = usize::try_from(query_max_samples).unwrap_or(usize::MAX);
        let query_timeout_ms = self.bounded(
            "query_timeout_ms",
            |l| l.query_timeout_ms.as_ref(),
            QUERY_TIMEOUT_MS_LOWEST..=QUERY_TIMEOUT_MS_HIGHEST,
            QUERY_TIMEOUT_MS_DEFAULT,
        )?;
        let shard_block_cache_bytes = self.bounded(
            "shard_block_cache_bytes",
            |l| l.shard_block_cache_bytes.as_ref(),
            0..=SHARD_BLOCK_CACHE_BYTES_HIGHEST,
            SHARD_BLOCK_CACHE_BYTES_DEFAULT,
        )?;
        // Within SHARD_BLOCK_CACHE_BYTES_HIGHEST, which fits a usize on 64
        // bits.
        let shard_block_cache_bytes =
            usize::try_from(shard_block_cache_bytes).unwrap_or(usize::MAX);
        let quiesce_after_heartbeats = self.bounded(
            "quiesce_after_heartbeats",
            |l| l.quiesce_after_heartbeats.as_ref(),
            0..=QUIESCE_AFTER_HEARTBEATS_HIGHEST,
            QUIESCE_AFTER_HEARTBEATS_DEFAULT,
        )?;
        // Within QUIESCE_AFTER_HEARTBEATS_HIGHEST, which fits a u32.
        let quiesce_after_heartbeats = u32::try_from(quiesce_after_heartbeats).unwrap_or(u32::MAX);

        let log_format = self
            .pick(|l| l.log_format.as_ref())
            .map_or(LogFormat::Text, |g| g.value);

        let inject_bug = match self.pick(|l| l.inject_bug.as_ref()) {
            None => None,
            Some(given) => Some(planted_bug(&given)?),
        };

        Ok(ServerConfig {
            node_id,
            data_dir: data_dir.value,
            grpc_addr,
            http_addr,
            advertise_grpc_addr,
            advertise_http_addr,
            initial_cluster,
            join: join.map(|g| g.value),
            shards,
            replicas,
            heartbeat_interval_ms,
            election_timeout_ms_min,
            election_timeout_ms_max,
            quiesce_after_heartbeats,
            request_bytes_max,
            query_max_samples,
            query_timeout_ms,
            shard_block_cache_bytes,
            log_format,
            inject_bug,
        })
    }

    /// The value of an integer key within `range` (inclusive), else its
    /// default; outside the range, an error naming the key and the source.
    fn bounded(
        &self,
        key: &str,
        get: impl Fn(&Layer) -> Option<&u64>,
        range: std::ops::RangeInclusive<u64>,
        default: u64,
    ) -> Result<u64, ConfigError> {
        match self.pick(get) {
            Some(given) if !range.contains(&given.value) => Err(given.error(
                key,
                format!(
                    "{} is outside {}..={}",
                    given.value,
                    range.start(),
                    range.end()
                ),
            )),
            Some(given) => Ok(given.value),
            None => Ok(default),
        }
    }

    fn listen_addr(
        &self,
        key: &str,
        get: impl Fn(&Layer) -> Option<&String>,
    ) -> Result<SocketAddr, ConfigError> {
        let given = self.pick(get).ok_or_else(|| missing(key))?;
        resolve_listen_addr(&given.value)
            .map_err(|why| given.error(key, format!("{:?} is not HOST:PORT: {why}", given.value)))
    }

    fn advertise_addr(
        &self,
        key: &str,
        listen_key: &str,
        listen: SocketAddr,
        get: impl Fn(&Layer) -> Option<&String>,
    ) -> Result<String, ConfigError> {
        match self.pick(get) {
            Some(given) => {
                check_host_port(&given.value).map_err(|why| {
                    given.error(key, format!("{:?} is not HOST:PORT: {why}", given.value))
                })?;
                if let Ok(addr) = given.value.parse::<SocketAddr>()
                    && addr.ip().is_unspecified()
                {
                    return Err(given.error(
                        key,
                        format!("{addr} is a wildcard address, which other nodes cannot dial"),
                    ));
                }
                Ok(given.value)
            }
            // Listening on every interface says nothing about which address
            // peers and clients can reach; advertising 0.0.0.0 would make
            // every node dial itself.
            None if listen.ip().is_unspecified() => Err(ConfigError::new(
                key,
                format!(
                    "not set, and {listen_key} {listen} is a wildcard address that other \
                     nodes cannot dial; set {key} to this node's reachable HOST:PORT"
                ),
            )),
            None => Ok(listen.to_string()),
        }
    }
}

fn missing(key: &str) -> ConfigError {
    ConfigError::new(
        key,
        format!(
            "required; pass --{} or set it in the config file or {}",
            key.replace('_', "-"),
            env_var(key)
        ),
    )
}

/// Narrows a value already checked against a `u32` range.
fn narrow(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// Parses `ID=HOST:PORT,...` and checks it describes a cluster this node is
/// in. The empty string is the empty cluster (not bootstrapping).
fn parse_initial_cluster(
    given: &Given<'_, String>,
    node_id: u64,
) -> Result<BTreeMap<u64, String>, ConfigError> {
    const KEY: &str = "initial_cluster";
    let mut members = BTreeMap::new();
    if given.value.trim().is_empty() {
        return Ok(members);
    }
    let mut addrs = BTreeSet::new();
    for entry in given.value.split(',') {
        let entry = entry.trim();
        let Some((id, addr)) = entry.split_once('=') else {
            return Err(given.error(KEY, format!("entry {entry:?} is not ID=HOST:PORT")));
        };
        let (id, addr) = (id.trim(), addr.trim());
        let id: u64 = id.parse().ok().filter(|&id| id >= 1).ok_or_else(|| {
            given.error(
                KEY,
                format!("entry {entry:?}: {id:?} is not a node id (≥ 1)"),
            )
        })?;
        check_host_port(addr).map_err(|why| {
            given.error(
                KEY,
                format!("entry {entry:?}: {addr:?} is not HOST:PORT: {why}"),
            )
        })?;
        if members.contains_key(&id) {
            return Err(given.error(KEY, format!("node id {id} appears twice")));
        }
        if !addrs.insert(addr.to_string()) {
            return Err(given.error(KEY, format!("address {addr} appears twice")));
        }
        members.insert(id, addr.to_string());
    }
    if !members.contains_key(&node_id) {
        return Err(given.error(
            KEY,
            format!(
                "does not list this node (node_id {node_id}); every initial member \
                 passes the same list, including itself"
            ),
        ));
    }
    Ok(members)
}

/// Checks `HOST:PORT` without resolving the host: a port in 1..=65535 and a
/// non-empty host, IPv6 literals in brackets.
fn check_host_port(s: &str) -> Result<(), String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err("no :PORT".to_string());
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port {port:?} is not a number in 1..=65535"))?;
    if port == 0 {
        return Err("port 0 is not a port other nodes can dial".to_string());
    }
    if host.is_empty() {
        return Err("no HOST".to_string());
    }
    if let Some(inner) = host.strip_prefix('[') {
        let ok = inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
        return if ok {
            Ok(())
        } else {
            Err(format!("{host} is not a bracketed IPv6 address"))
        };
    }
    if host.contains(':') {
        return Err("an IPv6 address needs brackets: [ADDR]:PORT".to_string());
    }
    if host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(format!("{host:?} is not a host name"));
    }
    Ok(())
}

/// Turns a listen address into a socket address: an `IP:PORT` as is,
/// `localhost:PORT` as 127.0.0.1, another host name through the resolver
/// (its first IPv4 address, else its first address).
fn resolve_listen_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err("port 0 is not allowed; peers need a fixed port".to_string());
        }
        return Ok(addr);
    }
    check_host_port(s)?;
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err("no :PORT".to_string());
    };
    let port: u16 = port.parse().map_err(|_| "bad port".to_string())?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("{host:?} resolves to no address"))
}
