//! The event stream's reads. Events are written in the transactions that
//! make them: by the trigger of the migration `events` (desired changes),
//! by the relay's statements ([`crate::relay`]: delivered, dead), by the
//! ingester's statement ([`crate::reported`]: applied, rejected) and by
//! rollouts through [`record_rollout`]; this module reads them in commit
//! order.
//!
//! A read returns only events of transactions below the snapshot's xmin
//! horizon (all finished), ordered by `(xid, seq)`: a transaction that
//! writes later always has a higher xid than that horizon, so nothing can
//! appear behind a position a reader has passed. The price is that an
//! event waits until every transaction that began writing before it has
//! finished (milliseconds, except behind a long transaction).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use shadowbox_core::event::{EventId, EventKind};
use shadowbox_core::{DeviceId, TenantId};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, PgPool};

use crate::batches::delete_in_batches;

/// One event, as the stream sends it.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// The writing transaction's id.
    pub xid: i64,
    /// The order within it.
    pub seq: i64,
    /// What it reports.
    pub event: EventKind,
    /// The tenant.
    pub tenant_id: String,
    /// The device, where it concerns one.
    pub device_id: Option<String>,
    /// The desired version, where it concerns one.
    pub version: Option<i64>,
    /// The rollout, for rollout events.
    pub rollout_id: Option<i64>,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Its own fields.
    pub data: Json<Map<String, Value>>,
}

impl EventRow {
    /// Its position in the stream.
    pub fn id(&self) -> EventId {
        EventId {
            xid: self.xid,
            seq: self.seq,
        }
    }
}

/// Where a stream that starts now begins: after every event of the
/// transactions that have finished, so it sends what commits from now on
/// (and what transactions still running commit).
pub async fn start_position(db: impl PgExecutor<'_>) -> sqlx::Result<EventId> {
    let xmin = sqlx::query_scalar!(
        r#"SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS "xmin!""#
    )
    .fetch_one(db)
    .await?;
    Ok(EventId { xid: xmin, seq: 0 })
}

/// The tenant's events after `after` (of one device, if given), in commit
/// order, at most `limit`, only of finished transactions.
pub async fn read_after(
    db: impl PgExecutor<'_>,
    tenant: &TenantId,
    device: Option<&DeviceId>,
    after: EventId,
    limit: i64,
) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as!(
        EventRow,
        r#"SELECT xid::text::bigint AS "xid!", seq, event AS "event: EventKind", tenant_id,
                  device_id, version, rollout_id, at, data AS "data: Json<Map<String, Value>>"
           FROM events
           WHERE tenant_id = $1
             AND ($2::text IS NULL OR device_id = $2)
             AND (xid, seq) > ($3::text::xid8, $4)
             AND xid < pg_snapshot_xmin(pg_current_snapshot())
           ORDER BY xid, seq
           LIMIT $5"#,
        tenant.as_str(),
        device.map(DeviceId::as_str),
        after.xid.to_string(),
        after.seq,
        limit
    )
    .fetch_all(db)
    .await
}

/// The newest event any reader may see now (of any tenant), `None` when
/// there is none: streams look for theirs when it moves.
pub async fn newest_visible(db: impl PgExecutor<'_>) -> sqlx::Result<Option<EventId>> {
    let newest = sqlx::query!(
        r#"SELECT xid::text::bigint AS "xid!", seq FROM events
           WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
           ORDER BY xid DESC, seq DESC
           LIMIT 1"#
    )
    .fetch_optional(db)
    .await?;
    Ok(newest.map(|n| EventId {
        xid: n.xid,
        seq: n.seq,
    }))
}

/// Records a `rollout` event of `tenant`'s rollout `rollout_id` in the
/// caller's transaction (the one that changed the rollout), with `data`
/// as its own fields (say `{"status": "paused"}`).
pub async fn record_rollout(
    conn: &mut PgConnection,
    tenant: &TenantId,
    rollout_id: i64,
    data: &Map<String, Value>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO events (tenant_id, event, rollout_id, data) VALUES ($1, 'rollout', $2, $3)",
        tenant.as_str(),
        rollout_id,
        Json(data) as _
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes events older than `older_than` (the resume window), oldest
/// first in batches of `batch`. Returns how many.
pub async fn purge(pool: &PgPool, older_than: DateTime<Utc>, batch: i64) -> sqlx::Result<u64> {
    delete_in_batches(batch, || async {
        let deleted = sqlx::query!(
            "DELETE FROM events WHERE (xid, seq) IN (
               SELECT xid, seq FROM events WHERE at < $1 ORDER BY xid, seq LIMIT $2)",
            older_than,
            batch
        )
        .execute(pool)
        .await?;
        Ok(deleted.rows_affected())
    })
    .await
}
