//! raftwatch-proto: the generated gRPC types of `proto/raftwatch/v1`, the
//! codec their servers decode requests with (`codec`) and the request-size
//! limit put in front of them (`limit`), and `Ingest` served with its
//! request left as bytes (`raw`).
//!
//! Architecture invariant: these types never leave the gRPC edge; the
//! crates that serve or call an API convert them to domain types with
//! `TryFrom` at the boundary.

pub mod codec;
pub mod limit;
pub mod net;
pub mod prometheus;
pub mod raw;

/// `raftwatch.v1`: the public API and the internal Raft transport. The
/// servers use [`codec::ServerCodec`], the clients tonic's `ProstCodec`
/// (see `build.rs`).
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod v1 {
    tonic::include_proto!("raftwatch.v1");
    include!(concat!(env!("OUT_DIR"), "/client/raftwatch.v1.rs"));
}
