//! `shadowbox_db::reported::apply_reported`, the ingester's one statement,
//! against a real database.

use chrono::{Duration, Utc};
use serde_json::json;
use shadowbox_core::{DeviceId, Document};
use shadowbox_db::reported::{ReportedOutcome, ReportedUpdate, apply_reported};
use shadowbox_testkit::{Fleet, TestDb};

fn update(device: &str, version: i64, doc: serde_json::Value, age_s: i64) -> ReportedUpdate {
    let serde_json::Value::Object(reported) = doc else {
        panic!("a document is an object")
    };
    ReportedUpdate {
        tenant_id: "acme".to_owned(),
        device_id: device.to_owned(),
        reported,
        version,
        received_at: Utc::now() - Duration::seconds(age_s),
    }
}

#[tokio::test]
async fn outcomes_come_back_in_input_order_and_versions_never_go_back() {
    let db = TestDb::new().await;
    let fleet = Fleet::register_ids(&db.pool, "acme", ["a", "b", "gone"]).await;
    let mut conn = db.pool.acquire().await.unwrap();
    shadowbox_db::devices::decommission_device(
        &mut conn,
        &fleet.tenant,
        &DeviceId::parse("gone").unwrap(),
    )
    .await
    .unwrap();

    let first = apply_reported(
        &db.pool,
        &[
            update("b", 5, json!({"b": 5}), 0),
            update("nobody", 1, json!({}), 0),
            update("a", 3, json!({"a": 3}), 0),
            update("gone", 1, json!({}), 0),
        ],
    )
    .await
    .unwrap();
    use ReportedOutcome::*;
    assert_eq!(first, [Applied, Unknown, Applied, Decommissioned]);

    let seen_b = fleet.record("b").await.last_seen.unwrap();
    let second = apply_reported(
        &db.pool,
        &[
            // Older than stored: only last_seen moves, and only forward.
            update("b", 4, json!({"b": 4}), -1),
            // Same version: replaces.
            update("a", 3, json!({"a": "3 again"}), 0),
        ],
    )
    .await
    .unwrap();
    assert_eq!(second, [Stale, Applied]);
    let b = fleet.record("b").await;
    assert_eq!(
        (b.reported_version, b.reported_state.0["b"].clone()),
        (5, json!(5))
    );
    assert!(b.last_seen.unwrap() > seen_b);
    let a = fleet.record("a").await;
    assert_eq!(a.reported_state.0["a"], json!("3 again"));

    // A message received earlier than the stored last_seen never moves it back.
    let stale_clock = apply_reported(&db.pool, &[update("a", 4, json!({}), 3600)])
        .await
        .unwrap();
    assert_eq!(stale_clock, [Applied]);
    let a_after = fleet.record("a").await;
    assert_eq!(a_after.reported_version, 4);
    assert_eq!(a_after.last_seen, a.last_seen);
    let gone = fleet.record("gone").await;
    assert_eq!((gone.reported_version, gone.last_seen), (0, None));
    assert_eq!(gone.reported_state.0, Document::new());
}

#[tokio::test]
async fn concurrent_batches_in_opposite_orders_neither_deadlock_nor_regress() {
    let db = TestDb::new().await;
    let ids: Vec<String> = (0..200).map(|i| format!("d{i:03}")).collect();
    let fleet = Fleet::register_ids(&db.pool, "acme", ids.clone()).await;
    for round in 0..10_i64 {
        let forward: Vec<ReportedUpdate> = ids
            .iter()
            .map(|d| update(d, 2 * round + 1, json!({"v": 2 * round + 1}), 0))
            .collect();
        let backward: Vec<ReportedUpdate> = ids
            .iter()
            .rev()
            .map(|d| update(d, 2 * round + 2, json!({"v": 2 * round + 2}), 0))
            .collect();
        let (a, b) = tokio::join!(
            apply_reported(&db.pool, &forward),
            apply_reported(&db.pool, &backward)
        );
        a.expect("no deadlock");
        b.expect("no deadlock");
    }
    for d in &ids {
        let row = fleet.record(d).await;
        assert_eq!(
            (row.reported_version, row.reported_state.0["v"].clone()),
            (20, json!(20))
        );
    }
}
