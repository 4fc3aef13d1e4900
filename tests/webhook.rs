//! `Receiver`: a webhook receiver on loopback for the alerting tests. It
//! records every POST (its `Idempotency-Key` header and JSON body) and
//! answers 200.

// Real sockets and threads in a test helper.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `Delivery` is one POST the receiver got.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// When it arrived.
    pub at: Instant,
    /// The `Idempotency-Key` header.
    pub key: String,
    /// The request path.
    pub path: String,
    /// The JSON body.
    pub body: Value,
}

/// `Receiver` listens on 127.0.0.1 until dropped (the thread stays parked
/// in `accept`; tests are short-lived processes).
#[derive(Debug)]
pub struct Receiver {
    addr: String,
    got: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    /// `start` binds a free port and serves in a background thread.
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let sink = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &sink);
                });
            }
        });
        Receiver { addr, got }
    }

    /// `url` is where to send notifications.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// `received` is every delivery so far, in arrival order.
    pub fn received(&self) -> Vec<Delivery> {
        self.got.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

fn serve(stream: TcpStream, sink: &Mutex<Vec<Delivery>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut len = 0usize;
    let mut key = String::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => len = value.parse().unwrap_or(0),
                "idempotency-key" => key = value.to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Ok(mut g) = sink.lock() {
        g.push(Delivery {
            at: Instant::now(),
            key,
            path,
            body,
        });
    }
    let mut stream = stream;
    stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    stream.flush()
}
