//! The client's write engine against fake nodes: real gRPC on loopback,
//! served by a scripted in-process cluster that checks every request it
//! gets (pinned to the shard whose range holds each series, sent to the
//! leader, carrying the current epoch) and answers as a node would:
//! not-leader with a hint, stale epoch, dedup by (shard, request id),
//! per-sample rejections.

// Test scaffolding: servers are spawned tasks, time is real.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raftwatch_client::routing::series_hash;
use raftwatch_client::{
    Client, ClientConfig, ClientError, LEADER_ADDR_KEY, MAP_EPOCH_KEY, Routing,
};
use raftwatch_proto::v1 as pb;
use tonic::{Request, Response, Status};

/// What a fake node does with its next write.
#[derive(Debug)]
enum Inject {
    /// Fail before applying.
    Fail(Status),
    /// Apply, then answer UNAVAILABLE as if the connection broke.
    LoseAnswer,
}

#[derive(Debug)]
struct FakeShard {
    id: u64,
    start: u64,
    end: u64,
    leader: usize,
}

#[derive(Debug, Default)]
struct State {
    addrs: Vec<String>,
    epoch: u64,
    shards: Vec<FakeShard>,
    dead: Vec<bool>,
    inject: BTreeMap<usize, VecDeque<Inject>>,
    /// (shard, request id) → the answer given (0: unrouted requests).
    applied: BTreeMap<(u64, String), pb::WriteResponse>,
    samples_applied: u64,
    /// Every write received: (node, WriteRequest.shard).
    received: Vec<(usize, u64)>,
    /// Requests a correct client never sends.
    violations: Vec<String>,
}

type Shared = Arc<Mutex<State>>;

/// A node's answer to `series`: NaN samples, and every sample of a series
/// with invalid labels, are rejected one by one.
fn answer(series: &[pb::Series]) -> pb::WriteResponse {
    let mut out = pb::WriteResponse::default();
    for (si, s) in series.iter().enumerate() {
        let valid = series_hash(s).is_some();
        for (k, x) in s.samples.iter().enumerate() {
            if valid && !x.value.is_nan() {
                out.samples_accepted += 1;
            } else {
                out.rejections.push(pb::Rejection {
                    series_index: si as u32,
                    sample_index: k as u32,
                    reason: "rejected".into(),
                });
            }
        }
    }
    out
}

#[derive(Clone)]
struct FakeNode {
    index: usize,
    state: Shared,
}

impl FakeNode {
    fn write(&self, req: pb::WriteRequest) -> Result<pb::WriteResponse, Status> {
        let mut st = self.state.lock().unwrap();
        let i = self.index;
        if st.dead[i] {
            return Err(Status::unavailable("connection refused"));
        }
        st.received.push((i, req.shard));
        let mut lose = false;
        match st.inject.get_mut(&i).and_then(VecDeque::pop_front) {
            Some(Inject::Fail(s)) => return Err(s),
            Some(Inject::LoseAnswer) => lose = true,
            None => {}
        }
        if req.shard_map_epoch != 0 && req.shard_map_epoch != st.epoch {
            let mut s = Status::failed_precondition(format!(
                "stale shard-map epoch {}; refresh the shard map",
                req.shard_map_epoch
            ));
            s.metadata_mut()
                .insert(MAP_EPOCH_KEY, st.epoch.to_string().parse().unwrap());
            return Err(s);
        }
        if req.shard == 0 {
            // The node routes it. A real node remembers request ids per
            // shard, so a request whose series all belong to one shard
            // (a forwarded part) shares that shard's memory with the
            // routed attempts of the same id; mixed requests are kept
            // apart here (the fake does not split them).
            let mut shards = req.series.iter().filter_map(|s| {
                let h = series_hash(s)?.0;
                st.shards
                    .iter()
                    .find(|x| x.start <= h && h <= x.end)
                    .map(|x| x.id)
            });
            let first = shards.next();
            let one = first.filter(|f| shards.all(|x| x == *f)).unwrap_or(0);
            let key = (one, req.request_id.clone());
            if let Some(a) = st.applied.get(&key) {
                return Ok(a.clone());
            }
            let a = answer(&req.series);
            st.samples_applied += a.samples_accepted;
            st.applied.insert(key, a.clone());
            return Ok(a);
        }
        let Some(shard) = st.shards.iter().find(|s| s.id == req.shard) else {
            st.violations.push(format!("unknown shard {}", req.shard));
            return Err(Status::failed_precondition(
                "unknown shard; refresh the shard map",
            ));
        };
        let (start, end, leader) = (shard.start, shard.end, shard.leader);
        if leader != i {
            let mut s = Status::unavailable("not the leader");
            let addr = st.addrs[leader].clone();
            s.metadata_mut()
                .insert(LEADER_ADDR_KEY, addr.parse().unwrap());
            return Err(s);
        }
        for s in &req.series {
            if let Some(h) = series_hash(s)
                && !(start <= h.0 && h.0 <= end)
            {
                st.violations
                    .push(format!("series hash {h} sent to shard {}", req.shard));
                return Err(Status::failed_precondition(
                    "wrong shard; refresh the shard map",
                ));
            }
        }
        let key = (req.shard, req.request_id.clone());
        let a = match st.applied.get(&key) {
            Some(a) => a.clone(),
            None => {
                let a = answer(&req.series);
                st.samples_applied += a.samples_accepted;
                st.applied.insert(key, a.clone());
                a
            }
        };
        if lose {
            return Err(Status::unavailable("connection reset"));
        }
        Ok(a)
    }

    fn status(&self) -> Result<pb::ClusterStatusResponse, Status> {
        let st = self.state.lock().unwrap();
        if st.dead[self.index] {
            return Err(Status::unavailable("connection refused"));
        }
        let replicas: Vec<u64> = (1..=st.addrs.len() as u64).collect();
        Ok(pb::ClusterStatusResponse {
            members: st
                .addrs
                .iter()
                .enumerate()
                .map(|(k, a)| pb::MemberInfo {
                    id: k as u64 + 1,
                    grpc_addr: a.clone(),
                    state: "active".into(),
                    ..Default::default()
                })
                .collect(),
            shards: st
                .shards
                .iter()
                .map(|s| pb::ShardInfo {
                    id: s.id,
                    range_start: s.start,
                    range_end: s.end,
                    replicas: replicas.clone(),
                    epoch: 1,
                    leader: s.leader as u64 + 1,
                    ..Default::default()
                })
                .collect(),
            map_epoch: st.epoch,
            ..Default::default()
        })
    }
}

#[tonic::async_trait]
impl pb::ingest_server::Ingest for FakeNode {
    async fn write(
        &self,
        request: Request<pb::WriteRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        self.write(request.into_inner()).map(Response::new)
    }
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in the fake"))
}

#[tonic::async_trait]
impl pb::admin_server::Admin for FakeNode {
    async fn cluster_status(
        &self,
        _: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        self.status().map(Response::new)
    }
    async fn list_members(
        &self,
        _: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        unimplemented()
    }
    async fn add_member(
        &self,
        _: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::MemberResponse>, Status> {
        unimplemented()
    }
    async fn join(
        &self,
        _: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::JoinResponse>, Status> {
        unimplemented()
    }
    async fn promote_member(
        &self,
        _: Request<pb::MemberRequest>,
    ) -> Result<Response<pb::MemberResponse>, Status> {
        unimplemented()
    }
    async fn drain_member(
        &self,
        _: Request<pb::MemberRequest>,
    ) -> Result<Response<pb::MemberResponse>, Status> {
        unimplemented()
    }
    async fn remove_member(
        &self,
        _: Request<pb::MemberRequest>,
    ) -> Result<Response<pb::MemberResponse>, Status> {
        unimplemented()
    }
    async fn list_shards(
        &self,
        _: Request<pb::ListShardsRequest>,
    ) -> Result<Response<pb::ListShardsResponse>, Status> {
        unimplemented()
    }
    async fn move_shard(
        &self,
        _: Request<pb::MoveShardRequest>,
    ) -> Result<Response<pb::MoveShardResponse>, Status> {
        unimplemented()
    }
    async fn transfer_shard_leader(
        &self,
        _: Request<pb::TransferShardLeaderRequest>,
    ) -> Result<Response<pb::TransferShardLeaderResponse>, Status> {
        unimplemented()
    }
    async fn rebalance(
        &self,
        _: Request<pb::RebalanceRequest>,
    ) -> Result<Response<pb::RebalanceResponse>, Status> {
        unimplemented()
    }
    async fn set_setting(
        &self,
        _: Request<pb::SetSettingRequest>,
    ) -> Result<Response<pb::SetSettingResponse>, Status> {
        unimplemented()
    }
    async fn get_setting(
        &self,
        _: Request<pb::GetSettingRequest>,
    ) -> Result<Response<pb::GetSettingResponse>, Status> {
        unimplemented()
    }
    async fn apply_rules(
        &self,
        _: Request<pb::ApplyRulesRequest>,
    ) -> Result<Response<pb::ApplyRulesResponse>, Status> {
        unimplemented()
    }
    async fn list_rules(
        &self,
        _: Request<pb::ListRulesRequest>,
    ) -> Result<Response<pb::ListRulesResponse>, Status> {
        unimplemented()
    }
    async fn delete_rule_group(
        &self,
        _: Request<pb::DeleteRuleGroupRequest>,
    ) -> Result<Response<pb::DeleteRuleGroupResponse>, Status> {
        unimplemented()
    }
    async fn set_alertmanager_config(
        &self,
        _: Request<pb::SetAlertmanagerConfigRequest>,
    ) -> Result<Response<pb::SetAlertmanagerConfigResponse>, Status> {
        unimplemented()
    }
    async fn get_alertmanager_config(
        &self,
        _: Request<pb::GetAlertmanagerConfigRequest>,
    ) -> Result<Response<pb::GetAlertmanagerConfigResponse>, Status> {
        unimplemented()
    }
    async fn add_silence(
        &self,
        _: Request<pb::AddSilenceRequest>,
    ) -> Result<Response<pb::AddSilenceResponse>, Status> {
        unimplemented()
    }
    async fn list_silences(
        &self,
        _: Request<pb::ListSilencesRequest>,
    ) -> Result<Response<pb::ListSilencesResponse>, Status> {
        unimplemented()
    }
    async fn expire_silence(
        &self,
        _: Request<pb::ExpireSilenceRequest>,
    ) -> Result<Response<pb::ExpireSilenceResponse>, Status> {
        unimplemented()
    }
    async fn list_alerts(
        &self,
        _: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        unimplemented()
    }
    async fn list_notifications(
        &self,
        _: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        unimplemented()
    }
}

/// Starts `nodes` fake nodes with `shards` equal ranges, shard k led by
/// node (k − 1) mod `nodes`.
async fn fake_cluster(nodes: usize, shards: u64) -> Shared {
    let state: Shared = Arc::default();
    let width = u64::MAX / shards.max(1);
    {
        let mut st = state.lock().unwrap();
        st.epoch = 3;
        st.dead = vec![false; nodes];
        st.shards = (1..=shards)
            .map(|id| FakeShard {
                id,
                start: width * (id - 1),
                end: if id == shards {
                    u64::MAX
                } else {
                    width * id - 1
                },
                leader: (id as usize - 1) % nodes,
            })
            .collect();
    }
    for index in 0..nodes {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        state
            .lock()
            .unwrap()
            .addrs
            .push(listener.local_addr().unwrap().to_string());
        let node = FakeNode {
            index,
            state: state.clone(),
        };
        let incoming = futures::stream::unfold(listener, |l| async move {
            let conn = l.accept().await.map(|(s, _)| s);
            Some((conn, l))
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(pb::ingest_server::IngestServer::new(node.clone()))
                .add_service(pb::admin_server::AdminServer::new(node))
                .serve_with_incoming(incoming),
        );
    }
    state
}

fn client(state: &Shared, config: ClientConfig) -> Client {
    let first = state.lock().unwrap().addrs[0].clone();
    Client::new(vec![format!("http://{first}")], config).unwrap()
}

fn fast() -> ClientConfig {
    ClientConfig {
        attempts_max: 8,
        backoff_initial: Duration::from_millis(1),
        backoff_max: Duration::from_millis(20),
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

fn workload(n: usize, round: i64) -> Vec<pb::Series> {
    (0..n)
        .map(|i| pb::Series {
            labels: vec![
                pb::Label {
                    name: "instance".into(),
                    value: format!("host-{i}"),
                },
                pb::Label {
                    name: "__name__".into(),
                    value: "up".into(),
                },
            ],
            samples: (0..3)
                .map(|k| pb::Sample {
                    timestamp_ms: round * 10 + k,
                    value: if (i + k as usize).is_multiple_of(17) {
                        f64::NAN
                    } else {
                        1.0
                    },
                })
                .collect(),
        })
        .collect()
}

fn received(state: &Shared) -> Vec<(usize, u64)> {
    std::mem::take(&mut state.lock().unwrap().received)
}

fn violations(state: &Shared) -> Vec<String> {
    state.lock().unwrap().violations.clone()
}

#[tokio::test]
async fn writes_go_straight_to_shard_leaders_and_merge_in_the_callers_numbering() {
    let state = fake_cluster(3, 4).await;
    let c = client(&state, fast());
    let mut series = workload(300, 0);
    // An invalid series (duplicate label name) in the middle.
    let dup = series[150].labels[0].clone();
    series[150].labels.push(dup);
    let want = answer(&series);
    let (result, stats) = c.write_with_stats(series, Some("w1".into())).await;
    let got = result.unwrap();
    assert_eq!(
        got, want,
        "merged answer = one node answering the whole request"
    );
    assert!(got.rejections.iter().any(|r| r.series_index == 150));
    assert!(stats.routed);
    assert_eq!(stats.parts, 4);
    assert_eq!(stats.rpcs, 4, "one RPC per shard, none redirected");
    assert!(
        stats.failed_attempts.is_empty(),
        "{:?}",
        stats.failed_attempts
    );
    // Only the first endpoint was configured, yet every part went to its
    // shard's leader: shard k to node (k - 1) mod 3.
    let mut got = received(&state);
    got.sort_unstable();
    assert_eq!(got, vec![(0, 1), (0, 4), (1, 2), (2, 3)]);
    assert!(violations(&state).is_empty(), "{:?}", violations(&state));
}

#[tokio::test]
async fn a_moved_leader_is_followed_by_its_hint_and_remembered() {
    let state = fake_cluster(3, 4).await;
    let c = client(&state, fast());
    c.write(workload(100, 0), None).await.unwrap();
    received(&state);
    state.lock().unwrap().shards[1].leader = 0; // shard 2: node 1 → node 0
    let (result, stats) = c.write_with_stats(workload(100, 1), None).await;
    result.unwrap();
    assert_eq!(
        stats.failed_attempts.len(),
        1,
        "{:?}",
        stats.failed_attempts
    );
    assert_eq!(stats.failed_attempts[0].code(), tonic::Code::Unavailable);
    assert_eq!(stats.map_refreshes, 0, "a hint needs no map read");
    let got = received(&state);
    assert!(got.contains(&(1, 2)) && got.contains(&(0, 2)), "{got:?}");
    // The next write goes to the new leader at once.
    let (result, stats) = c.write_with_stats(workload(100, 2), None).await;
    result.unwrap();
    assert!(
        stats.failed_attempts.is_empty(),
        "{:?}",
        stats.failed_attempts
    );
    assert!(received(&state).contains(&(0, 2)));
    assert!(violations(&state).is_empty(), "{:?}", violations(&state));
}

#[tokio::test]
async fn a_stale_epoch_refreshes_the_map_once_and_resplits() {
    let state = fake_cluster(3, 4).await;
    let c = client(&state, fast());
    c.write(workload(100, 0), None).await.unwrap();
    assert_eq!(c.shard_map().unwrap().epoch(), 3);
    {
        let mut st = state.lock().unwrap();
        st.epoch = 4;
        st.shards[2].leader = 0;
    }
    let series = workload(100, 1);
    let want = answer(&series);
    let (result, stats) = c.write_with_stats(series, Some("stale".into())).await;
    assert_eq!(result.unwrap(), want);
    assert_eq!(stats.map_refreshes, 1, "every part was stale; one map read");
    assert_eq!(stats.failed_attempts.len(), 4);
    assert!(
        stats
            .failed_attempts
            .iter()
            .all(raftwatch_client::is_stale_map)
    );
    assert_eq!(c.shard_map().unwrap().epoch(), 4);
    assert_eq!(
        stats.rpcs, 8,
        "the refreshed map named shard 3's new leader"
    );

    // Concurrent writes that meet the same stale map share one map read.
    state.lock().unwrap().epoch = 5;
    let writes = (0..8).map(|r| c.write_with_stats(workload(100, 10 + r), None));
    let outcomes = futures::future::join_all(writes).await;
    let mut reads = 0;
    for (result, stats) in outcomes {
        result.unwrap();
        reads += stats.map_refreshes;
    }
    assert_eq!(reads, 1, "single-flight map refresh");
    assert_eq!(c.shard_map().unwrap().epoch(), 5);
    assert!(violations(&state).is_empty(), "{:?}", violations(&state));
}

#[tokio::test]
async fn a_lost_answer_is_retried_with_the_same_id_and_applied_once() {
    let state = fake_cluster(3, 4).await;
    let c = client(&state, fast());
    c.write(workload(10, 0), None).await.unwrap();
    let before = state.lock().unwrap().samples_applied;
    state
        .lock()
        .unwrap()
        .inject
        .insert(1, VecDeque::from([Inject::LoseAnswer]));
    let series = workload(200, 1);
    let want = answer(&series);
    let (result, stats) = c.write_with_stats(series, None).await;
    assert_eq!(result.unwrap(), want);
    // The reset, and maybe a redirect from the replica tried next.
    assert!(!stats.failed_attempts.is_empty());
    let applied = state.lock().unwrap().samples_applied - before;
    assert_eq!(applied, want.samples_accepted, "nothing applied twice");
}

#[tokio::test]
async fn a_dead_leader_is_routed_around() {
    let state = fake_cluster(3, 4).await;
    let c = client(&state, fast());
    c.write(workload(100, 0), None).await.unwrap();
    {
        // Node 1 dies; node 2 wins shard 2's election.
        let mut st = state.lock().unwrap();
        st.dead[1] = true;
        st.shards[1].leader = 2;
    }
    let series = workload(100, 1);
    let want = answer(&series);
    let (result, stats) = c.write_with_stats(series, None).await;
    assert_eq!(result.unwrap(), want);
    assert!(!stats.failed_attempts.is_empty());
    assert!(violations(&state).is_empty(), "{:?}", violations(&state));
}

#[tokio::test]
async fn refusals_are_not_retried_and_retries_are_bounded() {
    let state = fake_cluster(3, 4).await;
    let c = client(&state, fast());
    c.write(workload(100, 0), None).await.unwrap();
    state.lock().unwrap().inject.insert(
        2,
        VecDeque::from([Inject::Fail(Status::invalid_argument("bad request id"))]),
    );
    let (result, stats) = c.write_with_stats(workload(100, 1), None).await;
    match result {
        Err(ClientError::Refused(s)) => assert_eq!(s.code(), tonic::Code::InvalidArgument),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(stats.rpcs, 4, "no second round");

    for d in &mut state.lock().unwrap().dead {
        *d = true;
    }
    let (result, stats) = c.write_with_stats(workload(100, 2), None).await;
    match result {
        Err(ClientError::GaveUp { attempts, last }) => {
            assert_eq!(attempts, 8);
            assert_eq!(last.code(), tonic::Code::Unavailable);
        }
        other => panic!("expected to give up, got {other:?}"),
    }
    assert_eq!(stats.rpcs, 4 * 8);
}

#[tokio::test]
async fn a_full_queue_is_retried_after_the_hint() {
    let state = fake_cluster(3, 4).await;
    let c = client(&state, fast());
    c.write(workload(100, 0), None).await.unwrap();
    let mut full = Status::resource_exhausted("queue full");
    full.metadata_mut()
        .insert("retry-after-ms", "150".parse().unwrap());
    state
        .lock()
        .unwrap()
        .inject
        .insert(0, VecDeque::from([Inject::Fail(full)]));
    let t0 = Instant::now();
    let (result, stats) = c.write_with_stats(workload(100, 1), None).await;
    result.unwrap();
    assert_eq!(stats.failed_attempts.len(), 1);
    assert!(
        t0.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn without_shards_the_write_goes_whole_to_any_node() {
    let state = fake_cluster(2, 0).await;
    let c = client(&state, fast());
    let series = workload(50, 0);
    let want = answer(&series);
    let (result, stats) = c.write_with_stats(series, None).await;
    assert_eq!(result.unwrap(), want);
    assert!(!stats.routed);
    assert_eq!(received(&state), vec![(0, 0)]);

    // The same in AnyNode mode against a cluster with shards.
    let state = fake_cluster(3, 4).await;
    let c = client(
        &state,
        ClientConfig {
            routing: raftwatch_client::Routing::AnyNode,
            ..fast()
        },
    );
    let (result, stats) = c.write_with_stats(workload(50, 0), None).await;
    result.unwrap();
    assert!(!stats.routed);
    assert!(c.shard_map().is_none(), "no map read");
    assert_eq!(received(&state), vec![(0, 0)]);
}

#[tokio::test]
async fn a_leader_out_of_the_clients_reach_is_written_to_through_a_replica() {
    let state = fake_cluster(3, 4).await;
    let c = client(&state, fast());
    c.write(workload(100, 0), None).await.unwrap();
    // The client loses node 1, shard 2's leader, but the cluster does not:
    // no election, and the other nodes keep naming node 1 as the leader.
    state.lock().unwrap().dead[1] = true;
    received(&state);
    let series = workload(100, 1);
    let want = answer(&series);
    let (result, stats) = c.write_with_stats(series, None).await;
    assert_eq!(result.unwrap(), want);
    assert!(!stats.failed_attempts.is_empty());
    // Shard 2's part went, unrouted, to a node that forwards it.
    let got = received(&state);
    assert!(
        got.iter().any(|&(node, shard)| node != 1 && shard == 0),
        "{got:?}"
    );
    // Only the last attempt is forwarded: until then, the hint might come
    // from a follower that has not noticed a dead leader.
    assert_eq!(
        got.iter().filter(|&&(_, shard)| shard == 0).count(),
        1,
        "{got:?}"
    );
    assert_eq!(
        stats.failed_attempts.len(),
        fast().attempts_max as usize - 1
    );
    assert!(violations(&state).is_empty(), "{:?}", violations(&state));
}

#[tokio::test]
async fn an_unreachable_node_is_passed_over_by_the_next_picks() {
    let state = fake_cluster(3, 4).await;
    let addrs: Vec<String> = state
        .lock()
        .unwrap()
        .addrs
        .iter()
        .map(|a| format!("http://{a}"))
        .collect();
    let c = Client::new(
        addrs,
        ClientConfig {
            routing: Routing::AnyNode,
            ..fast()
        },
    )
    .unwrap();
    state.lock().unwrap().dead[1] = true;
    let mut failed = 0;
    for round in 0..30 {
        let series = workload(10, round);
        let want = answer(&series);
        let (result, stats) = c.write_with_stats(series, None).await;
        assert_eq!(result.unwrap(), want);
        failed += stats.failed_attempts.len();
    }
    // Round robin alone would send every third write to node 1 first (10
    // failures); once it failed, the next 20 picks pass it over.
    assert!((1..=2).contains(&failed), "{failed} failed attempts");
}
