//! Determinism: the same commands give the same state and responses,
//! directly and through `ControlStateMachine`; snapshots round-trip; a bad
//! snapshot is an error that changes nothing.

use proptest::prelude::*;
use raftwatch_control::sm::{ControlQuery, decode_outcome, decode_state, encode_query};
use raftwatch_control::state::encode_command;
use raftwatch_control::{Command, ControlState, ControlStateMachine};
use raftwatch_raft::GroupStateMachine;

use crate::support::{json, ops, resolve};

/// `commands` resolves generated ops into concrete commands by running them
/// once on a scratch state.
fn commands(ops: &[crate::support::Op]) -> Vec<Command> {
    let mut scratch = ControlState::default();
    ops.iter()
        .map(|op| {
            let c = resolve(&scratch, op);
            let _ = scratch.apply(&c);
            c
        })
        .collect()
}

/// `garbage` are snapshots `restore` must refuse.
fn garbage(good: &[u8]) -> Vec<Vec<u8>> {
    vec![
        Vec::new(),
        b"not json".to_vec(),
        b"{}".to_vec(),
        b"null".to_vec(),
        b"[1,2,3]".to_vec(),
        good[..good.len() / 2].to_vec(),
        encode_command(&Command::Rebalance {
            expected_version: None,
        }),
    ]
}

proptest! {
    #[test]
    fn same_commands_same_state_and_responses(ops in ops()) {
        let commands = commands(&ops);
        let (mut a, mut b) = (ControlState::default(), ControlState::default());
        let (mut sm_a, mut sm_b) = (ControlStateMachine::new(), ControlStateMachine::new());
        for (i, c) in commands.iter().enumerate() {
            let out_a = a.apply(c);
            let out_b = b.apply(c);
            prop_assert_eq!(&out_a, &out_b);
            prop_assert_eq!(json(&a), json(&b));

            let bytes = encode_command(c);
            let index = i as u64 + 1;
            let resp_a = sm_a.apply(index, &bytes);
            let resp_b = sm_b.apply(index, &bytes);
            prop_assert_eq!(&resp_a, &resp_b);
            // The machine answers exactly what the state itself answered.
            prop_assert_eq!(decode_outcome(&resp_a), Ok(out_a));
            prop_assert_eq!(json(sm_a.state()), json(&a));
        }
        prop_assert_eq!(json(sm_a.state()), json(sm_b.state()));

        // Snapshot → restore into a fresh machine gives the same state.
        let snap = sm_a.snapshot().expect("a control state snapshots");
        let mut fresh = ControlStateMachine::new();
        prop_assert_eq!(fresh.restore(&snap), Ok(()));
        prop_assert_eq!(json(fresh.state()), json(&a));
        prop_assert_eq!(fresh.snapshot(), Ok(snap.clone()));
        prop_assert_eq!(decode_state(&fresh.query(&encode_query(&ControlQuery::State))), Ok(a.clone()));

        // Garbage is an error and leaves the machine as it was.
        for g in garbage(&snap) {
            prop_assert!(fresh.restore(&g).is_err(), "restored {:?}", String::from_utf8_lossy(&g));
            prop_assert_eq!(fresh.snapshot(), Ok(snap.clone()));
        }

        // The restored machine continues exactly like the original.
        let next = Command::SetSetting { key: "k".into(), value: "v".into(), expected_version: None, expected_value: None };
        let bytes = encode_command(&next);
        prop_assert_eq!(fresh.apply(99, &bytes), sm_a.apply(99, &bytes));
        prop_assert_eq!(fresh.snapshot(), sm_a.snapshot());
    }
}

#[test]
fn undecodable_command_is_refused_without_change() {
    let mut sm = ControlStateMachine::new();
    sm.apply(
        1,
        &encode_command(&crate::support::bootstrap_command(3, 4, 3)),
    );
    let before = sm.snapshot().expect("a control state snapshots");
    for bytes in [
        &b""[..],
        b"\x02{}",
        b"\x01not json",
        b"\x01{\"type\":\"nope\"}",
    ] {
        let resp = decode_outcome(&sm.apply(2, bytes)).expect("a response is an outcome");
        assert!(
            matches!(resp, Err(raftwatch_control::Refusal::Invalid { .. })),
            "{bytes:?}: {resp:?}"
        );
        assert_eq!(
            sm.snapshot().as_ref(),
            Ok(&before),
            "{bytes:?} changed the state"
        );
    }
}

#[test]
fn restore_of_garbage_into_fresh_machine_keeps_it_empty() {
    let mut sm = ControlStateMachine::new();
    let empty = sm.snapshot().expect("a control state snapshots");
    for g in garbage(b"{\"bootstrapped\":true}") {
        assert!(sm.restore(&g).is_err());
        assert_eq!(sm.snapshot().as_ref(), Ok(&empty));
    }
}

#[test]
fn unknown_query_answers_nothing() {
    let sm = ControlStateMachine::new();
    assert!(sm.query(b"garbage").is_empty());
}
