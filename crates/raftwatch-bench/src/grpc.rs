//! What `ingest` and `query` share: the `--target` syntax, the gRPC
//! channel, error kinds by their canonical gRPC names, and latency
//! percentiles.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// `Unsupported` is a request the bench understands but cannot serve yet
/// (`main` exits with status 2 for it, like a usage error, so a script can
/// tell it apart from a failed run).
#[derive(Debug)]
pub struct Unsupported(pub String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not supported yet: {}", self.0)
    }
}

impl std::error::Error for Unsupported {}

/// `Target` is a parsed `--target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `grpc://HOST:PORT`: a node's gRPC address, kept as `HOST:PORT`.
    Grpc(String),
    /// `http://HOST:PORT/...`: the node's HTTP API (the whole URL).
    Http(String),
}

impl Target {
    /// `parse` accepts `grpc://HOST:PORT` and `http://HOST:PORT[/path]`.
    pub fn parse(text: &str) -> anyhow::Result<Target> {
        let bad = || {
            anyhow!("invalid --target {text:?}: expected grpc://HOST:PORT or http://HOST:PORT/PATH")
        };
        if let Some(rest) = text.strip_prefix("grpc://") {
            let host_port = rest.strip_suffix('/').unwrap_or(rest);
            let (host, port) = host_port.rsplit_once(':').ok_or_else(bad)?;
            let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
            if host.is_empty() || !port_ok || host_port.contains('/') {
                return Err(bad());
            }
            return Ok(Target::Grpc(host_port.to_owned()));
        }
        if text.starts_with("http://") || text.starts_with("https://") {
            return Ok(Target::Http(text.to_owned()));
        }
        Err(bad())
    }

    /// `port` is the target's TCP port, if it names one.
    pub fn port(&self) -> Option<u16> {
        match self {
            Target::Grpc(host_port) => host_port.rsplit_once(':')?.1.parse().ok(),
            Target::Http(url) => {
                let rest = url.split_once("://")?.1;
                let authority = rest.split('/').next()?;
                authority.rsplit_once(':')?.1.parse().ok()
            }
        }
    }
}

/// `connect` opens one HTTP/2 channel to `host_port` (which multiplexes
/// every concurrent request), failing now rather than on the first RPC
/// when nothing listens there. `timeout` bounds connecting and each RPC.
pub async fn connect(host_port: &str, timeout: Duration) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(format!("http://{host_port}"))
        .with_context(|| format!("invalid gRPC address {host_port:?}"))?
        .connect_timeout(timeout)
        .timeout(timeout);
    match endpoint.connect().await {
        Ok(channel) => Ok(channel),
        Err(e) => bail!("cannot connect to grpc://{host_port}: {}", error_chain(&e)),
    }
}

/// `error_chain` renders an error and its sources on one line (tonic's
/// transport errors keep the useful part, e.g. "Connection refused", in
/// the source chain).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// `code_name` is the canonical name of a gRPC status code, as in the gRPC
/// docs and CONTRACTS.md (`UNAVAILABLE`, not tonic's `Unavailable`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// `percentile_ms` is the `p` quantile (0.0..=1.0) of `sorted_nanos`
/// (ascending) in milliseconds: the element at rank round((n-1)·p), as
/// `raftwatch-bench raft` computes it, so the two benches compare. 0 for no
/// data.
pub fn percentile_ms(sorted_nanos: &[u64], p: f64) -> f64 {
    let Some(last) = sorted_nanos.len().checked_sub(1) else {
        return 0.0;
    };
    let rank = (last as f64 * p.clamp(0.0, 1.0)).round() as usize;
    sorted_nanos[rank.min(last)] as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
        assert_eq!(percentile_ms(&[3_000_000], 0.99), 3.0);
        let v: Vec<u64> = (1..=100).map(|i| i * 1_000_000).collect();
        assert_eq!(percentile_ms(&v, 0.0), 1.0);
        // rank round(99 * 0.5) = round(49.5) = 50 → the 51st value.
        assert_eq!(percentile_ms(&v, 0.5), 51.0);
        // rank round(99 * 0.99) = round(98.01) = 98 → the 99th value.
        assert_eq!(percentile_ms(&v, 0.99), 99.0);
        assert_eq!(percentile_ms(&v, 1.0), 100.0);
        // Out-of-range quantiles clamp instead of indexing out of bounds.
        assert_eq!(percentile_ms(&v, 7.0), 100.0);
        assert_eq!(percentile_ms(&v, -1.0), 1.0);
        assert_eq!(percentile_ms(&[1_500_000, 2_500_000], 0.5), 2.5);
    }

    #[test]
    fn targets() {
        assert_eq!(
            Target::parse("grpc://127.0.0.1:7700").unwrap(),
            Target::Grpc("127.0.0.1:7700".into())
        );
        assert_eq!(
            Target::parse("grpc://localhost:7700/").unwrap().port(),
            Some(7700)
        );
        assert_eq!(
            Target::parse("http://127.0.0.1:7701/api/v1/write")
                .unwrap()
                .port(),
            Some(7701)
        );
        for bad in [
            "127.0.0.1:7700",
            "grpc://127.0.0.1",
            "grpc://:7700",
            "grpc://h:0",
            "grpc://h:7700/x",
            "tcp://h:1",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
