//! What `ingest` and `query` share: the `--target` syntax and latency
//! percentiles. Talking to the cluster (endpoints, channels, retries,
//! error names) is the client library's (`raftwatch-client`).

use anyhow::anyhow;

/// `Target` is a parsed `--target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `grpc://HOST:PORT`: a node's gRPC address, kept as the client
    /// library's `http://HOST:PORT`.
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
        if text.starts_with("grpc://") {
            let url = raftwatch_client::parse_endpoint(text)
                .map_err(|why| anyhow!("invalid --target {text:?}: {why}"))?;
            return Ok(Target::Grpc(url));
        }
        if text.starts_with("http://") || text.starts_with("https://") {
            return Ok(Target::Http(text.to_owned()));
        }
        Err(bad())
    }

    /// `port` is the target's TCP port, if it names one.
    pub fn port(&self) -> Option<u16> {
        let (Target::Grpc(url) | Target::Http(url)) = self;
        let rest = url.split_once("://")?.1;
        let authority = rest.split('/').next()?;
        authority.rsplit_once(':')?.1.parse().ok()
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
            Target::Grpc("http://127.0.0.1:7700".into())
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
