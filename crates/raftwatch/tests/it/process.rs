//! The `raftwatch` binary's exit codes and messages for refused
//! configurations: exit 2, the key on stderr, and nothing created.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the binary with `args` and only the environment in `env` (so that
/// the developer's own `RAFTWATCH_*` or `RUST_LOG` cannot change the result).
fn raftwatch(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftwatch"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Flags of a valid single-node bootstrap with its data under `dir`.
fn valid_server_args(dir: &Path) -> Vec<String> {
    [
        "server",
        "--node-id",
        "1",
        "--data-dir",
        dir.join("node-1").to_str().unwrap(),
        "--grpc-addr",
        "127.0.0.1:7600",
        "--http-addr",
        "127.0.0.1:7601",
        "--initial-cluster",
        "1=127.0.0.1:7600",
        "--replicas",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn with(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    match args.iter().position(|a| a == flag) {
        Some(i) => args[i + 1] = value.to_string(),
        None => args.extend([flag.to_string(), value.to_string()]),
    }
    args
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Asserts exit status 2, `needle` on stderr, and no data dir.
fn assert_refused(out: &Output, needle: &str, dir: &Path) {
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(out));
    assert!(stderr(out).contains(needle), "stderr: {}", stderr(out));
    assert!(
        !dir.join("node-1").exists(),
        "a refused configuration created the data dir"
    );
}

#[test]
fn bad_grpc_addr_exits_2_naming_the_key_before_creating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let args = with(valid_server_args(dir.path()), "--grpc-addr", "nonsense");
    let out = raftwatch(&refs(&args), &[]);
    assert_refused(
        &out,
        "invalid configuration: grpc_addr: \"nonsense\"",
        dir.path(),
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn missing_required_key_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = valid_server_args(dir.path());
    args.drain(1..3); // --node-id 1
    let out = raftwatch(&refs(&args), &[]);
    assert_refused(&out, "node_id", dir.path());
}

#[test]
fn bad_environment_value_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let args = valid_server_args(dir.path());
    let out = raftwatch(&refs(&args), &[("RAFTWATCH_SHARDS", "0")]);
    assert_refused(&out, "shards", dir.path());
}

#[test]
fn unknown_config_file_key_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("raftwatch.toml");
    std::fs::write(&file, "hearbeat_interval_ms = 100\n").unwrap();
    let args = with(
        valid_server_args(dir.path()),
        "--config",
        file.to_str().unwrap(),
    );
    let out = raftwatch(&refs(&args), &[]);
    assert_refused(&out, "hearbeat_interval_ms: unknown key", dir.path());
}

#[test]
fn unparsable_flag_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let args = with(valid_server_args(dir.path()), "--node-id", "one");
    let out = raftwatch(&refs(&args), &[]);
    assert_refused(&out, "--node-id", dir.path());
}

#[test]
fn log_format_is_global_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    // Accepted after the subcommand; the configuration error that follows
    // shows the flag itself parsed.
    let args = with(valid_server_args(dir.path()), "--grpc-addr", "nonsense");
    let args = with(args, "--log-format", "json");
    let out = raftwatch(&refs(&args), &[]);
    assert_refused(&out, "grpc_addr", dir.path());

    let args = with(valid_server_args(dir.path()), "--log-format", "xml");
    let out = raftwatch(&refs(&args), &[]);
    assert_refused(&out, "--log-format", dir.path());
}

#[test]
fn bad_rust_log_exits_2_before_the_node_starts() {
    let dir = tempfile::tempdir().unwrap();
    let args = valid_server_args(dir.path());
    let out = raftwatch(&refs(&args), &[("RUST_LOG", "raftwatch=loud")]);
    assert_refused(&out, "RUST_LOG", dir.path());
}

#[test]
fn dev_refuses_more_replicas_than_nodes_before_creating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = raftwatch(
        &[
            "dev",
            "--nodes",
            "2",
            "--replicas",
            "3",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("--replicas 3"), "{}", stderr(&out));
    assert!(!data.exists());
    assert!(out.stdout.is_empty());
}

#[test]
fn dev_refuses_a_child_configuration_the_server_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = raftwatch(
        &["dev", "--shards", "0", "--data-dir", data.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("node 1: invalid configuration: shards"),
        "{}",
        stderr(&out)
    );
    assert!(!data.exists());
}

#[test]
fn dev_refuses_data_dirs_from_a_cluster_of_another_size() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for id in [1, 2] {
        let node = data.join(format!("node-{id}"));
        std::fs::create_dir_all(&node).unwrap();
        std::fs::write(node.join("something"), b"x").unwrap();
    }
    let out = raftwatch(&["dev", "--data-dir", data.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot change size"),
        "{}",
        stderr(&out)
    );
    assert!(!data.join("node-3").exists());
}

/// Without the `inject-bugs` feature a planted bug cannot be armed, and
/// asking for one is an error, never silently ignored: a fault-injection
/// test must not believe it ran against a buggy server when it did not.
#[cfg(not(feature = "inject-bugs"))]
#[test]
fn inject_bug_is_refused_by_a_build_without_planted_bugs() {
    let dir = tempfile::tempdir().unwrap();
    let args = valid_server_args(dir.path());
    for name in ["stale-read-as-linearizable", "no-such-bug"] {
        let out = raftwatch(&refs(&args), &[("RAFTWATCH_INJECT_BUG", name)]);
        assert_refused(
            &out,
            "inject_bug: this build has no planted bugs; rebuild with --features inject-bugs",
            dir.path(),
        );
        assert!(
            stderr(&out).contains("RAFTWATCH_INJECT_BUG"),
            "{}",
            stderr(&out)
        );
    }
    // The hidden flag is refused the same way.
    let flagged = with(args.clone(), "--inject-bug", "ack-before-commit");
    let out = raftwatch(&refs(&flagged), &[]);
    assert_refused(&out, "this build has no planted bugs", dir.path());
    assert!(stderr(&out).contains("--inject-bug"), "{}", stderr(&out));
}

/// With the feature, an unknown name is refused and the error lists the
/// planted bugs there are.
#[cfg(feature = "inject-bugs")]
#[test]
fn unknown_planted_bug_is_refused_listing_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let args = valid_server_args(dir.path());
    let out = raftwatch(&refs(&args), &[("RAFTWATCH_INJECT_BUG", "no-such-bug")]);
    assert_refused(&out, "unknown planted bug \"no-such-bug\"", dir.path());
    for known in [
        "ack-before-commit",
        "stale-read-as-linearizable",
        "skip-fsync",
    ] {
        assert!(stderr(&out).contains(known), "{}", stderr(&out));
    }
}
