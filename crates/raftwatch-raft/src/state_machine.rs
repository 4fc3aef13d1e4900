//! State machines plug into a group through [`GroupStateMachine`];
//! [`SmAdapter`] is openraft's `RaftStateMachine` around one, with snapshots
//! kept durable in a [`SnapshotStore`].
//!
//! Architecture invariant: `apply` is a pure function of (state, entry):
//! implementations read no clock and no randomness; whatever they need
//! (timestamps, ids) the leader put into the command.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use prost::Message;
use raftwatch_proto::v1 as pb;
use tokio::sync::Mutex;

use crate::convert;
use crate::types::{
    GroupId, LogId, Response, Snapshot, SnapshotData, SnapshotMeta, StoredMembership,
};

/// `GroupStateMachine` is the application state of one Raft group.
pub trait GroupStateMachine: Send + Sync + 'static {
    /// `apply` executes the committed command at log `index` and returns the
    /// response for the proposer. Deterministic: the same state and command
    /// always give the same new state and response.
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8>;
    /// `query` answers a read-only request against the current state.
    fn query(&self, request: &[u8]) -> Vec<u8>;
    /// `snapshot` serialises the whole state. An error (e.g. the state's
    /// store could not be read) fails the snapshot; nothing is purged.
    fn snapshot(&self) -> Result<Vec<u8>, String>;
    /// `restore` replaces the whole state with a snapshot's. On error the
    /// state must be unchanged.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String>;
}

/// `SnapshotStore` keeps a group's latest snapshot durable, so a restarted
/// node can restore it and replay only the log after it.
pub trait SnapshotStore: Send + Sync + 'static {
    /// `save` durably replaces the stored snapshot.
    fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()>;
    /// `load` returns the stored snapshot, if any.
    fn load(&self) -> io::Result<Option<(SnapshotMeta, Vec<u8>)>>;
}

/// `FsSnapshotStore` stores one file per group,
/// `<dir>/group-<id>.snapshot`: `b"RWSN" | version u8 | u32 LE header_len |
/// header (protobuf SnapshotHeader) | data | crc32c u32 LE` over everything
/// before it. Written to a temporary file, fsynced, renamed, and the
/// directory fsynced.
#[derive(Debug, Clone)]
pub struct FsSnapshotStore {
    path: PathBuf,
}

const SNAPSHOT_MAGIC: &[u8; 4] = b"RWSN";
const SNAPSHOT_VERSION: u8 = 1;

impl FsSnapshotStore {
    /// `new` stores group `group`'s snapshot under `dir` (created if needed).
    pub fn new(dir: &Path, group: GroupId) -> io::Result<FsSnapshotStore> {
        std::fs::create_dir_all(dir)?;
        Ok(FsSnapshotStore {
            path: dir.join(format!("group-{}.snapshot", group.0)),
        })
    }
}

fn encode_snapshot_file(meta: &SnapshotMeta, data: &[u8]) -> Vec<u8> {
    let header = pb::SnapshotHeader {
        group_id: 0,
        vote: None,
        last_log_id: meta.last_log_id.as_ref().map(convert::log_id_to_proto),
        last_membership: Some(convert::stored_membership_to_proto(&meta.last_membership)),
        snapshot_id: String::new(),
        size_bytes: data.len() as u64,
    };
    let header = header.encode_to_vec();
    let mut out = Vec::with_capacity(data.len() + header.len() + 13);
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.push(SNAPSHOT_VERSION);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    let crc = crc32c_of(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn decode_snapshot_file(path: &Path, bytes: &[u8]) -> io::Result<(SnapshotMeta, Vec<u8>)> {
    let bad = |reason: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("snapshot file {}: {reason}", path.display()),
        )
    };
    if bytes.len() < 13 || &bytes[..4] != SNAPSHOT_MAGIC {
        return Err(bad("bad magic or too short"));
    }
    if bytes[4] != SNAPSHOT_VERSION {
        return Err(bad("unsupported version"));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    if crc32c_of(body) != stored {
        return Err(bad("checksum mismatch"));
    }
    let header_len = u32::from_le_bytes([body[5], body[6], body[7], body[8]]) as usize;
    let header_end = 9usize
        .checked_add(header_len)
        .filter(|&e| e <= body.len())
        .ok_or_else(|| bad("header overruns file"))?;
    let header =
        pb::SnapshotHeader::decode(&body[9..header_end]).map_err(|e| bad(&e.to_string()))?;
    let data = body[header_end..].to_vec();
    if data.len() as u64 != header.size_bytes {
        return Err(bad("data length does not match header"));
    }
    let last_log_id = header
        .last_log_id
        .map(convert::log_id_from_proto)
        .transpose()
        .map_err(|e| bad(&e.to_string()))?;
    let last_membership = convert::stored_membership_from_proto(
        header.last_membership.ok_or_else(|| bad("no membership"))?,
    )
    .map_err(|e| bad(&e.to_string()))?;
    Ok((
        SnapshotMeta {
            last_log_id,
            last_membership,
        },
        data,
    ))
}

fn crc32c_of(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

impl SnapshotStore for FsSnapshotStore {
    fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let tmp = self.path.with_extension("snapshot.tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&encode_snapshot_file(meta, data))?;
            f.sync_data()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    fn load(&self) -> io::Result<Option<(SnapshotMeta, Vec<u8>)>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => decode_snapshot_file(&self.path, &bytes).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// `MemSnapshotStore` keeps the snapshot in memory (tests, simulator); a
/// clone shares the same slot, so it survives a simulated restart.
#[derive(Debug, Clone, Default)]
pub struct MemSnapshotStore {
    slot: Arc<std::sync::Mutex<Option<Vec<u8>>>>,
}

impl SnapshotStore for MemSnapshotStore {
    fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        let bytes = encode_snapshot_file(meta, data);
        *self
            .slot
            .lock()
            .map_err(|_| io::Error::other("poisoned snapshot slot"))? = Some(bytes);
        Ok(())
    }

    fn load(&self) -> io::Result<Option<(SnapshotMeta, Vec<u8>)>> {
        let guard = self
            .slot
            .lock()
            .map_err(|_| io::Error::other("poisoned snapshot slot"))?;
        match guard.as_deref() {
            Some(bytes) => decode_snapshot_file(Path::new("<memory>"), bytes).map(Some),
            None => Ok(None),
        }
    }
}

/// What the adapter keeps beside the application state.
pub(crate) struct SmInner {
    pub(crate) sm: Box<dyn GroupStateMachine>,
    pub(crate) last_applied: Option<LogId>,
    pub(crate) last_membership: StoredMembership,
    pub(crate) current: Option<(SnapshotMeta, SnapshotData)>,
}

/// `SmAdapter` is openraft's state machine around a [`GroupStateMachine`].
/// Clones share the state: the host keeps one for local reads.
#[derive(Clone)]
pub struct SmAdapter {
    pub(crate) inner: Arc<Mutex<SmInner>>,
    store: Arc<dyn SnapshotStore>,
}

impl std::fmt::Debug for SmAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmAdapter")
    }
}

impl SmAdapter {
    /// `new` wraps `sm`, first restoring the stored snapshot if there is
    /// one (openraft then replays only the log after it).
    pub fn new(
        mut sm: Box<dyn GroupStateMachine>,
        store: Arc<dyn SnapshotStore>,
    ) -> io::Result<SmAdapter> {
        let mut last_applied = None;
        let mut last_membership = StoredMembership::default();
        let mut current = None;
        if let Some((meta, data)) = store.load()? {
            sm.restore(&data).map_err(io::Error::other)?;
            last_applied = meta.last_log_id;
            last_membership = meta.last_membership.clone();
            current = Some((meta, data));
        }
        Ok(SmAdapter {
            inner: Arc::new(Mutex::new(SmInner {
                sm,
                last_applied,
                last_membership,
                current,
            })),
            store,
        })
    }

    /// `query` runs a read-only request against the local state, returning
    /// the answer and the log id it reflects.
    pub async fn query(&self, request: &[u8]) -> (Vec<u8>, Option<LogId>) {
        let inner = self.inner.lock().await;
        (inner.sm.query(request), inner.last_applied)
    }

    /// `query_blocking` is [`SmAdapter::query`] run on tokio's blocking
    /// pool ([`crate::rt::spawn_blocking`]): a shard's PromQL evaluation
    /// takes milliseconds, and run inline it would hold a runtime worker
    /// thread and serialize every shard of one query on it (the shard reads
    /// of a query are joined in one task). Starts real threads, so the
    /// simulator never calls it. `Err` only if the query panicked.
    pub async fn query_blocking(
        &self,
        request: Vec<u8>,
    ) -> Result<(Vec<u8>, Option<LogId>), String> {
        let inner = self.inner.clone().lock_owned().await;
        crate::rt::spawn_blocking(move || (inner.sm.query(&request), inner.last_applied))
            .await
            .map_err(|e| format!("the state machine's query failed: {e}"))
    }
}

impl RaftSnapshotBuilder<crate::types::TypeConfig> for SmAdapter {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let mut inner = self.inner.lock().await;
        let data = inner.sm.snapshot().map_err(io::Error::other)?;
        let meta = SnapshotMeta {
            last_log_id: inner.last_applied,
            last_membership: inner.last_membership.clone(),
        };
        // Durable before openraft may purge the log it covers.
        self.store.save(&meta, &data)?;
        inner.current = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}

impl RaftStateMachine<crate::types::TypeConfig> for SmAdapter {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SmAdapter;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let inner = self.inner.lock().await;
        Ok((inner.last_applied, inner.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<crate::types::TypeConfig>, io::Error>>
            + Unpin
            + OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        while let Some((entry, responder)) = entries.try_next().await? {
            inner.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(request) => inner.sm.apply(entry.log_id.index, &request.0),
                EntryPayload::Membership(m) => {
                    inner.last_membership = StoredMembership::new(Some(entry.log_id), m);
                    Vec::new()
                }
            };
            if let Some(r) = responder {
                r.send(Response(response));
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let mut inner = self.inner.lock().await;
        inner.sm.restore(&snapshot).map_err(io::Error::other)?;
        self.store.save(meta, &snapshot)?;
        inner.last_applied = meta.last_log_id;
        inner.last_membership = meta.last_membership.clone();
        inner.current = Some((meta.clone(), snapshot));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let inner = self.inner.lock().await;
        Ok(inner.current.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: data.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn meta() -> SnapshotMeta {
        let nodes: BTreeMap<u64, crate::types::NodeAddr> = (1u64..=3)
            .map(|id| {
                (
                    id,
                    crate::types::NodeAddr {
                        grpc_addr: format!("127.0.0.1:{id}"),
                    },
                )
            })
            .collect();
        let membership =
            openraft::Membership::new(vec![BTreeSet::from([1u64, 2, 3])], nodes).unwrap();
        let log_id = LogId::new(
            openraft::impls::leader_id_adv::LeaderId {
                term: 3,
                node_id: 1,
            },
            42,
        );
        SnapshotMeta {
            last_log_id: Some(log_id),
            last_membership: StoredMembership::new(Some(log_id), membership),
        }
    }

    #[test]
    fn snapshot_files_round_trip_and_refuse_damage() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsSnapshotStore::new(dir.path(), GroupId(7)).unwrap();
        assert!(store.load().unwrap().is_none());
        store.save(&meta(), b"state bytes").unwrap();
        let (m, data) = store.load().unwrap().unwrap();
        assert_eq!(m, meta());
        assert_eq!(data, b"state bytes");

        let path = dir.path().join("group-7.snapshot");
        let good = std::fs::read(&path).unwrap();
        for i in [0, 4, 6, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            let err = store.load().unwrap_err();
            assert!(err.to_string().contains("group-7.snapshot"), "{err}");
        }
        std::fs::write(&path, &good[..good.len() - 3]).unwrap();
        assert!(store.load().is_err());
    }
}
