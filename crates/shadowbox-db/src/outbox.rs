//! The outbox as the API and operators see it: listing, reviving dead
//! rows, resync and retention (rows are enqueued with their change, by
//! [`crate::changes`]).

use chrono::{DateTime, Utc};
use serde::Serialize;
use shadowbox_core::{DeviceId, DeviceStatus, Document, OutboxKind, OutboxStatus, TenantId};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, PgPool};

use crate::batches::delete_in_batches;
use crate::changes::{self, DeviceChange, Publish};
use crate::{DbError, OUTBOX_CHANNEL};

/// Wakes the relays (`NOTIFY` on [`OUTBOX_CHANNEL`], delivered when the
/// caller's transaction commits): the one way to announce rows made
/// pending outside [`crate::changes`] (revived rows, a benchmark's backlog).
pub async fn notify_relays(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query!("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)
        .execute(db)
        .await?;
    Ok(())
}

/// `sqlx::query_as!` for [`OutboxRow`]s: the statement is `$head`, the
/// row's columns (decoded into its types), then `$tail`.
macro_rules! outbox_rows {
    ($head:tt, $tail:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            OutboxRow,
            $head
                + r#" id, tenant_id AS "tenant_id: TenantId", device_id AS "device_id: DeviceId",
                      kind AS "kind: OutboxKind", topic, payload, version,
                      status AS "status: OutboxStatus", attempts, next_attempt_at, last_error,
                      created_at, delivered_at "#
                + $tail
            $(, $arg)*
        )
    };
}

/// One outbox row, as operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxRow {
    /// Increasing id.
    pub id: i64,
    /// Whose.
    pub tenant_id: TenantId,
    /// Whose.
    pub device_id: DeviceId,
    /// What it publishes.
    pub kind: OutboxKind,
    /// The MQTT topic.
    pub topic: String,
    /// The exact bytes published.
    #[serde(skip)]
    pub payload: Vec<u8>,
    /// The desired version it carries.
    pub version: i64,
    /// Where it stands.
    pub status: OutboxStatus,
    /// Publish attempts made.
    pub attempts: i32,
    /// When it may be tried again.
    pub next_attempt_at: DateTime<Utc>,
    /// Text of the last failure.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When the broker acknowledged it.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Which rows [`list_rows`] returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct OutboxFilter {
    /// Only this tenant's rows.
    pub tenant: Option<TenantId>,
    /// Only this device's rows.
    pub device: Option<String>,
    /// Only rows in this status.
    pub status: Option<OutboxStatus>,
    /// Only rows created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only rows older than this id (the page cursor).
    pub before_id: Option<i64>,
}

/// Lists outbox rows matching `filter`, newest first, at most `limit`.
pub async fn list_rows(
    db: impl PgExecutor<'_>,
    filter: &OutboxFilter,
    limit: i64,
) -> sqlx::Result<Vec<OutboxRow>> {
    outbox_rows!(
        "SELECT",
        "FROM outbox
         WHERE ($1::text IS NULL OR tenant_id = $1)
           AND ($2::text IS NULL OR device_id = $2)
           AND ($3::text IS NULL OR status = $3)
           AND ($4::timestamptz IS NULL OR created_at >= $4)
           AND ($5::bigint IS NULL OR id < $5)
         ORDER BY id DESC
         LIMIT $6",
        filter.tenant.as_ref().map(TenantId::as_str),
        filter.device.as_deref(),
        filter.status.map(OutboxStatus::as_str),
        filter.since,
        filter.before_id,
        limit
    )
    .fetch_all(db)
    .await
}

/// Puts a `dead` row back to `pending`, due now, with its attempts reset.
/// `tenant` restricts the row to one tenant (a tenant key's view).
pub async fn revive_dead(
    conn: &mut PgConnection,
    tenant: Option<&TenantId>,
    id: i64,
) -> Result<OutboxRow, DbError> {
    if let Some(row) = revive(conn, tenant, Some(id)).await?.pop() {
        return Ok(row);
    }
    let status = sqlx::query_scalar!(
        r#"SELECT status AS "status: OutboxStatus" FROM outbox
           WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)"#,
        id,
        tenant.map(TenantId::as_str)
    )
    .fetch_optional(&mut *conn)
    .await?;
    Err(status.map_or(DbError::NotFound("outbox row"), DbError::NotDead))
}

/// Revives every dead row (of one tenant, or all). Returns how many.
pub async fn revive_all_dead(
    conn: &mut PgConnection,
    tenant: Option<&TenantId>,
) -> sqlx::Result<u64> {
    Ok(revive(conn, tenant, None).await?.len() as u64)
}

/// Reviving, the one statement: dead rows (of `tenant`, or all; the row
/// `id`, or all) become pending, due now, attempts reset, and the relays
/// are woken when any did.
async fn revive(
    conn: &mut PgConnection,
    tenant: Option<&TenantId>,
    id: Option<i64>,
) -> sqlx::Result<Vec<OutboxRow>> {
    let revived = outbox_rows!(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = now()
         WHERE status = 'dead' AND ($1::bigint IS NULL OR id = $1)
           AND ($2::text IS NULL OR tenant_id = $2)
         RETURNING",
        "",
        id,
        tenant.map(TenantId::as_str)
    )
    .fetch_all(&mut *conn)
    .await?;
    if !revived.is_empty() {
        notify_relays(&mut *conn).await?;
    }
    Ok(revived)
}

/// The resync selection, the one statement: the current state of devices
/// from `device_state s` `$join`ed as the caller says, then `$tail`
/// (conditions, order, locks).
macro_rules! current_states {
    ($join:tt, $tail:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            CurrentState,
            r#"SELECT s.tenant_id AS "tenant_id: TenantId", s.device_id AS "device_id: DeviceId",
                      s.status AS "status: DeviceStatus",
                      s.desired_state AS "desired_state: Json<Document>", s.desired_version
               FROM device_state s "#
                + $join
                + " "
                + $tail
            $(, $arg)*
        )
    };
}

/// Re-enqueues every device's current state (of one tenant, or all), for
/// a broker that lost its retained messages or restored an old snapshot of
/// them: the desired document of each active device that has one, and a
/// clear for each decommissioned device. Works in pages of devices, each
/// its own transaction holding the devices' row locks, so a concurrent
/// write or decommission is ordered entirely before or after the resync of
/// its device and never rolled back by it. Returns how many rows it
/// enqueued.
pub async fn resync(pool: &PgPool, tenant: Option<&TenantId>) -> sqlx::Result<u64> {
    const PAGE: i64 = 500;
    let mut after = (String::new(), String::new());
    let mut total = 0;
    loop {
        let mut tx = pool.begin().await?;
        let page = current_states!(
            "",
            "WHERE (s.status = 'decommissioned' OR s.desired_version > 0)
               AND ($1::text IS NULL OR s.tenant_id = $1)
             AND (s.tenant_id, s.device_id) > ($2, $3)
             ORDER BY s.tenant_id, s.device_id
             LIMIT $4
             FOR UPDATE",
            tenant.map(TenantId::as_str),
            &after.0,
            &after.1,
            PAGE
        )
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = page.last() else {
            return Ok(total);
        };
        after = (
            last.tenant_id.as_str().to_owned(),
            last.device_id.as_str().to_owned(),
        );
        total += enqueue_current(&mut tx, &page).await?;
        tx.commit().await?;
    }
}

/// Re-enqueues the current state of the given devices (`(tenant, device)`
/// pairs), as [`resync`] does for a whole fleet, and a clear for an active
/// device that has no desired state yet (version 0: nothing should be
/// retained for it). The relay calls it a while after a publish was
/// interrupted, so that bytes of that publish arriving late at the broker
/// cannot leave an older version retained, and for every difference a
/// reconcile pass finds. It never makes a new desired version.
pub async fn resync_devices(pool: &PgPool, devices: &[(TenantId, DeviceId)]) -> sqlx::Result<u64> {
    let (tenants, device_ids): (Vec<&str>, Vec<&str>) = devices
        .iter()
        .map(|(t, d)| (t.as_str(), d.as_str()))
        .unzip();
    let mut tx = pool.begin().await?;
    let mut current = current_states!(
        "JOIN unnest($1::text[], $2::text[]) AS d(tenant_id, device_id) USING (tenant_id, device_id)",
        "ORDER BY s.tenant_id, s.device_id
         FOR UPDATE OF s",
        &tenants as &[&str],
        &device_ids as &[&str]
    )
    .fetch_all(&mut *tx)
    .await?;
    // A device named twice is enqueued once.
    current.dedup_by(|a, b| a.tenant_id == b.tenant_id && a.device_id == b.device_id);
    let enqueued = enqueue_current(&mut tx, &current).await?;
    tx.commit().await?;
    Ok(enqueued)
}

/// A device's state as resync re-enqueues it.
struct CurrentState {
    tenant_id: TenantId,
    device_id: DeviceId,
    status: DeviceStatus,
    desired_state: Json<Document>,
    desired_version: i64,
}

/// Enqueues each device's current state: its desired document when active
/// with a version, a clear when decommissioned or still at version 0. One
/// statement per tenant: `devices` come ordered by tenant. The caller
/// holds the devices' row locks.
async fn enqueue_current(conn: &mut PgConnection, devices: &[CurrentState]) -> sqlx::Result<u64> {
    for tenant_devices in devices.chunk_by(|a, b| a.tenant_id == b.tenant_id) {
        let changes: Vec<DeviceChange<'_>> = tenant_devices
            .iter()
            .map(|device| DeviceChange {
                device: &device.device_id,
                version: device.desired_version,
                publish: Some(match device.status {
                    DeviceStatus::Active if device.desired_version > 0 => {
                        Publish::Desired(&device.desired_state)
                    }
                    DeviceStatus::Active | DeviceStatus::Decommissioned => Publish::Clear,
                }),
                recorded: None,
            })
            .collect();
        changes::record(&mut *conn, &tenant_devices[0].tenant_id, &changes).await?;
    }
    Ok(devices.len() as u64)
}

/// Deletes finished rows (`delivered`, `superseded`) created before
/// `older_than`, in batches of `batch` so no statement holds locks for
/// long. A device's newest row is always kept: it is the device's delivery
/// summary and what keeps an older dead row from being republished over it.
/// Returns how many rows it deleted.
pub async fn purge_finished(
    pool: &PgPool,
    older_than: DateTime<Utc>,
    batch: i64,
) -> sqlx::Result<u64> {
    delete_in_batches(batch, || async {
        let deleted = sqlx::query!(
            "DELETE FROM outbox WHERE id IN (
               SELECT o.id FROM outbox o
               WHERE o.status IN ('delivered', 'superseded') AND o.created_at < $1
                 AND o.id <> (SELECT n.id FROM outbox_newest(o.tenant_id, o.device_id) n)
               ORDER BY o.created_at
               LIMIT $2)",
            older_than,
            batch
        )
        .execute(pool)
        .await?;
        Ok(deleted.rows_affected())
    })
    .await
}

/// One row of the `outbox_status` view.
#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The status.
    pub status: OutboxStatus,
    /// How many rows.
    pub count: i64,
    /// The oldest row's creation time.
    pub oldest_created_at: DateTime<Utc>,
    /// The oldest row's age.
    pub oldest_age_seconds: f64,
}

/// The `outbox_status` view, by tenant and status.
pub async fn status(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<StatusRow>> {
    sqlx::query_as!(
        StatusRow,
        r#"SELECT tenant_id AS "tenant_id!: TenantId", status AS "status!: OutboxStatus",
                  count AS "count!", oldest_created_at AS "oldest_created_at!",
                  oldest_age_seconds AS "oldest_age_seconds!"
           FROM outbox_status ORDER BY tenant_id, status"#
    )
    .fetch_all(db)
    .await
}
