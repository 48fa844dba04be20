//! Devices: register, list (with `?tag=key:value` filters), read,
//! replace tags, decommission, and a device's deliveries.

use axum::Json;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use shadowbox_core::document::into_document;
use shadowbox_core::duration;
use shadowbox_core::tags::{Tags, check_tags, parse_filters};
use shadowbox_core::{DeviceId, DeviceStatus};
use shadowbox_db::devices::{
    DeviceFilter, decommission_device, get_device, list_devices, register_device, set_tags,
};
use shadowbox_db::outbox::{OutboxFilter, list_rows};
use shadowbox_db::tenants::tenant_exists;
use utoipa::{IntoParams, ToSchema};

use crate::auth::TenantScope;
use crate::constraints::{IdempotencyKeyHeader, Identifier, TagFilter, TagSet};
use crate::idempotency::{Claimed, Idempotent};
use crate::pagination::{CursorKind, Page, PageRequest};
use crate::problem::{ApiError, ClientProblem, Problem};
use crate::routes::DevicePath;
use crate::state::AppState;
use crate::views::{DeviceResponse, DeviceView, OutboxEntry};

/// The body of `POST .../devices`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterDevice {
    /// The new device's id (1-128 of A-Z a-z 0-9 _ - . :).
    #[schema(schema_with = crate::constraints::identifier)]
    device_id: String,
    /// Its first desired document: makes it version 1 and enqueues its
    /// publish. Without it the device starts at version 0 with `{}`.
    #[schema(value_type = Option<crate::constraints::DesiredDocument>)]
    desired: Option<Value>,
    /// Its tags: keys 1-63 of a-z 0-9 _ . - /, string values of 0-256
    /// characters, at most 32.
    #[serde(default)]
    #[schema(schema_with = crate::constraints::tags)]
    tags: Tags,
}

/// Registers a device.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant_id}/devices",
    tag = "devices",
    security(("bearer" = [])),
    params(("tenant_id" = inline(Identifier), Path, description = "the tenant"), IdempotencyKeyHeader),
    request_body = RegisterDevice,
    responses(
        (status = 201, description = "registered; `ETag` is the desired version; a replay carries `Idempotent-Replayed: true`", body = DeviceView),
        (status = 409, description = "the device exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`desired` is not an object, nested too deep, or holds a NUL character; invalid `tags`; or the `Idempotency-Key` was used for another request", body = Problem, content_type = "application/problem+json"),
        ClientProblem,
    )
)]
pub(super) async fn register(
    TenantScope { tenant, actor }: TenantScope,
    State(state): State<AppState>,
    Idempotent {
        key,
        body: Json(body),
    }: Idempotent<Json<RegisterDevice>>,
) -> Result<Response, ApiError> {
    let device = DeviceId::parse(body.device_id)
        .map_err(|e| ApiError::bad_request(format!("device_id: {e}")))?;
    let desired = body.desired.map(into_document).transpose()?;
    check_tags(&body.tags)?;
    let mut tx = state.pool.begin().await?;
    let pending = match key.claim(&mut tx, &tenant).await? {
        Claimed::Replay(answer) => return Ok(answer),
        Claimed::Fresh(pending) => pending,
    };
    let record = register_device(
        &mut tx,
        &tenant,
        &device,
        desired,
        &body.tags,
        &state.settings.limits,
        actor,
    )
    .await?;
    let version = record.desired_version;
    let location = HeaderValue::from_str(&format!("/v1/tenants/{tenant}/devices/{device}"))
        .expect("identifiers are valid header characters");
    let response = pending
        .commit(
            tx,
            (
                [(header::LOCATION, location)],
                DeviceResponse(StatusCode::CREATED, record),
            ),
        )
        .await?;
    tracing::info!(tenant = %tenant, device = %device, version, "device registered");
    Ok(response)
}

/// Filters and page of `GET .../devices`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListDevices {
    /// Only devices with this status.
    #[param(inline)]
    status: Option<DeviceStatus>,
    /// Only devices that are (`true`) or are not (`false`) in sync.
    in_sync: Option<bool>,
    /// Only devices whose current desired version was committed longer ago
    /// than this (`500ms`, `30s`, `5m`, `12h`, `7d`): with `in_sync=false`,
    /// the devices that have not applied their desired version within that
    /// time. The server takes up to `36500d`; the pattern states a range
    /// inside it (every value it matches is accepted).
    #[param(
        pattern = r"^([0-9]{1,12}ms|[0-9]{1,9}s|[0-9]{1,7}m|[0-9]{1,5}h|[0-9]{1,4}d)$",
        example = "5m"
    )]
    older_than: Option<String>,
    /// Page size, 1-1000 (default 100).
    #[param(schema_with = crate::constraints::limit)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = crate::constraints::device_cursor)]
    cursor: Option<String>,
}

/// Lists the tenant's devices in device id order.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant_id}/devices",
    tag = "devices",
    security(("bearer" = [])),
    params(
        ("tenant_id" = inline(Identifier), Path, description = "the tenant"),
        ListDevices,
        TagFilter,
    ),
    responses(
        (status = 200, description = "one page", body = Page<DeviceView>),
        ClientProblem,
    )
)]
pub(super) async fn list(
    TenantScope { tenant, .. }: TenantScope,
    State(state): State<AppState>,
    Query(query): Query<ListDevices>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<DeviceView>>, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref(), CursorKind::Devices)?;
    let tags = tag_filters(raw.as_deref().unwrap_or_default())?;
    let older_than = query
        .older_than
        .as_deref()
        .map(duration::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("older_than: {e}")))?;
    if !tenant_exists(&state.pool, &tenant).await? {
        return Err(ApiError::not_found("tenant not found"));
    }
    // A key asked for with two values: no device has both.
    let Some(tags) = tags else {
        return Ok(Json(page.page(
            Vec::new(),
            CursorKind::Devices,
            |d: &DeviceView| d.device_id.clone(),
        )));
    };
    let filter = DeviceFilter {
        status: query.status,
        in_sync: query.in_sync,
        older_than,
        tags,
        after: page.after.clone(),
    };
    let rows = list_devices(&state.pool, &tenant, &filter, page.fetch()).await?;
    let rows = rows.into_iter().map(DeviceView::from).collect();
    Ok(Json(
        page.page(rows, CursorKind::Devices, |d| d.device_id.clone()),
    ))
}

/// The repeatable `tag=key:value` filters of a query string (serde's
/// query extractor takes each parameter once, so they are read here).
fn tag_filters(query: &str) -> Result<Option<Tags>, ApiError> {
    let filters: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(name, _)| name == "tag")
        .map(|(_, value)| value.into_owned())
        .collect();
    parse_filters(filters.iter().map(String::as_str))
        .map_err(|e| ApiError::bad_request(format!("tag: {e}")))
}

/// Reads a device and its shadow.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant_id}/devices/{device_id}",
    tag = "devices",
    security(("bearer" = [])),
    params(
        ("tenant_id" = inline(Identifier), Path, description = "the tenant"),
        ("device_id" = inline(Identifier), Path, description = "the device"),
    ),
    responses(
        (status = 200, description = "the device; `ETag` is the desired version", body = DeviceView),
        ClientProblem,
    )
)]
pub(super) async fn get(
    TenantScope { tenant, .. }: TenantScope,
    State(state): State<AppState>,
    Path(DevicePath { device_id: device }): Path<DevicePath>,
) -> Result<DeviceResponse, ApiError> {
    let record = get_device(&state.pool, &tenant, &device)
        .await?
        .ok_or_else(|| ApiError::not_found("device not found"))?;
    Ok(DeviceResponse(StatusCode::OK, record))
}

/// Replaces the device's tags (a decommissioned device's too). Tags are
/// never published to the device.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant_id}/devices/{device_id}/tags",
    tag = "devices",
    security(("bearer" = [])),
    params(
        ("tenant_id" = inline(Identifier), Path, description = "the tenant"),
        ("device_id" = inline(Identifier), Path, description = "the device"),
    ),
    request_body(content = TagSet, description = "the device's new tags: keys 1-63 of a-z 0-9 _ . - /, string values of 0-256 characters, at most 32"),
    responses(
        (status = 200, description = "the device with its new tags", body = DeviceView),
        (status = 422, description = "not an object of strings, or a key, a value or the count out of bounds", body = Problem, content_type = "application/problem+json"),
        ClientProblem,
    )
)]
pub(super) async fn put_tags(
    TenantScope { tenant, .. }: TenantScope,
    State(state): State<AppState>,
    Path(DevicePath { device_id: device }): Path<DevicePath>,
    Json(tags): Json<Tags>,
) -> Result<DeviceResponse, ApiError> {
    check_tags(&tags)?;
    let mut tx = state.pool.begin().await?;
    let record = set_tags(&mut tx, &tenant, &device, &tags).await?;
    tx.commit().await?;
    tracing::info!(tenant = %tenant, device = %device, tags = tags.len(), "device tags replaced");
    Ok(DeviceResponse(StatusCode::OK, record))
}

/// Decommissions a device and enqueues the clear of its retained desired
/// message; idempotent.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant_id}/devices/{device_id}/decommission",
    tag = "devices",
    security(("bearer" = [])),
    params(
        ("tenant_id" = inline(Identifier), Path, description = "the tenant"),
        ("device_id" = inline(Identifier), Path, description = "the device"),
    ),
    responses(
        (status = 200, description = "decommissioned (now or before)", body = DeviceView),
        ClientProblem,
    )
)]
pub(super) async fn decommission(
    TenantScope { tenant, actor }: TenantScope,
    State(state): State<AppState>,
    Path(DevicePath { device_id: device }): Path<DevicePath>,
) -> Result<DeviceResponse, ApiError> {
    let mut tx = state.pool.begin().await?;
    let (record, changed) = decommission_device(&mut tx, &tenant, &device, actor).await?;
    tx.commit().await?;
    if changed {
        tracing::info!(tenant = %tenant, device = %device, "device decommissioned");
    }
    Ok(DeviceResponse(StatusCode::OK, record))
}

/// Page of `GET .../deliveries`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListDeliveries {
    /// Page size, 1-1000 (default 100).
    #[param(schema_with = crate::constraints::limit)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = crate::constraints::outbox_cursor)]
    cursor: Option<String>,
}

/// The device's outbox rows, newest first.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant_id}/devices/{device_id}/deliveries",
    tag = "devices",
    security(("bearer" = [])),
    params(
        ("tenant_id" = inline(Identifier), Path, description = "the tenant"),
        ("device_id" = inline(Identifier), Path, description = "the device"),
        ListDeliveries,
    ),
    responses(
        (status = 200, description = "one page, newest first", body = Page<OutboxEntry>),
        ClientProblem,
    )
)]
pub(super) async fn deliveries(
    TenantScope { tenant, .. }: TenantScope,
    State(state): State<AppState>,
    Path(DevicePath { device_id: device }): Path<DevicePath>,
    Query(query): Query<ListDeliveries>,
) -> Result<Json<Page<OutboxEntry>>, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref(), CursorKind::Outbox)?;
    if get_device(&state.pool, &tenant, &device).await?.is_none() {
        return Err(ApiError::not_found("device not found"));
    }
    let filter = OutboxFilter {
        tenant: Some(tenant),
        device: Some(device.into_string()),
        before_id: page.before_id()?,
        ..OutboxFilter::default()
    };
    let rows = list_rows(&state.pool, &filter, page.fetch()).await?;
    let rows = rows.into_iter().map(OutboxEntry::from).collect();
    Ok(Json(
        page.page(rows, CursorKind::Outbox, |r| r.id.to_string()),
    ))
}
