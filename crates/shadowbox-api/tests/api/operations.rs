//! Probes, metrics, the OpenAPI document, request ids and shutdown.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use shadowbox_testkit::Mosquitto;

use crate::helpers::{expect_json, expect_problem, spawn_app, spawn_with};

#[tokio::test]
async fn healthz_needs_nothing() {
    let app = spawn_app().await;
    let health = app.send(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        expect_json(health, StatusCode::OK).await,
        json!({"status": "ok"})
    );
}

#[tokio::test]
async fn readyz_checks_the_broker_with_a_real_connect() {
    let mut broker = Mosquitto::start();
    let url = broker.url();
    let app = spawn_with(|s| {
        s.mqtt = url.parse().unwrap();
        s.readiness_cache = Duration::from_millis(300);
        s.readiness_timeout = Duration::from_millis(500);
    })
    .await;
    let ready = app.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        expect_json(ready, StatusCode::OK).await,
        json!({"status": "ok", "broker": url})
    );

    broker.freeze();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let frozen = app.send(Method::GET, "/readyz", None, None).await;
    let problem = expect_problem(frozen, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(
        problem["detail"],
        format!("broker unreachable: {url} (no CONNACK within 500ms)")
    );
    broker.thaw();

    broker.stop();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let down = app.send(Method::GET, "/readyz", None, None).await;
    let problem = expect_problem(down, StatusCode::SERVICE_UNAVAILABLE).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("broker unreachable: {url} (")) && detail.contains("refused"),
        "{detail}"
    );
    // Cached: the broker coming back is seen only after the cache expires.
    broker.restart();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let back = app.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(back.status(), StatusCode::OK);
}

#[tokio::test]
async fn readyz_names_the_database_when_it_is_gone() {
    let broker = Mosquitto::start();
    let url = broker.url();
    let app = spawn_with(|s| {
        s.mqtt = url.parse().unwrap();
        s.readiness_timeout = Duration::from_millis(500);
    })
    .await;
    app.db.pool.close().await;
    let response = app.send(Method::GET, "/readyz", None, None).await;
    let problem = expect_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["detail"], "database unreachable");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    app.register(&key, "acme", "d1", None).await;
    app.send(Method::GET, "/v1/tenants/acme/devices/d1", Some(&key), None)
        .await;
    app.send(
        Method::GET,
        "/v1/tenants/acme/devices/nope",
        Some(&key),
        None,
    )
    .await;
    app.send(Method::GET, "/no/such/route", None, None).await;
    let response = app.send(Method::GET, "/metrics", None, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    let route = "route=\"/v1/tenants/{tenant_id}/devices/{device_id}\"";
    let count = |status: u16| {
        text.lines()
            .find(|l| {
                l.starts_with("shadowbox_api_requests_total{")
                    && l.contains("method=\"GET\"")
                    && l.contains(route)
                    && l.contains(&format!("status=\"{status}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(|v| v.parse::<f64>().unwrap())
    };
    assert_eq!(count(200), Some(1.0), "{text}");
    assert_eq!(count(404), Some(1.0), "{text}");
    assert!(text.contains("route=\"unmatched\""), "{text}");
    assert!(
        text.contains("shadowbox_api_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"));
}

/// Random methods, sent before any authentication, must not grow
/// `/metrics`: every method outside the standard ones shares the label
/// `other`.
#[tokio::test]
async fn unknown_methods_share_one_metric_label() {
    let app = spawn_app().await;
    let paths = ["/v1/tenants/acme/devices", "/healthz", "/no/such/route"];
    let methods: Vec<Method> = (0..40)
        .map(|_| {
            let name = format!("X{}", uuid::Uuid::new_v4().simple()).to_uppercase();
            Method::from_bytes(name.as_bytes()).unwrap()
        })
        .collect();
    for method in &methods {
        for path in paths {
            let response = app.send(method.clone(), path, None, None).await;
            assert!(response.status().is_client_error(), "{method} {path}");
        }
    }
    let metrics = app.send(Method::GET, "/metrics", None, None).await;
    let text = metrics.text().await.unwrap();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("shadowbox_api_requests_total{"))
        .collect();
    let labels: std::collections::BTreeSet<&str> = series
        .iter()
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect();
    let standard = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    assert!(
        labels.iter().all(|l| *l == "other" || standard.contains(l)),
        "{labels:?}"
    );
    let folded: f64 = series
        .iter()
        .filter(|l| l.contains("method=\"other\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(folded, (methods.len() * paths.len()) as f64, "{text}");
    assert!(series.len() <= paths.len() * 2, "{series:#?}");
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let app = spawn_app().await;
    let doc = expect_json(
        app.send(Method::GET, "/openapi.json", None, None).await,
        StatusCode::OK,
    )
    .await;
    let expected = [
        ("put", "/v1/tenants/{tenant_id}"),
        ("post", "/v1/tenants/{tenant_id}/api-keys"),
        ("post", "/v1/tenants/{tenant_id}/devices"),
        ("get", "/v1/tenants/{tenant_id}/devices"),
        ("get", "/v1/tenants/{tenant_id}/devices/{device_id}"),
        (
            "patch",
            "/v1/tenants/{tenant_id}/devices/{device_id}/desired",
        ),
        ("put", "/v1/tenants/{tenant_id}/devices/{device_id}/desired"),
        ("put", "/v1/tenants/{tenant_id}/devices/{device_id}/tags"),
        (
            "post",
            "/v1/tenants/{tenant_id}/devices/{device_id}/decommission",
        ),
        (
            "get",
            "/v1/tenants/{tenant_id}/devices/{device_id}/deliveries",
        ),
        ("get", "/v1/tenants/{tenant_id}/devices/{device_id}/history"),
        ("post", "/v1/tenants/{tenant_id}/rollouts"),
        ("get", "/v1/tenants/{tenant_id}/rollouts"),
        ("get", "/v1/tenants/{tenant_id}/rollouts/{rollout_id}"),
        (
            "post",
            "/v1/tenants/{tenant_id}/rollouts/{rollout_id}/pause",
        ),
        (
            "post",
            "/v1/tenants/{tenant_id}/rollouts/{rollout_id}/resume",
        ),
        (
            "post",
            "/v1/tenants/{tenant_id}/rollouts/{rollout_id}/cancel",
        ),
        (
            "post",
            "/v1/tenants/{tenant_id}/rollouts/{rollout_id}/rollback",
        ),
        ("get", "/v1/tenants/{tenant_id}/events"),
        ("get", "/v1/tenants/{tenant_id}/outbox"),
        ("post", "/v1/tenants/{tenant_id}/outbox/{id}/retry"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        operations,
        expected.len(),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for (method, path) in expected {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    for schema in ["DeviceView", "OutboxEntry", "Problem"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    // Every reference resolves.
    let text = doc.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling $ref {name}"
        );
    }
}

#[tokio::test]
async fn request_ids_are_set_or_echoed() {
    let app = spawn_app().await;
    let generated = app.send(Method::GET, "/healthz", None, None).await;
    assert_eq!(generated.headers()["x-request-id"].len(), 36);
    let echoed = app
        .request(Method::GET, "/nope", None)
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let app = spawn_app().await;
    app.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), app.server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    assert!(
        app.client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .is_err()
    );
}
