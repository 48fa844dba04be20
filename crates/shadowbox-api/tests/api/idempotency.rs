//! `Idempotency-Key` on registration and desired writes: replays, a key
//! reused for another request, concurrent duplicates, expiry, tenants.

use std::time::Duration;

use reqwest::header::HeaderValue;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use shadowbox_core::TenantId;
use shadowbox_core::idempotency::{IdempotencyKey, fingerprint};
use shadowbox_db::idempotency::{Claim, claim, purge_expired};

use crate::helpers::{TestApp, expect_json, expect_problem, spawn_app};

const DEVICES: &str = "/v1/tenants/acme/devices";
const DESIRED: &str = "/v1/tenants/acme/devices/d1/desired";

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    idempotency_key: &str,
    body: &str,
) -> Response {
    app.request(method, path, Some(token))
        .header("content-type", "application/json")
        .header("idempotency-key", idempotency_key)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

fn replayed(response: &Response) -> bool {
    response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

async fn outbox_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

async fn stored_keys(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM idempotency_keys")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

/// Moves every stored key's creation back past the 24 hour window.
async fn age_keys(app: &TestApp) {
    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 second'")
        .execute(&app.db.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_repeated_registration_replays_the_first_answer_and_writes_nothing() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    let body = r#"{"device_id": "d1", "desired": {"rate": 5}}"#;

    let first = send(&app, Method::POST, DEVICES, &key, "reg-1", body).await;
    assert!(!replayed(&first));
    let (etag, location) = (
        first.headers()["etag"].clone(),
        first.headers()["location"].clone(),
    );
    let first = expect_json(first, StatusCode::CREATED).await;

    let again = send(&app, Method::POST, DEVICES, &key, "reg-1", body).await;
    assert!(replayed(&again), "{:?}", again.headers());
    assert_eq!(again.headers()["etag"], etag);
    assert_eq!(again.headers()["location"], location);
    assert_eq!(again.headers()["content-type"], "application/json");
    assert_eq!(expect_json(again, StatusCode::CREATED).await, first);
    assert_eq!(outbox_rows(&app).await, 1, "the replay enqueued nothing");

    // Without the key the same request is a second registration.
    let response = app
        .send(
            Method::POST,
            DEVICES,
            Some(&key),
            Some(serde_json::from_str(body).unwrap()),
        )
        .await;
    expect_problem(response, StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn a_repeated_desired_write_replays_the_first_answer_after_later_writes() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    app.register(&key, "acme", "d1", Some(json!({"rate": 1})))
        .await;

    let first = send(&app, Method::PATCH, DESIRED, &key, "p-1", r#"{"rate": 2}"#).await;
    assert_eq!(first.headers()["etag"], "\"2\"");
    let first = expect_json(first, StatusCode::OK).await;
    // Someone else writes in between.
    let other = send(&app, Method::PUT, DESIRED, &key, "p-2", r#"{"rate": 3}"#).await;
    expect_json(other, StatusCode::OK).await;

    let again = send(&app, Method::PATCH, DESIRED, &key, "p-1", r#"{"rate": 2}"#).await;
    assert!(replayed(&again));
    assert_eq!(again.headers()["etag"], "\"2\"", "the first answer's ETag");
    assert_eq!(expect_json(again, StatusCode::OK).await, first);
    let device = app
        .admin(
            Method::GET,
            "/v1/tenants/acme/devices/d1",
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        device["desired"],
        json!({"rate": 3}),
        "the replay wrote nothing"
    );
    assert_eq!(device["desired_version"], 3);
    assert_eq!(outbox_rows(&app).await, 3);
}

#[tokio::test]
async fn a_key_reused_for_another_request_answers_422() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    app.register(&key, "acme", "d1", None).await;
    let response = send(&app, Method::PATCH, DESIRED, &key, "k", r#"{"a": 1}"#).await;
    expect_json(response, StatusCode::OK).await;

    for (method, body) in [
        (Method::PATCH, r#"{"a": 2}"#),
        // The same document, other bytes: another body.
        (Method::PATCH, r#"{"a":1}"#),
        // The same body, another method.
        (Method::PUT, r#"{"a": 1}"#),
    ] {
        let response = send(&app, method, DESIRED, &key, "k", body).await;
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(
            problem["type"],
            "urn:shadowbox:problem:idempotency-key-reused"
        );
    }
    // Another path.
    let response = send(
        &app,
        Method::POST,
        DEVICES,
        &key,
        "k",
        r#"{"device_id": "d2"}"#,
    )
    .await;
    expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    let device = app
        .admin(
            Method::GET,
            "/v1/tenants/acme/devices/d1",
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(device["desired"], json!({"a": 1}));
    assert_eq!(outbox_rows(&app).await, 1);
}

#[tokio::test]
async fn malformed_keys_answer_400_and_write_nothing() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    let too_long = "k".repeat(256);
    let values = [
        HeaderValue::from_static(""),
        HeaderValue::from_str(&too_long).unwrap(),
        HeaderValue::from_static("two words"),
        HeaderValue::from_bytes("clé".as_bytes()).unwrap(),
        HeaderValue::from_bytes(b"tab\there").unwrap(),
    ];
    for value in values {
        let response = app
            .request(Method::POST, DEVICES, Some(&key))
            .header("content-type", "application/json")
            .header("idempotency-key", value.clone())
            .body(r#"{"device_id": "d1"}"#)
            .send()
            .await
            .unwrap();
        let problem = expect_problem(response, StatusCode::BAD_REQUEST).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key"),
            "{value:?}: {problem}"
        );
    }
    // Two keys on one request.
    let response = app
        .request(Method::POST, DEVICES, Some(&key))
        .header("content-type", "application/json")
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .body(r#"{"device_id": "d1"}"#)
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(stored_keys(&app).await, 0);
    app.admin(
        Method::GET,
        "/v1/tenants/acme/devices/d1",
        None,
        StatusCode::NOT_FOUND,
    )
    .await;

    // The longest key, every visible character.
    let longest: String = (b'!'..=b'~').cycle().take(255).map(char::from).collect();
    let response = send(
        &app,
        Method::POST,
        DEVICES,
        &key,
        &longest,
        r#"{"device_id": "d1"}"#,
    )
    .await;
    expect_json(response, StatusCode::CREATED).await;
}

#[tokio::test]
async fn concurrent_duplicates_write_once_and_the_others_replay() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    let body = r#"{"device_id": "d1", "desired": {"rate": 5}}"#;
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let request = app
                .request(Method::POST, DEVICES, Some(&key))
                .header("content-type", "application/json")
                .header("idempotency-key", "same")
                .body(body);
            tokio::spawn(request.send())
        })
        .collect();
    let mut fresh = 0;
    let mut bodies = Vec::new();
    for attempt in attempts {
        let response = attempt.await.unwrap().unwrap();
        fresh += usize::from(!replayed(&response));
        bodies.push(expect_json(response, StatusCode::CREATED).await);
    }
    assert_eq!(fresh, 1, "exactly one request wrote");
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    assert_eq!(outbox_rows(&app).await, 1);
}

#[tokio::test]
async fn a_duplicate_waits_for_the_first_and_writes_itself_when_that_rolls_back() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    let body = r#"{"device_id": "d1"}"#;
    // Another transaction holds the key, as a request in flight would.
    let mut holder = app.db.pool.begin().await.unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let held = IdempotencyKey::parse(b"held").unwrap();
    let print = fingerprint("POST", DEVICES, body.as_bytes());
    assert_eq!(
        claim(&mut holder, &tenant, &held, &print).await.unwrap(),
        Claim::Claimed
    );

    let mut duplicate = Box::pin(send(&app, Method::POST, DEVICES, &key, "held", body));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut duplicate)
            .await
            .is_err(),
        "the duplicate must wait while the key is held"
    );
    holder.rollback().await.unwrap();
    let response = duplicate.await;
    assert!(
        !replayed(&response),
        "the first write rolled back: nothing to replay"
    );
    expect_json(response, StatusCode::CREATED).await;
}

#[tokio::test]
async fn a_failed_write_stores_no_key() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    app.register(&key, "acme", "d1", None).await;
    let body = r#"{"device_id": "d1"}"#;
    for _ in 0..2 {
        let response = send(&app, Method::POST, DEVICES, &key, "dup", body).await;
        assert!(!replayed(&response));
        expect_problem(response, StatusCode::CONFLICT).await;
    }
    assert_eq!(stored_keys(&app).await, 0);
}

#[tokio::test]
async fn keys_expire_after_24_hours_and_are_purged() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    app.register(&key, "acme", "d1", None).await;
    let response = send(&app, Method::PATCH, DESIRED, &key, "old", r#"{"a": 1}"#).await;
    expect_json(response, StatusCode::OK).await;
    age_keys(&app).await;

    // Past the window the key is new again: another body is no conflict.
    let response = send(&app, Method::PATCH, DESIRED, &key, "old", r#"{"a": 2}"#).await;
    assert!(!replayed(&response));
    let device = expect_json(response, StatusCode::OK).await;
    assert_eq!(device["desired_version"], 2);
    // And it replays from its new first answer.
    let response = send(&app, Method::PATCH, DESIRED, &key, "old", r#"{"a": 2}"#).await;
    assert!(replayed(&response));

    let response = send(&app, Method::PATCH, DESIRED, &key, "young", r#"{"a": 3}"#).await;
    expect_json(response, StatusCode::OK).await;
    sqlx::query(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(purge_expired(&app.db.pool, 1).await.unwrap(), 1);
    let left: Vec<String> = sqlx::query_scalar("SELECT key FROM idempotency_keys")
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(left, ["young"]);
}

#[tokio::test]
async fn keys_are_per_tenant() {
    let app = spawn_app().await;
    let acme = app.tenant_with_key("acme").await;
    let beta = app.tenant_with_key("beta").await;
    let body = r#"{"device_id": "d1", "desired": {"rate": 1}}"#;
    let first = send(&app, Method::POST, DEVICES, &acme, "shared", body).await;
    expect_json(first, StatusCode::CREATED).await;
    let other = send(
        &app,
        Method::POST,
        "/v1/tenants/beta/devices",
        &beta,
        "shared",
        r#"{"device_id": "d9"}"#,
    )
    .await;
    assert!(!replayed(&other), "another tenant's key is another key");
    let other: Value = expect_json(other, StatusCode::CREATED).await;
    assert_eq!(other["tenant_id"], "beta");
    assert_eq!(other["device_id"], "d9");
    assert_eq!(stored_keys(&app).await, 2);
}

#[tokio::test]
async fn the_openapi_document_names_the_header_on_every_idempotent_write() {
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
    for (path, method) in [
        ("/v1/tenants/{tenant_id}/devices", "post"),
        (
            "/v1/tenants/{tenant_id}/devices/{device_id}/desired",
            "patch",
        ),
        ("/v1/tenants/{tenant_id}/devices/{device_id}/desired", "put"),
    ] {
        let params = doc["paths"][path][method]["parameters"].as_array().unwrap();
        let header = params
            .iter()
            .find(|p| p["name"] == "Idempotency-Key")
            .unwrap_or_else(|| panic!("{method} {path}: {params:?}"));
        assert_eq!(header["in"], "header");
        assert_eq!(header["schema"]["maxLength"], 255);
        assert_eq!(header["schema"]["minLength"], 1);
    }
}
