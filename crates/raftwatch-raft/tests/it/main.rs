//! Integration tests of the replication core: real tonic on 127.0.0.1,
//! real logs in temporary directories.

#![allow(clippy::unwrap_used)]

mod cluster;
mod log_store;
