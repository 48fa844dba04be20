//! What an ingester is told: the broker, its session, its batches.

use std::time::Duration;

use shadowbox_core::DocumentLimits;
use shadowbox_mqtt::MqttConfig;

/// The shared-subscription group ingesters join unless told otherwise.
pub const DEFAULT_SHARE_GROUP: &str = "shadowbox";

/// Messages per batch unless told otherwise. Under MQTT 5 it is also the
/// receive maximum the ingester announces: the broker sends no more
/// unacknowledged messages than that. Under 3.1.1 keep it below the
/// broker's per-client in-flight window (Mosquitto
/// `max_inflight_messages`): nothing is acknowledged before its batch
/// commits, so a larger batch only ever fills up to the window and then
/// waits for `batch_wait`.
pub const DEFAULT_BATCH_SIZE: usize = 500;

/// How long a batch waits for more messages after its first one, unless
/// told otherwise.
pub const DEFAULT_BATCH_WAIT: Duration = Duration::from_millis(20);

/// How long the broker keeps a disconnected ingester's session unless told
/// otherwise (MQTT 5): long enough for a restart or a rolling upgrade,
/// short enough that a retired ingester's share of the reports goes back
/// to the others within the hour.
pub const DEFAULT_SESSION_EXPIRY: Duration = Duration::from_secs(3600);

/// The ingester's configuration.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// The brokers, protocol and TLS.
    pub mqtt: MqttConfig,
    /// The MQTT client id. It must be stable across restarts and unique
    /// per replica: the broker keeps the persistent session (and the
    /// messages queued while the ingester is away) under this id.
    pub client_id: String,
    /// The shared-subscription group (`$share/<group>/...`); replicas in
    /// the same group split the traffic. Empty: a plain subscription, for
    /// brokers without shared subscriptions (one ingester only, or each
    /// report is written once per ingester).
    pub share_group: String,
    /// MQTT 5: how long the broker keeps the session (and queues reports
    /// for it) after the ingester disconnected.
    pub session_expiry: Duration,
    /// Most messages per batch (at least 1).
    pub batch_size: usize,
    /// Longest wait for a batch to fill after its first message.
    pub batch_wait: Duration,
    /// Limits a reported document must respect.
    pub limits: DocumentLimits,
}

impl IngestSettings {
    /// Settings for `client_id` on the brokers of `mqtt`, with every other
    /// value at its default.
    pub fn new(mqtt: MqttConfig, client_id: impl Into<String>) -> Self {
        Self {
            mqtt,
            client_id: client_id.into(),
            share_group: DEFAULT_SHARE_GROUP.to_owned(),
            session_expiry: DEFAULT_SESSION_EXPIRY,
            batch_size: DEFAULT_BATCH_SIZE,
            batch_wait: DEFAULT_BATCH_WAIT,
            limits: DocumentLimits::default(),
        }
    }
}
