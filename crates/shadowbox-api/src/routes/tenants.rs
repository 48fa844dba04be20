//! Admin routes: tenants and their API keys.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use shadowbox_core::TenantId;

use crate::auth::Caller;
use crate::keys;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;
use crate::views::{ApiKeyView, TenantView};

/// Creates the tenant; idempotent.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant_id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, description = "1-128 of A-Z a-z 0-9 _ - . :")),
    responses(
        (status = 201, description = "created", body = TenantView),
        (status = 200, description = "already existed", body = TenantView),
        (status = "4XX", description = "problem", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn put_tenant(
    caller: Caller,
    State(state): State<AppState>,
    Path(tenant): Path<TenantId>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    caller.require_admin()?;
    let created = shadowbox_db::tenants::create_tenant(&state.pool, &tenant).await?;
    if created {
        tracing::info!(tenant = %tenant, "tenant created");
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(TenantView {
            tenant_id: tenant.into_string(),
        }),
    ))
}

/// Creates an API key for the tenant; the secret is shown once.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant_id}/api-keys",
    tag = "admin",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, description = "the tenant")),
    responses(
        (status = 201, description = "created; `secret` is never shown again", body = ApiKeyView),
        (status = "4XX", description = "problem (404: no such tenant)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn create_api_key(
    caller: Caller,
    State(state): State<AppState>,
    Path(tenant): Path<TenantId>,
) -> Result<(StatusCode, Json<ApiKeyView>), ApiError> {
    caller.require_admin()?;
    let key = keys::create_api_key(&state.pool, &tenant).await?;
    tracing::info!(tenant = %tenant, key.id = %key.id, "api key created");
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyView {
            id: key.id,
            tenant_id: tenant.into_string(),
            secret: key.secret,
        }),
    ))
}
