//! The node's HTTP endpoint: health, readiness, the node's own metrics,
//! the Prometheus remote-write receiver (`remote_write.rs`), the
//! Prometheus query API (`prom_api.rs`) and the alerting APIs
//! (`am_api.rs`: Prometheus's rules and alerts, Alertmanager's API v2).

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::{CONTROL_GROUP, Node};

/// `serve` binds the HTTP address and serves until the process exits.
pub(crate) async fn serve(node: Arc<Node>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(node.config.http_addr)
        .await
        .with_context(|| format!("cannot bind HTTP {}", node.config.http_addr))?;
    tracing::info!(http = %node.config.http_addr, "HTTP serving");
    // TCP_NODELAY on every accepted connection, as Go's net/http (and so
    // Prometheus) sets it, and as our gRPC listener does: with Nagle, a
    // response written in more than one segment can wait for a kept-alive
    // client's delayed ACK (up to 40 ms on Linux). Not measured here:
    // `raftwatch-bench` opens a connection per request.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on an HTTP connection");
        }
    });
    let app = Router::new()
        .route("/-/healthy", get(|| async { "ok\n" }))
        .route("/-/ready", get(ready))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/write",
            post(super::remote_write::receive)
                .layer(DefaultBodyLimit::max(node.config.request_bytes_max)),
        )
        .merge(query_api(node.config.request_bytes_max))
        .merge(super::am_api::routes())
        .with_state(node.clone());
    raftwatch_raft::rt::spawn(node.config.node_id, async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    Ok(())
}

/// The Prometheus query API (`prom_api.rs`): GET with a query string, or
/// POST with a form body of at most `body_bytes_max` bytes.
fn query_api(body_bytes_max: usize) -> Router<Arc<Node>> {
    use super::prom_api as api;
    Router::new()
        .route("/api/v1/query", get(api::query).post(api::query))
        .route(
            "/api/v1/query_range",
            get(api::query_range).post(api::query_range),
        )
        .route("/api/v1/series", get(api::series).post(api::series))
        .route("/api/v1/labels", get(api::labels).post(api::labels))
        .route("/api/v1/label/{name}/values", get(api::label_values))
        .route("/api/v1/status/buildinfo", get(api::buildinfo))
        .route("/api/v1/metadata", get(api::metadata))
        .layer(DefaultBodyLimit::max(body_bytes_max))
}

/// Ready once the control group and every local shard group has a leader.
async fn ready(State(node): State<Arc<Node>>) -> (StatusCode, String) {
    let status = node.local_status().await;
    let control = status
        .iter()
        .any(|g| g.group == CONTROL_GROUP && g.leader.is_some());
    let waiting: Vec<u64> = status
        .iter()
        .filter(|g| g.leader.is_none())
        .map(|g| g.group.0)
        .collect();
    if control && waiting.is_empty() {
        (StatusCode::OK, "ready\n".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: groups without a leader: {waiting:?}\n"),
        )
    }
}

/// The node's own metrics in the Prometheus text format (`metrics.rs`),
/// the per-group Raft gauges read from the groups as they are now.
async fn metrics(State(node): State<Arc<Node>>) -> Response {
    let groups = node.local_status().await;
    let log = node.host.log().stats();
    let transport = super::metrics::TransportStats {
        heartbeats: node.host.heartbeat_stats(),
        read_indexes: node.host.read_index_stats(),
    };
    let body = node.metrics.render(&groups, log, transport);
    ([(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)], body).into_response()
}
