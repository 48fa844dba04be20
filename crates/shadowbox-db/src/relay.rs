//! How relays claim outbox rows and settle them.
//!
//! A relay works in batches, each inside one transaction that stays open
//! while its publishes are in flight:
//!
//! 1. [`lock_devices`] walks the due rows oldest first and takes a
//!    transaction-scoped advisory lock on each one's device, skipping
//!    devices another batch (of this or any relay) holds, until it holds
//!    enough. The lock is the "one publish in flight per device" rule;
//!    PostgreSQL releases it when the transaction ends, also when a relay
//!    dies, so nothing is ever stuck behind a lease.
//! 2. [`take_newest`] then, in a fresh snapshot, returns each locked
//!    device's newest row if it is pending and due, and supersedes the
//!    older due rows the walk found (a write supersedes its device's
//!    pending rows itself, so these are rows an operator revived or a bulk
//!    load left; any beyond the walk are found by a later one).
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

/// A due pending row whose device this transaction locked: the device's
/// publishes are this transaction's until it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedRow {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The device.
    pub device_id: DeviceId,
    /// The row.
    pub id: i64,
}

/// Walks at most the `window` oldest due rows and locks their devices
/// until it holds `limit` rows. Devices locked elsewhere are skipped, so
/// the window must be larger than the rows other batches hold. A device
/// with several due rows comes once per row.
///
/// The plan is the same whatever the statistics say: the walk is the
/// pending rows' index in due order (the only index that gives that
/// order), stopped by the outer `LIMIT` as soon as `limit` rows are
/// locked, so a claim reads the rows other batches hold plus its own.
pub async fn lock_devices(
    conn: &mut PgConnection,
    limit: i64,
    window: i64,
) -> sqlx::Result<Vec<LockedRow>> {
    // The lock filter cannot be pushed below the inner LIMIT, so locks are
    // tried in due order and only until `limit` rows are held. Trying a
    // lock this transaction already holds succeeds again, so a device's
    // later rows come through too.
    sqlx::query_as!(
        LockedRow,
        r#"SELECT tenant_id AS "tenant_id!: TenantId", device_id AS "device_id!: DeviceId",
                  id AS "id!"
           FROM (SELECT tenant_id, device_id, id FROM outbox
                 WHERE status = 'pending' AND next_attempt_at <= now()
                 ORDER BY next_attempt_at, id
                 LIMIT $2) due
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

/// For each locked device, returns its newest row when it is pending and
/// due, and supersedes the `locked` rows older than that newest row. Must
/// run after [`lock_devices`], in the same transaction, as a separate
/// statement: its snapshot then includes everything committed by whoever
/// held a device's lock before.
pub async fn take_newest(conn: &mut PgConnection, locked: &[LockedRow]) -> sqlx::Result<Claim> {
    let tenants: Vec<&str> = locked.iter().map(|r| r.tenant_id.as_str()).collect();
    let device_ids: Vec<&str> = locked.iter().map(|r| r.device_id.as_str()).collect();
    let ids: Vec<i64> = locked.iter().map(|r| r.id).collect();
    // Every lookup is by key, so no estimate of the backlog can change the
    // plan: each device's newest row by a backward step of `outbox_device`,
    // the walk's rows and the superseded ones by primary key. No condition
    // on `status` reaches a scan of `outbox`: it would make the partial
    // indexes of pending rows candidates, and statistics taken before a
    // backlog call those nearly empty (a full walk of them per claim). A
    // row a write superseded meanwhile is superseded again, which changes
    // nothing; no one else settles a locked device's rows.
    let newest = sqlx::query!(
        r#"WITH locked AS (
           SELECT DISTINCT * FROM unnest($1::text[], $2::text[]) AS l(tenant_id, device_id)),
         newest AS MATERIALIZED (
           SELECT o.* FROM locked l
           CROSS JOIN LATERAL outbox_newest(l.tenant_id, l.device_id) o),
         walked AS MATERIALIZED (
           SELECT id, tenant_id, device_id, status FROM outbox WHERE id = ANY($3)),
         superseded AS (
           UPDATE outbox o SET status = 'superseded'
           WHERE o.id IN (
             SELECT w.id FROM walked w JOIN newest n
               ON n.tenant_id = w.tenant_id AND n.device_id = w.device_id AND w.id < n.id
             WHERE w.status = 'pending')
           RETURNING o.id)
         SELECT n.id AS "id!", n.tenant_id AS "tenant_id!: TenantId",
                n.device_id AS "device_id!: DeviceId", n.topic AS "topic!",
                n.payload AS "payload!", n.version AS "version!", n.created_at AS "created_at!",
                n.status = 'pending' AND n.next_attempt_at <= now() AS "publish!",
                (SELECT count(*) FROM superseded) AS "superseded!"
         FROM newest n"#,
        &tenants as &[&str],
        &device_ids as &[&str],
        &ids
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
/// row superseded while it was in flight: it did reach the broker; a row
/// already delivered keeps its first PUBACK), fills in `delivered_at` of
/// the change each carries in the desired history and writes its
/// `delivered` event: the relay is the one writer of deliveries, so the
/// rule lives in its statement (a statement-level trigger planned its
/// two joins on every call, most of a small batch's cost).
pub async fn mark_delivered(
    conn: &mut PgConnection,
    acked: &[(i64, DateTime<Utc>)],
) -> sqlx::Result<()> {
    let (ids, times): (Vec<i64>, Vec<DateTime<Utc>>) = acked.iter().copied().unzip();
    sqlx::query!(
        "WITH delivered AS (
           UPDATE outbox o
           SET status = 'delivered', delivered_at = a.acked_at, attempts = o.attempts + 1
           FROM unnest($1::bigint[], $2::timestamptz[]) AS a(id, acked_at)
           WHERE o.id = a.id AND o.status <> 'delivered'
           RETURNING o.id, o.tenant_id, o.device_id, o.version, o.kind, o.delivered_at
         ), history AS (
           UPDATE desired_history h SET delivered_at = d.delivered_at
           FROM (SELECT h2.id, n.delivered_at
                 FROM delivered n
                 JOIN desired_history h2
                   ON h2.tenant_id = n.tenant_id AND h2.device_id = n.device_id
                  AND h2.version = n.version
                  AND (h2.change = 'decommission') = (n.kind = 'clear')
                 WHERE h2.delivered_at IS NULL
                 ORDER BY h2.id
                 FOR UPDATE OF h2) d
           WHERE h.id = d.id
         )
         INSERT INTO events (tenant_id, event, device_id, version, at, data)
         SELECT tenant_id, 'delivered', device_id, version, delivered_at,
                jsonb_build_object('outbox_id', id, 'kind', kind)
         FROM delivered
         ORDER BY id",
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
/// computes it), with a `dead` event for each row that became dead.
/// Returns how many rows became dead.
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
           RETURNING id, tenant_id, device_id, version, kind, status, attempts, last_error
         ), evented AS (
           INSERT INTO events (tenant_id, event, device_id, version, at, data)
           SELECT tenant_id, 'dead', device_id, version, now(),
                  jsonb_build_object('outbox_id', id, 'kind', kind,
                                     'attempts', attempts, 'last_error', last_error)
           FROM failed
           WHERE status = 'dead'
           ORDER BY id
         )
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
