//! Planted bugs for the simulator's can-fail check (compiled only with the
//! `inject-bugs` feature, which no release build enables).
//!
//! The simulator must prove that its checkers can fail: `raftwatch-sim
//! --inject-bug NAME` arms one of these, and a hook inside the real code
//! (each under `#[cfg(feature = "inject-bugs")]`) misbehaves while it is
//! armed. A global is acceptable here only because it is test-only and set
//! once per process before any simulated node starts.

use std::sync::atomic::{AtomicU8, Ordering};

/// A bug the simulator can plant in the real code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bug {
    /// The ingest path answers a write before its Raft entry commits.
    AckBeforeCommit = 1,
    /// A linearizable read skips the ReadIndex round and serves local state.
    StaleReadAsLinearizable = 2,
    /// The durable log marks data synced without calling `fdatasync`.
    SkipFsync = 3,
    /// A new control leader's first evaluation of each rule group reports
    /// no alerts, resetting their `for` (as if alert state were not
    /// replicated).
    AlertForReset = 4,
    /// The control state machine's dispatch ignores silences when it
    /// commits notifications.
    NotifyIgnoresSilence = 5,
}

impl Bug {
    /// Every bug, in a fixed order.
    pub const ALL: [Bug; 5] = [
        Bug::AckBeforeCommit,
        Bug::StaleReadAsLinearizable,
        Bug::SkipFsync,
        Bug::AlertForReset,
        Bug::NotifyIgnoresSilence,
    ];

    /// The name `--inject-bug` takes.
    pub fn name(self) -> &'static str {
        match self {
            Bug::AckBeforeCommit => "ack-before-commit",
            Bug::StaleReadAsLinearizable => "stale-read-as-linearizable",
            Bug::SkipFsync => "skip-fsync",
            Bug::AlertForReset => "alert-for-reset",
            Bug::NotifyIgnoresSilence => "notify-ignores-silence",
        }
    }

    /// Parses a name `--inject-bug` takes.
    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == name)
    }
}

static ARMED: AtomicU8 = AtomicU8::new(0);

/// Arms `bug` (or disarms every bug with `None`) for the whole process.
pub fn arm(bug: Option<Bug>) {
    ARMED.store(bug.map_or(0, |b| b as u8), Ordering::SeqCst);
}

/// Whether `bug` is armed.
pub fn armed(bug: Bug) -> bool {
    ARMED.load(Ordering::Relaxed) == bug as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_arming_is_exclusive() {
        for bug in Bug::ALL {
            assert_eq!(Bug::from_name(bug.name()), Some(bug));
        }
        assert_eq!(Bug::from_name("no-such-bug"), None);
        arm(Some(Bug::SkipFsync));
        assert!(armed(Bug::SkipFsync));
        assert!(!armed(Bug::AckBeforeCommit));
        arm(None);
        assert!(!armed(Bug::SkipFsync));
    }
}
