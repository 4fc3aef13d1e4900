//! Compiles `proto/raftwatch/v1/*.proto` with protox (pure Rust), so the
//! build needs no system `protoc`.
//!
//! Two passes, because a codec decodes requests on a server but responses
//! on a client, and the two failures mean different things:
//! - messages and servers into `OUT_DIR/raftwatch.v1.rs`, with
//!   `crate::codec::ServerCodec` (a request that does not decode is the
//!   caller's bad input: `INVALID_ARGUMENT`);
//! - clients only into `OUT_DIR/client/raftwatch.v1.rs`, with tonic's
//!   `ProstCodec` (a response that does not decode is the server's fault:
//!   `INTERNAL`, as gRPC's status-code guide says). The messages are
//!   declared extern there (`crate::v1`), so they are generated once.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script binary reused from another checkout
    // (a shared CARGO_TARGET_DIR) must not look in that checkout's tree.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let root = std::path::Path::new(&manifest_dir).join("../../proto");
    let files = ["raftwatch/v1/raft.proto", "raftwatch/v1/admin.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let fds = protox::compile(files, [&root])?;

    tonic_prost_build::configure()
        .build_client(false)
        .codec_path("crate::codec::ServerCodec")
        .out_dir(&out_dir)
        .compile_fds(fds.clone())?;

    let client_dir = out_dir.join("client");
    std::fs::create_dir_all(&client_dir)?;
    tonic_prost_build::configure()
        .build_server(false)
        .extern_path(".raftwatch.v1", "crate::v1")
        .out_dir(&client_dir)
        .compile_fds(fds)?;
    Ok(())
}
