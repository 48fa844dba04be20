//! The ingester against a real broker and database: what it writes, what
//! it drops and counts, and how it stops.

use std::time::Duration;

use crate::common::{message_count, reported, reported_topic, settings, start};
use serde_json::json;
use shadowbox_core::{DeviceId, TenantId};
use shadowbox_testkit::mqtt::{Client, unique_client_id};
use shadowbox_testkit::{Fleet, Mosquitto, Running, TestDb, init_logs};

/// `shadowbox_ingest_invalid_messages_total{reason="<reason>"}`.
fn invalid(ingester: &Running, reason: &str) -> f64 {
    ingester.metric(&format!(
        "shadowbox_ingest_invalid_messages_total{{reason=\"{reason}\"}}"
    ))
}

#[tokio::test]
async fn a_valid_message_updates_reported_version_and_last_seen() {
    init_logs();
    let (db, broker) = (TestDb::new().await, Mosquitto::start());
    let fleet = Fleet::register_ids(&db.pool, "acme", ["pump-7"]).await;
    // Every version these devices report is one they were given.
    fleet.desired_at(1_000).await;
    let ingester = start(
        settings(&broker.url(), &unique_client_id("valid")),
        db.pool.clone(),
    )
    .await;
    let before = chrono::Utc::now();

    let devices = Client::connect(&broker.url(), "devices").await;
    devices
        .publish(
            reported_topic("acme", "pump-7"),
            reported(json!({"rate": 4, "mode": {"eco": true}}), 2),
        )
        .await;

    fleet.wait_reported("pump-7", 2).await;
    let row = fleet.record("pump-7").await;
    assert_eq!(
        serde_json::Value::Object(row.reported_state.0),
        json!({"rate": 4, "mode": {"eco": true}})
    );
    assert!(row.last_seen.expect("last_seen is set") >= before);
    ingester
        .wait_metric("shadowbox_ingest_pending_messages", 0.0)
        .await;
    assert_eq!(message_count(&ingester, "applied"), 1.0);
    ingester.stop().await;
}

#[tokio::test]
async fn a_lower_version_never_replaces_a_higher_one() {
    init_logs();
    let (db, broker) = (TestDb::new().await, Mosquitto::start());
    let fleet = Fleet::register_ids(&db.pool, "acme", ["pump-7"]).await;
    // Every version these devices report is one they were given.
    fleet.desired_at(1_000).await;
    let ingester = start(
        settings(&broker.url(), &unique_client_id("stale")),
        db.pool.clone(),
    )
    .await;
    let devices = Client::connect(&broker.url(), "devices").await;
    let topic = reported_topic("acme", "pump-7");

    devices.publish(&topic, reported(json!({"v": 5}), 5)).await;
    fleet.wait_reported("pump-7", 5).await;
    let seen_at_5 = fleet.record("pump-7").await.last_seen.unwrap();
    devices.publish(&topic, reported(json!({"v": 3}), 3)).await;

    ingester
        .wait_metric("shadowbox_ingest_messages_total{result=\"stale\"}", 1.0)
        .await;
    let row = fleet.record("pump-7").await;
    assert_eq!(
        (row.reported_version, row.reported_state.0["v"].clone()),
        (5, json!(5))
    );
    assert!(
        row.last_seen.unwrap() > seen_at_5,
        "a stale message still updates last_seen"
    );
    ingester.stop().await;
}

#[tokio::test]
async fn interleaved_versions_of_many_devices_in_one_batch_keep_the_newest() {
    init_logs();
    let (db, broker) = (TestDb::new().await, Mosquitto::start());
    let ids: Vec<String> = (0..40).map(|i| format!("d{i}")).collect();
    let fleet = Fleet::register_ids(&db.pool, "acme", ids.clone()).await;
    // Every version these devices report is one they were given.
    fleet.desired_at(1_000).await;
    let mut settings = settings(&broker.url(), &unique_client_id("interleaved"));
    // Long enough that everything published lands in one or two batches.
    settings.batch_wait = Duration::from_millis(1500);
    settings.batch_size = 1000;
    let ingester = start(settings, db.pool.clone()).await;

    // Versions 1..=10 of every device, round-robin across devices and in a
    // scrambled order per device; each version sent twice with a different
    // body, so ties must go to the later one.
    let mut messages = Vec::new();
    for step in 0..10 {
        for (i, id) in ids.iter().enumerate() {
            let version = ((step * 7 + i) % 10) as i64 + 1;
            for copy in ["first", "second"] {
                messages.push((
                    reported_topic("acme", id),
                    reported(json!({"version": version, "copy": copy}), version),
                ));
            }
        }
    }
    let total = messages.len() as f64;
    let devices = Client::connect(&broker.url(), "devices").await;
    devices.publish_all(messages).await;

    ingester
        .wait_metric("shadowbox_ingest_pending_messages", 0.0)
        .await;
    for id in &ids {
        let row = fleet.record(id).await;
        assert_eq!(row.reported_version, 10, "{id}");
        assert_eq!(
            serde_json::Value::Object(row.reported_state.0),
            json!({"version": 10, "copy": "second"}),
            "{id}"
        );
    }
    let (applied, superseded, stale) = (
        message_count(&ingester, "applied"),
        message_count(&ingester, "superseded"),
        message_count(&ingester, "stale"),
    );
    assert_eq!(applied + superseded + stale, total);
    assert!(
        superseded >= total - 2.0 * ids.len() as f64,
        "coalesced in the batch: {superseded}"
    );
    ingester.stop().await;
}

#[tokio::test]
async fn bad_input_is_dropped_counted_acknowledged_and_blocks_nobody() {
    init_logs();
    let (db, broker) = (TestDb::new().await, Mosquitto::start());
    let fleet = Fleet::register_ids(&db.pool, "acme", ["good", "retired", "nul", "refused"]).await;
    // Every version these devices report is one they were given.
    fleet.desired_at(1_000).await;
    // Stands in for a document the database itself refuses (a character a
    // database in another encoding cannot hold, say): a data exception the
    // ingester's own rules did not foresee.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.reported_state ? 'refuse_me' THEN
             RAISE EXCEPTION 'refused' USING ERRCODE = 'data_exception';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_marked BEFORE UPDATE ON device_state
           FOR EACH ROW EXECUTE FUNCTION refuse_marked();",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    {
        let mut conn = db.pool.acquire().await.unwrap();
        shadowbox_db::devices::decommission_device(
            &mut conn,
            &TenantId::parse("acme").unwrap(),
            &DeviceId::parse("retired").unwrap(),
            shadowbox_core::Actor::Admin,
        )
        .await
        .unwrap();
    }
    let id = unique_client_id("bad-input");
    let ingester = start(settings(&broker.url(), &id), db.pool.clone()).await;
    let devices = Client::connect(&broker.url(), "devices").await;
    let good = reported_topic("acme", "good");
    let huge = json!({"blob": "x".repeat(70 * 1024)});

    let cases: Vec<(&str, String, Vec<u8>)> = vec![
        ("invalid_json", good.clone(), b"{not json".to_vec()),
        (
            "reported_not_object",
            good.clone(),
            br#"{"reported": [1, 2]}"#.to_vec(),
        ),
        (
            "bad_version",
            good.clone(),
            br#"{"reported": {}, "version": 1.5}"#.to_vec(),
        ),
        (
            "bad_version",
            good.clone(),
            br#"{"reported": {}, "version": -1}"#.to_vec(),
        ),
        ("too_large", good.clone(), reported(huge, 1)),
        (
            "bad_topic",
            "tenant/acme/device/not valid!/shadow/reported".to_owned(),
            reported(json!({}), 1),
        ),
        // jsonb cannot store \u0000: refused before the database sees it.
        (
            "document_limits",
            reported_topic("acme", "nul"),
            reported(json!({"s": "a\u{0}b"}), 1),
        ),
        // Another device, so the good message cannot supersede it in its
        // batch.
        (
            "db_rejected",
            reported_topic("acme", "refused"),
            reported(json!({"refuse_me": true}), 1),
        ),
    ];
    let mut version = 0;
    for (reason, topic, payload) in cases {
        let before = invalid(&ingester, reason);
        devices.publish(topic, payload).await;
        version += 1;
        devices
            .publish(&good, reported(json!({"n": version}), version))
            .await;
        fleet.wait_reported("good", version).await;
        ingester
            .wait_metric(
                &format!("shadowbox_ingest_invalid_messages_total{{reason=\"{reason}\"}}"),
                before + 1.0,
            )
            .await;
    }
    let not_ours = [
        ("unknown", reported_topic("nobody", "good")),
        ("unknown", reported_topic("acme", "stranger")),
        ("decommissioned", reported_topic("acme", "retired")),
    ];
    for (result, topic) in not_ours {
        let before = message_count(&ingester, result);
        devices.publish(topic, reported(json!({"n": 0}), 99)).await;
        version += 1;
        devices
            .publish(&good, reported(json!({"n": version}), version))
            .await;
        fleet.wait_reported("good", version).await;
        ingester
            .wait_metric(
                &format!("shadowbox_ingest_messages_total{{result=\"{result}\"}}"),
                before + 1.0,
            )
            .await;
    }
    assert_eq!(message_count(&ingester, "invalid"), 8.0);
    let retired = fleet.record("retired").await;
    assert_eq!((retired.reported_version, retired.last_seen), (0, None));
    for refused in ["nul", "refused"] {
        assert_eq!(fleet.record(refused).await.reported_version, 0);
    }
    ingester
        .wait_metric("shadowbox_ingest_pending_messages", 0.0)
        .await;
    ingester.stop().await;

    // Everything was acknowledged: the same session gets nothing back.
    let ingester = start(settings(&broker.url(), &id), db.pool.clone()).await;
    version += 1;
    devices
        .publish(&good, reported(json!({"n": version}), version))
        .await;
    fleet.wait_reported("good", version).await;
    ingester
        .wait_metric("shadowbox_ingest_pending_messages", 0.0)
        .await;
    assert_eq!(message_count(&ingester, "applied"), 1.0);
    assert_eq!(message_count(&ingester, "invalid"), 0.0);
    ingester.stop().await;
}

#[tokio::test]
async fn shutdown_commits_and_acknowledges_the_batch_in_hand() {
    init_logs();
    let (db, broker) = (TestDb::new().await, Mosquitto::start());
    let ids: Vec<String> = (0..5).map(|i| format!("d{i}")).collect();
    let fleet = Fleet::register_ids(&db.pool, "acme", ids.clone()).await;
    // Every version these devices report is one they were given.
    fleet.desired_at(1_000).await;
    let id = unique_client_id("shutdown");
    let mut long_wait = settings(&broker.url(), &id);
    long_wait.batch_wait = Duration::from_secs(60);
    let ingester = start(long_wait, db.pool.clone()).await;
    let devices = Client::connect(&broker.url(), "devices").await;
    devices
        .publish_all(
            ids.iter()
                .map(|d| (reported_topic("acme", d), reported(json!({}), 1))),
        )
        .await;
    ingester
        .wait_metric("shadowbox_ingest_pending_messages", 5.0)
        .await;
    assert_eq!(fleet.record("d0").await.reported_version, 0);

    ingester.stop().await;
    for d in &ids {
        assert_eq!(fleet.record(d).await.reported_version, 1, "{d}");
    }

    // They were acknowledged: a restart with the same session gets none back.
    let ingester = start(settings(&broker.url(), &id), db.pool.clone()).await;
    devices
        .publish(reported_topic("acme", "d0"), reported(json!({}), 2))
        .await;
    fleet.wait_reported("d0", 2).await;
    ingester
        .wait_metric("shadowbox_ingest_pending_messages", 0.0)
        .await;
    assert_eq!(message_count(&ingester, "applied"), 1.0);
    ingester.stop().await;
}
