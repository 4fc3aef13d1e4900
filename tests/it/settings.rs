//! Cluster settings as a compare-and-set register (what the Jepsen harness
//! checks for linearizability) on a real cluster of 3 nodes: `settings set
//! --expected-value`, `settings get` on every node, and the gRPC codes.

// Real processes in real time: the determinism seams do not apply here.
#![allow(clippy::disallowed_methods)]

use raftwatch_proto::v1 as pb;
use raftwatch_tests::{Cluster, CtlOutput, ctl};
use serde_json::Value;

const KEY: &str = "jepsen.register";

#[track_caller]
fn json(out: &CtlOutput) -> Value {
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).unwrap()
}

fn get(c: &Cluster, node: u64, consistency: &str) -> CtlOutput {
    ctl(
        &c.endpoint(node),
        &[
            "--output",
            "json",
            "settings",
            "get",
            KEY,
            "--consistency",
            consistency,
        ],
    )
}

fn cas(c: &Cluster, node: u64, value: &str, expected: &str) -> CtlOutput {
    ctl(
        &c.endpoint(node),
        &[
            "--output",
            "json",
            "settings",
            "set",
            KEY,
            value,
            "--expected-value",
            expected,
        ],
    )
}

#[test]
fn settings_are_a_linearizable_compare_and_set_register() {
    let c = Cluster::start(3, 1, 3);

    // Unset: not found, exit 1, in both output formats.
    let out = get(&c, 1, "linearizable");
    assert_eq!(out.code, 1, "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["found"], false, "{v}");
    assert_eq!(
        (v["value"].as_str(), v["version"].as_u64()),
        (Some(""), Some(0))
    );
    let out = c.ctl(&["settings", "get", KEY]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("is not set"), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");

    // "Only if unset" from node 2; then every node, followers included,
    // reads it linearizably at once, with the version it was set at.
    let set = json(&cas(&c, 2, "a", ""));
    let v1 = set["version"].as_u64().unwrap();
    for node in 1..=3 {
        let v = json(&get(&c, node, "linearizable"));
        assert_eq!(
            (
                v["key"].as_str(),
                v["found"].as_bool(),
                v["value"].as_str(),
                v["version"].as_u64()
            ),
            (Some(KEY), Some(true), Some("a"), Some(v1)),
            "node {node}: {v}"
        );
    }
    let table = ok_table(c.ctl(&["settings", "get", KEY]));
    assert_eq!(table, format!("{KEY} = a (version {v1})\n"));

    // Creating it again is refused: it is no longer unset.
    let out = cas(&c, 3, "z", "");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("not the expected"), "{out:?}");

    // a → b, then a stale expectation is refused with FAILED_PRECONDITION
    // and changes nothing.
    let v2 = json(&cas(&c, 3, "b", "a"))["version"].as_u64().unwrap();
    assert!(v2 > v1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (refused, got) = rt.block_on(async {
        let ch = tonic::transport::Endpoint::from_shared(c.endpoint(1))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut admin = pb::admin_client::AdminClient::new(ch);
        let refused = admin
            .set_setting(pb::SetSettingRequest {
                key: KEY.into(),
                value: "c".into(),
                expected_version: 0,
                expected_value: Some("a".into()),
            })
            .await
            .expect_err("a stale expected value is refused");
        let got = admin
            .get_setting(pb::GetSettingRequest {
                key: KEY.into(),
                consistency: pb::Consistency::Linearizable as i32,
            })
            .await
            .unwrap()
            .into_inner();
        (refused, got)
    });
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(refused.message().contains("\"b\""), "{refused:?}");
    assert_eq!(
        got,
        pb::GetSettingResponse {
            found: true,
            value: "b".into(),
            version: v2,
        }
    );

    // Racing compare-and-sets from every node with the same expectation:
    // exactly one wins, and the register holds the winner's value.
    let racers: Vec<_> = (0..6u64)
        .map(|i| {
            let endpoint = c.endpoint(1 + i % 3);
            std::thread::spawn(move || {
                let value = format!("r{i}");
                let out = ctl(
                    &endpoint,
                    &["settings", "set", KEY, &value, "--expected-value", "b"],
                );
                (value, out)
            })
        })
        .collect();
    let results: Vec<(String, CtlOutput)> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    let winners: Vec<&String> = results
        .iter()
        .filter(|(_, out)| out.code == 0)
        .map(|(v, _)| v)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (_, out) in results.iter().filter(|(_, out)| out.code != 0) {
        assert!(out.stderr.contains("not the expected"), "{out:?}");
    }
    let v = json(&get(&c, 2, "linearizable"));
    assert_eq!(v["value"].as_str(), Some(winners[0].as_str()), "{v}");

    // A stale read answers from the node's replica (it may lag, so only
    // its shape is checked), and the version guard still works.
    let stale = get(&c, 3, "stale");
    assert_eq!(stale.code, 0, "{stale:?}");
    let out = c.ctl(&["settings", "set", KEY, "x", "--expected-version", "1"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("version mismatch"), "{out:?}");
}

#[track_caller]
fn ok_table(out: CtlOutput) -> String {
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout
}
