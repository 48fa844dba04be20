//! Desired writes: merge and replace, the outbox row committed with the
//! change, no-ops, If-Match, and concurrent writers.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shadowbox_core::{DeviceId, TenantId};
use shadowbox_db::devices::get_device;
use shadowbox_db::outbox::{OutboxFilter, list_rows};

use crate::helpers::{TestApp, expect_json, expect_problem, spawn_app};

const PATH: &str = "/v1/tenants/acme/devices/d1/desired";

async fn app_with_device(desired: Option<Value>) -> (TestApp, String) {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    app.register(&key, "acme", "d1", desired).await;
    (app, key)
}

async fn outbox_versions(app: &TestApp) -> Vec<i64> {
    let filter = OutboxFilter {
        device: Some("d1".to_owned()),
        ..OutboxFilter::default()
    };
    let mut versions: Vec<i64> = list_rows(&app.db.pool, &filter, 1000)
        .await
        .unwrap()
        .iter()
        .map(|r| r.version)
        .collect();
    versions.reverse();
    versions
}

#[tokio::test]
async fn patch_merges_and_commits_state_and_outbox_row_together() {
    let (app, key) = app_with_device(Some(json!({"a": 1, "b": {"c": 2, "d": 3}}))).await;
    let response = app
        .request(Method::PATCH, PATH, Some(&key))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"b": {"c": null, "e": 4}, "f": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["etag"], "\"2\"");
    let device = expect_json(response, StatusCode::OK).await;
    let expected = json!({"a": 1, "b": {"d": 3, "e": 4}, "f": true});
    assert_eq!(device["desired"], expected);
    assert_eq!(device["desired_version"], 2);
    assert_eq!(device["delivery"]["version"], 2);

    // What the database holds: the new state and its publish, both.
    let (tenant, id) = (
        TenantId::parse("acme").unwrap(),
        DeviceId::parse("d1").unwrap(),
    );
    let stored = get_device(&app.db.pool, &tenant, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Value::Object(stored.desired_state.0), expected);
    assert_eq!(stored.desired_version, 2);
    let filter = OutboxFilter {
        device: Some("d1".to_owned()),
        ..OutboxFilter::default()
    };
    let newest = &list_rows(&app.db.pool, &filter, 1).await.unwrap()[0];
    assert_eq!((newest.version, newest.status.as_str()), (2, "pending"));
    let payload: Value = serde_json::from_slice(&newest.payload).unwrap();
    assert_eq!(payload["desired"], expected);
    assert_eq!(payload["version"], 2);
}

#[tokio::test]
async fn put_replaces_the_document() {
    let (app, key) = app_with_device(Some(json!({"a": 1, "b": 2}))).await;
    let response = app
        .send(Method::PUT, PATH, Some(&key), Some(json!({"c": 3})))
        .await;
    let device = expect_json(response, StatusCode::OK).await;
    assert_eq!(device["desired"], json!({"c": 3}));
    assert_eq!(device["desired_version"], 2);
    assert_eq!(outbox_versions(&app).await, [1, 2]);
}

#[tokio::test]
async fn a_write_that_changes_nothing_answers_200_and_enqueues_nothing() {
    let (app, key) = app_with_device(Some(json!({"a": 1}))).await;
    for (method, body) in [
        (Method::PATCH, json!({"a": 1})),
        (Method::PATCH, json!({"missing": null})),
        (Method::PUT, json!({"a": 1})),
    ] {
        let response = app.send(method, PATH, Some(&key), Some(body)).await;
        assert_eq!(response.headers()["etag"], "\"1\"");
        assert_eq!(
            expect_json(response, StatusCode::OK).await["desired_version"],
            1
        );
    }
    assert_eq!(outbox_versions(&app).await, [1]);
}

#[tokio::test]
async fn if_match_makes_the_write_conditional() {
    let (app, key) = app_with_device(Some(json!({"a": 1}))).await;
    let write = |etag: &'static str, value: i64| {
        app.request(Method::PATCH, PATH, Some(&key))
            .header("if-match", etag)
            .json(&json!({ "a": value }))
            .send()
    };
    let ok = write("\"1\"", 2).await.unwrap();
    assert_eq!(expect_json(ok, StatusCode::OK).await["desired_version"], 2);
    let stale = write("\"1\"", 3).await.unwrap();
    let problem = expect_problem(stale, StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(problem["type"], "urn:shadowbox:problem:version-mismatch");
    let weak = write("W/\"2\"", 3).await.unwrap();
    expect_problem(weak, StatusCode::PRECONDITION_FAILED).await;
    let malformed = write("2", 3).await.unwrap();
    expect_problem(malformed, StatusCode::BAD_REQUEST).await;
    let any = write("*", 4).await.unwrap();
    assert_eq!(expect_json(any, StatusCode::OK).await["desired_version"], 3);
    assert_eq!(outbox_versions(&app).await, [1, 2, 3]);
}

#[tokio::test]
async fn concurrent_patches_get_consecutive_versions() {
    const WRITERS: i64 = 16;
    let (app, key) = app_with_device(None).await;
    let writes = (0..WRITERS).map(|i| {
        app.request(Method::PATCH, PATH, Some(&key))
            .json(&json!({ format!("k{i}"): i }))
            .send()
    });
    let mut versions = Vec::new();
    for response in futures_join(writes).await {
        versions.push(
            expect_json(response, StatusCode::OK).await["desired_version"]
                .as_i64()
                .unwrap(),
        );
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=WRITERS).collect::<Vec<_>>());
    assert_eq!(
        outbox_versions(&app).await,
        (1..=WRITERS).collect::<Vec<_>>()
    );
    let device = app
        .send(Method::GET, "/v1/tenants/acme/devices/d1", Some(&key), None)
        .await;
    let desired = expect_json(device, StatusCode::OK).await["desired"].clone();
    assert_eq!(
        desired.as_object().unwrap().len() as i64,
        WRITERS,
        "no write lost"
    );
}

/// Runs the requests concurrently, each on its own task.
async fn futures_join<F>(requests: impl Iterator<Item = F>) -> Vec<reqwest::Response>
where
    F: std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send + 'static,
{
    let tasks: Vec<_> = requests.map(tokio::spawn).collect();
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.unwrap().unwrap());
    }
    responses
}

/// Numbers at the edges of what a JSON number can be read as (here the
/// largest and the smallest `f64`) come back from PostgreSQL's `jsonb` as
/// long decimals; they must read back as the same numbers, never fail
/// (found by schemathesis: a 500 on reading the device back).
#[tokio::test]
async fn extreme_numbers_are_stored_and_read_back() {
    let (app, key) = app_with_device(None).await;
    let body = r#"{"max": 1.7976931348623157e308, "min": -1.7976931348623157e+308, "tiny": 5e-324, "big": 1e300, "int": 18446744073709551615}"#;
    let response = app
        .request(Method::PUT, PATH, Some(&key))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let written = expect_json(response, StatusCode::OK).await;
    let expected: Value = serde_json::from_str(body).unwrap();
    assert_eq!(written["desired"], expected);
    let read = app
        .send(Method::GET, "/v1/tenants/acme/devices/d1", Some(&key), None)
        .await;
    assert_eq!(expect_json(read, StatusCode::OK).await["desired"], expected);
}

/// A body that fails on its own answers its own error with or without a
/// precondition: `If-Match` is weighed only for requests that would
/// succeed without it (RFC 9110, 13.2.1; found by schemathesis: a weak tag
/// turned a non-object body's 422 into a 412).
#[tokio::test]
async fn a_bad_body_answers_422_whatever_if_match_says() {
    let (app, key) = app_with_device(None).await;
    for if_match in ["W/\"1\"", "\"7\"", "*"] {
        let response = app
            .request(Method::PUT, PATH, Some(&key))
            .header("content-type", "application/json")
            .header("if-match", if_match)
            .body("755")
            .send()
            .await
            .unwrap();
        expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
}

/// A patch whose result breaks a rule answers that error under any
/// `If-Match`, and a weak tag answers 412 only where the write would
/// succeed, undoing it (found by schemathesis: a NUL key under `W/"21"`
/// answered 412).
#[tokio::test]
async fn preconditions_are_weighed_after_the_write_would_succeed() {
    let (app, key) = app_with_device(Some(json!({"a": 1}))).await;
    let patch = |if_match: &'static str, body: &'static str, path: &'static str| {
        app.request(Method::PATCH, path, Some(&key))
            .header("content-type", "application/merge-patch+json")
            .header("if-match", if_match)
            .body(body)
            .send()
    };
    for if_match in ["W/\"1\"", "\"99\""] {
        let response = patch(if_match, r#"{"k\u0000": {"x": 1}}"#, PATH)
            .await
            .unwrap();
        expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let missing = "/v1/tenants/acme/devices/nope/desired";
    let response = patch("W/\"1\"", r#"{"a": 2}"#, missing).await.unwrap();
    expect_problem(response, StatusCode::NOT_FOUND).await;

    let response = patch("W/\"1\"", r#"{"a": 2}"#, PATH).await.unwrap();
    expect_problem(response, StatusCode::PRECONDITION_FAILED).await;
    let device = app
        .send(Method::GET, "/v1/tenants/acme/devices/d1", Some(&key), None)
        .await;
    let device = expect_json(device, StatusCode::OK).await;
    assert_eq!(
        device["desired"],
        json!({"a": 1}),
        "the weak tag undid the write"
    );
    assert_eq!(outbox_versions(&app).await, [1]);
}
