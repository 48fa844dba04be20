//! The relay's settings and their defaults, each written once here and
//! used by the command line's defaults too.

use std::time::Duration;

use shadowbox_core::backoff::RefusalBackoff;
use shadowbox_mqtt::MqttConfig;

/// Concurrent batches unless told otherwise.
pub const DEFAULT_WORKERS: usize = 4;

/// Devices per batch unless told otherwise. Larger batches spread the
/// claim's and the commit's cost over more rows (BENCHMARKS.md, drain: one
/// row per device 45-47k rows/s at 500, 52-54k at 1000, 55-61k at 2000);
/// a batch holds its rows' payloads in memory, at most workers x batch x
/// the document limit.
pub const DEFAULT_BATCH_SIZE: usize = 1000;

/// Publishes awaiting their PUBACK at once unless told otherwise (under
/// MQTT 5 the broker's receive maximum may lower it).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 2000;

/// The largest PUBLISH packet unless told otherwise: 1 MiB, far above a
/// 64 KiB document and its envelope.
pub const DEFAULT_MAX_PACKET_BYTES: u32 = 1 << 20;

/// How long a PUBACK may take unless told otherwise.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// How often idle workers look for due rows unless told otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Refusals before a row is `dead`, unless told otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 10;

/// The refusal backoff's first delay unless told otherwise.
pub const DEFAULT_REFUSAL_BACKOFF_BASE: Duration = Duration::from_secs(1);

/// The refusal backoff's longest delay unless told otherwise.
pub const DEFAULT_REFUSAL_BACKOFF_MAX: Duration = Duration::from_secs(5 * 60);

/// How long after an interrupted publish the device is published again,
/// unless told otherwise: past the broker's keep-alive grace (1.5 times
/// the publisher's 15 s keep-alive), so the broker has dropped the
/// interrupted connection by then.
pub const DEFAULT_REPUBLISH_AFTER: Duration = Duration::from_secs(30);

/// How often the relay reconciles the broker's retained state with the
/// database unless told otherwise (also after every reconnect).
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// Most device topics a reconcile pass reads from the broker at once
/// unless told otherwise: half of Debian's Mosquitto `max_queued_messages`
/// (1000), so a read's retained burst and the live publishes meanwhile fit
/// in the broker's queue for the reading client.
pub const DEFAULT_RECONCILE_SLICE: usize = 500;

/// How long finished rows are kept unless told otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long desired history is kept unless told otherwise.
pub const DEFAULT_HISTORY_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long events are kept (the event stream's resume window) unless
/// told otherwise.
pub const DEFAULT_EVENTS_RETENTION: Duration = Duration::from_secs(3600);

/// How often the retention job runs.
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(10 * 60);

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
    /// (missed notifications, and refused rows coming due).
    pub poll_interval: Duration,
    /// The refusal backoff of publishes the broker refused, and when such
    /// a row becomes `dead`.
    pub refusal_backoff: RefusalBackoff,
    /// How long after an interrupted publish the device's current state is
    /// published once more. The interrupted bytes may still reach the
    /// broker after the device was released (e.g. retransmitted after a
    /// network partition heals) and retain an older version; the broker
    /// drops a silent connection after 1.5 keep-alive periods (the
    /// publisher's `KEEP_ALIVE`), so a later publish has the last word.
    pub republish_after_interruption: Duration,
    /// Finished rows older than this are deleted; `None` keeps them all.
    pub retention: Option<Duration>,
    /// Desired history committed longer ago than this is deleted; `None`
    /// keeps it all.
    pub history_retention: Option<Duration>,
    /// Events older than this are deleted: a stream can resume from an id
    /// at most this old. `None` keeps them all.
    pub events_retention: Option<Duration>,
    /// How often the retention job runs.
    pub retention_interval: Duration,
    /// How often the broker's retained desired messages are reconciled
    /// with the database (also after every reconnect); `None`: never.
    pub reconcile_interval: Option<Duration>,
    /// Most device topics read from the broker at once; at most half the
    /// broker's queue limit for one client (Mosquitto `max_queued_messages`).
    pub reconcile_slice: usize,
}

impl RelaySettings {
    /// Settings for the brokers of `mqtt` with a random client id and every
    /// other value at its default.
    pub fn new(mqtt: MqttConfig) -> Self {
        Self {
            mqtt,
            client_id: format!("shadowbox-relay-{}", uuid::Uuid::new_v4().simple()),
            workers: DEFAULT_WORKERS,
            batch_size: DEFAULT_BATCH_SIZE,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_packet_bytes: DEFAULT_MAX_PACKET_BYTES,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
            refusal_backoff: RefusalBackoff {
                base_delay: DEFAULT_REFUSAL_BACKOFF_BASE,
                max_delay: DEFAULT_REFUSAL_BACKOFF_MAX,
                max_attempts: DEFAULT_MAX_ATTEMPTS,
            },
            republish_after_interruption: DEFAULT_REPUBLISH_AFTER,
            retention: Some(DEFAULT_RETENTION),
            history_retention: Some(DEFAULT_HISTORY_RETENTION),
            events_retention: Some(DEFAULT_EVENTS_RETENTION),
            retention_interval: DEFAULT_RETENTION_INTERVAL,
            reconcile_interval: Some(DEFAULT_RECONCILE_INTERVAL),
            reconcile_slice: DEFAULT_RECONCILE_SLICE,
        }
    }

    /// How many due rows a batch looks at to find `batch_size` devices no
    /// other batch holds: enough to step over the batches of this relay's
    /// other workers and of a few replicas.
    pub fn claim_window(&self) -> i64 {
        (self.batch_size * 16) as i64
    }
}
