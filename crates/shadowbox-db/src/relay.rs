//! How relays claim outbox rows and settle them.
//!
//! A relay works in batches, each inside one transaction that stays open
//! while its publishes are in flight:
//!
//! 1. [`lock_devices`] takes a transaction-scoped advisory lock on each
//!    device that has a due pending row, skipping devices another batch
//!    (of this or any relay) holds. The lock is the "one publish in flight
//!    per device" rule; PostgreSQL releases it when the transaction ends,
//!    also when a relay dies, so nothing is ever stuck behind a lease.
//! 2. [`take_newest`] then, in a fresh snapshot, keeps only each device's
//!    newest row: the older pending rows become `superseded`, and the
//!    newest is returned if it is pending and due.
//! 3. After the broker's answers, [`mark_delivered`] and [`mark_failed`]
//!    settle the rows, and the commit releases the devices.
//!
//! Rows never leave `pending` while in flight, so a relay crash needs no
//! recovery: the rows are simply still pending.

use chrono::{DateTime, Utc};
use shadowbox_core::backoff::RefusalBackoff;
use shadowbox_core::{DeviceId, TenantId};
use sqlx::PgConnection;

/// The first key of every relay advisory lock, so they never collide with
/// another application's locks on the same database.
const LOCK_NAMESPACE: i32 = 0x5342; // "SB"

/// A device whose publishes this transaction owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedDevice {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The device.
    pub device_id: DeviceId,
}

/// Locks up to `limit` devices that have a due pending row, looking at the
/// `window` oldest due rows. Devices locked elsewhere are skipped, so the
/// window must be larger than the rows other batches hold.
pub async fn lock_devices(
    conn: &mut PgConnection,
    limit: i64,
    window: i64,
) -> sqlx::Result<Vec<LockedDevice>> {
    // Each CTE is materialized and the lock filter sits under the LIMIT, so
    // locks are tried in order and only until `limit` are held.
    sqlx::query_as!(
        LockedDevice,
        r#"WITH due AS MATERIALIZED (
           SELECT tenant_id, device_id, id FROM outbox
           WHERE status = 'pending' AND next_attempt_at <= now()
           ORDER BY next_attempt_at, id
           LIMIT $2),
         candidates AS MATERIALIZED (
           SELECT tenant_id, device_id, min(id) AS first_id FROM due
           GROUP BY tenant_id, device_id
           ORDER BY first_id)
         SELECT tenant_id AS "tenant_id!: TenantId", device_id AS "device_id!: DeviceId"
         FROM candidates
         WHERE pg_try_advisory_xact_lock($3, hashtext(tenant_id || '/' || device_id))
         LIMIT $1"#,
        limit,
        window,
        LOCK_NAMESPACE
    )
    .fetch_all(conn)
    .await
}

/// A row a relay is to publish.
#[derive(Debug, Clone)]
pub struct ClaimedRow {
    /// The outbox id.
    pub id: i64,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The device.
    pub device_id: DeviceId,
    /// The topic to publish to.
    pub topic: String,
    /// The exact bytes to publish, retained.
    pub payload: Vec<u8>,
    /// The desired version it carries.
    pub version: i64,
    /// When the change was committed.
    pub created_at: DateTime<Utc>,
}

/// What [`take_newest`] found for the locked devices.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// The rows to publish: at most one per device, each its newest.
    pub rows: Vec<ClaimedRow>,
    /// How many older pending rows became `superseded`.
    pub superseded: u64,
}

/// For each locked device, supersedes every pending row older than the
/// device's newest row, and returns the newest row when it is pending and
/// due. Must run after [`lock_devices`], in the same transaction, as a
/// separate statement: its snapshot then includes everything committed by
/// whoever held a device's lock before.
pub async fn take_newest(conn: &mut PgConnection, devices: &[LockedDevice]) -> sqlx::Result<Claim> {
    let (tenants, device_ids): (Vec<&str>, Vec<&str>) = devices
        .iter()
        .map(|d| (d.tenant_id.as_str(), d.device_id.as_str()))
        .unzip();
    let newest = sqlx::query!(
        r#"WITH locked AS (
           SELECT * FROM unnest($1::text[], $2::text[]) AS l(tenant_id, device_id)),
         newest AS MATERIALIZED (
           SELECT o.* FROM locked l
           CROSS JOIN LATERAL outbox_newest(l.tenant_id, l.device_id) o),
         superseded AS (
           -- Driven from each device's newest row through the pending-rows
           -- index, whatever the statistics say of the backlog: OFFSET 0
           -- keeps the planner from flattening the lateral lookup into a
           -- join that walks every pending row once per device.
           UPDATE outbox o SET status = 'superseded'
           WHERE o.id IN (
             SELECT p.id FROM newest n CROSS JOIN LATERAL (
               SELECT p.id FROM outbox p
               WHERE p.tenant_id = n.tenant_id AND p.device_id = n.device_id
                 AND p.status = 'pending' AND p.id < n.id
               OFFSET 0) p)
           RETURNING o.id)
         SELECT n.id AS "id!", n.tenant_id AS "tenant_id!: TenantId",
                n.device_id AS "device_id!: DeviceId", n.topic AS "topic!",
                n.payload AS "payload!", n.version AS "version!", n.created_at AS "created_at!",
                n.status = 'pending' AND n.next_attempt_at <= now() AS "publish!",
                (SELECT count(*) FROM superseded) AS "superseded!"
         FROM newest n"#,
        &tenants as &[&str],
        &device_ids as &[&str]
    )
    .fetch_all(conn)
    .await?;
    // Every locked device has a row, so the count is there whenever a
    // device was locked.
    let superseded = newest.first().map_or(0, |n| n.superseded as u64);
    let rows = newest
        .into_iter()
        .filter(|n| n.publish)
        .map(|n| ClaimedRow {
            id: n.id,
            tenant_id: n.tenant_id,
            device_id: n.device_id,
            topic: n.topic,
            payload: n.payload,
            version: n.version,
            created_at: n.created_at,
        })
        .collect();
    Ok(Claim { rows, superseded })
}

/// Marks rows delivered, each with the time its PUBACK arrived (also a
/// row superseded while it was in flight: it did reach the broker).
pub async fn mark_delivered(
    conn: &mut PgConnection,
    acked: &[(i64, DateTime<Utc>)],
) -> sqlx::Result<()> {
    let (ids, times): (Vec<i64>, Vec<DateTime<Utc>>) = acked.iter().copied().unzip();
    sqlx::query!(
        "UPDATE outbox o
         SET status = 'delivered', delivered_at = a.acked_at, attempts = o.attempts + 1
         FROM unnest($1::bigint[], $2::timestamptz[]) AS a(id, acked_at)
         WHERE o.id = a.id",
        &ids,
        &times
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that the publishes of `ids` were interrupted by the transport:
/// the connection dropped or the broker did not acknowledge in time. The
/// attempt is counted and the error kept, but the row is due again at
/// once and never becomes `dead` this way: a broker outage is not the
/// row's fault, and rows must go out as soon as the broker is back.
pub async fn mark_interrupted(
    conn: &mut PgConnection,
    ids: &[i64],
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE outbox SET attempts = attempts + 1, last_error = $2
         WHERE id = ANY($1) AND status = 'pending'",
        ids,
        error
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a refused publish of each row (the connection was up, but the
/// row could not be published): the attempt is counted, the error kept,
/// and the row either waits for its next attempt or, after
/// `max_attempts`, is `dead`, as the refusal backoff says
/// ([`shadowbox_core::backoff`] states the schedule; this statement
/// computes it). Returns how many rows became dead.
pub async fn mark_failed(
    conn: &mut PgConnection,
    ids: &[i64],
    error: &str,
    policy: &RefusalBackoff,
) -> sqlx::Result<u64> {
    sqlx::query_scalar!(
        r#"WITH failed AS (
           UPDATE outbox SET
             attempts = attempts + 1,
             last_error = $2,
             status = CASE WHEN attempts + 1 >= $5 THEN 'dead' ELSE 'pending' END,
             next_attempt_at = now() + make_interval(secs =>
               least($4, $3 * power(2, least(attempts, 30))) * (0.5 + random() / 2))
           WHERE id = ANY($1) AND status = 'pending'
           RETURNING status)
         SELECT count(*) FILTER (WHERE status = 'dead') AS "dead!" FROM failed"#,
        ids,
        error,
        policy.base_delay.as_secs_f64(),
        policy.max_delay.as_secs_f64(),
        policy.max_attempts
    )
    .fetch_one(conn)
    .await
    .map(|dead: i64| dead as u64)
}

/// The outbox's backlog, as every relay reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Pending rows.
    pub pending: i64,
    /// Age of the oldest pending row, in seconds (0 when none).
    pub oldest_pending_age_seconds: f64,
    /// Dead rows.
    pub dead: i64,
}

/// Pending rows, the age of the oldest, and dead rows: each counted from
/// its partial index (`outbox_pending_due`, `outbox_dead`).
pub async fn backlog(db: impl sqlx::PgExecutor<'_>) -> sqlx::Result<Backlog> {
    sqlx::query_as!(
        Backlog,
        r#"SELECT count(*) AS "pending!",
                  coalesce(extract(epoch FROM now() - min(created_at))::float8, 0)
                    AS "oldest_pending_age_seconds!",
                  (SELECT count(*) FROM outbox WHERE status = 'dead') AS "dead!"
           FROM outbox WHERE status = 'pending'"#
    )
    .fetch_one(db)
    .await
}
