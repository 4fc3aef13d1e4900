//! Settings: the version and value compare-and-sets of `SetSetting`.

use raftwatch_control::state::{decode_command, encode_command};
use raftwatch_control::{Command, Refusal};

use crate::support::{bootstrapped, ok, refused};

fn set(key: &str, value: &str, expected_value: Option<&str>) -> Command {
    Command::SetSetting {
        key: key.into(),
        value: value.into(),
        expected_version: None,
        expected_value: expected_value.map(str::to_string),
    }
}

#[test]
fn value_cas_applies_when_the_value_matches() {
    let mut s = bootstrapped(3, 2, 3);
    let first = ok(&mut s, &set("k", "a", None));
    assert_eq!(s.settings["k"], ("a".to_string(), first.version));
    let second = ok(&mut s, &set("k", "b", Some("a")));
    assert_eq!(second.version, first.version + 1);
    assert_eq!(s.settings["k"], ("b".to_string(), second.version));
    // Setting the value it already has, conditionally, is still a write.
    let third = ok(&mut s, &set("k", "b", Some("b")));
    assert_eq!(s.settings["k"], ("b".to_string(), third.version));
}

#[test]
fn value_cas_mismatch_is_refused_and_changes_nothing() {
    let mut s = bootstrapped(3, 2, 3);
    ok(&mut s, &set("k", "a", None));
    let before = s.clone();
    // `refused` also checks the serialized state is byte for byte the same.
    assert_eq!(
        refused(&mut s, &set("k", "c", Some("b"))),
        Refusal::ValueMismatch {
            key: "k".into(),
            expected: "b".into(),
            actual: "a".into(),
        }
    );
    assert_eq!(
        refused(&mut s, &set("k", "c", Some(""))),
        Refusal::ValueMismatch {
            key: "k".into(),
            expected: String::new(),
            actual: "a".into(),
        }
    );
    assert_eq!(s, before, "the version is not bumped either");
    // The refusal says what the value is, for an operator reading it.
    let message = refused(&mut s, &set("k", "c", Some("b"))).to_string();
    assert!(
        message.contains("\"a\"") && message.contains("\"b\""),
        "{message}"
    );
}

#[test]
fn an_absent_key_compares_as_the_empty_string() {
    let mut s = bootstrapped(3, 2, 3);
    assert_eq!(
        refused(&mut s, &set("k", "a", Some("x"))),
        Refusal::ValueMismatch {
            key: "k".into(),
            expected: "x".into(),
            actual: String::new(),
        }
    );
    assert!(!s.settings.contains_key("k"));
    // "Only if unset": the first writer wins, the second is refused.
    ok(&mut s, &set("k", "a", Some("")));
    assert_eq!(s.settings["k"].0, "a");
    assert!(matches!(
        refused(&mut s, &set("k", "b", Some(""))),
        Refusal::ValueMismatch { .. }
    ));
    // A key set to "" matches "" too (documented: absent and empty are the
    // same for this comparison).
    ok(&mut s, &set("e", "", None));
    ok(&mut s, &set("e", "x", Some("")));
}

#[test]
fn version_cas_is_checked_before_the_value() {
    let mut s = bootstrapped(3, 2, 3);
    ok(&mut s, &set("k", "a", None));
    let actual = s.version;
    let c = Command::SetSetting {
        key: "k".into(),
        value: "b".into(),
        expected_version: Some(actual + 5),
        expected_value: Some("zzz".into()),
    };
    assert_eq!(
        refused(&mut s, &c),
        Refusal::VersionMismatch {
            expected: actual + 5,
            actual,
        }
    );
    // Both right: applied.
    let both = Command::SetSetting {
        key: "k".into(),
        value: "b".into(),
        expected_version: Some(actual),
        expected_value: Some("a".into()),
    };
    ok(&mut s, &both);
    assert_eq!(s.settings["k"].0, "b");
}

#[test]
fn entries_written_before_expected_value_existed_still_decode() {
    // A SetSetting as the log held it before the field was added.
    let mut old = vec![1u8];
    old.extend_from_slice(
        br#"{"type":"set_setting","key":"k","value":"v","expected_version":null}"#,
    );
    assert_eq!(decode_command(&old), Ok(set("k", "v", None)));
    // And the new field round-trips.
    let new = set("k", "v", Some("u"));
    assert_eq!(decode_command(&encode_command(&new)), Ok(new));
}
