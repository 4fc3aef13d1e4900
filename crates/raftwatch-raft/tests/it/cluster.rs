//! Three nodes × two groups over real gRPC and real logs: election,
//! 10,000 committed entries, leader loss, restart with catch-up by log and
//! by snapshot, linearizable and stale reads, membership changes while
//! writing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use raftwatch_raft::{
    GroupHandle, GroupId, GroupStateMachine, HostConfig, NodeId, RaftHost, ReadConsistency,
};

/// A key-value state machine: commands `put <key> <value>`, queries
/// `get <key>` and `len`.
#[derive(Default)]
struct Kv {
    map: BTreeMap<String, String>,
}

impl GroupStateMachine for Kv {
    fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(command);
        let mut parts = text.splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("put"), Some(k), Some(v)) => {
                self.map.insert(k.to_string(), v.to_string());
                b"ok".to_vec()
            }
            _ => b"bad command".to_vec(),
        }
    }

    fn query(&self, request: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(request);
        if text == "len" {
            return self.map.len().to_string().into_bytes();
        }
        if text == "keys" {
            return self
                .map
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
                .into_bytes();
        }
        let key = text.strip_prefix("get ").unwrap_or("");
        self.map.get(key).cloned().unwrap_or_default().into_bytes()
    }

    fn snapshot(&self) -> Result<Vec<u8>, String> {
        Ok({
            let mut out = Vec::new();
            for (k, v) in &self.map {
                out.extend_from_slice(format!("{k}\t{v}\n").as_bytes());
            }
            out
        })
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(snapshot).map_err(|e| e.to_string())?;
        let mut map = BTreeMap::new();
        for line in text.lines() {
            let (k, v) = line.split_once('\t').ok_or("malformed snapshot line")?;
            map.insert(k.to_string(), v.to_string());
        }
        self.map = map;
        Ok(())
    }
}

const GROUPS: [GroupId; 2] = [GroupId(1), GroupId(2)];

struct Node {
    id: NodeId,
    dir: PathBuf,
    addr: SocketAddr,
    host: Option<RaftHost>,
}

fn config(id: NodeId, dir: PathBuf, addr: SocketAddr) -> HostConfig {
    let mut c = HostConfig::new(id, dir, addr);
    c.election_timeout_ms = (400, 800);
    c.heartbeat_interval_ms = 100;
    c.snapshot_after_entries = 2_000;
    c.log_entries_kept_after_snapshot = 100;
    c
}

impl Node {
    async fn start(&mut self) {
        let host = RaftHost::start(config(self.id, self.dir.clone(), self.addr))
            .await
            .unwrap();
        self.addr = host.addr();
        for g in GROUPS {
            host.create_group(g, Box::new(Kv::default())).await.unwrap();
        }
        self.host = Some(host);
    }

    async fn group(&self, g: GroupId) -> GroupHandle {
        self.host.as_ref().unwrap().group(g).await.unwrap()
    }

    async fn stop(&mut self) {
        if let Some(h) = self.host.take() {
            h.shutdown().await;
        }
    }
}

async fn cluster(tmp: &tempfile::TempDir, n: u64) -> Vec<Node> {
    let mut nodes = Vec::new();
    for id in 1..=n {
        let mut node = Node {
            id: NodeId(id),
            dir: tmp.path().join(format!("node-{id}")),
            addr: "127.0.0.1:0".parse().unwrap(),
            host: None,
        };
        node.start().await;
        nodes.push(node);
    }
    nodes
}

/// Three nodes with both groups initialised (from node 1) and led.
async fn initialised_cluster(tmp: &tempfile::TempDir) -> Vec<Node> {
    let nodes = cluster(tmp, 3).await;
    let m = members(&nodes);
    for g in GROUPS {
        nodes[0].group(g).await.initialize(m.clone()).await.unwrap();
        nodes[0]
            .group(g)
            .await
            .wait_for_leader(Duration::from_secs(10))
            .await
            .unwrap();
    }
    nodes
}

fn members(nodes: &[Node]) -> BTreeMap<NodeId, String> {
    nodes.iter().map(|n| (n.id, n.addr.to_string())).collect()
}

/// Finds the node leading group `g` among the running nodes, waiting.
async fn leader_of(nodes: &[Node], g: GroupId) -> usize {
    for _ in 0..200 {
        for (i, n) in nodes.iter().enumerate() {
            if n.host.is_some() && n.group(g).await.metrics().is_leader {
                return i;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no leader for group {g:?}");
}

/// Writes `put k<i> v<i>` for `range` with `concurrency` writers, retrying
/// on a leader change; returns when every write was acknowledged.
async fn write_range(nodes: &[Node], g: GroupId, range: std::ops::Range<u64>, concurrency: u64) {
    let next = Arc::new(AtomicU64::new(range.start));
    let mut handles = Vec::new();
    for _ in 0..concurrency {
        let next = next.clone();
        let end = range.end;
        let mut groups = Vec::new();
        for n in nodes.iter().filter(|n| n.host.is_some()) {
            groups.push(n.group(g).await);
        }
        handles.push(raftwatch_raft::rt::spawn(0, async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= end {
                    return;
                }
                let cmd = format!("put k{i} v{i}").into_bytes();
                let mut attempt = 0;
                loop {
                    let target = &groups[attempt % groups.len()];
                    match target.write(cmd.clone()).await {
                        Ok(r) => {
                            assert_eq!(r, b"ok");
                            break;
                        }
                        Err(_) => {
                            attempt += 1;
                            assert!(attempt < 2_000, "write {i} never succeeded");
                            if attempt % groups.len() == 0 {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
}

async fn read(n: &Node, g: GroupId, q: &str, c: ReadConsistency) -> String {
    let r = n.group(g).await.read(q.as_bytes(), c).await.unwrap();
    String::from_utf8(r.response).unwrap()
}

async fn wait_applied(n: &Node, g: GroupId, index: u64) {
    let h = n.group(g).await;
    for _ in 0..600 {
        if h.metrics().applied_index >= Some(index) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "node {:?} group {g:?} never applied {index}: {:?}",
        n.id,
        h.metrics()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_two_groups_survive_leader_loss_and_catch_up_by_log_and_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = initialised_cluster(&tmp).await;

    // 10,000 committed entries in group 1, 1,000 in group 2.
    write_range(&nodes, GROUPS[0], 0..10_000, 64).await;
    write_range(&nodes, GROUPS[1], 0..1_000, 16).await;
    for n in &nodes {
        // Linearizable reads on every replica, followers included.
        assert_eq!(
            read(n, GROUPS[0], "get k9999", ReadConsistency::Linearizable).await,
            "v9999"
        );
        assert_eq!(
            read(n, GROUPS[0], "len", ReadConsistency::Linearizable).await,
            "10000"
        );
        assert_eq!(
            read(n, GROUPS[1], "len", ReadConsistency::Linearizable).await,
            "1000"
        );
    }

    // Stop group 1's leader; a new leader commits more.
    let old = leader_of(&nodes, GROUPS[0]).await;
    nodes[old].stop().await;
    write_range(&nodes, GROUPS[0], 10_000..10_500, 16).await;
    let new = leader_of(&nodes, GROUPS[0]).await;
    assert_ne!(new, old);

    // Restart the old leader from its data dir: it catches up by log.
    nodes[old].start().await;
    let target = nodes[new]
        .group(GROUPS[0])
        .await
        .metrics()
        .applied_index
        .unwrap();
    wait_applied(&nodes[old], GROUPS[0], target).await;
    assert_eq!(
        read(
            &nodes[old],
            GROUPS[0],
            "get k10499",
            ReadConsistency::Linearizable
        )
        .await,
        "v10499"
    );

    // Stop a follower, write past the snapshot threshold so the leader purges
    // what the follower lacks, restart it: it catches up by snapshot.
    let leader = leader_of(&nodes, GROUPS[0]).await;
    let follower = (0..3).find(|&i| i != leader).unwrap();
    let follower_applied = nodes[follower]
        .group(GROUPS[0])
        .await
        .metrics()
        .applied_index
        .unwrap();
    nodes[follower].stop().await;
    write_range(&nodes, GROUPS[0], 10_500..15_000, 32).await;
    let lh = nodes[leader].group(GROUPS[0]).await;
    lh.snapshot_now().await.unwrap();
    let applied = lh.metrics().applied_index.unwrap();
    for _ in 0..200 {
        if lh.metrics().snapshot_index >= Some(follower_applied + 1_000) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    lh.purge_log_up_to(applied).await.unwrap();
    for _ in 0..200 {
        if lh.metrics().purged_index > Some(follower_applied + 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        lh.metrics().purged_index > Some(follower_applied + 1),
        "leader did not purge: {:?}",
        lh.metrics()
    );
    nodes[follower].start().await;
    wait_applied(&nodes[follower], GROUPS[0], applied).await;
    let fm = nodes[follower].group(GROUPS[0]).await.metrics();
    assert!(
        fm.snapshot_index.is_some(),
        "follower should have installed a snapshot: {fm:?}"
    );
    assert_eq!(
        read(&nodes[follower], GROUPS[0], "len", ReadConsistency::Stale).await,
        "15000"
    );
    assert_eq!(
        read(
            &nodes[follower],
            GROUPS[0],
            "get k14999",
            ReadConsistency::Linearizable
        )
        .await,
        "v14999"
    );

    for n in &mut nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_while_writing_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = cluster(&tmp, 4).await;
    let g = GROUPS[0];
    let m: BTreeMap<NodeId, String> = members(&nodes[..3]);
    nodes[0].group(g).await.initialize(m).await.unwrap();
    nodes[0]
        .group(g)
        .await
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let writer = {
        let groups: Vec<GroupHandle> = {
            let mut v = Vec::new();
            for n in &nodes {
                v.push(n.group(g).await);
            }
            v
        };
        let stop = stop.clone();
        let acked = acked.clone();
        raftwatch_raft::rt::spawn(0, async move {
            let mut i = 0u64;
            let mut attempt = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let cmd = format!("put w{i} x").into_bytes();
                match groups[attempt % groups.len()].write(cmd).await {
                    Ok(_) => {
                        acked.lock().unwrap().insert(i);
                        i += 1;
                    }
                    Err(_) => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        })
    };

    // A committed write implies the initial membership is committed too;
    // before that a change is refused as concurrent.
    for _ in 0..400 {
        if !acked.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let leader = leader_of(&nodes, g).await;
    let lh = nodes[leader].group(g).await;
    lh.add_learner(nodes[3].id, nodes[3].addr.to_string())
        .await
        .unwrap();
    lh.promote(BTreeSet::from([nodes[3].id])).await.unwrap();
    let remove = (0..3).find(|&i| i != leader).unwrap();
    lh.remove(BTreeSet::from([nodes[remove].id])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();

    let acked: Vec<u64> = acked.lock().unwrap().iter().copied().collect();
    assert!(
        acked.len() > 10,
        "the writer made progress: {}",
        acked.len()
    );
    let voters = lh.metrics().voters;
    assert!(
        voters.contains(&nodes[3].id) && !voters.contains(&nodes[remove].id),
        "voters {voters:?}"
    );
    for (i, n) in nodes.iter().enumerate() {
        if i == remove {
            continue;
        }
        let keys = read(n, g, "keys", ReadConsistency::Linearizable).await;
        let keys: BTreeSet<&str> = keys.lines().collect();
        for k in &acked {
            assert!(
                keys.contains(format!("w{k}").as_str()),
                "node {i} lost acknowledged write w{k}"
            );
        }
    }
    for n in &mut nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_transfers_on_request_and_the_new_leader_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = cluster(&tmp, 3).await;
    let g = GROUPS[1];
    nodes[0]
        .group(g)
        .await
        .initialize(members(&nodes))
        .await
        .unwrap();
    write_range(&nodes, g, 0..10, 2).await;
    let leader = leader_of(&nodes, g).await;
    let to = (leader + 1) % 3;
    nodes[leader]
        .group(g)
        .await
        .transfer_leader(nodes[to].id)
        .await
        .unwrap();
    for _ in 0..200 {
        if nodes[to].group(g).await.metrics().is_leader {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        nodes[to].group(g).await.metrics().is_leader,
        "leadership did not move to node {to}"
    );
    write_range(&nodes, g, 10..20, 2).await;
    assert_eq!(
        read(&nodes[leader], g, "len", ReadConsistency::Linearizable).await,
        "20"
    );
    for n in &mut nodes {
        n.stop().await;
    }
}

/// A leader may remove itself: the group commits the configuration without
/// it, elects a leader among the rest, and keeps writing. The removed node
/// drops out of the node set in the same change (no second change from a
/// leader outside its configuration, which openraft forbids: it asserted in
/// the simulator, seed 36).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_removes_itself_hands_over_and_the_group_keeps_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = cluster(&tmp, 3).await;
    let g = GROUPS[1];
    nodes[0]
        .group(g)
        .await
        .initialize(members(&nodes))
        .await
        .unwrap();
    write_range(&nodes, g, 0..10, 2).await;
    let leader = leader_of(&nodes, g).await;
    let me = nodes[leader].id;
    nodes[leader]
        .group(g)
        .await
        .remove(BTreeSet::from([me]))
        .await
        .unwrap();
    let mut rest: Vec<Node> = Vec::new();
    let mut removed = None;
    for n in nodes {
        if n.id == me {
            removed = Some(n);
        } else {
            rest.push(n);
        }
    }
    let new_leader = leader_of(&rest, g).await;
    let m = rest[new_leader].group(g).await.metrics();
    assert!(!m.voters.contains(&me), "{m:?}");
    assert!(!m.learners.contains(&me), "{m:?}");
    write_range(&rest, g, 10..20, 2).await;
    assert_eq!(
        read(&rest[new_leader], g, "len", ReadConsistency::Linearizable).await,
        "20"
    );
    for n in rest.iter_mut().chain(removed.as_mut()) {
        n.stop().await;
    }
}

/// A restarted leader must win a new election before it leads again. Had
/// it resumed its old term (openraft's "leader restore"), it could append,
/// at indices a follower already holds from that same term, entries that
/// differ from the follower's: entries it had sent before its own copy was
/// durable and lost in the crash. Same (term, index), different content:
/// the logs diverge silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_leader_never_resumes_its_old_term() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = cluster(&tmp, 3).await;
    let g = GROUPS[1];
    nodes[0]
        .group(g)
        .await
        .initialize(members(&nodes))
        .await
        .unwrap();
    write_range(&nodes, g, 0..10, 2).await;
    let leader = leader_of(&nodes, g).await;
    let term = nodes[leader].group(g).await.metrics().term;
    nodes[leader].stop().await;
    nodes[leader].start().await;
    // Straight after the restart, well inside the election timeout.
    let m = nodes[leader].group(g).await.metrics();
    assert!(
        !(m.is_leader && m.term == term),
        "the restarted node resumed leadership of term {term} without an election: {m:?}"
    );
    let now = leader_of(&nodes, g).await;
    let m = nodes[now].group(g).await.metrics();
    assert!(
        m.term > term,
        "leader of term {} after a restart in term {term}",
        m.term
    );
    write_range(&nodes, g, 10..20, 2).await;
    for n in &nodes {
        assert_eq!(read(n, g, "len", ReadConsistency::Linearizable).await, "20");
    }
    for n in &mut nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_corrupted_log_refuses_to_start_naming_file_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = cluster(&tmp, 3).await;
    let g = GROUPS[0];
    nodes[0]
        .group(g)
        .await
        .initialize(members(&nodes))
        .await
        .unwrap();
    write_range(&nodes, g, 0..200, 8).await;
    nodes[2].stop().await;
    // Flip one byte in the middle of the records of the node's only
    // segment: valid records follow it, so this is corruption, not a torn
    // tail. (The segment's preallocated zeros follow the records; a byte
    // flipped among them would be read as a torn tail.)
    let wal_dir = nodes[2].dir.join("wal");
    let segment = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let records_end = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
    let mid = records_end / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();
    let err = RaftHost::start(config(nodes[2].id, nodes[2].dir.clone(), nodes[2].addr))
        .await
        .expect_err("a corrupted log must stop the node");
    let msg = err.to_string();
    let name = segment.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        msg.contains(&name) && msg.contains("offset"),
        "error must name file and offset: {msg}"
    );
    for n in &mut nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_also_taken_on_a_log_byte_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for id in 1..=3u64 {
        let dir = tmp.path().join(format!("node-{id}"));
        let mut c = config(NodeId(id), dir.clone(), "127.0.0.1:0".parse().unwrap());
        // Entry count alone would never trigger a snapshot here.
        c.snapshot_after_entries = 1_000_000;
        c.snapshot_after_bytes = 100_000;
        c.snapshot_check_interval = Duration::from_millis(100);
        let host = RaftHost::start(c).await.unwrap();
        host.create_group(GROUPS[0], Box::new(Kv::default()))
            .await
            .unwrap();
        nodes.push(Node {
            id: NodeId(id),
            dir,
            addr: host.addr(),
            host: Some(host),
        });
    }
    let g = GROUPS[0];
    nodes[0]
        .group(g)
        .await
        .initialize(members(&nodes))
        .await
        .unwrap();
    let big = "x".repeat(2_000);
    let h = nodes[leader_of(&nodes, g).await].group(g).await;
    for i in 0..100 {
        loop {
            if h.write(format!("put b{i} {big}").into_bytes())
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for n in &nodes {
        let gh = n.group(g).await;
        for _ in 0..100 {
            if gh.metrics().snapshot_index.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            gh.metrics().snapshot_index.is_some(),
            "node {:?}: no snapshot after ~200 KB of entries",
            n.id
        );
    }
    for n in &mut nodes {
        n.stop().await;
    }
}

/// Sends `to` a pre-vote request over gRPC for `g` from candidate
/// `(term, node)` whose last log id is `(term, leader, index)`.
async fn ask_pre_vote(
    to: &Node,
    g: GroupId,
    (term, candidate): (u64, NodeId),
    (last_term, last_leader, last_index): (u64, NodeId, u64),
) -> raftwatch_proto::v1::VoteResponse {
    use raftwatch_proto::v1 as pb;
    let request = pb::VoteRequest {
        group_id: g.0,
        vote: Some(pb::Vote {
            leader_id: Some(pb::LeaderId {
                term,
                node_id: candidate.0,
            }),
            committed: false,
        }),
        last_log_id: Some(pb::LogId {
            leader_id: Some(pb::LeaderId {
                term: last_term,
                node_id: last_leader.0,
            }),
            index: last_index,
        }),
        leadership_transfer: false,
    };
    let mut client = pb::raft_client::RaftClient::connect(format!("http://{}", to.addr))
        .await
        .unwrap();
    client.pre_vote(request).await.unwrap().into_inner()
}

/// Pre-vote is answered for real (openraft's default grants it): a voter
/// that hears from a live leader refuses a pre-vote even for a higher term
/// and an up-to-date log, and its term does not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_vote_is_refused_while_the_leader_is_alive() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = cluster(&tmp, 3).await;
    let g = GROUPS[0];
    nodes[0]
        .group(g)
        .await
        .initialize(members(&nodes))
        .await
        .unwrap();
    write_range(&nodes, g, 0..20, 4).await;
    let leader = leader_of(&nodes, g).await;
    let follower = (leader + 1) % 3;
    let candidate = (leader + 2) % 3;
    let lm = nodes[leader].group(g).await.metrics();
    wait_applied(&nodes[follower], g, lm.last_log_index.unwrap()).await;
    let term_before = nodes[follower].group(g).await.metrics().term;
    let resp = ask_pre_vote(
        &nodes[follower],
        g,
        (term_before + 5, nodes[candidate].id),
        (lm.term, nodes[leader].id, lm.last_log_index.unwrap()),
    )
    .await;
    assert!(
        !resp.vote_granted,
        "a follower with a live leader granted a pre-vote: {resp:?}"
    );
    assert_eq!(nodes[follower].group(g).await.metrics().term, term_before);

    // The same through our client side, which openraft would otherwise
    // answer locally with "granted" without sending anything.
    use openraft::network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2};
    let peers = std::sync::Arc::new(raftwatch_raft::network::Peers::new(
        nodes[candidate].id,
        raftwatch_raft::network::NetConfig::default(),
    ));
    let mut factory = raftwatch_raft::network::GroupNetworkFactory::new(peers, g);
    let target = raftwatch_raft::NodeAddr {
        grpc_addr: nodes[follower].addr.to_string(),
    };
    let mut net = factory.new_client(nodes[follower].id.0, &target).await;
    let lid = |term, node| openraft::impls::leader_id_adv::LeaderId {
        term,
        node_id: node,
    };
    let rpc = openraft::raft::VoteRequest::new(
        openraft::impls::Vote {
            leader_id: lid(term_before + 5, nodes[candidate].id.0),
            committed: false,
        },
        Some(openraft::LogId::new(
            lid(lm.term, nodes[leader].id.0),
            lm.last_log_index.unwrap(),
        )),
    );
    let resp = net
        .pre_vote(rpc, RPCOption::new(Duration::from_secs(2)))
        .await
        .unwrap();
    assert!(
        !resp.vote_granted,
        "pre-vote through GroupNetwork was granted: {resp:?}"
    );
    assert_eq!(nodes[follower].group(g).await.metrics().term, term_before);
    assert!(nodes[leader].group(g).await.metrics().is_leader);
    for n in &mut nodes {
        n.stop().await;
    }
}

/// Waits until `check` holds for every running node, or panics with `what`.
async fn wait_all(nodes: &[Node], what: &str, check: impl Fn(&RaftHost) -> bool) {
    for _ in 0..400 {
        if nodes.iter().filter_map(|n| n.host.as_ref()).all(&check) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats: Vec<_> = nodes
        .iter()
        .filter_map(|n| n.host.as_ref().map(|h| (n.id, h.quiesce_stats())))
        .collect();
    panic!("never: {what}; quiesced per node: {stats:?}");
}

/// Idle groups quiesce on every replica and stop heartbeating; a write
/// wakes its group and commits; a follower's linearizable read works on a
/// quiesced group; when the node leading every quiesced group stops, the
/// others notice through node-level liveness and elect new leaders; after
/// it comes back, everything quiesces again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_groups_quiesce_wake_on_writes_and_fail_over_when_their_leader_dies() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = initialised_cluster(&tmp).await;
    for g in GROUPS {
        write_range(&nodes, g, 0..50, 4).await;
    }
    let all_quiesced = |h: &RaftHost| {
        let s = h.quiesce_stats();
        s.leading + s.following == GROUPS.len()
    };
    wait_all(
        &nodes,
        "every replica of both groups quiesced",
        all_quiesced,
    )
    .await;
    let leader = leader_of(&nodes, GROUPS[0]).await;

    // No heartbeat round is acknowledged while quiesced (at 100 ms
    // heartbeats there would be ~15 in this window).
    let acked = |h: &GroupHandle| {
        use openraft::async_runtime::WatchReceiver;
        let m = h.raft().metrics().borrow_watched().clone();
        (m.last_quorum_acked, m.current_term)
    };
    let h = nodes[leader].group(GROUPS[0]).await;
    let before = acked(&h);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(before, acked(&h), "a quiesced leader heartbeated");

    // Nothing renews openraft's leader lease while quiesced, so openraft
    // alone would grant a pre-vote now; the quiesced leader and its
    // followers refuse it while the leader's node answers.
    let g = GROUPS[0];
    let lm = nodes[leader].group(g).await.metrics();
    for (voter, candidate) in [
        (leader, (leader + 1) % 3),
        ((leader + 1) % 3, (leader + 2) % 3),
    ] {
        let resp = ask_pre_vote(
            &nodes[voter],
            g,
            (lm.term + 1, nodes[candidate].id),
            (lm.term, nodes[leader].id, lm.last_log_index.unwrap()),
        )
        .await;
        assert!(
            !resp.vote_granted,
            "node {voter} granted a pre-vote in a quiesced group: {resp:?}"
        );
    }
    assert!(nodes[leader].group(g).await.metrics().is_leader);
    assert_eq!(nodes[leader].group(g).await.metrics().term, lm.term);

    // The first write to the quiesced leader succeeds at once. Its lease
    // lapsed while quiesced (no heartbeat was acknowledged above), and
    // openraft refuses writes from a leader with a lapsed lease, naming no
    // leader; the write renews the lease first.
    let first = nodes[leader]
        .group(g)
        .await
        .write(b"put first v".to_vec())
        .await;
    assert_eq!(
        first.as_deref(),
        Ok(&b"ok"[..]),
        "first write to a quiesced leader"
    );
    // A write wakes its group; the other group stays quiesced.
    write_range(&nodes, GROUPS[0], 50..60, 2).await;
    assert!(nodes[leader].group(GROUPS[1]).await.is_quiesced());
    // A linearizable read on a quiesced follower.
    let follower = (leader_of(&nodes, GROUPS[1]).await + 1) % 3;
    assert!(nodes[follower].group(GROUPS[1]).await.is_quiesced());
    assert_eq!(
        read(
            &nodes[follower],
            GROUPS[1],
            "len",
            ReadConsistency::Linearizable
        )
        .await,
        "50"
    );
    wait_all(
        &nodes,
        "group 1 quiesced again after the write",
        all_quiesced,
    )
    .await;

    // The node leading group 1 (and usually group 2) stops: the groups it
    // led fail over to a newer term. (Leadership is read again here: on a
    // loaded machine an election may have moved it since.)
    let leader = leader_of(&nodes, GROUPS[0]).await;
    let mut led = Vec::new();
    for g in GROUPS {
        if leader_of(&nodes, g).await == leader {
            led.push((g, nodes[leader].group(g).await.metrics().term));
        }
    }
    nodes[leader].stop().await;
    for (g, term) in led {
        let new = leader_of(&nodes, g).await;
        assert_ne!(new, leader);
        assert!(nodes[new].group(g).await.metrics().term > term);
    }
    for g in GROUPS {
        write_range(&nodes, g, 100..110, 2).await;
    }
    nodes[leader].start().await;
    for g in GROUPS {
        wait_applied(
            &nodes[leader],
            g,
            nodes[leader_of(&nodes, g).await]
                .group(g)
                .await
                .metrics()
                .last_log_index
                .unwrap(),
        )
        .await;
    }
    wait_all(
        &nodes,
        "everything quiesced after the restart",
        all_quiesced,
    )
    .await;
    for n in &nodes {
        // 50 + 10 + 10 keys each, and group 1's "first".
        for (g, len) in [(GROUPS[0], "71"), (GROUPS[1], "60")] {
            assert_eq!(read(n, g, "len", ReadConsistency::Linearizable).await, len);
        }
    }
    for n in &mut nodes {
        n.stop().await;
    }
}
