//! The simulator against a private Mosquitto: desired payloads are
//! published the way the relay does (retained, QoS 1, `encode_desired`),
//! and the reports are read back by subscribing to the reported topics.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::time::Duration;

use serde_json::{Value, json};
use shadowbox_core::payload::encode_desired;
use shadowbox_core::topic::{ShadowTopicKind, shadow_topic};
use shadowbox_core::{DeviceId, Document, TenantId};
use shadowbox_sim::{Connections, SimSettings, SimStats, device_ids};
use shadowbox_testkit::mqtt::Client;
use shadowbox_testkit::{Mosquitto, Running};
use tokio::time::timeout;

/// How long every device gets to report back.
const DEADLINE: Duration = Duration::from_secs(20);

fn doc(value: Value) -> Document {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// Publishes `payload` as the relay does: retained, QoS 1, on the device's
/// desired topic; returns once the broker acknowledged it.
async fn publish_desired(client: &Client, tenant: &TenantId, device: &DeviceId, payload: Vec<u8>) {
    let topic = shadow_topic(tenant, device, ShadowTopicKind::Desired);
    client.publish_retained(topic, payload).await;
}

/// A client that records what devices of `tenant` report.
async fn reports_of(broker: &Mosquitto, tenant: &TenantId) -> Client {
    let observer = Client::connect(&broker.url(), "observer").await;
    observer
        .subscribe(&format!("tenant/{tenant}/device/+/shadow/reported"))
        .await;
    observer
}

/// Starts the simulator in a task.
fn start(settings: SimSettings) -> Running<SimStats> {
    Running::start(|_, shutdown| shadowbox_sim::run(settings, shutdown))
}

/// The next report as `(device id, parsed payload)`.
async fn next_report(reports: &mut Client) -> (String, Value) {
    let message = timeout(DEADLINE, reports.next_message())
        .await
        .expect("a report in time");
    let device = message.topic.split('/').nth(3).unwrap().to_owned();
    (device, serde_json::from_slice(&message.payload).unwrap())
}

/// Publishes a distinct desired document and version for every device,
/// runs the simulator, and waits until each device reported exactly it.
async fn every_device_reports_back(
    tenant: &str,
    devices: usize,
    connections: Connections,
) -> SimStats {
    let broker = Mosquitto::start();
    let tenant = TenantId::parse(tenant).unwrap();
    let ids = device_ids("sim", devices).unwrap();
    let relay = Client::connect(&broker.url(), "relay").await;
    let mut expected = HashMap::new();
    for (i, device) in ids.iter().enumerate() {
        let desired =
            doc(json!({"rate": i, "name": format!("unit {i}"), "nested": {"on": i % 2 == 0}}));
        let version = i as i64 + 1;
        publish_desired(
            &relay,
            &tenant,
            device,
            encode_desired(&desired, version, chrono::Utc::now()),
        )
        .await;
        expected.insert(
            device.to_string(),
            json!({"reported": desired, "version": version}),
        );
    }
    let mut reports = reports_of(&broker, &tenant).await;

    let mut settings = SimSettings::new(broker.url().parse().unwrap(), tenant, ids);
    settings.connections = connections;
    let simulator = start(settings);
    let mut seen = HashMap::new();
    while seen.len() < devices {
        let (device, report) = next_report(&mut reports).await;
        assert_eq!(Some(&report), expected.get(&device), "{device}");
        seen.insert(device, report);
    }
    simulator.stop().await
}

#[tokio::test]
async fn fifty_devices_on_shared_connections_report_their_desired_state() {
    let stats = every_device_reports_back(
        "shared",
        50,
        Connections::Shared(NonZeroUsize::new(3).unwrap()),
    )
    .await;
    assert_eq!(stats.online, 50);
    assert!(stats.applied >= 50 && stats.reported >= 50, "{stats}");
}

#[tokio::test]
async fn devices_on_their_own_connections_report_their_desired_state() {
    let stats = every_device_reports_back("own", 10, Connections::PerDevice).await;
    assert!(stats.reported >= 10, "{stats}");
}

#[tokio::test]
async fn an_older_version_is_ignored_and_a_clear_forgets() {
    let broker = Mosquitto::start();
    let tenant = TenantId::parse("versions").unwrap();
    let device = DeviceId::parse("sim-00000").unwrap();
    let relay = Client::connect(&broker.url(), "relay").await;
    let mut reports = reports_of(&broker, &tenant).await;
    let simulator = start(SimSettings::new(
        broker.url().parse().unwrap(),
        tenant.clone(),
        vec![device.clone()],
    ));

    let at = chrono::Utc::now();
    publish_desired(
        &relay,
        &tenant,
        &device,
        encode_desired(&doc(json!({"rate": 5})), 5, at),
    )
    .await;
    assert_eq!(
        next_report(&mut reports).await.1,
        json!({"reported": {"rate": 5}, "version": 5})
    );
    // Older: ignored. Then a clear, after which any version is new again.
    publish_desired(
        &relay,
        &tenant,
        &device,
        encode_desired(&doc(json!({"rate": 3})), 3, at),
    )
    .await;
    publish_desired(&relay, &tenant, &device, Vec::new()).await;
    publish_desired(
        &relay,
        &tenant,
        &device,
        encode_desired(&doc(json!({"rate": 2})), 2, at),
    )
    .await;
    assert_eq!(
        next_report(&mut reports).await.1,
        json!({"reported": {"rate": 2}, "version": 2})
    );

    let stats = simulator.stop().await;
    assert_eq!(
        (stats.received, stats.stale, stats.cleared, stats.applied),
        (4, 1, 1, 2),
        "{stats}"
    );
}

#[tokio::test]
async fn flaky_devices_go_offline_drop_messages_and_reconnect() {
    let broker = Mosquitto::start();
    let tenant = TenantId::parse("flaky").unwrap();
    let ids = device_ids("sim", 20).unwrap();
    let relay = Client::connect(&broker.url(), "relay").await;
    for device in &ids {
        publish_desired(
            &relay,
            &tenant,
            device,
            encode_desired(&doc(json!({"on": true})), 1, chrono::Utc::now()),
        )
        .await;
    }
    let mut reports = reports_of(&broker, &tenant).await;
    let mut settings = SimSettings::new(broker.url().parse().unwrap(), tenant, ids);
    settings.online_fraction = 0.5;
    settings.apply_delay = Duration::from_millis(100);
    settings.disconnect_every = Some(Duration::from_secs(1));
    let simulator = start(settings);

    // Each reconnect redelivers the retained desired state: an online
    // device reports again, an offline one never does.
    let mut counts: HashMap<String, u32> = HashMap::new();
    let collect = async {
        while counts.len() < 2 || counts.values().any(|&n| n < 2) {
            let (device, _) = next_report(&mut reports).await;
            *counts.entry(device).or_default() += 1;
        }
    };
    timeout(DEADLINE, collect)
        .await
        .expect("reports again after reconnecting");
    let stats = simulator.stop().await;
    assert!((1..20).contains(&stats.online), "{stats}");
    assert!(counts.len() as u64 <= stats.online, "{counts:?} {stats}");
    assert!(stats.disconnects >= 1, "{stats}");
}

#[tokio::test]
async fn a_drop_rate_of_one_ignores_everything() {
    let broker = Mosquitto::start();
    let tenant = TenantId::parse("dropper").unwrap();
    let device = DeviceId::parse("sim-00000").unwrap();
    let relay = Client::connect(&broker.url(), "relay").await;
    publish_desired(
        &relay,
        &tenant,
        &device,
        encode_desired(&doc(json!({"on": true})), 1, chrono::Utc::now()),
    )
    .await;
    let mut settings = SimSettings::new(broker.url().parse().unwrap(), tenant, vec![device]);
    settings.drop_rate = 1.0;
    let simulator = start(settings);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stats = simulator.stop().await;
    assert_eq!(
        (stats.received, stats.dropped, stats.reported),
        (1, 1, 0),
        "{stats}"
    );
}
