//! Termination signals for `raftwatch server` and `raftwatch dev`.

use tokio::signal::unix::{SignalKind, signal};

/// `Stop` is a signal asking the process to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT: Ctrl-C at a terminal. A second one means "stop now".
    Interrupt,
    /// SIGTERM: a supervisor (systemd, `raftwatch dev`, a test) asking for a
    /// clean stop. Repeats do not escalate, so a process that got SIGINT
    /// from the terminal and SIGTERM from its supervisor still stops cleanly.
    Terminate,
}

impl Stop {
    /// `name` is the signal's name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Stop::Interrupt => "SIGINT",
            Stop::Terminate => "SIGTERM",
        }
    }
}

/// `Signals` receives SIGINT and SIGTERM. While it exists the default
/// action (dying on the spot) is replaced by delivery through [`recv`].
///
/// [`recv`]: Signals::recv
#[derive(Debug)]
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// `install` registers the handlers; call it inside a tokio runtime with
    /// signals enabled, before starting anything that must be stopped cleanly.
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// `recv` waits for the next SIGINT or SIGTERM. Cancel-safe.
    pub async fn recv(&mut self) -> Stop {
        tokio::select! {
            Some(()) = self.interrupt.recv() => Stop::Interrupt,
            Some(()) = self.terminate.recv() => Stop::Terminate,
            // Both streams end only when the runtime shuts down; nothing can
            // arrive any more.
            else => std::future::pending().await,
        }
    }
}
