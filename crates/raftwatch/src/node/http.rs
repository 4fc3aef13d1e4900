//! The node's HTTP endpoint: health, readiness, the node's own metrics,
//! the Prometheus remote-write receiver (`remote_write.rs`) and the
//! Prometheus query API (`prom_api.rs`).

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

use super::{CONTROL_GROUP, Node};

/// `serve` binds the HTTP address and serves until the process exits.
pub(crate) async fn serve(node: Arc<Node>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(node.config.http_addr)
        .await
        .with_context(|| format!("cannot bind HTTP {}", node.config.http_addr))?;
    tracing::info!(http = %node.config.http_addr, "HTTP serving");
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

/// Per-group Raft state and write routing in Prometheus text format.
async fn metrics(State(node): State<Arc<Node>>) -> String {
    let mut out = String::new();
    let id = node.id.0;
    out.push_str("# HELP raftwatch_group_term Current Raft term of each group on this node.\n# TYPE raftwatch_group_term gauge\n");
    let status = node.local_status().await;
    for g in &status {
        out.push_str(&format!(
            "raftwatch_group_term{{node=\"{id}\",group=\"{}\"}} {}\n",
            g.group.0, g.term
        ));
    }
    out.push_str("# HELP raftwatch_group_is_leader Whether this node leads the group.\n# TYPE raftwatch_group_is_leader gauge\n");
    for g in &status {
        out.push_str(&format!(
            "raftwatch_group_is_leader{{node=\"{id}\",group=\"{}\"}} {}\n",
            g.group.0,
            u8::from(g.is_leader)
        ));
    }
    out.push_str("# HELP raftwatch_group_applied_index Last applied log index.\n# TYPE raftwatch_group_applied_index gauge\n");
    for g in &status {
        out.push_str(&format!(
            "raftwatch_group_applied_index{{node=\"{id}\",group=\"{}\"}} {}\n",
            g.group.0,
            g.applied_index.unwrap_or(0)
        ));
    }
    // The node-wide Raft log: what group commit buys (entries per fsync)
    // and what replication costs on disk (bytes per entry).
    let log = node.host.log().stats();
    for (name, help, value) in [
        (
            "raftwatch_log_fsyncs_total",
            "fdatasync calls on the node's Raft log.",
            log.fsyncs_count,
        ),
        (
            "raftwatch_log_entries_appended_total",
            "Raft entries appended to the node's log (all groups).",
            log.entries_appended_count,
        ),
        (
            "raftwatch_log_records_total",
            "Records made durable in the node's log.",
            log.records_count,
        ),
        (
            "raftwatch_log_bytes_written_total",
            "Bytes appended to the node's log segments.",
            log.bytes_written,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{node=\"{id}\"}} {value}\n"
        ));
    }
    let c = &node.write_counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    out.push_str("# HELP raftwatch_write_requests_total Ingest.Write requests past the limit and epoch checks, by routing: shard (the client routed it to one shard, WriteRequest.shard) or any.\n# TYPE raftwatch_write_requests_total counter\n");
    for (routing, v) in [("shard", &c.requests_pinned), ("any", &c.requests_any)] {
        out.push_str(&format!(
            "raftwatch_write_requests_total{{node=\"{id}\",routing=\"{routing}\"}} {}\n",
            load(v)
        ));
    }
    out.push_str("# HELP raftwatch_write_shard_parts_total Attempts to write one shard's part of an Ingest.Write request, by route: local (this node's replica) or forwarded (another node's leader, over ShardWrite).\n# TYPE raftwatch_write_shard_parts_total counter\n");
    for (route, v) in [("local", &c.parts_local), ("forwarded", &c.parts_forwarded)] {
        out.push_str(&format!(
            "raftwatch_write_shard_parts_total{{node=\"{id}\",route=\"{route}\"}} {}\n",
            load(v)
        ));
    }
    out
}
