//! raftwatch-storage-sled (being written).
