//! A device's desired history: every change with its actor, newest first,
//! in pages, reachable only within its tenant.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ADMIN, TestApp, expect_json, expect_problem, spawn_app};

/// Creates `tenant` and a key of it; returns `(key id, secret)`.
async fn tenant_and_key(app: &TestApp, tenant: &str) -> (String, String) {
    app.admin(
        Method::PUT,
        &format!("/v1/tenants/{tenant}"),
        None,
        StatusCode::CREATED,
    )
    .await;
    let key = app
        .admin(
            Method::POST,
            &format!("/v1/tenants/{tenant}/api-keys"),
            None,
            StatusCode::CREATED,
        )
        .await;
    (
        key["id"].as_str().unwrap().to_owned(),
        key["secret"].as_str().unwrap().to_owned(),
    )
}

async fn write(app: &TestApp, method: Method, token: &str, path: &str, body: Value) {
    let content_type = if method == Method::PATCH {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let response = app
        .request(method, path, Some(token))
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await;
}

#[tokio::test]
async fn history_names_each_change_and_who_made_it_newest_first() {
    let app = spawn_app().await;
    let (key_id, key) = tenant_and_key(&app, "acme").await;
    app.register(&key, "acme", "pump-7", Some(json!({"rate": 5})))
        .await;
    let desired = "/v1/tenants/acme/devices/pump-7/desired";
    write(&app, Method::PATCH, ADMIN, desired, json!({"rate": 6})).await;
    write(&app, Method::PUT, &key, desired, json!({"mode": "eco"})).await;
    let decommission = app
        .send(
            Method::POST,
            "/v1/tenants/acme/devices/pump-7/decommission",
            Some(ADMIN),
            None,
        )
        .await;
    expect_json(decommission, StatusCode::OK).await;

    let history = expect_json(
        app.send(
            Method::GET,
            "/v1/tenants/acme/devices/pump-7/history",
            Some(&key),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let summary: Vec<(i64, &str, &str, Value)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["version"].as_i64().unwrap(),
                h["change"].as_str().unwrap(),
                h["actor"].as_str().unwrap(),
                h["body"].clone(),
            )
        })
        .collect();
    let by_key = format!("key:{key_id}");
    assert_eq!(
        summary,
        vec![
            (3, "decommission", "admin", Value::Null),
            (3, "replace", by_key.as_str(), json!({"mode": "eco"})),
            (2, "merge", "admin", json!({"rate": 6})),
            (1, "register", by_key.as_str(), json!({"rate": 5})),
        ]
    );
    let newest = &history["items"][0];
    for field in ["committed_at", "delivered_at", "applied_at", "rejection"] {
        assert!(newest.get(field).is_some(), "{field} in {newest}");
    }
    assert!(newest["committed_at"].is_string());
    assert_eq!(newest["delivered_at"], Value::Null, "no relay runs here");
    assert_eq!(history["next_cursor"], Value::Null);

    // Pages of one, newest first, neither skipping nor repeating.
    let mut versions = Vec::new();
    let mut path = "/v1/tenants/acme/devices/pump-7/history?limit=1".to_owned();
    loop {
        let page = expect_json(
            app.send(Method::GET, &path, Some(&key), None).await,
            StatusCode::OK,
        )
        .await;
        let item = &page["items"][0];
        versions.push((item["version"].as_i64().unwrap(), item["change"].clone()));
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/v1/tenants/acme/devices/pump-7/history?limit=1&cursor={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(
        versions,
        vec![
            (3, json!("decommission")),
            (3, json!("replace")),
            (2, json!("merge")),
            (1, json!("register")),
        ]
    );
}

#[tokio::test]
async fn history_stays_within_its_tenant() {
    let app = spawn_app().await;
    let (_, key) = tenant_and_key(&app, "acme").await;
    let (_, other) = tenant_and_key(&app, "globex").await;
    app.register(&key, "acme", "pump-7", None).await;
    let path = "/v1/tenants/acme/devices/pump-7/history";
    let problem = expect_problem(
        app.send(Method::GET, path, Some(&other), None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(problem["detail"], "tenant not found");
    expect_problem(
        app.send(
            Method::GET,
            "/v1/tenants/acme/devices/nobody/history",
            Some(&key),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_problem(
        app.send(
            Method::GET,
            &format!("{path}?cursor=not-a-cursor"),
            Some(&key),
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}
