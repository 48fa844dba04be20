//! The API's metrics (requests and their latency by method, route template
//! and status) and `/metrics`, which encodes the whole process's registry.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::problem::ApiError;
use crate::state::AppState;

/// The labels of a request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method.
    pub method: String,
    /// Route template (`/v1/tenants/{tenant_id}/devices`), or `unmatched`,
    /// so label values stay few whatever clients send.
    pub route: String,
    /// HTTP status code.
    pub status: u16,
}

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// What the API counts.
#[derive(Clone)]
pub struct ApiMetrics {
    /// Requests answered.
    pub requests: Family<RequestLabels, Counter>,
    /// Seconds from receiving a request to its response head.
    pub duration: HistogramFamily,
}

impl ApiMetrics {
    /// Creates the metrics and registers them under `shadowbox_api_`.
    pub fn register(registry: &mut Registry) -> Self {
        fn latency() -> Histogram {
            // 1 ms to ~16 s.
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        }
        let metrics = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency),
        };
        let r = registry.sub_registry_with_prefix("shadowbox_api");
        r.register(
            "requests",
            "HTTP requests answered, by method, route and status",
            metrics.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "HTTP request latency, by method, route and status",
            metrics.duration.clone(),
        );
        metrics
    }
}

/// Middleware that records every request. Router layers run after routing,
/// so the route template is known.
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let labels = RequestLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    state.metrics.requests.get_or_create(&labels).inc();
    state
        .metrics
        .duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: every role's metrics in the OpenMetrics text format,
/// which Prometheus scrapes natively.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text"))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    encode(&state.registry)
}

/// `registry` as an OpenMetrics text response.
fn encode(registry: &Registry) -> Result<Response, ApiError> {
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, registry)
        .map_err(|e| ApiError::internal("encode metrics", &e))?;
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response())
}

/// Serves `/metrics` (every metric in `registry`) and `/healthz` on
/// `addr` until `shutdown`: how `shadowbox relay` and `shadowbox ingest`,
/// which have no API, are scraped and probed.
pub async fn serve_metrics(
    addr: std::net::SocketAddr,
    registry: Arc<Registry>,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let registry = registry.clone();
                async move { encode(&registry) }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind the metrics listener on {addr}"))?;
    tracing::info!(metrics.addr = %addr, "metrics listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("serve metrics")
}
