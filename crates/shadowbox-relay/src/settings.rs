//! The relay's settings.

use std::time::Duration;

use shadowbox_db::relay::RetryPolicy;
use shadowbox_mqtt::MqttConfig;

/// Publishes awaiting their PUBACK at once unless told otherwise (under
/// MQTT 5 the broker's receive maximum may lower it).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 2000;

/// The largest PUBLISH packet unless told otherwise: 1 MiB, far above a
/// 64 KiB document and its envelope.
pub const DEFAULT_MAX_PACKET_BYTES: u32 = 1 << 20;

/// How a relay runs.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// The brokers, protocol and TLS.
    pub mqtt: MqttConfig,
    /// MQTT client id; unique per replica.
    pub client_id: String,
    /// Concurrent batches (each holds one database connection while its
    /// publishes are in flight).
    pub workers: usize,
    /// Most devices (so rows) per batch.
    pub batch_size: usize,
    /// Most publishes awaiting their PUBACK on the connection.
    pub max_in_flight: usize,
    /// Largest PUBLISH packet sent: a row whose packet would be larger is
    /// dead-lettered without being sent. Under MQTT 5 the broker's
    /// maximum packet size (CONNACK) lowers it; under 3.1.1 set it to the
    /// broker's limit (Mosquitto `max_packet_size`), which a 3.1.1 broker
    /// enforces by dropping the connection.
    pub max_packet_bytes: u32,
    /// A PUBACK later than this fails every unacknowledged publish and
    /// drops the connection.
    pub ack_timeout: Duration,
    /// How often idle workers look for due rows without a notification
    /// (missed notifications, and retries coming due).
    pub poll_interval: Duration,
    /// Backoff and dead-lettering of publishes the broker refused.
    pub retry: RetryPolicy,
    /// How long after an interrupted publish the device's current state is
    /// published once more. The interrupted bytes may still reach the
    /// broker after the device was released (e.g. retransmitted after a
    /// network partition heals) and retain an older version; the broker
    /// drops a silent connection after 1.5 keep-alive periods (15 s here),
    /// so a later publish has the last word.
    pub republish_after_interruption: Duration,
    /// Finished rows older than this are deleted; `None` keeps them all.
    pub retention: Option<Duration>,
    /// How often the retention job runs.
    pub retention_interval: Duration,
}

impl RelaySettings {
    /// Defaults suited to one broker on a LAN, for the brokers of `mqtt`.
    pub fn new(mqtt: MqttConfig) -> Self {
        Self {
            mqtt,
            client_id: format!("shadowbox-relay-{}", uuid::Uuid::new_v4().simple()),
            workers: 4,
            batch_size: 500,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_packet_bytes: DEFAULT_MAX_PACKET_BYTES,
            ack_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(500),
            retry: RetryPolicy {
                base_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(300),
                max_attempts: 10,
            },
            republish_after_interruption: Duration::from_secs(30),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            retention_interval: Duration::from_secs(600),
        }
    }

    /// How many due rows a batch looks at to find `batch_size` devices no
    /// other batch holds: enough to step over the batches of this relay's
    /// other workers and of a few replicas.
    pub fn claim_window(&self) -> i64 {
        (self.batch_size * 16) as i64
    }
}
