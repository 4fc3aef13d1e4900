//! The log's vocabulary: identifier newtypes, entries, votes and records.

use std::fmt;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
            serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        #[repr(transparent)]
        pub struct $name(pub u64);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_newtype!(
    /// `GroupId` names one Raft group on a node (0 is the control plane,
    /// 1.. are shards). The log keeps every group's state apart.
    GroupId,
    "group#"
);
id_newtype!(
    /// `LogIndex` is the position of an entry in one group's Raft log.
    LogIndex,
    "idx#"
);
id_newtype!(
    /// `Term` is a Raft term.
    Term,
    "term#"
);
id_newtype!(
    /// `NodeId` names a node of the cluster (the candidate a vote is for).
    NodeId,
    "node#"
);

/// `LogId` names one entry of one group's log as openraft's default
/// ("advanced") leader ids do: the term and the node id of the leader that
/// proposed it, and its index. `Purge` and `Commit` records store all
/// three, because the entry they name may no longer be in the log.
/// `Entries` records store only each entry's term: the full id of a
/// present entry is inside its payload (the Raft layer's serialized entry).
///
/// Ordering is by (term, leader, index), openraft's order for
/// `LogId` with committed leader ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogId {
    /// `term` is the term the entry was proposed in.
    pub term: Term,
    /// `leader` is the node that proposed the entry as leader of `term`.
    pub leader: NodeId,
    /// `index` is the entry's position in the group's log.
    pub index: LogIndex,
}

/// `Vote` is a group's persistent Raft vote: the term, the node voted for
/// (or the leader, once `committed`), and whether a quorum granted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Vote {
    /// `term` is the vote's term.
    pub term: Term,
    /// `node_id` is the candidate voted for.
    pub node_id: NodeId,
    /// `committed` is true once a quorum granted the vote (openraft's
    /// committed vote, i.e. an established leader).
    pub committed: bool,
}

/// `Entry` is one Raft log entry as the log stores it: the payload is
/// opaque bytes (the Raft layer's serialized entry).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Entry {
    /// `index` is the entry's position in its group's log.
    pub index: LogIndex,
    /// `term` is the term the entry was proposed in.
    pub term: Term,
    /// `payload` is the opaque entry body.
    pub payload: Vec<u8>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Entry({}, {}, {} bytes)",
            self.index.0,
            self.term.0,
            self.payload.len()
        )
    }
}

/// `Record` is one change to the log, as submitted and as written to disk
/// (one framed record each; `docs/format/wal.md`).
///
/// Replaying records in order rebuilds each group's state:
/// - `Entries` appends entries with consecutive indices. The first index
///   must be the group's last index + 1; if the group has no entries, its
///   last purged index + 1; if it has never had a purge and has no entries,
///   anything.
/// - `Vote` replaces the group's vote.
/// - `Truncate` deletes every entry with index `>= from_index` (openraft's
///   `truncate_after(id)` is `from_index = id.index + 1`).
/// - `Purge` deletes every entry with index `<= up_to.index` and records
///   `up_to` as the last purged log id. It must not move backwards.
/// - `Commit` records the group's committed log id (openraft's optional
///   `save_committed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// `Entries` appends consecutive entries to one group.
    Entries {
        /// `group` is the group the entries belong to.
        group: GroupId,
        /// `entries` are non-empty, with consecutive indices.
        entries: Vec<Entry>,
    },
    /// `Vote` replaces one group's vote.
    Vote {
        /// `group` is the group whose vote this is.
        group: GroupId,
        /// `vote` is the new vote.
        vote: Vote,
    },
    /// `Truncate` deletes the suffix `index >= from_index` of one group.
    Truncate {
        /// `group` is the group to truncate.
        group: GroupId,
        /// `from_index` is the first index deleted.
        from_index: LogIndex,
    },
    /// `Purge` deletes the prefix `index <= up_to.index` of one group.
    Purge {
        /// `group` is the group to purge.
        group: GroupId,
        /// `up_to` is the last purged log id (inclusive).
        up_to: LogId,
    },
    /// `Commit` records one group's committed log id.
    Commit {
        /// `group` is the group the commit point belongs to.
        group: GroupId,
        /// `committed` is the committed log id.
        committed: LogId,
    },
}

impl Record {
    /// `group` is the group the record changes.
    pub fn group(&self) -> GroupId {
        match self {
            Record::Entries { group, .. }
            | Record::Vote { group, .. }
            | Record::Truncate { group, .. }
            | Record::Purge { group, .. }
            | Record::Commit { group, .. } => *group,
        }
    }
}

/// `Ticket` identifies a submission: it is durable once every record
/// submitted before and with it has been written and `fdatasync`ed
/// ([`crate::Wal::is_durable`]). Tickets are ordered by submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub(crate) u64);

impl Ticket {
    /// `seq_end` is one past the sequence number of the submission's last
    /// record (records are numbered from 0 in the order they are submitted,
    /// across restarts).
    pub fn seq_end(self) -> u64 {
        self.0
    }
}
