//! A retired ingester's persistent session must not keep taking its share
//! of the reports: under MQTT 5 it expires by itself after the session
//! expiry; under either version `ingest forget-session` discards it.

use std::time::Duration;

use crate::common::{reported, reported_topic, settings_in, start};
use serde_json::json;
use shadowbox_mqtt::MqttConfig;
use shadowbox_testkit::mqtt::{Client, unique_client_id};
use shadowbox_testkit::{
    Fleet, Mosquitto, PATIENCE, Protocol, Running, TestDb, eventually, init_logs,
};

const DEVICES: usize = 20;

fn ids() -> Vec<String> {
    (0..DEVICES).map(|i| format!("d{i}")).collect()
}

/// Publishes version `version` for every device and waits until the
/// remaining ingester has written all of them.
async fn every_report_reaches_the_remaining_ingester(
    broker: &Mosquitto,
    fleet: &Fleet,
    version: i64,
) {
    let devices = Client::connect(&broker.url(), "devices").await;
    devices
        .publish_all(ids().iter().map(|d| {
            (
                reported_topic("acme", d),
                reported(json!({"v": version}), version),
            )
        }))
        .await;
    eventually(
        PATIENCE,
        &format!("every device at version {version}"),
        || async {
            for d in ids() {
                if fleet.record(&d).await.reported_version != version {
                    return false;
                }
            }
            true
        },
    )
    .await;
}

/// Starts two ingesters in one share group, lets the first one take part,
/// then stops it cleanly (as a retired replica): its session stays.
async fn retire_one(
    protocol: Protocol,
    broker: &Mosquitto,
    fleet: &Fleet,
    expiry: Duration,
) -> (String, Running) {
    let group = unique_client_id("g");
    let retired_id = unique_client_id("retired");
    let mut retired = settings_in(protocol, &broker.url(), &retired_id);
    retired.share_group.clone_from(&group);
    retired.session_expiry = expiry;
    let mut staying = settings_in(protocol, &broker.url(), &unique_client_id("staying"));
    staying.share_group = group;
    let retired = start(retired, fleet.pool.clone()).await;
    let staying = start(staying, fleet.pool.clone()).await;
    retired.stop().await;
    (retired_id, staying)
}

#[tokio::test]
async fn under_5_a_retired_ingester_s_session_expires_and_its_share_comes_back() {
    init_logs();
    let (db, broker) = (TestDb::new().await, Mosquitto::start());
    let fleet = Fleet::register_ids(&db.pool, "acme", ids()).await;
    // Every version these devices report is one they were given.
    fleet.desired_at(1_000).await;
    let (_, staying) = retire_one(Protocol::V5, &broker, &fleet, Duration::from_secs(1)).await;
    // Past the expiry, the broker has forgotten the retired session: no
    // report is queued for it any more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    every_report_reaches_the_remaining_ingester(&broker, &fleet, 1).await;
    staying.stop().await;
}

#[tokio::test]
async fn forget_session_discards_a_retired_ingester_s_session() {
    init_logs();
    let (db, broker) = (TestDb::new().await, Mosquitto::start());
    let fleet = Fleet::register_ids(&db.pool, "acme", ids()).await;
    // Every version these devices report is one they were given.
    fleet.desired_at(1_000).await;
    // 3.1.1 has no session expiry: the session would stay for good.
    let (retired_id, staying) =
        retire_one(Protocol::V311, &broker, &fleet, Duration::from_secs(3600)).await;
    let mqtt: MqttConfig = broker.url().parse().unwrap();
    shadowbox_mqtt::probe::discard_session(
        &mqtt,
        &mqtt.brokers[0],
        &retired_id,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    every_report_reaches_the_remaining_ingester(&broker, &fleet, 1).await;
    staying.stop().await;
}

#[tokio::test]
async fn without_expiry_or_forgetting_a_retired_session_keeps_its_share() {
    // The hazard the two tests above remove, shown under 3.1.1: reports
    // routed to the retired session wait there, unwritten.
    init_logs();
    let (db, broker) = (TestDb::new().await, Mosquitto::start());
    let fleet = Fleet::register_ids(&db.pool, "acme", ids()).await;
    // Every version these devices report is one they were given.
    fleet.desired_at(1_000).await;
    let (_, staying) = retire_one(Protocol::V311, &broker, &fleet, Duration::from_secs(3600)).await;
    let devices = Client::connect(&broker.url(), "devices").await;
    devices
        .publish_all(
            ids()
                .iter()
                .map(|d| (reported_topic("acme", d), reported(json!({"v": 1}), 1))),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut written = 0;
    for d in ids() {
        if fleet.record(&d).await.reported_version == 1 {
            written += 1;
        }
    }
    assert!(
        written < DEVICES,
        "the retired session kept part of the reports"
    );
    staying.stop().await;
}
