//! `raftwatch dev`'s pure parts: the children's flags, the readiness rule,
//! and how their log lines are marked.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Parser;
use raftwatch::config::{LogFormat, ServerArgs, load};
use raftwatch::dev::{
    DevArgs, DevArgsError, ReadyCheck, not_ready, plan, prefix_line, server_argv,
};
use raftwatch_proto::v1::{ClusterStatusResponse, ShardInfo};

fn dev_args() -> DevArgs {
    DevArgs {
        nodes: 3,
        shards: 8,
        replicas: None,
        data_dir: PathBuf::from("./raftwatch-data"),
        base_port: 7600,
    }
}

/// `raftwatch server`'s flags as the binary parses them: `ServerArgs` plus
/// the global `--log-format`.
#[derive(Parser, Debug)]
struct ServerCli {
    #[command(flatten)]
    args: ServerArgs,
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

#[test]
fn plan_lays_out_ports_dirs_and_one_shared_member_list() {
    let nodes = plan(&dev_args(), None).unwrap();
    assert_eq!(nodes.len(), 3);
    let configs: Vec<_> = nodes
        .iter()
        .map(|n| load(n, &BTreeMap::new()).unwrap())
        .collect();
    for (i, config) in configs.iter().enumerate() {
        let id = i as u64 + 1;
        let grpc_port = 7600 + 2 * i as u16;
        assert_eq!(config.node_id, id);
        assert_eq!(
            config.grpc_addr.to_string(),
            format!("127.0.0.1:{grpc_port}")
        );
        assert_eq!(
            config.http_addr.to_string(),
            format!("127.0.0.1:{}", grpc_port + 1)
        );
        assert_eq!(
            config.data_dir,
            PathBuf::from("./raftwatch-data").join(format!("node-{id}"))
        );
        assert_eq!(config.initial_cluster, configs[0].initial_cluster);
        assert_eq!((config.shards, config.replicas), (8, 3));
        assert_eq!(config.join, None);
    }
    assert_eq!(
        nodes[0].initial_cluster.as_deref(),
        Some("1=127.0.0.1:7600,2=127.0.0.1:7602,3=127.0.0.1:7604")
    );
}

#[test]
fn server_argv_round_trips_through_the_flag_parser() {
    for log_format in [None, Some(LogFormat::Json)] {
        for node in plan(&dev_args(), log_format).unwrap() {
            let mut argv = vec!["server".into()];
            argv.extend(server_argv(&node));
            let parsed = ServerCli::try_parse_from(argv).unwrap();
            let mut args = parsed.args;
            args.log_format = parsed.log_format;
            assert_eq!(args, node);
        }
    }
    let every_flag = ServerArgs {
        node_id: Some(4),
        data_dir: Some("d".into()),
        grpc_addr: Some("0.0.0.0:1".into()),
        http_addr: Some("0.0.0.0:2".into()),
        advertise_grpc_addr: Some("h:1".into()),
        advertise_http_addr: Some("h:2".into()),
        initial_cluster: None,
        join: Some("h:3".into()),
        shards: Some(5),
        replicas: Some(6),
        heartbeat_interval_ms: Some(7),
        election_timeout_ms_min: Some(8),
        election_timeout_ms_max: Some(9),
        quiesce_after_heartbeats: Some(13),
        request_bytes_max: Some(10),
        query_max_samples: Some(11),
        query_timeout_ms: Some(12),
        shard_block_cache_bytes: Some(14),
        config: Some("c.toml".into()),
        log_format: Some(LogFormat::Text),
        inject_bug: Some("skip-fsync".into()),
    };
    let mut argv = vec!["server".into()];
    argv.extend(server_argv(&every_flag));
    let parsed = ServerCli::try_parse_from(argv).unwrap();
    let mut args = parsed.args;
    args.log_format = parsed.log_format;
    assert_eq!(args, every_flag);
}

#[test]
fn replicas_default_to_three_or_the_node_count() {
    let mut args = dev_args();
    args.nodes = 1;
    assert_eq!(plan(&args, None).unwrap()[0].replicas, Some(1));
    args.nodes = 5;
    assert_eq!(plan(&args, None).unwrap()[0].replicas, Some(3));
    args.replicas = Some(5);
    assert_eq!(plan(&args, None).unwrap()[0].replicas, Some(5));
}

#[test]
fn plan_refuses_impossible_clusters() {
    let mut args = dev_args();
    args.replicas = Some(4);
    assert_eq!(
        plan(&args, None),
        Err(DevArgsError::ReplicasExceedNodes {
            replicas: 4,
            nodes: 3
        })
    );

    let mut args = dev_args();
    args.nodes = 0;
    assert_eq!(plan(&args, None), Err(DevArgsError::Nodes(0)));
    args.nodes = 33;
    assert_eq!(plan(&args, None), Err(DevArgsError::Nodes(33)));

    let mut args = dev_args();
    args.base_port = 65531;
    assert!(matches!(plan(&args, None), Err(DevArgsError::Ports { .. })));
    // The last node's HTTP port may be 65535 itself.
    args.base_port = 65530;
    assert!(plan(&args, None).is_ok());
}

fn shard(id: u64, leader: u64, replicas: &[u64]) -> ShardInfo {
    ShardInfo {
        id,
        leader,
        replicas: replicas.to_vec(),
        ..ShardInfo::default()
    }
}

fn status(control_leader: u64, shards: Vec<ShardInfo>) -> ClusterStatusResponse {
    ClusterStatusResponse {
        control_leader,
        shards,
        replication_factor: 3,
        ..ClusterStatusResponse::default()
    }
}

#[test]
fn ready_needs_a_control_leader_and_every_shard_led_and_fully_replicated() {
    let fresh = ReadyCheck {
        shards: Some(2),
        replicas: Some(3),
    };
    let good = vec![shard(1, 1, &[1, 2, 3]), shard(2, 2, &[1, 2, 3])];
    assert_eq!(not_ready(&status(1, good.clone()), &fresh), None);

    assert!(not_ready(&status(0, good.clone()), &fresh).is_some());
    // Before the control plane has created the shards: not vacuously ready.
    assert!(not_ready(&status(1, vec![]), &fresh).is_some());
    assert!(not_ready(&status(1, vec![shard(1, 1, &[1, 2, 3])]), &fresh).is_some());
    assert!(
        not_ready(
            &status(1, vec![shard(1, 1, &[1, 2, 3]), shard(2, 0, &[1, 2, 3])]),
            &fresh
        )
        .is_some()
    );
    assert!(
        not_ready(
            &status(1, vec![shard(1, 1, &[1, 2, 3]), shard(2, 2, &[1, 2])]),
            &fresh
        )
        .is_some()
    );

    // Reusing data: any shard count, replicas as the cluster reports.
    let reused = ReadyCheck {
        shards: None,
        replicas: None,
    };
    assert_eq!(
        not_ready(&status(1, vec![shard(9, 3, &[1, 2, 3])]), &reused),
        None
    );
    assert!(not_ready(&status(1, vec![shard(9, 3, &[1, 2])]), &reused).is_some());
}

#[test]
fn log_lines_are_marked_with_their_node() {
    assert_eq!(prefix_line(2, "  INFO started"), "[node-2]   INFO started");
    assert_eq!(
        prefix_line(3, r#"{"timestamp":"t","level":"INFO"}"#),
        r#"{"node":3,"timestamp":"t","level":"INFO"}"#
    );
    assert_eq!(prefix_line(1, "{}"), r#"{"node":1}"#);
    assert_eq!(prefix_line(1, ""), "[node-1] ");
}
