//! The bench as a process: exit codes and messages that need no cluster.
//! (Against a real cluster it is exercised by the workspace tests in
//! `tests/it/client_routing.rs`.) This binary also makes `cargo test` build
//! the `raftwatch-bench` executable those tests run.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn bench(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_raftwatch-bench"))
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
fn help_lists_the_contract_subcommands() {
    let (code, out, _) = bench(&["--help"]);
    assert_eq!(code, 0);
    for c in ["tsdb", "raft", "ingest", "query", "suite"] {
        assert!(out.contains(c), "--help lacks {c}: {out}");
    }
}

#[test]
fn a_malformed_target_is_refused_before_connecting() {
    let (code, out, err) = bench(&["ingest", "--target", "grpc://127.0.0.1", "--series", "1"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("invalid --target"), "{err}");
    assert!(out.is_empty(), "{out}");
}

#[test]
fn nothing_listening_fails_at_once_naming_the_endpoint() {
    // Port 1 on loopback: nothing listens.
    let (code, out, err) = bench(&[
        "ingest",
        "--target",
        "grpc://127.0.0.1:1",
        "--series",
        "1",
        "--timeout-s",
        "2",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("cannot connect to http://127.0.0.1:1"),
        "{err}"
    );
}

#[test]
fn nothing_listening_at_an_http_target_fails_at_once() {
    for sub in [
        &[
            "ingest",
            "--target",
            "http://127.0.0.1:1/api/v1/write",
            "--series",
            "1",
        ][..],
        &["query", "--target", "http://127.0.0.1:1", "--expr", "up"][..],
        &["suite", "--target", "http://127.0.0.1:1"][..],
    ] {
        let (code, out, err) = bench(sub);
        assert_eq!(code, 1, "{sub:?}: {out}{err}");
        assert!(
            err.contains("cannot connect to 127.0.0.1:1"),
            "{sub:?}: {err}"
        );
    }
}
