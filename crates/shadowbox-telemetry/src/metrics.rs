//! Metrics out: a Prometheus registry encoded as OpenMetrics text, which
//! Prometheus scrapes natively, and the small listener that serves it for
//! a role without the API.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The media type of the encoded metrics.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric in `registry` as an OpenMetrics text response (a 500,
/// logged, if encoding fails).
pub fn metrics_response(registry: &Registry) -> Response {
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, registry) {
        tracing::error!(error = %e, "encode metrics");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
        )],
        body,
    )
        .into_response()
}

/// The `/metrics` (every metric in `registry`) and `/healthz` routes of a
/// role without the API.
pub fn metrics_router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move { metrics_response(&registry) }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
}

/// Serves [`metrics_router`] on `addr` until `shutdown`: how `shadowbox
/// relay` and `shadowbox ingest`, which have no API, are scraped and
/// probed.
pub async fn serve_metrics(
    addr: SocketAddr,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind the metrics listener on {addr}"))?;
    tracing::info!(metrics.addr = %addr, "metrics listening");
    axum::serve(listener, metrics_router(registry))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("serve metrics")
}
