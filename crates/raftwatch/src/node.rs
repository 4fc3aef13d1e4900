//! One raftwatch node. (Being built: see issue 4.)

use crate::config::ServerConfig;

/// `run` runs the node until `shutdown` resolves, then shuts down cleanly.
pub async fn run(
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let _ = (config, shutdown);
    anyhow::bail!("the node is not built yet")
}
