//! The shared log store: openraft's storage conformance suite over the
//! in-memory and the real disk, group commit, crash recovery and restart.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::impls::leader_id_adv::LeaderId;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::{EntryPayload, RaftLogReader, StorageError};
use raftwatch_raft::GroupStateMachine;
use raftwatch_raft::log_store::{FlushMode, GroupLogStore, SharedLog};
use raftwatch_raft::state_machine::{MemSnapshotStore, SmAdapter};
use raftwatch_raft::types::{Entry, GroupId, LogId, Request, TypeConfig, Vote};
use raftwatch_wal::{MemDisk, WalConfig};

// ------------------------------------------------ the state machine

/// The suite also exercises a state machine: it runs on our real adapter
/// (`SmAdapter`, with an in-memory snapshot store) around a counter.
#[derive(Default)]
struct Counter {
    applied: u64,
}

impl GroupStateMachine for Counter {
    fn apply(&mut self, _index: u64, _command: &[u8]) -> Vec<u8> {
        self.applied += 1;
        Vec::new()
    }
    fn query(&self, _request: &[u8]) -> Vec<u8> {
        self.applied.to_le_bytes().to_vec()
    }
    fn snapshot(&self) -> Result<Vec<u8>, String> {
        Ok(self.applied.to_le_bytes().to_vec())
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let b: [u8; 8] = snapshot
            .try_into()
            .map_err(|_| "bad test snapshot".to_string())?;
        self.applied = u64::from_le_bytes(b);
        Ok(())
    }
}

fn state_machine() -> SmAdapter {
    SmAdapter::new(
        Box::<Counter>::default(),
        Arc::new(MemSnapshotStore::default()),
    )
    .unwrap()
}

// ------------------------------------------------ conformance suite

const GROUP: GroupId = GroupId(7);

struct MemBuilder;

impl StoreBuilder<TypeConfig, GroupLogStore, SmAdapter, SharedLog> for MemBuilder {
    async fn build(
        &self,
    ) -> Result<(SharedLog, GroupLogStore, SmAdapter), StorageError<TypeConfig>> {
        let (log, _) =
            SharedLog::open_mem(MemDisk::new(), WalConfig::default(), FlushMode::Thread).unwrap();
        let store = log.group_store(GROUP);
        Ok((log, store, state_machine()))
    }
}

/// Keeps the temporary directory alive for as long as the test's log.
struct FsGuard {
    _log: SharedLog,
    _dir: tempfile::TempDir,
}

struct FsBuilder;

impl StoreBuilder<TypeConfig, GroupLogStore, SmAdapter, FsGuard> for FsBuilder {
    async fn build(&self) -> Result<(FsGuard, GroupLogStore, SmAdapter), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = SharedLog::open_fs(dir.path(), WalConfig::default()).unwrap();
        let store = log.group_store(GROUP);
        Ok((
            FsGuard {
                _log: log,
                _dir: dir,
            },
            store,
            state_machine(),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_passes_on_mem_disk() {
    raftwatch_raft::rt::scope(1, Suite::test_all(MemBuilder))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_passes_on_fs_disk() {
    raftwatch_raft::rt::scope(2, Suite::test_all(FsBuilder))
        .await
        .unwrap();
}

// ------------------------------------------------ helpers

fn log_id(term: u64, leader: u64, index: u64) -> LogId {
    LogId::new(
        LeaderId {
            term,
            node_id: leader,
        },
        index,
    )
}

fn entry(group: u64, term: u64, index: u64, size: usize) -> Entry {
    let mut bytes = format!("g{group}-i{index}-").into_bytes();
    bytes.resize(size.max(bytes.len()), (index % 251) as u8);
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(Request(bytes)),
    }
}

fn vote(term: u64, node: u64, committed: bool) -> Vote {
    Vote {
        leader_id: LeaderId {
            term,
            node_id: node,
        },
        committed,
    }
}

type Fired = tokio::sync::oneshot::Receiver<Result<(), io::Error>>;

/// Appends `entries` with a callback whose result the receiver yields.
async fn append(store: &mut GroupLogStore, entries: Vec<Entry>) -> Fired {
    let (tx, rx) = TypeConfig::oneshot();
    store.append(entries, IOFlushed::signal(tx)).await.unwrap();
    rx
}

/// Whether the callback behind `rx` has fired, and with `Ok`.
fn fired_ok(rx: &mut Fired) -> Option<bool> {
    match rx.try_recv() {
        Ok(r) => Some(r.is_ok()),
        Err(tokio::sync::oneshot::error::TryRecvError::Empty) => None,
        Err(tokio::sync::oneshot::error::TryRecvError::Closed) => Some(false),
    }
}

async fn read_all(store: &mut GroupLogStore) -> Vec<Entry> {
    store.try_get_log_entries(..).await.unwrap()
}

// ------------------------------------------------ group commit

/// Manual flushing makes it exact: appends from several groups, none
/// durable until the flush; one flush makes all durable with one fsync and
/// fires every callback; a crash right after loses nothing.
#[tokio::test]
async fn one_flush_makes_every_group_durable_with_one_fsync() {
    let disk = MemDisk::new();
    let (log, _) =
        SharedLog::open_mem(disk.clone(), WalConfig::default(), FlushMode::Manual).unwrap();
    let mut fired = Vec::new();
    let mut written: BTreeMap<u64, Vec<Entry>> = BTreeMap::new();
    for g in 1..=4u64 {
        let mut store = log.group_store(GroupId(g));
        for i in 1..=25u64 {
            let e = entry(g, 1, i, 100);
            written.entry(g).or_default().push(e.clone());
            fired.push(append(&mut store, vec![e]).await);
        }
        // Readable before durable.
        assert_eq!(read_all(&mut store).await, written[&g]);
    }
    assert!(fired.iter_mut().all(|rx| fired_ok(rx).is_none()));
    let before = log.stats();
    assert_eq!(log.flush_now(), 100);
    let after = log.stats();
    assert_eq!(after.fsyncs_count - before.fsyncs_count, 1);
    assert_eq!(after.entries_appended_count, 100);
    assert!(fired.iter_mut().all(|rx| fired_ok(rx) == Some(true)));

    disk.crash();
    drop(log);
    let (log, _) = SharedLog::open_mem(disk, WalConfig::default(), FlushMode::Manual).unwrap();
    for (g, entries) in &written {
        assert_eq!(&read_all(&mut log.group_store(GroupId(*g))).await, entries);
    }
}

/// With the driver thread and a real disk: 8 groups append concurrently,
/// each without waiting for its previous callback (as openraft does).
/// Every callback fires `Ok`, and batching needs far fewer fdatasyncs than
/// appends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_from_many_groups_share_fsyncs() {
    const GROUPS: u64 = 8;
    const APPENDS: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = SharedLog::open_fs(dir.path(), WalConfig::default()).unwrap();
    let log = Arc::new(log);
    let mut tasks = Vec::new();
    for g in 1..=GROUPS {
        let mut store = log.group_store(GroupId(g));
        tasks.push(raftwatch_raft::rt::spawn(g, async move {
            let mut fired = Vec::new();
            for i in 1..=APPENDS {
                fired.push(append(&mut store, vec![entry(g, 1, i, 1024)]).await);
            }
            for rx in fired {
                rx.await.unwrap().unwrap();
            }
            store.try_get_log_entries(..).await.unwrap().len() as u64
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), APPENDS);
    }
    let stats = log.stats();
    let appends = GROUPS * APPENDS;
    println!(
        "group commit: {appends} appends from {GROUPS} groups, {} fdatasyncs, {} batches, {} bytes",
        stats.fsyncs_count, stats.batches_count, stats.bytes_written
    );
    assert_eq!(stats.entries_appended_count, appends);
    assert!(
        stats.fsyncs_count < appends,
        "{} fsyncs for {appends} appends",
        stats.fsyncs_count
    );

    // Lock-step: each group waits for its append to be durable before the
    // next, so only appends from different groups can share a sync. How
    // many do depends on timing: printed, not asserted.
    let mut tasks = Vec::new();
    for g in 1..=GROUPS {
        let mut store = log.group_store(GroupId(g));
        tasks.push(raftwatch_raft::rt::spawn(g, async move {
            for i in APPENDS + 1..=APPENDS + 50 {
                let rx = append(&mut store, vec![entry(g, 1, i, 1024)]).await;
                rx.await.unwrap().unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let lockstep = log.stats();
    println!(
        "group commit, lock-step: {} appends from {GROUPS} groups, {} fdatasyncs",
        GROUPS * 50,
        lockstep.fsyncs_count - stats.fsyncs_count
    );
}

// ------------------------------------------------ crash

/// Appends and flushes interleaved, then a crash with writes still queued
/// and written-but-unsynced: every entry whose callback fired `Ok` comes
/// back with the same bytes, the vote is durable, nothing after the last
/// flush survives, and the recovered log accepts the next append.
#[tokio::test]
async fn a_crash_keeps_exactly_what_was_flushed() {
    let disk = MemDisk::new();
    let (log, _) =
        SharedLog::open_mem(disk.clone(), WalConfig::default(), FlushMode::Manual).unwrap();
    let mut a = log.group_store(GroupId(1));
    let mut b = log.group_store(GroupId(2));
    let mut acked: Vec<(GroupId, Entry, Fired)> = Vec::new();
    for i in 1..=30u64 {
        for (g, store) in [(1u64, &mut a), (2, &mut b)] {
            let e = entry(g, 2, i, 10 + (i as usize * 37) % 300);
            let rx = append(store, vec![e.clone()]).await;
            acked.push((GroupId(g), e, rx));
        }
        if i % 7 == 0 {
            log.flush_now();
        }
    }
    // save_vote waits for a flush: run it beside a manual flush.
    let v = vote(3, 2, true);
    let (saved, _) = tokio::join!(a.save_vote(&v), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        log.flush_now()
    });
    saved.unwrap();
    a.save_committed(Some(log_id(2, 1, 20))).await.unwrap();
    a.purge(log_id(2, 1, 3)).await.unwrap();
    log.flush_now();
    // Queued after the last flush: lost in the crash.
    let tail = append(&mut b, vec![entry(2, 2, 31, 50)]).await;
    b.truncate_after(Some(log_id(2, 1, 25))).await.unwrap();

    let mut durable: BTreeMap<GroupId, Vec<Entry>> = BTreeMap::new();
    for (g, e, mut rx) in acked {
        assert_eq!(fired_ok(&mut rx), Some(true), "{g} {}", e.log_id);
        durable.entry(g).or_default().push(e);
    }
    drop((a, b, tail));
    disk.crash();
    drop(log);

    let (log, report) = SharedLog::open_mem(disk, WalConfig::default(), FlushMode::Manual).unwrap();
    assert!(report.torn_tail.is_none());
    let mut a = log.group_store(GroupId(1));
    let mut b = log.group_store(GroupId(2));
    assert_eq!(a.read_vote().await.unwrap(), Some(v));
    assert_eq!(b.read_vote().await.unwrap(), None);
    assert_eq!(a.read_committed().await.unwrap(), Some(log_id(2, 1, 20)));
    let a_state = a.get_log_state().await.unwrap();
    assert_eq!(a_state.last_purged_log_id, Some(log_id(2, 1, 3)));
    assert_eq!(a_state.last_log_id, Some(log_id(2, 1, 30)));
    assert_eq!(read_all(&mut a).await, durable[&GroupId(1)][3..]);
    // The truncate and entry 31 were never flushed.
    assert_eq!(read_all(&mut b).await, durable[&GroupId(2)]);
    assert_eq!(
        b.get_log_state().await.unwrap().last_log_id,
        Some(log_id(2, 1, 30))
    );
    let rx = append(&mut b, vec![entry(2, 3, 31, 10)]).await;
    log.flush_now();
    rx.await.unwrap().unwrap();
}

// ------------------------------------------------ restart

/// Two groups written through the driver thread on a real directory; a
/// reopened log reads back the same entries (from the WAL, not a cache),
/// votes, commit and purge points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_a_directory_reads_back_both_groups() {
    let dir = tempfile::tempdir().unwrap();
    let mut expect: BTreeMap<u64, Vec<Entry>> = BTreeMap::new();
    {
        let (log, report) = SharedLog::open_fs(dir.path(), WalConfig::default()).unwrap();
        assert_eq!(report.records_count, 0);
        for g in [1u64, 2] {
            let mut s = log.group_store(GroupId(g));
            s.save_vote(&vote(1, g, false)).await.unwrap();
            s.save_vote(&vote(2, g, true)).await.unwrap();
            let batch: Vec<Entry> = (1..=40).map(|i| entry(g, 2, i, 64 * g as usize)).collect();
            let rx = append(&mut s, batch.clone()).await;
            rx.await.unwrap().unwrap();
            s.truncate_after(Some(log_id(2, 1, 35))).await.unwrap();
            let more: Vec<Entry> = (36..=45).map(|i| entry(g, 3, i, 32)).collect();
            let rx = append(&mut s, more.clone()).await;
            rx.await.unwrap().unwrap();
            s.save_committed(Some(log_id(3, 1, 44))).await.unwrap();
            if g == 2 {
                s.purge(log_id(2, 1, 10)).await.unwrap();
            }
            s.barrier().await.unwrap();
            let mut all: Vec<Entry> = batch.into_iter().take(35).chain(more).collect();
            if g == 2 {
                all.drain(..10);
            }
            assert_eq!(read_all(&mut s).await, all);
            expect.insert(g, all);
        }
        assert!(log.stats().fsyncs_count > 0);
    }
    let (log, report) = SharedLog::open_fs(dir.path(), WalConfig::default()).unwrap();
    assert!(report.torn_tail.is_none());
    assert_eq!(log.groups(), vec![GroupId(1), GroupId(2)]);
    for g in [1u64, 2] {
        let mut s = log.group_store(GroupId(g));
        assert_eq!(read_all(&mut s).await, expect[&g]);
        assert_eq!(s.read_vote().await.unwrap(), Some(vote(2, g, true)));
        assert_eq!(s.read_committed().await.unwrap(), Some(log_id(3, 1, 44)));
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id, Some(log_id(3, 1, 45)));
        let purged = (g == 2).then(|| log_id(2, 1, 10));
        assert_eq!(st.last_purged_log_id, purged);
        // A range read inside the log, served from the WAL.
        let mid = s.try_get_log_entries(20..=22).await.unwrap();
        assert_eq!(
            mid,
            expect[&g][(20 - expect[&g][0].log_id.index) as usize..][..3]
        );
    }
    assert!(log.stats().wal_reads_count > 0);
    // purge_group empties a group durably.
    log.purge_group(GroupId(1)).await.unwrap();
    let mut s = log.group_store(GroupId(1));
    assert!(read_all(&mut s).await.is_empty());
    let st = s.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id, Some(log_id(3, 1, 45)));
}
