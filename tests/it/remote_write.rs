//! `POST /api/v1/write` (Prometheus remote-write 1.0) on a real cluster:
//! a write is answered 204 only once committed and reads back exactly
//! (staleness marker included) at linearizable consistency through any
//! node; samples refused one by one get 400 naming them while the rest
//! commit; malformed bodies get their documented status and message; the
//! node keeps serving.

// Real processes in real time: the determinism seams do not apply here.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prost::Message;
use raftwatch_proto::prometheus as prom;
use raftwatch_proto::v1 as pb;
use raftwatch_tests::Cluster;

const T0: i64 = 1_700_000_000_000;
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// A raw HTTP/1.0 POST; returns (status, body).
fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

/// (what, body, headers, expected status, expected text in the answer).
type BadCase = (
    &'static str,
    Vec<u8>,
    Vec<(&'static str, &'static str)>,
    u16,
    &'static str,
);

const PROTO: [(&str, &str); 3] = [
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

fn snappy(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(bytes).unwrap()
}

fn body(req: &prom::WriteRequest) -> Vec<u8> {
    snappy(&req.encode_to_vec())
}

fn ts(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> prom::TimeSeries {
    prom::TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| prom::Label {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|(t, v)| prom::Sample {
                value: *v,
                timestamp: *t,
            })
            .collect(),
        histograms: vec![],
    }
}

/// Posts `req` until the cluster answers something other than 503 (a
/// fresh cluster may still be electing); returns that answer.
fn post_write(addr: &str, req: &prom::WriteRequest) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = post(addr, "/api/v1/write", &PROTO, &body(req));
        if r.0 != 503 || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every `rw_*` sample through gRPC `Select` at linearizable consistency:
/// (metric, instance) → timestamp → value bits.
fn read_back(endpoint: &str) -> BTreeMap<(String, String), BTreeMap<i64, u64>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ch = tonic::transport::Endpoint::from_shared(endpoint.to_string())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut q = pb::query_client::QueryClient::new(ch);
        let r = q
            .select(pb::SelectRequest {
                matchers: vec![pb::LabelMatcher {
                    r#type: pb::MatchType::MatchRegex as i32,
                    name: "__name__".into(),
                    value: "rw_.*".into(),
                }],
                start_ms: 0,
                end_ms: i64::MAX,
                consistency: pb::Consistency::Linearizable as i32,
            })
            .await
            .unwrap()
            .into_inner();
        let mut out = BTreeMap::new();
        for s in r.series {
            let get = |n: &str| {
                s.labels
                    .iter()
                    .find(|l| l.name == n)
                    .map(|l| l.value.clone())
                    .unwrap_or_default()
            };
            let points: BTreeMap<i64, u64> = s
                .samples
                .iter()
                .map(|x| (x.timestamp_ms, x.value.to_bits()))
                .collect();
            out.insert((get("__name__"), get("instance")), points);
        }
        out
    })
}

#[test]
fn remote_write_commits_before_204_and_refuses_bad_input_with_its_documented_status() {
    let c = Cluster::start(3, 4, 3);
    let http = |id: u64| c.specs[&id].http.clone();

    // 10 series × 5 samples, the last series ending with a staleness
    // marker; posted to node 1, read back through node 3.
    let mut req = prom::WriteRequest::default();
    let mut want = BTreeMap::new();
    for i in 0..10 {
        let inst = format!("host-{i}");
        let mut samples: Vec<(i64, f64)> = (0..5)
            .map(|k| (T0 + k * 15_000, i as f64 + k as f64 / 4.0))
            .collect();
        if i == 9 {
            samples.push((T0 + 5 * 15_000, f64::from_bits(STALE_NAN_BITS)));
        }
        want.insert(
            ("rw_up".to_string(), inst.clone()),
            samples
                .iter()
                .map(|(t, v)| (*t, v.to_bits()))
                .collect::<BTreeMap<_, _>>(),
        );
        req.timeseries.push(ts(
            &[("__name__", "rw_up"), ("instance", &inst), ("job", "rw")],
            &samples,
        ));
    }
    let (status, text) = post_write(&http(1), &req);
    assert_eq!(status, 204, "{text}");
    assert_eq!(read_back(&c.endpoint(3)), want);

    // The same body again, as Prometheus' own receiver answers it: each
    // series' newest sample is an exact duplicate and accepted, the older
    // ones are out of order (window 0) and refused by name; nothing
    // changes.
    let (status, text) = post_write(&http(2), &req);
    assert_eq!(status, 400, "{text}");
    assert!(
        text.starts_with("10 samples committed, 41 refused"),
        "{text}"
    );
    assert!(text.contains("out of order"), "{text}");
    assert_eq!(read_back(&c.endpoint(2)), want);

    // Refused one by one: an older sample than committed ones beyond the
    // out-of-order window, and a duplicate timestamp with another value.
    // The good sample in the same request commits.
    let mixed = prom::WriteRequest {
        timeseries: vec![
            ts(
                &[("__name__", "rw_up"), ("instance", "host-0"), ("job", "rw")],
                &[(T0, 99.0)],
            ),
            ts(
                &[("__name__", "rw_new"), ("instance", "host-0")],
                &[(T0, 1.5)],
            ),
        ],
    };
    let (status, text) = post_write(&http(1), &mixed);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("1 samples committed, 1 refused"), "{text}");
    assert!(text.contains("host-0"), "{text}");
    let got = read_back(&c.endpoint(1));
    assert_eq!(
        got[&("rw_new".to_string(), "host-0".to_string())][&T0],
        1.5f64.to_bits()
    );
    assert_eq!(
        got[&("rw_up".to_string(), "host-0".to_string())][&T0],
        0f64.to_bits()
    );

    // Malformed bodies: the status, the reason, nothing written.
    let cases: Vec<BadCase> = vec![
        (
            "bad snappy",
            b"\xff\xff\xff\xff\xff".to_vec(),
            PROTO.to_vec(),
            400,
            "snappy",
        ),
        (
            "bad protobuf",
            snappy(b"\x0a\xff\xff\xff"),
            PROTO.to_vec(),
            400,
            "protobuf",
        ),
        (
            "unsorted labels",
            body(&prom::WriteRequest {
                timeseries: vec![ts(&[("job", "x"), ("__name__", "rw_bad")], &[(T0, 1.0)])],
            }),
            PROTO.to_vec(),
            400,
            "not sorted",
        ),
        (
            "duplicate labels",
            body(&prom::WriteRequest {
                timeseries: vec![ts(
                    &[("__name__", "rw_bad"), ("__name__", "rw_bad2")],
                    &[(T0, 1.0)],
                )],
            }),
            PROTO.to_vec(),
            400,
            "appears twice",
        ),
        (
            "empty name",
            body(&prom::WriteRequest {
                timeseries: vec![ts(&[("", "x"), ("__name__", "rw_bad")], &[(T0, 1.0)])],
            }),
            PROTO.to_vec(),
            400,
            "empty name",
        ),
        (
            "not protobuf",
            body(&req),
            vec![("Content-Type", "application/json")],
            415,
            "application/x-protobuf",
        ),
        (
            // A snappy header claiming 1 GiB decoded: refused from the
            // header, before anything is decompressed.
            "decompression bomb",
            [vec![0x80, 0x80, 0x80, 0x80, 0x04], vec![0u8; 16]].concat(),
            PROTO.to_vec(),
            413,
            "the limit is",
        ),
    ];
    for (what, bytes, headers, want_status, want_text) in cases {
        let (status, text) = post(&http(2), "/api/v1/write", &headers, &bytes);
        assert_eq!(status, want_status, "{what}: {text}");
        assert!(text.contains(want_text), "{what}: {text}");
    }
    let after = read_back(&c.endpoint(2));
    assert!(!after.keys().any(|(m, _)| m == "rw_bad"), "{after:?}");

    // The node is unharmed.
    let late = prom::WriteRequest {
        timeseries: vec![ts(&[("__name__", "rw_late")], &[(T0, 7.0)])],
    };
    assert_eq!(post_write(&http(2), &late).0, 204);
}
