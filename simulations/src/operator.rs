//! The operator client: control-plane compare-and-set commands (shard
//! moves and drains conditioned on the state version it last read), leader
//! transfers, and linearizable reads of the control state, all over the
//! real gRPC Admin API. In the liveness phase it waits until every task it
//! started has finished.

use std::time::Duration;

use raftwatch_proto::v1 as pb;
use raftwatch_seams::DetRng;
use tonic::transport::Endpoint;

use crate::history::{CasKind, CasOutcome, Op};
use crate::params::{PORT, Params};
use crate::workload::{Phase, SharedRef};

pub(crate) fn admin(
    params: &Params,
    rng: &mut DetRng,
) -> pb::admin_client::AdminClient<tonic::transport::Channel> {
    let node = 1 + rng.below(params.nodes);
    let url = format!("http://{}:{PORT}", crate::cluster::host_name(node));
    // A fresh channel per call: a connection stalled by a partition is
    // never reused.
    let endpoint = Endpoint::from_shared(url)
        .expect("static url")
        .timeout(Duration::from_secs(3))
        .connect_timeout(Duration::from_millis(500));
    pb::admin_client::AdminClient::new((crate::net::dialer())(&endpoint))
}

/// `versioned` runs a linearizable read of the control state and records
/// it, with the state version it saw, for `control_cas`.
async fn versioned<T>(
    shared: &SharedRef,
    read: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    version: impl Fn(&T) -> u64,
) -> Option<T> {
    let op = shared.borrow_mut().invoke(Op::VersionRead { op: 0 });
    let r = read.await.ok().map(tonic::Response::into_inner);
    shared.borrow_mut().history.ops.push(Op::VersionComplete {
        op,
        version: r.as_ref().map(&version),
    });
    r
}

async fn list(
    params: &Params,
    shared: &SharedRef,
    rng: &mut DetRng,
) -> Option<pb::ListShardsResponse> {
    let mut c = admin(params, rng);
    let read = c.list_shards(pb::ListShardsRequest {
        consistency: pb::Consistency::Linearizable as i32,
    });
    versioned(shared, read, |r| r.version).await
}

async fn status(
    params: &Params,
    shared: &SharedRef,
    rng: &mut DetRng,
) -> Option<pb::ClusterStatusResponse> {
    let mut c = admin(params, rng);
    let read = c.cluster_status(pb::ClusterStatusRequest {
        consistency: pb::Consistency::Linearizable as i32,
    });
    versioned(shared, read, |r| r.version).await
}

/// Promotes a joined node, or removes a drained one that holds nothing,
/// conditioned on `st.version`. Returns whether it tried.
async fn membership(
    params: &Params,
    shared: &SharedRef,
    rng: &mut DetRng,
    st: &pb::ClusterStatusResponse,
) -> bool {
    let holds = |id: u64| st.shards.iter().any(|s| s.replicas.contains(&id));
    let kind = if let Some(m) = st.members.iter().find(|m| m.state == "joining") {
        CasKind::Promote { node: m.id }
    } else if let Some(m) = st
        .members
        .iter()
        .find(|m| m.state == "draining" && !holds(m.id) && st.tasks.is_empty())
    {
        CasKind::Remove { node: m.id }
    } else {
        return false;
    };
    let op = shared.borrow_mut().invoke(Op::CasInvoke {
        op: 0,
        kind: kind.clone(),
        expected_version: st.version,
    });
    let mut c = admin(params, rng);
    let r = match kind {
        CasKind::Promote { node } => c
            .promote_member(pb::MemberRequest {
                node_id: node,
                expected_version: st.version,
            })
            .await
            .map(|_| ()),
        CasKind::Remove { node } => c
            .remove_member(pb::MemberRequest {
                node_id: node,
                expected_version: st.version,
            })
            .await
            .map(|_| ()),
        _ => Ok(()),
    };
    let outcome = cas_outcome(&r);
    shared
        .borrow_mut()
        .history
        .ops
        .push(Op::CasComplete { op, outcome });
    true
}

fn cas_outcome<T>(r: &Result<T, tonic::Status>) -> CasOutcome {
    match r {
        Ok(_) => CasOutcome::Applied,
        Err(s) if s.code() == tonic::Code::FailedPrecondition => CasOutcome::Precondition,
        Err(s)
            if matches!(
                s.code(),
                tonic::Code::InvalidArgument | tonic::Code::NotFound
            ) =>
        {
            CasOutcome::Refused
        }
        Err(_) => CasOutcome::Unknown,
    }
}

/// `operator` runs until the safety phase ends, then waits for its tasks.
pub async fn operator(params: Params, shared: SharedRef, seed: u64) -> turmoil::Result {
    let mut rng = DetRng::new(seed);
    let mut drained = false;
    let rf = params.replicas.min(params.nodes as u32) as usize;
    while shared.borrow().phase == Phase::Safety {
        tokio::time::sleep(Duration::from_millis(300 + rng.below(1_200))).await;
        if rng.chance(0.3)
            && let Some(st) = status(&params, &shared, &mut rng).await
            && membership(&params, &shared, &mut rng, &st).await
        {
            continue;
        }
        let Some(state) = list(&params, &shared, &mut rng).await else {
            continue;
        };
        let Some(shard) = state
            .shards
            .get(rng.below(state.shards.len().max(1) as u64) as usize)
            .cloned()
        else {
            continue;
        };
        let spare: Vec<u64> = (1..=params.nodes)
            .filter(|n| !shard.replicas.contains(n))
            .collect();
        match rng.below(10) {
            0..=4 if !spare.is_empty() && !shard.replicas.is_empty() => {
                let from = shard.replicas[rng.below(shard.replicas.len() as u64) as usize];
                let to = spare[rng.below(spare.len() as u64) as usize];
                let op = shared.borrow_mut().invoke(Op::CasInvoke {
                    op: 0,
                    kind: CasKind::Move {
                        shard: shard.id,
                        from,
                        to,
                    },
                    expected_version: state.version,
                });
                let r = admin(&params, &mut rng)
                    .move_shard(pb::MoveShardRequest {
                        shard: shard.id,
                        from,
                        to,
                        expected_version: state.version,
                    })
                    .await;
                let outcome = cas_outcome(&r);
                shared
                    .borrow_mut()
                    .history
                    .ops
                    .push(Op::CasComplete { op, outcome });
            }
            5 if !drained && params.nodes > rf as u64 + 1 => {
                drained = true;
                let node = 1 + rng.below(params.nodes);
                let op = shared.borrow_mut().invoke(Op::CasInvoke {
                    op: 0,
                    kind: CasKind::Drain { node },
                    expected_version: state.version,
                });
                let r = admin(&params, &mut rng)
                    .drain_member(pb::MemberRequest {
                        node_id: node,
                        expected_version: state.version,
                    })
                    .await;
                let outcome = cas_outcome(&r);
                shared
                    .borrow_mut()
                    .history
                    .ops
                    .push(Op::CasComplete { op, outcome });
            }
            6..=7 if !shard.replicas.is_empty() => {
                let to = shard.replicas[rng.below(shard.replicas.len() as u64) as usize];
                let _ = admin(&params, &mut rng)
                    .transfer_shard_leader(pb::TransferShardLeaderRequest {
                        shard: shard.id,
                        to,
                    })
                    .await;
            }
            _ => {}
        }
    }
    // Liveness: a joining node becomes an active member, every task
    // finishes, and every shard ends with its full replica set.
    loop {
        let joined = match (params.joiner, status(&params, &shared, &mut rng).await) {
            (None, _) => true,
            (Some(j), Some(st)) => {
                membership(&params, &shared, &mut rng, &st).await;
                st.members.iter().any(|m| m.id == j && m.state != "joining")
            }
            (Some(_), None) => false,
        };
        if joined
            && let Some(state) = list(&params, &shared, &mut rng).await
            && state.tasks.is_empty()
        {
            let short: Vec<String> = state
                .shards
                .iter()
                .filter(|s| s.replicas.len() < rf)
                .map(|s| format!("shard {} has replicas {:?}", s.id, s.replicas))
                .collect();
            shared.borrow_mut().operator_done = Some(short);
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
