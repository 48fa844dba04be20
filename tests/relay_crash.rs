//! A relay process killed with SIGKILL mid-stream and started again loses
//! nothing and regresses nothing.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use shadowbox_testkit::mqtt::{ALL_DESIRED, Client, assert_never_regressed, retained, version_of};
use shadowbox_testkit::{
    ChildProcess, Fleet, Mosquitto, TestDb, eventually, free_port, metric_value,
};

/// A `shadowbox relay` process, killed when dropped.
struct RelayProcess {
    process: ChildProcess,
    metrics_port: u16,
}

impl RelayProcess {
    fn start(db: &TestDb, broker: &Mosquitto) -> Self {
        let metrics_port = free_port();
        let process = ChildProcess::spawn(
            "shadowbox relay",
            Command::new(env!("CARGO_BIN_EXE_shadowbox"))
                .arg("relay")
                .env("DATABASE_URL", &db.url)
                .env("MQTT_URL", broker.url())
                .env(
                    "SHADOWBOX_METRICS_ADDR",
                    format!("127.0.0.1:{metrics_port}"),
                )
                .env("SHADOWBOX_RELAY_BATCH_SIZE", "16")
                .env("RUST_LOG", "warn"),
        );
        Self {
            process,
            metrics_port,
        }
    }
}

#[tokio::test]
async fn a_killed_relay_loses_and_regresses_nothing() {
    let db = TestDb::new().await;
    let broker = Mosquitto::start();
    let fleet = Arc::new(Fleet::register(&db, 50).await);
    let observer = Client::connect(&broker.url(), "observer").await;
    observer.subscribe(ALL_DESIRED).await;
    let mut relay = RelayProcess::start(&db, &broker);

    let writer = {
        let fleet = fleet.clone();
        tokio::spawn(async move {
            for round in 0..20 {
                for device in 0..50 {
                    fleet.patch(device, json!({ "round": round })).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    eventually(Duration::from_secs(30), "the relay delivers", || async {
        fleet
            .statuses()
            .await
            .get("delivered")
            .copied()
            .unwrap_or(0)
            >= 100
    })
    .await;
    relay.process.kill();
    let relay = RelayProcess::start(&db, &broker);
    writer.await.unwrap();

    fleet
        .wait_until_nothing_pending(Duration::from_secs(30))
        .await;
    assert_never_regressed(&observer.messages());
    let retained = retained(&broker.url(), ALL_DESIRED).await;
    assert_eq!(retained.len(), 50);
    for i in 0..50 {
        assert_eq!(version_of(&retained[&fleet.topic(i)]), 20, "device {i}");
    }
    let statuses = fleet.statuses().await;
    assert_eq!(statuses.values().sum::<i64>(), 1000, "{statuses:?}");
    assert!(!statuses.contains_key("dead"), "{statuses:?}");
    // The restarted relay serves its metrics, with what it delivered.
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", relay.metrics_port))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let delivered = metric_value(&metrics, "shadowbox_relay_delivered_total")
        .expect("the delivered counter is exposed");
    assert!(delivered > 0.0, "{delivered}");
    drop(relay);
}
