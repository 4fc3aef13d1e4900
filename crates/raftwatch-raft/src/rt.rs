//! The runtime seam: the only module that spawns tasks or OS threads. The
//! simulator replaces what is spawned here (turmoil hosts, in-task disk
//! flushing); everything else asks this module.

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft_rt::{AsyncRuntime, Instant as _, OptionalSend};
use openraft_rt_tokio::{TokioInstant, TokioRuntime};

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

// ---- Coalesced long timers ----

/// Quantum in microseconds that long sleeps are rounded up to (0: off).
static LONG_TIMER_QUANTUM_US: AtomicU64 = AtomicU64::new(0);
/// The grid's origin: the first instant a rounded sleep was asked for.
static GRID_ORIGIN: OnceLock<TokioInstant> = OnceLock::new();

/// A sleep is "long" — and rounded — when it is at least this many quanta
/// away. Short sleeps (openraft's 1 µs IO-completion batching, replication
/// backoff, the 10 ms ticks of a 50 ms heartbeat) are never moved.
const LONG_SLEEP_QUANTA: u64 = 2;

/// `coalesce_long_timers` makes every openraft `sleep_until` that is at
/// least two `quantum`s away end on the next multiple of `quantum` of one
/// process-wide grid, instead of at its own instant. openraft's only such
/// sleep is each group's tick loop (every 13/64 of the heartbeat
/// interval, at a random phase): with 64 groups per node that is hundreds
/// of separate timer wake-ups a second, each parking and unparking a
/// worker thread. On the grid they fire together, one wake-up per quantum
/// serving all of them. A tick is then up to one quantum late, which
/// delays a heartbeat or an election check by at most that much (keep the
/// quantum well below the heartbeat interval; `HostConfig` uses 20 ms
/// against a 300 ms heartbeat, whose 60 ms ticks are then rounded; a
/// heartbeat of 190 ms or less ticks too often to be rounded at all).
/// Measured with 64 idle groups on 3 nodes (`raftwatch-bench raft
/// --idle-groups 64`): 17.5–17.9 % of a core without it, 10.6–11.1 % at
/// 10 ms, 8.5–10.6 % at 20 ms.
///
/// `Duration::ZERO` turns it off, as the simulator does: its virtual clock
/// starts anew with every run, and a grid anchored at a process-wide
/// origin would make runs in one process differ.
pub fn coalesce_long_timers(quantum: Duration) {
    LONG_TIMER_QUANTUM_US.store(micros(quantum), Ordering::Relaxed);
}

/// `rounded_deadline` is `deadline` moved to the grid when it is long.
fn rounded_deadline(deadline: TokioInstant) -> TokioInstant {
    let q = LONG_TIMER_QUANTUM_US.load(Ordering::Relaxed);
    if q == 0 {
        return deadline;
    }
    let now = TokioInstant::now();
    let origin = *GRID_ORIGIN.get_or_init(|| now);
    on_grid(deadline, now, origin, q)
}

/// `on_grid` is `deadline` rounded up to the next multiple of `quantum_us`
/// after `origin`, or unchanged when it is less than
/// [`LONG_SLEEP_QUANTA`] quanta after `now`.
fn on_grid(
    deadline: TokioInstant,
    now: TokioInstant,
    origin: TokioInstant,
    quantum_us: u64,
) -> TokioInstant {
    let ahead = micros(deadline.saturating_duration_since(now));
    if quantum_us == 0 || ahead < quantum_us.saturating_mul(LONG_SLEEP_QUANTA) {
        return deadline;
    }
    let us = micros(deadline.saturating_duration_since(origin));
    let up = us.div_ceil(quantum_us).saturating_mul(quantum_us);
    origin + Duration::from_micros(up)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `CoalescingTokio` is openraft's tokio runtime with long sleeps moved
/// onto the grid of [`coalesce_long_timers`]; everything else is tokio's.
pub struct CoalescingTokio(TokioRuntime);

impl std::fmt::Debug for CoalescingTokio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CoalescingTokio")
    }
}

impl AsyncRuntime for CoalescingTokio {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = TokioInstant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> =
        <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = <TokioRuntime as AsyncRuntime>::ThreadLocalRng;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        TokioRuntime::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(rounded_deadline(deadline))
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        TokioRuntime::thread_rng()
    }

    type Mpsc = <TokioRuntime as AsyncRuntime>::Mpsc;
    type Watch = <TokioRuntime as AsyncRuntime>::Watch;
    type Oneshot = <TokioRuntime as AsyncRuntime>::Oneshot;
    type Mutex<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::Mutex<T>;

    fn new(threads: usize) -> Self {
        CoalescingTokio(TokioRuntime::new(threads))
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.0.block_on(future)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_sleeps_end_on_the_grid_and_short_ones_are_left_alone() {
        let origin = TokioInstant::now();
        let q = 20_000; // 20 ms
        let ms = |n: u64| Duration::from_millis(n);
        let now = origin + ms(1_003);
        // Short: under two quanta ahead, untouched (openraft's 1 µs IO
        // batching, 10 ms ticks).
        for ahead in [Duration::from_micros(1), ms(10), ms(39)] {
            assert_eq!(on_grid(now + ahead, now, origin, q), now + ahead);
        }
        // Long: the next grid line at or after the deadline, never earlier
        // and less than one quantum later.
        for ahead in [40, 57, 60, 77, 300, 2_000] {
            let deadline = now + ms(ahead);
            let moved = on_grid(deadline, now, origin, q);
            assert!(moved >= deadline, "{ahead} ms moved earlier");
            assert!(
                moved - deadline < ms(20),
                "{ahead} ms moved a quantum or more"
            );
            assert_eq!(
                (moved - origin).as_micros() % 20_000,
                0,
                "{ahead} ms off the grid"
            );
        }
        // Two groups whose ticks are a few ms apart share one wake-up.
        let a = on_grid(now + ms(61), now, origin, q);
        let b = on_grid(now + ms(58), now + ms(2), origin, q);
        assert_eq!(a, b);
        // A deadline exactly on the grid stays; quantum 0 is off.
        let exact = origin + ms(1_100);
        assert_eq!(on_grid(exact, now, origin, q), exact);
        assert_eq!(on_grid(now + ms(77), now, origin, 0), now + ms(77));
    }
}
