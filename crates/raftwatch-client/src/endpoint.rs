//! Node addresses and gRPC plumbing shared by every tool: parsing an
//! endpoint, checking `HOST:PORT`, opening channels, and rendering gRPC
//! errors with their canonical code names.

use std::time::Duration;

use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use crate::ClientError;

/// `LEADER_ADDR_KEY` is the metadata key in which a node names the leader
/// (`host:port`) on `UNAVAILABLE`.
pub const LEADER_ADDR_KEY: &str = "raftwatch-leader-addr";
/// `RETRY_AFTER_KEY` is the metadata key of a node's hint, in
/// milliseconds, of when to retry (with `RESOURCE_EXHAUSTED`).
pub const RETRY_AFTER_KEY: &str = "retry-after-ms";
/// `MAP_EPOCH_KEY` is the metadata key carrying the node's shard-map epoch
/// on a stale-map `FAILED_PRECONDITION`.
pub const MAP_EPOCH_KEY: &str = "raftwatch-map-epoch";

/// `parse_endpoint` reads a node's gRPC address as a user writes it —
/// `http://HOST:PORT`, `grpc://HOST:PORT` (plaintext gRPC, as the bench's
/// `--target` says) or a bare `HOST:PORT`, with at most a trailing `/` —
/// and returns it as `http://HOST:PORT`. TLS is not built in, so `https`
/// is refused here rather than failing obscurely on connect. The error is
/// a reason, for the caller to prefix with the flag's name.
pub fn parse_endpoint(text: &str) -> Result<String, String> {
    let rest = match text.split_once("://") {
        None => text,
        Some(("http" | "grpc", rest)) => rest,
        Some(("https", _)) => return Err("only http:// is supported (no TLS)".to_owned()),
        Some((scheme, _)) => {
            return Err(format!(
                "unknown scheme {scheme:?}: expected http://HOST:PORT"
            ));
        }
    };
    let host_port = rest.strip_suffix('/').unwrap_or(rest);
    if host_port.contains(['/', '?', '#']) {
        return Err("expected http://HOST:PORT without a path".to_owned());
    }
    check_host_port(host_port)?;
    Ok(format!("http://{host_port}"))
}

/// `check_host_port` checks that `value` is `HOST:PORT`: a non-empty host
/// (a name, an IPv4 address, or an IPv6 address in brackets) and a port in
/// 1..=65535. The error is a reason, for the caller to prefix.
pub fn check_host_port(value: &str) -> Result<(), String> {
    let fail = |why: &str| Err(why.to_owned());
    if value.contains("://") {
        return fail("expected HOST:PORT without a scheme");
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return fail("expected HOST:PORT");
    };
    if host.is_empty() {
        return fail("the host is empty");
    }
    if let Some(inner) = host.strip_prefix('[') {
        let is_ipv6 = inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
        if !is_ipv6 {
            return fail("a bracketed host must be an IPv6 address, as in [::1]:7600");
        }
    } else if host.contains(':') {
        return fail("an IPv6 host must be in brackets, as in [::1]:7600");
    } else if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return fail("the host may contain only letters, digits, '.', '-' and '_'");
    }
    let port_ok = !port.is_empty()
        && port.chars().all(|c| c.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0);
    if !port_ok {
        return fail("the port must be a number in 1..65535");
    }
    Ok(())
}

/// `endpoint` is the tonic endpoint for `url` (`http://HOST:PORT`, as
/// [`parse_endpoint`] returns) with the client's settings: `connect_timeout`
/// bounds connecting, `request_timeout` every call, and Nagle is off.
pub fn endpoint(
    url: &str,
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<Endpoint, ClientError> {
    Ok(Endpoint::from_shared(url.to_owned())
        .map_err(|e| ClientError::Endpoint(format!("{url}: {e}")))?
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .tcp_nodelay(true))
}

/// `connect` opens one HTTP/2 channel to `url` now (it multiplexes every
/// concurrent call), failing at once when nothing listens there.
pub async fn connect(
    url: &str,
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<Channel, ClientError> {
    endpoint(url, connect_timeout, request_timeout)?
        .connect()
        .await
        .map_err(|e| ClientError::Connect {
            endpoint: url.to_owned(),
            reason: error_chain(&e),
        })
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

/// `metadata_str` is the non-empty value of metadata `key` on `status`.
pub fn metadata_str(status: &tonic::Status, key: &str) -> Option<String> {
    status
        .metadata()
        .get(key)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        for (text, want) in [
            ("http://127.0.0.1:7600", "http://127.0.0.1:7600"),
            ("http://127.0.0.1:7600/", "http://127.0.0.1:7600"),
            ("127.0.0.1:7600", "http://127.0.0.1:7600"),
            ("grpc://localhost:7700/", "http://localhost:7700"),
            ("grpc://[::1]:7700", "http://[::1]:7700"),
        ] {
            assert_eq!(parse_endpoint(text).as_deref(), Ok(want), "{text:?}");
        }
        for (bad, why) in [
            ("https://127.0.0.1:7600", "only http://"),
            ("tcp://h:1", "unknown scheme"),
            ("http://127.0.0.1", "expected HOST:PORT"),
            ("grpc://127.0.0.1", "expected HOST:PORT"),
            ("http://127.0.0.1:7600/x", "without a path"),
            ("grpc://h:7700/x", "without a path"),
            ("http://h:7600?x=1", "without a path"),
            ("http://:7600", "the host is empty"),
            ("grpc://h:0", "the port must be"),
            ("not a uri", "expected HOST:PORT"),
            ("not a uri:1", "may contain only"),
        ] {
            let err = parse_endpoint(bad).expect_err(bad);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn host_port_validation() {
        for good in [
            "127.0.0.1:7600",
            "node-4.example.com:1",
            "localhost:65535",
            "[::1]:7600",
            "[fe80::1]:80",
        ] {
            assert!(check_host_port(good).is_ok(), "{good:?}");
        }
        for (bad, why) in [
            ("", "expected HOST:PORT"),
            ("host", "expected HOST:PORT"),
            (":7600", "the host is empty"),
            ("host:", "the port must be"),
            ("host:0", "the port must be"),
            ("host:65536", "the port must be"),
            ("host:+80", "the port must be"),
            ("host:80a", "the port must be"),
            ("::1:7600", "must be in brackets"),
            ("[nope]:7600", "must be an IPv6 address"),
            ("my host:7600", "may contain only"),
            ("http://host:7600", "without a scheme"),
        ] {
            let err = check_host_port(bad).expect_err(bad);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn canonical_code_names() {
        assert_eq!(code_name(Code::InvalidArgument), "INVALID_ARGUMENT");
        assert_eq!(code_name(Code::ResourceExhausted), "RESOURCE_EXHAUSTED");
        assert_eq!(code_name(Code::Unavailable), "UNAVAILABLE");
    }
}
