//! The OpenAPI document's frame: title, tags and the bearer scheme. The
//! paths and schemas come from the handlers' `#[utoipa::path]` attributes
//! as the router registers them (see [`crate::routes`]).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document every route is added to.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "shadowbox",
        description = "Device shadows for multi-tenant IoT fleets. Errors are application/problem+json (RFC 9457)."
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "admin", description = "Needs the admin token (SHADOWBOX_ADMIN_TOKEN)"),
        (name = "devices", description = "Devices and their shadows"),
        (name = "desired", description = "Desired-state writes, delivered through the outbox"),
        (name = "outbox", description = "Delivery status and retries"),
        (name = "rollouts", description = "One merge patch for many devices, in waves that stop themselves"),
        (name = "events", description = "The live event stream (Server-Sent Events)"),
        (name = "operations", description = "Probes and metrics, without auth"),
    )
)]
pub(crate) struct ApiDoc;

/// Adds the `bearer` security scheme the `/v1` routes name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("the admin token, or a tenant key sbk_..."))
                    .build(),
            ),
        );
    }
}
