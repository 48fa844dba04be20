//! The desired-state transaction against a real PostgreSQL.

use serde_json::json;
use shadowbox_core::document::into_document;
use shadowbox_core::{DeviceId, Document, DocumentLimits, TenantId};
use shadowbox_db::DbError;
use shadowbox_db::desired::{DesiredChange, apply_desired_change};
use shadowbox_testkit::{Fleet, TestDb};
use sqlx::PgPool;

fn doc(value: serde_json::Value) -> Document {
    into_document(value).unwrap()
}

async fn setup(db: &TestDb) -> (TenantId, DeviceId) {
    let fleet = Fleet::register(db, 1).await;
    (fleet.tenant, fleet.devices[0].clone())
}

async fn outbox_versions(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM outbox ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn patch(
    pool: &PgPool,
    tenant: &TenantId,
    device: &DeviceId,
    patch: serde_json::Value,
    expected: Option<i64>,
) -> Result<Option<i64>, DbError> {
    let mut tx = pool.begin().await.unwrap();
    let outcome = apply_desired_change(
        &mut tx,
        tenant,
        device,
        DesiredChange::Merge(doc(patch)),
        expected,
        &DocumentLimits::default(),
        shadowbox_core::Actor::Admin,
    )
    .await?;
    tx.commit().await.unwrap();
    Ok(outcome.enqueued)
}

#[tokio::test]
async fn a_change_and_its_outbox_row_commit_together() {
    let db = TestDb::new().await;
    let (tenant, device) = setup(&db).await;
    patch(&db.pool, &tenant, &device, json!({"rate": 5}), None)
        .await
        .unwrap();
    let (desired, version): (serde_json::Value, i64) = sqlx::query_as(
        "SELECT desired_state, desired_version FROM device_state WHERE device_id = 'dev-000'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((desired, version), (json!({"rate": 5}), 1));
    let (kind, topic, payload, status): (String, String, Vec<u8>, String) =
        sqlx::query_as("SELECT kind, topic, payload, status FROM outbox")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(kind, "desired");
    assert_eq!(topic, "tenant/acme/device/dev-000/shadow/desired");
    assert_eq!(status, "pending");
    let message = shadowbox_core::payload::decode_desired(&payload)
        .unwrap()
        .unwrap();
    assert_eq!(
        (message.version, message.desired),
        (1, doc(json!({"rate": 5})))
    );
}

#[tokio::test]
async fn a_rolled_back_change_leaves_neither_state_nor_outbox_row() {
    let db = TestDb::new().await;
    let (tenant, device) = setup(&db).await;
    let mut tx = db.pool.begin().await.unwrap();
    let outcome = apply_desired_change(
        &mut tx,
        &tenant,
        &device,
        DesiredChange::Replace(doc(json!({"rate": 9}))),
        None,
        &DocumentLimits::default(),
        shadowbox_core::Actor::Admin,
    )
    .await
    .unwrap();
    assert!(outcome.enqueued.is_some());
    tx.rollback().await.unwrap();
    let version: i64 = sqlx::query_scalar("SELECT desired_version FROM device_state")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(version, 0);
    assert!(outbox_versions(&db.pool).await.is_empty());
}

#[tokio::test]
async fn concurrent_writers_get_consecutive_versions() {
    let db = TestDb::new().await;
    let (tenant, device) = setup(&db).await;
    let writers = (0..50).map(|i| {
        let (pool, tenant, device) = (db.pool.clone(), tenant.clone(), device.clone());
        tokio::spawn(async move {
            patch(&pool, &tenant, &device, json!({ format!("k{i}"): i }), None)
                .await
                .unwrap()
        })
    });
    for writer in writers.collect::<Vec<_>>() {
        assert!(writer.await.unwrap().is_some());
    }
    assert_eq!(
        outbox_versions(&db.pool).await,
        (1..=50).collect::<Vec<i64>>()
    );
    let version: i64 = sqlx::query_scalar("SELECT desired_version FROM device_state")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(version, 50);
}

#[tokio::test]
async fn a_no_op_change_enqueues_nothing() {
    let db = TestDb::new().await;
    let (tenant, device) = setup(&db).await;
    patch(&db.pool, &tenant, &device, json!({"a": 1}), None)
        .await
        .unwrap();
    for noop in [json!({"a": 1}), json!({}), json!({"missing": null})] {
        assert_eq!(
            patch(&db.pool, &tenant, &device, noop, None).await.unwrap(),
            None
        );
    }
    assert_eq!(outbox_versions(&db.pool).await, vec![1]);
}

#[tokio::test]
async fn an_expected_version_mismatch_writes_nothing() {
    let db = TestDb::new().await;
    let (tenant, device) = setup(&db).await;
    patch(&db.pool, &tenant, &device, json!({"a": 1}), Some(0))
        .await
        .unwrap();
    let err = patch(&db.pool, &tenant, &device, json!({"a": 2}), Some(0))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        DbError::VersionMismatch {
            expected: 0,
            current: 1
        }
    ));
    assert_eq!(outbox_versions(&db.pool).await, vec![1]);
}

#[tokio::test]
async fn limits_and_decommission_refuse_the_write() {
    let db = TestDb::new().await;
    let (tenant, device) = setup(&db).await;
    let big = json!({ "blob": "x".repeat(64 * 1024) });
    assert!(matches!(
        patch(&db.pool, &tenant, &device, big, None).await,
        Err(DbError::Document(_))
    ));
    let mut conn = db.pool.acquire().await.unwrap();
    let (_, changed) = shadowbox_db::devices::decommission_device(
        &mut conn,
        &tenant,
        &device,
        shadowbox_core::Actor::Admin,
    )
    .await
    .unwrap();
    assert!(changed);
    let (_, changed) = shadowbox_db::devices::decommission_device(
        &mut conn,
        &tenant,
        &device,
        shadowbox_core::Actor::Admin,
    )
    .await
    .unwrap();
    assert!(!changed, "decommissioning twice changes nothing");
    assert!(matches!(
        patch(&db.pool, &tenant, &device, json!({"a": 1}), None).await,
        Err(DbError::Decommissioned)
    ));
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM outbox ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(kinds, vec!["clear"]);
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = TestDb::new().await;
    shadowbox_db::migrate(&db.pool).await.unwrap();
    let views: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.views WHERE table_name = 'outbox_status'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(views, 1);
}
