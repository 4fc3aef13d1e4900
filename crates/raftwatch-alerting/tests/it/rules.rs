//! Rule files: Prometheus durations.

use proptest::prelude::*;
use raftwatch_alerting::rules::{format_duration, parse_duration};

#[test]
fn durations_parse_as_prometheus() {
    let ok: &[(&str, i64)] = &[
        ("0", 0),
        ("0s", 0),
        ("1s", 1_000),
        ("30s", 30_000),
        ("1m", 60_000),
        ("1m30s", 90_000),
        ("1h30m", 5_400_000),
        ("2h0m", 7_200_000),
        ("500ms", 500),
        ("1s500ms", 1_500),
        ("1d", 86_400_000),
        ("1w", 604_800_000),
        ("1y", 31_536_000_000),
        (
            "1y2w3d4h5m6s7ms",
            31_536_000_000 + 1_209_600_000 + 259_200_000 + 14_706_007,
        ),
        ("106751d", 106_751 * 86_400_000),
    ];
    for (text, want) in ok {
        assert_eq!(parse_duration(text), Ok(*want), "{text:?}");
    }
    let bad: &[(&str, &str)] = &[
        ("", "empty duration string"),
        ("1", "not a valid duration string: \"1\""),
        ("s", "not a valid duration string: \"s\""),
        ("1x", "unknown unit \"x\" in duration \"1x\""),
        ("30m1h", "not a valid duration string: \"30m1h\""),
        ("1m1m", "not a valid duration string: \"1m1m\""),
        ("-1s", "not a valid duration string: \"-1s\""),
        ("1.5h", "unknown unit \".\" in duration \"1.5h\""),
        (" 1s", "not a valid duration string: \" 1s\""),
        ("1s ", "unknown unit \"s \" in duration \"1s \""),
        ("106752d", "duration out of range"),
        ("300y", "duration out of range"),
        (
            "99999999999999999999s",
            "not a valid duration string: \"99999999999999999999s\"",
        ),
    ];
    for (text, want) in bad {
        assert_eq!(parse_duration(text), Err((*want).to_string()), "{text:?}");
    }
}

#[test]
fn durations_format_as_prometheus() {
    let cases: &[(i64, &str)] = &[
        (0, "0s"),
        (500, "500ms"),
        (1_000, "1s"),
        (90_000, "1m30s"),
        (300_000, "5m"),
        (3_600_001, "1h1ms"),
        (129_600_000, "1d12h"),
        (604_800_000, "1w"),
        (1_209_600_000, "2w"),
        (7_776_000_000, "90d"),
        (31_536_000_000, "1y"),
        (31_622_400_000, "366d"),
        (-90_000, "-1m30s"),
    ];
    for (ms, want) in cases {
        assert_eq!(format_duration(*ms), *want, "{ms}");
        if *ms >= 0 {
            assert_eq!(parse_duration(want), Ok(*ms), "{want}");
        }
    }
}

proptest! {
    #[test]
    fn durations_round_trip(ms in 0i64..=i64::MAX / 1_000_000) {
        prop_assert_eq!(parse_duration(&format_duration(ms)), Ok(ms));
    }
}
