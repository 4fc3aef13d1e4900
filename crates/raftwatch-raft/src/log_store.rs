//! openraft's log storage over the node-wide WAL ([`raftwatch_wal`]).
//!
//! One [`SharedLog`] per node owns the WAL; every group gets a
//! [`GroupLogStore`] from it ([`SharedLog::group_store`]), which implements
//! `RaftLogStorage` and `RaftLogReader`. Writes from all groups go through
//! one bounded queue to one driver, which submits them to the WAL in queue
//! order, flushes once (one `fdatasync` for everything queued by every
//! group: group commit) and completes the callbacks after that sync.
//!
//! The contract openraft needs, and how it holds:
//! - `append` returns once the entries are queued and readable (the
//!   in-memory front, [`front`], serves them); its callback fires from the
//!   driver after the fdatasync that covers them.
//! - `save_vote` returns after the fdatasync covering the vote. The single
//!   queue orders every write of a group: a vote is never durable before an
//!   append queued earlier, and a truncate or purge is durable before any
//!   later append's callback fires.
//! - `truncate_after`, `purge` and `save_committed` queue a record and
//!   return; the next durable write of the group covers them. After a
//!   crash the log holds a prefix of the queued writes.
//! - Entry payloads are [`crate::convert::encode_entry`]; the WAL's
//!   `Entries` record keeps each entry's index and term beside it, and
//!   reads check that the decoded entry agrees.
//!
//! Threads and determinism: see [`FlushMode`]. With
//! [`FlushMode::Manual`] nothing is spawned and durability advances only
//! when the owner calls [`SharedLog::flush_now`].
//!
//! Architecture invariant: a store never holds a `std` mutex guard across
//! an `.await`, and the front's lock is never held during disk I/O.

mod driver;
mod front;

use std::fmt;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use openraft::impls::leader_id_adv::LeaderId;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use raftwatch_wal::{
    Disk, Entry as WalEntry, FsDisk, LogIndex, MemDisk, Record, RecoveryReport, Term, Wal,
    WalConfig, WalError,
};
use tokio::sync::{mpsc, oneshot};

pub use driver::{FlushMode, REQUEST_QUEUE_CAPACITY};
pub use front::{CACHE_BYTES_MAX_PER_GROUP, CACHE_ENTRIES_MAX_PER_GROUP};

use driver::{Core, Counters, Done, Req};
use front::{Front, GroupFront};

use crate::convert::{decode_entry, encode_entry};
use crate::types::{Entry, GroupId, LogId, TypeConfig, Vote};

/// Bytes a WAL record takes beyond its entry payloads, at most: frame
/// header (9), the largest fixed body (32), a new segment's header (20),
/// rounded up.
const RECORD_OVERHEAD_BYTES_MAX: u64 = 64;
/// Bytes per entry beyond its payload inside an `Entries` record.
const ENTRY_OVERHEAD_BYTES: u64 = 12;

/// `LogError` is why the shared log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// `Wal`: the WAL refused to open (corruption names file and offset).
    #[error(transparent)]
    Wal(#[from] WalError),
    /// `Dir`: the log directory could not be created or opened.
    #[error("cannot open log directory {dir}: {source}")]
    Dir {
        /// `dir` is the directory.
        dir: PathBuf,
        /// `source` is the operating system's error.
        #[source]
        source: io::Error,
    },
    /// `Thread`: the driver thread could not be started.
    #[error("cannot start the log driver thread: {0}")]
    Thread(#[source] io::Error),
    /// `BadEntry`: a stored entry's payload does not decode, or disagrees
    /// with the index and term the WAL stored beside it.
    #[error("log entry of group {group} at index {index} is unreadable: {reason}")]
    BadEntry {
        /// `group` is the entry's group.
        group: GroupId,
        /// `index` is the entry's index.
        index: u64,
        /// `reason` says what is wrong.
        reason: String,
    },
}

/// `LogStats` are cumulative counters of a [`SharedLog`] since it opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// `fsyncs_count` counts `fdatasync` calls on WAL segments.
    pub fsyncs_count: u64,
    /// `flushes_count` counts WAL flushes that wrote something.
    pub flushes_count: u64,
    /// `records_count` counts WAL records made durable.
    pub records_count: u64,
    /// `bytes_written` counts bytes appended to WAL segments.
    pub bytes_written: u64,
    /// `entries_appended_count` counts Raft entries submitted by `append`.
    pub entries_appended_count: u64,
    /// `batches_count` counts driver batches (each one flush).
    pub batches_count: u64,
    /// `requests_count` counts queued writes processed (appends, votes,
    /// truncates, purges, commits, barriers).
    pub requests_count: u64,
    /// `wal_reads_count` counts entry reads that missed the tail cache and
    /// went to the WAL.
    pub wal_reads_count: u64,
}

/// `SharedLog` is a node's durable Raft log, shared by all its groups.
///
/// Dropping it closes the queue: writes through stores still alive fail,
/// reads keep working, and (in [`FlushMode::Thread`]) the drop waits for
/// the driver to flush what was queued and exit.
pub struct SharedLog {
    core: Arc<Core>,
    mode: FlushMode,
    /// The queue's receiving side in [`FlushMode::Manual`].
    manual_rx: Option<Mutex<mpsc::Receiver<Req>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl fmt::Debug for SharedLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedLog")
            .field("mode", &self.mode)
            .field("stats", &self.stats())
            .finish()
    }
}

impl SharedLog {
    /// `open_fs` opens (recovering) the WAL in directory `dir`, creating
    /// it if needed, and starts the driver thread. The report says what
    /// recovery found (a repaired torn tail); the caller logs it.
    pub fn open_fs(dir: &Path, config: WalConfig) -> Result<(SharedLog, RecoveryReport), LogError> {
        std::fs::create_dir_all(dir).map_err(|source| LogError::Dir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let disk = FsDisk::open(dir).map_err(|source| LogError::Dir {
            dir: dir.to_path_buf(),
            source,
        })?;
        Self::open(disk, config, FlushMode::Thread)
    }

    /// `open_mem` opens (recovering) the WAL on an in-memory disk; the same
    /// API as [`SharedLog::open_fs`], for tests and the simulator.
    pub fn open_mem(
        disk: MemDisk,
        config: WalConfig,
        mode: FlushMode,
    ) -> Result<(SharedLog, RecoveryReport), LogError> {
        Self::open(disk, config, mode)
    }

    /// `open` opens the WAL on any disk and starts its driver per `mode`.
    pub fn open<D: Disk + 'static>(
        disk: D,
        config: WalConfig,
        mode: FlushMode,
    ) -> Result<(SharedLog, RecoveryReport), LogError> {
        let pending_bytes_max = config.pending_bytes_max;
        let (wal, report) = Wal::open(disk, config)?;
        let front = recover_front(&wal)?;
        let (tx, rx) = mpsc::channel(REQUEST_QUEUE_CAPACITY);
        let counters = Counters::default();
        // Opening may already have synced (a new log's first segment).
        counters.store_wal(&wal.stats());
        let core = Arc::new(Core {
            wal: Mutex::new(Box::new(wal)),
            front: Mutex::new(front),
            counters,
            pending_bytes_max,
            tx: Mutex::new(Some(tx)),
            queued: tokio::sync::Notify::new(),
            signal_queued: mode == FlushMode::Manual,
        });
        let (manual_rx, thread) = match mode {
            FlushMode::Manual => (Some(Mutex::new(rx)), None),
            FlushMode::Thread => {
                let c = core.clone();
                let handle = crate::rt::spawn_thread("raftwatch-wal", move || {
                    driver::run_thread(c, rx);
                })
                .map_err(LogError::Thread)?;
                (None, Some(handle))
            }
        };
        Ok((
            SharedLog {
                core,
                mode,
                manual_rx,
                thread,
            },
            report,
        ))
    }

    /// `group_store` is the log store of `group`. Give each group exactly
    /// one writer (openraft serializes its calls on it); readers
    /// (`get_log_reader`) may be many.
    pub fn group_store(&self, group: GroupId) -> GroupLogStore {
        GroupLogStore {
            group,
            core: self.core.clone(),
            appended_bytes: Arc::default(),
        }
    }

    /// `flush_now` processes every request queued right now, in the
    /// calling thread: submit, one flush, callbacks. Returns how many
    /// requests it processed. In [`FlushMode::Thread`] the driver owns the
    /// queue and this does nothing (returns 0).
    pub fn flush_now(&self) -> usize {
        let Some(rx) = &self.manual_rx else {
            return 0;
        };
        let batch = {
            let mut rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
            driver::drain(&mut rx, None)
        };
        let n = batch.len();
        driver::process(&self.core, batch);
        n
    }

    /// `queued` returns once a request was queued since the previous call
    /// returned (at once if one is pending): a task driving a
    /// [`FlushMode::Manual`] log awaits this, then calls
    /// [`SharedLog::flush_now`].
    pub async fn queued(&self) {
        self.core.queued.notified().await;
    }

    /// `mode` is who flushes this log.
    pub fn mode(&self) -> FlushMode {
        self.mode
    }

    /// `stats` are the cumulative counters (lock-free; WAL counters are
    /// as of the last flush).
    pub fn stats(&self) -> LogStats {
        let c = &self.core.counters;
        LogStats {
            fsyncs_count: c.syncs.load(Ordering::Relaxed),
            flushes_count: c.flushes.load(Ordering::Relaxed),
            records_count: c.records.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            entries_appended_count: c.entries_appended.load(Ordering::Relaxed),
            batches_count: c.batches.load(Ordering::Relaxed),
            requests_count: c.requests.load(Ordering::Relaxed),
            wal_reads_count: c.wal_reads.load(Ordering::Relaxed),
        }
    }

    /// `groups` lists every group the log holds state for, ascending.
    pub fn groups(&self) -> Vec<GroupId> {
        self.core.lock_front().groups.keys().copied().collect()
    }

    /// `purge_group` deletes every entry of `group` (a purge up to its last
    /// log id) and returns once that is durable, so the WAL can reclaim the
    /// group's segments. The group's vote, purge and commit records stay
    /// (a few dozen bytes): the WAL has no record that forgets a group, so
    /// a purged group id must not be reused for a new group.
    pub async fn purge_group(&self, group: GroupId) -> io::Result<()> {
        let mut store = self.group_store(group);
        let last = store.core.lock_front().group(group).last;
        if let Some(last) = last {
            store.purge(last).await?;
        }
        store.barrier().await
    }
}

impl Drop for SharedLog {
    fn drop(&mut self) {
        // Closing the queue lets the driver finish what is queued and exit.
        self.core
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the log driver thread panicked");
        }
    }
}

/// Rebuilds the front from a freshly opened WAL: per group its vote,
/// purge and commit points, first index and last entry's full log id
/// (decoded from the last entry's payload).
fn recover_front<D: Disk>(wal: &Wal<D>) -> Result<Front, LogError> {
    let mut front = Front::default();
    for group in wal.groups() {
        let g = front.group(group);
        g.vote = wal.vote(group).map(vote_from_wal);
        g.purged = wal.purged(group).map(log_id_from_wal);
        g.committed = wal.committed(group).map(log_id_from_wal);
        if let (Some(first), Some(last)) = (wal.first_index(group), wal.last_index(group)) {
            let stored = wal.entries(group, last..LogIndex(last.0 + 1))?;
            let entry = stored.first().ok_or_else(|| LogError::BadEntry {
                group,
                index: last.0,
                reason: "the index lists it but it cannot be read".to_string(),
            })?;
            let e = decode_checked(group, entry).map_err(|reason| LogError::BadEntry {
                group,
                index: last.0,
                reason,
            })?;
            g.first = first.0;
            g.last = Some(e.log_id);
        }
    }
    Ok(front)
}

fn log_id_to_wal(id: &LogId) -> raftwatch_wal::LogId {
    raftwatch_wal::LogId {
        term: Term(id.leader_id.term),
        leader: raftwatch_wal::NodeId(id.leader_id.node_id),
        index: LogIndex(id.index),
    }
}

fn log_id_from_wal(id: raftwatch_wal::LogId) -> LogId {
    LogId::new(
        LeaderId {
            term: id.term.0,
            node_id: id.leader.0,
        },
        id.index.0,
    )
}

fn vote_to_wal(v: &Vote) -> raftwatch_wal::Vote {
    raftwatch_wal::Vote {
        term: Term(v.leader_id.term),
        node_id: raftwatch_wal::NodeId(v.leader_id.node_id),
        committed: v.committed,
    }
}

fn vote_from_wal(v: raftwatch_wal::Vote) -> Vote {
    Vote {
        leader_id: LeaderId {
            term: v.term.0,
            node_id: v.node_id.0,
        },
        committed: v.committed,
    }
}

/// Decodes a stored entry and checks it against the index and term the
/// WAL keeps beside the payload.
fn decode_checked(group: GroupId, stored: &WalEntry) -> Result<Entry, String> {
    let e = decode_entry(&stored.payload).map_err(|e| e.to_string())?;
    if e.log_id.index != stored.index.0 || e.log_id.leader_id.term != stored.term.0 {
        return Err(format!(
            "group {group}: payload says index {} term {}, the WAL says index {} term {}",
            e.log_id.index, e.log_id.leader_id.term, stored.index.0, stored.term.0
        ));
    }
    Ok(e)
}

/// `[lo, hi)` of a range of indices (`hi` saturates at `u64::MAX`).
fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let lo = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let hi = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (lo, hi)
}

fn closed(group: GroupId) -> io::Error {
    io::Error::other(format!("log of group {group}: the shared log is closed"))
}

/// `GroupLogStore` is one group's view of the [`SharedLog`]: openraft's
/// `RaftLogStorage` and `RaftLogReader`. Cloning gives another handle on
/// the same group (openraft's log readers).
#[derive(Clone)]
pub struct GroupLogStore {
    group: GroupId,
    core: Arc<Core>,
    /// Encoded entry bytes appended through this store (and its clones)
    /// since it was created; the host snapshots on a byte budget with it.
    appended_bytes: Arc<std::sync::atomic::AtomicU64>,
}

impl fmt::Debug for GroupLogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupLogStore")
            .field("group", &self.group)
            .finish()
    }
}

impl GroupLogStore {
    /// `appended_bytes` counts the encoded entry bytes appended through this
    /// store and its clones since it was created.
    pub fn appended_bytes(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.appended_bytes.clone()
    }

    /// `group` is the store's group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// Queues one write. `prepare` runs under the front lock after room in
    /// the queue is reserved, so the front and the queue change together
    /// (and a cancelled call changes neither); it returns the record (or
    /// `None` for a barrier), its size bound and entry count.
    async fn enqueue<F>(&self, done: Done, prepare: F) -> io::Result<()>
    where
        F: FnOnce(&mut GroupFront, u64) -> io::Result<(Option<Record>, u64, u64)>,
    {
        let tx = self.core.sender().ok_or_else(|| closed(self.group))?;
        let permit = tx.reserve().await.map_err(|_| closed(self.group))?;
        let mut front = self.core.lock_front();
        let seq = front.take_seq();
        let (record, bytes_max, entries_count) = prepare(front.group(self.group), seq)?;
        permit.send(Req {
            seq,
            record,
            bytes_max,
            entries_count,
            done,
        });
        drop(front);
        if self.core.signal_queued {
            self.core.queued.notify_one();
        }
        Ok(())
    }

    /// Queues a write and waits until it is durable.
    async fn enqueue_and_wait<F>(&self, prepare: F) -> io::Result<()>
    where
        F: FnOnce(&mut GroupFront, u64) -> io::Result<(Option<Record>, u64, u64)>,
    {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Done::Reply(tx), prepare).await?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(io::Error::other(format!(
                "log of group {}: {reason}",
                self.group
            ))),
            Err(_) => Err(closed(self.group)),
        }
    }

    /// `barrier` returns once every write queued before it is durable.
    pub async fn barrier(&self) -> io::Result<()> {
        self.enqueue_and_wait(|_, _| Ok((None, 0, 0))).await
    }

    fn bad_entry(&self, index: u64, reason: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            LogError::BadEntry {
                group: self.group,
                index,
                reason,
            },
        )
    }

    /// Reads `[lo, hi)` of the WAL and decodes it.
    fn read_wal(&self, lo: u64, hi: u64) -> io::Result<Vec<Entry>> {
        self.core.counters.wal_reads.fetch_add(1, Ordering::Relaxed);
        let stored = {
            let wal = self.core.lock_wal();
            wal.entries(self.group, LogIndex(lo)..LogIndex(hi))
        }
        .map_err(|e| {
            io::Error::other(format!(
                "log of group {}: reading [{lo}, {hi}): {e}",
                self.group
            ))
        })?;
        let mut out = Vec::with_capacity(stored.len());
        for (want, s) in (lo..).zip(&stored) {
            if s.index.0 != want {
                return Err(self.bad_entry(
                    want,
                    format!("the WAL returned index {} instead", s.index.0),
                ));
            }
            out.push(decode_checked(self.group, s).map_err(|r| self.bad_entry(want, r))?);
        }
        Ok(out)
    }
}

impl RaftLogReader<TypeConfig> for GroupLogStore {
    /// `try_get_log_entries` returns the present entries in `range`, in
    /// index order (fewer, or none, where the range leaves the log).
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (lo, hi) = bounds(&range);
        // Clamp to the present entries and take the cached part in one
        // short hold of the front lock; the older part comes from the WAL.
        let (lo, cache_first, mut tail) = {
            let mut front = self.core.lock_front();
            let g = front.group(self.group);
            let Some(last) = g.last else {
                return Ok(Vec::new());
            };
            let lo = lo.max(g.first);
            let hi = hi.min(last.index.saturating_add(1));
            if lo >= hi {
                return Ok(Vec::new());
            }
            let cache_first = g.cache_first();
            let tail: Vec<Entry> = g
                .cache
                .iter()
                .map(|c| &c.entry)
                .filter(|e| e.log_id.index >= lo && e.log_id.index < hi)
                .cloned()
                .collect();
            (lo, cache_first.min(hi), tail)
        };
        if lo >= cache_first {
            return Ok(tail);
        }
        let mut head = self.read_wal(lo, cache_first)?;
        let want = cache_first - lo;
        if head.len() as u64 != want {
            return Err(io::Error::other(format!(
                "log of group {}: read [{lo}, {cache_first}) found {} entries; the log changed during the read",
                self.group,
                head.len()
            )));
        }
        head.append(&mut tail);
        Ok(head)
    }

    /// `read_vote` is the last vote saved (durably) by `save_vote`.
    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.core.lock_front().group(self.group).vote)
    }
}

impl RaftLogStorage<TypeConfig> for GroupLogStore {
    type LogReader = GroupLogStore;

    /// `get_log_state`: the last purged log id and the last log id (the
    /// last present entry, or the last purged id if there is none),
    /// including writes still queued.
    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let mut front = self.core.lock_front();
        let g = front.group(self.group);
        Ok(LogState {
            last_purged_log_id: g.purged,
            last_log_id: g.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    /// `save_vote` returns once the vote, and every write of any group
    /// queued before it, is durable.
    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let record = Record::Vote {
            group: self.group,
            vote: vote_to_wal(vote),
        };
        self.enqueue_and_wait(|_, _| Ok((Some(record), RECORD_OVERHEAD_BYTES_MAX, 0)))
            .await?;
        // The front's vote changes only once durable: `read_vote` never
        // reports a vote a crash could take back.
        self.core.lock_front().group(self.group).vote = Some(*vote);
        Ok(())
    }

    /// `save_committed` queues a commit record; the next durable write
    /// covers it. `None` (nothing committed yet) writes nothing.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let Some(c) = committed else {
            return Ok(());
        };
        let group = self.group;
        let done = Done::Nothing {
            what: "save_committed",
            group,
        };
        self.enqueue(done, |g, _| {
            g.committed = Some(c);
            let record = Record::Commit {
                group,
                committed: log_id_to_wal(&c),
            };
            Ok((Some(record), RECORD_OVERHEAD_BYTES_MAX, 0))
        })
        .await
    }

    /// `read_committed` is the last committed log id saved.
    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.core.lock_front().group(self.group).committed)
    }

    /// `append` queues the entries (readable when it returns) and calls
    /// `callback` from the driver after the fdatasync covering them. The
    /// entries must continue the log: the first index is the last entry's
    /// index + 1 (or the last purged index + 1 when the log is empty).
    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let group = self.group;
        // Encode outside the lock.
        let encoded: Vec<(Entry, Vec<u8>)> = entries
            .into_iter()
            .map(|e| {
                let bytes = encode_entry(&e);
                (e, bytes)
            })
            .collect();
        let appended: usize = encoded.iter().map(|(_, b)| b.len()).sum();
        self.appended_bytes
            .fetch_add(appended as u64, std::sync::atomic::Ordering::Relaxed);
        if encoded.is_empty() {
            // Nothing to write, but the callback still waits for every
            // earlier write (openraft's I/O order).
            return self
                .enqueue(Done::Flushed(callback), |_, _| Ok((None, 0, 0)))
                .await;
        }
        let prepare = move |g: &mut GroupFront, seq: u64| {
            let mut next = g.next_index();
            let mut bytes_max = RECORD_OVERHEAD_BYTES_MAX;
            let mut wal_entries = Vec::with_capacity(encoded.len());
            let mut cached = Vec::with_capacity(encoded.len());
            for (e, payload) in encoded {
                let index = e.log_id.index;
                if next.is_some_and(|n| n != index) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "log of group {group}: append at index {index}, but the next index is {}",
                            next.map_or_else(String::new, |n| n.to_string())
                        ),
                    ));
                }
                next = Some(index + 1);
                let len = payload.len() as u64;
                bytes_max += ENTRY_OVERHEAD_BYTES + len;
                wal_entries.push(raftwatch_wal::Entry {
                    index: LogIndex(index),
                    term: Term(e.log_id.leader_id.term),
                    payload,
                });
                cached.push((e, len));
            }
            let count = cached.len() as u64;
            g.push(cached, seq);
            let record = Record::Entries {
                group,
                entries: wal_entries,
            };
            Ok((Some(record), bytes_max, count))
        };
        self.enqueue(Done::Flushed(callback), prepare).await
    }

    /// `truncate_after` deletes the entries after `last_log_id`
    /// (exclusive; `None` deletes all). Durable with the next write.
    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let group = self.group;
        let from = last_log_id.map_or(0, |l| l.index + 1);
        let done = Done::Nothing {
            what: "truncate_after",
            group,
        };
        self.enqueue(done, |g, _| {
            if g.last.is_none_or(|l| l.index < from) {
                // Nothing to delete: write nothing (a barrier keeps order).
                return Ok((None, 0, 0));
            }
            g.truncate_after(last_log_id);
            let record = Record::Truncate {
                group,
                from_index: LogIndex(from),
            };
            Ok((Some(record), RECORD_OVERHEAD_BYTES_MAX, 0))
        })
        .await
    }

    /// `purge` deletes the entries up to `log_id` (inclusive) and records
    /// it as the last purged log id; it must not move backwards. Durable
    /// with the next write.
    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let group = self.group;
        let done = Done::Nothing {
            what: "purge",
            group,
        };
        self.enqueue(done, |g, _| {
            if let Some(p) = g.purged
                && p.index > log_id.index
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("log of group {group}: purge up to {log_id} moves back from {p}"),
                ));
            }
            g.purge(log_id);
            let record = Record::Purge {
                group,
                up_to: log_id_to_wal(&log_id),
            };
            Ok((Some(record), RECORD_OVERHEAD_BYTES_MAX, 0))
        })
        .await
    }
}
