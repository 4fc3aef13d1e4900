//! Logging for the `raftwatch` binary: `tracing` events to stderr, filtered
//! by `RUST_LOG` (default [`DEFAULT_FILTER`]), as text or as JSON lines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// `DEFAULT_FILTER` applies when `RUST_LOG` is unset or empty. openraft
/// logs every vote and state change at INFO, hundreds of lines per election
/// round with many groups per node; its WARN and ERROR still show.
pub const DEFAULT_FILTER: &str = "info,openraft=warn";

/// `init` installs the process-wide subscriber: events go to stderr in
/// `format`, filtered by `RUST_LOG` ([`DEFAULT_FILTER`] when unset or empty).
///
/// Fails when `RUST_LOG` does not parse (rather than silently logging
/// something else than asked) or when a subscriber is already installed.
pub fn init(format: LogFormat) -> anyhow::Result<()> {
    let filter = match std::env::var_os(EnvFilter::DEFAULT_ENV) {
        Some(spec) if !spec.is_empty() => {
            let spec = spec
                .into_string()
                .map_err(|_| anyhow::anyhow!("RUST_LOG is not UTF-8"))?;
            EnvFilter::builder()
                .parse(&spec)
                .map_err(|e| anyhow::anyhow!("RUST_LOG {spec:?}: {e}"))?
        }
        _ => EnvFilter::builder().parse(DEFAULT_FILTER)?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        // Colour only for a human at a terminal: `raftwatch dev` pipes its
        // children's stderr, and log files should not hold escape codes.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}
