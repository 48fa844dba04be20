//! Desired history: one row per desired change, with who made it, written
//! by the transaction that makes the change ([`crate::changes`]). When the change
//! was delivered is filled in by the relay's statement
//! ([`crate::relay::mark_delivered`], the one writer of deliveries), when
//! it was applied or refused by the ingester's statement
//! ([`crate::reported`], the one writer of reported state).

use chrono::{DateTime, Utc};
use serde_json::Value;
use shadowbox_core::{Actor, Change, DeviceId, TenantId};
use sqlx::types::Json;
use sqlx::{PgExecutor, PgPool};

use crate::batches::delete_in_batches;
use crate::desired::DesiredChange;

/// The change a desired write by `actor` is: a rollout's merge patch is
/// its `rollout`, a rollout's replacement its `rollback`.
pub fn change_of(write: &DesiredChange, actor: &Actor) -> Change {
    match (write, actor) {
        (DesiredChange::Merge(_), Actor::Rollout(_)) => Change::Rollout,
        (DesiredChange::Replace(_), Actor::Rollout(_)) => Change::Rollback,
        (DesiredChange::Merge(_), _) => Change::Merge,
        (DesiredChange::Replace(_), _) => Change::Replace,
    }
}

/// One desired change as the history shows it.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    /// Increasing id (the page cursor).
    pub id: i64,
    /// The desired version after the change.
    pub version: i64,
    /// What it was.
    pub change: Change,
    /// What was sent.
    pub body: Option<Json<Value>>,
    /// `admin`, `key:<id>` or `rollout:<id>`.
    pub actor: String,
    /// When it was committed.
    pub committed_at: DateTime<Utc>,
    /// The first PUBACK of a publish carrying it.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the device first reported this version.
    pub applied_at: Option<DateTime<Utc>>,
    /// Why the device refused this version, if it did.
    pub rejection_reason: Option<String>,
    /// When it refused it.
    pub rejected_at: Option<DateTime<Utc>>,
}

/// A device's changes, newest first, below `before_id` (the page cursor),
/// at most `limit`.
pub async fn list(
    db: impl PgExecutor<'_>,
    tenant: &TenantId,
    device: &DeviceId,
    before_id: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<HistoryRow>> {
    sqlx::query_as!(
        HistoryRow,
        r#"SELECT id, version, change AS "change: Change", body AS "body: Json<Value>", actor,
                  committed_at, delivered_at, applied_at, rejection_reason, rejected_at
           FROM desired_history
           WHERE tenant_id = $1 AND device_id = $2 AND ($3::bigint IS NULL OR id < $3)
           ORDER BY id DESC
           LIMIT $4"#,
        tenant.as_str(),
        device.as_str(),
        before_id,
        limit
    )
    .fetch_all(db)
    .await
}

/// Deletes changes committed before `older_than`, in batches of `batch`.
/// Returns how many.
pub async fn purge(pool: &PgPool, older_than: DateTime<Utc>, batch: i64) -> sqlx::Result<u64> {
    delete_in_batches(batch, || async {
        let deleted = sqlx::query!(
            "DELETE FROM desired_history WHERE id IN (
               SELECT id FROM desired_history WHERE committed_at < $1
               ORDER BY committed_at LIMIT $2)",
            older_than,
            batch
        )
        .execute(pool)
        .await?;
        Ok(deleted.rows_affected())
    })
    .await
}
