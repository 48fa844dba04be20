//! Who is calling, and what they may reach, checked by extractors so that
//! no handler can forget it.
//!
//! The `Authorization: Bearer` token is either the admin token or a tenant
//! key ([`Caller`]). A `/v1/tenants/{tenant_id}/...` handler takes a
//! [`TenantScope`]: the path's tenant, reachable by the caller, where a key
//! of another tenant gets exactly what a missing tenant gets (404). An
//! admin route takes an [`AdminScope`], which a tenant key never passes
//! (403). Both answer 401 first, before the path is even read.

use axum::extract::{FromRequestParts, Path};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shadowbox_core::api_key::{PresentedKey, tokens_equal};
use shadowbox_core::{Actor, TenantId};
use shadowbox_db::DbError;
use shadowbox_db::api_keys::find_api_key;
use uuid::Uuid;

use crate::key_cache::StoredKey;
use crate::problem::ApiError;
use crate::state::AppState;

/// The authenticated caller of a `/v1` route.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Caller {
    /// Holds the admin token: every tenant, and the admin routes.
    Admin,
    /// Holds the key `key` of `tenant`: that tenant's routes only.
    Tenant {
        /// The key's tenant.
        tenant: TenantId,
        /// The key's id.
        key: Uuid,
    },
}

impl Caller {
    /// 401 unless the request carries the admin token or a valid key.
    async fn authenticate(parts: &Parts, state: &AppState) -> Result<Self, ApiError> {
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
        match key_tenant(state, token).await? {
            Some((tenant, key)) => Ok(Self::Tenant { tenant, key }),
            None => Err(ApiError::unauthorized("the bearer token is not valid")),
        }
    }

    /// The caller as the history names it.
    fn actor(&self) -> Actor {
        match self {
            Self::Admin => Actor::Admin,
            Self::Tenant { key, .. } => Actor::Key(*key),
        }
    }
}

/// The tenant and id of the key `token` is, or `None` when it is not a
/// valid key. The key is looked up in the process's key cache first,
/// in the database otherwise; the secret is checked either way.
async fn key_tenant(state: &AppState, token: &str) -> Result<Option<(TenantId, Uuid)>, DbError> {
    let Some(presented) = PresentedKey::parse(token) else {
        return Ok(None);
    };
    let stored = match state.keys.get(presented.id) {
        Some(stored) => stored,
        None => {
            let Some((tenant, secret_hash)) = find_api_key(&state.pool, presented.id).await? else {
                return Ok(None);
            };
            let stored = StoredKey {
                tenant,
                secret_hash,
            };
            state.keys.put(presented.id, stored.clone());
            stored
        }
    };
    if !presented.matches(&stored.secret_hash) {
        return Ok(None);
    }
    Ok(Some((stored.tenant, presented.id)))
}

/// The `{tenant_id}` of a route's path; the route's other parameters are
/// the handler's own.
#[derive(Deserialize)]
struct TenantPath {
    tenant_id: TenantId,
}

/// The caller, then the path's tenant (400 when it is not a valid id).
async fn caller_and_tenant(
    parts: &mut Parts,
    state: &AppState,
) -> Result<(Caller, TenantId), Response> {
    let caller = Caller::authenticate(parts, state)
        .await
        .map_err(IntoResponse::into_response)?;
    let Path(TenantPath { tenant_id }) = Path::<TenantPath>::from_request_parts(parts, state)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok((caller, tenant_id))
}

/// A tenant route's tenant, which the caller may reach: the admin reaches
/// every tenant, a key only its own. Another tenant's paths answer exactly
/// what a missing tenant answers (404 "tenant not found"), so a key learns
/// nothing about other tenants.
#[derive(Debug, Clone)]
pub(crate) struct TenantScope {
    /// The tenant of the path.
    pub tenant: TenantId,
    /// Who is calling, for the history of the changes it makes.
    pub actor: Actor,
}

impl FromRequestParts<AppState> for TenantScope {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match caller_and_tenant(parts, state).await? {
            (Caller::Tenant { tenant: own, .. }, tenant) if own != tenant => {
                Err(ApiError::not_found("tenant not found").into_response())
            }
            (caller, tenant) => Ok(Self {
                tenant,
                actor: caller.actor(),
            }),
        }
    }
}

/// An admin route's tenant: a tenant key is authenticated but not allowed
/// (403), whatever the tenant in the path.
#[derive(Debug, Clone)]
pub(crate) struct AdminScope {
    /// The tenant of the path.
    pub tenant: TenantId,
}

impl FromRequestParts<AppState> for AdminScope {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match caller_and_tenant(parts, state).await? {
            (Caller::Admin, tenant) => Ok(Self { tenant }),
            (Caller::Tenant { .. }, _) => {
                Err(ApiError::forbidden("this route needs the admin token").into_response())
            }
        }
    }
}
