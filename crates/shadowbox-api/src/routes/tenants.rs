//! Admin routes: tenants and their API keys.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::auth::AdminScope;
use crate::constraints::Identifier;
use crate::problem::{ApiError, ClientProblem, Problem};
use crate::state::AppState;
use crate::views::{ApiKeyView, TenantView};

/// Creates the tenant; idempotent.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant_id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("tenant_id" = inline(Identifier), Path, description = "1-128 of A-Z a-z 0-9 _ - . :")),
    responses(
        (status = 201, description = "created", body = TenantView),
        (status = 200, description = "already existed", body = TenantView),
        ClientProblem,
    )
)]
pub(super) async fn put_tenant(
    AdminScope { tenant }: AdminScope,
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
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
    params(("tenant_id" = inline(Identifier), Path, description = "the tenant")),
    responses(
        (status = 201, description = "created; `secret` is never shown again", body = ApiKeyView),
        (status = 404, description = "no such tenant", body = Problem, content_type = "application/problem+json"),
        ClientProblem,
    )
)]
pub(super) async fn create_api_key(
    AdminScope { tenant }: AdminScope,
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<ApiKeyView>), ApiError> {
    let key = shadowbox_db::api_keys::create_api_key(&state.pool, &tenant).await?;
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
