//! Refusals: each names what is wrong and leaves the state unchanged
//! (`support::refused` compares the serialized state before and after).

use raftwatch_control::{Command, ControlState, MemberState, Refusal, ShardId};
use raftwatch_raft::NodeId;

use crate::support::{INVALID_ADDRS, addr, bootstrapped, ok, refused, run_tasks};

fn mv(shard: u64, from: u64, to: u64) -> Command {
    Command::StartMove {
        shard: ShardId(shard),
        from: NodeId(from),
        to: NodeId(to),
        reason: "operator".into(),
        expected_version: None,
    }
}

fn add(id: u64, grpc: &str) -> Command {
    Command::AddMember {
        id: NodeId(id),
        grpc_addr: grpc.into(),
        http_addr: String::new(),
        expected_version: None,
    }
}

#[track_caller]
fn precondition(r: Refusal) -> String {
    match r {
        Refusal::Precondition { message } => message,
        other => panic!("expected a precondition refusal, got {other:?}"),
    }
}

/// 4 nodes, 4 shards, RF 2: shard 1 is on nodes 1 and 2.
fn state() -> ControlState {
    let s = bootstrapped(4, 4, 2);
    assert_eq!(s.shards[&ShardId(1)].replicas, vec![NodeId(1), NodeId(2)]);
    s
}

#[test]
fn move_to_unknown_node() {
    let mut s = state();
    assert_eq!(
        refused(&mut s, &mv(1, 1, 9)),
        Refusal::UnknownNode { node: 9 }
    );
    assert_eq!(
        refused(&mut s, &mv(1, 9, 3)),
        Refusal::UnknownNode { node: 9 }
    );
}

#[test]
fn move_of_unknown_shard() {
    let mut s = state();
    assert_eq!(
        refused(&mut s, &mv(99, 1, 3)),
        Refusal::UnknownShard { shard: 99 }
    );
    assert_eq!(
        refused(&mut s, &mv(0, 1, 3)),
        Refusal::UnknownShard { shard: 0 }
    );
}

#[test]
fn move_to_a_node_already_holding_the_shard() {
    let mut s = state();
    let m = precondition(refused(&mut s, &mv(1, 1, 2)));
    assert!(m.contains("below its replication factor"), "{m}");
}

#[test]
fn move_to_itself() {
    let mut s = state();
    assert!(matches!(
        refused(&mut s, &mv(1, 1, 1)),
        Refusal::Invalid { .. }
    ));
}

#[test]
fn move_from_a_node_not_holding_the_shard() {
    let mut s = state();
    let m = precondition(refused(&mut s, &mv(1, 3, 4)));
    assert!(m.contains("holds no replica"), "{m}");
}

#[test]
fn move_to_a_node_that_is_not_active() {
    let mut s = state();
    ok(&mut s, &add(5, &addr(5)));
    let m = precondition(refused(&mut s, &mv(1, 1, 5)));
    assert!(m.contains("joining"), "{m}");
}

#[test]
fn second_move_on_a_busy_shard() {
    let mut s = state();
    ok(&mut s, &mv(1, 1, 3));
    let m = precondition(refused(&mut s, &mv(1, 2, 4)));
    assert!(m.contains("already has a move in progress"), "{m}");
    // Busy until the move's last step, free again after it.
    run_tasks(&mut s, |_| {});
    ok(&mut s, &mv(1, 2, 4));
}

#[test]
fn malformed_addresses_in_add_member() {
    let mut s = state();
    for bad in INVALID_ADDRS {
        assert!(
            matches!(refused(&mut s, &add(5, bad)), Refusal::Invalid { .. }),
            "{bad:?} was not refused as invalid"
        );
        let with_bad_http = Command::AddMember {
            id: NodeId(5),
            grpc_addr: addr(5),
            http_addr: (*bad).to_string(),
            expected_version: None,
        };
        // The empty HTTP address means "unknown" and is allowed.
        if !bad.is_empty() {
            assert!(matches!(
                refused(&mut s, &with_bad_http),
                Refusal::Invalid { .. }
            ));
        }
    }
    assert!(matches!(
        refused(&mut s, &add(0, &addr(0))),
        Refusal::Invalid { .. }
    ));
}

#[test]
fn reused_address_or_changed_address() {
    let mut s = state();
    // Another live member's address.
    let m = precondition(refused(&mut s, &add(5, &addr(1))));
    assert!(m.contains("already belongs to node 1"), "{m}");
    // A known member at a different address.
    let m = precondition(refused(&mut s, &add(1, &addr(5))));
    assert!(m.contains("already registered"), "{m}");
    // The same member at the same address is accepted (idempotent).
    ok(&mut s, &add(1, &addr(1)));
}

#[test]
fn reused_id_of_a_removed_node() {
    let mut s = state();
    ok(&mut s, &add(5, &addr(5)));
    ok(
        &mut s,
        &Command::Remove {
            id: NodeId(5),
            expected_version: None,
        },
    );
    assert_eq!(s.members[&NodeId(5)].state, MemberState::Removed);
    let m = precondition(refused(&mut s, &add(5, &addr(5))));
    assert!(m.contains("never reused"), "{m}");
    let m = precondition(refused(&mut s, &add(5, "elsewhere:1")));
    assert!(m.contains("never reused"), "{m}");
    // Its address is free again for a new id.
    ok(&mut s, &add(6, &addr(5)));
}

#[test]
fn compare_and_set_mismatch() {
    let mut s = state();
    let actual = s.version;
    let commands = |v: u64| {
        vec![
            Command::SetSetting {
                key: "k".into(),
                value: "v".into(),
                expected_version: Some(v),
                expected_value: None,
            },
            Command::AddMember {
                id: NodeId(5),
                grpc_addr: addr(5),
                http_addr: String::new(),
                expected_version: Some(v),
            },
            Command::Promote {
                id: NodeId(1),
                expected_version: Some(v),
            },
            Command::Drain {
                id: NodeId(4),
                expected_version: Some(v),
            },
            Command::Remove {
                id: NodeId(4),
                expected_version: Some(v),
            },
            Command::StartMove {
                shard: ShardId(1),
                from: NodeId(1),
                to: NodeId(3),
                reason: "operator".into(),
                expected_version: Some(v),
            },
            Command::Rebalance {
                expected_version: Some(v),
            },
        ]
    };
    for expected in [0, actual - 1, actual + 1, u64::MAX] {
        for c in commands(expected) {
            assert_eq!(
                refused(&mut s, &c),
                Refusal::VersionMismatch { expected, actual },
                "{c:?}"
            );
        }
    }
    // The right version is accepted and bumps it.
    let applied = ok(&mut s, &commands(actual).remove(0));
    assert_eq!(applied.version, actual + 1);
    assert_eq!(s.settings["k"], ("v".to_string(), actual + 1));
}

#[test]
fn bootstrap_refusals() {
    let mut s = ControlState::default();
    assert_eq!(
        refused(
            &mut s,
            &Command::Rebalance {
                expected_version: None
            }
        ),
        Refusal::NotBootstrapped
    );
    for bad in [
        crate::support::bootstrap_command(0, 4, 1),
        crate::support::bootstrap_command(3, 0, 1),
        crate::support::bootstrap_command(3, raftwatch_control::state::SHARDS_MAX + 1, 1),
        crate::support::bootstrap_command(3, 4, 0),
        crate::support::bootstrap_command(3, 4, 4),
        Command::Bootstrap {
            members: vec![(NodeId(1), addr(1), String::new()); 2],
            shards: 1,
            replication_factor: 1,
        },
        Command::Bootstrap {
            members: vec![(NodeId(0), addr(0), String::new())],
            shards: 1,
            replication_factor: 1,
        },
        Command::Bootstrap {
            members: vec![(NodeId(1), "nohost".into(), String::new())],
            shards: 1,
            replication_factor: 1,
        },
        // A bad address after good members: nothing of them may stick.
        Command::Bootstrap {
            members: vec![
                (NodeId(1), addr(1), String::new()),
                (NodeId(2), addr(2), "bad http".into()),
            ],
            shards: 1,
            replication_factor: 1,
        },
    ] {
        assert!(
            matches!(refused(&mut s, &bad), Refusal::Invalid { .. }),
            "{bad:?}"
        );
    }
    ok(&mut s, &crate::support::bootstrap_command(3, 4, 3));
    assert_eq!(
        refused(&mut s, &crate::support::bootstrap_command(3, 4, 3)),
        Refusal::AlreadyBootstrapped
    );
}

#[test]
fn advance_task_refusals() {
    let mut s = state();
    let t = ok(&mut s, &mv(1, 1, 3)).tasks.remove(0);
    let m = precondition(refused(
        &mut s,
        &Command::AdvanceTask {
            id: t.id,
            done: raftwatch_control::MoveStep::Promote,
        },
    ));
    assert!(m.contains("add-learner"), "{m}");
    let m = precondition(refused(
        &mut s,
        &Command::AdvanceTask {
            id: t.id + 1,
            done: raftwatch_control::MoveStep::AddLearner,
        },
    ));
    assert!(m.contains("no task"), "{m}");
}

#[test]
fn empty_setting_key() {
    let mut s = state();
    assert!(matches!(
        refused(
            &mut s,
            &Command::SetSetting {
                key: String::new(),
                value: "v".into(),
                expected_version: None,
                expected_value: None,
            }
        ),
        Refusal::Invalid { .. }
    ));
}
