//! raftwatch-chunk (being written).
