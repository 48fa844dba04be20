//! Tenant API keys, stored as hashes of their secrets (the key format is
//! `shadowbox_core::api_key`).

use shadowbox_core::TenantId;
use shadowbox_core::api_key::NewApiKey;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::DbError;
use crate::error::is_fk_violation;

/// Makes a key for `tenant` and stores its hash: the one way keys are
/// created, by the API's admin route and by the CLI. Fails with
/// [`DbError::TenantNotFound`] when the tenant does not exist.
pub async fn create_api_key(
    db: impl PgExecutor<'_>,
    tenant: &TenantId,
) -> Result<NewApiKey, DbError> {
    let key = NewApiKey::generate();
    insert_api_key(db, key.id, tenant, &key.hash).await?;
    Ok(key)
}

/// Stores a key's id and the hash of its secret for `tenant`.
pub async fn insert_api_key(
    db: impl PgExecutor<'_>,
    id: Uuid,
    tenant: &TenantId,
    secret_hash: &[u8],
) -> Result<(), DbError> {
    sqlx::query!(
        "INSERT INTO api_keys (id, tenant_id, secret_hash) VALUES ($1, $2, $3)",
        id,
        tenant.as_str(),
        secret_hash
    )
    .execute(db)
    .await
    .map_err(|e| match e {
        e if is_fk_violation(&e, "api_keys_tenant_id_fkey") => DbError::TenantNotFound,
        e => e.into(),
    })?;
    Ok(())
}

/// The tenant and secret hash of key `id`, if it exists.
pub async fn find_api_key(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> sqlx::Result<Option<(TenantId, Vec<u8>)>> {
    let key = sqlx::query!(
        r#"SELECT tenant_id AS "tenant_id: TenantId", secret_hash FROM api_keys WHERE id = $1"#,
        id
    )
    .fetch_optional(db)
    .await?;
    Ok(key.map(|k| (k.tenant_id, k.secret_hash)))
}
