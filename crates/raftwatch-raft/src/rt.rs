//! The runtime seam: the only module that spawns tasks or OS threads. The
//! simulator replaces what is spawned here (turmoil hosts, in-task disk
//! flushing); everything else asks this module.

use std::future::Future;

use crate::types::Rt;

/// `spawn` runs `fut` as a tokio task inside openraft's seeded-RNG scope
/// `seed`. Every task that may reach openraft must be spawned this way.
pub fn spawn<F>(seed: u64, fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    #[allow(clippy::disallowed_methods)] // the seam itself
    tokio::spawn(Rt::scope(seed, fut))
}

/// `spawn_thread` starts a named OS thread (the WAL's fsync thread).
pub fn spawn_thread<F>(name: &str, f: F) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    #[allow(clippy::disallowed_methods)] // the seam itself
    std::thread::Builder::new().name(name.to_string()).spawn(f)
}

/// `spawn_blocking` runs the synchronous `f` on tokio's blocking-thread
/// pool, so a long computation (a PromQL evaluation) does not hold up the
/// tasks of the runtime's worker threads. It starts real threads: nothing
/// the simulator runs may call it (its nodes evaluate PromQL inline:
/// `NodeEnv.evaluate_inline` in `raftwatch::node`).
pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(f)
}

/// `scope` runs `fut` inside openraft's seeded-RNG scope without spawning.
pub fn scope<F: Future>(seed: u64, fut: F) -> impl Future<Output = F::Output> {
    Rt::scope(seed, fut)
}

/// `seed_for` derives a per-(node, group) seed from a node seed, so adding a
/// group does not shift the other groups' random streams.
pub fn seed_for(node_seed: u64, node: u64, group: u64) -> u64 {
    let mut z = node_seed
        ^ node.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ group.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
