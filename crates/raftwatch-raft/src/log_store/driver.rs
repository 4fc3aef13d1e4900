//! The driver: takes queued requests, submits them to the WAL, flushes once
//! per batch (group commit) and completes each request's callback after the
//! `fdatasync` that covers it.
//!
//! How it runs is a [`FlushMode`]:
//! - [`FlushMode::Thread`]: a dedicated OS thread (spawned through
//!   [`crate::rt::spawn_thread`]) blocks on the queue, so a slow fdatasync
//!   never stalls an async worker. Everything queued while one flush is in
//!   progress goes into the next one.
//! - [`FlushMode::Manual`]: no thread. Whoever owns the log calls
//!   [`super::SharedLog::flush_now`], which processes what is queued, in the
//!   calling task. This is the seam for the deterministic simulator (flush
//!   from a simulated task, crash the `MemDisk` between flushes) and for
//!   tests that decide exactly which requests become durable.
//!
//! Both run the same [`process`]: submit in queue order, one
//! `flush_pending`, callbacks in order.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use openraft::storage::IOFlushed;
use raftwatch_wal::{
    Disk, Entry as WalEntry, FlushReport, GroupId, LogIndex, OnDurable, Record, Ticket, Wal,
    WalError, WalStats,
};
use tokio::sync::{mpsc, oneshot};

use super::front::Front;
use crate::types::TypeConfig;

/// `REQUEST_QUEUE_CAPACITY` bounds the requests queued for the driver;
/// writers wait for room (backpressure) rather than grow memory.
pub const REQUEST_QUEUE_CAPACITY: usize = 4096;

/// `FlushMode` says who calls the WAL's flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FlushMode {
    /// `Thread`: a dedicated OS thread flushes whenever requests are queued
    /// (production).
    #[default]
    Thread,
    /// `Manual`: nothing flushes until [`super::SharedLog::flush_now`] is
    /// called (deterministic simulation, crash tests).
    Manual,
}

/// `Backend` is the part of [`Wal`] the driver and readers use, object-safe
/// so that [`super::SharedLog`] does not carry the disk type.
pub(super) trait Backend: Send {
    fn submit(&mut self, record: Record) -> Result<Ticket, WalError>;
    fn append(&mut self, records: Vec<Record>, on_durable: OnDurable) -> Result<Ticket, WalError>;
    fn flush_pending(&mut self) -> Result<FlushReport, WalError>;
    fn pending_bytes(&self) -> u64;
    fn entries(&self, group: GroupId, range: Range<LogIndex>) -> Result<Vec<WalEntry>, WalError>;
    fn stats(&self) -> WalStats;
}

impl<D: Disk + 'static> Backend for Wal<D> {
    fn submit(&mut self, record: Record) -> Result<Ticket, WalError> {
        Wal::submit(self, record)
    }
    fn append(&mut self, records: Vec<Record>, on_durable: OnDurable) -> Result<Ticket, WalError> {
        Wal::append(self, records, on_durable)
    }
    fn flush_pending(&mut self) -> Result<FlushReport, WalError> {
        Wal::flush_pending(self)
    }
    fn pending_bytes(&self) -> u64 {
        Wal::pending_bytes(self)
    }
    fn entries(&self, group: GroupId, range: Range<LogIndex>) -> Result<Vec<WalEntry>, WalError> {
        Wal::entries(self, group, range)
    }
    fn stats(&self) -> WalStats {
        Wal::stats(self)
    }
}

/// `Done` is what to do once a request is durable (or has failed).
pub(super) enum Done {
    /// openraft's append callback.
    Flushed(IOFlushed<TypeConfig>),
    /// A waiting writer (`save_vote`, `purge_group`, barriers).
    Reply(oneshot::Sender<Result<(), String>>),
    /// Nobody waits (truncate, purge, commit: their durability is implied
    /// by the next append or vote, which the WAL orders after them).
    Nothing { what: &'static str, group: GroupId },
}

impl Done {
    fn complete(self, result: Result<(), String>) {
        match self {
            Done::Flushed(cb) => cb.io_completed(result.map_err(std::io::Error::other)),
            Done::Reply(tx) => {
                // The writer may have given up waiting; nothing to do then.
                let _ = tx.send(result);
            }
            Done::Nothing { what, group } => {
                if let Err(reason) = result {
                    tracing::error!(%group, what, %reason, "log write failed");
                }
            }
        }
    }
}

/// `DoneGuard` completes its request exactly once: with the WAL's result,
/// or with an error if the WAL drops the callback without calling it.
struct DoneGuard(Option<Done>);

impl DoneGuard {
    fn finish(mut self, result: Result<(), WalError>) {
        if let Some(d) = self.0.take() {
            d.complete(result.map_err(|e| e.to_string()));
        }
    }
}

impl Drop for DoneGuard {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            d.complete(Err(
                "the log dropped the request before it was durable".to_string()
            ));
        }
    }
}

/// `Req` is one queued write: at most one WAL record and its completion.
pub(super) struct Req {
    pub(super) seq: u64,
    /// `None` for a barrier (durable once everything before it is).
    pub(super) record: Option<Record>,
    /// Upper bound of the record's encoded size, header of a new segment
    /// included, for the WAL's pending-bytes limit.
    pub(super) bytes_max: u64,
    pub(super) entries_count: u64,
    pub(super) done: Done,
}

/// `Counters` are the driver's statistics, readable without any lock.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) syncs: AtomicU64,
    pub(super) flushes: AtomicU64,
    pub(super) records: AtomicU64,
    pub(super) bytes_written: AtomicU64,
    pub(super) entries_appended: AtomicU64,
    pub(super) batches: AtomicU64,
    pub(super) requests: AtomicU64,
    pub(super) wal_reads: AtomicU64,
}

impl Counters {
    /// `store_wal` copies the WAL's cumulative counters.
    pub(super) fn store_wal(&self, s: &WalStats) {
        self.syncs.store(s.syncs_count, Ordering::Relaxed);
        self.flushes.store(s.flushes_count, Ordering::Relaxed);
        self.records.store(s.records_count, Ordering::Relaxed);
        self.bytes_written.store(s.bytes_written, Ordering::Relaxed);
    }
}

/// `Core` is what the driver and every store share.
pub(super) struct Core {
    /// The WAL. The driver holds this lock while it writes and syncs, so
    /// only reads of entries older than a group's tail cache wait on it.
    pub(super) wal: Mutex<Box<dyn Backend>>,
    /// The front; never held during I/O, never held while taking `wal`.
    pub(super) front: Mutex<Front>,
    pub(super) counters: Counters,
    pub(super) pending_bytes_max: u64,
    /// The queue's sending side; `None` once the log is closed. The driver
    /// holds a `Core` too, so the queue must be closed explicitly (by
    /// dropping the [`super::SharedLog`]) for the thread to end.
    pub(super) tx: Mutex<Option<mpsc::Sender<Req>>>,
    /// Signalled after every enqueue, so that a flusher task driving a
    /// [`FlushMode::Manual`] log sleeps until there is work.
    pub(super) queued: tokio::sync::Notify,
    /// Whether anything waits on `queued` (manual mode only: the driver
    /// thread reads the queue itself, so the write path skips the signal).
    pub(super) signal_queued: bool,
}

impl Core {
    pub(super) fn lock_wal(&self) -> std::sync::MutexGuard<'_, Box<dyn Backend>> {
        // A panic while holding the lock is a bug that already failed a
        // request; the WAL poisons itself on I/O errors, so keep serving.
        self.wal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn sender(&self) -> Option<mpsc::Sender<Req>> {
        self.tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn lock_front(&self) -> std::sync::MutexGuard<'_, Front> {
        self.front.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `process` submits `batch` in order, flushes once and completes every
/// callback (inside the flush, in submission order). Then it lets the
/// front evict what the WAL now holds.
pub(super) fn process(core: &Core, batch: Vec<Req>) {
    let Some(last_seq) = batch.last().map(|r| r.seq) else {
        return;
    };
    let requests = batch.len() as u64;
    let mut entries = 0u64;
    {
        let mut wal = core.lock_wal();
        for req in batch {
            entries += req.entries_count;
            if let Some(record) = req.record {
                // Stay under the WAL's pending limit: flush early rather
                // than have the submission refused.
                let pending = wal.pending_bytes();
                if pending > 0 && pending + req.bytes_max > core.pending_bytes_max {
                    // Errors poison the WAL and fail its queued callbacks;
                    // the submit below then fails this request too.
                    let _ = wal.flush_pending();
                }
                if let Err(e) = wal.submit(record) {
                    req.done.complete(Err(e.to_string()));
                    continue;
                }
            }
            let guard = DoneGuard(Some(req.done));
            // An empty append registers the callback behind everything
            // queued so far; if it fails, the guard reports the failure.
            let _ = wal.append(Vec::new(), Box::new(move |r| guard.finish(r)));
        }
        // Count before the flush: it fires the callbacks, and whoever a
        // callback wakes may read these counters at once.
        let c = &core.counters;
        c.entries_appended.fetch_add(entries, Ordering::Relaxed);
        c.batches.fetch_add(1, Ordering::Relaxed);
        c.requests.fetch_add(requests, Ordering::Relaxed);
        if let Err(e) = wal.flush_pending() {
            tracing::error!(error = %e, "log flush failed; the log is poisoned until the node restarts");
        }
        core.counters.store_wal(&wal.stats());
    }
    core.lock_front().evict(last_seq);
}

/// `drain` takes everything queued now (at most the queue's capacity).
pub(super) fn drain(rx: &mut mpsc::Receiver<Req>, first: Option<Req>) -> Vec<Req> {
    let mut batch: Vec<Req> = first.into_iter().collect();
    while batch.len() < REQUEST_QUEUE_CAPACITY {
        match rx.try_recv() {
            Ok(r) => batch.push(r),
            Err(_) => break,
        }
    }
    batch
}

/// `run_thread` is the body of the [`FlushMode::Thread`] driver. It ends
/// once the queue is closed (the [`super::SharedLog`] dropped) and empty.
pub(super) fn run_thread(core: Arc<Core>, mut rx: mpsc::Receiver<Req>) {
    while let Some(first) = rx.blocking_recv() {
        let batch = drain(&mut rx, Some(first));
        process(&core, batch);
    }
}
