//! The simulator's own promises: a seed runs clean and reproduces its
//! event log byte for byte, in one process and across processes; the CLI
//! refuses a planted bug it was not built with; and (with the
//! `inject-bugs` feature) every planted bug is caught.

use std::process::Command;

use raftwatch_sim::params::Overrides;
use raftwatch_sim::{RunOptions, run};

fn short() -> RunOptions {
    RunOptions {
        overrides: Overrides {
            safety_ms: 6_000,
            ..Overrides::default()
        },
        inject_bug: None,
        forbid_threads: false,
    }
}

#[test]
fn a_seed_runs_clean_and_its_event_log_is_identical_when_run_again() {
    let a = run(3, &short());
    assert!(a.violations.is_empty(), "{:?}", a.violations);
    assert!(
        a.ops.get("write_ok").copied().unwrap_or(0) > 0,
        "{:?}",
        a.ops
    );
    assert!(
        a.ops.get("read_ok").copied().unwrap_or(0) > 0,
        "{:?}",
        a.ops
    );
    assert!(
        !a.faults.is_empty(),
        "no fault was injected: {:?}",
        a.faults
    );
    assert!(
        a.alerting.evaluations > 0 && a.alerting.delivered > 0,
        "the alerting workload did nothing: {:?}",
        a.alerting
    );
    let b = run(3, &short());
    assert_eq!(a.event_log_hash, b.event_log_hash);
    assert_eq!(a.event_log, b.event_log);
    let c = run(4, &short());
    assert_ne!(
        a.event_log_hash, c.event_log_hash,
        "another seed, another run"
    );
}

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_raftwatch-sim"))
}

fn hash_of(out: &std::process::Output) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    v["event_log_hash"].as_str().expect("hash").to_owned()
}

#[test]
fn the_same_seed_gives_the_same_hash_in_two_processes() {
    let args = ["run", "--seed", "11", "--safety-s", "6"];
    let a = sim().args(args).output().expect("run");
    let b = sim().args(args).output().expect("run");
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(hash_of(&a), hash_of(&b));
    // And the library run in this process agrees with the binary.
    let lib = run(
        11,
        &RunOptions {
            overrides: Overrides {
                safety_ms: 6_000,
                ..Overrides::default()
            },
            inject_bug: None,
            forbid_threads: false,
        },
    );
    assert_eq!(lib.event_log_hash, hash_of(&a));
}

#[cfg(not(feature = "inject-bugs"))]
#[test]
fn a_planted_bug_needs_the_feature() {
    let out = sim()
        .args(["run", "--seed", "1", "--inject-bug", "skip-fsync"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("inject-bugs"));
}

/// With the feature: a short sweep catches every planted bug (CI runs the
/// full check: at most 200 seeds each).
#[cfg(feature = "inject-bugs")]
#[test]
fn every_planted_bug_is_caught() {
    for bug in [
        "ack-before-commit",
        "stale-read-as-linearizable",
        "skip-fsync",
        "alert-for-reset",
        "notify-ignores-silence",
    ] {
        let out = sim()
            .args([
                "sweep",
                "--seeds",
                "0..20",
                "--until-fail",
                "--inject-bug",
                bug,
            ])
            .output()
            .expect("sweep");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{bug} was not caught in 20 seeds: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
