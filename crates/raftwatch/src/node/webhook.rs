//! The webhook client: one HTTP/1.1 `POST` per delivery, over a connection
//! made by a [`Connector`] (TCP in production, the simulator's network in
//! simulation), so notification delivery crosses the same seam as every
//! other byte the node sends.
//!
//! Deliberately small: `http://` only (no TLS), `Connection: close`, the
//! status line is all that is read of the answer. A receiver acknowledges
//! a notification with any 2xx.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use raftwatch_proto::net::BoxIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `Connector` opens a byte stream to `host:port`.
pub type Connector =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = io::Result<BoxIo>> + Send>> + Send + Sync>;

/// `tcp_connector` dials real TCP.
pub fn tcp_connector() -> Connector {
    Arc::new(|addr: String| {
        Box::pin(async move {
            let s = tokio::net::TcpStream::connect(addr).await?;
            let _ = s.set_nodelay(true);
            Ok(BoxIo::new(s))
        })
    })
}

/// `RESPONSE_HEAD_BYTES_MAX` bounds what is read of a receiver's answer.
const RESPONSE_HEAD_BYTES_MAX: usize = 16 * 1024;

/// `Target` is a parsed `http://host[:port]/path` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// `host:port` to connect to.
    pub(crate) addr: String,
    /// The `Host` header.
    pub(crate) host: String,
    /// Path and query, starting with `/`.
    pub(crate) path: String,
}

/// `parse_url` accepts `http://host[:port][/path]`.
pub(crate) fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: only http:// webhook URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') || authority.chars().any(char::is_whitespace)
    {
        return Err(format!("{url:?}: bad host"));
    }
    let addr = if authority.starts_with('[') {
        if authority.contains("]:") {
            authority.to_string()
        } else {
            format!("{authority}:80")
        }
    } else if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok(Target {
        addr,
        host: authority.to_string(),
        path: path.to_string(),
    })
}

/// `post` sends one notification and returns the receiver's status code.
pub(crate) async fn post(
    connector: &Connector,
    url: &str,
    idempotency_key: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<u16, String> {
    let target = parse_url(url)?;
    let work = async {
        let mut io = connector(target.addr.clone())
            .await
            .map_err(|e| format!("connect {}: {e}", target.addr))?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: raftwatch\r\nContent-Type: application/json\r\nContent-Length: {}\r\nIdempotency-Key: {}\r\nConnection: close\r\n\r\n",
            target.path,
            target.host,
            body.len(),
            idempotency_key
        );
        io.write_all(head.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        io.write_all(body).await.map_err(|e| format!("send: {e}"))?;
        io.flush().await.map_err(|e| format!("send: {e}"))?;
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(code) = status_code(&buf)? {
                return Ok(code);
            }
            if buf.len() > RESPONSE_HEAD_BYTES_MAX {
                return Err("the receiver's answer has no status line".into());
            }
            let n = io
                .read(&mut chunk)
                .await
                .map_err(|e| format!("receive: {e}"))?;
            if n == 0 {
                return match status_code(&buf)? {
                    Some(code) => Ok(code),
                    None => Err("the receiver closed the connection without answering".into()),
                };
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// The status code of a response whose first line arrived.
fn status_code(buf: &[u8]) -> Result<Option<u16>, String> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&buf[..end]);
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(v), Some(Ok(code))) if v.starts_with("HTTP/1.") => Ok(Some(code)),
        _ => Err(format!("bad status line {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_and_without_port_and_path() {
        let t = parse_url("http://127.0.0.1:9000/hook?x=1").expect("ok");
        assert_eq!(t.addr, "127.0.0.1:9000");
        assert_eq!(t.path, "/hook?x=1");
        let t = parse_url("http://receiver").expect("ok");
        assert_eq!(t.addr, "receiver:80");
        assert_eq!(t.path, "/");
        assert!(parse_url("https://x/").is_err());
        assert!(parse_url("http:///x").is_err());
        assert!(parse_url("http://u@h/").is_err());
    }

    #[test]
    fn status_lines_are_read_and_garbage_refused() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Ok(Some(200)));
        assert_eq!(status_code(b"HTTP/1.0 503 x\r\n"), Ok(Some(503)));
        assert_eq!(status_code(b"HTTP/1.1 20"), Ok(None));
        assert!(status_code(b"SSH-2.0\r\n").is_err());
    }
}
