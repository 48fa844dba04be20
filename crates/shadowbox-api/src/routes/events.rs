//! The tenant's live event stream (Server-Sent Events).

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shadowbox_core::DeviceId;
use shadowbox_core::event::EventId;
use shadowbox_db::events::start_position;
use shadowbox_db::tenants::tenant_exists;
use utoipa::IntoParams;

use crate::auth::TenantScope;
use crate::constraints::{Identifier, LastEventIdHeader};
use crate::events::{StreamRequest, open};
use crate::problem::{ApiError, ClientProblem};
use crate::state::AppState;

/// Filter of `GET .../events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StreamEvents {
    /// Only this device's events.
    #[param(value_type = Option<String>, schema_with = crate::constraints::identifier)]
    device_id: Option<DeviceId>,
}

/// Streams the tenant's events as they commit.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant_id}/events",
    tag = "events",
    security(("bearer" = [])),
    params(
        ("tenant_id" = inline(Identifier), Path, description = "the tenant"),
        LastEventIdHeader,
        StreamEvents,
    ),
    responses(
        (status = 200, description = "`text/event-stream`: events `desired`, `delivered`, `applied`, `rejected`, `dead` and `rollout`, each with `id:`, `event:` and a JSON `data:` (`type`, `tenant_id`, `at`, and `device_id`, `version`, `rollout_id` where they apply); `: heartbeat` comments while idle; a `: closed <reason>` comment before the server ends the stream", content_type = "text/event-stream", body = String),
        ClientProblem,
    )
)]
pub(super) async fn stream(
    TenantScope { tenant, .. }: TenantScope,
    State(state): State<AppState>,
    Query(query): Query<StreamEvents>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let resume = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<EventId>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("Last-Event-ID is not an id this stream gave out")
                })
        })
        .transpose()?;
    if !tenant_exists(&state.pool, &tenant).await? {
        return Err(ApiError::not_found("tenant not found"));
    }
    let after = match resume {
        Some(id) => id,
        None => start_position(&state.pool).await?,
    };
    let request = StreamRequest {
        tenant,
        device: query.device_id,
        after,
    };
    Ok(open(&state, request).into_response())
}
