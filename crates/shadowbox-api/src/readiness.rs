//! `/healthz` and `/readyz`: is the process up, and can it reach the
//! database and a broker. Readiness results are cached briefly and
//! computed by one request at a time, so scrapers cannot hammer either.
//!
//! The broker check is a real MQTT connection (TLS and credentials
//! included) with the process's own broker settings. With several brokers
//! it stays on the one that answered last and tries the others, in list
//! order, only when that one fails, as the relay and the ingester do.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use tokio::sync::Mutex;
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

/// The cached outcome of the last readiness check.
#[derive(Default)]
pub struct Readiness {
    last: Mutex<Checked>,
}

#[derive(Default)]
struct Checked {
    /// When, and what: the broker in use, or what is unreachable.
    result: Option<(Instant, Result<String, String>)>,
    /// The index of the broker that answered last.
    broker: usize,
}

impl Readiness {
    /// The readiness of `state`'s dependencies, from the cache when it is
    /// younger than `readiness_cache`. `Ok` names the broker in use, `Err`
    /// what is unreachable.
    async fn check(&self, state: &AppState) -> Result<String, String> {
        let mut last = self.last.lock().await;
        if let Some((at, result)) = &last.result
            && at.elapsed() < state.settings.readiness_cache
        {
            return result.clone();
        }
        let result = check_now(state, &mut last.broker).await;
        last.result = Some((Instant::now(), result.clone()));
        result
    }
}

async fn check_now(state: &AppState, broker: &mut usize) -> Result<String, String> {
    let timeout = state.settings.readiness_timeout;
    let mqtt = &state.settings.mqtt;
    let (database, brokers) = tokio::join!(
        ping_database(state, timeout),
        shadowbox_mqtt::probe::probe_any(mqtt, *broker, timeout)
    );
    let mut failed = Vec::new();
    // The database's cause is logged, not shown to the unauthenticated
    // caller; a broker's is both (it holds no secret).
    if let Err(e) = database {
        tracing::warn!(error = %e, "readiness: database unreachable");
        failed.push("database unreachable".to_owned());
    }
    match brokers {
        Ok(index) => *broker = index,
        Err(failures) => {
            let reasons: Vec<String> = failures
                .iter()
                .map(|(broker, error)| format!("{broker} ({error})"))
                .collect();
            let reasons = reasons.join("; ");
            tracing::warn!(brokers = %reasons, "readiness: broker unreachable");
            failed.push(format!("broker unreachable: {reasons}"));
        }
    }
    if failed.is_empty() {
        Ok(mqtt.brokers[*broker].to_string())
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
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state
        .readiness
        .check(&state)
        .await
        .map(|broker| {
            Json(Health {
                status: "ok",
                broker: Some(broker),
            })
        })
        .map_err(ApiError::unavailable)
}
