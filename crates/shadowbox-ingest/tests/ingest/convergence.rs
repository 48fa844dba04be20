//! Convergence through a real broker: devices that reject a version, that
//! claim a version they were never given, and the commit → applied
//! histogram.

use crate::common::{message_count, reported, reported_topic, settings, start};
use serde_json::json;
use shadowbox_core::payload::MAX_REJECTION_REASON_CHARS;
use shadowbox_testkit::mqtt::{Client, unique_client_id};
use shadowbox_testkit::{Fleet, Mosquitto, Running, TestDb, init_logs};

/// `shadowbox_ingest_rejections_total{result="<result>"}`.
fn rejections(ingester: &Running, result: &str) -> f64 {
    ingester.metric(&format!(
        "shadowbox_ingest_rejections_total{{result=\"{result}\"}}"
    ))
}

/// Versions applied so far: the histogram's sample count.
const APPLIED: &str = "shadowbox_ingest_commit_to_applied_seconds_count";

/// `(rejected_version, rejected_reason)` of `device`.
async fn rejection(fleet: &Fleet, device: &str) -> (Option<i64>, Option<String>) {
    sqlx::query_as(
        "SELECT rejected_version, rejected_reason FROM device_state
         WHERE tenant_id = 'acme' AND device_id = $1",
    )
    .bind(device)
    .fetch_one(&fleet.pool)
    .await
    .unwrap()
}

fn rejecting(version: i64, reason: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"rejected": {"version": version, "reason": reason}})).unwrap()
}

#[tokio::test]
async fn rejections_are_recorded_for_the_current_version_only_and_counted() {
    init_logs();
    let (db, broker) = (TestDb::new().await, Mosquitto::start());
    let fleet = Fleet::register_ids(&db.pool, "acme", ["pump-7"]).await;
    assert_eq!(fleet.patch(0, json!({"fw": "2.4.1"})).await, 1);
    let ingester = start(
        settings(&broker.url(), &unique_client_id("rejections")),
        db.pool.clone(),
    )
    .await;
    let devices = Client::connect(&broker.url(), "devices").await;
    let topic = reported_topic("acme", "pump-7");

    // Rejects its current version 1, with and without reported state.
    devices.publish(&topic, rejecting(1, "no space left")).await;
    ingester
        .wait_metric(
            "shadowbox_ingest_rejections_total{result=\"recorded\"}",
            1.0,
        )
        .await;
    assert_eq!(
        rejection(&fleet, "pump-7").await,
        (Some(1), Some("no space left".to_owned()))
    );
    assert_eq!(message_count(&ingester, "rejection"), 1.0);
    assert!(fleet.record("pump-7").await.last_seen.is_some());

    // A rejection of a version that is not the current one is ignored.
    devices.publish(&topic, rejecting(7, "what is 7?")).await;
    ingester
        .wait_metric("shadowbox_ingest_rejections_total{result=\"ignored\"}", 1.0)
        .await;
    assert_eq!(rejection(&fleet, "pump-7").await.0, Some(1));

    // A reason too long is an invalid message: dropped and counted.
    let long = "x".repeat(MAX_REJECTION_REASON_CHARS + 1);
    devices.publish(&topic, rejecting(1, &long)).await;
    ingester
        .wait_metric(
            "shadowbox_ingest_invalid_messages_total{reason=\"bad_rejection\"}",
            1.0,
        )
        .await;
    assert_eq!(
        rejection(&fleet, "pump-7").await.1.as_deref(),
        Some("no space left")
    );
    assert_eq!(rejections(&ingester, "recorded"), 1.0);
    ingester.stop().await;
}

#[tokio::test]
async fn a_version_ahead_of_the_desired_one_is_refused_and_counted() {
    init_logs();
    let (db, broker) = (TestDb::new().await, Mosquitto::start());
    let fleet = Fleet::register_ids(&db.pool, "acme", ["pump-7"]).await;
    fleet.patch(0, json!({"rate": 5})).await;
    let ingester = start(
        settings(&broker.url(), &unique_client_id("ahead")),
        db.pool.clone(),
    )
    .await;
    let devices = Client::connect(&broker.url(), "devices").await;
    let topic = reported_topic("acme", "pump-7");

    devices
        .publish(&topic, reported(json!({"rate": "mine"}), i64::MAX))
        .await;
    ingester
        .wait_metric("shadowbox_ingest_messages_total{result=\"ahead\"}", 1.0)
        .await;
    let row = fleet.record("pump-7").await;
    assert_eq!((row.reported_version, row.reported_state.0.len()), (0, 0));

    // Not pinned: the version it was given still applies.
    devices
        .publish(&topic, reported(json!({"rate": 5}), 1))
        .await;
    fleet.wait_reported("pump-7", 1).await;
    ingester.stop().await;
}

#[tokio::test]
async fn each_applied_version_is_observed_once() {
    init_logs();
    let (db, broker) = (TestDb::new().await, Mosquitto::start());
    let fleet = Fleet::register_ids(&db.pool, "acme", ["pump-7"]).await;
    let ingester = start(
        settings(&broker.url(), &unique_client_id("applied")),
        db.pool.clone(),
    )
    .await;
    let devices = Client::connect(&broker.url(), "devices").await;
    let topic = reported_topic("acme", "pump-7");

    for version in 1..=2 {
        assert_eq!(fleet.patch(0, json!({"rate": version})).await, version);
        // Rejected first, then applied after all (and reported twice): the
        // version is applied once.
        devices.publish(&topic, rejecting(version, "later")).await;
        ingester
            .wait_metric(
                "shadowbox_ingest_rejections_total{result=\"recorded\"}",
                version as f64,
            )
            .await;
        for _ in 0..2 {
            devices
                .publish(&topic, reported(json!({"rate": version}), version))
                .await;
        }
        ingester
            .wait_metric("shadowbox_ingest_pending_messages", 0.0)
            .await;
        fleet.wait_reported("pump-7", version).await;
        assert_eq!(ingester.metric(APPLIED), version as f64);
    }
    let applied_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT applied_at FROM device_state WHERE device_id = 'pump-7'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(applied_at.is_some());
    // The buckets reach one hour.
    assert_eq!(
        ingester.metric("shadowbox_ingest_commit_to_applied_seconds_bucket{le=\"3600.0\"}"),
        2.0
    );
    ingester.stop().await;
}
