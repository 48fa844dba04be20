//! Bulk set-up of tenants, devices and outbox rows, straight in SQL (the
//! set-up is not what is measured), and tenant API keys through the API.
//!
//! Devices of a tenant are `d1` to `dN`.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use shadowbox_core::{OutboxStatus, TenantId};
use sqlx::PgPool;

use crate::serve::ADMIN_TOKEN;

/// Creates `tenant` with `devices` active devices at desired version 0.
pub async fn create(pool: &PgPool, tenant: &str, devices: u64) -> anyhow::Result<()> {
    sqlx::query!("INSERT INTO tenants (tenant_id) VALUES ($1)", tenant)
        .execute(pool)
        .await?;
    sqlx::query!(
        "INSERT INTO device_state (tenant_id, device_id)
         SELECT $1, 'd' || i FROM generate_series(1, $2::bigint) AS i",
        tenant,
        devices as i64
    )
    .execute(pool)
    .await
    .with_context(|| format!("create {devices} devices of {tenant}"))?;
    Ok(())
}

/// Tags devices `d1` to `d<devices>` of `tenant` with `key`=`value`, so
/// a tag selector takes them and no other.
pub async fn tag(
    pool: &PgPool,
    tenant: &str,
    devices: u64,
    (key, value): (&str, &str),
) -> anyhow::Result<()> {
    sqlx::query!(
        "INSERT INTO device_tags (tenant_id, device_id, key, value)
         SELECT $1, 'd' || i, $3, $4 FROM generate_series(1, $2::bigint) AS i",
        tenant,
        devices as i64,
        key,
        value
    )
    .execute(pool)
    .await
    .with_context(|| format!("tag {devices} devices of {tenant}"))?;
    Ok(())
}

/// Sets the desired version of every device of `tenant` to `version`
/// (nothing is enqueued): devices may then report versions up to it, and
/// reaching it applies it.
pub async fn set_desired_version(pool: &PgPool, tenant: &str, version: i64) -> anyhow::Result<()> {
    shadowbox_testkit::set_desired_version(pool, &TenantId::parse(tenant)?, version)
        .await
        .with_context(|| format!("set the desired version of {tenant}'s devices"))?;
    Ok(())
}

/// Adds `rows` delivered rows, spread round-robin over the first
/// `devices` devices of `tenant`: a history the relay must not slow down on.
pub async fn add_history(
    pool: &PgPool,
    tenant: &str,
    devices: u64,
    rows: u64,
) -> anyhow::Result<()> {
    insert_rows(pool, tenant, devices, rows, OutboxStatus::Delivered).await
}

/// Adds `rows` pending rows, spread round-robin over the first `devices`
/// devices of `tenant` (each device's versions in id order), committed at
/// once with a notification to the relays, as a backlog left by an outage.
pub async fn add_backlog(
    pool: &PgPool,
    tenant: &str,
    devices: u64,
    rows: u64,
) -> anyhow::Result<()> {
    insert_rows(pool, tenant, devices, rows, OutboxStatus::Pending).await
}

async fn insert_rows(
    pool: &PgPool,
    tenant: &str,
    devices: u64,
    rows: u64,
    status: OutboxStatus,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    // The devices exist: skip the per-row foreign-key triggers.
    sqlx::query!("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await?;
    sqlx::query!(
        r#"INSERT INTO outbox (tenant_id, device_id, kind, topic, payload, version, status, delivered_at)
           SELECT $1, 'd' || x.d, 'desired', 'tenant/' || $1 || '/device/d' || x.d || '/shadow/desired',
                  convert_to('{"desired":{"n":' || x.v || '},"version":' || x.v
                             || ',"timestamp":"2026-11-27T04:00:00.000Z"}', 'UTF8'),
                  x.v, $4::text, CASE WHEN $4::text = 'delivered' THEN now() END
           FROM generate_series(0, $3::bigint - 1) AS i,
                LATERAL (SELECT i % $2::bigint + 1 AS d, i / $2::bigint + 1 AS v) AS x"#,
        tenant,
        devices as i64,
        rows as i64,
        status.as_str()
    )
    .execute(&mut *tx)
    .await
    .with_context(|| format!("insert {rows} {status} outbox rows"))?;
    shadowbox_db::outbox::notify_relays(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// `VACUUM ANALYZE`, after a bulk set-up.
pub async fn vacuum(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query!("VACUUM ANALYZE").execute(pool).await?;
    Ok(())
}

/// `ANALYZE outbox`: fresh planner statistics, as autovacuum keeps them in
/// a long-running deployment (a benchmark writes faster than it wakes).
pub async fn analyze_outbox(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query!("ANALYZE outbox").execute(pool).await?;
    Ok(())
}

/// Pending outbox rows of `tenant`: a walk over all of them, so for the
/// end of a wait, never for polling (see [`any_pending`]).
pub async fn pending(pool: &PgPool, tenant: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM outbox WHERE status = 'pending' AND tenant_id = $1"#,
        tenant
    )
    .fetch_one(pool)
    .await?)
}

/// Whether `tenant` has a pending outbox row: one probe of the index,
/// cheap enough to poll while a relay drains (a count walks the backlog
/// and competes with the relay for PostgreSQL's cores).
pub async fn any_pending(pool: &PgPool, tenant: &str) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM outbox WHERE tenant_id = $1 AND status = 'pending') AS "any!""#,
        tenant
    )
    .fetch_one(pool)
    .await?)
}

/// When the newest delivered row of `tenant` was acknowledged: the end
/// of a drain, read once it is over, exact however coarse the polling.
pub async fn last_delivery(pool: &PgPool, tenant: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar!(
        "SELECT max(delivered_at) FROM outbox WHERE tenant_id = $1 AND status = 'delivered'",
        tenant
    )
    .fetch_one(pool)
    .await?)
}

/// Delivered outbox rows of `tenant`.
pub async fn delivered(pool: &PgPool, tenant: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM outbox WHERE status = 'delivered' AND tenant_id = $1"#,
        tenant
    )
    .fetch_one(pool)
    .await?)
}

/// Creates an API key of `tenant` through the admin API of `base`.
pub async fn api_key(base: &str, tenant: &str) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct Created {
        secret: String,
    }
    let created: Created = reqwest::Client::new()
        .post(format!("{base}/v1/tenants/{tenant}/api-keys"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(created.secret)
}
