//! Devices and their shadows: register, read, list, decommission.

use chrono::{DateTime, Utc};
use shadowbox_core::{DeviceId, Document, DocumentLimits, TenantId};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};

use crate::DbError;
use crate::error::{is_fk_violation, is_unique_violation};
use crate::outbox::{OutboxKind, enqueue};

/// A device with its shadow and the summary of its newest delivery.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRecord {
    /// The tenant.
    pub tenant_id: String,
    /// The device.
    pub device_id: String,
    /// `active` or `decommissioned`.
    pub status: String,
    /// The desired document.
    pub desired_state: Json<Document>,
    /// Bumped by one on every desired change.
    pub desired_version: i64,
    /// The reported document, as the device last sent it.
    pub reported_state: Json<Document>,
    /// The desired version the device says it applied.
    pub reported_version: i64,
    /// When the device last sent a valid reported message.
    pub last_seen: Option<DateTime<Utc>>,
    /// When the device was registered.
    pub created_at: DateTime<Utc>,
    /// Status of the device's newest outbox row, if any.
    pub delivery_status: Option<String>,
    /// Version that row carries.
    pub delivery_version: Option<i64>,
    /// Publish attempts of that row.
    pub delivery_attempts: Option<i32>,
    /// Last error of that row.
    pub delivery_last_error: Option<String>,
    /// PUBACK time of that row.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Every device query selects this shape; `$1`, `$2` are tenant and device
/// unless the caller's WHERE clause says otherwise.
const DEVICE_COLUMNS: &str = "
    d.tenant_id, d.device_id, d.status, d.desired_state, d.desired_version,
    d.reported_state, d.reported_version, d.last_seen, d.created_at,
    o.status AS delivery_status, o.version AS delivery_version,
    o.attempts AS delivery_attempts, o.last_error AS delivery_last_error, o.delivered_at
  FROM device_state d
  LEFT JOIN LATERAL (
    SELECT status, version, attempts, last_error, delivered_at FROM outbox
    WHERE outbox.tenant_id = d.tenant_id AND outbox.device_id = d.device_id
    ORDER BY id DESC LIMIT 1
  ) o ON true";

/// Reads one device.
#[expect(
    clippy::disallowed_methods,
    reason = "DEVICE_COLUMNS is a constant: nothing from outside reaches this SQL"
)]
pub async fn get_device(
    db: impl PgExecutor<'_>,
    tenant: &TenantId,
    device: &DeviceId,
) -> sqlx::Result<Option<DeviceRecord>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DEVICE_COLUMNS} WHERE d.tenant_id = $1 AND d.device_id = $2"
    )))
    .bind(tenant.as_str())
    .bind(device.as_str())
    .fetch_optional(db)
    .await
}

/// Filters and page position for [`list_devices`].
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    /// Only devices with this status.
    pub status: Option<String>,
    /// Only devices that are (or are not) in sync.
    pub in_sync: Option<bool>,
    /// Only devices whose id sorts after this one (the page cursor).
    pub after: Option<String>,
}

/// Lists a tenant's devices in id order, at most `limit` of them.
#[expect(
    clippy::disallowed_methods,
    reason = "DEVICE_COLUMNS is a constant: nothing from outside reaches this SQL"
)]
pub async fn list_devices(
    db: impl PgExecutor<'_>,
    tenant: &TenantId,
    filter: &DeviceFilter,
    limit: i64,
) -> sqlx::Result<Vec<DeviceRecord>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DEVICE_COLUMNS}
         WHERE d.tenant_id = $1
           AND ($2::text IS NULL OR d.status = $2)
           AND ($3::bool IS NULL OR (d.reported_version >= d.desired_version) = $3)
           AND ($4::text IS NULL OR d.device_id > $4)
         ORDER BY d.device_id
         LIMIT $5"
    )))
    .bind(tenant.as_str())
    .bind(filter.status.as_deref())
    .bind(filter.in_sync)
    .bind(filter.after.as_deref())
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Registers a device. With a `desired` document it starts at version 1
/// and its publish is enqueued in the same transaction; without one it
/// starts at version 0 with `{}` and nothing is published.
pub async fn register_device(
    conn: &mut PgConnection,
    tenant: &TenantId,
    device: &DeviceId,
    desired: Option<Document>,
    limits: &DocumentLimits,
) -> Result<DeviceRecord, DbError> {
    if let Some(doc) = &desired {
        limits.check(doc)?;
    }
    let version = i64::from(desired.is_some());
    let inserted = sqlx::query(
        "INSERT INTO device_state (tenant_id, device_id, desired_state, desired_version)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(tenant.as_str())
    .bind(device.as_str())
    .bind(Json(desired.clone().unwrap_or_default()))
    .bind(version)
    .execute(&mut *conn)
    .await;
    match inserted {
        Err(e) if is_unique_violation(&e, "device_state_pkey") => {
            return Err(DbError::DeviceExists);
        }
        Err(e) if is_fk_violation(&e, "device_state_tenant_id_fkey") => {
            return Err(DbError::TenantNotFound);
        }
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    if let Some(doc) = &desired {
        enqueue(
            &mut *conn,
            tenant,
            device,
            OutboxKind::Desired(doc),
            version,
        )
        .await?;
    }
    Ok(get_device(&mut *conn, tenant, device)
        .await?
        .expect("inserted in this transaction"))
}

/// Decommissions a device and enqueues the clear of its retained desired
/// message in the same transaction. Returns the device and whether it was
/// active before (a second call changes and enqueues nothing).
pub async fn decommission_device(
    conn: &mut PgConnection,
    tenant: &TenantId,
    device: &DeviceId,
) -> Result<(DeviceRecord, bool), DbError> {
    let row: Option<(i64,)> = sqlx::query_as(
        "UPDATE device_state
         SET status = 'decommissioned', decommissioned_at = now(), updated_at = now()
         WHERE tenant_id = $1 AND device_id = $2 AND status = 'active'
         RETURNING desired_version",
    )
    .bind(tenant.as_str())
    .bind(device.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((version,)) = row {
        enqueue(&mut *conn, tenant, device, OutboxKind::Clear, version).await?;
    }
    let record = get_device(&mut *conn, tenant, device)
        .await?
        .ok_or(DbError::NotFound("device"))?;
    Ok((record, row.is_some()))
}
