//! Devices and their shadows: register, read, list (with tag filters),
//! decommission, and replace a device's tags.

use chrono::{DateTime, Utc};
use shadowbox_core::convergence::rejection_is_current;
use shadowbox_core::tags::Tags;
use shadowbox_core::{
    Actor, Change, DeviceId, DeviceStatus, Document, DocumentLimits, OutboxStatus, TenantId,
};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, Postgres, QueryBuilder};

use crate::DbError;
use crate::changes::{self, DeviceChange, Publish, Recorded};
use crate::error::{is_fk_violation, is_unique_violation};

/// A device with its shadow and the summary of its newest delivery.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRecord {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The device.
    pub device_id: DeviceId,
    /// Whether it takes desired writes.
    pub status: DeviceStatus,
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
    /// Its tags (`{}` when none).
    pub tags: Json<Tags>,
    /// When the current desired version was committed.
    pub desired_committed_at: DateTime<Utc>,
    /// When `reported_version` first reached the current desired version.
    pub applied_at: Option<DateTime<Utc>>,
    /// The desired version of the newest recorded rejection.
    pub rejected_version: Option<i64>,
    /// Its reason.
    pub rejected_reason: Option<String>,
    /// When it arrived.
    pub rejected_at: Option<DateTime<Utc>>,
    /// Status of the device's newest outbox row, if any.
    pub delivery_status: Option<OutboxStatus>,
    /// Version that row carries.
    pub delivery_version: Option<i64>,
    /// Publish attempts of that row.
    pub delivery_attempts: Option<i32>,
    /// Last error of that row.
    pub delivery_last_error: Option<String>,
    /// PUBACK time of that row.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A device's refusal of its current desired version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CurrentRejection {
    /// The desired version refused (the current one).
    pub version: i64,
    /// Why, in the device's words.
    pub reason: String,
    /// When the rejection arrived.
    pub at: DateTime<Utc>,
}

impl DeviceRecord {
    /// The recorded rejection, while it concerns the current desired
    /// version ([`rejection_is_current`]).
    pub fn current_rejection(&self) -> Option<CurrentRejection> {
        match (
            &self.rejected_version,
            &self.rejected_reason,
            &self.rejected_at,
        ) {
            (Some(version), Some(reason), Some(at))
                if rejection_is_current(self.desired_version, self.reported_version, *version) =>
            {
                Some(CurrentRejection {
                    version: *version,
                    reason: reason.clone(),
                    at: *at,
                })
            }
            _ => None,
        }
    }
}

/// Every device query selects this shape; `$1`, `$2` are tenant and device
/// unless the caller's WHERE clause says otherwise.
const DEVICE_COLUMNS: &str = "
    d.tenant_id, d.device_id, d.status, d.desired_state, d.desired_version,
    d.reported_state, d.reported_version, d.last_seen, d.created_at,
    d.desired_committed_at, d.applied_at, d.rejected_version, d.rejected_reason, d.rejected_at,
    o.status AS delivery_status, o.version AS delivery_version,
    o.attempts AS delivery_attempts, o.last_error AS delivery_last_error, o.delivered_at,
    COALESCE((SELECT jsonb_object_agg(t.key, t.value) FROM device_tags t
              WHERE t.tenant_id = d.tenant_id AND t.device_id = d.device_id),
             '{}') AS tags
  FROM device_state d
  LEFT JOIN LATERAL outbox_newest(d.tenant_id, d.device_id) o ON true";

/// The start of every device read: the device shape of `tenant`'s
/// devices, for the caller to add `AND` conditions, order and limit to.
/// Built with `QueryBuilder` (every value bound), because the list's
/// filters are dynamic; reading one device is the list's filter on its id,
/// so the shape is written once.
fn select_devices(tenant: &TenantId) -> QueryBuilder<Postgres> {
    let mut query = QueryBuilder::new("SELECT ");
    query
        .push(DEVICE_COLUMNS)
        .push(" WHERE d.tenant_id = ")
        .push_bind(tenant.as_str());
    query
}

/// Reads one device.
pub async fn get_device(
    db: impl PgExecutor<'_>,
    tenant: &TenantId,
    device: &DeviceId,
) -> sqlx::Result<Option<DeviceRecord>> {
    let mut query = select_devices(tenant);
    query.push(" AND d.device_id = ").push_bind(device.as_str());
    query.build_query_as().fetch_optional(db).await
}

/// Filters and page position for [`list_devices`].
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    /// Only devices with this status.
    pub status: Option<DeviceStatus>,
    /// Only devices that are (or are not) in sync.
    pub in_sync: Option<bool>,
    /// Only devices whose current desired version was committed longer
    /// ago than this; with `in_sync: Some(false)`, the devices that have
    /// not applied it within that time.
    pub older_than: Option<std::time::Duration>,
    /// Only devices having every one of these tags.
    pub tags: Tags,
    /// Only devices whose id sorts after this one (the page cursor).
    pub after: Option<String>,
}

/// Adds `AND <device d has every tag of tags>` to a query over
/// `device_state d`: one `EXISTS` per tag, each answered from the
/// `device_tags_selector` index in device id order, so the planner can
/// drive a selector from the index instead of scanning the tenant.
pub(crate) fn push_tag_filter(query: &mut QueryBuilder<Postgres>, tags: &Tags) {
    for (key, value) in tags {
        query
            .push(
                " AND EXISTS (SELECT 1 FROM device_tags t
                   WHERE t.tenant_id = d.tenant_id AND t.device_id = d.device_id AND t.key = ",
            )
            .push_bind(key.clone())
            .push(" AND t.value = ")
            .push_bind(value.clone())
            .push(")");
    }
}

/// Lists a tenant's devices in id order, at most `limit` of them.
pub async fn list_devices(
    db: impl PgExecutor<'_>,
    tenant: &TenantId,
    filter: &DeviceFilter,
    limit: i64,
) -> sqlx::Result<Vec<DeviceRecord>> {
    let mut query = select_devices(tenant);
    if let Some(status) = &filter.status {
        query.push(" AND d.status = ").push_bind(*status);
    }
    // Spelled out, not bound, so the planner sees the predicate of the
    // `device_state_not_in_sync` index (`shadowbox_core::convergence::in_sync`).
    match filter.in_sync {
        Some(true) => query.push(" AND d.reported_version >= d.desired_version"),
        Some(false) => query.push(" AND d.reported_version < d.desired_version"),
        None => &mut query,
    };
    if let Some(older_than) = filter.older_than {
        query
            .push(" AND d.desired_committed_at < now() - ")
            .push_bind(older_than);
    }
    if let Some(after) = &filter.after {
        query.push(" AND d.device_id > ").push_bind(after.clone());
    }
    push_tag_filter(&mut query, &filter.tags);
    query.push(" ORDER BY d.device_id LIMIT ").push_bind(limit);
    query.build_query_as().fetch_all(db).await
}

/// Replaces the device's tags (whatever its status) and returns the
/// device. Takes the device's row lock, so concurrent replacements of one
/// device's tags apply one after the other, never mixed.
pub async fn set_tags(
    conn: &mut PgConnection,
    tenant: &TenantId,
    device: &DeviceId,
    tags: &Tags,
) -> Result<DeviceRecord, DbError> {
    let exists = sqlx::query_scalar!(
        "SELECT 1 FROM device_state WHERE tenant_id = $1 AND device_id = $2 FOR UPDATE",
        tenant.as_str(),
        device.as_str()
    )
    .fetch_optional(&mut *conn)
    .await?;
    if exists.is_none() {
        return Err(DbError::NotFound("device"));
    }
    sqlx::query!(
        "DELETE FROM device_tags WHERE tenant_id = $1 AND device_id = $2",
        tenant.as_str(),
        device.as_str()
    )
    .execute(&mut *conn)
    .await?;
    insert_tags(&mut *conn, tenant, device, tags).await?;
    Ok(get_device(&mut *conn, tenant, device)
        .await?
        .expect("locked above"))
}

/// Inserts `tags` for a device that has none.
async fn insert_tags(
    conn: &mut PgConnection,
    tenant: &TenantId,
    device: &DeviceId,
    tags: &Tags,
) -> sqlx::Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let (keys, values): (Vec<&str>, Vec<&str>) =
        tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).unzip();
    sqlx::query!(
        "INSERT INTO device_tags (tenant_id, device_id, key, value)
         SELECT $1, $2, key, value FROM unnest($3::text[], $4::text[]) AS t(key, value)",
        tenant.as_str(),
        device.as_str(),
        &keys as &[&str],
        &values as &[&str]
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Registers a device with its `tags`. With a `desired` document it
/// starts at version 1 and its publish is enqueued in the same
/// transaction; without one it starts at version 0 with `{}` and nothing
/// is published. The registration by `actor` is the device's first
/// history entry.
pub async fn register_device(
    conn: &mut PgConnection,
    tenant: &TenantId,
    device: &DeviceId,
    desired: Option<Document>,
    tags: &Tags,
    limits: &DocumentLimits,
    actor: Actor,
) -> Result<DeviceRecord, DbError> {
    if let Some(doc) = &desired {
        limits.check(doc)?;
    }
    let version = i64::from(desired.is_some());
    let inserted = sqlx::query!(
        "INSERT INTO device_state (tenant_id, device_id, desired_state, desired_version)
         VALUES ($1, $2, $3, $4)",
        tenant.as_str(),
        device.as_str(),
        Json(desired.clone().unwrap_or_default()) as _,
        version
    )
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
    insert_tags(&mut *conn, tenant, device, tags).await?;
    changes::record(
        &mut *conn,
        tenant,
        &[DeviceChange {
            device,
            version,
            publish: desired.as_ref().map(Publish::Desired),
            recorded: Some(Recorded {
                change: Change::Register,
                body: desired.as_ref(),
                actor,
            }),
        }],
    )
    .await?;
    Ok(get_device(&mut *conn, tenant, device)
        .await?
        .expect("inserted in this transaction"))
}

/// Decommissions a device and enqueues the clear of its retained desired
/// message in the same transaction. Returns the device and whether it was
/// active before (a second call changes, enqueues and records nothing).
pub async fn decommission_device(
    conn: &mut PgConnection,
    tenant: &TenantId,
    device: &DeviceId,
    actor: Actor,
) -> Result<(DeviceRecord, bool), DbError> {
    let row = sqlx::query_scalar!(
        "UPDATE device_state
         SET status = 'decommissioned', decommissioned_at = now(), updated_at = now()
         WHERE tenant_id = $1 AND device_id = $2 AND status = 'active'
         RETURNING desired_version",
        tenant.as_str(),
        device.as_str()
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(version) = row {
        changes::record(
            &mut *conn,
            tenant,
            &[DeviceChange {
                device,
                version,
                publish: Some(Publish::Clear),
                recorded: Some(Recorded {
                    change: Change::Decommission,
                    body: None,
                    actor,
                }),
            }],
        )
        .await?;
    }
    let record = get_device(&mut *conn, tenant, device)
        .await?
        .ok_or(DbError::NotFound("device"))?;
    Ok((record, row.is_some()))
}
