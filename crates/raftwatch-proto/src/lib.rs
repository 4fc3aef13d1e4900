//! raftwatch-proto: the generated gRPC types of `proto/raftwatch/v1`.
//!
//! Architecture invariant: these types never leave the gRPC edge; the
//! crates that serve or call an API convert them to domain types with
//! `TryFrom` at the boundary.

#![allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]

/// `raftwatch.v1`: the public API and the internal Raft transport.
pub mod v1 {
    tonic::include_proto!("raftwatch.v1");
}
