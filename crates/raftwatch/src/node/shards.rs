//! Shard stores on disk: `<data_dir>/shards/shard-<id>/gen-<n>/`, one sled
//! database per generation. A shard's state is rebuilt from its Raft
//! snapshot and log at start, so the directory is cleared when the group
//! opens, and each snapshot install writes a new generation.

use std::path::PathBuf;

use raftwatch_shard::StoreFactory;
use raftwatch_storage::MemStore;
use raftwatch_storage_sled::{SledConfig, SledStore};

/// `SledShardStores` creates and retires a shard's sled generations.
#[derive(Debug)]
pub struct SledShardStores {
    dir: PathBuf,
    next_generation: u64,
    config: SledConfig,
}

impl SledShardStores {
    /// `new` owns `dir` (one shard's directory).
    pub fn new(dir: PathBuf) -> SledShardStores {
        SledShardStores {
            dir,
            next_generation: 0,
            config: SledConfig {
                // Eight shards per node by default: keep each cache small.
                cache_capacity_bytes: 16 << 20,
                ..SledConfig::default()
            },
        }
    }
}

impl StoreFactory<SledStore> for SledShardStores {
    fn create(&mut self) -> Result<SledStore, String> {
        if self.next_generation == 0 {
            // Whatever a previous run left is rebuilt from snapshot and log.
            match std::fs::remove_dir_all(&self.dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("clearing {}: {e}", self.dir.display())),
            }
        }
        let path = self.dir.join(format!("gen-{}", self.next_generation));
        self.next_generation += 1;
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        SledStore::open(&path, &self.config).map_err(|e| e.to_string())
    }

    fn retire(&mut self, store: SledStore) {
        let path = store.path().to_path_buf();
        drop(store);
        if let Err(e) = std::fs::remove_dir_all(&path) {
            tracing::warn!(path = %path.display(), error = %e, "could not delete a retired shard store");
        }
    }
}

/// `MemShardStores` keeps a shard's state in memory (the simulator: sled
/// starts real threads). Nothing is lost by it at a restart: a shard is
/// rebuilt from its Raft snapshot and log at every start.
#[derive(Debug)]
pub struct MemShardStores;

impl StoreFactory<MemStore> for MemShardStores {
    fn create(&mut self) -> Result<MemStore, String> {
        Ok(MemStore::new())
    }

    fn retire(&mut self, store: MemStore) {
        drop(store);
    }
}
