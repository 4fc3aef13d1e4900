//! `MemDisk`: an in-memory directory with crash semantics.
//!
//! It models POSIX the way the log needs: a directory maps names to inodes;
//! each inode has the bytes every reader sees (`current`) and the bytes
//! that survive a crash (`durable`). `sync_data` copies the current bytes
//! to the durable ones; directory changes (`create`, `remove`, `rename`)
//! are durable at once, as the `Disk` contract promises. Everything is
//! deterministic: `BTreeMap`s only, no clock, and tearing draws from a
//! seeded [`DetRng`].

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use raftwatch_seams::DetRng;

use super::{Disk, DiskFile};

/// `MemDisk` is an in-memory [`Disk`] that can crash on demand.
///
/// Cloning gives another handle to the **same** directory; that is how a
/// test reopens the log after [`MemDisk::crash`]. Crash semantics:
/// - [`MemDisk::crash`] drops every byte not covered by a completed
///   `sync_data` of its file;
/// - [`MemDisk::crash_torn`] does the same, except that the file written
///   last keeps a random prefix (chosen by the seed) of the span it was
///   written over since its last sync (its appends, or its writes into
///   preallocated space): a torn write;
/// - file handles opened before a crash fail afterwards, like the handles
///   of a dead process.
#[derive(Clone, Default)]
pub struct MemDisk {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// The directory readers see.
    names: BTreeMap<String, u64>,
    /// The directory that survives a crash.
    durable_names: BTreeMap<String, u64>,
    inodes: BTreeMap<u64, Inode>,
    next_ino: u64,
    /// Bumped by every crash; handles from an older generation are dead.
    generation: u64,
    /// The inode of the most recent `append` not yet covered by a sync.
    last_unsynced: Option<u64>,
    fail_next_sync: bool,
}

#[derive(Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// `truncated`: a truncate below the durable length since the last
    /// sync. While it is false, `current` and `durable` differ only inside
    /// `dirty` (writes and growth are always inside it).
    truncated: bool,
    /// `dirty` spans every byte written since the last sync: from the
    /// lowest offset written to the highest end, `None` if nothing was.
    dirty: Option<(usize, usize)>,
}

impl Inode {
    fn mark_dirty(&mut self, start: usize, end: usize) {
        self.dirty = Some(match self.dirty {
            Some((s, e)) => (s.min(start), e.max(end)),
            None => (start, end),
        });
    }
}

impl fmt::Debug for MemDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemDisk")
            .field("files", &inner.names.keys().collect::<Vec<_>>())
            .field("generation", &inner.generation)
            .finish()
    }
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no such file: {name}"))
}

impl MemDisk {
    /// `new` is an empty directory.
    pub fn new() -> MemDisk {
        MemDisk::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; the
        // tests that panic are failing anyway, so keep going.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `crash` simulates power loss: every file keeps only the bytes its
    /// last successful `sync_data` covered; open handles die.
    pub fn crash(&self) {
        self.crash_inner(None);
    }

    /// `crash_torn` is [`MemDisk::crash`], except that the file written to
    /// last keeps its synced bytes with a prefix of the span written since
    /// its last sync laid over them, the prefix's length drawn from
    /// `DetRng::new(seed)` (possibly none, possibly all): a torn write.
    pub fn crash_torn(&self, seed: u64) {
        self.crash_inner(Some(seed));
    }

    fn crash_inner(&self, tear_seed: Option<u64>) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.names = inner.durable_names.clone();
        let torn = tear_seed.and(inner.last_unsynced);
        for (ino, node) in inner.inodes.iter_mut() {
            let dirty = node
                .dirty
                .map(|(s, e)| (s, e.min(node.current.len())))
                .filter(|(s, e)| s < e);
            match (tear_seed, dirty) {
                (Some(seed), Some((start, end))) if torn == Some(*ino) && !node.truncated => {
                    let keep = DetRng::new(seed).below((end - start) as u64 + 1) as usize;
                    let kept_end = start + keep;
                    let mut image = std::mem::take(&mut node.durable);
                    if image.len() < kept_end {
                        image.resize(kept_end, 0);
                    }
                    image[start..kept_end].copy_from_slice(&node.current[start..kept_end]);
                    node.current = image.clone();
                    node.durable = image;
                }
                _ => node.current = node.durable.clone(),
            }
            node.truncated = false;
            node.dirty = None;
        }
        let live: Vec<u64> = inner.names.values().copied().collect();
        inner.inodes.retain(|ino, _| live.contains(ino));
        inner.generation += 1;
        inner.last_unsynced = None;
        inner.fail_next_sync = false;
    }

    /// `fail_next_sync` arms a fault: the next `sync_data` on any file
    /// returns an I/O error and makes nothing durable. It fires once.
    pub fn fail_next_sync(&self) {
        self.lock().fail_next_sync = true;
    }

    /// `names` lists the files in the (current) directory, sorted.
    pub fn names(&self) -> Vec<String> {
        self.lock().names.keys().cloned().collect()
    }

    /// `file_bytes` is a copy of a file's current contents.
    pub fn file_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let inner = self.lock();
        let ino = inner.names.get(name)?;
        inner.inodes.get(ino).map(|n| n.current.clone())
    }

    /// `flip_byte` XORs the byte at `offset` of `name` with `mask`, in both
    /// the current and durable image (bit rot). Returns false if the file
    /// or offset does not exist.
    pub fn flip_byte(&self, name: &str, offset: u64, mask: u8) -> bool {
        let mut inner = self.lock();
        let Some(ino) = inner.names.get(name).copied() else {
            return false;
        };
        let Some(node) = inner.inodes.get_mut(&ino) else {
            return false;
        };
        let at = offset as usize;
        let mut hit = false;
        for image in [&mut node.current, &mut node.durable] {
            if let Some(b) = image.get_mut(at) {
                *b ^= mask;
                hit = true;
            }
        }
        hit
    }

    /// `replace_durably` sets a file's contents (creating it if needed),
    /// durably: for tests that craft damaged files.
    pub fn replace_durably(&self, name: &str, bytes: &[u8]) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let ino = match inner.names.get(name) {
            Some(ino) => *ino,
            None => {
                let ino = inner.next_ino;
                inner.next_ino += 1;
                inner.names.insert(name.to_string(), ino);
                inner.durable_names.insert(name.to_string(), ino);
                ino
            }
        };
        let node = inner.inodes.entry(ino).or_default();
        node.current = bytes.to_vec();
        node.durable = bytes.to_vec();
        node.truncated = false;
        node.dirty = None;
    }
}

impl Disk for MemDisk {
    type File = MemFile;

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.names())
    }

    fn create(&self, name: &str) -> io::Result<MemFile> {
        let mut inner = self.lock();
        if inner.names.contains_key(name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("file exists: {name}"),
            ));
        }
        let ino = inner.next_ino;
        inner.next_ino += 1;
        inner.inodes.insert(ino, Inode::default());
        inner.names.insert(name.to_string(), ino);
        inner.durable_names.insert(name.to_string(), ino);
        Ok(MemFile {
            disk: self.clone(),
            ino,
            generation: inner.generation,
        })
    }

    fn open(&self, name: &str) -> io::Result<MemFile> {
        let inner = self.lock();
        let ino = *inner.names.get(name).ok_or_else(|| not_found(name))?;
        Ok(MemFile {
            disk: self.clone(),
            ino,
            generation: inner.generation,
        })
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut inner = self.lock();
        let ino = inner.names.remove(name).ok_or_else(|| not_found(name))?;
        inner.durable_names.remove(name);
        if !inner.names.values().any(|&i| i == ino) {
            inner.inodes.remove(&ino);
        }
        if inner.last_unsynced == Some(ino) {
            inner.last_unsynced = None;
        }
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut inner = self.lock();
        let ino = inner.names.remove(from).ok_or_else(|| not_found(from))?;
        inner.durable_names.remove(from);
        if let Some(old) = inner.names.insert(to.to_string(), ino) {
            inner.inodes.remove(&old);
        }
        inner.durable_names.insert(to.to_string(), ino);
        Ok(())
    }

    fn describe(&self, name: &str) -> String {
        format!("mem:{name}")
    }
}

/// `MemFile` is an open file of a [`MemDisk`].
pub struct MemFile {
    disk: MemDisk,
    ino: u64,
    generation: u64,
}

impl fmt::Debug for MemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemFile(ino {}, gen {})", self.ino, self.generation)
    }
}

impl MemFile {
    fn with<T>(&self, f: impl FnOnce(&mut Inner, u64) -> io::Result<T>) -> io::Result<T> {
        let mut inner = self.disk.lock();
        if inner.generation != self.generation {
            return Err(io::Error::other("file handle from before a crash"));
        }
        if !inner.inodes.contains_key(&self.ino) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "file was removed"));
        }
        f(&mut inner, self.ino)
    }
}

fn inode(inner: &mut Inner, ino: u64) -> io::Result<&mut Inode> {
    inner
        .inodes
        .get_mut(&ino)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "file was removed"))
}

impl DiskFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        self.with(|inner, ino| Ok(inode(inner, ino)?.current.len() as u64))
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.with(|inner, ino| {
            let node = inode(inner, ino)?;
            let start = node.current.len();
            node.current.extend_from_slice(bytes);
            node.mark_dirty(start, node.current.len());
            inner.last_unsynced = Some(ino);
            Ok(())
        })
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.with(|inner, ino| {
            let node = inode(inner, ino)?;
            let start = usize::try_from(offset)
                .ok()
                .filter(|&o| o <= node.current.len())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "write past the end of the file",
                    )
                })?;
            let end = start + bytes.len();
            if node.current.len() < end {
                node.current.resize(end, 0);
            }
            node.current[start..end].copy_from_slice(bytes);
            node.mark_dirty(start, end);
            inner.last_unsynced = Some(ino);
            Ok(())
        })
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.with(|inner, ino| {
            let node = inode(inner, ino)?;
            let src = usize::try_from(offset)
                .ok()
                .and_then(|start| node.current.get(start..start.checked_add(buf.len())?))
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            buf.copy_from_slice(src);
            Ok(())
        })
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.with(|inner, ino| {
            if inner.fail_next_sync {
                inner.fail_next_sync = false;
                return Err(io::Error::other("injected sync failure"));
            }
            let node = inode(inner, ino)?;
            if node.truncated {
                node.durable = node.current.clone();
            } else {
                // Only the dirty span differs: copy it, not the file.
                node.durable.resize(node.current.len(), 0);
                if let Some((start, end)) = node.dirty {
                    let end = end.min(node.current.len());
                    if start < end {
                        node.durable[start..end].copy_from_slice(&node.current[start..end]);
                    }
                }
            }
            node.truncated = false;
            node.dirty = None;
            if inner.last_unsynced == Some(ino) {
                inner.last_unsynced = None;
            }
            Ok(())
        })
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.with(|inner, ino| {
            let node = inode(inner, ino)?;
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= node.current.len())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "truncate past end"))?;
            node.current.truncate(len);
            if len < node.durable.len() {
                node.truncated = true;
            }
            node.dirty = node
                .dirty
                .map(|(s, e)| (s, e.min(len)))
                .filter(|(s, e)| s < e);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn crash_keeps_only_synced_bytes() {
        let d = MemDisk::new();
        let mut f = d.create("a").unwrap();
        f.append(b"hello").unwrap();
        f.sync_data().unwrap();
        f.append(b" world").unwrap();
        assert_eq!(d.file_bytes("a").unwrap(), b"hello world");
        d.crash();
        assert_eq!(d.file_bytes("a").unwrap(), b"hello");
        assert!(f.append(b"x").is_err(), "stale handle must die");
        let f = d.open("a").unwrap();
        assert_eq!(f.len().unwrap(), 5);
    }

    #[test]
    fn torn_crash_keeps_a_prefix_of_the_unsynced_write() {
        let mut kept = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let d = MemDisk::new();
            let mut f = d.create("a").unwrap();
            f.append(b"abc").unwrap();
            f.sync_data().unwrap();
            f.append(b"0123456789").unwrap();
            d.crash_torn(seed);
            let bytes = d.file_bytes("a").unwrap();
            assert!(bytes.starts_with(b"abc"));
            assert!(b"abc0123456789".starts_with(&bytes));
            kept.insert(bytes.len());
        }
        assert!(
            kept.len() > 3,
            "tearing should vary with the seed: {kept:?}"
        );
    }

    #[test]
    fn writes_into_preallocated_space_tear_as_a_prefix_of_their_span() {
        let mut kept = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let d = MemDisk::new();
            let mut f = d.create("a").unwrap();
            f.append(b"abc\0\0\0\0\0\0\0\0").unwrap();
            f.sync_data().unwrap();
            f.write_at(3, b"0123").unwrap();
            f.write_at(7, b"45").unwrap();
            assert_eq!(d.file_bytes("a").unwrap(), b"abc012345\0\0");
            d.crash_torn(seed);
            let bytes = d.file_bytes("a").unwrap();
            assert_eq!(bytes.len(), 11, "preallocated length is durable");
            let written = bytes[3..].iter().take_while(|b| **b != 0).count();
            assert_eq!(&bytes[..3 + written], &b"abc012345"[..3 + written]);
            assert!(bytes[3 + written..].iter().all(|b| *b == 0), "{bytes:?}");
            kept.insert(written);
        }
        assert!(
            kept.len() > 3,
            "tearing should vary with the seed: {kept:?}"
        );
        // A sync makes the overwrite durable; a crash keeps it.
        let d = MemDisk::new();
        let mut f = d.create("a").unwrap();
        f.append(&[0; 8]).unwrap();
        f.sync_data().unwrap();
        f.write_at(2, b"xy").unwrap();
        f.sync_data().unwrap();
        f.write_at(4, b"zz").unwrap();
        d.crash();
        assert_eq!(d.file_bytes("a").unwrap(), b"\0\0xy\0\0\0\0");
        let mut f = d.open("a").unwrap();
        assert!(f.write_at(9, b"x").is_err(), "no holes");
        f.write_at(8, b"end").unwrap();
        assert_eq!(f.len().unwrap(), 11);
    }

    #[test]
    fn truncate_below_durable_then_crash_restores_durable_image() {
        let d = MemDisk::new();
        let mut f = d.create("a").unwrap();
        f.append(b"abcdef").unwrap();
        f.sync_data().unwrap();
        f.truncate(2).unwrap();
        f.append(b"XY").unwrap();
        d.crash();
        assert_eq!(d.file_bytes("a").unwrap(), b"abcdef");
        let mut f = d.open("a").unwrap();
        f.truncate(2).unwrap();
        f.append(b"XY").unwrap();
        f.sync_data().unwrap();
        d.crash();
        assert_eq!(d.file_bytes("a").unwrap(), b"abXY");
    }

    #[test]
    fn failed_sync_makes_nothing_durable() {
        let d = MemDisk::new();
        let mut f = d.create("a").unwrap();
        f.append(b"abc").unwrap();
        d.fail_next_sync();
        assert!(f.sync_data().is_err());
        d.crash();
        assert_eq!(d.file_bytes("a").unwrap(), b"");
    }

    #[test]
    fn directory_changes_are_durable() {
        let d = MemDisk::new();
        d.create("a").unwrap();
        d.create("b").unwrap();
        d.remove("a").unwrap();
        d.rename("b", "c").unwrap();
        d.crash();
        assert_eq!(d.names(), vec!["c".to_string()]);
    }
}
