//! The `Disk` seam: the only way the log touches storage.
//!
//! [`FsDisk`] is one directory of real files; [`MemDisk`] is an in-memory
//! directory with crash semantics for tests and the deterministic
//! simulator. Both are synchronous: a real background thread (through the
//! runtime seam) or the simulator decides when to call into the log.

mod fs;
mod mem;

use std::fmt;
use std::io;

pub use fs::{FsDisk, FsFile};
pub use mem::{MemDisk, MemFile};

/// `Disk` is a flat directory of files, named by plain file names (no
/// separators). Durability contract, which the log relies on:
/// - bytes written with [`DiskFile::append`] are durable only after a later
///   [`DiskFile::sync_data`] on that file returns `Ok`;
/// - [`Disk::create`], [`Disk::remove`] and [`Disk::rename`] return only
///   once the directory change itself is durable (the directory is synced).
pub trait Disk: Send + fmt::Debug {
    /// `File` is an open file of this disk.
    type File: DiskFile;

    /// `list` returns the names of every file in the directory, sorted.
    fn list(&self) -> io::Result<Vec<String>>;
    /// `create` creates a new, empty file (failing if `name` exists) and
    /// makes its name durable before returning.
    fn create(&self, name: &str) -> io::Result<Self::File>;
    /// `open` opens an existing file for reading and appending.
    fn open(&self, name: &str) -> io::Result<Self::File>;
    /// `remove` deletes a file and makes the deletion durable. Handles
    /// already open may keep reading until dropped (POSIX semantics).
    fn remove(&self, name: &str) -> io::Result<()>;
    /// `rename` atomically renames `from` to `to` (replacing `to`) and makes
    /// the change durable.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// `describe` names a file for error messages: a full path for real
    /// files.
    fn describe(&self, name: &str) -> String;
}

/// `DiskFile` is one open file: appends and positional writes (never past
/// the end), positional reads.
pub trait DiskFile: Send + fmt::Debug {
    /// `len` is the file's current length in bytes (durable or not).
    fn len(&self) -> io::Result<u64>;
    /// `is_empty` is `len() == 0`.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// `append` writes all of `bytes` at the end of the file. They are not
    /// durable until [`DiskFile::sync_data`].
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// `write_at` writes all of `bytes` at `offset` (at most `len()`: no
    /// holes), over whatever is there and extending the file if it ends
    /// earlier. Not durable until [`DiskFile::sync_data`].
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// `read_at` fills `buf` from `offset`; reading past the end is an
    /// `UnexpectedEof` error.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// `sync_data` makes every byte written so far, and the file's length,
    /// durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// `truncate` sets the file's length to `len` (`len <= len()`). It is
    /// durable after the next `sync_data`.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}
