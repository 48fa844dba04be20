//! The one transaction that changes a device's desired state: lock the
//! row, apply the change, bump the version by exactly one, enqueue the
//! publish and record the change in the history, or do nothing at all when
//! the change changes nothing.

use serde_json::Value;
use shadowbox_core::merge::merge_patch;
use shadowbox_core::{
    Actor, DeviceId, DeviceStatus, Document, DocumentError, DocumentLimits, TenantId,
};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::DbError;
use crate::changes::{self, DeviceChange, Publish, Recorded};
use crate::devices::{DeviceRecord, get_device};
use crate::history;

/// A change to the desired document.
#[derive(Debug, Clone)]
pub enum DesiredChange {
    /// RFC 7396 merge patch (`null` deletes a key).
    Merge(Document),
    /// Replace the whole document.
    Replace(Document),
}

/// The desired document after `change` to `current`: `Ok(None)` when the
/// change changes nothing (no new version, nothing published), an error
/// when the result breaks `limits`. The one rule of every desired writer:
/// a PATCH or PUT, a rollout's devices, a rollback.
pub fn next_document(
    current: &Document,
    change: &DesiredChange,
    limits: &DocumentLimits,
) -> Result<Option<Document>, DocumentError> {
    let next = match change {
        DesiredChange::Replace(doc) => doc.clone(),
        DesiredChange::Merge(patch) => {
            let mut merged = Value::Object(current.clone());
            merge_patch(&mut merged, &Value::Object(patch.clone()));
            match merged {
                Value::Object(doc) => doc,
                _ => unreachable!("an object patched by an object stays an object"),
            }
        }
    };
    if next == *current {
        return Ok(None);
    }
    limits.check(&next)?;
    Ok(Some(next))
}

/// What [`apply_desired_change`] did.
#[derive(Debug, Clone)]
pub struct DesiredOutcome {
    /// The device after the change.
    pub device: DeviceRecord,
    /// The outbox row enqueued, or `None` when the change was a no-op.
    pub enqueued: Option<i64>,
}

/// Applies `change` by `actor` to the device's desired state inside the
/// caller's transaction, and records it in the history (a rollout's merge
/// patch as `rollout`, its replacement as `rollback`: see
/// [`history::change_of`]). Fails without writing anything when the device is missing
/// or decommissioned, when the result breaks `limits`, or (checked in this
/// order) when `expected_version` is not the current version.
pub async fn apply_desired_change(
    conn: &mut PgConnection,
    tenant: &TenantId,
    device: &DeviceId,
    change: DesiredChange,
    expected_version: Option<i64>,
    limits: &DocumentLimits,
    actor: Actor,
) -> Result<DesiredOutcome, DbError> {
    let current = sqlx::query!(
        r#"SELECT status AS "status: DeviceStatus",
                  desired_state AS "desired_state: Json<Document>", desired_version
           FROM device_state
           WHERE tenant_id = $1 AND device_id = $2 FOR UPDATE"#,
        tenant.as_str(),
        device.as_str()
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(DbError::NotFound("device"))?;
    let (status, Json(desired), version) = (
        current.status,
        current.desired_state,
        current.desired_version,
    );
    if status != DeviceStatus::Active {
        return Err(DbError::Decommissioned);
    }
    let kind = history::change_of(&change, &actor);
    // The limits before the precondition: a change that would fail without
    // `If-Match` fails the same with it (RFC 9110, 13.2.1).
    let next = next_document(&desired, &change, limits)?;
    if let Some(expected) = expected_version.filter(|e| *e != version) {
        return Err(DbError::VersionMismatch {
            expected,
            current: version,
        });
    }
    let Some(next) = next else {
        let device = get_device(&mut *conn, tenant, device)
            .await?
            .expect("locked above");
        return Ok(DesiredOutcome {
            device,
            enqueued: None,
        });
    };
    let next_version = version + 1;
    sqlx::query!(
        "UPDATE device_state SET desired_state = $3, desired_version = $4, updated_at = now()
         WHERE tenant_id = $1 AND device_id = $2",
        tenant.as_str(),
        device.as_str(),
        Json(&next) as _,
        next_version
    )
    .execute(&mut *conn)
    .await?;
    let (DesiredChange::Merge(body) | DesiredChange::Replace(body)) = &change;
    let ids = changes::record(
        &mut *conn,
        tenant,
        &[DeviceChange {
            device,
            version: next_version,
            publish: Some(Publish::Desired(&next)),
            recorded: Some(Recorded {
                change: kind,
                body: Some(body),
                actor,
            }),
        }],
    )
    .await?;
    let device = get_device(&mut *conn, tenant, device)
        .await?
        .expect("locked above");
    Ok(DesiredOutcome {
        device,
        enqueued: Some(ids[0]),
    })
}
