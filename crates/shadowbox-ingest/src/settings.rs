//! What an ingester is told: the broker, its session, its batches.

use std::time::Duration;

use shadowbox_core::DocumentLimits;
use shadowbox_core::broker::BrokerAddress;

/// The shared-subscription group ingesters join unless told otherwise.
pub const DEFAULT_SHARE_GROUP: &str = "shadowbox";

/// Messages per batch unless told otherwise. Keep it below the broker's
/// per-client in-flight window (Mosquitto `max_inflight_messages`): a
/// broker that honours it sends no more unacknowledged messages than that,
/// and nothing is acknowledged before its batch commits, so a larger batch
/// only ever fills up to the window and then waits for `batch_wait`.
pub const DEFAULT_BATCH_SIZE: usize = 500;

/// How long a batch waits for more messages after its first one, unless
/// told otherwise.
pub const DEFAULT_BATCH_WAIT: Duration = Duration::from_millis(20);

/// The ingester's configuration.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// The MQTT broker (`MQTT_URL`).
    pub broker: BrokerAddress,
    /// The MQTT client id. It must be stable across restarts and unique
    /// per replica: the broker keeps the persistent session (and the
    /// messages queued while the ingester is away) under this id.
    pub client_id: String,
    /// The shared-subscription group (`$share/<group>/...`); replicas in
    /// the same group split the traffic.
    pub share_group: String,
    /// Most messages per batch (at least 1).
    pub batch_size: usize,
    /// Longest wait for a batch to fill after its first message.
    pub batch_wait: Duration,
    /// Limits a reported document must respect.
    pub limits: DocumentLimits,
}

impl IngestSettings {
    /// Settings for `client_id` on `broker`, with every other value at its
    /// default.
    pub fn new(broker: BrokerAddress, client_id: impl Into<String>) -> Self {
        Self {
            broker,
            client_id: client_id.into(),
            share_group: DEFAULT_SHARE_GROUP.to_owned(),
            batch_size: DEFAULT_BATCH_SIZE,
            batch_wait: DEFAULT_BATCH_WAIT,
            limits: DocumentLimits::default(),
        }
    }
}
