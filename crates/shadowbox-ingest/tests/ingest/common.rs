//! What every ingester test (and the ingest bench) uses besides the
//! testkit: a running ingester, and reported messages as devices send them.

use std::time::Duration;

use serde_json::Value;
use shadowbox_core::topic::{ShadowTopicKind, shadow_topic};
use shadowbox_core::{DeviceId, TenantId};
use shadowbox_ingest::{IngestMetrics, IngestSettings};
use shadowbox_mqtt::{MqttConfig, Protocol};
use shadowbox_testkit::Running;
use sqlx::PgPool;

/// Settings for a test ingester (MQTT 5): short batch wait, the given
/// client id.
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

/// Starts an ingester in a task, with its own metrics, and waits until its
/// subscription is in place.
pub async fn start(settings: IngestSettings, pool: PgPool) -> Running {
    let ingester = Running::start(|registry, shutdown| {
        shadowbox_ingest::run(settings, pool, IngestMetrics::register(registry), shutdown)
    });
    ingester
        .wait_metric("shadowbox_ingest_subscribed", 1.0)
        .await;
    ingester
}

/// `shadowbox_ingest_messages_total{result="<result>"}` of `ingester`.
pub fn message_count(ingester: &Running, result: &str) -> f64 {
    ingester.metric(&format!(
        "shadowbox_ingest_messages_total{{result=\"{result}\"}}"
    ))
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
