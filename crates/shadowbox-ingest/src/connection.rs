//! The MQTT side: one task owns the event loop and polls it forever;
//! messages go to the writers through bounded channels, each device's
//! always to the same writer, and acks come back through [`Acks`], which
//! sends them in the order the messages came (MQTT 4.6), whichever writer
//! commits first.
//!
//! The session is persistent (no clean start, stable client id) with
//! manual acks, so a message not acknowledged before a crash or a
//! disconnect is redelivered by the broker. Under MQTT 5 the session
//! expires `session_expiry` after a disconnect (so a retired ingester
//! stops taking its share of the reports by itself), and the receive
//! maximum ([`IngestSettings::receive_maximum`]) bounds what the broker
//! sends unacknowledged.
//!
//! A committed message's ack waits in a line of its own, a few bytes each,
//! and at most [`ACKS_HANDED`] are in the client's request queue at once:
//! rumqttc serves its request queue once for every read of up to ten
//! incoming packets, so while reports stream in, acks wait; a broker that
//! keeps sending beyond the receive maximum (Mosquitto 2.0 was measured
//! sending 140,000 unacknowledged messages) would otherwise fill the
//! request queue with a full request for each, tens of megabytes.
//!
//! Acks are tied to the connection a message arrived on. After a
//! reconnect the broker resends every unacknowledged message and may reuse
//! a packet id as soon as it is acknowledged, so a late PUBACK carrying a
//! previous connection's packet id could acknowledge a different, not yet
//! committed message. Each connection therefore gets an epoch; an ack is
//! sent only if its message's epoch is the current one, and when a
//! connection ends the epoch moves on and every PUBACK still queued for it
//! is discarded (the event loop is cleaned and replaced), in one critical
//! section.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::{DateTime, Utc};
use shadowbox_core::topic::{REPORTED_FILTER, shared_reported_filter};
use shadowbox_mqtt::{Ack, Client, Event, EventLoop, Failover, Message, SessionOptions};
use tokio::sync::mpsc;

use crate::IngestSettings;
use crate::metrics::IngestMetrics;

/// The client's request queue holds our PUBACKs. It must never make the
/// worker wait: the polling task drains it only while it is not itself
/// waiting for the worker. It holds at most [`ACKS_HANDED`] acks, except
/// on a clean disconnect, when every due ack goes ahead of the DISCONNECT;
/// flume allocates as it fills. Were it full, a committed message would
/// go unacknowledged and be redelivered after a reconnect, which is
/// harmless.
const REQUEST_CAPACITY: usize = 1 << 20;

/// Acks in the client's request queue at once; the rest wait in
/// [`Current::due`], a few bytes each. Enough that the queue never runs
/// dry between two of the polling task's turns.
const ACKS_HANDED: usize = 256;

/// The largest packet accepted: the MQTT maximum. A larger packet drops
/// the connection, and the broker would redeliver it forever, so an
/// oversized payload must get through to be refused, counted and
/// acknowledged. Bound memory at the broker (Mosquitto `max_packet_size`).
const MAX_INCOMING_PACKET_BYTES: u32 = shadowbox_mqtt::client::MQTT_MAX_PACKET_BYTES;

/// We only send SUBSCRIBE, PUBACK, PINGREQ and DISCONNECT.
const MAX_OUTGOING_PACKET_BYTES: u32 = 64 * 1024;

/// Keep-alive interval: how fast a dead connection is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// A message as it arrived, waiting for its batch.
#[derive(Debug)]
pub(crate) struct Received {
    /// The MQTT message, kept for its ack.
    pub message: Message,
    /// The connection it arrived on.
    pub epoch: u64,
    /// Its place among that connection's messages, in receive order.
    pub seq: u64,
    /// When it arrived (stored as `last_seen`).
    pub received_at: DateTime<Utc>,
    /// When it arrived, for the lag metric.
    pub since: Instant,
}

/// The current connection's client, epoch and unsent acks, changed
/// together.
struct Current {
    epoch: u64,
    client: Client,
    /// Messages not yet committed, and those behind them.
    unacked: InOrder<Message>,
    /// Acks of committed messages, in receive order.
    due: AckLine<Ack>,
}

impl Current {
    fn new(epoch: u64, client: Client) -> Self {
        Self {
            epoch,
            client,
            unacked: InOrder::new(),
            due: AckLine::new(),
        }
    }

    /// Hands due acks to the client while fewer than `limit` wait there.
    fn hand_over(&mut self, limit: usize) {
        // Fails only if the event loop is gone: the broker then
        // redelivers, which is harmless.
        self.due
            .hand_over(limit, |ack| self.client.try_ack(ack).is_ok());
    }
}

/// Acks waiting to be handed to the client, and how many it holds unsent.
#[derive(Debug)]
struct AckLine<T> {
    waiting: VecDeque<T>,
    handed: usize,
}

impl<T> AckLine<T> {
    fn new() -> Self {
        Self {
            waiting: VecDeque::new(),
            handed: 0,
        }
    }

    /// Puts acks at the back of the line.
    fn extend(&mut self, acks: impl IntoIterator<Item = T>) {
        self.waiting.extend(acks);
    }

    /// Hands acks over with `send`, oldest first, while fewer than `limit`
    /// are handed and unsent; an ack `send` refuses is dropped.
    fn hand_over(&mut self, limit: usize, mut send: impl FnMut(T) -> bool) {
        while self.handed < limit
            && let Some(ack) = self.waiting.pop_front()
        {
            if send(ack) {
                self.handed += 1;
            }
        }
    }

    /// One handed ack went out.
    fn sent(&mut self) {
        self.handed = self.handed.saturating_sub(1);
    }
}

/// Items released in the order they were registered, whatever order they
/// are marked ready in: a connection's messages, from the oldest not yet
/// acknowledged on.
#[derive(Debug)]
struct InOrder<T> {
    /// From the front: `None` until its item is ready.
    slots: VecDeque<Option<T>>,
    /// The place of the front slot.
    front: u64,
}

impl<T> InOrder<T> {
    fn new() -> Self {
        Self {
            slots: VecDeque::new(),
            front: 0,
        }
    }

    /// Takes the next place in line.
    fn register(&mut self) -> u64 {
        self.slots.push_back(None);
        self.front + self.slots.len() as u64 - 1
    }

    /// Marks the item at `place` ready; returns every item now free to go,
    /// in order.
    fn ready(&mut self, place: u64, item: T) -> Vec<T> {
        self.slots[(place - self.front) as usize] = Some(item);
        let mut free = Vec::new();
        while let Some(Some(_)) = self.slots.front() {
            free.extend(self.slots.pop_front().flatten());
            self.front += 1;
        }
        free
    }
}

/// Sends acks, only for messages of the current connection, in the order
/// the messages came.
#[derive(Clone)]
pub(crate) struct Acks {
    current: Arc<Mutex<Current>>,
}

impl Acks {
    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives a message that just arrived its epoch and place in line.
    fn register(&self) -> (u64, u64) {
        let mut current = self.lock();
        let seq = current.unacked.register();
        (current.epoch, seq)
    }

    fn client(&self) -> Client {
        self.lock().client.clone()
    }

    /// Ends the current connection's epoch: discards its queued and unsent
    /// acks and puts `next` (the next connection's client) in its place.
    fn end_epoch(&self, eventloop: &mut EventLoop, next: Client) {
        let mut current = self.lock();
        eventloop.clean();
        *current = Current::new(current.epoch + 1, next);
    }

    /// Marks `message` committed and queues the PUBACKs of every message
    /// up to the first one still being written, unless it came on an
    /// earlier connection: the broker has redelivered it (or, without a
    /// session, forgotten it), and only the current copy may be
    /// acknowledged.
    pub fn ack(&self, message: Received) {
        let mut current = self.lock();
        if current.epoch != message.epoch {
            return;
        }
        let ready = current.unacked.ready(message.seq, message.message);
        current.due.extend(ready.iter().filter_map(Message::ack));
        current.hand_over(ACKS_HANDED);
    }

    /// One handed ack went out: hands over the next.
    fn sent(&self) {
        let mut current = self.lock();
        current.due.sent();
        current.hand_over(ACKS_HANDED);
    }

    /// Asks the polling task to send DISCONNECT after every due ack.
    pub async fn disconnect(&self) {
        let client = {
            let mut current = self.lock();
            current.hand_over(usize::MAX);
            current.client.clone()
        };
        // Fails only if the polling task is gone: nothing left to close.
        let _ = client.disconnect().await;
    }
}

/// The connection to the broker, before its task starts.
pub(crate) struct Connection {
    settings: IngestSettings,
    failover: Failover,
    eventloop: EventLoop,
    acks: Acks,
    /// One channel per writer.
    writers: Vec<mpsc::Sender<Received>>,
    filter: String,
    metrics: IngestMetrics,
}

impl Connection {
    /// Prepares the connection and one channel per writer; nothing happens
    /// until [`Connection::drive`].
    pub fn start(
        settings: &IngestSettings,
        metrics: IngestMetrics,
    ) -> (Self, Vec<mpsc::Receiver<Received>>) {
        let failover = Failover::new(settings.mqtt.brokers.clone());
        let (client, eventloop) = open(settings, &failover);
        let (writers, received) = (0..settings.writers.max(1))
            .map(|_| mpsc::channel(settings.writer_queue()))
            .unzip();
        let filter = if settings.share_group.is_empty() {
            REPORTED_FILTER.to_owned()
        } else {
            shared_reported_filter(&settings.share_group)
        };
        let connection = Self {
            settings: settings.clone(),
            failover,
            eventloop,
            acks: Acks {
                current: Arc::new(Mutex::new(Current::new(0, client))),
            },
            writers,
            filter,
            metrics,
        };
        (connection, received)
    }

    /// The handle the worker acknowledges with.
    pub fn acks(&self) -> Acks {
        self.acks.clone()
    }

    /// Polls the event loop until the worker has asked to disconnect (or is
    /// gone), reconnecting with backoff, to the next broker of the list,
    /// whenever the connection fails.
    pub async fn drive(mut self) -> anyhow::Result<()> {
        let result = self.poll_until_done().await;
        let client = self.acks.client();
        self.acks.end_epoch(&mut self.eventloop, client);
        self.metrics.subscribed.set(0);
        result
    }

    async fn poll_until_done(&mut self) -> anyhow::Result<()> {
        loop {
            match self.eventloop.poll().await {
                Ok(Event::Message(message)) => {
                    self.metrics.pending.inc();
                    let writer = &self.writers[writer_of(&message.topic, self.writers.len())];
                    let (epoch, seq) = self.acks.register();
                    let received = Received {
                        message,
                        epoch,
                        seq,
                        received_at: Utc::now(),
                        since: Instant::now(),
                    };
                    if writer.send(received).await.is_err() {
                        return Ok(());
                    }
                }
                Ok(Event::Connected(connack)) => {
                    self.failover.connected();
                    self.failover.reset_backoff();
                    tracing::info!(
                        broker = %self.failover.broker(),
                        protocol = %self.settings.mqtt.protocol,
                        session_present = connack.session_present,
                        "connected to the MQTT broker"
                    );
                    // Without a session the broker forgot the subscription.
                    if connack.session_present {
                        self.metrics.subscribed.set(1);
                    } else if let Err(e) = self.acks.client().try_subscribe(&self.filter) {
                        bail!("queue the SUBSCRIBE to {}: {e}", self.filter);
                    }
                }
                Ok(Event::Subscribed(results)) => {
                    if let Some(Err(reason)) = results.into_iter().find(Result::is_err) {
                        bail!(
                            "the broker refused the subscription to {} ({reason}); a broker without \
                             shared subscriptions needs SHADOWBOX_INGEST_SHARE_GROUP empty (one ingester)",
                            self.filter
                        );
                    }
                    self.metrics.subscribed.set(1);
                    tracing::info!(filter = %self.filter, "subscribed");
                }
                Ok(Event::AckSent) => self.acks.sent(),
                Ok(Event::DisconnectSent) => return Ok(()),
                Ok(_) => {}
                Err(error) => {
                    self.metrics.subscribed.set(0);
                    let broker = self.failover.broker().to_string();
                    let delay = self.failover.failed(&error.to_string());
                    let (client, eventloop) = open(&self.settings, &self.failover);
                    let mut previous = std::mem::replace(&mut self.eventloop, eventloop);
                    self.acks.end_epoch(&mut previous, client);
                    tracing::warn!(
                        %error,
                        %broker,
                        next_broker = %self.failover.broker(),
                        retry_in_ms = delay.as_millis() as u64,
                        "MQTT connection failed; unacknowledged messages will be redelivered"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// A client for the failover's current broker with the ingester's session.
/// The writer of every message on `topic` (a device's reports always
/// share a topic), so a device's reports are written in the order they
/// came.
fn writer_of(topic: &str, writers: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    topic.hash(&mut hasher);
    (hasher.finish() % writers as u64) as usize
}

fn open(settings: &IngestSettings, failover: &Failover) -> (Client, EventLoop) {
    let mut options = SessionOptions::new(settings.client_id.clone());
    options.clean_start = false;
    options.session_expiry = Some(settings.session_expiry);
    options.receive_maximum = Some(settings.receive_maximum());
    options.manual_acks = true;
    options.keep_alive = KEEP_ALIVE;
    options.max_incoming_packet = MAX_INCOMING_PACKET_BYTES;
    options.max_outgoing_packet = MAX_OUTGOING_PACKET_BYTES;
    options.request_capacity = REQUEST_CAPACITY;
    shadowbox_mqtt::open(&settings.mqtt, failover.broker(), &options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_leave_in_the_order_they_came_whichever_is_ready_first() {
        let mut line = InOrder::new();
        let places: Vec<u64> = (0..4).map(|_| line.register()).collect();
        assert_eq!(places, [0, 1, 2, 3]);
        assert!(line.ready(2, "c").is_empty());
        assert!(line.ready(1, "b").is_empty());
        assert_eq!(line.ready(0, "a"), ["a", "b", "c"]);
        assert_eq!(line.register(), 4);
        assert_eq!(line.ready(3, "d"), ["d"]);
        assert_eq!(line.ready(4, "e"), ["e"]);
    }

    #[test]
    fn at_most_the_limit_of_acks_is_handed_over_at_once() {
        let mut line = AckLine::new();
        line.extend(0..10);
        let mut handed = Vec::new();
        line.hand_over(4, |ack| {
            handed.push(ack);
            true
        });
        assert_eq!(handed, [0, 1, 2, 3]);
        line.sent();
        line.hand_over(4, |ack| {
            handed.push(ack);
            true
        });
        assert_eq!(handed, [0, 1, 2, 3, 4], "one out, one in");
        // A refused ack is dropped and takes no place.
        line.hand_over(usize::MAX, |ack| ack % 2 == 0);
        assert_eq!(line.handed, 4 + 2, "6 and 8");
        assert!(line.waiting.is_empty());
    }

    #[test]
    fn a_device_s_reports_always_go_to_the_same_writer() {
        let topic = "tenant/acme/device/d-1/shadow/reported";
        let writer = writer_of(topic, 3);
        assert!(writer < 3);
        assert!((0..100).all(|_| writer_of(topic, 3) == writer));
        assert_eq!(writer_of(topic, 1), 0);
    }
}
