//! Clocks: the real one and a manually driven one.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use raftwatch_model::TimestampMs;

/// `MonoNanos` is a reading of a monotonic clock in nanoseconds since an
/// arbitrary, per-clock origin. Only differences between readings of the
/// same clock mean anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct MonoNanos(pub u64);

impl MonoNanos {
    /// `nanos_since` is `self - earlier` in nanoseconds, 0 if `earlier` is
    /// later (a monotonic clock never goes back, but callers may mix up
    /// arguments).
    pub fn nanos_since(self, earlier: MonoNanos) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// `Clock` is the time seam. Production uses [`SystemClock`]; tests and the
/// simulator use [`ManualClock`] or their own implementation.
pub trait Clock: Send + Sync + fmt::Debug {
    /// `now_wall` is the wall-clock time in ms since the Unix epoch. It may
    /// jump backwards or forwards; never use it to measure durations.
    fn now_wall(&self) -> TimestampMs;
    /// `now_mono` is monotonic time, for durations and timeouts.
    fn now_mono(&self) -> MonoNanos;
}

/// `SystemClock` reads the operating system's clocks.
pub struct SystemClock {
    origin: std::time::Instant,
}

impl SystemClock {
    /// `new` starts a clock whose monotonic origin is now.
    pub fn new() -> SystemClock {
        // The seam: the one permitted read of the real monotonic clock.
        #[allow(clippy::disallowed_methods)]
        let origin = std::time::Instant::now();
        SystemClock { origin }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl fmt::Debug for SystemClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SystemClock")
    }
}

impl Clock for SystemClock {
    fn now_wall(&self) -> TimestampMs {
        // The seam: the one permitted read of the real wall clock.
        #[allow(clippy::disallowed_methods)]
        let now = std::time::SystemTime::now();
        match now.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => TimestampMs(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Err(e) => TimestampMs(-i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX)),
        }
    }

    fn now_mono(&self) -> MonoNanos {
        // The seam: the one permitted read of the real monotonic clock.
        #[allow(clippy::disallowed_methods)]
        let elapsed = self.origin.elapsed();
        MonoNanos(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// `ManualClock` only moves when told to: for tests and the simulator.
#[derive(Debug, Default)]
pub struct ManualClock {
    wall_ms: AtomicI64,
    mono_ns: AtomicU64,
}

impl ManualClock {
    /// `new` starts at the given wall time with monotonic time 0.
    pub fn new(wall: TimestampMs) -> ManualClock {
        ManualClock {
            wall_ms: AtomicI64::new(wall.0),
            mono_ns: AtomicU64::new(0),
        }
    }

    /// `advance_ms` moves both clocks forward by `ms` milliseconds.
    pub fn advance_ms(&self, ms: u64) {
        self.wall_ms
            .fetch_add(i64::try_from(ms).unwrap_or(i64::MAX), Ordering::SeqCst);
        self.mono_ns
            .fetch_add(ms.saturating_mul(1_000_000), Ordering::SeqCst);
    }

    /// `set_wall` moves only the wall clock (which may go backwards), as a
    /// clock-skew fault does.
    pub fn set_wall(&self, wall: TimestampMs) {
        self.wall_ms.store(wall.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_wall(&self) -> TimestampMs {
        TimestampMs(self.wall_ms.load(Ordering::SeqCst))
    }

    fn now_mono(&self) -> MonoNanos {
        MonoNanos(self.mono_ns.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(TimestampMs(1000));
        assert_eq!(c.now_wall(), TimestampMs(1000));
        c.advance_ms(5);
        assert_eq!(c.now_wall(), TimestampMs(1005));
        assert_eq!(c.now_mono().nanos_since(MonoNanos(0)), 5_000_000);
        c.set_wall(TimestampMs(10));
        assert_eq!(c.now_wall(), TimestampMs(10));
        assert_eq!(c.now_mono(), MonoNanos(5_000_000));
    }

    #[test]
    fn system_clock_is_monotonic_and_after_2020() {
        let c = SystemClock::new();
        let a = c.now_mono();
        let b = c.now_mono();
        assert!(b >= a);
        assert!(c.now_wall() > TimestampMs(1_577_836_800_000));
    }
}
