//! A fleet of devices in a test database, changed through the same
//! desired-state transaction the API uses.

use std::collections::HashMap;

use serde_json::Value;
use shadowbox_core::document::into_document;
use shadowbox_core::topic::{ShadowTopicKind, shadow_topic};
use shadowbox_core::{Actor, DeviceId, DocumentLimits, TenantId};
use shadowbox_db::desired::{DesiredChange, apply_desired_change};
use shadowbox_db::devices::{DeviceRecord, get_device};
use sqlx::PgPool;

use crate::TestDb;
use crate::wait::{PATIENCE, eventually};

/// Devices of one tenant: `dev-000`, `dev-001`, ... of tenant `acme`
/// unless registered with ids of their own.
pub struct Fleet {
    /// The database.
    pub pool: PgPool,
    /// Their tenant.
    pub tenant: TenantId,
    /// Its devices, in order.
    pub devices: Vec<DeviceId>,
}

impl Fleet {
    /// Creates tenant `acme` with `count` devices.
    pub async fn register(db: &TestDb, count: usize) -> Self {
        Self::register_on(&db.pool, count).await
    }

    /// Creates tenant `acme` with `count` devices in the (migrated)
    /// database of `pool`, e.g. one on a [`crate::PrivatePostgres`].
    pub async fn register_on(pool: &PgPool, count: usize) -> Self {
        Self::register_ids(pool, "acme", (0..count).map(|i| format!("dev-{i:03}"))).await
    }

    /// Creates `tenant` (unless it exists) and registers `devices` in it,
    /// without desired state.
    pub async fn register_ids(
        pool: &PgPool,
        tenant: &str,
        devices: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let tenant = TenantId::parse(tenant).unwrap();
        shadowbox_db::tenants::create_tenant(pool, &tenant)
            .await
            .unwrap();
        let mut registered = Vec::new();
        let mut conn = pool.acquire().await.unwrap();
        for device in devices {
            let device = DeviceId::parse(device.into()).unwrap();
            shadowbox_db::devices::register_device(
                &mut conn,
                &tenant,
                &device,
                None,
                &Default::default(),
                &DocumentLimits::default(),
                Actor::Admin,
            )
            .await
            .unwrap();
            registered.push(device);
        }
        drop(conn);
        Self {
            pool: pool.clone(),
            tenant,
            devices: registered,
        }
    }

    /// Merge-patches device `i`'s desired state, as the API does; returns
    /// the new version.
    pub async fn patch(&self, i: usize, patch: Value) -> i64 {
        let mut tx = self.pool.begin().await.unwrap();
        let outcome = apply_desired_change(
            &mut tx,
            &self.tenant,
            &self.devices[i],
            DesiredChange::Merge(into_document(patch).unwrap()),
            None,
            &DocumentLimits::default(),
            Actor::Admin,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        outcome.device.desired_version
    }

    /// Sets every device's desired version to `version` directly, as if
    /// that many changes had been written (nothing is enqueued or
    /// published): devices may then report versions up to it without being
    /// refused as `ahead`.
    pub async fn desired_at(&self, version: i64) -> &Self {
        set_desired_version(&self.pool, &self.tenant, version)
            .await
            .unwrap();
        self
    }

    /// Device `i`'s desired topic.
    pub fn topic(&self, i: usize) -> String {
        shadow_topic(&self.tenant, &self.devices[i], ShadowTopicKind::Desired)
    }

    /// The stored row of device `device` of this tenant.
    pub async fn record(&self, device: &str) -> DeviceRecord {
        get_device(&self.pool, &self.tenant, &DeviceId::parse(device).unwrap())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{}/{device} exists", self.tenant))
    }

    /// Waits (bounded by [`PATIENCE`]) until device `device` of this
    /// tenant has `reported_version` `version`.
    pub async fn wait_reported(&self, device: &str, version: i64) {
        let what = format!("{}/{device} reported version {version}", self.tenant);
        eventually(PATIENCE, &what, || async {
            self.record(device).await.reported_version == version
        })
        .await;
    }

    /// `(status, count)` of every outbox row.
    pub async fn statuses(&self) -> HashMap<String, i64> {
        sqlx::query!(r#"SELECT status, count(*) AS "count!" FROM outbox GROUP BY status"#)
            .fetch_all(&self.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|row| (row.status, row.count))
            .collect()
    }

    /// Waits until no outbox row is pending.
    pub async fn wait_until_nothing_pending(&self, timeout: std::time::Duration) {
        crate::eventually(timeout, "no pending outbox rows", || async {
            !self.statuses().await.contains_key("pending")
        })
        .await;
    }

    /// The desired version stored for each device.
    pub async fn versions(&self) -> HashMap<String, i64> {
        sqlx::query!("SELECT device_id, desired_version FROM device_state")
            .fetch_all(&self.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|row| (row.device_id, row.desired_version))
            .collect()
    }
}

/// Sets the desired version of every device of `tenant` to `version`
/// directly, as if that many changes had been written (nothing is enqueued
/// or published): devices may then report versions up to it without being
/// refused as `ahead`. For tests and the benchmark.
pub async fn set_desired_version(
    pool: &PgPool,
    tenant: &TenantId,
    version: i64,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE device_state SET desired_version = $2 WHERE tenant_id = $1",
        tenant.as_str(),
        version
    )
    .execute(pool)
    .await?;
    Ok(())
}
