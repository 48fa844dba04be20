//! The relay's metrics the alerts and the dashboard read
//! (`deploy/prometheus/alerts.yml`), against a real broker and database.

mod common;

use common::start_relay;
use serde_json::json;
use shadowbox_testkit::{Fleet, Mosquitto, PATIENCE, Protocol, TestDb, eventually};

#[tokio::test]
async fn connected_dead_rows_and_commit_to_puback_follow_what_happens() {
    let db = TestDb::new().await;
    let mut broker = Mosquitto::start();
    let fleet = Fleet::register(&db, 3).await;
    let relay = start_relay(&db.pool, &broker.url(), Protocol::V5, |_| {});
    relay.wait_metric("shadowbox_relay_connected", 1.0).await;

    for i in 0..3 {
        fleet.patch(i, json!({"v": 1})).await;
    }
    eventually(PATIENCE, "three rows delivered", || async {
        fleet.statuses().await.get("delivered") == Some(&3)
    })
    .await;
    // One sample per delivered row, in buckets from 10 ms to 1 h.
    let histogram = "shadowbox_relay_commit_to_puback_seconds";
    assert_eq!(relay.metric(&format!("{histogram}_count")), 3.0);
    // 300 s is a bound (the convergence alert's threshold), 1 h the last.
    for le in ["300.0", "3600.0"] {
        let bucket = format!("{histogram}_bucket{{le=\"{le}\"}}");
        assert_eq!(relay.metric(&bucket), 3.0, "{bucket}");
    }

    // Dead rows are read from the database by every replica.
    assert_eq!(relay.metric("shadowbox_relay_dead_rows"), 0.0);
    sqlx::query("UPDATE outbox SET status = 'dead' WHERE device_id = 'dev-001'")
        .execute(&db.pool)
        .await
        .unwrap();
    relay.wait_metric("shadowbox_relay_dead_rows", 1.0).await;

    broker.stop();
    relay.wait_metric("shadowbox_relay_connected", 0.0).await;
    broker.restart();
    relay.wait_metric("shadowbox_relay_connected", 1.0).await;
    relay.stop().await;
}
