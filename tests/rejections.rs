//! "Did it apply?" through the real binary: simulated devices that refuse
//! a version (`--reject-when`), the rejection on the device and in the
//! metrics, the lagging list, and a later accepted version clearing it.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use shadowbox_core::TenantId;
use shadowbox_sim::{RejectRule, SimSettings, device_ids};
use shadowbox_testkit::mqtt::unique_client_id;
use shadowbox_testkit::{
    ChildProcess, Mosquitto, PATIENCE, Running, TestDb, eventually, free_port, metric_value,
    wait_for_port,
};

const ADMIN: &str = "Bearer reject-admin";

#[tokio::test]
async fn a_simulated_rejection_shows_on_the_device_and_a_later_version_clears_it() {
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
            .env("SHADOWBOX_ADMIN_TOKEN", "reject-admin")
            .env(
                "SHADOWBOX_INGEST_CLIENT_ID",
                unique_client_id("reject-ingest"),
            )
            .env("SHADOWBOX_INGEST_SHARE_GROUP", unique_client_id("reject"))
            .env("RUST_LOG", "warn"),
    );
    wait_for_port(port, Duration::from_secs(30));
    let root = format!("http://127.0.0.1:{port}");
    let base = format!("{root}/v1/tenants/acme");
    let http = reqwest::Client::new();
    let created = http
        .put(&base)
        .header("Authorization", ADMIN)
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    let devices = device_ids("sim", 3).unwrap();
    for device in &devices {
        let response = http
            .post(format!("{base}/devices"))
            .header("Authorization", ADMIN)
            .json(&json!({"device_id": device, "desired": {"firmware": "1.0"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let mut settings = SimSettings::new(
        broker.url().parse().unwrap(),
        TenantId::parse("acme").unwrap(),
        devices,
    );
    settings.reject = RejectRule {
        rate: 0.0,
        when: vec!["firmware=2.0-beta".parse().unwrap()],
    };
    let simulator = Running::start(|_, shutdown| shadowbox_sim::run(settings, shutdown));

    let get = |path: String| {
        let request = http
            .get(format!("{base}{path}"))
            .header("Authorization", ADMIN);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let metric = |series: &'static str| {
        let request = http.get(format!("{root}/metrics"));
        async move {
            let text = request.send().await.unwrap().text().await.unwrap();
            metric_value(&text, series).unwrap_or(0.0)
        }
    };
    let patch = |device: &'static str, firmware: &'static str| {
        let request = http
            .patch(format!("{base}/devices/{device}/desired"))
            .header("Authorization", ADMIN)
            .header("Content-Type", "application/merge-patch+json")
            .body(json!({ "firmware": firmware }).to_string());
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    const APPLIED: &str = "shadowbox_ingest_commit_to_applied_seconds_count";
    const RECORDED: &str = "shadowbox_ingest_rejections_total{result=\"recorded\"}";

    eventually(PATIENCE, "all 3 devices applied version 1", || async {
        metric(APPLIED).await == 3.0
    })
    .await;
    let applied = get("/devices/sim-00001".into()).await;
    assert!(applied["applied_at"].is_string(), "{applied}");
    assert_eq!(applied["rejection"], json!(null));

    // The device refuses version 2 and keeps reporting version 1.
    assert_eq!(patch("sim-00001", "2.0-beta").await["desired_version"], 2);
    eventually(PATIENCE, "the rejection is recorded", || async {
        metric(RECORDED).await == 1.0
    })
    .await;
    let refused = get("/devices/sim-00001".into()).await;
    assert_eq!(refused["rejection"]["version"], 2, "{refused}");
    let reason = refused["rejection"]["reason"].as_str().unwrap();
    assert!(reason.contains("firmware"), "{reason}");
    assert_eq!(
        (&refused["reported_version"], &refused["applied_at"]),
        (&json!(1), &json!(null))
    );
    let lagging = get("/devices?in_sync=false&older_than=0ms".into()).await;
    assert_eq!(lagging["items"][0]["device_id"], "sim-00001");
    assert_eq!(lagging["items"].as_array().unwrap().len(), 1);

    // A version it accepts clears the rejection and is applied once more.
    assert_eq!(patch("sim-00001", "2.0").await["desired_version"], 3);
    eventually(PATIENCE, "version 3 applied", || async {
        metric(APPLIED).await == 4.0
    })
    .await;
    let accepted = get("/devices/sim-00001".into()).await;
    assert_eq!(accepted["rejection"], json!(null));
    assert_eq!(accepted["reported_version"], 3);
    assert!(accepted["applied_at"].is_string());
    let stats = simulator.stop().await;
    assert_eq!(stats.rejected, 1, "{stats}");
    let exit = serve.terminate().await;
    assert!(exit.success(), "serve exits cleanly on SIGTERM: {exit:?}");
}
