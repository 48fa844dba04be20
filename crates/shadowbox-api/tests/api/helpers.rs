//! `spawn_app()`: one fresh database and one server per test.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use shadowbox_api::{ApiMetrics, ApiSettings, AppState};
use shadowbox_testkit::{TestDb, free_port};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The admin token every test app uses (unless it disables admin).
pub const ADMIN: &str = "test-admin-token";

/// A running API.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Its database.
    pub db: TestDb,
    /// A client.
    pub client: reqwest::Client,
    /// Stops the server.
    pub shutdown: CancellationToken,
    /// The server task.
    pub server: JoinHandle<anyhow::Result<()>>,
}

/// An app with the default settings, the admin token [`ADMIN`] and a
/// broker address on a closed port (tests of `/readyz` set their own).
pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// An app whose settings `configure` adjusts.
pub async fn spawn_with(configure: impl FnOnce(&mut ApiSettings)) -> TestApp {
    let db = TestDb::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let broker = format!("mqtt://127.0.0.1:{}", free_port()).parse().unwrap();
    let mut settings = ApiSettings::new(addr, broker);
    settings.admin_token = Some(ADMIN.to_owned());
    configure(&mut settings);
    let mut registry = Registry::default();
    let metrics = ApiMetrics::register(&mut registry);
    let state = AppState::new(db.pool.clone(), settings, Arc::new(registry), metrics);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(shadowbox_api::serve(listener, state, shutdown.clone()));
    TestApp {
        base: format!("http://{addr}"),
        db,
        client: reqwest::Client::new(),
        shutdown,
        server,
    }
}

impl TestApp {
    /// A request to `path` with `token` as bearer, if any.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a JSON body (or none) and returns the response.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let request = self.request(method, path, token);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        request.send().await.unwrap()
    }

    /// Sends as admin and expects `status`; returns the JSON body.
    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
    ) -> Value {
        expect_json(self.send(method, path, Some(ADMIN), body).await, status).await
    }

    /// Creates `tenant` and returns a key of it.
    pub async fn tenant_with_key(&self, tenant: &str) -> String {
        self.admin(
            Method::PUT,
            &format!("/v1/tenants/{tenant}"),
            None,
            StatusCode::CREATED,
        )
        .await;
        let key = self
            .admin(
                Method::POST,
                &format!("/v1/tenants/{tenant}/api-keys"),
                None,
                StatusCode::CREATED,
            )
            .await;
        key["secret"].as_str().unwrap().to_owned()
    }

    /// Registers `device` in `tenant` with `token`, optionally with a
    /// desired document.
    pub async fn register(
        &self,
        token: &str,
        tenant: &str,
        device: &str,
        desired: Option<Value>,
    ) -> Value {
        let mut body = serde_json::json!({ "device_id": device });
        if let Some(desired) = desired {
            body["desired"] = desired;
        }
        let response = self
            .send(
                Method::POST,
                &format!("/v1/tenants/{tenant}/devices"),
                Some(token),
                Some(body),
            )
            .await;
        expect_json(response, StatusCode::CREATED).await
    }
}

/// Asserts `status` and returns the JSON body.
pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(actual, status, "body: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Asserts a problem+json response with `status` and returns its body.
pub async fn expect_problem(response: Response, status: StatusCode) -> Value {
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let problem = expect_json(response, status).await;
    assert_eq!(
        content_type.as_deref(),
        Some("application/problem+json"),
        "{problem}"
    );
    assert_eq!(problem["status"], status.as_u16(), "{problem}");
    for field in ["type", "title", "detail"] {
        assert!(
            problem[field].as_str().is_some_and(|s| !s.is_empty()),
            "no {field}: {problem}"
        );
    }
    problem
}
