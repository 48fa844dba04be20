//! The whole loop through the real binary: REST write -> outbox -> relay ->
//! broker -> simulated devices -> reported -> ingester -> `in_sync`, then a
//! graceful SIGTERM.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use shadowbox_core::TenantId;
use shadowbox_sim::{SimSettings, device_ids};
use shadowbox_testkit::mqtt::unique_client_id;
use shadowbox_testkit::{
    ChildProcess, Mosquitto, Running, TestDb, eventually, free_port, wait_for_port,
};

const ADMIN: &str = "Bearer loop-admin";

#[tokio::test]
async fn fifty_simulated_devices_get_in_sync_and_serve_stops_cleanly() {
    let db = TestDb::new().await;
    let broker = Mosquitto::start();
    let port = free_port();
    let mut serve = ChildProcess::spawn(
        "shadowbox serve",
        Command::new(env!("CARGO_BIN_EXE_shadowbox"))
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("MQTT_URL", broker.url())
            .env("SHADOWBOX_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("SHADOWBOX_ADMIN_TOKEN", "loop-admin")
            .env(
                "SHADOWBOX_INGEST_CLIENT_ID",
                unique_client_id("loop-ingest"),
            )
            .env("SHADOWBOX_INGEST_SHARE_GROUP", unique_client_id("loop"))
            .env("RUST_LOG", "warn"),
    );
    wait_for_port(port, Duration::from_secs(30));
    let base = format!("http://127.0.0.1:{port}/v1/tenants/acme");
    let http = reqwest::Client::new();
    let created = http
        .put(&base)
        .header("Authorization", ADMIN)
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());

    let devices = device_ids("sim", 50).unwrap();
    for (i, device) in devices.iter().enumerate() {
        let response = http
            .post(format!("{base}/devices"))
            .header("Authorization", ADMIN)
            .json(&json!({"device_id": device, "desired": {"rate": i}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let settings = SimSettings::new(
        broker.url().parse().unwrap(),
        TenantId::parse("acme").unwrap(),
        devices.clone(),
    );
    let simulator = Running::start(|_, shutdown| shadowbox_sim::run(settings, shutdown));
    // A second change while the devices are online goes through too.
    let patched = http
        .patch(format!("{base}/devices/sim-00007/desired"))
        .header("Authorization", ADMIN)
        .header("Content-Type", "application/merge-patch+json")
        .body(r#"{"mode": "eco"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);

    let get = |path: String| {
        let request = http
            .get(format!("{base}{path}"))
            .header("Authorization", ADMIN);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let in_sync = || async {
        let page = get("/devices?in_sync=true&limit=100".into()).await;
        page["items"].as_array().unwrap().len() == 50
    };
    eventually(Duration::from_secs(30), "all 50 devices in sync", in_sync).await;
    let device = get("/devices/sim-00007".into()).await;
    assert_eq!(device["reported"], json!({"rate": 7, "mode": "eco"}));
    assert_eq!(device["reported_version"], 2);
    assert_eq!(device["delta"], json!({}));
    assert_eq!(device["delivery"]["status"], "delivered");

    simulator.stop().await;
    let exit = serve.terminate().await;
    assert!(exit.success(), "serve exits cleanly on SIGTERM: {exit:?}");
}
