//! The in-memory index: where each group's entries live on disk, and each
//! group's vote, purge point and commit point. Positions only, never
//! payloads, so memory is bounded by the number of live entries (40 bytes
//! each) rather than their size.
//!
//! Two ways to build it, with deliberately different strictness:
//! - at runtime, [`Index::check_batch`] refuses records that break the
//!   log's invariants and [`Index::apply`] applies the accepted ones;
//! - at recovery, [`Replay`] applies records leniently (an `Entries` record
//!   overwrites the indices it names) because garbage collection may have
//!   deleted dead records between surviving ones; its result is checked
//!   for consistency at the end instead. Why the result equals the runtime
//!   state is argued in `wal.rs` (`classify`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::format::{EntryMeta, Parsed};
use crate::types::{GroupId, LogId, Vote};

/// `SegId` names a segment by the sequence number of its first record.
pub(crate) type SegId = u64;

/// `EntryLoc` locates one entry: its record frame and its payload within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntryLoc {
    pub(crate) seg: SegId,
    pub(crate) rec_offset: u64,
    pub(crate) rec_len: u32,
    pub(crate) meta: EntryMeta,
}

/// `GroupState` is one group's part of the index.
#[derive(Debug, Default)]
pub(crate) struct GroupState {
    /// Index of `entries[0]`; meaningless when `entries` is empty.
    pub(crate) first: u64,
    pub(crate) entries: VecDeque<EntryLoc>,
    pub(crate) vote: Option<(Vote, SegId)>,
    pub(crate) purged: Option<(LogId, SegId)>,
    pub(crate) committed: Option<(LogId, SegId)>,
}

impl GroupState {
    pub(crate) fn last(&self) -> Option<u64> {
        let n = self.entries.len() as u64;
        (n > 0).then(|| self.first + n - 1)
    }

    pub(crate) fn get(&self, index: u64) -> Option<&EntryLoc> {
        let off = index.checked_sub(self.first)?;
        self.entries.get(usize::try_from(off).ok()?)
    }
}

/// `SegStats` is what garbage collection needs to know about a segment.
#[derive(Debug, Default, Clone)]
pub(crate) struct SegStats {
    /// Entries in this segment that are still in some group's log.
    pub(crate) live_entries: u64,
    /// Groups with at least one `Entries` record here, live or not.
    pub(crate) entry_groups: BTreeSet<GroupId>,
    /// Groups with at least one `Truncate` or `Purge` record here.
    pub(crate) tombstone_groups: BTreeSet<GroupId>,
}

/// `Index` is the whole in-memory index.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) groups: BTreeMap<GroupId, GroupState>,
    pub(crate) segs: BTreeMap<SegId, SegStats>,
}

/// `Cursor` is the part of a group's state that decides whether a record
/// is acceptable, cheap to copy for checking a batch before applying it.
#[derive(Clone, Copy, Debug, Default)]
struct Cursor {
    /// (first, last) present entry, if any.
    span: Option<(u64, u64)>,
    purged: Option<u64>,
}

fn step(c: &mut Cursor, p: &Parsed) -> Result<(), String> {
    match p {
        Parsed::Entries { first, metas, .. } => {
            let expected = match (c.span, c.purged) {
                (Some((_, last)), _) => last.checked_add(1),
                (None, Some(purged)) => purged.checked_add(1),
                (None, None) => Some(first.0),
            };
            if expected != Some(first.0) {
                return Err(format!(
                    "entries start at index {}, but the next index is {}",
                    first.0,
                    expected.map_or_else(|| "beyond u64".to_string(), |e| e.to_string())
                ));
            }
            let n = metas.len() as u64;
            let last = n
                .checked_sub(1)
                .and_then(|k| first.0.checked_add(k))
                .ok_or("entry indices overflow or record is empty")?;
            c.span = Some((c.span.map_or(first.0, |(f, _)| f), last));
        }
        Parsed::Truncate { from_index, .. } => {
            if let Some((f, l)) = c.span {
                if from_index.0 <= f {
                    c.span = None;
                } else if from_index.0 <= l {
                    c.span = Some((f, from_index.0 - 1));
                }
            }
        }
        Parsed::Purge { up_to, .. } => {
            if let Some(p) = c.purged
                && up_to.index.0 < p
            {
                return Err(format!("purge up to {} moves back from {p}", up_to.index.0));
            }
            c.purged = Some(up_to.index.0);
            if let Some((f, l)) = c.span {
                if up_to.index.0 >= l {
                    c.span = None;
                } else if up_to.index.0 >= f {
                    c.span = Some((up_to.index.0 + 1, l));
                }
            }
        }
        Parsed::Vote { .. } | Parsed::Commit { .. } => {}
    }
    Ok(())
}

impl Index {
    fn cursor(&self, group: GroupId) -> Cursor {
        match self.groups.get(&group) {
            None => Cursor::default(),
            Some(g) => Cursor {
                span: g.last().map(|l| (g.first, l)),
                purged: g.purged.map(|(id, _)| id.index.0),
            },
        }
    }

    /// `check_batch` checks that applying `records` in order keeps every
    /// group's log consistent, without changing anything.
    pub(crate) fn check_batch<'a>(
        &self,
        records: impl IntoIterator<Item = &'a Parsed>,
    ) -> Result<(), (GroupId, String)> {
        let mut cursors: BTreeMap<GroupId, Cursor> = BTreeMap::new();
        for p in records {
            let g = p.group();
            let c = cursors.entry(g).or_insert_with(|| self.cursor(g));
            step(c, p).map_err(|reason| (g, reason))?;
        }
        Ok(())
    }

    fn seg(&mut self, seg: SegId) -> &mut SegStats {
        self.segs.entry(seg).or_default()
    }

    fn unlink(segs: &mut BTreeMap<SegId, SegStats>, loc: &EntryLoc) {
        if let Some(s) = segs.get_mut(&loc.seg) {
            s.live_entries = s.live_entries.saturating_sub(1);
        }
    }

    /// `apply` applies one record that passed [`Index::check_batch`],
    /// written at `rec_offset` (frame length `rec_len`) of segment `seg`.
    pub(crate) fn apply(&mut self, p: &Parsed, seg: SegId, rec_offset: u64, rec_len: u32) {
        let group = p.group();
        match p {
            Parsed::Entries { first, metas, .. } => {
                let stats = self.seg(seg);
                stats.live_entries += metas.len() as u64;
                stats.entry_groups.insert(group);
                let g = self.groups.entry(group).or_default();
                if g.entries.is_empty() {
                    g.first = first.0;
                }
                g.entries.extend(metas.iter().map(|meta| EntryLoc {
                    seg,
                    rec_offset,
                    rec_len,
                    meta: *meta,
                }));
            }
            Parsed::Truncate { from_index, .. } => {
                self.seg(seg).tombstone_groups.insert(group);
                let g = self.groups.entry(group).or_default();
                while g.last().is_some_and(|l| l >= from_index.0) {
                    if let Some(loc) = g.entries.pop_back() {
                        Self::unlink(&mut self.segs, &loc);
                    }
                }
            }
            Parsed::Purge { up_to, .. } => {
                self.seg(seg).tombstone_groups.insert(group);
                let g = self.groups.entry(group).or_default();
                while !g.entries.is_empty() && g.first <= up_to.index.0 {
                    if let Some(loc) = g.entries.pop_front() {
                        Self::unlink(&mut self.segs, &loc);
                    }
                    g.first += 1;
                }
                g.purged = Some((*up_to, seg));
            }
            Parsed::Vote { vote, .. } => {
                self.groups.entry(group).or_default().vote = Some((*vote, seg));
            }
            Parsed::Commit { committed, .. } => {
                self.groups.entry(group).or_default().committed = Some((*committed, seg));
            }
        }
    }
}

/// `Replay` rebuilds the index from records read back at recovery.
///
/// Semantics (lenient, see the module docs): `Entries` inserts or
/// overwrites each index it names; `Truncate` removes indices `>= from`;
/// `Purge` removes indices `<= up_to` and keeps the highest purge point;
/// `Vote` and `Commit` keep the last record. On the records the runtime
/// accepted, this equals the strict semantics.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    groups: BTreeMap<GroupId, ReplayGroup>,
    segs: BTreeMap<SegId, SegStats>,
}

#[derive(Debug, Default)]
struct ReplayGroup {
    entries: BTreeMap<u64, EntryLoc>,
    vote: Option<(Vote, SegId)>,
    purged: Option<(LogId, SegId)>,
    committed: Option<(LogId, SegId)>,
}

impl Replay {
    /// `add_segment` registers a segment (it may hold no records).
    pub(crate) fn add_segment(&mut self, seg: SegId) {
        self.segs.entry(seg).or_default();
    }

    /// `apply` replays one record read at `rec_offset` of segment `seg`.
    pub(crate) fn apply(&mut self, p: &Parsed, seg: SegId, rec_offset: u64, rec_len: u32) {
        let group = p.group();
        let g = self.groups.entry(group).or_default();
        let stats = self.segs.entry(seg).or_default();
        match p {
            Parsed::Entries { first, metas, .. } => {
                stats.entry_groups.insert(group);
                for (i, meta) in (first.0..).zip(metas) {
                    g.entries.insert(
                        i,
                        EntryLoc {
                            seg,
                            rec_offset,
                            rec_len,
                            meta: *meta,
                        },
                    );
                }
            }
            Parsed::Truncate { from_index, .. } => {
                stats.tombstone_groups.insert(group);
                g.entries.split_off(&from_index.0);
            }
            Parsed::Purge { up_to, .. } => {
                stats.tombstone_groups.insert(group);
                g.entries = match up_to.index.0.checked_add(1) {
                    Some(keep_from) => g.entries.split_off(&keep_from),
                    None => BTreeMap::new(),
                };
                if g.purged.is_none_or(|(p, _)| p.index <= up_to.index) {
                    g.purged = Some((*up_to, seg));
                }
            }
            Parsed::Vote { vote, .. } => g.vote = Some((*vote, seg)),
            Parsed::Commit { committed, .. } => g.committed = Some((*committed, seg)),
        }
    }

    /// `finish` checks that every group's entries are consecutive and turns
    /// the replay into an [`Index`]. A gap names the entry after it.
    pub(crate) fn finish(self) -> Result<Index, (EntryLoc, String)> {
        let mut index = Index {
            groups: BTreeMap::new(),
            segs: self.segs,
        };
        for (group, rg) in self.groups {
            let mut g = GroupState {
                vote: rg.vote,
                purged: rg.purged,
                committed: rg.committed,
                ..GroupState::default()
            };
            let mut prev: Option<u64> = None;
            for (i, loc) in rg.entries {
                if let Some(p) = prev
                    && p.checked_add(1) != Some(i)
                {
                    return Err((
                        loc,
                        format!(
                            "group {group} has no entries between {p} and {i}: a log record is missing"
                        ),
                    ));
                }
                if prev.is_none() {
                    g.first = i;
                }
                prev = Some(i);
                if let Some(s) = index.segs.get_mut(&loc.seg) {
                    s.live_entries += 1;
                }
                g.entries.push_back(loc);
            }
            index.groups.insert(group, g);
        }
        Ok(index)
    }
}

#[cfg(test)]
impl Index {
    /// `live_entries_recount` recomputes each segment's live entry count
    /// from the groups, to check the incremental counts.
    pub(crate) fn live_entries_recount(&self) -> BTreeMap<SegId, u64> {
        let mut counts: BTreeMap<SegId, u64> = self.segs.keys().map(|s| (*s, 0)).collect();
        for g in self.groups.values() {
            for loc in &g.entries {
                *counts.entry(loc.seg).or_default() += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{LogIndex, Term};

    fn entries(group: u64, first: u64, n: u32) -> Parsed {
        Parsed::Entries {
            group: GroupId(group),
            first: LogIndex(first),
            metas: (0..n)
                .map(|i| EntryMeta {
                    term: Term(1),
                    payload_off: i,
                    payload_len: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn strict_checks_refuse_gaps_overlaps_and_backward_purges() {
        let mut ix = Index::default();
        ix.apply(&entries(1, 5, 3), 0, 0, 10);
        assert!(ix.check_batch([&entries(1, 8, 1)]).is_ok());
        assert!(ix.check_batch([&entries(1, 9, 1)]).is_err());
        assert!(ix.check_batch([&entries(1, 7, 1)]).is_err());
        let purge = |i| Parsed::Purge {
            group: GroupId(1),
            up_to: LogId {
                term: Term(1),
                leader: crate::types::NodeId(1),
                index: LogIndex(i),
            },
        };
        ix.apply(&purge(6), 0, 20, 10);
        assert!(ix.check_batch([&purge(5)]).is_err());
        // A batch is checked as a whole, in order.
        let trunc = Parsed::Truncate {
            group: GroupId(1),
            from_index: LogIndex(7),
        };
        assert!(ix.check_batch([&trunc, &entries(1, 7, 2)]).is_ok());
        assert!(ix.check_batch([&entries(1, 7, 2)]).is_err());
        assert_eq!(ix.live_entries_recount().get(&0), Some(&1));
        assert_eq!(ix.segs[&0].live_entries, 1);
    }
}
