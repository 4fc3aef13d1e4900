//! Quiescence: idle groups stop ticking, and one node-level liveness
//! exchange per peer stands in for all their heartbeats.
//!
//! openraft wakes every group's core on every tick (13/64 of the heartbeat
//! interval) and every leader heartbeats every follower every interval, even
//! when nothing is written. With 64 groups on 3 nodes that was 8.5–10.6 % of
//! a core at a 300 ms heartbeat. A quiesced group costs nothing: its ticker
//! is parked (openraft's `RuntimeConfigHandle::tick(false)`), so it neither
//! heartbeats nor times out. This is CockroachDB's "quiesced ranges" and
//! TiKV's "hibernate regions", over openraft's runtime switches.
//!
//! **Leader.** A group it leads quiesces after `quiesce_after` consecutive
//! checks (one per heartbeat interval) in which its last log index did not
//! move and every member (voter or learner) had matched it, in a uniform
//! (not joint) membership. Any write, membership change or leader transfer
//! through its [`crate::GroupHandle`] wakes it first.
//!
//! **Followers.** Every node sends every peer a [`pb::LivenessRequest`]
//! each heartbeat interval, listing the groups it leads, has quiesced and
//! shares with that peer, each with its term and last log index. A
//! replica quiesces only if it sees the same leader in the same term
//! (a committed vote), holds exactly that last log index and knows it to be
//! committed, so it has nothing left to learn from a heartbeat. Otherwise
//! it answers with the group's id and the leader wakes the group, whose
//! heartbeats then bring the replica up to date.
//!
//! **Waking a follower.** A follower's quiesced replica wakes when (a) the
//! leader's next liveness request no longer lists the group, (b) an
//! append-entries with entries arrives for it, (c) it no longer sees that
//! node as the group's leader, or (d) nothing was heard from the leader's
//! node for `liveness_timeout` (the minimum election timeout). After (d)
//! the replica's election timer has long expired, so it campaigns on its
//! first tick: a quiesced group fails over as fast as an active one.
//!
//! **Safety.** Quiescence only switches openraft's timers; it never touches
//! votes, logs or commit. Every safety argument of Raft stands; what it can
//! cost is liveness, which (d) restores. A leader isolated while quiesced
//! keeps believing it leads (it does not tick); a write to it wakes it and
//! fails to commit, a linearizable read fails its quorum round, and its
//! first liveness exchange after the partition heals is answered with a wake
//! (the replicas moved to a newer term), so it heartbeats and steps down.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use openraft_rt::Instant as _;
use openraft_rt_tokio::TokioInstant;
use raftwatch_proto::v1 as pb;

use crate::service::Registry;
use crate::types::{GroupId, GroupRaft, NodeId};

/// `Quiescence` is one node's record of its quiesced groups and of when it
/// last heard from each peer.
#[derive(Debug)]
pub struct Quiescence {
    me: NodeId,
    /// Consecutive idle checks before a led group quiesces (0: never).
    quiesce_after: u32,
    /// How long a peer may stay silent before the groups it quiesced here
    /// wake.
    liveness_timeout: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Groups this node leads and has quiesced: (term, last log index).
    leading: BTreeMap<GroupId, (u64, u64)>,
    /// Leader side: per group, the last log index at the previous check and
    /// how many checks in a row it was idle.
    idle: BTreeMap<GroupId, (Option<u64>, u32)>,
    /// Replicas quiesced here by a leader elsewhere: the leader's node.
    following: BTreeMap<GroupId, NodeId>,
    /// When each peer was last heard from at node level (its liveness
    /// request arrived, or it answered ours).
    contact: BTreeMap<NodeId, TokioInstant>,
    /// When [`Quiescence::check`] last ran.
    last_check: Option<TokioInstant>,
    /// Groups whose ticker this node parked: what openraft was told, kept
    /// under the same lock as the maps above so the two never disagree.
    parked: BTreeSet<GroupId>,
    /// Led groups woken here from quiescence (by a write, a peer's answer or
    /// a change the check saw), and when: their leader lease lapsed while
    /// quiesced (see [`Quiescence::wake`]).
    woken_leading: BTreeMap<GroupId, TokioInstant>,
}

/// `LivenessRequests` is what [`Quiescence::check`] asks to send: per peer,
/// its address and the request.
pub type LivenessRequests = BTreeMap<NodeId, (String, pb::LivenessRequest)>;

/// `QuiesceStats` counts a node's quiesced groups (metrics, tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuiesceStats {
    /// Groups this node leads that are quiesced.
    pub leading: usize,
    /// Replicas here quiesced by a leader elsewhere.
    pub following: usize,
}

impl Inner {
    /// Parks or resumes `group`'s ticker. Called with the lock held, so a
    /// concurrent wake cannot land between the record and the switch.
    fn set_ticking(&mut self, me: NodeId, group: GroupId, raft: &GroupRaft, on: bool) {
        let changed = if on {
            self.parked.remove(&group)
        } else {
            self.parked.insert(group)
        };
        if changed {
            tracing::debug!(node = me.0, group = group.0, ticking = on, "quiescence");
            raft.runtime_config().tick(on);
        }
    }
}

/// `now` is openraft's clock (tokio's, which the simulator drives).
pub(crate) fn now() -> TokioInstant {
    TokioInstant::now()
}

impl Quiescence {
    /// `new` makes node `me`'s record. `quiesce_after` is the number of idle
    /// checks (heartbeat intervals) before a led group quiesces, 0 to never
    /// quiesce; `liveness_timeout` is how long a silent peer is trusted.
    pub fn new(me: NodeId, quiesce_after: u32, liveness_timeout: Duration) -> Self {
        Quiescence {
            me,
            quiesce_after,
            liveness_timeout,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update below leaves the maps consistent between statements.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `stats` counts the quiesced groups.
    pub fn stats(&self) -> QuiesceStats {
        let inner = self.lock();
        QuiesceStats {
            leading: inner.leading.len(),
            following: inner.following.len(),
        }
    }

    /// `is_quiesced` says whether `group` is quiesced here, as leader or
    /// follower.
    pub fn is_quiesced(&self, group: GroupId) -> bool {
        self.lock().parked.contains(&group)
    }

    /// `wake` makes `group` tick again here, if it was quiesced, and restarts
    /// its idle count. Called before every write, membership change and
    /// leader transfer. Returns whether this node led the group quiesced
    /// now or within the liveness timeout: then its leader lease may have
    /// lapsed (no heartbeat was acknowledged while quiesced), and a write
    /// should renew it first.
    pub fn wake(&self, group: GroupId, raft: &GroupRaft) -> bool {
        let mut inner = self.lock();
        let now = now();
        inner.idle.remove(&group);
        if inner.leading.remove(&group).is_some() {
            inner.woken_leading.insert(group, now);
        }
        inner.following.remove(&group);
        inner.set_ticking(self.me, group, raft, true);
        inner
            .woken_leading
            .get(&group)
            .is_some_and(|at| now.saturating_duration_since(*at) <= self.liveness_timeout)
    }

    /// `leader_is_live` says whether `group`'s replica here is quiesced and
    /// its leader is alive: this node leads it, or it was quiesced by a
    /// leader whose node was heard from within the liveness timeout. Such a
    /// replica refuses pre-votes (nothing renews openraft's leader lease
    /// while quiesced, so openraft itself would grant them).
    pub fn leader_is_live(&self, group: GroupId) -> bool {
        let inner = self.lock();
        if inner.leading.contains_key(&group) {
            return true;
        }
        let Some(leader) = inner.following.get(&group) else {
            return false;
        };
        inner
            .contact
            .get(leader)
            .is_some_and(|at| now().saturating_duration_since(*at) <= self.liveness_timeout)
    }

    /// `wake_on_entries` wakes a follower's replica that receives entries
    /// (the leader is active again).
    pub fn wake_on_entries(&self, group: GroupId, raft: &GroupRaft) {
        let mut inner = self.lock();
        if inner.following.remove(&group).is_some() {
            inner.set_ticking(self.me, group, raft, true);
        }
    }

    /// `forget` drops what is known about a group removed from this node.
    pub fn forget(&self, group: GroupId) {
        let mut inner = self.lock();
        inner.leading.remove(&group);
        inner.following.remove(&group);
        inner.idle.remove(&group);
        inner.parked.remove(&group);
        inner.woken_leading.remove(&group);
    }

    /// `check` runs once per heartbeat interval over the groups hosted here:
    /// it quiesces led groups that stayed idle, wakes led groups this node
    /// no longer leads or that moved, and wakes replicas whose leader went
    /// silent or changed. It returns the liveness request for each peer.
    pub fn check(&self, groups: &BTreeMap<GroupId, GroupRaft>) -> LivenessRequests {
        let now = now();
        let mut requests = LivenessRequests::new();
        let mut inner = self.lock();
        // If this node itself stalled (its process was paused, its runtime
        // starved) its peers' silence says nothing about them: give each a
        // fresh timeout rather than wake every group and depose leaders that
        // are alive.
        let stalled = inner
            .last_check
            .is_some_and(|at| now.saturating_duration_since(at) > self.liveness_timeout / 2);
        inner.last_check = Some(now);
        if stalled {
            for at in inner.contact.values_mut() {
                *at = now;
            }
        }
        inner.idle.retain(|g, _| groups.contains_key(g));
        inner.leading.retain(|g, _| groups.contains_key(g));
        inner.following.retain(|g, _| groups.contains_key(g));
        inner.parked.retain(|g| groups.contains_key(g));
        let timeout = self.liveness_timeout;
        inner.woken_leading.retain(|g, at| {
            groups.contains_key(g) && now.saturating_duration_since(*at) <= timeout
        });
        for (&group, raft) in groups {
            let rx = raft.metrics();
            let m = rx.borrow_watched();
            let membership = m.membership_config.membership();
            let members: BTreeSet<NodeId> = membership.nodes().map(|(id, _)| NodeId(*id)).collect();
            for (id, node) in membership.nodes() {
                if NodeId(*id) != self.me {
                    requests.entry(NodeId(*id)).or_insert_with(|| {
                        (
                            node.grpc_addr.clone(),
                            pb::LivenessRequest {
                                from_node_id: self.me.0,
                                quiesced: Vec::new(),
                            },
                        )
                    });
                }
            }
            // Follower side: the leader that quiesced this replica must
            // still be its leader and still be heard from.
            if let Some(&leader) = inner.following.get(&group) {
                let silent = inner
                    .contact
                    .get(&leader)
                    .is_none_or(|at| now.saturating_duration_since(*at) > self.liveness_timeout);
                if silent || m.current_leader != Some(leader.0) {
                    inner.following.remove(&group);
                    inner.set_ticking(self.me, group, raft, true);
                }
                continue;
            }
            // Leader side.
            let leading = m.state == ServerState::Leader && m.current_leader == Some(self.me.0);
            let last = m.last_log_index;
            if let Some(&(term, index)) = inner.leading.get(&group) {
                if leading && m.current_term == term && last == Some(index) {
                    for peer in members.iter().filter(|p| **p != self.me) {
                        if let Some((_, req)) = requests.get_mut(peer) {
                            req.quiesced.push(pb::QuiescedGroup {
                                group_id: group.0,
                                term,
                                last_log_index: index,
                            });
                        }
                    }
                } else {
                    inner.leading.remove(&group);
                    inner.idle.remove(&group);
                    inner.woken_leading.insert(group, now);
                    inner.set_ticking(self.me, group, raft, true);
                }
                continue;
            }
            let caught_up = leading
                && self.quiesce_after > 0
                && last.is_some()
                && m.local_committed.as_ref().map(|l| l.index) == last
                && m.last_applied.as_ref().map(|l| l.index) == last
                && membership.get_joint_config().len() == 1
                && m.replication.as_ref().is_some_and(|r| {
                    r.iter().all(|(id, matched)| {
                        *id == self.me.0 || matched.as_ref().map(|l| l.index) == last
                    })
                });
            let entry = inner.idle.entry(group).or_insert((None, 0));
            if caught_up && entry.0 == last {
                entry.1 += 1;
            } else {
                *entry = (last, 0);
            }
            if caught_up
                && entry.1 >= self.quiesce_after
                && let Some(index) = last
            {
                inner.leading.insert(group, (m.current_term, index));
                inner.set_ticking(self.me, group, raft, false);
            }
        }
        requests
    }

    /// `on_answer` records that `peer` answered a liveness request, and wakes
    /// the led groups it could not quiesce.
    pub fn on_answer(&self, peer: NodeId, answer: &pb::LivenessResponse, registry: &Registry) {
        let rafts = registry.read().unwrap_or_else(PoisonError::into_inner);
        let mut inner = self.lock();
        inner.contact.insert(peer, now());
        for id in &answer.wake_group_ids {
            let group = GroupId(*id);
            if inner.leading.remove(&group).is_some() {
                inner.idle.remove(&group);
                inner.woken_leading.insert(group, now());
                if let Some(raft) = rafts.get(&group) {
                    inner.set_ticking(self.me, group, raft, true);
                }
            }
        }
    }

    /// `on_request` serves a peer's liveness request: it records the
    /// contact, quiesces the listed replicas that are caught up with that
    /// leader, wakes replicas that leader quiesced but no longer lists, and
    /// returns the listed groups it could not quiesce.
    pub fn on_request(
        &self,
        request: &pb::LivenessRequest,
        registry: &Registry,
    ) -> pb::LivenessResponse {
        let from = NodeId(request.from_node_id);
        let rafts = registry.read().unwrap_or_else(PoisonError::into_inner);
        let mut wake_group_ids = Vec::new();
        let mut listed = BTreeSet::new();
        let mut inner = self.lock();
        inner.contact.insert(from, now());
        for q in &request.quiesced {
            let group = GroupId(q.group_id);
            listed.insert(group);
            let Some(raft) = rafts.get(&group) else {
                continue;
            };
            let ready = {
                let rx = raft.metrics();
                let m = rx.borrow_watched();
                m.state != ServerState::Leader
                    && m.state != ServerState::Candidate
                    && m.current_term == q.term
                    && m.current_leader == Some(from.0)
                    && m.vote.committed
                    && m.vote.leader_id.term == q.term
                    && m.vote.leader_id.node_id == from.0
                    && m.last_log_index == Some(q.last_log_index)
                    && m.local_committed.as_ref().map(|l| l.index) == Some(q.last_log_index)
            };
            if ready {
                inner.leading.remove(&group);
                inner.following.insert(group, from);
                inner.set_ticking(self.me, group, raft, false);
            } else {
                wake_group_ids.push(q.group_id);
                if inner.following.remove(&group).is_some() {
                    inner.set_ticking(self.me, group, raft, true);
                }
            }
        }
        let unlisted: Vec<GroupId> = inner
            .following
            .iter()
            .filter(|(g, l)| **l == from && !listed.contains(g))
            .map(|(g, _)| *g)
            .collect();
        for group in unlisted {
            inner.following.remove(&group);
            if let Some(raft) = rafts.get(&group) {
                inner.set_ticking(self.me, group, raft, true);
            }
        }
        pb::LivenessResponse { wake_group_ids }
    }
}
