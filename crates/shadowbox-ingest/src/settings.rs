//! What an ingester is told: the broker, its session, its batches.

use std::time::Duration;

use shadowbox_core::DocumentLimits;
use shadowbox_mqtt::MqttConfig;

/// The shared-subscription group ingesters join unless told otherwise.
pub const DEFAULT_SHARE_GROUP: &str = "shadowbox";

/// Messages per batch unless told otherwise. Nothing is acknowledged
/// before its batch commits, so the broker must let enough messages be
/// unacknowledged at once: under MQTT 5 the ingester announces a receive
/// maximum of [`IngestSettings::receive_maximum`]; under 3.1.1 the
/// broker's per-client in-flight window (Mosquitto
/// `max_inflight_messages`) should hold at least that much, or batches
/// fill only up to the window and then wait for `batch_wait`.
pub const DEFAULT_BATCH_SIZE: usize = 500;

/// Batches written at once unless told otherwise. Each device's reports
/// always go to the same writer, in the order they came, so writers never
/// wait on each other's rows.
pub const DEFAULT_WRITERS: usize = 2;

/// Batches each writer may have arriving while it writes one: the
/// receive maximum leaves room for the next batch of every writer.
const BATCHES_IN_FLIGHT_PER_WRITER: usize = 2;

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
    /// Batches written at once (at least 1), each device always by the
    /// same writer.
    pub writers: usize,
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
            writers: DEFAULT_WRITERS,
            limits: DocumentLimits::default(),
        }
    }
}

impl IngestSettings {
    /// The receive maximum announced under MQTT 5 ([`receive_maximum`]).
    pub fn receive_maximum(&self) -> u16 {
        receive_maximum(self.batch_size, self.writers)
    }

    /// Messages that may wait for one writer: the whole receive maximum,
    /// so a broker that keeps to it never blocks the polling task however
    /// the messages fall on the writers (a blocked task sends no acks and
    /// no pings). One that sends more than it was allowed (Mosquitto 2.0.11
    /// does under load) pauses it instead of filling memory: a queue of
    /// 65,535 per writer took serve's peak RSS from 64 to 88 MiB in the
    /// ingest figure.
    pub fn writer_queue(&self) -> usize {
        usize::from(self.receive_maximum())
    }
}

/// The receive maximum an ingester with batches of `batch_size` and
/// `writers` writers announces under MQTT 5: the messages the broker may
/// send before the first of them is acknowledged, room for every
/// writer's batch in hand and its next one.
pub fn receive_maximum(batch_size: usize, writers: usize) -> u16 {
    let messages = batch_size.max(1) * writers.max(1) * BATCHES_IN_FLIGHT_PER_WRITER;
    u16::try_from(messages).unwrap_or(u16::MAX)
}
