//! The write path's promise on a real cluster: an acknowledged write is
//! never lost, not even while shard leaders are killed; a linearizable read
//! started after an acknowledgement sees it; bad input gets its documented
//! error and the node keeps serving.

// Real processes in real time: the determinism seams do not apply here.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use raftwatch_proto::v1 as pb;
use raftwatch_tests::Cluster;
use tonic::transport::Channel;

const WRITERS: u64 = 8;
const SERIES_PER_WRITER: u64 = 125;
const SAMPLES_PER_SERIES: u64 = 8;
/// 8 writers × 125 requests × 125 series × 8 samples = 1,000,000 samples.
const REQUESTS_PER_WRITER: u64 = 125;

fn value(w: u64, k: u64, t: i64) -> f64 {
    ((w * 1_000 + k) * 1_000_000) as f64 + t as f64
}

fn label(name: &str, value: &str) -> pb::Label {
    pb::Label {
        name: name.into(),
        value: value.into(),
    }
}

async fn connect(endpoint: &str) -> Option<Channel> {
    tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .ok()?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .ok()
}

/// One writer, through the client library: each request carries its own
/// request id, so the library's retries (leader hints, backoff, other
/// endpoints) never apply it twice. Returns the acknowledged request
/// numbers.
async fn writer(
    w: u64,
    endpoints: Vec<String>,
    failures: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> Vec<u64> {
    let client = raftwatch_client::Client::new(
        endpoints,
        raftwatch_client::ClientConfig {
            seed: w,
            ..Default::default()
        },
    )
    .expect("client");
    let mut acked = Vec::new();
    // At least REQUESTS_PER_WRITER requests, and on until the killer has
    // done its rounds (bounded), however fast the cluster is.
    let mut r = 0;
    while r < REQUESTS_PER_WRITER || (!stop.load(Ordering::Relaxed) && r < 20 * REQUESTS_PER_WRITER)
    {
        r += 1;
        let r = r - 1;
        let series: Vec<pb::Series> = (0..SERIES_PER_WRITER)
            .map(|k| pb::Series {
                labels: vec![
                    label("__name__", "wp"),
                    label("w", &w.to_string()),
                    label("k", &k.to_string()),
                ],
                samples: (0..SAMPLES_PER_SERIES)
                    .map(|j| {
                        let t = (r * SAMPLES_PER_SERIES + j) as i64 * 1_000;
                        pb::Sample {
                            timestamp_ms: t,
                            value: value(w, k, t),
                        }
                    })
                    .collect(),
            })
            .collect();
        match client.write(series, Some(format!("w{w}-r{r}"))).await {
            Ok(resp) => {
                assert!(
                    resp.rejections.is_empty(),
                    "unexpected rejections: {:?}",
                    &resp.rejections[..1]
                );
                acked.push(r);
            }
            Err(_) => {
                failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    acked
}

async fn read_writer(endpoint: &str, w: u64) -> BTreeMap<(u64, i64), Vec<f64>> {
    let ch = connect(endpoint).await.expect("connect for the read-back");
    let mut client = pb::query_client::QueryClient::new(ch).max_decoding_message_size(256 << 20);
    let resp = client
        .select(pb::SelectRequest {
            matchers: vec![
                pb::LabelMatcher {
                    r#type: pb::MatchType::MatchEqual as i32,
                    name: "__name__".into(),
                    value: "wp".into(),
                },
                pb::LabelMatcher {
                    r#type: pb::MatchType::MatchEqual as i32,
                    name: "w".into(),
                    value: w.to_string(),
                },
            ],
            start_ms: i64::MIN,
            end_ms: i64::MAX,
            consistency: pb::Consistency::Linearizable as i32,
        })
        .await
        .expect("linearizable read-back")
        .into_inner();
    let mut out: BTreeMap<(u64, i64), Vec<f64>> = BTreeMap::new();
    for s in resp.series {
        let k: u64 = s
            .labels
            .iter()
            .find(|l| l.name == "k")
            .expect("k label")
            .value
            .parse()
            .expect("k");
        for x in s.samples {
            out.entry((k, x.timestamp_ms)).or_default().push(x.value);
        }
    }
    out
}

#[test]
fn a_million_acknowledged_samples_survive_shard_leader_kills() {
    let mut c = Cluster::start(3, 8, 3);
    let endpoints: Vec<String> = (1..=3).map(|i| c.endpoint(i)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let writers = {
        let (endpoints, failures, stop) = (endpoints.clone(), failures.clone(), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let tasks: Vec<_> = (0..WRITERS)
                    .map(|w| {
                        tokio::spawn(writer(w, endpoints.clone(), failures.clone(), stop.clone()))
                    })
                    .collect();
                let mut out = Vec::new();
                for t in tasks {
                    out.push(t.await.unwrap());
                }
                out
            })
        })
    };
    // Kill -9 a shard leader every few seconds and bring it back; the
    // writers keep going until at least KILLS have happened.
    const KILLS: usize = 5;
    let mut kills = 0;
    let mut round = 0u64;
    while !writers.is_finished() {
        if kills >= KILLS {
            stop.store(true, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_secs(2));
        if writers.is_finished() {
            break;
        }
        let v = c.status();
        let shards = v["shards"].as_array().unwrap();
        let shard = &shards[(round as usize * 3) % shards.len()];
        round += 1;
        let Some(victim) = shard["leader"].as_u64().filter(|l| *l != 0) else {
            continue;
        };
        c.kill(victim);
        kills += 1;
        std::thread::sleep(Duration::from_secs(1));
        c.spawn(victim);
    }
    stop.store(true, Ordering::Relaxed);
    let acked = writers.join().unwrap();
    c.wait_ready(3, Duration::from_secs(120));
    let total: usize = acked.iter().map(Vec::len).sum();
    eprintln!(
        "{kills} leader kills; {total} of {} requests acknowledged; {} given up",
        WRITERS * REQUESTS_PER_WRITER,
        failures.load(Ordering::Relaxed)
    );
    assert!(kills >= KILLS, "the test must kill leaders while writing");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut checked = 0u64;
    // Through every node: each serves a linearizable read from its own
    // replica (after applying the leader's read index), so this also
    // checks that no replica's log diverged from the others'.
    for ((w, acked), endpoint) in acked
        .iter()
        .enumerate()
        .flat_map(|a| endpoints.iter().map(move |e| (a, e)))
    {
        let w = w as u64;
        let read = rt.block_on(read_writer(endpoint, w));
        for r in acked {
            for k in 0..SERIES_PER_WRITER {
                for j in 0..SAMPLES_PER_SERIES {
                    let t = ((r * SAMPLES_PER_SERIES + j) * 1_000) as i64;
                    match read.get(&(k, t)) {
                        Some(v) => assert_eq!(
                            v,
                            &vec![value(w, k, t)],
                            "sample w{w} k{k} t{t} wrong or duplicated (read through {endpoint})"
                        ),
                        None => panic!(
                            "acknowledged sample w{w} k{k} t{t} is lost (read through {endpoint})"
                        ),
                    }
                    checked += 1;
                }
            }
        }
        for ((k, t), v) in &read {
            assert_eq!(
                v,
                &vec![value(w, *k, *t)],
                "never-written value at w{w} k{k} t{t}"
            );
        }
    }
    assert!(
        checked >= 3 * 900_000,
        "too little was acknowledged: {checked} checks over 3 nodes"
    );
}

#[test]
fn reads_see_every_write_acknowledged_before_they_began() {
    let c = Cluster::start(3, 2, 3);
    let endpoints: Vec<String> = (1..=3).map(|i| c.endpoint(i)).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut transfers = 0;
    for i in 0..60i64 {
        let labels = vec![label("__name__", "ryw"), label("i", &(i % 3).to_string())];
        let sample = pb::Sample {
            timestamp_ms: i * 1_000,
            value: i as f64,
        };
        rt.block_on(async {
            let ch = connect(&endpoints[i as usize % 3]).await.unwrap();
            pb::ingest_client::IngestClient::new(ch)
                .write(pb::WriteRequest {
                    series: vec![pb::Series {
                        labels: labels.clone(),
                        samples: vec![sample],
                    }],
                    request_id: format!("ryw-{i}"),
                    shard_map_epoch: 0,
                    shard: 0,
                })
                .await
                .unwrap();
            // Read through another node than the one that acknowledged.
            let ch = connect(&endpoints[(i as usize + 1) % 3]).await.unwrap();
            let resp = pb::query_client::QueryClient::new(ch)
                .select(pb::SelectRequest {
                    matchers: labels
                        .iter()
                        .map(|l| pb::LabelMatcher {
                            r#type: pb::MatchType::MatchEqual as i32,
                            name: l.name.clone(),
                            value: l.value.clone(),
                        })
                        .collect(),
                    start_ms: i * 1_000,
                    end_ms: i * 1_000,
                    consistency: pb::Consistency::Linearizable as i32,
                })
                .await
                .unwrap()
                .into_inner();
            let got: Vec<f64> = resp
                .series
                .iter()
                .flat_map(|s| s.samples.iter().map(|x| x.value))
                .collect();
            assert_eq!(got, vec![i as f64], "write {i} not visible to a later read");
        });
        // Every 10 writes, move every shard's leadership.
        if i % 10 == 9 {
            let v = c.status();
            for s in v["shards"].as_array().unwrap() {
                let leader = s["leader"].as_u64().unwrap_or(0);
                let to = s["replicas"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|r| r.as_u64())
                    .find(|r| *r != leader)
                    .unwrap();
                let out = c.ctl(&[
                    "shards",
                    "transfer-leader",
                    &s["id"].to_string(),
                    "--to",
                    &to.to_string(),
                ]);
                if out.code == 0 {
                    transfers += 1;
                }
            }
        }
    }
    assert!(transfers > 0, "no leader change happened");
}

/// The public request limit's default (`request_bytes_max`), bytes.
const REQUEST_BYTES_MAX: usize = 32 << 20;

/// `raw_call` sends `message` as the request of the unary method `path`
/// (`/package.Service/Method`) without encoding it: bytes that need not be
/// protobuf at all.
async fn raw_call(ch: &Channel, path: &'static str, message: Vec<u8>) -> Result<(), tonic::Status> {
    let mut raw = tonic::client::Grpc::new(ch.clone());
    raw.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    raw.unary::<Vec<u8>, Vec<u8>, RawCodec>(
        tonic::Request::new(message),
        http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(|_| ())
}

/// Not protobuf: `0xff` repeated is one endless varint.
fn garbage(len: usize) -> Vec<u8> {
    vec![0xff; len]
}

fn assert_undecodable(e: &tonic::Status, what: &str) {
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{what}: {e:?}");
    assert!(
        e.message()
            .starts_with("the request could not be decoded: "),
        "{what}: {e:?}"
    );
}

fn assert_too_large(e: &tonic::Status, limit: usize, what: &str) {
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{what}: {e:?}");
    let m = e.message();
    assert!(
        m.contains(&format!("over this server's limit of {limit} bytes")),
        "{what}: {e:?}"
    );
    assert!(
        m.contains("configurable") && m.contains("request_bytes_max"),
        "{what}: {e:?}"
    );
}

#[test]
fn bad_input_gets_its_documented_error_and_the_node_keeps_serving() {
    let mut c = Cluster::start(3, 2, 3);
    let endpoint = c.endpoint(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ok_series = || pb::Series {
        labels: vec![label("__name__", "ok")],
        samples: vec![pb::Sample {
            timestamp_ms: 1,
            value: 1.0,
        }],
    };
    let write = |series: Vec<pb::Series>, epoch: u64| pb::WriteRequest {
        series,
        request_id: String::new(),
        shard_map_epoch: epoch,
        shard: 0,
    };
    rt.block_on(async {
        let ch = connect(&endpoint).await.unwrap();
        let mut ingest =
            pb::ingest_client::IngestClient::new(ch.clone()).max_encoding_message_size(usize::MAX);

        // A series with 10,000 labels: its samples are rejected one by one
        // (the label limit), the rest of the request is applied.
        let mut huge = ok_series();
        huge.labels = (0..10_000)
            .map(|i| label(&format!("l{i}"), "v"))
            .chain([label("__name__", "huge")])
            .collect();
        let r = ingest
            .write(write(vec![huge, ok_series()], 0))
            .await
            .expect("a request with one bad series is answered")
            .into_inner();
        assert_eq!(r.samples_accepted, 1);
        assert_eq!(r.rejections.len(), 1);
        assert_eq!(r.rejections[0].series_index, 0);
        assert!(r.rejections[0].reason.contains("labels"), "{r:?}");

        // Labels in any order, with an empty value (an absent label): the
        // series is its canonical label set, the same series as the
        // canonical spelling in the same request.
        let messy = pb::Series {
            labels: vec![
                label("zone", "a"),
                label("empty", ""),
                label("__name__", "messy"),
            ],
            samples: vec![pb::Sample {
                timestamp_ms: 1,
                value: 1.0,
            }],
        };
        let tidy = pb::Series {
            labels: vec![label("__name__", "messy"), label("zone", "a")],
            samples: vec![pb::Sample {
                timestamp_ms: 2,
                value: 2.0,
            }],
        };
        let r = ingest
            .write(write(vec![messy, tidy], 0))
            .await
            .expect("non-canonical labels are canonicalised")
            .into_inner();
        assert_eq!((r.samples_accepted, r.rejections.len()), (2, 0), "{r:?}");
        let found = pb::query_client::QueryClient::new(ch.clone())
            .select(pb::SelectRequest {
                matchers: vec![pb::LabelMatcher {
                    r#type: pb::MatchType::MatchEqual as i32,
                    name: "__name__".into(),
                    value: "messy".into(),
                }],
                start_ms: 0,
                end_ms: 10,
                consistency: 0,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found.series.len(), 1, "{found:?}");
        let s = &found.series[0];
        assert_eq!(
            s.labels,
            vec![label("__name__", "messy"), label("zone", "a")]
        );
        let samples: Vec<(i64, f64)> = s
            .samples
            .iter()
            .map(|x| (x.timestamp_ms, x.value))
            .collect();
        assert_eq!(samples, vec![(1, 1.0), (2, 2.0)]);

        // A 100 MB request: refused from its frame header, before it is
        // buffered, as over a limit that names itself.
        let big = pb::Series {
            labels: vec![
                label("__name__", "big"),
                label("pad", &"x".repeat(100 << 20)),
            ],
            samples: vec![],
        };
        let e = ingest.write(write(vec![big], 0)).await.unwrap_err();
        assert_too_large(&e, REQUEST_BYTES_MAX, "a 100 MB write");
        assert!(e.message().starts_with("request message of 1048"), "{e:?}");

        // Too many series in one request.
        let many: Vec<pb::Series> = (0..50_001)
            .map(|i| pb::Series {
                labels: vec![label("__name__", "many"), label("i", &i.to_string())],
                samples: vec![],
            })
            .collect();
        let e = ingest.write(write(many, 0)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");

        // A stale shard-map epoch.
        let e = ingest.write(write(vec![ok_series()], 1)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
        assert!(e.message().contains("epoch"), "{e:?}");

        // Malformed protobuf on a method of every service a node serves.
        for path in [
            "/raftwatch.v1.Ingest/Write",
            "/raftwatch.v1.Query/Select",
            "/raftwatch.v1.Query/Instant",
            "/raftwatch.v1.Admin/ListMembers",
            "/raftwatch.v1.Admin/MoveShard",
            "/raftwatch.v1.NodeInternal/ShardWrite",
        ] {
            let e = raw_call(&ch, path, vec![0xff, 0xff, 0xff, 0x0f, 0x12])
                .await
                .unwrap_err();
            assert_undecodable(&e, path);
            // Field 1, 5 bytes long, of which 1 arrives: cut short.
            let e = raw_call(&ch, path, vec![0x0a, 0x05, 0x01]).await;
            assert_undecodable(&e.unwrap_err(), path);
        }

        // The limit is inclusive, on every public service: a message of
        // exactly REQUEST_BYTES_MAX bytes is read (and fails to decode),
        // one byte more is refused unread.
        for path in [
            "/raftwatch.v1.Ingest/Write",
            "/raftwatch.v1.Query/Instant",
            "/raftwatch.v1.Admin/ClusterStatus",
        ] {
            let e = raw_call(&ch, path, garbage(REQUEST_BYTES_MAX)).await;
            assert_undecodable(&e.unwrap_err(), path);
            let e = raw_call(&ch, path, garbage(REQUEST_BYTES_MAX + 1)).await;
            let e = e.unwrap_err();
            assert_too_large(&e, REQUEST_BYTES_MAX, path);
            assert!(
                e.message().starts_with(&format!(
                    "request message of {} bytes",
                    REQUEST_BYTES_MAX + 1
                )),
                "{path}: {e:?}"
            );
        }

        // A bad regex in a query.
        let e = pb::query_client::QueryClient::new(ch.clone())
            .select(pb::SelectRequest {
                matchers: vec![pb::LabelMatcher {
                    r#type: pb::MatchType::MatchRegex as i32,
                    name: "__name__".into(),
                    value: "(".into(),
                }],
                start_ms: 0,
                end_ms: 1,
                consistency: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");

        // And the node still serves others, on the same connection.
        let r = ingest.write(write(vec![ok_series()], 0)).await.unwrap();
        assert_eq!(r.get_ref().samples_accepted, 1);
        let members = pb::admin_client::AdminClient::new(ch.clone())
            .list_members(pb::ListMembersRequest::default())
            .await
            .unwrap();
        assert_eq!(members.get_ref().members.len(), 3);
    });

    // The limit is a setting: node 3 restarted with 64 KiB refuses a
    // 100 KB write that node 1 still reads.
    c.kill(3);
    c.specs
        .get_mut(&3)
        .unwrap()
        .flags
        .extend(["--request-bytes-max".to_string(), "65536".to_string()]);
    c.spawn(3);
    c.wait_ready(3, Duration::from_secs(90));
    let endpoint3 = c.endpoint(3);
    rt.block_on(async {
        // The status can count node 3 healthy a moment before it serves.
        let deadline = Instant::now() + Duration::from_secs(30);
        let ch3 = loop {
            match connect(&endpoint3).await {
                Some(ch) => break ch,
                None if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None => panic!("node 3 does not serve at {endpoint3}"),
            }
        };
        let mut ingest3 = pb::ingest_client::IngestClient::new(ch3);
        let padded = || pb::Series {
            labels: vec![
                label("__name__", "padded"),
                label("pad", &"x".repeat(100_000)),
            ],
            samples: vec![],
        };
        let e = ingest3.write(write(vec![padded()], 0)).await.unwrap_err();
        assert_too_large(&e, 65536, "100 KB to node 3");
        let ch1 = connect(&endpoint).await.unwrap();
        pb::ingest_client::IngestClient::new(ch1)
            .write(write(vec![padded()], 0))
            .await
            .expect("node 1 keeps the default limit");
        // Node 3 serves requests within its limit (once it has caught up
        // with the control state after its restart).
        let r = loop {
            match ingest3.write(write(vec![ok_series()], 0)).await {
                Ok(r) => break r,
                Err(e) if e.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("node 3 refused a small write: {e:?}"),
            }
        };
        assert_eq!(r.get_ref().samples_accepted, 1);
    });
}

/// Sends and receives raw bytes, for malformed-message tests.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}
