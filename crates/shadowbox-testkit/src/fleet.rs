//! A fleet of devices in a test database, changed through the same
//! desired-state transaction the API uses.

use std::collections::HashMap;

use serde_json::Value;
use shadowbox_core::document::into_document;
use shadowbox_core::{DeviceId, DocumentLimits, TenantId};
use shadowbox_db::desired::{DesiredChange, apply_desired_change};
use sqlx::PgPool;

use crate::TestDb;

/// Devices `dev-000`, `dev-001`, ... of tenant `acme`.
pub struct Fleet {
    /// The database.
    pub pool: PgPool,
    /// Tenant `acme`.
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
        let tenant = TenantId::parse("acme").unwrap();
        shadowbox_db::tenants::create_tenant(pool, &tenant)
            .await
            .unwrap();
        let mut devices = Vec::new();
        let mut conn = pool.acquire().await.unwrap();
        for i in 0..count {
            let device = DeviceId::parse(format!("dev-{i:03}")).unwrap();
            shadowbox_db::devices::register_device(
                &mut conn,
                &tenant,
                &device,
                None,
                &DocumentLimits::default(),
            )
            .await
            .unwrap();
            devices.push(device);
        }
        drop(conn);
        Self {
            pool: pool.clone(),
            tenant,
            devices,
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
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        outcome.device.desired_version
    }

    /// Device `i`'s desired topic.
    pub fn topic(&self, i: usize) -> String {
        format!(
            "tenant/{}/device/{}/shadow/desired",
            self.tenant, self.devices[i]
        )
    }

    /// `(status, count)` of every outbox row.
    pub async fn statuses(&self) -> HashMap<String, i64> {
        sqlx::query_as("SELECT status, count(*) FROM outbox GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .unwrap()
            .into_iter()
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
        sqlx::query_as("SELECT device_id, desired_version FROM device_state")
            .fetch_all(&self.pool)
            .await
            .unwrap()
            .into_iter()
            .collect()
    }
}
