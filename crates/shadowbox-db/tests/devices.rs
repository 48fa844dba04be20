//! The device list's convergence filter against a real database.

use std::time::Duration;

use shadowbox_core::TenantId;
use shadowbox_db::devices::{DeviceFilter, list_devices};
use shadowbox_testkit::{PATIENCE, TestDb, eventually};

/// Index scans of `device_state_not_in_sync` so far.
async fn not_in_sync_scans(db: &TestDb) -> i64 {
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'device_state_not_in_sync'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn devices_not_in_sync_are_found_through_their_index() {
    let db = TestDb::new().await;
    sqlx::raw_sql(
        "INSERT INTO tenants (tenant_id) VALUES ('acme');
         INSERT INTO device_state (tenant_id, device_id, desired_version, reported_version)
         SELECT 'acme', 'd' || lpad(i::text, 5, '0'), 1, CASE WHEN i % 1000 = 0 THEN 0 ELSE 1 END
         FROM generate_series(1, 5000) AS i;
         ANALYZE device_state;",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let before = not_in_sync_scans(&db).await;
    let filter = DeviceFilter {
        in_sync: Some(false),
        older_than: Some(Duration::ZERO),
        ..DeviceFilter::default()
    };
    let tenant = TenantId::parse("acme").unwrap();
    let lagging = list_devices(&db.pool, &tenant, &filter, 100).await.unwrap();
    let ids: Vec<&str> = lagging.iter().map(|d| d.device_id.as_str()).collect();
    assert_eq!(ids, ["d01000", "d02000", "d03000", "d04000", "d05000"]);
    // The statistics arrive when the server flushes them (within a second).
    eventually(
        PATIENCE,
        "an index scan of device_state_not_in_sync",
        || async { not_in_sync_scans(&db).await > before },
    )
    .await;
}
