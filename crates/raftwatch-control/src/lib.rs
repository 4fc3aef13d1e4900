//! raftwatch-control
