//! Late bytes: a relay dies with a publish in flight whose bytes a TCP
//! proxy holds; another relay delivers newer versions; then the held
//! bytes reach the broker on the dead relay's still-open connection and
//! retain the older version. The surviving relay's reconcile pass puts
//! the newest version back within one interval.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use shadowbox_testkit::mqtt::{Client, retained, version_of};
use shadowbox_testkit::{
    ChildProcess, Fleet, Mosquitto, TcpProxy, TestDb, eventually, free_port, metric_value,
};

/// The surviving relay's reconcile interval.
const INTERVAL: &str = "3s";

fn relay(db: &TestDb, mqtt_url: &str, reconcile_interval: &str, metrics_port: u16) -> ChildProcess {
    ChildProcess::spawn(
        "shadowbox relay",
        Command::new(env!("CARGO_BIN_EXE_shadowbox"))
            .arg("relay")
            .env("DATABASE_URL", &db.url)
            .env("MQTT_URL", mqtt_url)
            .env("SHADOWBOX_RECONCILE_INTERVAL", reconcile_interval)
            // Only the reconcile pass may repair what the late bytes do.
            .env("SHADOWBOX_RELAY_REPUBLISH_AFTER", "1h")
            .env(
                "SHADOWBOX_METRICS_ADDR",
                format!("127.0.0.1:{metrics_port}"),
            )
            .env("RUST_LOG", "warn"),
    )
}

async fn metric(port: u16, series: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else {
        return 0.0;
    };
    metric_value(&response.text().await.unwrap_or_default(), series).unwrap_or(0.0)
}

#[tokio::test]
async fn late_bytes_of_a_dead_relay_are_overwritten_within_one_reconcile_interval() {
    let db = TestDb::new().await;
    let broker = Mosquitto::start();
    let proxy = TcpProxy::start(broker.port()).await;
    let fleet = Fleet::register(&db, 1).await;
    let topic = fleet.topic(0);
    let observer = Client::connect(&broker.url(), "observer").await;
    observer.subscribe(&topic).await;

    // Relay A reaches the broker through the proxy, and never reconciles.
    let mut first = relay(&db, &proxy.url(), "0s", free_port());
    fleet.patch(0, json!({"v": 1})).await;
    fleet
        .wait_until_nothing_pending(Duration::from_secs(30))
        .await;

    // Version 2 leaves relay A and is held in the proxy; A dies.
    proxy.hold();
    fleet.patch(0, json!({"v": 2})).await;
    eventually(Duration::from_secs(10), "relay A sent version 2", || {
        std::future::ready(proxy.held_bytes() > 0)
    })
    .await;
    first.kill();

    // Relay B delivers version 2 again, then version 3.
    let metrics_port = free_port();
    let _second = relay(&db, &broker.url(), INTERVAL, metrics_port);
    fleet
        .wait_until_nothing_pending(Duration::from_secs(30))
        .await;
    fleet.patch(0, json!({"v": 3})).await;
    fleet
        .wait_until_nothing_pending(Duration::from_secs(30))
        .await;
    eventually(Duration::from_secs(10), "version 3 is retained", || async {
        retained(&broker.url(), &topic)
            .await
            .get(&topic)
            .map(|p| version_of(p))
            == Some(3)
    })
    .await;

    // The held bytes land: version 2 after version 3.
    proxy.release();
    observer
        .wait_for("version 2 arrives after version 3", |messages| {
            let versions: Vec<i64> = messages.iter().map(|m| version_of(&m.payload)).collect();
            versions
                .iter()
                .position(|v| *v == 3)
                .is_some_and(|three| versions[three..].contains(&2))
        })
        .await;

    // Within one interval (plus the pass and the republish) it is back at 3.
    eventually(
        Duration::from_secs(3 + 8),
        "version 3 is retained again",
        || async {
            retained(&broker.url(), &topic)
                .await
                .get(&topic)
                .map(|p| version_of(p))
                == Some(3)
        },
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "relay B counted it as older",
        || async {
            metric(
                metrics_port,
                "shadowbox_reconcile_differences_total{kind=\"older\"}",
            )
            .await
                >= 1.0
        },
    )
    .await;
    let versions = fleet.versions().await;
    assert_eq!(versions["dev-000"], 3, "no new version was made");
}
