//! A minimal HTTP client for the bench's HTTP targets (remote write and
//! the Prometheus query API), on tokio's TCP stream.
//!
//! One request per connection, sent as HTTP/1.0: the server then answers
//! without chunked encoding and closes the connection after the body, so
//! the client needs neither a connection pool nor a chunk decoder (it
//! still decodes `Transfer-Encoding: chunked` if a server sends it). The
//! connection setup this costs on loopback (tens of µs) is part of every
//! measured latency, the same for every server measured.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response the client reads (a range query over 10,000
/// series can be tens of MB of JSON).
const RESPONSE_BYTES_MAX: usize = 1 << 30;

/// `HttpUrl` is a parsed `http://HOST:PORT[/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `HOST:PORT`.
    pub authority: String,
    /// The path, `/` when none was given.
    pub path: String,
}

impl HttpUrl {
    /// `parse` accepts `http://HOST:PORT[/path]` (no TLS, no user info, no
    /// query string).
    pub fn parse(text: &str) -> anyhow::Result<HttpUrl> {
        let rest = text
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("{text:?} is not an http:// URL"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("{text:?} names no port"))?;
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            bail!("{text:?} is not http://HOST:PORT[/path]");
        }
        if path.contains('?') || authority.contains('@') {
            bail!("{text:?}: no query string or user info, please");
        }
        Ok(HttpUrl {
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// `Response` is a status, the headers (names lower-cased) and the body.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower-case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, decoded from chunked transfer encoding if it was.
    pub body: Vec<u8>,
}

impl Response {
    /// `header` is the first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `request` sends one request to `authority` (`HOST:PORT`) and reads the
/// whole answer, all within `timeout`. `target` is the path and query.
pub async fn request(
    authority: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> anyhow::Result<Response> {
    tokio::time::timeout(timeout, exchange(authority, method, target, headers, body))
        .await
        .map_err(|_| anyhow!("{method} {target}: no answer within {timeout:?}"))?
}

async fn exchange(
    authority: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<Response> {
    let mut stream = TcpStream::connect(authority)
        .await
        .with_context(|| format!("cannot connect to {authority}"))?;
    stream.set_nodelay(true)?;
    let mut head = format!(
        "{method} {target} HTTP/1.0\r\nHost: {authority}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut message = head.into_bytes();
    message.extend_from_slice(body);
    stream.write_all(&message).await?;
    let mut raw = Vec::new();
    (&mut stream)
        .take(RESPONSE_BYTES_MAX as u64 + 1)
        .read_to_end(&mut raw)
        .await
        .with_context(|| format!("reading the answer to {method} {target}"))?;
    if raw.len() > RESPONSE_BYTES_MAX {
        bail!("the answer to {method} {target} exceeds {RESPONSE_BYTES_MAX} bytes");
    }
    parse_response(raw)
}

/// Splits a complete HTTP/1.x response into status, headers and body.
fn parse_response(raw: Vec<u8>) -> anyhow::Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("the answer has no end of headers ({} bytes)", raw.len()))?;
    let head = std::str::from_utf8(&raw[..end]).context("response headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body)?;
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if body.len() < len {
            bail!("the body ended after {} of {len} bytes", body.len());
        }
        body.truncate(len);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Decodes a chunked body (trailers ignored).
fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("truncated chunk header"))?;
        let size_text = std::str::from_utf8(&rest[..line_end])?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size + 2 {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// `encode_query_value` percent-encodes `text` for a query string
/// (`application/x-www-form-urlencoded`, spaces as `%20`).
pub fn encode_query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            HttpUrl::parse("http://127.0.0.1:9090").unwrap(),
            HttpUrl {
                authority: "127.0.0.1:9090".into(),
                path: "/".into()
            }
        );
        assert_eq!(
            HttpUrl::parse("http://localhost:7601/api/v1/write")
                .unwrap()
                .path,
            "/api/v1/write"
        );
        for bad in [
            "https://h:1",
            "http://h",
            "http://:1",
            "http://h:0",
            "http://h:1/x?y=1",
            "grpc://h:1",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn responses() {
        let r = parse_response(
            b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabcdef"
                .to_vec(),
        )
        .unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.body, b"abc");
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
                .to_vec(),
        )
        .unwrap();
        assert_eq!(r.body, b"abcde");
        let r = parse_response(b"HTTP/1.0 204 No Content\r\n\r\n".to_vec()).unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        assert!(
            parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nabc".to_vec()).is_err()
        );
        assert!(parse_response(b"garbage".to_vec()).is_err());
    }

    #[test]
    fn query_values() {
        assert_eq!(
            encode_query_value(r#"sum by (job) (rate(x{a="b"}[5m]))"#),
            "sum%20by%20%28job%29%20%28rate%28x%7Ba%3D%22b%22%7D%5B5m%5D%29%29"
        );
        assert_eq!(encode_query_value("1700000000.5"), "1700000000.5");
    }
}
