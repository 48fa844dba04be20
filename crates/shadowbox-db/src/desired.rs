//! The one transaction that changes a device's desired state: lock the
//! row, apply the change, bump the version by exactly one and enqueue the
//! publish, or do nothing at all when the change changes nothing.

use serde_json::Value;
use shadowbox_core::merge::merge_patch;
use shadowbox_core::{DeviceId, DeviceStatus, Document, DocumentLimits, TenantId};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::DbError;
use crate::devices::{DeviceRecord, get_device};
use crate::outbox::{Publish, enqueue};

/// A change to the desired document.
#[derive(Debug, Clone)]
pub enum DesiredChange {
    /// RFC 7396 merge patch (`null` deletes a key).
    Merge(Document),
    /// Replace the whole document.
    Replace(Document),
}

/// What [`apply_desired_change`] did.
#[derive(Debug, Clone)]
pub struct DesiredOutcome {
    /// The device after the change.
    pub device: DeviceRecord,
    /// The outbox row enqueued, or `None` when the change was a no-op.
    pub enqueued: Option<i64>,
}

/// Applies `change` to the device's desired state inside the caller's
/// transaction. Fails without writing anything when the device is missing
/// or decommissioned, when `expected_version` is not the current version,
/// or when the result breaks `limits`.
pub async fn apply_desired_change(
    conn: &mut PgConnection,
    tenant: &TenantId,
    device: &DeviceId,
    change: DesiredChange,
    expected_version: Option<i64>,
    limits: &DocumentLimits,
) -> Result<DesiredOutcome, DbError> {
    let current: Option<(DeviceStatus, Json<Document>, i64)> = sqlx::query_as(
        "SELECT status, desired_state, desired_version FROM device_state
         WHERE tenant_id = $1 AND device_id = $2 FOR UPDATE",
    )
    .bind(tenant.as_str())
    .bind(device.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let (status, Json(desired), version) = current.ok_or(DbError::NotFound("device"))?;
    if status != DeviceStatus::Active {
        return Err(DbError::Decommissioned);
    }
    if let Some(expected) = expected_version.filter(|e| *e != version) {
        return Err(DbError::VersionMismatch {
            expected,
            current: version,
        });
    }
    let next = match change {
        DesiredChange::Replace(doc) => doc,
        DesiredChange::Merge(patch) => {
            let mut merged = Value::Object(desired.clone());
            merge_patch(&mut merged, &Value::Object(patch));
            match merged {
                Value::Object(doc) => doc,
                _ => unreachable!("an object patched by an object stays an object"),
            }
        }
    };
    if next == desired {
        let device = get_device(&mut *conn, tenant, device)
            .await?
            .expect("locked above");
        return Ok(DesiredOutcome {
            device,
            enqueued: None,
        });
    }
    limits.check(&next)?;
    let next_version = version + 1;
    sqlx::query(
        "UPDATE device_state SET desired_state = $3, desired_version = $4, updated_at = now()
         WHERE tenant_id = $1 AND device_id = $2",
    )
    .bind(tenant.as_str())
    .bind(device.as_str())
    .bind(Json(&next))
    .bind(next_version)
    .execute(&mut *conn)
    .await?;
    let id = enqueue(
        &mut *conn,
        tenant,
        device,
        Publish::Desired(&next),
        next_version,
    )
    .await?;
    let device = get_device(&mut *conn, tenant, device)
        .await?
        .expect("locked above");
    Ok(DesiredOutcome {
        device,
        enqueued: Some(id),
    })
}
