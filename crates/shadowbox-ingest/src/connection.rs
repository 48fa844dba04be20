//! The MQTT side: one task owns the rumqttc `EventLoop` and polls it
//! forever; messages go to the worker through a bounded channel and acks
//! come back through [`Acks`].
//!
//! The session is persistent (`clean_session = false`, stable client id)
//! with manual acks, so a message not acknowledged before a crash or a
//! disconnect is redelivered by the broker.
//!
//! Acks are tied to the connection a message arrived on. After a
//! reconnect the broker resends every unacknowledged message and may reuse
//! a packet id as soon as it is acknowledged, so a late PUBACK carrying a
//! previous connection's packet id could acknowledge a different, not yet
//! committed message. Each connection therefore gets an epoch; an ack is
//! sent only if its message's epoch is the current one, and when a
//! connection ends the epoch moves on and every PUBACK still queued inside
//! rumqttc is discarded ([`EventLoop::clean`]), in one critical section.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use backon::BackoffBuilder as _;
use chrono::{DateTime, Utc};
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS, SubscribeReasonCode,
};
use shadowbox_core::topic::shared_reported_filter;
use tokio::sync::mpsc;

use crate::IngestSettings;
use crate::metrics::IngestMetrics;

/// Messages waiting for the worker. One QoS 1 message per packet id can
/// await our ack, so a broker that honours its in-flight window never
/// fills this; one that does not (Mosquitto 2.0.11 overshoots
/// `max_inflight_messages` under load) briefly pauses the polling task.
const CHANNEL_CAPACITY: usize = u16::MAX as usize;

/// rumqttc's request queue holds our PUBACKs. It must never make the
/// worker wait: the polling task drains it only while it is not itself
/// waiting for the worker, and rumqttc serves buffered incoming packets
/// before queued requests. It holds at most one PUBACK per message
/// received and flume allocates as it fills, so this bound is never
/// reached in practice; if it were, a committed message would go
/// unacknowledged and be redelivered after a reconnect, which is harmless.
const REQUEST_CAPACITY: usize = 1 << 20;

/// The largest packet accepted: the MQTT maximum. rumqttc drops the
/// connection on a larger packet, and the broker would redeliver it
/// forever, so an oversized payload must get through to be refused, counted
/// and acknowledged. Bound memory at the broker (Mosquitto `max_packet_size`).
const MAX_INCOMING_PACKET_BYTES: usize = 268_435_455;

/// We only send SUBSCRIBE, PUBACK, PINGREQ and DISCONNECT.
const MAX_OUTGOING_PACKET_BYTES: usize = 64 * 1024;

/// Keep-alive interval: how fast a dead connection is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// A message as it arrived, waiting for its batch.
#[derive(Debug)]
pub(crate) struct Received {
    /// The MQTT publish, kept for its ack.
    pub publish: Publish,
    /// The connection it arrived on.
    pub epoch: u64,
    /// When it arrived (stored as `last_seen`).
    pub received_at: DateTime<Utc>,
    /// When it arrived, for the lag metric.
    pub since: Instant,
}

/// Sends acks, only for messages of the current connection.
#[derive(Debug, Clone)]
pub(crate) struct Acks {
    client: AsyncClient,
    epoch: Arc<Mutex<u64>>,
}

impl Acks {
    fn current_epoch(&self) -> u64 {
        *self.epoch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the current connection's epoch and discards its queued acks.
    fn end_epoch(&self, eventloop: &mut EventLoop) {
        let mut epoch = self.epoch.lock().unwrap_or_else(PoisonError::into_inner);
        *epoch += 1;
        eventloop.clean();
    }

    /// Queues the PUBACK of `message`, unless it came on an earlier
    /// connection: the broker has redelivered it (or, without a session,
    /// forgotten it), and only the current copy may be acknowledged.
    pub fn ack(&self, message: &Received) {
        let epoch = self.epoch.lock().unwrap_or_else(PoisonError::into_inner);
        if *epoch == message.epoch {
            // Fails only if the event loop is gone (or the queue is full):
            // the broker then redelivers, which is harmless.
            let _ = self.client.try_ack(&message.publish);
        }
    }

    /// Asks the polling task to send DISCONNECT after every queued ack.
    pub async fn disconnect(&self) {
        // Fails only if the polling task is gone: nothing left to close.
        let _ = self.client.disconnect().await;
    }
}

/// The connection to the broker, before its task starts.
pub(crate) struct Connection {
    eventloop: EventLoop,
    acks: Acks,
    messages: mpsc::Sender<Received>,
    filter: String,
    metrics: IngestMetrics,
}

impl Connection {
    /// Prepares the connection; nothing happens until [`Connection::drive`].
    pub fn start(
        settings: &IngestSettings,
        metrics: IngestMetrics,
    ) -> (Self, mpsc::Receiver<Received>) {
        let mut options = MqttOptions::new(
            settings.client_id.clone(),
            settings.broker.host.clone(),
            settings.broker.port,
        );
        options
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(KEEP_ALIVE)
            .set_max_packet_size(MAX_INCOMING_PACKET_BYTES, MAX_OUTGOING_PACKET_BYTES);
        if let Some((user, password)) = &settings.broker.credentials {
            options.set_credentials(user.clone(), password.clone());
        }
        let (client, eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
        let (messages, received) = mpsc::channel(CHANNEL_CAPACITY);
        let connection = Self {
            eventloop,
            acks: Acks {
                client,
                epoch: Arc::default(),
            },
            messages,
            filter: shared_reported_filter(&settings.share_group),
            metrics,
        };
        (connection, received)
    }

    /// The handle the worker acknowledges with.
    pub fn acks(&self) -> Acks {
        self.acks.clone()
    }

    /// Polls the event loop until the worker has asked to disconnect (or is
    /// gone), reconnecting with backoff whenever the connection fails.
    pub async fn drive(mut self) -> anyhow::Result<()> {
        let result = self.poll_until_done().await;
        self.acks.end_epoch(&mut self.eventloop);
        self.metrics.subscribed.set(0);
        result
    }

    async fn poll_until_done(&mut self) -> anyhow::Result<()> {
        let mut delays = crate::retry_policy().build();
        loop {
            match self.eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    self.metrics.pending.inc();
                    let message = Received {
                        publish,
                        epoch: self.acks.current_epoch(),
                        received_at: Utc::now(),
                        since: Instant::now(),
                    };
                    if self.messages.send(message).await.is_err() {
                        return Ok(());
                    }
                }
                Ok(Event::Incoming(Packet::ConnAck(connack))) => {
                    delays = crate::retry_policy().build();
                    tracing::info!(
                        session_present = connack.session_present,
                        "connected to the MQTT broker"
                    );
                    // Without a session the broker forgot the subscription.
                    if connack.session_present {
                        self.metrics.subscribed.set(1);
                    } else {
                        self.acks
                            .client
                            .try_subscribe(self.filter.clone(), QoS::AtLeastOnce)
                            .context("queue the SUBSCRIBE")?;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(suback))) => {
                    if suback
                        .return_codes
                        .iter()
                        .any(|code| matches!(code, SubscribeReasonCode::Failure))
                    {
                        bail!(
                            "the broker refused the subscription to {} (does it support shared subscriptions?)",
                            self.filter
                        );
                    }
                    self.metrics.subscribed.set(1);
                    tracing::info!(filter = %self.filter, "subscribed");
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return Ok(()),
                Ok(_) => {}
                Err(error) => {
                    self.metrics.subscribed.set(0);
                    self.acks.end_epoch(&mut self.eventloop);
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(
                        %error,
                        retry_in_ms = delay.as_millis() as u64,
                        "MQTT connection failed; unacknowledged messages will be redelivered"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}
