//! The gRPC services a node serves beside the Raft transport: `Admin`,
//! `Ingest`, `Query` and `NodeInternal`. Protobuf types stop here: requests
//! are checked and converted before they reach the control plane or a
//! shard.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use raftwatch_control::{Command, ControlState, Member, MemberState, ShardId, Task};
use raftwatch_proto::limit::RequestBytesLimit;
use raftwatch_proto::raw::{IngestRaw, IngestRawServer};
use raftwatch_proto::v1 as pb;
use raftwatch_raft::{GroupId, NodeId, ReadConsistency};
use raftwatch_shard::codec as sc;
use raftwatch_shard::wire::WriteView;
use tonic::{Request, Response, Status};

use super::alerting_api;
use super::clients::{group_status, unavailable_with_leader};
use super::metrics::Protocol;
use super::{GroupOp, Node, NodeCell, REQUEST_BYTES_MAX};

/// How long `cluster status` waits for each node's report.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// `routes` are the node's public and internal services, bound to `cell`.
/// A request message longer than `request_bytes_max` (the public services)
/// or [`REQUEST_BYTES_MAX`] (`NodeInternal`) is refused with
/// `RESOURCE_EXHAUSTED` before it is read (`RequestBytesLimit`); tonic's
/// own check, at the same length, stays behind it as a backstop and never
/// fires first (it would answer `OUT_OF_RANGE`).
pub(crate) fn routes(cell: NodeCell, request_bytes_max: usize) -> tonic::service::RoutesBuilder {
    let api = Api { cell };
    let note: Arc<str> = format!(
        "configurable: request_bytes_max in the node's config file, --request-bytes-max or {}",
        crate::config::env_var("request_bytes_max")
    )
    .into();
    let internal: Arc<str> = "the fixed limit of node-to-node messages".into();
    let limit = request_bytes_max;
    let mut routes = tonic::service::RoutesBuilder::default();
    routes
        .add_service(RequestBytesLimit::new(
            pb::admin_server::AdminServer::new(api.clone()).max_decoding_message_size(limit),
            limit,
            note.clone(),
        ))
        .add_service(RequestBytesLimit::new(
            IngestRawServer::new(api.clone()).max_decoding_message_size(limit),
            limit,
            note.clone(),
        ))
        .add_service(RequestBytesLimit::new(
            pb::query_server::QueryServer::new(api.clone()).max_decoding_message_size(limit),
            limit,
            note,
        ))
        .add_service(RequestBytesLimit::new(
            pb::node_internal_server::NodeInternalServer::new(api)
                .max_decoding_message_size(REQUEST_BYTES_MAX)
                .max_encoding_message_size(REQUEST_BYTES_MAX),
            REQUEST_BYTES_MAX,
            internal,
        ));
    routes
}

#[derive(Clone, Debug)]
struct Api {
    cell: NodeCell,
}

impl Api {
    fn node(&self) -> Result<Arc<Node>, Status> {
        self.cell
            .get()
            .cloned()
            .ok_or_else(|| Status::unavailable("the node is starting"))
    }
}

fn consistency(c: i32) -> Result<ReadConsistency, Status> {
    match pb::Consistency::try_from(c) {
        Ok(pb::Consistency::Linearizable) => Ok(ReadConsistency::Linearizable),
        Ok(pb::Consistency::Stale) => Ok(ReadConsistency::Stale),
        Err(_) => Err(Status::invalid_argument(format!("unknown consistency {c}"))),
    }
}

fn cas(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

fn task_info(t: &Task) -> pb::TaskInfo {
    pb::TaskInfo {
        id: t.id,
        kind: "move".into(),
        shard: t.shard.0,
        from: t.from.0,
        to: t.to.0,
        step: t.step.name().into(),
    }
}

/// What the nodes reported about themselves just now.
pub(crate) struct Reports {
    /// Node → its groups' status (absent: did not answer).
    by_node: BTreeMap<NodeId, Vec<pb::GroupStatus>>,
}

impl Reports {
    /// `of` is `node`'s report of `group`, if it answered and hosts it.
    pub(crate) fn of(&self, node: NodeId, group: u64) -> Option<&pb::GroupStatus> {
        self.by_node.get(&node)?.iter().find(|s| s.group == group)
    }

    /// The report of `group` from the replica that leads it in the highest
    /// term, or else the most advanced one.
    pub(crate) fn best(&self, group: u64) -> Option<&pb::GroupStatus> {
        let all = self
            .by_node
            .values()
            .flat_map(|g| g.iter().filter(|s| s.group == group));
        all.max_by_key(|s| (s.role == "leader", s.term, s.commit_index))
    }
}

fn group_status_pb(m: &raftwatch_raft::host::GroupMetrics) -> pb::GroupStatus {
    pb::GroupStatus {
        group: m.group.0,
        role: m.role.into(),
        leader: m.leader.map(|l| l.0).unwrap_or(0),
        term: m.term,
        last_log_index: m.last_log_index.unwrap_or(0),
        commit_index: m.commit_index.unwrap_or(0),
        applied_index: m.applied_index.unwrap_or(0),
        voters: m.voters.iter().map(|v| v.0).collect(),
        learners: m.learners.iter().map(|v| v.0).collect(),
    }
}

impl Node {
    async fn report_of(&self, m: &Member) -> Option<Vec<pb::GroupStatus>> {
        if m.id == self.id {
            return Some(
                self.local_status()
                    .await
                    .iter()
                    .map(group_status_pb)
                    .collect(),
            );
        }
        let channel = self.clients.channel(&m.grpc_addr).ok()?;
        let mut client = pb::node_internal_client::NodeInternalClient::new(channel);
        match tokio::time::timeout(
            STATUS_TIMEOUT,
            client.local_status(pb::LocalStatusRequest {}),
        )
        .await
        {
            Ok(Ok(r)) => Some(r.into_inner().groups),
            Ok(Err(_)) | Err(_) => {
                self.clients.evict(&m.grpc_addr);
                None
            }
        }
    }

    pub(crate) async fn reports(&self, state: &ControlState) -> Reports {
        let members: Vec<&Member> = state
            .members
            .values()
            .filter(|m| m.state != MemberState::Removed)
            .collect();
        let answers = futures::future::join_all(members.iter().map(|m| self.report_of(m))).await;
        Reports {
            by_node: members
                .iter()
                .zip(answers)
                .filter_map(|(m, a)| a.map(|a| (m.id, a)))
                .collect(),
        }
    }

    fn member_infos(&self, state: &ControlState, reports: Option<&Reports>) -> Vec<pb::MemberInfo> {
        let control = reports.and_then(|r| r.best(0));
        state
            .members
            .values()
            .map(|m| {
                let role = match control {
                    Some(c) if c.voters.contains(&m.id.0) => "voter",
                    Some(c) if c.learners.contains(&m.id.0) => "learner",
                    Some(_) => "none",
                    None => "unknown",
                };
                pb::MemberInfo {
                    id: m.id.0,
                    grpc_addr: m.grpc_addr.clone(),
                    http_addr: m.http_addr.clone(),
                    state: m.state.name().into(),
                    role: role.into(),
                    healthy: reports.is_some_and(|r| r.by_node.contains_key(&m.id)),
                }
            })
            .collect()
    }

    fn shard_infos(&self, state: &ControlState, reports: Option<&Reports>) -> Vec<pb::ShardInfo> {
        state
            .shards
            .values()
            .map(|s| {
                let best = reports.and_then(|r| r.best(s.id.0));
                let leader = best.filter(|b| b.role == "leader");
                pb::ShardInfo {
                    id: s.id.0,
                    range_start: s.range_start,
                    range_end: s.range_end,
                    replicas: s.replicas.iter().map(|r| r.0).collect(),
                    epoch: s.epoch,
                    leader: leader.map(|l| l.leader).unwrap_or(0),
                    term: best.map(|b| b.term).unwrap_or(0),
                    commit_index: best.map(|b| b.commit_index).unwrap_or(0),
                    applied_index: best.map(|b| b.applied_index).unwrap_or(0),
                    learners: leader.map(|l| l.learners.clone()).unwrap_or_default(),
                    leader_hint: s.leader_hint.map(|l| l.0).unwrap_or(0),
                }
            })
            .collect()
    }

    /// `cluster_status` is the control state at `consistency` joined with
    /// what every member reports about its groups right now.
    pub(crate) async fn cluster_status(
        &self,
        consistency: ReadConsistency,
    ) -> Result<pb::ClusterStatusResponse, Status> {
        let state = self.control_state(consistency).await?;
        let reports = self.reports(&state).await;
        let control_leader = reports
            .best(0)
            .filter(|b| b.role == "leader")
            .map(|b| b.leader)
            .unwrap_or(0);
        Ok(pb::ClusterStatusResponse {
            control_leader,
            members: self.member_infos(&state, Some(&reports)),
            shards: self.shard_infos(&state, Some(&reports)),
            tasks: state.tasks.values().map(task_info).collect(),
            version: state.version,
            replication_factor: state.replication_factor,
            map_epoch: state.map_epoch(),
        })
    }

    async fn member_response(
        &self,
        id: NodeId,
        version: u64,
    ) -> Result<pb::MemberResponse, Status> {
        let state = self.control_state(ReadConsistency::Linearizable).await?;
        let reports = self.reports(&state).await;
        let member = self
            .member_infos(&state, Some(&reports))
            .into_iter()
            .find(|m| m.id == id.0);
        Ok(pb::MemberResponse { member, version })
    }

    /// Leaders of every shard as reported right now.
    pub(crate) async fn shard_leaders(&self, state: &ControlState) -> BTreeMap<ShardId, NodeId> {
        let reports = self.reports(state).await;
        state
            .shards
            .keys()
            .filter_map(|s| {
                let b = reports.best(s.0)?;
                (b.role == "leader").then_some((*s, NodeId(b.leader)))
            })
            .collect()
    }
}

fn check_addr(addr: &str, what: &str) -> Result<(), Status> {
    raftwatch_control::state::validate_addr(addr)
        .map_err(|e| Status::invalid_argument(format!("{what}: {e}")))
}

#[tonic::async_trait]
impl pb::admin_server::Admin for Api {
    async fn cluster_status(
        &self,
        request: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        let node = self.node()?;
        let c = consistency(request.get_ref().consistency)?;
        Ok(Response::new(node.cluster_status(c).await?))
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let node = self.node()?;
        let c = consistency(request.get_ref().consistency)?;
        let state = node.control_state(c).await?;
        let reports = node.reports(&state).await;
        Ok(Response::new(pb::ListMembersResponse {
            members: node.member_infos(&state, Some(&reports)),
            version: state.version,
        }))
    }

    async fn add_member(
        &self,
        request: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::MemberResponse>, Status> {
        let node = self.node()?;
        let r = request.into_inner();
        check_addr(&r.grpc_addr, "grpc address")?;
        if !r.http_addr.is_empty() {
            check_addr(&r.http_addr, "http address")?;
        }
        let applied = node
            .control_write(&Command::AddMember {
                id: NodeId(r.node_id),
                grpc_addr: r.grpc_addr,
                http_addr: r.http_addr,
                expected_version: cas(r.expected_version),
            })
            .await?;
        Ok(Response::new(
            node.member_response(NodeId(r.node_id), applied.version)
                .await?,
        ))
    }

    async fn join(
        &self,
        request: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::JoinResponse>, Status> {
        let node = self.node()?;
        let r = request.into_inner();
        check_addr(&r.grpc_addr, "grpc address")?;
        let id = NodeId(r.node_id);
        node.control_write(&Command::AddMember {
            id,
            grpc_addr: r.grpc_addr.clone(),
            http_addr: r.http_addr,
            expected_version: None,
        })
        .await?;
        // A learner of the control group: it receives the control state
        // and can serve stale reads of it, but does not vote.
        node.leader_call(
            super::CONTROL_GROUP,
            GroupOp::AddLearner(id, r.grpc_addr),
            &node.control_candidates(),
        )
        .await?;
        let resp = node.member_response(id, 0).await?;
        Ok(Response::new(pb::JoinResponse {
            member: resp.member,
        }))
    }

    async fn promote_member(
        &self,
        request: Request<pb::MemberRequest>,
    ) -> Result<Response<pb::MemberResponse>, Status> {
        let node = self.node()?;
        let r = request.into_inner();
        let applied = node
            .control_write(&Command::Promote {
                id: NodeId(r.node_id),
                expected_version: cas(r.expected_version),
            })
            .await?;
        // Voter in the control group where there is room (the driver
        // reconciles; doing it here makes the answer reflect it).
        super::driver::reconcile_control_membership(&node)
            .await
            .ok();
        Ok(Response::new(
            node.member_response(NodeId(r.node_id), applied.version)
                .await?,
        ))
    }

    async fn drain_member(
        &self,
        request: Request<pb::MemberRequest>,
    ) -> Result<Response<pb::MemberResponse>, Status> {
        let node = self.node()?;
        let r = request.into_inner();
        let applied = node
            .control_write(&Command::Drain {
                id: NodeId(r.node_id),
                expected_version: cas(r.expected_version),
            })
            .await?;
        Ok(Response::new(
            node.member_response(NodeId(r.node_id), applied.version)
                .await?,
        ))
    }

    async fn remove_member(
        &self,
        request: Request<pb::MemberRequest>,
    ) -> Result<Response<pb::MemberResponse>, Status> {
        let node = self.node()?;
        let r = request.into_inner();
        let applied = node
            .control_write(&Command::Remove {
                id: NodeId(r.node_id),
                expected_version: cas(r.expected_version),
            })
            .await?;
        super::driver::reconcile_control_membership(&node)
            .await
            .ok();
        Ok(Response::new(
            node.member_response(NodeId(r.node_id), applied.version)
                .await?,
        ))
    }

    async fn list_shards(
        &self,
        request: Request<pb::ListShardsRequest>,
    ) -> Result<Response<pb::ListShardsResponse>, Status> {
        let node = self.node()?;
        let c = consistency(request.get_ref().consistency)?;
        let state = node.control_state(c).await?;
        let reports = node.reports(&state).await;
        Ok(Response::new(pb::ListShardsResponse {
            shards: node.shard_infos(&state, Some(&reports)),
            tasks: state.tasks.values().map(task_info).collect(),
            version: state.version,
            map_epoch: state.map_epoch(),
        }))
    }

    async fn move_shard(
        &self,
        request: Request<pb::MoveShardRequest>,
    ) -> Result<Response<pb::MoveShardResponse>, Status> {
        let node = self.node()?;
        let r = request.into_inner();
        let applied = node
            .control_write(&Command::StartMove {
                shard: ShardId(r.shard),
                from: NodeId(r.from),
                to: NodeId(r.to),
                reason: "operator".into(),
                expected_version: cas(r.expected_version),
            })
            .await?;
        Ok(Response::new(pb::MoveShardResponse {
            task: applied.tasks.first().map(task_info),
        }))
    }

    async fn transfer_shard_leader(
        &self,
        request: Request<pb::TransferShardLeaderRequest>,
    ) -> Result<Response<pb::TransferShardLeaderResponse>, Status> {
        let node = self.node()?;
        let r = request.into_inner();
        let state = node.control_state(ReadConsistency::Linearizable).await?;
        let shard = state
            .shards
            .get(&ShardId(r.shard))
            .ok_or_else(|| Status::not_found(format!("unknown shard {}", r.shard)))?;
        if !shard.replicas.contains(&NodeId(r.to)) {
            return Err(Status::failed_precondition(format!(
                "node {} holds no replica of shard {}",
                r.to, r.shard
            )));
        }
        node.leader_call(
            ShardId(r.shard).group(),
            GroupOp::TransferLeader(NodeId(r.to)),
            &node.shard_candidates(ShardId(r.shard)),
        )
        .await?;
        Ok(Response::new(pb::TransferShardLeaderResponse {}))
    }

    async fn rebalance(
        &self,
        _request: Request<pb::RebalanceRequest>,
    ) -> Result<Response<pb::RebalanceResponse>, Status> {
        let node = self.node()?;
        let applied = node
            .control_write(&Command::Rebalance {
                expected_version: None,
            })
            .await?;
        let mut tasks: Vec<pb::TaskInfo> = applied.tasks.iter().map(task_info).collect();
        // Leadership: even it out now among shards that are not moving.
        let state = node.control_state(ReadConsistency::Linearizable).await?;
        let leaders = node.shard_leaders(&state).await;
        for (shard, to) in raftwatch_control::placement::plan_leader_transfers(&state, &leaders) {
            let from = leaders.get(&shard).copied().unwrap_or_default();
            let ok = node
                .leader_call(
                    shard.group(),
                    GroupOp::TransferLeader(to),
                    &node.shard_candidates(shard),
                )
                .await;
            if let Err(e) = ok {
                tracing::warn!(shard = shard.0, error = %e, "leader transfer failed");
                continue;
            }
            tasks.push(pb::TaskInfo {
                id: 0,
                kind: "transfer-leader".into(),
                shard: shard.0,
                from: from.0,
                to: to.0,
                step: "done".into(),
            });
        }
        Ok(Response::new(pb::RebalanceResponse { tasks }))
    }

    async fn set_setting(
        &self,
        request: Request<pb::SetSettingRequest>,
    ) -> Result<Response<pb::SetSettingResponse>, Status> {
        let node = self.node()?;
        let r = request.into_inner();
        let version = node
            .set_setting(
                &r.key,
                &r.value,
                cas(r.expected_version),
                r.expected_value.as_deref(),
            )
            .await?;
        Ok(Response::new(pb::SetSettingResponse { version }))
    }

    async fn get_setting(
        &self,
        request: Request<pb::GetSettingRequest>,
    ) -> Result<Response<pb::GetSettingResponse>, Status> {
        let node = self.node()?;
        let r = request.into_inner();
        let c = consistency(r.consistency)?;
        let setting = node.get_setting(&r.key, c).await?;
        Ok(Response::new(match setting {
            Some((value, version)) => pb::GetSettingResponse {
                found: true,
                value,
                version,
            },
            None => pb::GetSettingResponse {
                found: false,
                value: String::new(),
                version: 0,
            },
        }))
    }

    async fn apply_rules(
        &self,
        request: Request<pb::ApplyRulesRequest>,
    ) -> Result<Response<pb::ApplyRulesResponse>, Status> {
        let node = self.node()?;
        let r = request.into_inner();
        Ok(Response::new(
            node.apply_rules(&r.yaml, cas(r.expected_version)).await?,
        ))
    }

    async fn list_rules(
        &self,
        request: Request<pb::ListRulesRequest>,
    ) -> Result<Response<pb::ListRulesResponse>, Status> {
        let node = self.node()?;
        let c = consistency(request.get_ref().consistency)?;
        let (state, now) = alerting_api::read_alerting(&node, c).await?;
        Ok(Response::new(alerting_api::rules_response(&state, now)))
    }

    async fn delete_rule_group(
        &self,
        request: Request<pb::DeleteRuleGroupRequest>,
    ) -> Result<Response<pb::DeleteRuleGroupResponse>, Status> {
        let node = self.node()?;
        let r = request.into_inner();
        let version = node
            .delete_rule_group(&r.name, cas(r.expected_version))
            .await?;
        Ok(Response::new(pb::DeleteRuleGroupResponse { version }))
    }

    async fn set_alertmanager_config(
        &self,
        request: Request<pb::SetAlertmanagerConfigRequest>,
    ) -> Result<Response<pb::SetAlertmanagerConfigResponse>, Status> {
        let node = self.node()?;
        let r = request.into_inner();
        let version = node
            .set_alertmanager_config(&r.yaml, cas(r.expected_version))
            .await?;
        Ok(Response::new(pb::SetAlertmanagerConfigResponse { version }))
    }

    async fn get_alertmanager_config(
        &self,
        request: Request<pb::GetAlertmanagerConfigRequest>,
    ) -> Result<Response<pb::GetAlertmanagerConfigResponse>, Status> {
        let node = self.node()?;
        let c = consistency(request.get_ref().consistency)?;
        let (state, _) = alerting_api::read_alerting(&node, c).await?;
        Ok(Response::new(pb::GetAlertmanagerConfigResponse {
            yaml: state.config.map(|c| c.original).unwrap_or_default(),
        }))
    }

    async fn add_silence(
        &self,
        request: Request<pb::AddSilenceRequest>,
    ) -> Result<Response<pb::AddSilenceResponse>, Status> {
        let node = self.node()?;
        let r = request.into_inner();
        let spec = alerting_api::SilenceSpec {
            matchers: alerting_api::parse_matchers_arg(&r.matchers)?,
            starts_at_ms: (r.starts_at_ms != 0).then_some(r.starts_at_ms),
            ends_at_ms: r.ends_at_ms,
            created_by: r.created_by,
            comment: r.comment,
            replaces: (!r.id.is_empty()).then_some(r.id),
        };
        let id = node.add_silence(spec).await?;
        Ok(Response::new(pb::AddSilenceResponse { id }))
    }

    async fn list_silences(
        &self,
        request: Request<pb::ListSilencesRequest>,
    ) -> Result<Response<pb::ListSilencesResponse>, Status> {
        let node = self.node()?;
        let c = consistency(request.get_ref().consistency)?;
        let (state, now) = alerting_api::read_alerting(&node, c).await?;
        Ok(Response::new(pb::ListSilencesResponse {
            silences: state
                .silences
                .values()
                .map(|s| alerting_api::silence_info(s, now))
                .collect(),
        }))
    }

    async fn expire_silence(
        &self,
        request: Request<pb::ExpireSilenceRequest>,
    ) -> Result<Response<pb::ExpireSilenceResponse>, Status> {
        let node = self.node()?;
        node.expire_silence(&request.get_ref().id).await?;
        Ok(Response::new(pb::ExpireSilenceResponse {}))
    }

    async fn list_alerts(
        &self,
        request: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        let node = self.node()?;
        let c = consistency(request.get_ref().consistency)?;
        let (state, now) = alerting_api::read_alerting(&node, c).await?;
        Ok(Response::new(pb::ListAlertsResponse {
            alerts: alerting_api::alert_infos(&state, now),
        }))
    }

    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        let node = self.node()?;
        let c = consistency(request.get_ref().consistency)?;
        let (state, _) = alerting_api::read_alerting(&node, c).await?;
        Ok(Response::new(pb::ListNotificationsResponse {
            notifications: state
                .notifications
                .values()
                .map(alerting_api::notification_info)
                .collect(),
            abandoned: state.notifications_abandoned,
        }))
    }
}

/// `Ingest.Write`, served from the request's bytes: parsed into a
/// borrowed [`WriteView`]; bytes the view refuses are decoded by prost,
/// which either accepts them (the same request, the same path) or gives
/// the codec's `INVALID_ARGUMENT`.
#[tonic::async_trait]
impl IngestRaw for Api {
    async fn write(
        &self,
        request: Request<prost::bytes::Bytes>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let node = self.node()?;
        let started = node.metrics.now();
        let bytes = request.into_inner();
        let resp = match WriteView::parse(&bytes) {
            Ok(view) => {
                node.write_view_observed(Protocol::Grpc, started, &view)
                    .await?
            }
            Err(_) => {
                let req = pb::WriteRequest::decode(bytes.as_ref())
                    .map_err(raftwatch_proto::codec::decode_error_status)?;
                node.write_observed(Protocol::Grpc, started, req).await?
            }
        };
        Ok(Response::new(resp))
    }
}

/// `select` answers `Query.Select`: every shard's raw samples, merged and
/// sorted by label set.
async fn select(node: &Arc<Node>, req: pb::SelectRequest) -> Result<pb::SelectResponse, Status> {
    let c = consistency(req.consistency)?;
    // One matcher check for every query kind (`query.rs`).
    let matchers = super::query::matchers(&req.matchers, super::query::Need::Selector)?;
    let query = sc::ShardQuery {
        matchers,
        start_ms: req.start_ms,
        end_ms: req.end_ms,
        series_max: 0,
        samples_max: 0,
    };
    let (found, read) = super::query::select(node, query, c).await?;
    let series = found
        .into_iter()
        .map(|s| pb::Series {
            labels: s
                .labels
                .into_iter()
                .map(|l| pb::Label {
                    name: l.name,
                    value: l.value,
                })
                .collect(),
            samples: s
                .timestamps
                .into_iter()
                .zip(s.values)
                .map(|(t, v)| pb::Sample {
                    timestamp_ms: t,
                    value: v,
                })
                .collect(),
        })
        .collect();
    Ok(pb::SelectResponse {
        series,
        read: Some(read),
    })
}

#[tonic::async_trait]
impl pb::query_server::Query for Api {
    async fn select(
        &self,
        request: Request<pb::SelectRequest>,
    ) -> Result<Response<pb::SelectResponse>, Status> {
        let node = self.node()?;
        let req = request.into_inner();
        node.metrics
            .timed_query("select", select(&node, req))
            .await
            .map(Response::new)
    }

    // Instant, range, series and label queries: `query.rs`.

    async fn instant(
        &self,
        request: Request<pb::InstantRequest>,
    ) -> Result<Response<pb::InstantResponse>, Status> {
        let node = self.node()?;
        Ok(Response::new(
            super::query::instant(&node, request.into_inner()).await?,
        ))
    }

    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let node = self.node()?;
        Ok(Response::new(
            super::query::range(&node, request.into_inner()).await?,
        ))
    }

    async fn series(
        &self,
        request: Request<pb::SeriesRequest>,
    ) -> Result<Response<pb::SeriesResponse>, Status> {
        let node = self.node()?;
        Ok(Response::new(
            super::query::series(&node, request.into_inner()).await?,
        ))
    }

    async fn label_names(
        &self,
        request: Request<pb::LabelNamesRequest>,
    ) -> Result<Response<pb::LabelNamesResponse>, Status> {
        let node = self.node()?;
        Ok(Response::new(
            super::query::label_names(&node, request.into_inner()).await?,
        ))
    }

    async fn label_values(
        &self,
        request: Request<pb::LabelValuesRequest>,
    ) -> Result<Response<pb::LabelValuesResponse>, Status> {
        let node = self.node()?;
        Ok(Response::new(
            super::query::label_values(&node, request.into_inner()).await?,
        ))
    }

    async fn promql(
        &self,
        request: Request<pb::PromqlRequest>,
    ) -> Result<Response<pb::PromqlResponse>, Status> {
        let node = self.node()?;
        super::promql::grpc(&node, request.into_inner())
            .await
            .map(Response::new)
            .map_err(|e| e.to_status())
    }
}

#[tonic::async_trait]
impl pb::node_internal_server::NodeInternal for Api {
    async fn local_status(
        &self,
        _request: Request<pb::LocalStatusRequest>,
    ) -> Result<Response<pb::LocalStatusResponse>, Status> {
        let node = self.node()?;
        Ok(Response::new(pb::LocalStatusResponse {
            node_id: node.id.0,
            groups: node
                .local_status()
                .await
                .iter()
                .map(group_status_pb)
                .collect(),
        }))
    }

    async fn propose(
        &self,
        request: Request<pb::ProposeRequest>,
    ) -> Result<Response<pb::ProposeResponse>, Status> {
        let node = self.node()?;
        let r = request.into_inner();
        let handle =
            node.host.group(GroupId(r.group)).await.ok_or_else(|| {
                Status::not_found(format!("group {} is not hosted here", r.group))
            })?;
        match node.exec_local(&handle, &GroupOp::Propose(r.command)).await {
            Ok(response) => Ok(Response::new(pb::ProposeResponse { response })),
            Err(e) => Err(with_leader_addr(&node, e)),
        }
    }

    async fn group_read(
        &self,
        request: Request<pb::GroupReadRequest>,
    ) -> Result<Response<pb::GroupReadResponse>, Status> {
        let node = self.node()?;
        let r = request.into_inner();
        let c = consistency(r.consistency)?;
        let handle =
            node.host.group(GroupId(r.group)).await.ok_or_else(|| {
                Status::not_found(format!("group {} is not hosted here", r.group))
            })?;
        let result = handle.read(&r.request, c).await.map_err(group_status)?;
        Ok(Response::new(pb::GroupReadResponse {
            response: result.response,
            applied_index: result.applied_index.unwrap_or(0),
            read_index: result.read_index.unwrap_or(0),
            known_commit_index: result.known_commit_index.unwrap_or(0),
        }))
    }

    async fn shard_write(
        &self,
        request: Request<pb::ShardWriteRequest>,
    ) -> Result<Response<pb::ShardWriteResponse>, Status> {
        let node = self.node()?;
        let r = request.into_inner();
        // Checked here, then queued as received: a part that did not decode
        // would fail the whole entry it is coalesced into.
        raftwatch_shard::codec::ShardRequest::decode(r.request.as_slice())
            .map_err(|e| Status::invalid_argument(format!("undecodable shard request: {e}")))?;
        let result = node
            .enqueue_local(ShardId(r.shard), std::sync::Arc::new(r.request))
            .await?;
        Ok(Response::new(pb::ShardWriteResponse {
            result: result.encode_to_vec(),
        }))
    }

    async fn group_membership(
        &self,
        request: Request<pb::GroupMembershipRequest>,
    ) -> Result<Response<pb::GroupMembershipResponse>, Status> {
        let node = self.node()?;
        let r = request.into_inner();
        let id = NodeId(r.node_id);
        let op = match r.op.as_str() {
            "add-learner" => {
                check_addr(&r.addr, "learner address")?;
                GroupOp::AddLearner(id, r.addr)
            }
            "promote" => GroupOp::Promote(id),
            "remove" => GroupOp::Remove(id),
            "transfer-leader" => GroupOp::TransferLeader(id),
            other => return Err(Status::invalid_argument(format!("unknown op {other:?}"))),
        };
        let handle =
            node.host.group(GroupId(r.group)).await.ok_or_else(|| {
                Status::not_found(format!("group {} is not hosted here", r.group))
            })?;
        node.exec_local(&handle, &op)
            .await
            .map_err(|e| with_leader_addr(&node, e))?;
        Ok(Response::new(pb::GroupMembershipResponse {}))
    }
}

/// A not-leader error with the leader's address filled in from the control
/// state when openraft did not know it.
pub(crate) fn with_leader_addr(node: &Node, e: raftwatch_raft::host::GroupError) -> Status {
    if let raftwatch_raft::host::GroupError::NotLeader {
        leader: Some(l),
        leader_addr: None,
        ..
    } = &e
    {
        let addr = node.member_addr(*l);
        return unavailable_with_leader(e.to_string(), addr.as_deref());
    }
    group_status(e)
}
