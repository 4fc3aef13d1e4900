//! `config::load`: precedence flag > TOML file > environment > default,
//! and every refusal names its key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use raftwatch::config::{ConfigError, KEYS, LogFormat, ServerArgs, ServerConfig, env_var, load};

const CLUSTER: &str = "1=127.0.0.1:7600,2=127.0.0.1:7602,3=127.0.0.1:7604";

/// A valid configuration of node 1 of a three-node bootstrap, as flags.
fn base_args() -> ServerArgs {
    ServerArgs {
        node_id: Some(1),
        data_dir: Some(PathBuf::from("/tmp/raftwatch-test-node-1")),
        grpc_addr: Some("127.0.0.1:7600".into()),
        http_addr: Some("127.0.0.1:7601".into()),
        initial_cluster: Some(CLUSTER.into()),
        ..ServerArgs::default()
    }
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn no_env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// Writes `text` to `dir/raftwatch.toml` and returns its path.
fn toml_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("raftwatch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn refused(args: &ServerArgs, env: &BTreeMap<String, String>) -> ConfigError {
    match load(args, env) {
        Ok(config) => panic!("expected a refusal, got {config:?}"),
        Err(e) => e,
    }
}

#[test]
fn defaults_fill_what_no_source_sets() {
    let config = load(&base_args(), &no_env()).unwrap();
    let grpc: SocketAddr = "127.0.0.1:7600".parse().unwrap();
    let http: SocketAddr = "127.0.0.1:7601".parse().unwrap();
    assert_eq!(
        config,
        ServerConfig {
            node_id: 1,
            data_dir: PathBuf::from("/tmp/raftwatch-test-node-1"),
            grpc_addr: grpc,
            http_addr: http,
            advertise_grpc_addr: "127.0.0.1:7600".into(),
            advertise_http_addr: "127.0.0.1:7601".into(),
            initial_cluster: BTreeMap::from([
                (1, "127.0.0.1:7600".to_string()),
                (2, "127.0.0.1:7602".to_string()),
                (3, "127.0.0.1:7604".to_string()),
            ]),
            join: None,
            shards: 8,
            replicas: 3,
            heartbeat_interval_ms: 300,
            election_timeout_ms_min: 1000,
            election_timeout_ms_max: 2000,
            quiesce_after_heartbeats: 3,
            request_bytes_max: 32 << 20,
            query_max_samples: 50_000_000,
            query_timeout_ms: 120_000,
            shard_block_cache_bytes: 16 << 20,
            log_format: LogFormat::Text,
            inject_bug: None,
        }
    );
}

#[test]
fn flag_beats_file_beats_env_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = toml_file(
        dir.path(),
        concat!(
            "shards = 20\n",
            "heartbeat_interval_ms = 200\n",
            "log_format = \"json\"\n",
            "http_addr = \"127.0.0.1:8001\"\n",
        ),
    );
    let all_env = env(&[
        ("RAFTWATCH_SHARDS", "30"),
        ("RAFTWATCH_HEARTBEAT_INTERVAL_MS", "100"),
        ("RAFTWATCH_LOG_FORMAT", "text"),
        ("RAFTWATCH_HTTP_ADDR", "127.0.0.1:9001"),
        ("RAFTWATCH_REPLICAS", "2"),
    ]);

    // Flag, file and environment all set shards: the flag wins.
    let mut args = base_args();
    args.shards = Some(10);
    args.http_addr = None;
    args.config = Some(file.clone());
    let config = load(&args, &all_env).unwrap();
    assert_eq!(config.shards, 10);
    // File and environment set these: the file wins.
    assert_eq!(config.heartbeat_interval_ms, 200);
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.http_addr, "127.0.0.1:8001".parse().unwrap());
    // Only the environment sets replicas.
    assert_eq!(config.replicas, 2);

    // Without the file, the environment beats the default.
    let mut args = base_args();
    args.shards = Some(10);
    args.http_addr = None;
    let config = load(&args, &all_env).unwrap();
    assert_eq!(config.shards, 10);
    assert_eq!(config.heartbeat_interval_ms, 100);
    assert_eq!(config.http_addr, "127.0.0.1:9001".parse().unwrap());

    // Without the flag, the file beats the environment.
    let mut args = base_args();
    args.config = Some(file);
    assert_eq!(load(&args, &all_env).unwrap().shards, 20);

    // Nothing but the default.
    assert_eq!(load(&base_args(), &no_env()).unwrap().shards, 8);
}

#[test]
fn log_format_flag_beats_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = base_args();
    args.config = Some(toml_file(dir.path(), "log_format = \"json\"\n"));
    args.log_format = Some(LogFormat::Text);
    assert_eq!(load(&args, &no_env()).unwrap().log_format, LogFormat::Text);
}

#[test]
fn every_key_can_come_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = toml_file(
        dir.path(),
        r#"
node_id = 2
data_dir = "/var/lib/raftwatch"
grpc_addr = "127.0.0.1:7602"
http_addr = "127.0.0.1:7603"
advertise_grpc_addr = "node2.example:7602"
advertise_http_addr = "node2.example:7603"
initial_cluster = "1=127.0.0.1:7600,2=127.0.0.1:7602"
shards = 16
replicas = 2
heartbeat_interval_ms = 100
election_timeout_ms_min = 500
election_timeout_ms_max = 900
request_bytes_max = 65536
query_max_samples = 1000
query_timeout_ms = 5000
shard_block_cache_bytes = 0
log_format = "json"
"#,
    );
    let args = ServerArgs {
        config: Some(file),
        ..ServerArgs::default()
    };
    let config = load(&args, &no_env()).unwrap();
    assert_eq!(config.node_id, 2);
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/raftwatch"));
    assert_eq!(config.advertise_grpc_addr, "node2.example:7602");
    assert_eq!(config.advertise_http_addr, "node2.example:7603");
    assert_eq!(config.initial_cluster.len(), 2);
    assert_eq!(
        (config.shards, config.replicas, config.heartbeat_interval_ms),
        (16, 2, 100)
    );
    assert_eq!(
        (
            config.election_timeout_ms_min,
            config.election_timeout_ms_max
        ),
        (500, 900)
    );
    assert_eq!(config.request_bytes_max, 65536);
    assert_eq!(
        (config.query_max_samples, config.query_timeout_ms),
        (1000, 5000)
    );
    assert_eq!(config.shard_block_cache_bytes, 0);
    assert_eq!(config.log_format, LogFormat::Json);

    // `join` is the one key the bootstrap file above cannot also hold.
    let file = toml_file(
        dir.path(),
        concat!(
            "node_id = 4\n",
            "data_dir = \"d\"\n",
            "grpc_addr = \"127.0.0.1:7606\"\n",
            "http_addr = \"127.0.0.1:7607\"\n",
            "join = \"127.0.0.1:7600\"\n",
        ),
    );
    let args = ServerArgs {
        config: Some(file),
        ..ServerArgs::default()
    };
    let config = load(&args, &no_env()).unwrap();
    assert_eq!(config.join.as_deref(), Some("127.0.0.1:7600"));
    assert!(config.initial_cluster.is_empty());
}

#[test]
fn every_key_can_come_from_the_environment() {
    let vars = env(&[
        ("RAFTWATCH_NODE_ID", "3"),
        ("RAFTWATCH_DATA_DIR", "/data/n3"),
        ("RAFTWATCH_GRPC_ADDR", "0.0.0.0:7604"),
        ("RAFTWATCH_HTTP_ADDR", "0.0.0.0:7605"),
        ("RAFTWATCH_ADVERTISE_GRPC_ADDR", "10.0.0.3:7604"),
        ("RAFTWATCH_ADVERTISE_HTTP_ADDR", "10.0.0.3:7605"),
        ("RAFTWATCH_JOIN", "10.0.0.1:7600"),
        ("RAFTWATCH_SHARDS", "4"),
        ("RAFTWATCH_REPLICAS", "5"),
        ("RAFTWATCH_HEARTBEAT_INTERVAL_MS", "50"),
        ("RAFTWATCH_ELECTION_TIMEOUT_MS_MIN", "150"),
        ("RAFTWATCH_ELECTION_TIMEOUT_MS_MAX", "300"),
        ("RAFTWATCH_REQUEST_BYTES_MAX", "4096"),
        ("RAFTWATCH_QUERY_MAX_SAMPLES", "7"),
        ("RAFTWATCH_QUERY_TIMEOUT_MS", "100"),
        ("RAFTWATCH_SHARD_BLOCK_CACHE_BYTES", "65536"),
        ("RAFTWATCH_LOG_FORMAT", "JSON"),
        // Not ours (raftwatchctl's): ignored.
        ("RAFTWATCH_ENDPOINT", "http://127.0.0.1:7600"),
    ]);
    let config = load(&ServerArgs::default(), &vars).unwrap();
    assert_eq!(config.node_id, 3);
    assert_eq!(config.grpc_addr, "0.0.0.0:7604".parse().unwrap());
    assert_eq!(config.advertise_grpc_addr, "10.0.0.3:7604");
    assert_eq!(config.join.as_deref(), Some("10.0.0.1:7600"));
    // Joining: replicas is not checked against a member list.
    assert_eq!((config.shards, config.replicas), (4, 5));
    assert_eq!(config.request_bytes_max, 4096);
    assert_eq!(
        (config.query_max_samples, config.query_timeout_ms),
        (7, 100)
    );
    assert_eq!(config.shard_block_cache_bytes, 65536);
    assert_eq!(config.log_format, LogFormat::Json);

    // Initial cluster from the environment.
    let vars = env(&[
        ("RAFTWATCH_NODE_ID", "2"),
        ("RAFTWATCH_DATA_DIR", "d"),
        ("RAFTWATCH_GRPC_ADDR", "127.0.0.1:7602"),
        ("RAFTWATCH_HTTP_ADDR", "127.0.0.1:7603"),
        ("RAFTWATCH_INITIAL_CLUSTER", CLUSTER),
    ]);
    assert_eq!(
        load(&ServerArgs::default(), &vars)
            .unwrap()
            .initial_cluster
            .len(),
        3
    );
}

#[test]
fn config_file_can_be_named_by_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = toml_file(dir.path(), "shards = 12\n");
    let vars = env(&[
        ("RAFTWATCH_CONFIG", file.to_str().unwrap()),
        ("RAFTWATCH_SHARDS", "30"),
    ]);
    assert_eq!(load(&base_args(), &vars).unwrap().shards, 12);
}

#[test]
fn empty_environment_variables_count_as_unset() {
    let vars = env(&[("RAFTWATCH_SHARDS", ""), ("RAFTWATCH_JOIN", "")]);
    let config = load(&base_args(), &vars).unwrap();
    assert_eq!(config.shards, 8);
    assert_eq!(config.join, None);
}

#[test]
fn neither_initial_cluster_nor_join_is_allowed() {
    // A restart from an existing data dir: the node decides.
    let mut args = base_args();
    args.initial_cluster = None;
    let config = load(&args, &no_env()).unwrap();
    assert!(config.initial_cluster.is_empty());
    assert_eq!(config.join, None);
}

#[test]
fn localhost_listen_addresses_resolve() {
    let mut args = base_args();
    args.grpc_addr = Some("localhost:7600".into());
    let config = load(&args, &no_env()).unwrap();
    assert_eq!(config.grpc_addr, "127.0.0.1:7600".parse().unwrap());
    assert_eq!(config.advertise_grpc_addr, "127.0.0.1:7600");
}

#[test]
fn ipv6_addresses_need_brackets() {
    let mut args = base_args();
    args.grpc_addr = Some("[::1]:7600".into());
    args.initial_cluster = Some("1=[::1]:7600".into());
    args.replicas = Some(1);
    let config = load(&args, &no_env()).unwrap();
    assert_eq!(config.advertise_grpc_addr, "[::1]:7600");

    args.initial_cluster = Some("1=::1:7600".into());
    assert_eq!(refused(&args, &no_env()).key, "initial_cluster");
}

#[test]
fn unknown_toml_key_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = base_args();
    args.config = Some(toml_file(dir.path(), "shards = 8\ngrpc_adr = \"x:1\"\n"));
    let e = refused(&args, &no_env());
    assert_eq!(e.key, "grpc_adr");
    assert!(e.message.contains("unknown key"), "{e}");
    assert!(
        e.to_string()
            .starts_with("invalid configuration: grpc_adr: ")
    );

    // `config` names the file; it is not itself a file key.
    args.config = Some(toml_file(dir.path(), "config = \"other.toml\"\n"));
    assert_eq!(refused(&args, &no_env()).key, "config");
}

#[test]
fn file_problems_name_the_config_key_or_the_value_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = base_args();

    args.config = Some(dir.path().join("missing.toml"));
    assert_eq!(refused(&args, &no_env()).key, "config");

    args.config = Some(toml_file(dir.path(), "shards = \n"));
    assert_eq!(refused(&args, &no_env()).key, "config");

    args.config = Some(toml_file(dir.path(), "shards = \"8\"\n"));
    let e = refused(&args, &no_env());
    assert_eq!(e.key, "shards");
    assert!(e.message.contains("expected an integer"), "{e}");

    args.config = Some(toml_file(dir.path(), "node_id = -1\n"));
    assert_eq!(refused(&args, &no_env()).key, "node_id");

    args.config = Some(toml_file(dir.path(), "initial_cluster = [\"1=a:1\"]\n"));
    assert_eq!(refused(&args, &no_env()).key, "initial_cluster");
}

#[test]
fn environment_problems_name_the_key_and_the_variable() {
    let e = refused(&base_args(), &env(&[("RAFTWATCH_SHARDS", "eight")]));
    assert_eq!(e.key, "shards");
    assert!(e.message.contains("RAFTWATCH_SHARDS"), "{e}");

    let e = refused(&base_args(), &env(&[("RAFTWATCH_LOG_FORMAT", "xml")]));
    assert_eq!(e.key, "log_format");
}

#[test]
fn the_example_message_reads_as_documented() {
    let mut args = base_args();
    args.grpc_addr = Some("foo".into());
    let e = refused(&args, &no_env());
    assert!(
        e.to_string()
            .starts_with("invalid configuration: grpc_addr: \"foo\" is not HOST:PORT"),
        "{e}"
    );
    assert!(e.to_string().contains("--grpc-addr"), "{e}");
}

/// Every validation rule, as (what to change, the key the error must name).
#[test]
fn every_validation_error_names_its_key() {
    type Change = fn(&mut ServerArgs);
    let cases: Vec<(&str, Change, &str)> = vec![
        ("node_id missing", |a| a.node_id = None, "node_id"),
        ("node_id zero", |a| a.node_id = Some(0), "node_id"),
        ("data_dir missing", |a| a.data_dir = None, "data_dir"),
        (
            "data_dir empty",
            |a| a.data_dir = Some(PathBuf::new()),
            "data_dir",
        ),
        ("grpc_addr missing", |a| a.grpc_addr = None, "grpc_addr"),
        (
            "grpc_addr no port",
            |a| a.grpc_addr = Some("127.0.0.1".into()),
            "grpc_addr",
        ),
        (
            "grpc_addr bad port",
            |a| a.grpc_addr = Some("127.0.0.1:99999".into()),
            "grpc_addr",
        ),
        (
            "grpc_addr port 0",
            |a| a.grpc_addr = Some("127.0.0.1:0".into()),
            "grpc_addr",
        ),
        ("http_addr missing", |a| a.http_addr = None, "http_addr"),
        (
            "http_addr nonsense",
            |a| a.http_addr = Some("nonsense".into()),
            "http_addr",
        ),
        (
            "http_addr = grpc_addr",
            |a| a.http_addr = Some("127.0.0.1:7600".into()),
            "http_addr",
        ),
        (
            "advertise_grpc_addr not HOST:PORT",
            |a| a.advertise_grpc_addr = Some("node1".into()),
            "advertise_grpc_addr",
        ),
        (
            "advertise_grpc_addr wildcard",
            |a| a.advertise_grpc_addr = Some("0.0.0.0:7600".into()),
            "advertise_grpc_addr",
        ),
        (
            "grpc_addr wildcard without advertise_grpc_addr",
            |a| a.grpc_addr = Some("0.0.0.0:7600".into()),
            "advertise_grpc_addr",
        ),
        (
            "advertise_http_addr not HOST:PORT",
            |a| a.advertise_http_addr = Some("node1:http".into()),
            "advertise_http_addr",
        ),
        (
            "http_addr wildcard without advertise_http_addr",
            |a| a.http_addr = Some("[::]:7601".into()),
            "advertise_http_addr",
        ),
        (
            "initial_cluster entry without =",
            |a| a.initial_cluster = Some("127.0.0.1:7600".into()),
            "initial_cluster",
        ),
        (
            "initial_cluster id 0",
            |a| a.initial_cluster = Some("0=127.0.0.1:7600,1=127.0.0.1:7602".into()),
            "initial_cluster",
        ),
        (
            "initial_cluster id not a number",
            |a| a.initial_cluster = Some("one=127.0.0.1:7600".into()),
            "initial_cluster",
        ),
        (
            "initial_cluster address not HOST:PORT",
            |a| a.initial_cluster = Some("1=127.0.0.1".into()),
            "initial_cluster",
        ),
        (
            "initial_cluster duplicate id",
            |a| a.initial_cluster = Some("1=127.0.0.1:7600,1=127.0.0.1:7602".into()),
            "initial_cluster",
        ),
        (
            "initial_cluster duplicate address",
            |a| a.initial_cluster = Some("1=127.0.0.1:7600,2=127.0.0.1:7600".into()),
            "initial_cluster",
        ),
        (
            "initial_cluster without this node",
            |a| a.initial_cluster = Some("2=127.0.0.1:7602,3=127.0.0.1:7604,4=h:1".into()),
            "initial_cluster",
        ),
        (
            "initial_cluster trailing comma",
            |a| a.initial_cluster = Some(format!("{CLUSTER},")),
            "initial_cluster",
        ),
        (
            "join with initial_cluster",
            |a| a.join = Some("127.0.0.1:7700".into()),
            "join",
        ),
        (
            "join not HOST:PORT",
            |a| {
                a.initial_cluster = None;
                a.join = Some("http://127.0.0.1".into());
            },
            "join",
        ),
        ("shards 0", |a| a.shards = Some(0), "shards"),
        ("shards 4097", |a| a.shards = Some(4097), "shards"),
        ("replicas 0", |a| a.replicas = Some(0), "replicas"),
        ("replicas 8", |a| a.replicas = Some(8), "replicas"),
        (
            "replicas > initial members",
            |a| a.replicas = Some(4),
            "replicas",
        ),
        (
            "default replicas > initial members",
            |a| a.initial_cluster = Some("1=127.0.0.1:7600".into()),
            "replicas",
        ),
        (
            "heartbeat 0",
            |a| a.heartbeat_interval_ms = Some(0),
            "heartbeat_interval_ms",
        ),
        (
            "election min not > 2 x heartbeat",
            |a| a.election_timeout_ms_min = Some(600),
            "election_timeout_ms_min",
        ),
        (
            "default election min vs a slow heartbeat",
            |a| a.heartbeat_interval_ms = Some(500),
            "election_timeout_ms_min",
        ),
        (
            "election max = min",
            |a| a.election_timeout_ms_max = Some(1000),
            "election_timeout_ms_max",
        ),
        (
            "default election max vs a larger min",
            |a| a.election_timeout_ms_min = Some(2500),
            "election_timeout_ms_max",
        ),
        (
            "request_bytes_max below 4 KiB",
            |a| a.request_bytes_max = Some(4095),
            "request_bytes_max",
        ),
        (
            "request_bytes_max above the node's 32 MiB ceiling",
            |a| a.request_bytes_max = Some((32 << 20) + 1),
            "request_bytes_max",
        ),
        (
            "query_max_samples 0",
            |a| a.query_max_samples = Some(0),
            "query_max_samples",
        ),
        (
            "query_max_samples above a billion",
            |a| a.query_max_samples = Some(1_000_000_001),
            "query_max_samples",
        ),
        (
            "query_timeout_ms below 100",
            |a| a.query_timeout_ms = Some(99),
            "query_timeout_ms",
        ),
        (
            "shard_block_cache_bytes above 4 GiB",
            |a| a.shard_block_cache_bytes = Some((4 << 30) + 1),
            "shard_block_cache_bytes",
        ),
        (
            "quiesce_after_heartbeats above a million",
            |a| a.quiesce_after_heartbeats = Some(1_000_001),
            "quiesce_after_heartbeats",
        ),
    ];
    for (what, change, key) in cases {
        let mut args = base_args();
        change(&mut args);
        let e = refused(&args, &no_env());
        assert_eq!(e.key, key, "{what}: {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("invalid configuration: {key}: ")),
            "{what}: {e}"
        );
    }
}

#[test]
fn bounds_are_inclusive() {
    let mut args = base_args();
    args.shards = Some(4096);
    args.replicas = Some(1);
    assert_eq!(load(&args, &no_env()).unwrap().shards, 4096);
    args.shards = Some(1);
    args.heartbeat_interval_ms = Some(100);
    args.election_timeout_ms_min = Some(201);
    args.election_timeout_ms_max = Some(202);
    assert!(load(&args, &no_env()).is_ok());
    for bytes in [4096, 32 << 20] {
        args.request_bytes_max = Some(bytes);
        assert_eq!(
            load(&args, &no_env()).unwrap().request_bytes_max as u64,
            bytes
        );
    }
    for bytes in [0, 4 << 30] {
        args.shard_block_cache_bytes = Some(bytes);
        assert_eq!(
            load(&args, &no_env()).unwrap().shard_block_cache_bytes as u64,
            bytes
        );
    }
}

#[test]
fn every_key_has_a_flag_and_an_env_var() {
    // The flags are clap's derivation of `ServerArgs`; the variables follow
    // from the keys. This pins the spelling users and scripts rely on.
    let vars: Vec<String> = KEYS.iter().map(|k| env_var(k)).collect();
    assert!(vars.contains(&"RAFTWATCH_ELECTION_TIMEOUT_MS_MIN".to_string()));
    assert!(vars.contains(&"RAFTWATCH_INITIAL_CLUSTER".to_string()));
    let command = <ServerArgs as clap::Args>::augment_args(clap::Command::new("server"));
    for key in KEYS {
        if key == "log_format" {
            // A global flag of the top-level command; see `process.rs`.
            continue;
        }
        let flag = key.replace('_', "-");
        assert!(
            command
                .get_arguments()
                .any(|a| a.get_long() == Some(flag.as_str())),
            "no --{flag}"
        );
    }
}

#[test]
fn an_empty_inject_bug_is_unset() {
    let mut args = base_args();
    args.inject_bug = Some(String::new());
    let config = load(&args, &env(&[("RAFTWATCH_INJECT_BUG", "")])).unwrap();
    assert_eq!(config.inject_bug, None);
    assert_eq!(raftwatch::config::arm_planted_bug(&config), None);
}

#[cfg(not(feature = "inject-bugs"))]
#[test]
fn inject_bug_is_refused_without_the_feature_from_every_source() {
    let e = refused(
        &base_args(),
        &env(&[("RAFTWATCH_INJECT_BUG", "skip-fsync")]),
    );
    assert_eq!(e.key, "inject_bug");
    assert!(
        e.message.contains(raftwatch::config::PLANTED_BUGS_MISSING),
        "{e}"
    );
    assert!(e.message.contains("RAFTWATCH_INJECT_BUG"), "{e}");
    let mut args = base_args();
    args.inject_bug = Some("skip-fsync".into());
    let e = refused(&args, &no_env());
    assert!(e.message.contains("--inject-bug"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let mut args = base_args();
    args.config = Some(toml_file(dir.path(), "inject_bug = \"skip-fsync\"\n"));
    let e = refused(&args, &no_env());
    assert_eq!(e.key, "inject_bug");
}

#[cfg(feature = "inject-bugs")]
#[test]
fn inject_bug_names_a_planted_bug_and_arms_it() {
    use raftwatch_seams::bugs::{Bug, arm, armed};
    let config = load(
        &base_args(),
        &env(&[("RAFTWATCH_INJECT_BUG", "stale-read-as-linearizable")]),
    )
    .unwrap();
    assert_eq!(
        config.inject_bug.as_deref(),
        Some("stale-read-as-linearizable")
    );
    assert_eq!(
        raftwatch::config::arm_planted_bug(&config),
        Some("stale-read-as-linearizable")
    );
    assert!(armed(Bug::StaleReadAsLinearizable));
    arm(None);
    let e = refused(&base_args(), &env(&[("RAFTWATCH_INJECT_BUG", "nope")]));
    assert_eq!(e.key, "inject_bug");
    for bug in Bug::ALL {
        assert!(e.message.contains(bug.name()), "{e}");
    }
}
