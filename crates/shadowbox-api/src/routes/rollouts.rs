//! Rollouts: create (the device set is fixed here), read with progress,
//! list, and the operators' transitions (pause, resume, cancel,
//! rollback). The waves are written by the wave machine
//! (`shadowbox-rollout`), never by a request.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use shadowbox_core::document::into_document;
use shadowbox_core::duration;
use shadowbox_core::rollout::{
    MAX_SELECTOR_DEVICE_IDS, RolloutStatus, check_fraction, check_waves,
};
use shadowbox_core::tags::{Tags, check_tags};
use shadowbox_core::{DeviceId, DocumentLimits, TenantId};
use shadowbox_db::rollouts::{
    NewRollout, Selector, create_rollout, get_rollout, list_rollouts, transition,
};
use shadowbox_db::tenants::tenant_exists;
use utoipa::{IntoParams, ToSchema};

use crate::auth::TenantScope;
use crate::constraints::{IdempotencyKeyHeader, Identifier};
use crate::idempotency::{Claimed, Idempotent};
use crate::pagination::{CursorKind, Page, PageRequest};
use crate::problem::{ApiError, ClientProblem, Problem};
use crate::rollout_view::RolloutView;
use crate::state::AppState;

/// The body of `POST .../rollouts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRollout {
    /// Exactly one of `{"device_ids": [...]}` (at most 10000),
    /// `{"tags": {...}}` (devices having every tag) or `{"all": true}`;
    /// active devices only, fixed now.
    #[schema(schema_with = crate::constraints::rollout_selector)]
    selector: SelectorBody,
    /// The RFC 7396 merge patch applied to each device's own document.
    #[schema(value_type = crate::constraints::DesiredDocument)]
    patch: Value,
    /// Strictly increasing cumulative fractions in (0, 1], the last one
    /// 1.0 (default `[1.0]`).
    #[schema(schema_with = crate::constraints::waves)]
    waves: Option<Vec<f64>>,
    /// Fraction of the devices written so far that must report their new
    /// version before the next wave starts (default 1.0).
    #[schema(schema_with = crate::constraints::fraction)]
    min_converged: Option<f64>,
    /// A wave that has not met `min_converged` after this long (`10m`)
    /// aborts the rollout; the clock stops while paused (default none).
    #[schema(schema_with = crate::constraints::duration)]
    wave_timeout: Option<String>,
    /// Abort as soon as more than this fraction of the written devices
    /// rejected their version (default none).
    #[schema(schema_with = crate::constraints::fraction)]
    max_rejected: Option<f64>,
}

/// A rollout's selector: exactly one of its fields (its schema:
/// `crate::constraints::rollout_selector`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SelectorBody {
    /// These devices (at most 10000; duplicates count once).
    device_ids: Option<Vec<DeviceId>>,
    /// Devices having every one of these tags.
    tags: Option<Tags>,
    /// `true`: every active device of the tenant.
    all: Option<bool>,
}

impl SelectorBody {
    /// The selector, when exactly one field is given and it selects
    /// something.
    fn check(self) -> Result<Selector, ApiError> {
        let selector = match (self.device_ids, self.tags, self.all) {
            (Some(ids), None, None) => Selector::DeviceIds(ids),
            (None, Some(tags), None) => Selector::Tags(tags),
            (None, None, Some(all)) => Selector::All(all),
            _ => {
                return Err(invalid(
                    "selector takes exactly one of device_ids, tags and all",
                ));
            }
        };
        match &selector {
            Selector::DeviceIds(ids) if ids.is_empty() => {
                Err(invalid("selector.device_ids is empty"))
            }
            Selector::DeviceIds(ids) if ids.len() > MAX_SELECTOR_DEVICE_IDS => {
                Err(invalid(format!(
                    "selector.device_ids lists {} devices, at most {MAX_SELECTOR_DEVICE_IDS} are allowed: select by tags instead",
                    ids.len()
                )))
            }
            Selector::Tags(tags) if tags.is_empty() => Err(invalid(
                "selector.tags is empty: use {\"all\": true} for every device",
            )),
            Selector::Tags(tags) => Ok(check_tags(tags).map(|()| selector)?),
            Selector::All(false) => Err(invalid("selector.all must be true")),
            Selector::DeviceIds(_) | Selector::All(true) => Ok(selector),
        }
    }
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid-rollout", "Invalid rollout", detail)
}

impl CreateRollout {
    /// The rollout the body asks for, checked against the rules.
    fn check(self, limits: &DocumentLimits) -> Result<NewRollout, ApiError> {
        let selector = self.selector.check()?;
        let patch = into_document(self.patch)?;
        limits.check(&patch)?;
        let waves = self.waves.unwrap_or_else(|| vec![1.0]);
        check_waves(&waves).map_err(|e| invalid(e.to_string()))?;
        let min_converged = self.min_converged.unwrap_or(1.0);
        check_fraction("min_converged", min_converged).map_err(|e| invalid(e.to_string()))?;
        if let Some(max) = self.max_rejected {
            check_fraction("max_rejected", max).map_err(|e| invalid(e.to_string()))?;
        }
        let wave_timeout = self
            .wave_timeout
            .as_deref()
            .map(duration::parse)
            .transpose()
            .map_err(|e| invalid(format!("wave_timeout: {e}")))?;
        if wave_timeout.is_some_and(|t| t.is_zero()) {
            return Err(invalid("wave_timeout must be longer than 0"));
        }
        Ok(NewRollout {
            selector,
            patch,
            waves,
            min_converged,
            wave_timeout,
            max_rejected: self.max_rejected,
        })
    }
}

/// Creates a rollout: fixes its device set and lets the wave machine
/// write it, wave by wave.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant_id}/rollouts",
    tag = "rollouts",
    security(("bearer" = [])),
    params(("tenant_id" = inline(Identifier), Path, description = "the tenant"), IdempotencyKeyHeader),
    request_body = CreateRollout,
    responses(
        (status = 201, description = "created, `running`; a replay carries `Idempotent-Replayed: true`", body = RolloutView),
        (status = 413, description = "the patch is larger than a document may be", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the selector matches no active device of the tenant now", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "an empty or invalid selector, a patch that is not an object, invalid waves or fractions or timeout; or the `Idempotency-Key` was used for another request", body = Problem, content_type = "application/problem+json"),
        ClientProblem,
    )
)]
pub(super) async fn create(
    TenantScope { tenant, .. }: TenantScope,
    State(state): State<AppState>,
    Idempotent {
        key,
        body: Json(body),
    }: Idempotent<Json<CreateRollout>>,
) -> Result<Response, ApiError> {
    let new = body.check(&state.settings.limits)?;
    let mut tx = state.pool.begin().await?;
    let pending = match key.claim(&mut tx, &tenant).await? {
        Claimed::Replay(answer) => return Ok(answer),
        Claimed::Fresh(pending) => pending,
    };
    let id = create_rollout(&mut tx, &tenant, &new).await?;
    let rollout = get_rollout(&mut tx, &tenant, id)
        .await?
        .expect("created in this transaction");
    let location = HeaderValue::from_str(&format!("/v1/tenants/{tenant}/rollouts/{id}"))
        .expect("identifiers are valid header characters");
    tracing::info!(tenant = %tenant, rollout = id, selected = rollout.record.selected, "rollout created");
    pending
        .commit(
            tx,
            (
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                Json(RolloutView::from(rollout)),
            ),
        )
        .await
}

/// The `{rollout_id}` of a rollout route's path.
#[derive(Deserialize)]
pub(super) struct RolloutPath {
    rollout_id: i64,
}

/// Reads a rollout with its waves' progress.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant_id}/rollouts/{rollout_id}",
    tag = "rollouts",
    security(("bearer" = [])),
    params(
        ("tenant_id" = inline(Identifier), Path, description = "the tenant"),
        ("rollout_id" = i64, Path, description = "the rollout"),
    ),
    responses(
        (status = 200, description = "the rollout", body = RolloutView),
        ClientProblem,
    )
)]
pub(super) async fn get(
    TenantScope { tenant, .. }: TenantScope,
    State(state): State<AppState>,
    Path(RolloutPath { rollout_id }): Path<RolloutPath>,
) -> Result<Json<RolloutView>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let rollout = get_rollout(&mut conn, &tenant, rollout_id)
        .await?
        .ok_or_else(|| ApiError::not_found("rollout not found"))?;
    Ok(Json(rollout.into()))
}

/// Page of `GET .../rollouts`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListRollouts {
    /// Page size, 1-1000 (default 100).
    #[param(schema_with = crate::constraints::limit)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = crate::constraints::rollout_cursor)]
    cursor: Option<String>,
}

/// Lists the tenant's rollouts, newest first (without their waves' progress:
/// read one for it).
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant_id}/rollouts",
    tag = "rollouts",
    security(("bearer" = [])),
    params(("tenant_id" = inline(Identifier), Path, description = "the tenant"), ListRollouts),
    responses(
        (status = 200, description = "one page, newest first", body = Page<RolloutView>),
        ClientProblem,
    )
)]
pub(super) async fn list(
    TenantScope { tenant, .. }: TenantScope,
    State(state): State<AppState>,
    Query(query): Query<ListRollouts>,
) -> Result<Json<Page<RolloutView>>, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref(), CursorKind::Rollouts)?;
    if !tenant_exists(&state.pool, &tenant).await? {
        return Err(ApiError::not_found("tenant not found"));
    }
    let rows = list_rollouts(&state.pool, &tenant, page.before_id()?, page.fetch()).await?;
    let rows = rows.into_iter().map(RolloutView::summary).collect();
    Ok(Json(
        page.page(rows, CursorKind::Rollouts, |r| r.id.to_string()),
    ))
}

/// Moves the rollout to `to` and answers it.
async fn steer(
    state: &AppState,
    tenant: &TenantId,
    id: i64,
    to: RolloutStatus,
) -> Result<Json<RolloutView>, ApiError> {
    let mut tx = state.pool.begin().await?;
    transition(&mut tx, tenant, id, to).await?;
    let rollout = get_rollout(&mut tx, tenant, id)
        .await?
        .expect("changed in this transaction");
    tx.commit().await?;
    tracing::info!(tenant = %tenant, rollout = id, status = %to, "rollout steered");
    Ok(Json(rollout.into()))
}

macro_rules! steering_route {
    ($name:ident, $action:literal, $to:expr, $doc:literal, $from:literal) => {
        #[doc = $doc]
        #[utoipa::path(
            post,
            path = concat!("/v1/tenants/{tenant_id}/rollouts/{rollout_id}/", $action),
            tag = "rollouts",
            security(("bearer" = [])),
            params(
                ("tenant_id" = inline(Identifier), Path, description = "the tenant"),
                ("rollout_id" = i64, Path, description = "the rollout"),
            ),
            responses(
                (status = 200, description = "the rollout after the change", body = RolloutView),
                (status = 409, description = $from, body = Problem, content_type = "application/problem+json"),
                ClientProblem,
            )
        )]
        pub(super) async fn $name(
            TenantScope { tenant, .. }: TenantScope,
            State(state): State<AppState>,
            Path(RolloutPath { rollout_id }): Path<RolloutPath>,
        ) -> Result<Json<RolloutView>, ApiError> {
            steer(&state, &tenant, rollout_id, $to).await
        }
    };
}

steering_route!(
    pause,
    "pause",
    RolloutStatus::Paused,
    "Pauses a running rollout: nothing more is written and the wave timeout's clock stops (rejections still count).",
    "the rollout is not running"
);
steering_route!(
    resume,
    "resume",
    RolloutStatus::Running,
    "Resumes a paused rollout.",
    "the rollout is not paused"
);
steering_route!(
    cancel,
    "cancel",
    RolloutStatus::Cancelled,
    "Cancels a running or paused rollout: devices not written yet are never written.",
    "the rollout is not running or paused"
);
steering_route!(
    rollback,
    "rollback",
    RolloutStatus::RolledBack,
    "Rolls back an aborted, cancelled or completed rollout: each written device whose desired version is still the rollout's gets its previous document back, as a new version; devices changed since are left alone and counted.",
    "the rollout is not aborted, cancelled or completed"
);
