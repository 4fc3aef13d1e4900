//! Compiles `proto/raftwatch/v1/*.proto` with protox (pure Rust), so the
//! build needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script binary reused from another checkout
    // (a shared CARGO_TARGET_DIR) must not look in that checkout's tree.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = std::path::Path::new(&manifest_dir).join("../../proto");
    let files = ["raftwatch/v1/raft.proto", "raftwatch/v1/admin.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let fds = protox::compile(files, [&root])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
