//! Desired writes: PATCH merges (RFC 7396), PUT replaces. Each is one
//! transaction that changes the state and enqueues its publish, or changes
//! nothing at all.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::Value;
use shadowbox_core::document::into_document;
use shadowbox_core::{DeviceId, Document};
use shadowbox_db::desired::{DesiredChange, apply_desired_change};

use crate::auth::TenantScope;
use crate::constraints::{DesiredDocument, IdempotencyKeyHeader, Identifier, IfMatchHeader};
use crate::idempotency::{Claimed, Idempotent, KeyedRequest};
use crate::if_match::{Precondition, precondition};
use crate::problem::{ApiError, ClientProblem, Problem};
use crate::routes::DevicePath;
use crate::state::AppState;
use crate::views::{DeviceResponse, DeviceView};

/// Merges the body into the desired document (`null` deletes a key).
#[utoipa::path(
    patch,
    path = "/v1/tenants/{tenant_id}/devices/{device_id}/desired",
    tag = "desired",
    security(("bearer" = [])),
    params(
        ("tenant_id" = inline(Identifier), Path, description = "the tenant"),
        ("device_id" = inline(Identifier), Path, description = "the device"),
        IfMatchHeader,
        IdempotencyKeyHeader,
    ),
    request_body(content = DesiredDocument, content_type = "application/merge-patch+json", description = "RFC 7396 merge patch; `application/json` is accepted too"),
    responses(
        (status = 200, description = "the device after the write (unchanged on a no-op); a replay carries `Idempotent-Replayed: true`", body = DeviceView),
        (status = 412, description = "If-Match does not match", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "the body or the resulting document is too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "not an object, nested too deep, or holding a NUL character; or the `Idempotency-Key` was used for another request", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the device is decommissioned", body = Problem, content_type = "application/problem+json"),
        ClientProblem,
    )
)]
pub(super) async fn patch(
    scope: TenantScope,
    State(state): State<AppState>,
    Path(DevicePath { device_id: device }): Path<DevicePath>,
    headers: HeaderMap,
    Idempotent {
        key,
        body: Json(body),
    }: Idempotent<Json<Value>>,
) -> Result<Response, ApiError> {
    write(
        &state,
        &scope,
        &device,
        &headers,
        key,
        body,
        DesiredChange::Merge,
    )
    .await
}

/// Replaces the whole desired document.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant_id}/devices/{device_id}/desired",
    tag = "desired",
    security(("bearer" = [])),
    params(
        ("tenant_id" = inline(Identifier), Path, description = "the tenant"),
        ("device_id" = inline(Identifier), Path, description = "the device"),
        IfMatchHeader,
        IdempotencyKeyHeader,
    ),
    request_body(content = DesiredDocument, content_type = "application/json", description = "the new desired document"),
    responses(
        (status = 200, description = "the device after the write (unchanged on a no-op); a replay carries `Idempotent-Replayed: true`", body = DeviceView),
        (status = 412, description = "If-Match does not match", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "the body or the document is too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "not an object, nested too deep, or holding a NUL character; or the `Idempotency-Key` was used for another request", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the device is decommissioned", body = Problem, content_type = "application/problem+json"),
        ClientProblem,
    )
)]
pub(super) async fn put(
    scope: TenantScope,
    State(state): State<AppState>,
    Path(DevicePath { device_id: device }): Path<DevicePath>,
    headers: HeaderMap,
    Idempotent {
        key,
        body: Json(body),
    }: Idempotent<Json<Value>>,
) -> Result<Response, ApiError> {
    write(
        &state,
        &scope,
        &device,
        &headers,
        key,
        body,
        DesiredChange::Replace,
    )
    .await
}

/// The media types a desired write accepts. axum's `Json` takes any
/// `application/*+json`; the contract names these two.
const ACCEPTED: [&str; 2] = ["application/json", "application/merge-patch+json"];

async fn write(
    state: &AppState,
    TenantScope { tenant, actor }: &TenantScope,
    device: &DeviceId,
    headers: &HeaderMap,
    key: KeyedRequest,
    body: Value,
    change: fn(Document) -> DesiredChange,
) -> Result<Response, ApiError> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if !ACCEPTED.contains(&media_type.as_str()) {
        return Err(ApiError::unsupported_media_type(format!(
            "send the document as {}",
            ACCEPTED.join(" or ")
        )));
    }
    // The body before the precondition: a request that would fail
    // without `If-Match` fails the same with it (RFC 9110, 13.2.1).
    let document = into_document(body)?;
    let precondition = precondition(headers)?;
    let expected = match precondition {
        Precondition::Version(version) => Some(version),
        Precondition::None | Precondition::Never => None,
    };
    let mut tx = state.pool.begin().await?;
    let pending = match key.claim(&mut tx, tenant).await? {
        Claimed::Replay(answer) => return Ok(answer),
        Claimed::Fresh(pending) => pending,
    };
    let outcome = apply_desired_change(
        &mut tx,
        tenant,
        device,
        change(document),
        expected,
        &state.settings.limits,
        *actor,
    )
    .await?;
    if precondition == Precondition::Never {
        // The write would succeed: only now does the weak tag fail it (and
        // dropping `tx` undoes it).
        return Err(ApiError::precondition_failed(
            "If-Match compares strongly: a weak entity tag (W/) never matches",
        ));
    }
    let version = outcome.device.desired_version;
    let response = pending
        .commit(tx, DeviceResponse(StatusCode::OK, outcome.device))
        .await?;
    match outcome.enqueued {
        Some(row) => {
            tracing::info!(tenant = %tenant, device = %device, version, outbox.id = row, "desired state changed")
        }
        None => {
            tracing::debug!(tenant = %tenant, device = %device, version, "desired write changed nothing")
        }
    }
    Ok(response)
}
