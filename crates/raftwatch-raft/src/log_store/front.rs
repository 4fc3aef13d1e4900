//! The front: every group's log state as the Raft layer sees it, in memory,
//! including requests still queued for the driver.
//!
//! Writers update the front and queue the matching WAL record under one
//! lock, so the front is always "the WAL after every queued request".
//! Readers answer from it without touching the WAL, except for entries
//! older than the tail cache, which come from the WAL (whose lock the
//! driver holds during an fdatasync).
//!
//! Invariant (why reading old entries from the WAL is safe while requests
//! are still queued): a queued request changes only indices at or after
//! its group's `cache_first()`, or is a purge, which readers apply by
//! clamping to `first`. Truncating below the cache empties the cache and
//! moves `cache_first()` down to the truncation point; entries leave the
//! cache (eviction) only once the request that wrote them has been
//! submitted to the WAL.

use std::collections::{BTreeMap, VecDeque};

use crate::types::{Entry, GroupId, LogId, Vote};

/// `CACHE_BYTES_MAX_PER_GROUP` bounds the payload bytes of submitted
/// entries kept in a group's tail cache (entries not yet submitted are kept
/// whatever their size; the request queue bounds those).
pub const CACHE_BYTES_MAX_PER_GROUP: u64 = 8 << 20;
/// `CACHE_ENTRIES_MAX_PER_GROUP` bounds the number of submitted entries
/// kept in a group's tail cache.
pub const CACHE_ENTRIES_MAX_PER_GROUP: usize = 4096;

/// One cached entry: the entry, its encoded size, and the sequence number
/// of the request that wrote it.
#[derive(Debug)]
pub(super) struct Cached {
    pub(super) entry: Entry,
    pub(super) bytes: u64,
    pub(super) seq: u64,
}

/// `GroupFront` is one group's state.
#[derive(Debug, Default)]
pub(super) struct GroupFront {
    pub(super) vote: Option<Vote>,
    pub(super) committed: Option<LogId>,
    pub(super) purged: Option<LogId>,
    /// Id of the last present entry; `None` if the log has no entries.
    pub(super) last: Option<LogId>,
    /// Index of the first present entry; meaningless when `last` is `None`.
    pub(super) first: u64,
    /// The newest entries, contiguous, ending at `last`.
    pub(super) cache: VecDeque<Cached>,
    pub(super) cache_bytes: u64,
}

impl GroupFront {
    /// `cache_first` is the lowest index served from the cache: the first
    /// cached entry, or one past the last entry when the cache is empty.
    pub(super) fn cache_first(&self) -> u64 {
        match (self.cache.front(), self.last) {
            (Some(c), _) => c.entry.log_id.index,
            (None, Some(last)) => last.index + 1,
            (None, None) => 0,
        }
    }

    /// `next_index` is the index the next appended entry must have, `None`
    /// if any index is acceptable (empty log, never purged): the WAL's rule.
    pub(super) fn next_index(&self) -> Option<u64> {
        match (self.last, self.purged) {
            (Some(last), _) => Some(last.index + 1),
            (None, Some(p)) => Some(p.index + 1),
            (None, None) => None,
        }
    }

    /// `last_log_id` is openraft's `LogState::last_log_id`.
    pub(super) fn last_log_id(&self) -> Option<LogId> {
        self.last.or(self.purged)
    }

    /// `push` appends checked, consecutive entries.
    pub(super) fn push(&mut self, entries: Vec<(Entry, u64)>, seq: u64) {
        for (entry, bytes) in entries {
            if self.last.is_none() {
                self.first = entry.log_id.index;
            }
            self.last = Some(entry.log_id);
            self.cache_bytes += bytes;
            self.cache.push_back(Cached { entry, bytes, seq });
        }
    }

    /// `truncate_after` keeps entries up to `keep` (inclusive); `None`
    /// deletes every entry. `keep` must be the id of a present entry or lie
    /// outside the present entries.
    pub(super) fn truncate_after(&mut self, keep: Option<LogId>) {
        let Some(last) = self.last else { return };
        let from = keep.map_or(0, |k| k.index + 1);
        if from > last.index {
            return;
        }
        while self
            .cache
            .back()
            .is_some_and(|c| c.entry.log_id.index >= from)
        {
            if let Some(c) = self.cache.pop_back() {
                self.cache_bytes -= c.bytes;
            }
        }
        self.last = match keep {
            Some(k) if k.index >= self.first => Some(k),
            _ => None,
        };
    }

    /// `purge` deletes entries up to `up_to` (inclusive) and records it.
    pub(super) fn purge(&mut self, up_to: LogId) {
        self.purged = Some(up_to);
        while self
            .cache
            .front()
            .is_some_and(|c| c.entry.log_id.index <= up_to.index)
        {
            if let Some(c) = self.cache.pop_front() {
                self.cache_bytes -= c.bytes;
            }
        }
        match self.last {
            Some(last) if last.index > up_to.index => self.first = self.first.max(up_to.index + 1),
            _ => self.last = None,
        }
    }

    /// `evict` drops the oldest cached entries already submitted to the WAL
    /// (`seq <= submitted`) while the cache is over its limits.
    pub(super) fn evict(&mut self, submitted: u64) {
        while (self.cache.len() > CACHE_ENTRIES_MAX_PER_GROUP
            || self.cache_bytes > CACHE_BYTES_MAX_PER_GROUP)
            && self.cache.front().is_some_and(|c| c.seq <= submitted)
        {
            if let Some(c) = self.cache.pop_front() {
                self.cache_bytes -= c.bytes;
            }
        }
    }
}

/// `Front` is the state of every group plus the request sequence counter.
#[derive(Debug, Default)]
pub(super) struct Front {
    pub(super) groups: BTreeMap<GroupId, GroupFront>,
    /// Sequence number of the next request queued (requests enter the queue
    /// in this order, under the front lock).
    pub(super) next_seq: u64,
}

impl Front {
    pub(super) fn group(&mut self, group: GroupId) -> &mut GroupFront {
        self.groups.entry(group).or_default()
    }

    /// `take_seq` numbers one request.
    pub(super) fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// `evict` applies [`GroupFront::evict`] to every group.
    pub(super) fn evict(&mut self, submitted: u64) {
        for g in self.groups.values_mut() {
            g.evict(submitted);
        }
    }
}
