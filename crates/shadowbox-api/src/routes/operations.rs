//! The operations routes, without auth, for probes and scrapers:
//! `/healthz` (the process is up), `/readyz` (database and a broker
//! reachable, see [`crate::readiness`]) and `/metrics` (the whole
//! process's registry, every role's metrics).

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::{ApiError, Problem};
use crate::state::AppState;

/// The body of a successful health or readiness check.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    /// `/readyz` only: the broker in use (`mqtt://host:port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
}

/// `GET /healthz`: the process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "the process is up", body = Health))
)]
pub(super) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        broker: None,
    })
}

/// `GET /readyz`: 200 when the database and a broker are reachable (naming
/// the broker in use), 503 naming what is not (for a broker, with why).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "database and broker reachable; `broker` is the one in use", body = Health),
        (status = 503, description = "`detail` names what is unreachable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state
        .readiness
        .check(&state.pool, &state.settings)
        .await
        .map(|broker| {
            Json(Health {
                status: "ok",
                broker: Some(broker),
            })
        })
        .map_err(ApiError::unavailable)
}

/// `GET /metrics`: every role's metrics in the OpenMetrics text format,
/// which Prometheus scrapes natively.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text"))
)]
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    shadowbox_telemetry::metrics_response(&state.registry)
}
