//! Advisory leader hints: recorded without bumping the CAS version, only
//! for replicas of known shards, and absent from older snapshots.

use raftwatch_control::sm::decode_state;
use raftwatch_control::{Command, ControlStateMachine, Refusal, ShardId};
use raftwatch_raft::{GroupStateMachine, NodeId};

use crate::support::{bootstrapped, json, ok, refused};

#[test]
fn hints_do_not_fail_an_operators_compare_and_set() {
    let mut s = bootstrapped(3, 4, 2);
    let seen = s.version;
    let replicas = s.shards[&ShardId(1)].replicas.clone();
    let applied = ok(
        &mut s,
        &Command::SetLeaderHints {
            hints: vec![(ShardId(1), replicas[1])],
        },
    );
    assert_eq!((applied.version, s.version), (seen, seen));
    assert_eq!(s.shards[&ShardId(1)].leader_hint, Some(replicas[1]));
    // The operator read version `seen` before the hint; their CAS holds.
    ok(
        &mut s,
        &Command::SetSetting {
            key: "k".into(),
            value: "v".into(),
            expected_version: Some(seen),
            expected_value: None,
        },
    );
}

#[test]
fn hints_for_unknown_shards_or_non_replicas_are_ignored() {
    let mut s = bootstrapped(4, 4, 2);
    let outsider = s
        .active_members()
        .into_iter()
        .find(|m| !s.shards[&ShardId(2)].replicas.contains(m))
        .expect("a node without shard 2");
    let before = json(&s);
    ok(
        &mut s,
        &Command::SetLeaderHints {
            hints: vec![
                (ShardId(99), NodeId(1)),
                (ShardId(2), outsider),
                (ShardId(2), NodeId(42)),
            ],
        },
    );
    assert_eq!(json(&s), before);
}

#[test]
fn hints_need_a_bootstrapped_cluster() {
    let mut s = raftwatch_control::ControlState::default();
    assert_eq!(
        refused(
            &mut s,
            &Command::SetLeaderHints {
                hints: vec![(ShardId(1), NodeId(1))],
            },
        ),
        Refusal::NotBootstrapped
    );
}

#[test]
fn snapshot_without_leader_hints_restores() {
    // A snapshot written before shards had `leader_hint` still restores,
    // with no hints.
    let mut s = bootstrapped(3, 4, 3);
    ok(
        &mut s,
        &Command::SetLeaderHints {
            hints: vec![(ShardId(1), NodeId(2))],
        },
    );
    let mut value: serde_json::Value = serde_json::from_str(&json(&s)).expect("json");
    let shards = value["shards"].as_object_mut().expect("shards object");
    for shard in shards.values_mut() {
        shard
            .as_object_mut()
            .expect("shard object")
            .remove("leader_hint");
    }
    let old = serde_json::to_vec(&value).expect("json");
    assert!(!String::from_utf8_lossy(&old).contains("leader_hint"));

    let mut sm = ControlStateMachine::new();
    sm.restore(&old).expect("an old snapshot restores");
    for sh in s.shards.values_mut() {
        sh.leader_hint = None;
    }
    assert_eq!(sm.state(), &s);
    assert_eq!(decode_state(&old), Ok(s));
}
