//! A device's desired history: every change, who made it, and when it was
//! delivered and applied.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use shadowbox_db::devices::get_device;
use shadowbox_db::history;
use utoipa::IntoParams;

use crate::auth::TenantScope;
use crate::constraints::Identifier;
use crate::pagination::{CursorKind, Page, PageRequest};
use crate::problem::{ApiError, ClientProblem};
use crate::routes::DevicePath;
use crate::state::AppState;
use crate::views::HistoryEntry;

/// Page of `GET .../history`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListHistory {
    /// Page size, 1-1000 (default 100).
    #[param(schema_with = crate::constraints::limit)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = crate::constraints::history_cursor)]
    cursor: Option<String>,
}

/// The device's desired changes, newest first.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant_id}/devices/{device_id}/history",
    tag = "devices",
    security(("bearer" = [])),
    params(
        ("tenant_id" = inline(Identifier), Path, description = "the tenant"),
        ("device_id" = inline(Identifier), Path, description = "the device"),
        ListHistory,
    ),
    responses(
        (status = 200, description = "one page, newest first", body = Page<HistoryEntry>),
        ClientProblem,
    )
)]
pub(super) async fn list(
    TenantScope { tenant, .. }: TenantScope,
    State(state): State<AppState>,
    Path(DevicePath { device_id: device }): Path<DevicePath>,
    Query(query): Query<ListHistory>,
) -> Result<Json<Page<HistoryEntry>>, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref(), CursorKind::History)?;
    if get_device(&state.pool, &tenant, &device).await?.is_none() {
        return Err(ApiError::not_found("device not found"));
    }
    let rows = history::list(
        &state.pool,
        &tenant,
        &device,
        page.before_id()?,
        page.fetch(),
    )
    .await?;
    let Page { items, next_cursor } = page.page(rows, CursorKind::History, |r| r.id.to_string());
    Ok(Json(Page {
        items: items.into_iter().map(HistoryEntry::from).collect(),
        next_cursor,
    }))
}
