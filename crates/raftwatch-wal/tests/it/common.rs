//! Shared helpers: record builders and the reference model the log is
//! compared against (a `BTreeMap` per group, strict Raft-log semantics).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use raftwatch_wal::{
    Disk, Entry, GroupId, LogId, LogIndex, NodeId, OnDurable, Record, Term, Vote, Wal, WalError,
};

/// `ents` builds `n` entries of `group` from index `first`, with payloads
/// of `size` bytes derived from (group, index, term).
pub fn ents(group: u64, first: u64, n: u64, term: u64, size: usize) -> Record {
    Record::Entries {
        group: GroupId(group),
        entries: (first..first + n)
            .map(|i| Entry {
                index: LogIndex(i),
                term: Term(term),
                payload: payload(group, i, term, size),
            })
            .collect(),
    }
}

pub fn payload(group: u64, index: u64, term: u64, size: usize) -> Vec<u8> {
    let seed = group
        .wrapping_mul(1_000_003)
        .wrapping_add(index.wrapping_mul(7919))
        .wrapping_add(term);
    (0..size)
        .map(|k| (seed.wrapping_add(k as u64 * 31) % 251) as u8)
        .collect()
}

pub fn vote(group: u64, term: u64, node: u64, committed: bool) -> Record {
    Record::Vote {
        group: GroupId(group),
        vote: Vote {
            term: Term(term),
            node_id: NodeId(node),
            committed,
        },
    }
}

pub fn truncate(group: u64, from: u64) -> Record {
    Record::Truncate {
        group: GroupId(group),
        from_index: LogIndex(from),
    }
}

/// `leader_of` is the leader node the helpers record for a term, so that
/// round trips check the leader field too.
pub fn leader_of(term: u64) -> NodeId {
    NodeId(term % 5 + 1)
}

pub fn purge(group: u64, index: u64, term: u64) -> Record {
    Record::Purge {
        group: GroupId(group),
        up_to: LogId {
            term: Term(term),
            leader: leader_of(term),
            index: LogIndex(index),
        },
    }
}

pub fn commit(group: u64, index: u64, term: u64) -> Record {
    Record::Commit {
        group: GroupId(group),
        committed: LogId {
            term: Term(term),
            leader: leader_of(term),
            index: LogIndex(index),
        },
    }
}

/// `ModelGroup` is the reference state of one group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelGroup {
    pub entries: BTreeMap<u64, (u64, Vec<u8>)>,
    pub vote: Option<Vote>,
    pub purged: Option<LogId>,
    pub committed: Option<LogId>,
}

impl ModelGroup {
    pub fn last(&self) -> Option<u64> {
        self.entries.keys().next_back().copied()
    }

    pub fn first(&self) -> Option<u64> {
        self.entries.keys().next().copied()
    }

    /// The index the next append must start at (1 for a fresh group).
    pub fn next_index(&self) -> u64 {
        match (self.last(), self.purged) {
            (Some(l), _) => l + 1,
            (None, Some(p)) => p.index.0 + 1,
            (None, None) => 1,
        }
    }
}

/// `Model` is the reference state of the whole log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub groups: BTreeMap<u64, ModelGroup>,
}

impl Model {
    pub fn group(&self, g: u64) -> ModelGroup {
        self.groups.get(&g).cloned().unwrap_or_default()
    }

    pub fn apply(&mut self, rec: &Record) {
        let g = self.groups.entry(rec.group().0).or_default();
        match rec {
            Record::Entries { entries, .. } => {
                for e in entries {
                    g.entries.insert(e.index.0, (e.term.0, e.payload.clone()));
                }
            }
            Record::Vote { vote, .. } => g.vote = Some(*vote),
            Record::Truncate { from_index, .. } => {
                g.entries.retain(|i, _| *i < from_index.0);
            }
            Record::Purge { up_to, .. } => {
                g.entries.retain(|i, _| *i > up_to.index.0);
                g.purged = Some(*up_to);
            }
            Record::Commit { committed, .. } => g.committed = Some(*committed),
        }
    }

    pub fn replay<'a>(records: impl IntoIterator<Item = &'a Record>) -> Model {
        let mut m = Model::default();
        for r in records {
            m.apply(r);
        }
        m
    }
}

/// `observe` reads the log's whole visible state into a [`Model`].
pub fn observe<D: Disk>(wal: &Wal<D>) -> Model {
    let mut m = Model::default();
    for g in wal.groups() {
        let entries = wal
            .entries(g, LogIndex(0)..LogIndex(u64::MAX))
            .unwrap()
            .into_iter()
            .map(|e| (e.index.0, (e.term.0, e.payload)))
            .collect::<BTreeMap<_, _>>();
        assert_eq!(
            wal.first_index(g).map(|i| i.0),
            entries.keys().next().copied()
        );
        assert_eq!(
            wal.last_index(g).map(|i| i.0),
            entries.keys().next_back().copied()
        );
        let mg = ModelGroup {
            entries,
            vote: wal.vote(g),
            purged: wal.purged(g),
            committed: wal.committed(g),
        };
        if mg != ModelGroup::default() {
            m.groups.insert(g.0, mg);
        }
    }
    m
}

/// `normalized` drops groups with no state, which the log and the model
/// may represent differently (a group that saw only a no-op truncate).
pub fn normalized(mut m: Model) -> Model {
    m.groups.retain(|_, g| *g != ModelGroup::default());
    m
}

/// `Fired` collects callback results as (tag, ok).
pub type Fired = Arc<Mutex<Vec<(u64, bool)>>>;

pub fn recorder(fired: &Fired, tag: u64) -> OnDurable {
    let fired = Arc::clone(fired);
    Box::new(move |r: Result<(), WalError>| fired.lock().unwrap().push((tag, r.is_ok())))
}
