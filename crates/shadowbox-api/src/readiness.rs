//! `/healthz` and `/readyz`: is the process up, and can it reach the
//! database and the broker. Readiness results are cached briefly and
//! computed by one request at a time, so scrapers cannot hammer either.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use tokio::sync::Mutex;
use utoipa::ToSchema;

use crate::mqtt_probe::probe;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

/// The body of a successful health or readiness check.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// The cached outcome of the last readiness check.
#[derive(Default)]
pub struct Readiness {
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Readiness {
    /// The readiness of `state`'s dependencies, from the cache when it is
    /// younger than `readiness_cache`. `Err` names what is unreachable.
    async fn check(&self, state: &AppState) -> Result<(), String> {
        let mut last = self.last.lock().await;
        if let Some((at, result)) = &*last
            && at.elapsed() < state.settings.readiness_cache
        {
            return result.clone();
        }
        let result = check_now(state).await;
        *last = Some((Instant::now(), result.clone()));
        result
    }
}

async fn check_now(state: &AppState) -> Result<(), String> {
    let timeout = state.settings.readiness_timeout;
    let (database, broker) = tokio::join!(
        ping_database(state, timeout),
        probe(&state.settings.broker, timeout)
    );
    let mut failed = Vec::new();
    // The causes are logged here, once per check, and not shown to the
    // unauthenticated caller.
    if let Err(e) = database {
        tracing::warn!(error = %e, "readiness: database unreachable");
        failed.push("database unreachable");
    }
    if let Err(e) = broker {
        tracing::warn!(error = %e, broker = %state.settings.broker, "readiness: broker unreachable");
        failed.push("broker unreachable");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join(", "))
    }
}

async fn ping_database(state: &AppState, timeout: Duration) -> Result<(), String> {
    use sqlx::Connection as _;
    let ping = async {
        let mut conn = state.pool.acquire().await?;
        conn.ping().await
    };
    match tokio::time::timeout(timeout, ping).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// `GET /healthz`: the process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "the process is up", body = Health))
)]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /readyz`: 200 when the database and the broker are reachable, 503
/// naming the one that is not.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "database and broker reachable", body = Health),
        (status = 503, description = "`detail` names what is unreachable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state
        .readiness
        .check(&state)
        .await
        .map(|()| Json(Health { status: "ok" }))
        .map_err(ApiError::unavailable)
}
