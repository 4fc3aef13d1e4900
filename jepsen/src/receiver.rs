//! The webhook receiver: an HTTP server inside its own namespace that
//! records every notification POSTed to it (the `Idempotency-Key` header,
//! the body, the arrival time) and answers 200.

use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use crate::history::Recorder;

/// `Delivery` is one POST the receiver got.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The `Idempotency-Key` header ("" when absent).
    pub key: String,
    /// The body.
    pub body: String,
    /// Arrival, ns since the start of the run.
    pub at_ns: u64,
}

/// `Receiver` holds what arrived.
#[derive(Debug, Clone)]
pub struct Receiver {
    got: Arc<Mutex<Vec<Delivery>>>,
    rec: Arc<Recorder>,
}

impl Receiver {
    /// `new` makes an empty receiver that timestamps with `rec`'s clock.
    pub fn new(rec: Arc<Recorder>) -> Receiver {
        Receiver {
            got: Arc::default(),
            rec,
        }
    }

    /// `serve` binds `addr` (on the calling runtime, so inside its
    /// namespace) and serves until the runtime stops.
    pub async fn serve(self, addr: std::net::SocketAddr) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let app = Router::new().route("/hook", post(hook)).with_state(self);
        axum::serve(listener, app).await
    }

    /// Every delivery so far, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.got
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let d = Delivery {
        key,
        body,
        at_ns: r.rec.now_ns(),
    };
    r.got.lock().unwrap_or_else(PoisonError::into_inner).push(d);
    StatusCode::OK
}
