//! Nothing is lost when the ingester crashes, when the database is down,
//! or when several ingesters share the subscription: each under MQTT 5 and
//! 3.1.1.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::{message_count, reported, reported_topic, settings_in, start};
use serde_json::json;
use shadowbox_testkit::mqtt::{Client, unique_client_id};
use shadowbox_testkit::{
    Fleet, Mosquitto, PATIENCE, PrivatePostgres, Protocol, Running, TestDb, eventually, init_logs,
    under_both_protocols,
};

/// `messages` versions of each device, device-interleaved, in order.
fn versions(ids: &[String], from: i64, to: i64) -> Vec<(String, Vec<u8>)> {
    (from..=to)
        .flat_map(|v| {
            ids.iter()
                .map(move |d| (reported_topic("acme", d), reported(json!({"v": v}), v)))
        })
        .collect()
}

/// Waits until every device of `fleet` is at `version` with the matching
/// document.
async fn wait_all_at(fleet: &Fleet, version: i64) {
    let ids = &fleet.devices;
    eventually(
        PATIENCE,
        &format!("every device at version {version}"),
        || async {
            let rows: Vec<(i64,)> = sqlx::query_as(
                "SELECT reported_version FROM device_state WHERE tenant_id = 'acme'",
            )
            .fetch_all(&fleet.pool)
            .await
            .unwrap_or_default();
            rows.len() == ids.len() && rows.iter().all(|(v,)| *v == version)
        },
    )
    .await;
    for d in ids {
        assert_eq!(
            fleet.record(d.as_str()).await.reported_state.0["v"],
            json!(version)
        );
    }
}

async fn a_crashed_ingester_gets_everything_back_from_its_persistent_session(protocol: Protocol) {
    init_logs();
    let (db, broker) = (TestDb::new().await, Mosquitto::start());
    let ids: Vec<String> = (0..10).map(|i| format!("d{i}")).collect();
    let fleet = Fleet::register_ids(&db.pool, "acme", ids.clone()).await;
    // Every version these devices report is one they were given.
    fleet.desired_at(1_000).await;
    let id = unique_client_id("crash");
    let mut holding = settings_in(protocol, &broker.url(), &id);
    // Holds its batch long enough to crash with it in hand, unacknowledged.
    holding.batch_wait = Duration::from_secs(60);
    let ingester = start(holding, db.pool.clone()).await;
    let devices = Client::connect(&broker.url(), "devices").await;

    devices.publish_all(versions(&ids, 1, 5)).await;
    ingester
        .wait_metric("shadowbox_ingest_pending_messages", 50.0)
        .await;
    ingester.abort().await;
    // 50 in flight when it crashed, and 100 more while it is away. With a
    // shared subscription, Mosquitto 2.0.11 queues them for the offline
    // persistent session of the member they were routed to.
    devices.publish_all(versions(&ids, 6, 15)).await;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM device_state WHERE reported_version > 0")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(count, 0, "nothing was committed before the crash");

    let ingester = start(settings_in(protocol, &broker.url(), &id), db.pool.clone()).await;
    wait_all_at(&fleet, 15).await;
    ingester
        .wait_metric("shadowbox_ingest_pending_messages", 0.0)
        .await;
    let seen: f64 = ["applied", "superseded", "stale"]
        .iter()
        .map(|r| message_count(&ingester, r))
        .sum();
    assert_eq!(seen, 150.0, "every message came back exactly once");
    ingester.stop().await;
}

async fn a_database_outage_is_waited_out_and_the_newest_state_wins(protocol: Protocol) {
    init_logs();
    let postgres = PrivatePostgres::start();
    let pool = shadowbox_db::connect(&postgres.url("shadowbox"), 5)
        .await
        .unwrap();
    shadowbox_db::migrate(&pool).await.unwrap();
    let ids: Vec<String> = (0..20).map(|i| format!("d{i}")).collect();
    let fleet = Fleet::register_ids(&pool, "acme", ids.clone()).await;
    // Every version these devices report is one they were given.
    fleet.desired_at(1_000).await;
    let broker = Mosquitto::start();
    let ingester = start(
        settings_in(protocol, &broker.url(), &unique_client_id("db-down")),
        pool.clone(),
    )
    .await;
    let devices = Client::connect(&broker.url(), "devices").await;
    devices.publish_all(versions(&ids, 1, 2)).await;
    wait_all_at(&fleet, 2).await;

    postgres.stop();
    devices.publish_all(versions(&ids, 3, 8)).await;
    ingester
        .wait_metric("shadowbox_ingest_pending_messages", 120.0)
        .await;
    eventually(PATIENCE, "a failed write was retried", || async {
        ingester.metric("shadowbox_ingest_db_retries_total") >= 2.0
    })
    .await;
    assert_eq!(
        ingester.metric("shadowbox_ingest_subscribed"),
        1.0,
        "still connected"
    );

    postgres.restart();
    wait_all_at(&fleet, 8).await;
    ingester
        .wait_metric("shadowbox_ingest_pending_messages", 0.0)
        .await;
    ingester.stop().await;
}

async fn two_ingesters_share_the_load_lose_nothing_and_never_go_back(protocol: Protocol) {
    init_logs();
    let (db, broker) = (TestDb::new().await, Mosquitto::start());
    let ids: Vec<String> = (0..20).map(|i| format!("d{i}")).collect();
    let fleet = Fleet::register_ids(&db.pool, "acme", ids.clone()).await;
    // Every version these devices report is one they were given.
    fleet.desired_at(1_000).await;
    let a = start(
        settings_in(protocol, &broker.url(), &unique_client_id("share-a")),
        db.pool.clone(),
    )
    .await;
    let b = start(
        settings_in(protocol, &broker.url(), &unique_client_id("share-b")),
        db.pool.clone(),
    )
    .await;

    // Watch every device while the messages flow: no version ever goes down.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn({
        let (pool, done) = (db.pool.clone(), done.clone());
        async move {
            let mut highest: HashMap<String, i64> = HashMap::new();
            let mut polls = 0;
            while !done.load(Ordering::Relaxed) {
                let rows: Vec<(String, i64, serde_json::Value)> = sqlx::query_as(
                    "SELECT device_id, reported_version, reported_state FROM device_state",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                for (d, version, state) in rows {
                    let seen = highest.entry(d.clone()).or_default();
                    assert!(version >= *seen, "{d} went back from {seen} to {version}");
                    assert_eq!(state.get("v").map_or(0, |v| v.as_i64().unwrap()), version);
                    *seen = version;
                }
                polls += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            polls
        }
    });

    let devices = Client::connect(&broker.url(), "devices").await;
    devices.publish_all(versions(&ids, 1, 25)).await;
    wait_all_at(&fleet, 25).await;
    a.wait_metric("shadowbox_ingest_pending_messages", 0.0)
        .await;
    b.wait_metric("shadowbox_ingest_pending_messages", 0.0)
        .await;
    done.store(true, Ordering::Relaxed);
    assert!(watcher.await.unwrap() > 1);

    let handled = |i: &Running| -> f64 {
        ["applied", "superseded", "stale"]
            .iter()
            .map(|r| message_count(i, r))
            .sum()
    };
    let (by_a, by_b) = (handled(&a), handled(&b));
    assert_eq!(by_a + by_b, 500.0, "each message handled exactly once");
    assert!(
        by_a > 0.0 && by_b > 0.0,
        "both took a share: {by_a} + {by_b}"
    );
    a.stop().await;
    b.stop().await;
}

async fn it_subscribes_again_when_the_broker_lost_the_session(protocol: Protocol) {
    init_logs();
    let (db, mut broker) = (TestDb::new().await, Mosquitto::start());
    let fleet = Fleet::register_ids(&db.pool, "acme", ["d0"]).await;
    // Every version these devices report is one they were given.
    fleet.desired_at(1_000).await;
    let ingester = start(
        settings_in(protocol, &broker.url(), &unique_client_id("resub")),
        db.pool.clone(),
    )
    .await;
    // Without persistence the restarted broker has no session, hence no
    // subscription: messages reach the ingester only if it subscribes again.
    broker.restart();
    let devices = Client::connect(&broker.url(), "devices").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for version in 1.. {
        devices
            .publish(
                reported_topic("acme", "d0"),
                reported(json!({"v": version}), version),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if fleet.record("d0").await.reported_version > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing published after the restart was applied"
        );
    }
    ingester.stop().await;
}

under_both_protocols!(
    a_crashed_ingester_gets_everything_back_from_its_persistent_session,
    a_database_outage_is_waited_out_and_the_newest_state_wins,
    two_ingesters_share_the_load_lose_nothing_and_never_go_back,
    it_subscribes_again_when_the_broker_lost_the_session,
);
