//! Tenants, keys and devices: the success paths and the device JSON shape.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{ADMIN, expect_json, expect_problem, spawn_app};

#[tokio::test]
async fn tenant_creation_is_idempotent() {
    let app = spawn_app().await;
    let created = app
        .admin(Method::PUT, "/v1/tenants/acme", None, StatusCode::CREATED)
        .await;
    assert_eq!(created, json!({"tenant_id": "acme"}));
    let again = app
        .admin(Method::PUT, "/v1/tenants/acme", None, StatusCode::OK)
        .await;
    assert_eq!(again, created);
}

#[tokio::test]
async fn api_keys_are_created_for_existing_tenants_only() {
    let app = spawn_app().await;
    app.admin(Method::PUT, "/v1/tenants/acme", None, StatusCode::CREATED)
        .await;
    let key = app
        .admin(
            Method::POST,
            "/v1/tenants/acme/api-keys",
            None,
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(key["tenant_id"], "acme");
    assert!(key["id"].as_str().unwrap().len() == 36);
    assert!(key["secret"].as_str().unwrap().starts_with("sbk_"));
    let missing = app
        .send(Method::POST, "/v1/tenants/nope/api-keys", Some(ADMIN), None)
        .await;
    expect_problem(missing, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn registering_with_desired_starts_at_version_one_and_enqueues_it() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    let response = app
        .send(
            Method::POST,
            "/v1/tenants/acme/devices",
            Some(&key),
            Some(json!({"device_id": "pump-7", "desired": {"rate": 5}})),
        )
        .await;
    assert_eq!(response.headers()["etag"], "\"1\"");
    assert_eq!(
        response.headers()["location"],
        "/v1/tenants/acme/devices/pump-7"
    );
    let device = expect_json(response, StatusCode::CREATED).await;
    let created_at = device["created_at"].clone();
    assert!(created_at.is_string());
    assert_eq!(
        device,
        json!({
            "tenant_id": "acme", "device_id": "pump-7", "status": "active",
            "desired": {"rate": 5}, "desired_version": 1,
            "reported": {}, "reported_version": 0,
            "delta": {"rate": 5}, "in_sync": false,
            "applied_at": null, "rejection": null,
            "last_seen": null, "created_at": created_at, "tags": {},
            "delivery": {"status": "pending", "version": 1, "attempts": 0,
                         "last_error": null, "delivered_at": null}
        })
    );
    let deliveries = app
        .send(
            Method::GET,
            "/v1/tenants/acme/devices/pump-7/deliveries",
            Some(&key),
            None,
        )
        .await;
    let deliveries = expect_json(deliveries, StatusCode::OK).await;
    assert_eq!(deliveries["items"].as_array().unwrap().len(), 1);
    assert_eq!(deliveries["items"][0]["version"], 1);
    assert_eq!(deliveries["items"][0]["kind"], "desired");
    assert_eq!(
        deliveries["items"][0]["topic"],
        "tenant/acme/device/pump-7/shadow/desired"
    );
    assert_eq!(deliveries["next_cursor"], json!(null));
}

#[tokio::test]
async fn registering_without_desired_starts_at_version_zero_and_enqueues_nothing() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    let device = app.register(&key, "acme", "d1", None).await;
    assert_eq!(device["desired"], json!({}));
    assert_eq!(device["desired_version"], 0);
    assert_eq!(device["in_sync"], true);
    assert_eq!(device["delivery"], json!(null));
    let outbox = app
        .send(Method::GET, "/v1/tenants/acme/outbox", Some(&key), None)
        .await;
    assert_eq!(
        expect_json(outbox, StatusCode::OK).await,
        json!({"items": [], "next_cursor": null})
    );
    let again = app
        .send(
            Method::POST,
            "/v1/tenants/acme/devices",
            Some(&key),
            Some(json!({"device_id": "d1"})),
        )
        .await;
    let problem = expect_problem(again, StatusCode::CONFLICT).await;
    assert_eq!(problem["type"], "urn:shadowbox:problem:device-exists");
}

#[tokio::test]
async fn get_shows_reported_state_delta_and_etag() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    app.register(
        &key,
        "acme",
        "pump",
        Some(json!({"rate": 5, "net": {"mtu": 1500, "dns": "a"}})),
    )
    .await;
    // The ingester's write, done here directly.
    sqlx::query(
        "UPDATE device_state SET reported_state = '{\"rate\": 5, \"net\": {\"mtu\": 1400, \"dns\": \"a\"}}',
                reported_version = 1, last_seen = now()
         WHERE device_id = 'pump'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let response = app
        .send(
            Method::GET,
            "/v1/tenants/acme/devices/pump",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(response.headers()["etag"], "\"1\"");
    let device = expect_json(response, StatusCode::OK).await;
    assert_eq!(device["delta"], json!({"net": {"mtu": 1500}}));
    assert_eq!(device["in_sync"], true);
    assert!(device["last_seen"].is_string());
    let missing = app
        .send(
            Method::GET,
            "/v1/tenants/acme/devices/nope",
            Some(&key),
            None,
        )
        .await;
    expect_problem(missing, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn decommission_enqueues_a_clear_once_and_blocks_writes() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    app.register(&key, "acme", "d1", Some(json!({"a": 1})))
        .await;
    let path = "/v1/tenants/acme/devices/d1/decommission";
    for _ in 0..2 {
        let response = app.send(Method::POST, path, Some(&key), None).await;
        assert_eq!(response.headers()["etag"], "\"1\"");
        let device = expect_json(response, StatusCode::OK).await;
        assert_eq!(device["status"], "decommissioned");
    }
    let deliveries = app
        .send(
            Method::GET,
            "/v1/tenants/acme/devices/d1/deliveries",
            Some(&key),
            None,
        )
        .await;
    let kinds: Vec<_> = expect_json(deliveries, StatusCode::OK).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["clear", "desired"], "newest first, one clear");
    let device = app
        .send(Method::GET, "/v1/tenants/acme/devices/d1", Some(&key), None)
        .await;
    assert_eq!(
        expect_json(device, StatusCode::OK).await["status"],
        "decommissioned"
    );
    for method in [Method::PATCH, Method::PUT] {
        let write = app
            .send(
                method,
                "/v1/tenants/acme/devices/d1/desired",
                Some(&key),
                Some(json!({"a": 2})),
            )
            .await;
        let problem = expect_problem(write, StatusCode::CONFLICT).await;
        assert_eq!(problem["type"], "urn:shadowbox:problem:decommissioned");
    }
    let missing = app
        .send(
            Method::POST,
            "/v1/tenants/acme/devices/nope/decommission",
            Some(&key),
            None,
        )
        .await;
    expect_problem(missing, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn device_lists_page_by_cursor_and_filter() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    for i in 0..5 {
        app.register(&key, "acme", &format!("dev-{i}"), Some(json!({"i": i})))
            .await;
    }
    app.register(&key, "acme", "dev-5", None).await;
    app.send(
        Method::POST,
        "/v1/tenants/acme/devices/dev-4/decommission",
        Some(&key),
        None,
    )
    .await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/v1/tenants/acme/devices?limit=2".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = expect_json(
            app.send(Method::GET, &path, Some(&key), None).await,
            StatusCode::OK,
        )
        .await;
        pages += 1;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["device_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["dev-0", "dev-1", "dev-2", "dev-3", "dev-4", "dev-5"]);
    assert_eq!(pages, 3, "a full last page has no cursor");

    let ids = |page: serde_json::Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["device_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let in_sync = app
        .send(
            Method::GET,
            "/v1/tenants/acme/devices?in_sync=true",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(ids(expect_json(in_sync, StatusCode::OK).await), ["dev-5"]);
    let decommissioned = app
        .send(
            Method::GET,
            "/v1/tenants/acme/devices?status=decommissioned",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        ids(expect_json(decommissioned, StatusCode::OK).await),
        ["dev-4"]
    );
    let active_out_of_sync = app
        .send(
            Method::GET,
            "/v1/tenants/acme/devices?status=active&in_sync=false&limit=1000",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        ids(expect_json(active_out_of_sync, StatusCode::OK).await),
        ["dev-0", "dev-1", "dev-2", "dev-3"]
    );
    let missing_tenant = app
        .send(Method::GET, "/v1/tenants/nope/devices", Some(ADMIN), None)
        .await;
    expect_problem(missing_tenant, StatusCode::NOT_FOUND).await;
}
