//! "Did it apply?": `applied_at` and `rejection` on the device, and the
//! `in_sync=false&older_than=` list. Reports go through the ingester's own
//! statement (its MQTT side is tested in the ingest crate).

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shadowbox_core::payload::Rejection;
use shadowbox_db::reported::{ReceivedRejection, ReportedState, ReportedUpdate, apply_reported};

use crate::helpers::{TestApp, expect_json, expect_problem, spawn_app};

/// Writes what device `device` of `acme` reports: `version` applied, and
/// optionally the refusal of `rejected`.
async fn report(app: &TestApp, device: &str, version: i64, rejected: Option<(i64, &str)>) {
    let now = Utc::now();
    let update = ReportedUpdate {
        tenant_id: shadowbox_core::TenantId::parse("acme").unwrap(),
        device_id: shadowbox_core::DeviceId::parse(device).unwrap(),
        reported: Some(ReportedState {
            document: serde_json::Map::new(),
            version,
            received_at: now,
        }),
        rejection: rejected.map(|(version, reason)| ReceivedRejection {
            rejection: Rejection {
                version,
                reason: reason.to_owned(),
            },
            received_at: now,
        }),
        seen_at: now,
    };
    apply_reported(&app.db.pool, &[update]).await.unwrap();
}

async fn get(app: &TestApp, key: &str, path: &str) -> Value {
    expect_json(
        app.send(Method::GET, path, Some(key), None).await,
        StatusCode::OK,
    )
    .await
}

async fn device(app: &TestApp, key: &str, device: &str) -> Value {
    get(app, key, &format!("/v1/tenants/acme/devices/{device}")).await
}

async fn patch(app: &TestApp, key: &str, device: &str, body: Value) -> Value {
    let response = app
        .request(
            Method::PATCH,
            &format!("/v1/tenants/acme/devices/{device}/desired"),
            Some(key),
        )
        .header("content-type", "application/merge-patch+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await
}

/// Makes the current desired version of `devices` look committed
/// `minutes` ago.
async fn committed_minutes_ago(app: &TestApp, devices: &[&str], minutes: i32) {
    sqlx::query(
        "UPDATE device_state
         SET desired_committed_at = now() - make_interval(mins => $2)
         WHERE device_id = ANY($1)",
    )
    .bind(devices)
    .bind(minutes)
    .execute(&app.db.pool)
    .await
    .unwrap();
}

fn ids(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_device_shows_when_it_applied_and_what_it_rejected() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    let registered = app
        .register(&key, "acme", "pump-7", Some(json!({"fw": "2.4.0"})))
        .await;
    assert_eq!(
        (&registered["applied_at"], &registered["rejection"]),
        (&json!(null), &json!(null))
    );

    // Refuses version 1, still at 0.
    report(&app, "pump-7", 0, Some((1, "not enough flash"))).await;
    let refused = device(&app, &key, "pump-7").await;
    assert_eq!(refused["rejection"]["version"], 1);
    assert_eq!(refused["rejection"]["reason"], "not enough flash");
    assert!(refused["rejection"]["at"].is_string());
    assert_eq!(refused["applied_at"], json!(null));

    // A new version: the rejection of the old one no longer concerns it.
    let patched = patch(&app, &key, "pump-7", json!({"fw": "2.4.1"})).await;
    assert_eq!(patched["desired_version"], 2);
    assert_eq!(patched["rejection"], json!(null));

    // Applied: applied_at set, and kept by later reports of that version.
    report(&app, "pump-7", 2, None).await;
    let applied = device(&app, &key, "pump-7").await;
    assert_eq!(applied["in_sync"], true);
    let applied_at = applied["applied_at"].clone();
    assert!(applied_at.is_string(), "{applied}");
    report(&app, "pump-7", 2, None).await;
    assert_eq!(device(&app, &key, "pump-7").await["applied_at"], applied_at);

    // The next version resets it.
    let next = patch(&app, &key, "pump-7", json!({"fw": "2.5.0"})).await;
    assert_eq!(next["applied_at"], json!(null));
}

#[tokio::test]
async fn the_list_finds_devices_that_have_not_applied_within_a_time() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    for d in ["a", "b", "c", "d", "e"] {
        app.register(&key, "acme", d, Some(json!({"on": true})))
            .await;
    }
    app.register(&key, "acme", "never-written", None).await;
    // a, b, c: committed 10 minutes ago; c applied it. d, e: just now.
    committed_minutes_ago(&app, &["a", "b", "c"], 10).await;
    report(&app, "c", 1, None).await;

    let lagging = "/v1/tenants/acme/devices?in_sync=false&older_than=5m";
    assert_eq!(ids(&get(&app, &key, lagging).await), ["a", "b"]);
    let recent = "/v1/tenants/acme/devices?in_sync=false&older_than=15m";
    assert!(ids(&get(&app, &key, recent).await).is_empty());
    let all_lagging = "/v1/tenants/acme/devices?in_sync=false";
    assert_eq!(
        ids(&get(&app, &key, all_lagging).await),
        ["a", "b", "d", "e"]
    );
    let in_sync = "/v1/tenants/acme/devices?in_sync=true";
    assert_eq!(ids(&get(&app, &key, in_sync).await), ["c", "never-written"]);

    // Pages follow the same filter.
    let first = get(&app, &key, &format!("{lagging}&limit=1")).await;
    assert_eq!(ids(&first), ["a"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = get(&app, &key, &format!("{lagging}&limit=1&cursor={cursor}")).await;
    assert_eq!(ids(&second), ["b"]);

    for bad in ["5", "5%20minutes", "-5m", "36501d", "m"] {
        let path = format!("/v1/tenants/acme/devices?in_sync=false&older_than={bad}");
        let response = app.send(Method::GET, &path, Some(&key), None).await;
        let problem = expect_problem(response, StatusCode::BAD_REQUEST).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("older_than"),
            "{bad}: {problem}"
        );
    }
}

#[tokio::test]
async fn the_openapi_document_states_older_than_applied_at_and_rejection() {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let params = doc["paths"]["/v1/tenants/{tenant_id}/devices"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let older_than = params
        .iter()
        .find(|p| p["name"] == "older_than")
        .unwrap_or_else(|| panic!("{params:?}"));
    assert_eq!(older_than["in"], "query");
    let pattern = older_than["schema"]["pattern"].as_str().unwrap();
    assert!(pattern.contains("ms|"), "{pattern}");
    let device = &doc["components"]["schemas"]["DeviceView"]["properties"];
    assert!(device["applied_at"].is_object(), "{device}");
    assert!(device["rejection"].is_object(), "{device}");
    let rejection = &doc["components"]["schemas"]["RejectionView"]["required"];
    assert_eq!(rejection, &json!(["version", "reason", "at"]));
}
