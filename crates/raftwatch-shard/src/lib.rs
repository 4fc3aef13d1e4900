//! raftwatch-shard
