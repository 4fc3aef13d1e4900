//! The command codec: a version byte, then JSON. Decoding bytes from the log
//! never panics, whatever they are.

use proptest::prelude::*;
use raftwatch_control::state::{decode_command, encode_command};
use raftwatch_control::{Command, ControlState};

use crate::support::{ops, resolve};

#[test]
fn unknown_version_and_empty_input_are_errors() {
    let good = encode_command(&Command::Rebalance {
        expected_version: None,
    });
    assert_eq!(good[0], 1);
    assert_eq!(
        decode_command(&[]),
        Err("empty control command".to_string())
    );
    for v in [0u8, 2, 0x7b /* '{' */, 255] {
        let mut bytes = good.clone();
        bytes[0] = v;
        let e = decode_command(&bytes).expect_err("unknown version accepted");
        assert!(e.contains("not supported"), "{e}");
    }
    assert!(decode_command(&[1]).is_err());
    assert!(decode_command(&good[..good.len() - 1]).is_err());
}

proptest! {
    #[test]
    fn decode_of_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_command(&bytes);
        // Also with the right version byte in front, to reach the JSON parser.
        let mut v1 = vec![1u8];
        v1.extend(&bytes);
        let _ = decode_command(&v1);
    }

    #[test]
    fn decode_of_mangled_commands_never_panics(ops in ops(), flip in any::<(usize, u8)>()) {
        let mut state = ControlState::default();
        for op in &ops {
            let c = resolve(&state, op);
            let mut bytes = encode_command(&c);
            prop_assert_eq!(decode_command(&bytes), Ok(c.clone()));
            let i = flip.0 % bytes.len();
            bytes[i] ^= flip.1;
            let _ = decode_command(&bytes);
            bytes.truncate(i);
            let _ = decode_command(&bytes);
            let _ = state.apply(&c);
        }
    }
}
