//! Every error path answers application/problem+json with the right
//! status, axum's own rejections included.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, expect_problem, spawn_app, spawn_with};

const PATH: &str = "/v1/tenants/acme/devices/d1/desired";

async fn app_with_device() -> (TestApp, String) {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    app.register(&key, "acme", "d1", Some(json!({"a": 1})))
        .await;
    (app, key)
}

#[tokio::test]
async fn invalid_identifiers_answer_400() {
    let (app, key) = app_with_device().await;
    let too_long = "a".repeat(129);
    for bad in [
        "a+b",
        "a%23b",
        "a%2Fb",
        "%24SYS",
        "p%C3%BCmpe",
        "a%20b",
        too_long.as_str(),
    ] {
        for path in [
            format!("/v1/tenants/acme/devices/{bad}"),
            format!("/v1/tenants/{bad}/devices"),
        ] {
            let response = app.send(Method::GET, &path, Some(&key), None).await;
            let problem = expect_problem(response, StatusCode::BAD_REQUEST).await;
            assert!(
                problem["detail"].as_str().unwrap().contains("Invalid URL"),
                "{path}: {problem}"
            );
        }
        let admin_put = app
            .send(
                Method::PUT,
                &format!("/v1/tenants/{bad}"),
                Some(crate::helpers::ADMIN),
                None,
            )
            .await;
        expect_problem(admin_put, StatusCode::BAD_REQUEST).await;
    }
    for bad in ["a/b", "$SYS", "", "a#b"] {
        let response = app
            .send(
                Method::POST,
                "/v1/tenants/acme/devices",
                Some(&key),
                Some(json!({"device_id": bad})),
            )
            .await;
        let problem = expect_problem(response, StatusCode::BAD_REQUEST).await;
        assert!(
            problem["detail"].as_str().unwrap().starts_with("device_id"),
            "{problem}"
        );
    }
    let bad_row_id = app
        .send(
            Method::POST,
            "/v1/tenants/acme/outbox/abc/retry",
            Some(&key),
            None,
        )
        .await;
    expect_problem(bad_row_id, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn malformed_bodies() {
    let (app, key) = app_with_device().await;
    let raw = |content_type: Option<&'static str>, body: &'static str| {
        let request = app.request(Method::PATCH, PATH, Some(&key)).body(body);
        match content_type {
            Some(ct) => request.header("content-type", ct),
            None => request,
        }
        .send()
    };
    let syntax = raw(Some("application/json"), "{\"a\": ").await.unwrap();
    expect_problem(syntax, StatusCode::BAD_REQUEST).await;
    for not_an_object in ["[1, 2]", "null", "\"text\"", "7"] {
        let response = raw(Some("application/json"), not_an_object).await.unwrap();
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["type"], "urn:shadowbox:problem:not-an-object");
    }
    let missing_type = raw(None, "{}").await.unwrap();
    expect_problem(missing_type, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let text = raw(Some("text/plain"), "{}").await.unwrap();
    expect_problem(text, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let other_json = raw(Some("application/vnd.other+json"), "{}").await.unwrap();
    expect_problem(other_json, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let registration = app
        .request(Method::POST, "/v1/tenants/acme/devices", Some(&key))
        .json(&json!({"device_id": "x", "desired": [1]}))
        .send()
        .await
        .unwrap();
    expect_problem(registration, StatusCode::UNPROCESSABLE_ENTITY).await;
    let unknown_field = app
        .request(Method::POST, "/v1/tenants/acme/devices", Some(&key))
        .json(&json!({"device_id": "x", "desierd": {}}))
        .send()
        .await
        .unwrap();
    expect_problem(unknown_field, StatusCode::UNPROCESSABLE_ENTITY).await;
}

#[tokio::test]
async fn document_limits_answer_413_and_422() {
    let app = spawn_with(|s| {
        s.limits.max_bytes = 1024;
        s.limits.max_depth = 4;
        s.max_body_bytes = 4096;
    })
    .await;
    let key = app.tenant_with_key("acme").await;
    app.register(&key, "acme", "d1", Some(json!({"a": "x".repeat(600)})))
        .await;
    // Fits the body limit, but the merged document does not fit.
    let merged_too_large = app
        .send(
            Method::PATCH,
            PATH,
            Some(&key),
            Some(json!({"b": "y".repeat(600)})),
        )
        .await;
    let problem = expect_problem(merged_too_large, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(problem["type"], "urn:shadowbox:problem:document-too-large");
    // Larger than the body limit: refused before parsing.
    let body_too_large = app
        .send(
            Method::PUT,
            PATH,
            Some(&key),
            Some(json!({"b": "y".repeat(5000)})),
        )
        .await;
    expect_problem(body_too_large, StatusCode::PAYLOAD_TOO_LARGE).await;
    let too_deep = app
        .send(
            Method::PUT,
            PATH,
            Some(&key),
            Some(json!({"a": {"b": {"c": {"d": {"e": 1}}}}})),
        )
        .await;
    let problem = expect_problem(too_deep, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["type"], "urn:shadowbox:problem:document-too-deep");
    let deep_registration = app
        .send(
            Method::POST,
            "/v1/tenants/acme/devices",
            Some(&key),
            Some(json!({"device_id": "d2", "desired": {"a": {"b": {"c": {"d": {"e": 1}}}}}})),
        )
        .await;
    expect_problem(deep_registration, StatusCode::UNPROCESSABLE_ENTITY).await;
    // Exactly at the depth limit: the document is level 1.
    let ok = app
        .send(
            Method::PUT,
            PATH,
            Some(&key),
            Some(json!({"a": {"b": {"c": {"d": 1}}}})),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
}

/// PostgreSQL cannot store `\u0000`: a NUL character anywhere in the
/// resulting document answers 422 on every write route and writes nothing.
#[tokio::test]
async fn nul_characters_in_documents_answer_422_on_every_write() {
    let (app, key) = app_with_device().await;
    let nul_documents = [
        json!({"s": "a\u{0}b"}),
        json!({"a\u{0}": 1}),
        json!({"deep": [{"x": ["\u{0}"]}]}),
    ];
    for document in nul_documents {
        let writes = [
            (
                Method::POST,
                "/v1/tenants/acme/devices",
                json!({"device_id": "d2", "desired": document}),
            ),
            (Method::PATCH, PATH, document.clone()),
            (Method::PUT, PATH, document.clone()),
        ];
        for (method, path, body) in writes {
            let response = app.send(method.clone(), path, Some(&key), Some(body)).await;
            let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(
                problem["type"], "urn:shadowbox:problem:document-holds-nul",
                "{method} {path}: {problem}"
            );
        }
    }
    // Deleting a key that cannot exist leaves a storable document.
    let response = app
        .send(
            Method::PATCH,
            PATH,
            Some(&key),
            Some(json!({"k\u{0}": null})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let device = app
        .send(Method::GET, "/v1/tenants/acme/devices/d1", Some(&key), None)
        .await;
    let device = crate::helpers::expect_json(device, StatusCode::OK).await;
    assert_eq!(
        (&device["desired"], &device["desired_version"]),
        (&json!({"a": 1}), &json!(1))
    );
    let missing = app
        .send(Method::GET, "/v1/tenants/acme/devices/d2", Some(&key), None)
        .await;
    expect_problem(missing, StatusCode::NOT_FOUND).await;
}

/// A cursor that decodes to a position its list never gives out (here
/// `d:` followed by a NUL byte) answers 400, not a database error.
#[tokio::test]
async fn cursors_with_impossible_positions_answer_400() {
    let (app, key) = app_with_device().await;
    for path in [
        "/v1/tenants/acme/devices?cursor=ZDoA",
        "/v1/tenants/acme/devices?cursor=ZDo",
        "/v1/tenants/acme/outbox?cursor=bzpB",
        "/v1/tenants/acme/devices/d1/deliveries?cursor=bzoA",
    ] {
        let response = app.send(Method::GET, path, Some(&key), None).await;
        let problem = expect_problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(
            problem["detail"], "the cursor is not one this list gave out",
            "{path}"
        );
    }
}

#[tokio::test]
async fn router_rejections_are_problems() {
    let (app, key) = app_with_device().await;
    let unknown = app.send(Method::GET, "/v2/nothing", Some(&key), None).await;
    let problem = expect_problem(unknown, StatusCode::NOT_FOUND).await;
    assert_eq!(problem["detail"], "no route for GET /v2/nothing");
    let wrong_method = app
        .send(
            Method::DELETE,
            "/v1/tenants/acme/devices/d1",
            Some(&key),
            None,
        )
        .await;
    assert!(
        wrong_method.headers()["allow"]
            .to_str()
            .unwrap()
            .contains("GET")
    );
    expect_problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED).await;
    for query in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "status=bogus",
        "in_sync=maybe",
        "cursor=!!",
    ] {
        let response = app
            .send(
                Method::GET,
                &format!("/v1/tenants/acme/devices?{query}"),
                Some(&key),
                None,
            )
            .await;
        expect_problem(response, StatusCode::BAD_REQUEST).await;
    }
    // A device list's cursor is refused by the outbox list.
    app.register(&key, "acme", "d2", None).await;
    let page = app
        .send(
            Method::GET,
            "/v1/tenants/acme/devices?limit=1",
            Some(&key),
            None,
        )
        .await;
    let cursor = crate::helpers::expect_json(page, StatusCode::OK).await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app
        .send(
            Method::GET,
            &format!("/v1/tenants/acme/outbox?cursor={cursor}"),
            Some(&key),
            None,
        )
        .await;
    expect_problem(response, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn internal_errors_hide_their_cause() {
    let (app, key) = app_with_device().await;
    app.db.pool.close().await;
    let response = app
        .send(Method::GET, "/v1/tenants/acme/devices/d1", Some(&key), None)
        .await;
    let problem = expect_problem(response, StatusCode::INTERNAL_SERVER_ERROR).await;
    assert_eq!(problem["type"], "urn:shadowbox:problem:internal");
    let detail = problem["detail"].as_str().unwrap().to_lowercase();
    for internal in ["pool", "sql", "select", "closed"] {
        assert!(!detail.contains(internal), "{detail}");
    }
}
