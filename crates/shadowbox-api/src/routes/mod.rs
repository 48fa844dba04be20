//! The routes of the contract, each documented for the OpenAPI document
//! from the same code that serves it.

mod desired;
mod devices;
mod outbox;
mod tenants;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::openapi::ApiDoc;
use crate::state::AppState;
use crate::{metrics, readiness};

/// Every route, with its OpenAPI description.
pub(crate) fn api_router() -> OpenApiRouter<AppState> {
    use utoipa::OpenApi as _;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(tenants::put_tenant))
        .routes(routes!(tenants::create_api_key))
        .routes(routes!(devices::register, devices::list))
        .routes(routes!(devices::get))
        .routes(routes!(desired::patch, desired::put))
        .routes(routes!(devices::decommission))
        .routes(routes!(devices::deliveries))
        .routes(routes!(outbox::list))
        .routes(routes!(outbox::retry))
        .routes(routes!(readiness::healthz))
        .routes(routes!(readiness::readyz))
        .routes(routes!(metrics::metrics))
}
