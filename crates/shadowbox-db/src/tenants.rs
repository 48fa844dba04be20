//! Tenants.

use shadowbox_core::TenantId;
use sqlx::PgExecutor;

/// Creates the tenant; creating an existing tenant is not an error.
/// Returns whether it was new.
pub async fn create_tenant(db: impl PgExecutor<'_>, tenant: &TenantId) -> sqlx::Result<bool> {
    let inserted = sqlx::query!(
        "INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING",
        tenant.as_str()
    )
    .execute(db)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Whether the tenant exists.
pub async fn tenant_exists(db: impl PgExecutor<'_>, tenant: &TenantId) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM tenants WHERE tenant_id = $1) AS "exists!""#,
        tenant.as_str()
    )
    .fetch_one(db)
    .await
}
