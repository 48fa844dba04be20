//! The shadowbox operators' REST API (the contract is in the design doc).
//!
//! A request flows through these layers, outermost first:
//!
//! - request id (`x-request-id`, set when missing, echoed back) and one
//!   structured log line per request;
//! - the body limit ([`ApiSettings::max_body_bytes`]), checked before any
//!   parsing;
//! - `problem`: every 4xx/5xx leaves as `application/problem+json`, and
//!   `DbError` becomes a status in one place;
//! - [`metrics`]: requests and latency by method, route template and
//!   status;
//! - `routes`: the scope first (`auth`'s extractors: 401, then a
//!   cross-tenant 404 or a non-admin 403), then the handler, which calls
//!   `shadowbox-db` inside one transaction it owns; `views` shape the
//!   JSON, `pagination` the lists, `if_match` the conditional writes,
//!   `idempotency` the `Idempotency-Key` of writes.
//!
//! `events` runs the event streams of `routes::events`; `send_timeout`
//! drops connections whose client stopped reading.
//!
//! `routes::operations` serves `/healthz`, `/readyz` (`readiness`: a
//! database ping, and a real MQTT connection through
//! `shadowbox_mqtt::probe`) and `/metrics`; `/openapi.json` is generated
//! from the handlers' annotations (`openapi`), every constraint the server
//! enforces stated from the rule's own constant (`constraints`).
//!
//! Depends on `shadowbox-core`, `shadowbox-db`, `shadowbox-mqtt` and
//! `shadowbox-telemetry`; writes no SQL.

mod auth;
mod constraints;
mod events;
mod idempotency;
mod if_match;
mod key_cache;
pub mod metrics;
mod openapi;
mod pagination;
mod problem;
mod readiness;
mod rollout_view;
mod routes;
mod send_timeout;
pub mod settings;
pub mod state;
mod views;

pub use metrics::ApiMetrics;
pub use settings::ApiSettings;
pub use state::AppState;

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::LatencyUnit;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// The whole HTTP application for `state`.
pub fn router(state: AppState) -> Router {
    let (routes, mut openapi) = routes::api_router().split_for_parts();
    constraints::state_body_limits(&mut openapi, &state.settings);
    let mut openapi = serde_json::to_value(&openapi).expect("the OpenAPI document serializes");
    constraints::add_document_value(&mut openapi);
    let openapi: Arc<str> = openapi.to_string().into();
    let serve_openapi = move || {
        let body = openapi.clone();
        async move {
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body.to_string(),
            )
        }
    };
    let body_limit = state.settings.max_body_bytes;
    routes
        .route("/openapi.json", get(serve_openapi))
        .fallback(problem::no_route)
        .layer(from_fn_with_state(state.metrics.clone(), metrics::track))
        .layer(from_fn(problem::bare_errors_to_problems))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let request_id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!(
                        "http",
                        http.method = %request.method(),
                        http.path = %request.uri().path(),
                        request_id,
                    )
                })
                .on_response(
                    DefaultOnResponse::new()
                        .level(Level::INFO)
                        .latency_unit(LatencyUnit::Micros),
                )
                // ApiError logs internal errors once, with their cause.
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` is cancelled, then ends
/// the event streams and lets in-flight requests finish (a client that
/// reads nothing is dropped after `send_timeout::SHUTDOWN_SEND_TIMEOUT`).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr().context("listener address")?;
    tracing::info!(http.addr = %addr, "api listening");
    tokio::spawn(state.events.clone().run(
        state.pool.clone(),
        state.settings.events_poll_interval,
        shutdown.clone(),
    ));
    let listener =
        send_timeout::GuardedListener::new(listener, state.settings.send_timeout, shutdown.clone());
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("serve http")?;
    tracing::info!("api stopped");
    Ok(())
}

/// `shadowbox api` and the API of `shadowbox serve`: applies migrations,
/// binds [`ApiSettings::http_addr`] and serves until `shutdown`.
/// `metrics` must be registered in `registry` (see [`ApiMetrics::register`]).
pub async fn run(
    pool: PgPool,
    settings: ApiSettings,
    registry: Arc<Registry>,
    metrics: ApiMetrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    shadowbox_db::migrate(&pool)
        .await
        .context("apply database migrations")?;
    if settings.admin_token.is_none() {
        tracing::warn!("SHADOWBOX_ADMIN_TOKEN is not set: admin routes are disabled");
    }
    let listener = TcpListener::bind(settings.http_addr)
        .await
        .with_context(|| format!("bind {}", settings.http_addr))?;
    serve(
        listener,
        AppState::new(pool, settings, registry, metrics),
        shutdown,
    )
    .await
}
