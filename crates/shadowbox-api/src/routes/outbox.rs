//! The tenant's outbox: list rows by status, revive a dead row.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use shadowbox_core::OutboxStatus;
use shadowbox_db::outbox::{OutboxFilter, list_rows, revive_dead};
use shadowbox_db::tenants::tenant_exists;
use utoipa::IntoParams;

use crate::auth::TenantScope;
use crate::constraints::Identifier;
use crate::pagination::{CursorKind, Page, PageRequest};
use crate::problem::{ApiError, ClientProblem, Problem};
use crate::state::AppState;
use crate::views::OutboxEntry;

/// Filter and page of `GET .../outbox`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListOutbox {
    /// Only rows in this status.
    #[param(inline)]
    status: Option<OutboxStatus>,
    /// Page size, 1-1000 (default 100).
    #[param(schema_with = crate::constraints::limit)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = crate::constraints::outbox_cursor)]
    cursor: Option<String>,
}

/// Lists the tenant's outbox rows, newest first.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant_id}/outbox",
    tag = "outbox",
    security(("bearer" = [])),
    params(("tenant_id" = inline(Identifier), Path, description = "the tenant"), ListOutbox),
    responses(
        (status = 200, description = "one page, newest first", body = Page<OutboxEntry>),
        ClientProblem,
    )
)]
pub(super) async fn list(
    TenantScope { tenant, .. }: TenantScope,
    State(state): State<AppState>,
    Query(query): Query<ListOutbox>,
) -> Result<Json<Page<OutboxEntry>>, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref(), CursorKind::Outbox)?;
    if !tenant_exists(&state.pool, &tenant).await? {
        return Err(ApiError::not_found("tenant not found"));
    }
    let filter = OutboxFilter {
        tenant: Some(tenant),
        status: query.status,
        before_id: page.before_id()?,
        ..OutboxFilter::default()
    };
    let rows = list_rows(&state.pool, &filter, page.fetch()).await?;
    let rows = rows.into_iter().map(OutboxEntry::from).collect();
    Ok(Json(
        page.page(rows, CursorKind::Outbox, |r| r.id.to_string()),
    ))
}

/// The `{id}` of an outbox row's path.
#[derive(Deserialize)]
pub(super) struct OutboxRowPath {
    id: i64,
}

/// Puts a `dead` row back to `pending`, due now, attempts reset.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant_id}/outbox/{id}/retry",
    tag = "outbox",
    security(("bearer" = [])),
    params(
        ("tenant_id" = inline(Identifier), Path, description = "the tenant"),
        ("id" = i64, Path, description = "the outbox row"),
    ),
    responses(
        (status = 200, description = "the row, pending again", body = OutboxEntry),
        (status = 409, description = "the row is not dead", body = Problem, content_type = "application/problem+json"),
        ClientProblem,
    )
)]
pub(super) async fn retry(
    TenantScope { tenant, .. }: TenantScope,
    State(state): State<AppState>,
    Path(OutboxRowPath { id }): Path<OutboxRowPath>,
) -> Result<Json<OutboxEntry>, ApiError> {
    let mut tx = state.pool.begin().await?;
    let row = revive_dead(&mut tx, Some(&tenant), id).await?;
    tx.commit().await?;
    tracing::info!(tenant = %tenant, outbox.id = id, "dead outbox row revived");
    Ok(Json(row.into()))
}
