//! Who is calling: the `Authorization: Bearer` token is either the admin
//! token or a tenant key, and a tenant key reaches its own tenant only.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use shadowbox_core::TenantId;

use crate::keys::{authenticate, tokens_equal};
use crate::problem::ApiError;
use crate::state::AppState;

/// The authenticated caller of a `/v1` route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Holds the admin token: every tenant, and the admin routes.
    Admin,
    /// Holds a key of this tenant: that tenant's routes only.
    Tenant(TenantId),
}

impl Caller {
    /// Admin routes: a tenant key gets 403 (it is authenticated, just not
    /// allowed), whatever the tenant in the path.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Self::Admin => Ok(()),
            Self::Tenant(_) => Err(ApiError::forbidden("this route needs the admin token")),
        }
    }

    /// Tenant routes: another tenant's paths answer exactly what a missing
    /// tenant answers, so a key learns nothing about other tenants.
    pub fn require_tenant(&self, tenant: &TenantId) -> Result<(), ApiError> {
        match self {
            Self::Tenant(own) if own != tenant => Err(ApiError::not_found("tenant not found")),
            _ => Ok(()),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer <token>"))?;
        if let Some(admin) = &state.settings.admin_token
            && tokens_equal(admin, token)
        {
            return Ok(Self::Admin);
        }
        match authenticate(&state.pool, token).await? {
            Some(tenant) => Ok(Self::Tenant(tenant)),
            None => Err(ApiError::unauthorized("the bearer token is not valid")),
        }
    }
}
