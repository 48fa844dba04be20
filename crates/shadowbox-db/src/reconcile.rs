//! What a reconcile pass reads from the database: the tenants, one lock
//! per tenant so that one relay at a time reconciles it, and each device's
//! state with its newest outbox row. The republish of a difference goes
//! through [`crate::outbox::resync_devices`], the relay's ordinary path.

use shadowbox_core::device::DeviceStatus;
use shadowbox_core::outbox::OutboxStatus;
use shadowbox_core::{DeviceId, Document, TenantId};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};

/// The first key of every reconcile advisory lock (the relay's device
/// locks use another), so they never collide with other locks.
const LOCK_NAMESPACE: i32 = 0x5352; // "SR"

/// The tenants to reconcile, in id order: `only`, if it exists, or all.
pub async fn tenant_ids(
    db: impl PgExecutor<'_>,
    only: Option<&TenantId>,
) -> sqlx::Result<Vec<TenantId>> {
    sqlx::query_scalar!(
        r#"SELECT tenant_id AS "tenant_id: TenantId" FROM tenants
           WHERE ($1::text IS NULL OR tenant_id = $1)
           ORDER BY tenant_id"#,
        only.map(TenantId::as_str)
    )
    .fetch_all(db)
    .await
}

/// Takes the tenant's reconcile lock for the rest of the caller's
/// transaction, unless another transaction (another relay's pass) holds
/// it; returns whether it got it. PostgreSQL releases it when the
/// transaction ends, also when its relay dies mid-pass.
pub async fn try_lock_tenant(conn: &mut PgConnection, tenant: &TenantId) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_xact_lock($1, hashtext($2)) AS "locked!""#,
        LOCK_NAMESPACE,
        tenant.as_str()
    )
    .fetch_one(conn)
    .await
}

/// How many devices the tenant has, whatever their status.
pub async fn count_devices(db: impl PgExecutor<'_>, tenant: &TenantId) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM device_state WHERE tenant_id = $1"#,
        tenant.as_str()
    )
    .fetch_one(db)
    .await
}

/// A device's newest outbox row: its id (`None` when the device never had
/// a row) and its status. A pass reads it before and after reading the
/// broker; a device whose newest row changed in between was being written
/// or published meanwhile.
pub type NewestRow = (Option<i64>, Option<OutboxStatus>);

/// A device as a pass reads it before the broker: its id and newest row.
#[derive(Debug, Clone)]
pub struct DeviceMark {
    /// The device.
    pub device_id: DeviceId,
    /// Its newest outbox row's id.
    pub newest_row_id: Option<i64>,
    /// Its newest outbox row's status.
    pub newest_row_status: Option<OutboxStatus>,
}

impl DeviceMark {
    /// Its newest outbox row.
    pub fn newest(&self) -> NewestRow {
        (self.newest_row_id, self.newest_row_status)
    }
}

/// Up to `limit` of the tenant's devices (every status) after `after`, in
/// id order, each with its newest outbox row.
pub async fn device_marks(
    db: impl PgExecutor<'_>,
    tenant: &TenantId,
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<DeviceMark>> {
    sqlx::query_as!(
        DeviceMark,
        r#"SELECT s.device_id AS "device_id: DeviceId", o.id AS "newest_row_id?",
                  o.status AS "newest_row_status?: OutboxStatus"
           FROM device_state s
           LEFT JOIN LATERAL outbox_newest(s.tenant_id, s.device_id) o ON true
           WHERE s.tenant_id = $1 AND s.device_id > $2
           ORDER BY s.device_id
           LIMIT $3"#,
        tenant.as_str(),
        after,
        limit
    )
    .fetch_all(db)
    .await
}

/// A device as a pass judges it, read after the broker.
#[derive(Debug, Clone)]
pub struct DeviceSnapshot {
    /// The device.
    pub device_id: DeviceId,
    /// Its status.
    pub status: DeviceStatus,
    /// The desired document.
    pub desired_state: Json<Document>,
    /// Its version (0: none yet).
    pub desired_version: i64,
    /// Its newest outbox row's id.
    pub newest_row_id: Option<i64>,
    /// Its newest outbox row's status.
    pub newest_row_status: Option<OutboxStatus>,
}

impl DeviceSnapshot {
    /// Its newest outbox row.
    pub fn newest(&self) -> NewestRow {
        (self.newest_row_id, self.newest_row_status)
    }
}

/// The current state of the tenant's devices `ids`, in id order.
pub async fn device_snapshots(
    db: impl PgExecutor<'_>,
    tenant: &TenantId,
    ids: &[&str],
) -> sqlx::Result<Vec<DeviceSnapshot>> {
    sqlx::query_as!(
        DeviceSnapshot,
        r#"SELECT s.device_id AS "device_id: DeviceId", s.status AS "status: DeviceStatus",
                  s.desired_state AS "desired_state: Json<Document>", s.desired_version,
                  o.id AS "newest_row_id?", o.status AS "newest_row_status?: OutboxStatus"
           FROM device_state s
           LEFT JOIN LATERAL outbox_newest(s.tenant_id, s.device_id) o ON true
           WHERE s.tenant_id = $1 AND s.device_id = ANY($2::text[])
           ORDER BY s.device_id"#,
        tenant.as_str(),
        ids as &[&str]
    )
    .fetch_all(db)
    .await
}
