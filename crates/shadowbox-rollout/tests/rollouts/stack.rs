//! The whole loop for a rollout test: a fresh database, a private
//! Mosquitto, the API on a real socket, a relay, an ingester, simulated
//! devices and wave machines, each in a task of the test.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shadowbox_api::{ApiMetrics, ApiSettings, AppState};
use shadowbox_core::TenantId;
use shadowbox_ingest::{IngestMetrics, IngestSettings};
use shadowbox_relay::{RelayMetrics, RelaySettings};
use shadowbox_rollout::{RolloutMetrics, RolloutSettings};
use shadowbox_sim::{SimSettings, SimStats, device_ids};
use shadowbox_testkit::mqtt::unique_client_id;
use shadowbox_testkit::{Fleet, Mosquitto, Running, TestDb, eventually};
use tokio_util::sync::CancellationToken;

/// The admin token of the test API.
const ADMIN: &str = "rollout-admin";

/// How long a rollout of a test gets to finish.
pub const ROLLOUT_PATIENCE: Duration = Duration::from_secs(90);

/// A running stack with `fleet` registered (tenant `acme`, devices
/// `sim-00000`...).
pub struct Stack {
    pub db: TestDb,
    pub broker: Mosquitto,
    pub fleet: Fleet,
    base: String,
    http: reqwest::Client,
    api_stop: CancellationToken,
    _relay: Running,
    _ingest: Running,
}

impl Stack {
    /// Starts everything but the simulator and the wave machine, with
    /// `count` devices, each with its own desired document
    /// `{"rate": <i>}` at version 1.
    pub async fn start(count: usize) -> Self {
        let db = TestDb::new().await;
        let broker = Mosquitto::start();
        let ids = device_ids("sim", count).unwrap();
        let fleet = Fleet::register_ids(&db.pool, "acme", ids.iter().map(|d| d.to_string())).await;
        for i in 0..count {
            fleet.patch(i, json!({"rate": i})).await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut settings = ApiSettings::new(addr, broker.url().parse().unwrap());
        settings.admin_token = Some(ADMIN.to_owned());
        let mut registry = Registry::default();
        let metrics = ApiMetrics::register(&mut registry);
        let state = AppState::new(db.pool.clone(), settings, Arc::new(registry), metrics);
        let api_stop = CancellationToken::new();
        tokio::spawn(shadowbox_api::serve(listener, state, api_stop.clone()));

        let mut relay_settings = RelaySettings::new(broker.url().parse().unwrap());
        relay_settings.client_id = unique_client_id("rollout-relay");
        let pool = db.pool.clone();
        let relay = Running::start(|registry, shutdown| {
            shadowbox_relay::run(
                relay_settings,
                pool,
                RelayMetrics::register(registry),
                shutdown,
            )
        });
        let mut ingest_settings = IngestSettings::new(
            broker.url().parse().unwrap(),
            unique_client_id("rollout-ingest"),
        );
        ingest_settings.share_group = unique_client_id("rollout");
        ingest_settings.batch_wait = Duration::from_millis(10);
        let pool = db.pool.clone();
        let ingest = Running::start(|registry, shutdown| {
            shadowbox_ingest::run(
                ingest_settings,
                pool,
                IngestMetrics::register(registry),
                shutdown,
            )
        });
        ingest.wait_metric("shadowbox_ingest_subscribed", 1.0).await;
        Self {
            db,
            broker,
            fleet,
            base: format!("http://{addr}/v1/tenants/acme"),
            http: reqwest::Client::new(),
            api_stop,
            _relay: relay,
            _ingest: ingest,
        }
    }

    /// Starts simulated devices for every device of the fleet, adjusted by
    /// `configure`.
    pub fn simulate(&self, configure: impl FnOnce(&mut SimSettings)) -> Running<SimStats> {
        let mut settings = SimSettings::new(
            self.broker.url().parse().unwrap(),
            TenantId::parse("acme").unwrap(),
            self.fleet.devices.clone(),
        );
        configure(&mut settings);
        Running::start(|_, shutdown| shadowbox_sim::run(settings, shutdown))
    }

    /// Starts a wave machine (chunks of `chunk_size`, polling every 100 ms).
    pub fn machine(&self, chunk_size: i64) -> Running {
        self.machine_polling(chunk_size, Duration::from_millis(100))
    }

    /// Starts a wave machine with chunks of `chunk_size` that polls every
    /// `poll_interval`.
    pub fn machine_polling(&self, chunk_size: i64, poll_interval: Duration) -> Running {
        let settings = RolloutSettings {
            chunk_size,
            poll_interval,
            ..RolloutSettings::default()
        };
        let pool = self.db.pool.clone();
        Running::start(|registry, shutdown| {
            shadowbox_rollout::run(settings, pool, RolloutMetrics::register(registry), shutdown)
        })
    }

    /// Sends `method` to `path` (under the tenant) as admin and expects
    /// `status`; returns the JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
    ) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let actual = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(actual, status, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Creates a rollout; returns it.
    pub async fn create(&self, body: Value) -> Value {
        self.call(Method::POST, "/rollouts", Some(body), StatusCode::CREATED)
            .await
    }

    /// Reads rollout `id`.
    pub async fn rollout(&self, id: i64) -> Value {
        self.call(
            Method::GET,
            &format!("/rollouts/{id}"),
            None,
            StatusCode::OK,
        )
        .await
    }

    /// Waits until rollout `id` has `status` (and, rolled back, its
    /// rollback finished); returns it.
    pub async fn wait_status(&self, id: i64, status: &str) -> Value {
        eventually(
            ROLLOUT_PATIENCE,
            &format!("rollout {id} {status}"),
            || async {
                let rollout = self.rollout(id).await;
                rollout["status"] == status
                    && (status != "rolled_back" || !rollout["rollback"]["finished_at"].is_null())
            },
        )
        .await;
        self.rollout(id).await
    }

    /// `(device, desired document, desired version)` of every device.
    pub async fn desired(&self) -> Vec<(String, Value, i64)> {
        sqlx::query_as(
            "SELECT device_id, desired_state, desired_version FROM device_state ORDER BY device_id",
        )
        .fetch_all(&self.db.pool)
        .await
        .unwrap()
    }

    /// Devices and the outcome the rollout recorded for them.
    pub async fn outcomes(&self, id: i64) -> Vec<(String, Option<String>)> {
        sqlx::query_as(
            "SELECT device_id, outcome FROM rollout_devices WHERE rollout_id = $1 ORDER BY device_id",
        )
        .bind(id)
        .fetch_all(&self.db.pool)
        .await
        .unwrap()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.api_stop.cancel();
    }
}
