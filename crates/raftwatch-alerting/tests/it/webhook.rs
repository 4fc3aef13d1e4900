//! Fingerprints, RFC 3339 times and the webhook payload.

use proptest::prelude::*;
use raftwatch_alerting::LabelSet;
use raftwatch_alerting::webhook::{
    WebhookAlert, ZERO_TIME, ZERO_TIME_MS, build_payload, fingerprint, fingerprint_hex,
    parse_rfc3339_ms, rfc3339_ms, sort_alerts,
};

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// FNV-1a 64 straight from its definition, over the bytes Prometheus
/// feeds it: for each label in name order, name, 0xff, value, 0xff.
fn reference_fingerprint(labels: &LabelSet) -> u64 {
    let mut bytes = Vec::new();
    for (name, value) in labels {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0xff);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0xff);
    }
    let mut h: u64 = 14_695_981_039_346_656_037;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(1_099_511_628_211);
    }
    h
}

#[test]
fn fingerprint_of_the_empty_set_is_the_offset_basis() {
    assert_eq!(fingerprint(&LabelSet::new()), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fingerprint_hex(0xcbf2_9ce4_8422_2325), "cbf29ce484222325");
    assert_eq!(fingerprint_hex(0x2a), "000000000000002a");
}

#[test]
fn fingerprint_of_one_label_by_hand() {
    // {a="b"}: FNV-1a over 'a', 0xff, 'b', 0xff, one byte at a time.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in [b'a', 0xff, b'b', 0xff] {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    assert_eq!(fingerprint(&labels(&[("a", "b")])), h);
    // The separator keeps {ab=""} and {a="b"} apart.
    assert_ne!(
        fingerprint(&labels(&[("ab", "")])),
        fingerprint(&labels(&[("a", "b")]))
    );
}

#[test]
fn fingerprints_match_alertmanager() {
    // Values from Alertmanager's own tests (template/template_test.go and
    // api/v2/api_test.go), computed there by Prometheus's model package.
    let cases = [
        (
            &[("severity", "warning"), ("job", "foo")][..],
            "9266ef3da838ad95",
        ),
        (
            &[("severity", "critical"), ("job", "foo")][..],
            "3b15fd163d36582e",
        ),
        (
            &[("severity", "critical"), ("job", "bar")][..],
            "c7e68cb08e3e67f9",
        ),
        (
            &[("severity", "critical"), ("alertname", "alert1")][..],
            "0223b772b51c29e1",
        ),
    ];
    for (pairs, want) in cases {
        assert_eq!(
            fingerprint_hex(fingerprint(&labels(pairs))),
            want,
            "{pairs:?}"
        );
    }
}

proptest! {
    #[test]
    fn fingerprint_matches_the_definition(
        set in proptest::collection::btree_map("\\PC{0,6}", "\\PC{0,6}", 0..6)
    ) {
        prop_assert_eq!(fingerprint(&set), reference_fingerprint(&set));
        prop_assert_eq!(fingerprint_hex(fingerprint(&set)).len(), 16);
    }
}

#[test]
fn formats_times_as_go_rfc3339nano() {
    let cases = [
        (0, "1970-01-01T00:00:00Z"),
        (1, "1970-01-01T00:00:00.001Z"),
        (1_796_007_845_123, "2026-11-30T03:04:05.123Z"),
        (1_796_007_845_120, "2026-11-30T03:04:05.12Z"),
        (1_796_007_845_100, "2026-11-30T03:04:05.1Z"),
        (1_796_007_845_000, "2026-11-30T03:04:05Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (-14_182_940_000, "1969-07-20T20:17:40Z"),
        (-2_203_934_400_000, "1900-02-28T12:00:00Z"),
        (951_868_799_001, "2000-02-29T23:59:59.001Z"),
        (-11_670_912_000_000, "1600-03-01T00:00:00Z"),
        (ZERO_TIME_MS, ZERO_TIME),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        (-62_167_219_200_000, "0000-01-01T00:00:00Z"),
        // Outside RFC 3339's years, written as Go writes them.
        (-62_167_219_200_001, "-0001-12-31T23:59:59.999Z"),
        (253_402_300_800_000, "10000-01-01T00:00:00Z"),
    ];
    for (ms, want) in cases {
        assert_eq!(rfc3339_ms(ms), want, "{ms}");
        if (-62_167_219_200_000..=253_402_300_799_999).contains(&ms) {
            assert_eq!(parse_rfc3339_ms(want), Ok(ms), "{want}");
        }
    }
    // The extremes do not overflow.
    assert!(rfc3339_ms(i64::MIN).starts_with('-'));
    assert!(rfc3339_ms(i64::MAX).ends_with('Z'));
}

#[test]
fn parses_offsets_and_fractions() {
    let t = 1_796_007_845_123;
    let cases = [
        ("2026-11-30T03:04:05.123Z", t),
        ("2026-11-30t03:04:05.123z", t),
        ("2026-11-30T05:04:05.123+02:00", t),
        ("2026-11-29T23:34:05.123-03:30", t),
        ("2026-11-30T03:04:05.123+00:00", t),
        ("2026-11-30T03:04:05.123-00:00", t),
        ("2026-11-30T03:04:05.1234Z", t),
        ("2026-11-30T03:04:05.123999999Z", t),
        // Digits past nanoseconds are ignored, as Go does.
        ("2026-11-30T03:04:05.1239999999999Z", t),
        ("2026-11-30T03:04:05.1Z", t - 23),
        ("2026-11-30T03:04:05Z", t - 123),
        // Fractions count forward in time, so before 1970 the result
        // rounds toward negative infinity.
        ("1969-12-31T23:59:59.9999Z", -1),
        ("1969-12-31T23:59:59.000999Z", -1000),
        ("1970-01-01T00:30:00+01:00", -1_800_000),
        ("0001-01-01T00:00:00Z", ZERO_TIME_MS),
        ("2024-02-29T00:00:00Z", 1_709_164_800_000),
    ];
    for (text, want) in cases {
        assert_eq!(parse_rfc3339_ms(text), Ok(want), "{text}");
    }
}

#[test]
fn refuses_bad_times() {
    for text in [
        "",
        "2026-11-30",
        "2026-11-30T03:04:05",
        "2026-11-30 03:04:05Z",
        "2026-11-30T03:04:05.Z",
        "2026-11-30T03:04:05ZZ",
        "2026-11-30T03:04:05+02",
        "2026-11-30T03:04:05+0200",
        "2026-11-30T03:04:05+24:00",
        "2026-11-30T03:04:05+02:60",
        "2026-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-04-00T00:00:00Z",
        "2026-11-30T24:00:00Z",
        "2026-11-30T23:60:00Z",
        "2026-11-30T23:59:60Z",
        "26-11-30T03:04:05Z",
        "+2026-11-30T03:04:05Z",
        "2026-1-30T03:04:05Z",
        "２026-11-30T03:04:05Z",
        "2026-11-30T03:04:05.123Z ",
    ] {
        assert!(
            parse_rfc3339_ms(text).is_err(),
            "{text:?} gave {:?}",
            parse_rfc3339_ms(text)
        );
    }
}

proptest! {
    #[test]
    fn rfc3339_round_trips(ms in -62_167_219_200_000i64..=253_402_300_799_999) {
        let text = rfc3339_ms(ms);
        prop_assert_eq!(parse_rfc3339_ms(&text), Ok(ms), "{}", text);
    }

    #[test]
    fn rfc3339_never_panics(ms in any::<i64>(), text in "\\PC{0,40}") {
        let _ = rfc3339_ms(ms);
        let _ = parse_rfc3339_ms(&text);
    }
}

fn alert(status: &str, l: &[(&str, &str)], a: &[(&str, &str)]) -> WebhookAlert {
    let labels = labels(l);
    WebhookAlert {
        status: status.to_string(),
        fingerprint: fingerprint_hex(fingerprint(&labels)),
        labels,
        annotations: self::labels(a),
        starts_at: rfc3339_ms(1_796_007_845_123),
        ends_at: if status == "firing" {
            ZERO_TIME.to_string()
        } else {
            rfc3339_ms(1_796_007_905_123)
        },
        generator_url: "http://prom/graph".to_string(),
    }
}

#[test]
fn payload_mirrors_alertmanagers_template_data() {
    // Alertmanager's template/template_test.go "common labels" case.
    let alerts = vec![
        alert(
            "firing",
            &[("severity", "warning"), ("job", "foo")],
            &[("description", "something happened"), ("runbook", "foo")],
        ),
        alert(
            "resolved",
            &[("severity", "critical"), ("job", "foo")],
            &[
                ("description", "something else happened"),
                ("runbook", "foo"),
            ],
        ),
    ];
    let p = build_payload(
        "webhook",
        "{}:{job=\"foo\"}",
        &labels(&[("job", "foo")]),
        alerts.clone(),
        0,
        "http://raftwatch:9093",
        "key-1",
    );
    assert_eq!(p.version, "4");
    assert_eq!(p.status, "firing");
    assert_eq!(p.receiver, "webhook");
    assert_eq!(p.truncated_alerts, 0);
    assert_eq!(p.group_labels, labels(&[("job", "foo")]));
    assert_eq!(p.common_labels, labels(&[("job", "foo")]));
    assert_eq!(p.common_annotations, labels(&[("runbook", "foo")]));
    assert_eq!(p.alerts, alerts);
    assert_eq!(p.alerts[0].fingerprint, "9266ef3da838ad95");
    assert_eq!(p.alerts[1].fingerprint, "3b15fd163d36582e");

    let json: serde_json::Value = serde_json::from_slice(&p.to_json()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "version": "4",
            "groupKey": "{}:{job=\"foo\"}",
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "webhook",
            "groupLabels": {"job": "foo"},
            "commonLabels": {"job": "foo"},
            "commonAnnotations": {"runbook": "foo"},
            "externalURL": "http://raftwatch:9093",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"job": "foo", "severity": "warning"},
                    "annotations": {"description": "something happened", "runbook": "foo"},
                    "startsAt": "2026-11-30T03:04:05.123Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prom/graph",
                    "fingerprint": "9266ef3da838ad95"
                },
                {
                    "status": "resolved",
                    "labels": {"job": "foo", "severity": "critical"},
                    "annotations": {"description": "something else happened", "runbook": "foo"},
                    "startsAt": "2026-11-30T03:04:05.123Z",
                    "endsAt": "2026-11-30T03:05:05.123Z",
                    "generatorURL": "http://prom/graph",
                    "fingerprint": "3b15fd163d36582e"
                }
            ],
            "idempotencyKey": "key-1"
        })
    );
}

#[test]
fn payload_status_and_common_pairs() {
    let empty = build_payload("r", "k", &LabelSet::new(), vec![], 0, "", "i");
    assert_eq!(empty.status, "resolved");
    assert!(empty.common_labels.is_empty() && empty.alerts.is_empty());

    let resolved = build_payload(
        "r",
        "k",
        &LabelSet::new(),
        vec![
            alert("resolved", &[("a", "1"), ("b", "2")], &[]),
            alert("resolved", &[("a", "1"), ("b", "3")], &[]),
        ],
        0,
        "",
        "i",
    );
    assert_eq!(resolved.status, "resolved");
    assert_eq!(resolved.common_labels, labels(&[("a", "1")]));

    // Go compares an absent label as "", so an empty value survives.
    let p = build_payload(
        "r",
        "k",
        &LabelSet::new(),
        vec![
            alert("firing", &[("a", "1"), ("e", "")], &[("x", "")]),
            alert("firing", &[("a", "1")], &[]),
        ],
        0,
        "",
        "i",
    );
    assert_eq!(p.common_labels, labels(&[("a", "1"), ("e", "")]));
    assert_eq!(p.common_annotations, labels(&[("x", "")]));
}

#[test]
fn payload_truncates_before_summarising() {
    let alerts = vec![
        alert("resolved", &[("a", "1"), ("n", "1")], &[]),
        alert("resolved", &[("a", "1"), ("n", "2")], &[]),
        alert("firing", &[("a", "2"), ("n", "3")], &[]),
    ];
    let p = build_payload("r", "k", &LabelSet::new(), alerts.clone(), 2, "", "i");
    assert_eq!(p.truncated_alerts, 1);
    assert_eq!(p.alerts, alerts[..2].to_vec());
    // As in Alertmanager, the dropped firing alert does not count.
    assert_eq!(p.status, "resolved");
    assert_eq!(p.common_labels, labels(&[("a", "1")]));

    for max in [0, 3, 4, u64::MAX] {
        let p = build_payload("r", "k", &LabelSet::new(), alerts.clone(), max, "", "i");
        assert_eq!(p.truncated_alerts, 0, "{max}");
        assert_eq!(p.alerts.len(), 3);
        assert_eq!(p.status, "firing");
    }
    let p = build_payload("r", "k", &LabelSet::new(), alerts, 1, "", "i");
    assert_eq!((p.truncated_alerts, p.alerts.len()), (2, 1));
}

#[test]
fn payload_receiver_is_regex_quoted_like_alertmanager() {
    let p = build_payload("team.a (prod)|x", "k", &LabelSet::new(), vec![], 0, "", "i");
    assert_eq!(p.receiver, r"team\.a \(prod\)\|x");
    let p = build_payload("team-a_b", "k", &LabelSet::new(), vec![], 0, "", "i");
    assert_eq!(p.receiver, "team-a_b");
}

#[test]
fn sorts_alerts_like_alertmanager() {
    let mut alerts = vec![
        alert("firing", &[("x", "1"), ("y", "1")], &[]),
        alert("firing", &[("x", "1")], &[]),
        alert("firing", &[("instance", "b"), ("job", "api")], &[]),
        alert("firing", &[("instance", "a"), ("job", "api")], &[]),
        alert("firing", &[("job", "api")], &[]),
        alert("firing", &[("instance", "z")], &[]),
        alert("firing", &[("job", "aaa"), ("zzz", "1")], &[]),
        alert("firing", &[("w", "2")], &[]),
        alert("firing", &[("x", "0")], &[]),
    ];
    sort_alerts(&mut alerts);
    let order: Vec<LabelSet> = alerts.into_iter().map(|a| a.labels).collect();
    assert_eq!(
        order,
        vec![
            labels(&[("job", "aaa"), ("zzz", "1")]),
            labels(&[("instance", "a"), ("job", "api")]),
            labels(&[("instance", "b"), ("job", "api")]),
            labels(&[("job", "api")]),
            labels(&[("instance", "z")]),
            // No job or instance: fewer labels first, then the first
            // differing name: lacking it sorts first.
            labels(&[("x", "0")]),
            labels(&[("x", "1")]),
            labels(&[("w", "2")]),
            labels(&[("x", "1"), ("y", "1")]),
        ]
    );
}
