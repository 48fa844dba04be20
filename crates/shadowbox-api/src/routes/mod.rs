//! The routes of the contract, each documented for the OpenAPI document
//! from the same code that serves it. Every `/v1` handler takes its scope
//! from an extractor of [`crate::auth`] (`TenantScope` or `AdminScope`),
//! which authenticates the caller and checks the path's tenant first.

mod desired;
mod devices;
mod events;
mod history;
mod operations;
mod outbox;
mod rollouts;
mod tenants;

use serde::Deserialize;
use shadowbox_core::DeviceId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::openapi::ApiDoc;
use crate::state::AppState;

/// The `{device_id}` of a device route's path (its tenant is the scope's).
#[derive(Deserialize)]
struct DevicePath {
    device_id: DeviceId,
}

/// Every route, with its OpenAPI description.
pub(crate) fn api_router() -> OpenApiRouter<AppState> {
    use utoipa::OpenApi as _;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(tenants::put_tenant))
        .routes(routes!(tenants::create_api_key))
        .routes(routes!(devices::register, devices::list))
        .routes(routes!(devices::get))
        .routes(routes!(desired::patch, desired::put))
        .routes(routes!(devices::put_tags))
        .routes(routes!(devices::decommission))
        .routes(routes!(devices::deliveries))
        .routes(routes!(history::list))
        .routes(routes!(rollouts::create, rollouts::list))
        .routes(routes!(rollouts::get))
        .routes(routes!(rollouts::pause))
        .routes(routes!(rollouts::resume))
        .routes(routes!(rollouts::cancel))
        .routes(routes!(rollouts::rollback))
        .routes(routes!(events::stream))
        .routes(routes!(outbox::list))
        .routes(routes!(outbox::retry))
        .routes(routes!(operations::healthz))
        .routes(routes!(operations::readyz))
        .routes(routes!(operations::metrics))
}
