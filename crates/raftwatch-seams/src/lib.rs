//! raftwatch-seams: the one place where real time and randomness enter.
//!
//! Everything that would make a run irreproducible reaches raftwatch code
//! through a seam defined here, so that the deterministic simulator can
//! substitute its own: [`Clock`] for wall and monotonic time, [`DetRng`] for
//! randomness derived from a seed. `clippy.toml` denies
//! `SystemTime::now`, `Instant::now`, thread spawning and sleeping
//! everywhere else in the workspace.
//!
//! Architecture invariant: only [`SystemClock`] and [`entropy_seed`] (a
//! seed for identifiers that must differ between processes) read the
//! machine's clocks.

#[cfg(feature = "inject-bugs")]
pub mod bugs;
mod clock;
mod entropy;
mod rng;

pub use clock::{Clock, ManualClock, MonoNanos, SystemClock};
pub use entropy::entropy_seed;
pub use rng::DetRng;
