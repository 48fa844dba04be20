//! What every ingester test uses: a running ingester with its metrics, a
//! publishing device fleet, device setup and bounded waits.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::future::Future;
use std::time::Duration;

use prometheus_client::registry::Registry;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use shadowbox_core::topic::{ShadowTopicKind, shadow_topic};
use shadowbox_core::{DeviceId, DocumentLimits, TenantId};
use shadowbox_db::devices::{DeviceRecord, get_device, register_device};
use shadowbox_ingest::{IngestMetrics, IngestSettings, run};
use shadowbox_mqtt::{MqttConfig, Protocol};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Logs to the test output (`RUST_LOG` to see more).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
}

/// Settings for a test ingester: short batch wait, unique client id.
pub fn settings(broker_url: &str, client_id: &str) -> IngestSettings {
    settings_in(Protocol::V5, broker_url, client_id)
}

/// [`settings`], speaking `protocol`.
pub fn settings_in(protocol: Protocol, broker_url: &str, client_id: &str) -> IngestSettings {
    let mqtt: MqttConfig = broker_url.parse().unwrap();
    let mut settings = IngestSettings::new(mqtt.with_protocol(protocol), client_id);
    settings.batch_wait = Duration::from_millis(10);
    settings
}

/// A client id no other test uses.
pub fn client_id(name: &str) -> String {
    format!("ingest-{name}-{}", uuid::Uuid::new_v4().simple())
}

/// An ingester running in a task, with its own metrics registry.
pub struct Ingester {
    registry: Registry,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Ingester {
    /// Starts the ingester and waits until its subscription is in place.
    pub async fn start(settings: IngestSettings, pool: PgPool) -> Self {
        let mut registry = Registry::default();
        let metrics = IngestMetrics::register(&mut registry);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(settings, pool, metrics, shutdown.clone()));
        let ingester = Self {
            registry,
            shutdown,
            task,
        };
        ingester
            .wait_metric("shadowbox_ingest_subscribed", 1.0)
            .await;
        ingester
    }

    /// The value of one series, as a scraper reads it (0 if absent).
    pub fn metric(&self, series: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines()
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == series).then(|| value.parse().unwrap())
            })
            .unwrap_or(0.0)
    }

    /// `shadowbox_ingest_messages_total{result="<result>"}`.
    pub fn messages(&self, result: &str) -> f64 {
        self.metric(&format!(
            "shadowbox_ingest_messages_total{{result=\"{result}\"}}"
        ))
    }

    /// `shadowbox_ingest_invalid_messages_total{reason="<reason>"}`.
    pub fn invalid(&self, reason: &str) -> f64 {
        self.metric(&format!(
            "shadowbox_ingest_invalid_messages_total{{reason=\"{reason}\"}}"
        ))
    }

    /// Waits until `series` reads `value`.
    pub async fn wait_metric(&self, series: &str, value: f64) {
        eventually(&format!("{series} == {value}"), || async {
            self.metric(series) == value
        })
        .await;
    }

    /// Cancels the token and waits (bounded) for a clean return.
    pub async fn stop(self) -> Registry {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the ingester stops within 20 s")
            .expect("the ingester task does not panic")
            .expect("the ingester returns Ok");
        self.registry
    }

    /// Kills the ingester as a crash would: no flush, no ack, no DISCONNECT.
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Polls `check` for up to 30 s (the testkit's bounded wait).
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    shadowbox_testkit::eventually(Duration::from_secs(30), what, check).await;
}

/// A device's reported topic.
pub fn reported_topic(tenant: &str, device: &str) -> String {
    shadow_topic(
        &TenantId::parse(tenant).unwrap(),
        &DeviceId::parse(device).unwrap(),
        ShadowTopicKind::Reported,
    )
}

/// A reported payload.
pub fn reported(doc: Value, version: i64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"reported": doc, "version": version})).unwrap()
}

/// Creates the tenant (if needed) and registers `devices` in it.
pub async fn register(pool: &PgPool, tenant: &str, devices: impl IntoIterator<Item = String>) {
    let tenant = TenantId::parse(tenant).unwrap();
    shadowbox_db::tenants::create_tenant(pool, &tenant)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    for device in devices {
        register_device(
            &mut conn,
            &tenant,
            &DeviceId::parse(device).unwrap(),
            None,
            &DocumentLimits::default(),
        )
        .await
        .unwrap();
    }
}

/// A device's row.
pub async fn device(pool: &PgPool, tenant: &str, device: &str) -> DeviceRecord {
    get_device(
        pool,
        &TenantId::parse(tenant).unwrap(),
        &DeviceId::parse(device).unwrap(),
    )
    .await
    .unwrap()
    .expect("the device exists")
}

/// Waits until the device's `reported_version` is `version`.
pub async fn wait_version(pool: &PgPool, tenant: &str, id: &str, version: i64) {
    eventually(&format!("{tenant}/{id} at version {version}"), || async {
        device(pool, tenant, id).await.reported_version == version
    })
    .await;
}

/// A device-side publisher (clean session, QoS 1).
pub struct Publisher {
    client: AsyncClient,
    pubacks: mpsc::UnboundedReceiver<()>,
    task: JoinHandle<()>,
}

impl Publisher {
    /// Connects to `broker_url` (`mqtt://host:port`).
    pub async fn connect(broker_url: &str) -> Self {
        let port: u16 = broker_url.rsplit_once(':').unwrap().1.parse().unwrap();
        let mut options = MqttOptions::new(client_id("publisher"), "127.0.0.1", port);
        options
            .set_inflight(1000)
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        let (connected_tx, mut connected) = mpsc::unbounded_channel();
        let (puback_tx, pubacks) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = connected_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        let _ = puback_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), connected.recv())
            .await
            .expect("the publisher connects");
        Self {
            client,
            pubacks,
            task,
        }
    }

    /// Publishes every message at QoS 1 and waits for all their PUBACKs.
    pub async fn publish_all(&mut self, messages: impl IntoIterator<Item = (String, Vec<u8>)>) {
        let mut sent = 0;
        for (topic, payload) in messages {
            self.client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap();
            sent += 1;
        }
        for _ in 0..sent {
            tokio::time::timeout(Duration::from_secs(30), self.pubacks.recv())
                .await
                .expect("the broker acknowledges every publish");
        }
    }

    /// Publishes one message and waits for its PUBACK.
    pub async fn publish(&mut self, topic: impl Into<String>, payload: impl Into<Vec<u8>>) {
        self.publish_all([(topic.into(), payload.into())]).await;
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
