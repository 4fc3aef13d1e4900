//! The CLI as a process: exit codes and messages that need no server.
//! (Against a real cluster it is exercised by the workspace tests in
//! `tests/it/cluster.rs`.) This binary also makes `cargo test` build the
//! `raftwatchctl` executable those tests run.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn ctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_raftwatchctl"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn malformed_address_is_refused_before_any_rpc() {
    // Port 1 on loopback: nothing listens, so only a client-side refusal
    // can produce this message.
    let (code, _, err) = ctl(&[
        "--endpoint",
        "http://127.0.0.1:1",
        "members",
        "add",
        "--node-id",
        "5",
        "--addr",
        "nonsense",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("nonsense"), "{err}");
}

#[test]
fn unreachable_endpoint_fails_with_status_on_stderr() {
    let (code, out, err) = ctl(&[
        "--endpoint",
        "http://127.0.0.1:1",
        "--timeout",
        "2",
        "cluster",
        "status",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(out.is_empty(), "{out}");
}

#[test]
fn help_lists_the_contract_commands() {
    let (code, out, _) = ctl(&["--help"]);
    assert_eq!(code, 0);
    for c in ["cluster", "members", "shards", "write", "query"] {
        assert!(out.contains(c), "--help lacks {c}: {out}");
    }
}

#[test]
fn settings_get_and_value_compare_and_set_are_offered() {
    let (code, out, err) = ctl(&["settings", "set", "--help"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("--expected-value"), "{out}");
    assert!(out.contains("--expected-version"), "{out}");
    let (code, out, err) = ctl(&["settings", "get", "--help"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("--consistency"), "{out}");
    assert!(out.contains("stale"), "{out}");
    // A bad consistency is refused by the parser, before any connection.
    let (code, _, err) = ctl(&[
        "--endpoint",
        "http://127.0.0.1:1",
        "settings",
        "get",
        "k",
        "--consistency",
        "eventual",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("eventual"), "{err}");
}
