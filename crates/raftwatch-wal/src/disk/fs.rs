//! `FsDisk`: a directory of real files.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{Disk, DiskFile};

/// `FsDisk` is one directory on a real file system. `sync_data` is
/// `fdatasync(2)`; creating, removing and renaming a file `fsync`s the
/// directory so the change survives a power loss.
#[derive(Debug, Clone)]
pub struct FsDisk {
    dir: PathBuf,
}

impl FsDisk {
    /// `open` uses `dir` (created with its parents if missing, and the
    /// creation made durable) as the log's directory.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<FsDisk> {
        let dir = dir.into();
        if !dir.is_dir() {
            fs::create_dir_all(&dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        Ok(FsDisk { dir })
    }

    /// `dir` is the directory this disk lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> io::Result<PathBuf> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a plain file name: {name:?}"),
            ));
        }
        Ok(self.dir.join(name))
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Disk for FsDisk {
    type File = FsFile;

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                // A name that is not UTF-8 cannot be a segment; skip it.
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn create(&self, name: &str) -> io::Result<FsFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.path(name)?)?;
        sync_dir(&self.dir)?;
        Ok(FsFile { file })
    }

    fn open(&self, name: &str) -> io::Result<FsFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.path(name)?)?;
        Ok(FsFile { file })
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.path(name)?)?;
        sync_dir(&self.dir)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.path(from)?, self.path(to)?)?;
        sync_dir(&self.dir)
    }

    fn describe(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// `FsFile` is an open real file. Not opened with `O_APPEND` (under which
/// Linux ignores a positional write's offset): `append` writes at the
/// current length, which only this handle changes.
#[derive(Debug)]
pub struct FsFile {
    file: File,
}

impl DiskFile for FsFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let end = self.len()?;
        self.file.write_all_at(bytes, end)
    }

    /// Does not check `offset` against the length (that would cost an
    /// `fstat` per write on the log's write path); `MemDisk`, under every
    /// test and the simulator, refuses a write past the end.
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, offset)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
}
