//! Routing a write straight to shard leaders: the cached shard map, the
//! split of a write into one request per shard, and the merge of their
//! answers. Pure functions of their inputs (no I/O), so they are tested
//! without a cluster.
//!
//! A series goes to the shard whose hash range holds
//! [`Labels::hash`] of its canonical labels, validated with
//! [`LabelLimits::default`]: the same crate, function and limits the node
//! uses (`raftwatch::node::ingest`), and the same range rule
//! ([`HashRange::contains`]) as `raftwatch-control`'s `shard_for_hash`, so
//! client and node cannot disagree. A node that receives a series of
//! another shard refuses the request (`FAILED_PRECONDITION`) rather than
//! guess, and the client refreshes its map.

use std::collections::BTreeMap;

use raftwatch_model::labels::hash_pairs;
use raftwatch_model::{HashRange, Label, LabelLimits, Labels, SeriesHash};
use raftwatch_proto::v1 as pb;
use thiserror::Error;

/// `ShardRoute` is one shard of the cached map: its range, where its
/// replicas listen and which of them leads (as last reported).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardRoute {
    /// The shard id (never 0).
    pub id: u64,
    /// The series hashes it owns, both ends inclusive.
    pub range: HashRange,
    /// gRPC addresses (`host:port`) of its replicas, in the map's order.
    pub replicas: Vec<String>,
    /// gRPC address of its leader: the one the replicas reported when the
    /// map was read, else the map's advisory hint; `None` when neither.
    pub leader: Option<String>,
}

/// `MapError` is a shard map the client refuses to route by.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MapError {
    /// Shard 0 or the same shard twice.
    #[error("shard id {0} is invalid or repeated")]
    BadShardId(u64),
    /// A range with `start > end`.
    #[error("shard {0} has an empty range")]
    EmptyRange(u64),
    /// Two shards claim the same hash.
    #[error("shards {0} and {1} have overlapping ranges")]
    Overlap(u64, u64),
}

/// `ShardMap` is the client's copy of the cluster's shard map: shards
/// sorted by range, disjoint (checked when built), and the epoch the
/// cluster gave it, sent with every write routed by it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardMap {
    epoch: u64,
    routes: Vec<ShardRoute>,
    members: Vec<String>,
}

impl ShardMap {
    /// `new` checks `routes` (ids non-zero and unique, ranges non-empty and
    /// disjoint) and sorts them by range. `members` are the gRPC addresses
    /// of the cluster's members (used to find a node when the configured
    /// endpoints are gone).
    pub fn new(
        epoch: u64,
        mut routes: Vec<ShardRoute>,
        members: Vec<String>,
    ) -> Result<ShardMap, MapError> {
        let mut ids = std::collections::BTreeSet::new();
        for r in &routes {
            if r.id == 0 || !ids.insert(r.id) {
                return Err(MapError::BadShardId(r.id));
            }
            if r.range.is_empty() {
                return Err(MapError::EmptyRange(r.id));
            }
        }
        routes.sort_by_key(|r| r.range.start);
        for pair in routes.windows(2) {
            if pair[0].range.end >= pair[1].range.start {
                return Err(MapError::Overlap(pair[0].id, pair[1].id));
            }
        }
        Ok(ShardMap {
            epoch,
            routes,
            members,
        })
    }

    /// `from_status` builds the map from a `ClusterStatus` answer: ranges,
    /// replica sets and epoch from the control state, replica addresses from
    /// the member list, the leader each shard's replicas reported (else the
    /// map's hint). `Ok(None)` when the cluster has no shards yet (not
    /// bootstrapped): the client then sends whole requests to any node.
    pub fn from_status(status: &pb::ClusterStatusResponse) -> Result<Option<ShardMap>, MapError> {
        if status.shards.is_empty() {
            return Ok(None);
        }
        let addr: BTreeMap<u64, &str> = status
            .members
            .iter()
            .filter(|m| m.state != "removed" && !m.grpc_addr.is_empty())
            .map(|m| (m.id, m.grpc_addr.as_str()))
            .collect();
        let lookup = |id: u64| addr.get(&id).map(|a| (*a).to_owned());
        let routes = status
            .shards
            .iter()
            .map(|s| ShardRoute {
                id: s.id,
                range: HashRange::new(s.range_start, s.range_end),
                replicas: s.replicas.iter().filter_map(|r| lookup(*r)).collect(),
                leader: [s.leader, s.leader_hint]
                    .into_iter()
                    .filter(|l| *l != 0)
                    .find_map(lookup),
            })
            .collect();
        let members = addr.values().map(|a| (*a).to_owned()).collect();
        ShardMap::new(status.map_epoch, routes, members).map(Some)
    }

    /// `epoch` is the cluster's map epoch this map was read at.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// `routes` are the shards, sorted by range.
    pub fn routes(&self) -> &[ShardRoute] {
        &self.routes
    }

    /// `members` are the members' gRPC addresses (`host:port`).
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// `route` is shard `id`'s entry.
    pub fn route(&self, id: u64) -> Option<&ShardRoute> {
        self.routes.iter().find(|r| r.id == id)
    }

    /// `shard_for` is the shard whose range holds `hash` (binary search;
    /// `None` if the map leaves it uncovered).
    pub fn shard_for(&self, hash: SeriesHash) -> Option<&ShardRoute> {
        let after = self.routes.partition_point(|r| r.range.start <= hash.0);
        let candidate = self.routes.get(after.checked_sub(1)?)?;
        candidate.range.contains(hash).then_some(candidate)
    }
}

/// `series_hash` is the hash the node shards `series` by, or `None` when
/// its labels are invalid (the node rejects its samples one by one).
///
/// Labels already in canonical order (what Prometheus and our own client
/// send) are hashed where they lie; only other spellings are copied into
/// a [`Labels`] to be sorted and checked. Both give the node's hash.
pub fn series_hash(series: &pb::Series) -> Option<SeriesHash> {
    let limits = LabelLimits::default();
    let pairs: Vec<(&str, &str)> = series
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    if Labels::is_canonical(&pairs, &limits) {
        return Some(hash_pairs(&mut pairs.into_iter()));
    }
    let labels = series
        .labels
        .iter()
        .map(|l| Label::new(l.name.clone(), l.value.clone()))
        .collect();
    Labels::new(labels, &limits).ok().map(|l| l.hash())
}

/// `Part` is the request for one shard: the caller's indices of its
/// series, in the caller's order, which also number its rejections as the
/// caller did. The series stay in the caller's batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Part {
    /// The shard the part is routed to; `None` for a request any node may
    /// route (when there is no usable map).
    pub shard: Option<u64>,
    /// The caller's indices of the part's series, ascending.
    pub caller_index: Vec<u32>,
}

impl Part {
    /// `unrouted` is one part holding the series at `caller_index`, for
    /// any node.
    pub fn unrouted(caller_index: Vec<u32>) -> Part {
        Part {
            shard: None,
            caller_index,
        }
    }

    /// `series` yields the part's series out of the caller's `batch` (an
    /// index outside it is skipped, never a panic).
    pub fn series<'a>(
        &'a self,
        batch: &'a [pb::Series],
    ) -> impl Iterator<Item = &'a pb::Series> + Clone + 'a {
        self.caller_index
            .iter()
            .filter_map(move |&i| batch.get(i as usize))
    }
}

/// `split` divides the series of `batch` at `indices` (ascending) into one
/// part per shard, by the map, in shard-id order. Series with invalid
/// labels ride along in the first part (the node rejects their samples one
/// by one, with the node's own reason); if every series is invalid they
/// form one unrouted part. Gives the indices back (`Err`) when a valid
/// series falls in no shard's range: the map is unusable and a node must
/// route.
pub fn split(
    map: &ShardMap,
    batch: &[pb::Series],
    indices: Vec<u32>,
) -> Result<Vec<Part>, Vec<u32>> {
    let mut invalid: Vec<u32> = Vec::new();
    let mut parts: BTreeMap<u64, Part> = BTreeMap::new();
    for &i in &indices {
        let hash = batch.get(i as usize).and_then(series_hash);
        match hash.map(|h| map.shard_for(h)) {
            None => invalid.push(i),
            Some(Some(r)) => parts
                .entry(r.id)
                .or_insert_with(|| Part {
                    shard: Some(r.id),
                    caller_index: Vec::new(),
                })
                .caller_index
                .push(i),
            Some(None) => return Err(indices),
        }
    }
    let mut parts: Vec<Part> = parts.into_values().collect();
    if !invalid.is_empty() {
        match parts.first_mut() {
            Some(first) => {
                // Keep the caller's order inside the part.
                first.caller_index.extend(invalid);
                first.caller_index.sort_unstable();
            }
            None => parts.push(Part::unrouted(invalid)),
        }
    }
    Ok(parts)
}

/// `merge` is the caller's answer from its parts' answers: samples
/// accepted summed; rejections renumbered to the caller's series indices
/// (an index a node sent outside its part becomes `u32::MAX`, never a
/// panic) and sorted by (series, sample).
pub fn merge(answers: Vec<(Vec<u32>, pb::WriteResponse)>) -> pb::WriteResponse {
    let mut out = pb::WriteResponse::default();
    for (caller_index, answer) in answers {
        out.samples_accepted = out.samples_accepted.saturating_add(answer.samples_accepted);
        out.rejections
            .extend(answer.rejections.into_iter().map(|mut r| {
                r.series_index = caller_index
                    .get(r.series_index as usize)
                    .copied()
                    .unwrap_or(u32::MAX);
                r
            }));
    }
    out.rejections
        .sort_by_key(|r| (r.series_index, r.sample_index));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftwatch_seams::DetRng;

    fn label(name: &str, value: &str) -> pb::Label {
        pb::Label {
            name: name.into(),
            value: value.into(),
        }
    }

    fn series(labels: Vec<pb::Label>, values: &[f64]) -> pb::Series {
        pb::Series {
            labels,
            samples: values
                .iter()
                .enumerate()
                .map(|(t, v)| pb::Sample {
                    timestamp_ms: t as i64,
                    value: *v,
                })
                .collect(),
        }
    }

    fn route(id: u64, start: u64, end: u64) -> ShardRoute {
        ShardRoute {
            id,
            range: HashRange::new(start, end),
            replicas: vec![format!("n{id}:1")],
            leader: Some(format!("n{id}:1")),
        }
    }

    /// `n` shards over the whole hash space with boundaries drawn from
    /// `rng` (ids shuffled against range order), or equal ranges as the
    /// cluster's initial map has them.
    fn random_map(rng: &mut DetRng, n: usize, equal: bool) -> ShardMap {
        let mut cuts: Vec<u64> = if equal {
            let width = u64::MAX / n as u64;
            (1..n as u64).map(|i| width * i).collect()
        } else {
            (1..n).map(|_| rng.next_u64().max(1)).collect()
        };
        cuts.sort_unstable();
        cuts.dedup();
        let mut starts = vec![0];
        starts.extend(cuts);
        let mut ids: Vec<u64> = (1..=starts.len() as u64).collect();
        for i in (1..ids.len()).rev() {
            ids.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let routes = starts
            .iter()
            .enumerate()
            .map(|(k, start)| {
                let end = starts.get(k + 1).map_or(u64::MAX, |next| next - 1);
                route(ids[k], *start, end)
            })
            .collect();
        ShardMap::new(7, routes, vec![]).unwrap()
    }

    fn random_series(rng: &mut DetRng, i: usize) -> pb::Series {
        // Labels in random order: the client must canonicalise as the node does.
        let mut labels = vec![
            label("__name__", &format!("m{}", rng.below(5))),
            label("instance", &format!("host-{i}")),
            label("job", "node"),
        ];
        if rng.chance(0.3) {
            labels.push(label("empty", ""));
        }
        let turn = rng.below(labels.len() as u64) as usize;
        labels.rotate_left(turn);
        series(labels, &[1.0, 2.0])
    }

    fn seed() -> u64 {
        let seed = std::env::var("RAFTWATCH_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed);
        eprintln!("RAFTWATCH_TEST_SEED={seed}");
        seed
    }

    #[test]
    fn the_client_hashes_as_the_node_does() {
        // docs/format/series-hash.md pins this value; the node shards by it.
        let s = series(vec![label("job", "node"), label("__name__", "up")], &[]);
        assert_eq!(series_hash(&s), Some(SeriesHash(0x85d6_66c2_8b44_5bb9)));
        // The canonical spelling takes the borrowed path, and must agree.
        let canonical = series(vec![label("__name__", "up"), label("job", "node")], &[]);
        assert_eq!(
            series_hash(&canonical),
            Some(SeriesHash(0x85d6_66c2_8b44_5bb9))
        );
        // Empty values are dropped before hashing, as the node does.
        let with_empty = series(
            vec![
                label("__name__", "up"),
                label("x", ""),
                label("job", "node"),
            ],
            &[],
        );
        assert_eq!(series_hash(&with_empty), series_hash(&s));
        for bad in [
            vec![label("__name__", "up"), label("__name__", "down")],
            vec![label("", "v")],
            vec![],
            vec![label("a", &"x".repeat(100_000))],
        ] {
            assert_eq!(series_hash(&series(bad.clone(), &[])), None, "{bad:?}");
        }
    }

    #[test]
    fn the_borrowed_path_hashes_as_labels_does_for_any_spelling() {
        // Sorted or not, with empty values, duplicate or empty names: the
        // hash is Labels' hash, and None exactly when Labels refuses.
        let mut rng = DetRng::new(seed());
        let names = ["", "__name__", "a", "b", "job", "zz"];
        let values = ["", "x", "up", "node"];
        let mut canonical = 0;
        for _ in 0..5_000 {
            let n = rng.below(5) as usize;
            let mut labels: Vec<pb::Label> = (0..n)
                .map(|_| {
                    let name = names[rng.below(names.len() as u64) as usize];
                    let value = values[rng.below(values.len() as u64) as usize];
                    label(name, value)
                })
                .collect();
            if rng.chance(0.5) {
                labels.sort_by(|a, b| a.name.cmp(&b.name));
            }
            let pairs: Vec<(&str, &str)> = labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str()))
                .collect();
            canonical += usize::from(Labels::is_canonical(&pairs, &LabelLimits::default()));
            let reference = Labels::new(
                labels
                    .iter()
                    .map(|l| Label::new(l.name.clone(), l.value.clone()))
                    .collect(),
                &LabelLimits::default(),
            )
            .ok()
            .map(|l| l.hash());
            assert_eq!(
                series_hash(&series(labels.clone(), &[])),
                reference,
                "{labels:?}"
            );
        }
        assert!(canonical > 500, "too few canonical cases: {canonical}");
    }

    #[test]
    fn every_series_lands_in_the_shard_whose_range_holds_its_hash() {
        let mut rng = DetRng::new(seed());
        for case in 0..40 {
            let shards = 1 + rng.below(16) as usize;
            let map = random_map(&mut rng, shards, case % 2 == 0);
            let n = rng.below(600) as usize;
            let input: Vec<pb::Series> = (0..n).map(|i| random_series(&mut rng, i)).collect();
            let parts = split(&map, &input, (0..n as u32).collect()).expect("covers every hash");
            let mut seen = vec![false; n];
            let mut shard_ids = Vec::new();
            for part in &parts {
                let id = part.shard.expect("every part is routed");
                shard_ids.push(id);
                let r = map.route(id).unwrap();
                assert!(
                    part.caller_index.windows(2).all(|w| w[0] < w[1]),
                    "the caller's order is kept inside a part"
                );
                for (s, i) in part.series(&input).zip(&part.caller_index) {
                    let h = series_hash(s).unwrap();
                    assert!(r.range.contains(h), "case {case}: {h} not in shard {id}");
                    // Exactly one shard holds it (the ranges partition the space).
                    let holders = map.routes().iter().filter(|r| r.range.contains(h)).count();
                    assert_eq!(holders, 1);
                    assert_eq!(s, &input[*i as usize], "series moved with its index");
                    assert!(!std::mem::replace(&mut seen[*i as usize], true), "twice");
                }
            }
            assert!(seen.iter().all(|s| *s), "case {case}: a series was dropped");
            assert!(
                shard_ids.windows(2).all(|w| w[0] < w[1]),
                "one part per shard"
            );
        }
    }

    #[test]
    fn lookup_agrees_with_a_linear_scan_at_the_edges() {
        let mut rng = DetRng::new(seed());
        let map = random_map(&mut rng, 9, false);
        for r in map.routes() {
            for h in [r.range.start, r.range.end, r.range.start.saturating_add(1)] {
                let by_scan = map
                    .routes()
                    .iter()
                    .find(|x| x.range.contains(SeriesHash(h)));
                assert_eq!(map.shard_for(SeriesHash(h)), by_scan, "{h}");
            }
        }
        let gappy = ShardMap::new(1, vec![route(1, 10, 20), route(2, 30, 40)], vec![]).unwrap();
        for (h, want) in [
            (9, None),
            (10, Some(1)),
            (20, Some(1)),
            (25, None),
            (41, None),
        ] {
            assert_eq!(gappy.shard_for(SeriesHash(h)).map(|r| r.id), want, "{h}");
        }
    }

    #[test]
    fn invalid_series_ride_in_the_first_part_for_the_node_to_reject() {
        let map = ShardMap::new(
            1,
            vec![
                route(2, 0, u64::MAX / 2),
                route(1, u64::MAX / 2 + 1, u64::MAX),
            ],
            vec![],
        )
        .unwrap();
        let bad = series(vec![label("a", "1"), label("a", "2")], &[1.0]);
        let input: Vec<pb::Series> = (0..50)
            .map(|i| random_series(&mut DetRng::new(i), i as usize))
            .chain([bad.clone()])
            .collect();
        let parts = split(&map, &input, (0..51).collect()).unwrap();
        assert_eq!(parts.len(), 2);
        // Shard-id order: shard 1 (the upper range) first.
        assert_eq!(parts[0].shard, Some(1));
        assert_eq!(parts[0].caller_index.last(), Some(&50));
        assert_eq!(parts[0].series(&input).last(), Some(&bad));
        assert!(!parts[1].caller_index.contains(&50));

        // Nothing valid: one request any node may route.
        let parts = split(&map, &[bad.clone(), bad], vec![0, 1]).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].shard, None);
        assert_eq!(parts[0].caller_index, vec![0, 1]);
    }

    #[test]
    fn a_map_with_a_hole_gives_the_input_back() {
        let map = ShardMap::new(1, vec![route(1, 0, 10)], vec![]).unwrap();
        let input: Vec<pb::Series> = (0..20)
            .map(|i| random_series(&mut DetRng::new(9), i))
            .collect();
        let indices: Vec<u32> = (0..20).collect();
        assert_eq!(split(&map, &input, indices.clone()), Err(indices));
    }

    /// What a node answers for `series` (numbered from 0): NaN samples
    /// and every sample of a series with invalid labels are rejected.
    fn node_answer(series: &[pb::Series]) -> pb::WriteResponse {
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
                        reason: format!("r{si}.{k}"),
                    });
                }
            }
        }
        out
    }

    #[test]
    fn split_then_merge_answers_as_one_whole_request() {
        let mut rng = DetRng::new(seed());
        for _ in 0..30 {
            let shards = 1 + rng.below(8) as usize;
            let map = random_map(&mut rng, shards, false);
            let n = 1 + rng.below(300) as usize;
            let input: Vec<pb::Series> = (0..n)
                .map(|i| {
                    let mut s = random_series(&mut rng, i);
                    for x in &mut s.samples {
                        if rng.chance(0.1) {
                            x.value = f64::NAN;
                        }
                    }
                    if rng.chance(0.05) {
                        s.labels.push(s.labels[0].clone()); // duplicate name
                    }
                    s
                })
                .collect();
            let whole = node_answer(&input);
            let parts = split(&map, &input, (0..n as u32).collect()).unwrap();
            let answers = parts
                .into_iter()
                .map(|p| {
                    let a = node_answer(&p.series(&input).cloned().collect::<Vec<_>>());
                    (p.caller_index, a)
                })
                .collect();
            let mut merged = merge(answers);
            // Reasons name the part's numbering; compare positions only.
            for r in &mut merged.rejections {
                r.reason.clear();
            }
            let mut want = whole;
            for r in &mut want.rejections {
                r.reason.clear();
            }
            assert_eq!(merged, want);
        }
    }

    #[test]
    fn merge_renumbers_sums_and_never_panics_on_a_bad_index() {
        let rej = |series_index, sample_index| pb::Rejection {
            series_index,
            sample_index,
            reason: String::new(),
        };
        let merged = merge(vec![
            (
                vec![4, 7],
                pb::WriteResponse {
                    samples_accepted: 3,
                    rejections: vec![rej(1, 0), rej(0, 2)],
                },
            ),
            (
                vec![0],
                pb::WriteResponse {
                    samples_accepted: u64::MAX,
                    rejections: vec![rej(0, 1), rej(5, 0)],
                },
            ),
        ]);
        assert_eq!(merged.samples_accepted, u64::MAX);
        assert_eq!(
            merged.rejections,
            vec![rej(0, 1), rej(4, 2), rej(7, 0), rej(u32::MAX, 0)]
        );
    }

    #[test]
    fn maps_are_checked_and_built_from_cluster_status() {
        assert_eq!(
            ShardMap::new(1, vec![route(1, 0, 10), route(2, 10, 20)], vec![]),
            Err(MapError::Overlap(1, 2))
        );
        assert_eq!(
            ShardMap::new(1, vec![route(0, 0, 10)], vec![]),
            Err(MapError::BadShardId(0))
        );
        assert_eq!(
            ShardMap::new(1, vec![route(1, 0, 10), route(1, 11, 20)], vec![]),
            Err(MapError::BadShardId(1))
        );
        assert_eq!(
            ShardMap::new(1, vec![route(3, 5, 4)], vec![]),
            Err(MapError::EmptyRange(3))
        );

        let member = |id: u64, state: &str| pb::MemberInfo {
            id,
            grpc_addr: format!("10.0.0.{id}:7600"),
            state: state.into(),
            ..Default::default()
        };
        let shard = |id, start, end, leader, leader_hint| pb::ShardInfo {
            id,
            range_start: start,
            range_end: end,
            replicas: vec![1, 2, 3],
            epoch: 1,
            leader,
            leader_hint,
            ..Default::default()
        };
        let status = pb::ClusterStatusResponse {
            members: vec![
                member(1, "active"),
                member(2, "active"),
                member(3, "removed"),
            ],
            shards: vec![
                shard(2, 1 << 63, u64::MAX, 0, 2),
                shard(1, 0, (1 << 63) - 1, 1, 2),
            ],
            map_epoch: 9,
            ..Default::default()
        };
        let map = ShardMap::from_status(&status).unwrap().unwrap();
        assert_eq!(map.epoch(), 9);
        assert_eq!(map.routes()[0].id, 1, "sorted by range");
        // The reported leader wins over the hint; the hint stands in.
        assert_eq!(map.routes()[0].leader.as_deref(), Some("10.0.0.1:7600"));
        assert_eq!(map.routes()[1].leader.as_deref(), Some("10.0.0.2:7600"));
        // A removed member's address is not a place to send writes.
        assert_eq!(map.routes()[0].replicas.len(), 2);
        assert_eq!(map.members().len(), 2);

        let empty = pb::ClusterStatusResponse::default();
        assert_eq!(ShardMap::from_status(&empty), Ok(None));
    }
}
