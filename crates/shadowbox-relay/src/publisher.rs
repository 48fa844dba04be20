//! The relay's one MQTT connection and the bookkeeping that turns the
//! client's events into a confirmed outcome for every publish.
//!
//! rumqttc's `publish()` returns when the request is queued, not when the
//! broker has it. So one task owns the connection: it hands publishes to
//! the client in order, pairs each `PublishSent(pkid)` event (emitted in
//! request order) with the oldest unpaired request, and resolves it on the
//! PUBACK for that pkid. A disconnect, or a PUBACK overdue past the ack
//! timeout, fails every unacknowledged publish and drops the connection:
//! rumqttc never retransmits while connected, and each reconnect builds a
//! fresh client so nothing stale is ever sent. The rows of failed publishes
//! are retried from the database.
//!
//! A publish handed to the client whose `PublishSent` was not seen yet may
//! still have left: the event loop writes the packet before its event
//! reaches this task. So when a connection ends, every publish handed over
//! is `Interrupted` (its bytes may land), never `NotSent`; only a request
//! that never reached the client is `NotSent`.
//!
//! Under MQTT 5 the PUBACK's reason code decides ([`Verdict`]), and the
//! broker's CONNACK bounds the in-flight window (receive maximum) and the
//! packet size (maximum packet size). A publish larger than the broker
//! takes is refused here, before it is sent: sending it would only get the
//! connection dropped, again at every retry.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use shadowbox_mqtt::{
    BrokerAddress, ConnAck, ConnectionError, Event, EventLoop, Failover, ReasonCode, RequestError,
    SessionOptions, Verdict, publish_packet_size,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::RelaySettings;

/// How long the broker may take to accept a connection.
const CONNACK_TIMEOUT: Duration = Duration::from_secs(10);

/// The relay's keep-alive: a silent broker is noticed within 1.5 times it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A connection that lived this long resets the reconnect backoff.
const STABLE_CONNECTION: Duration = Duration::from_secs(30);

/// How often overdue PUBACKs and a requested stop are checked.
const CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// How long a shutdown waits for the DISCONNECT to go out.
const DISCONNECT_GRACE: Duration = Duration::from_secs(2);

/// What became of one publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishResult {
    /// The broker took it (PUBACK success) at this time.
    Acked(DateTime<Utc>),
    /// It was handed to the connection, which ended before its PUBACK: the
    /// broker may or may not have it, now or later.
    Interrupted(&'static str),
    /// Refused for good, by the broker (MQTT 5 PUBACK reason code) or by
    /// the client (an invalid topic): the refused-publish path.
    Refused(String),
    /// The broker could not take it now (server busy, quota exceeded):
    /// retried later like an outage, never dead-lettered.
    Busy(String),
    /// Larger than the broker accepts: it can never be delivered there.
    TooLarge(String),
    /// It never reached the connection: there was none.
    NotSent,
}

struct Request {
    topic: String,
    payload: Vec<u8>,
    done: oneshot::Sender<PublishResult>,
}

/// A handle to the connection; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    requests: mpsc::Sender<Request>,
    connected: watch::Receiver<Option<BrokerAddress>>,
}

impl Publisher {
    /// Starts the connection task on `tasks`; it runs until `stop`.
    pub fn start(settings: &RelaySettings, tasks: &TaskTracker, stop: CancellationToken) -> Self {
        let (requests, rx) = mpsc::channel(settings.max_in_flight);
        let (connected_tx, connected) = watch::channel(None);
        tasks.spawn(
            Connection {
                settings: Arc::new(settings.clone()),
                requests: rx,
                connected: connected_tx,
                stop,
            }
            .run(),
        );
        Self {
            requests,
            connected,
        }
    }

    /// Waits until the broker connection is up, or `cancel` fires; returns
    /// whether it is up.
    pub async fn wait_connected(&self, cancel: &CancellationToken) -> bool {
        let mut connected = self.connected.clone();
        tokio::select! {
            up = connected.wait_for(Option::is_some) => up.is_ok(),
            () = cancel.cancelled() => false,
        }
    }

    /// The broker the connection is up on, `None` while it is down; every
    /// (re)connection is a change.
    pub fn broker(&self) -> watch::Receiver<Option<BrokerAddress>> {
        self.connected.clone()
    }

    /// Publishes `payload` retained at QoS 1 to `topic`; the returned
    /// receiver resolves once the broker answered or the publish failed.
    pub async fn publish(
        &self,
        topic: String,
        payload: Vec<u8>,
    ) -> oneshot::Receiver<PublishResult> {
        let (done, outcome) = oneshot::channel();
        let request = Request {
            topic,
            payload,
            done,
        };
        if let Err(mpsc::error::SendError(request)) = self.requests.send(request).await {
            let _ = request.done.send(PublishResult::NotSent);
        }
        outcome
    }
}

/// A publish handed to the client, waiting for its packet id or its PUBACK.
struct InFlight {
    done: oneshot::Sender<PublishResult>,
    sent_at: Instant,
}

/// The publishes of one connection that have no outcome yet.
#[derive(Default)]
struct InFlightBook {
    /// Handed to the client, waiting for their packet id (request order).
    unpaired: VecDeque<InFlight>,
    /// Sent, waiting for their PUBACK.
    awaiting: HashMap<u16, InFlight>,
}

impl InFlightBook {
    fn handed_over(&mut self, done: oneshot::Sender<PublishResult>) {
        self.unpaired.push_back(InFlight {
            done,
            sent_at: Instant::now(),
        });
    }

    /// Pairs `pkid` with the oldest unpaired publish.
    fn sent(&mut self, pkid: u16) -> Result<(), String> {
        let publish = self
            .unpaired
            .pop_front()
            .ok_or_else(|| format!("publish {pkid} matches no request"))?;
        if self.awaiting.insert(pkid, publish).is_some() {
            return Err(format!("packet id {pkid} reused before its PUBACK"));
        }
        Ok(())
    }

    /// Resolves the publish `pkid` with the broker's answer.
    fn acked(&mut self, pkid: u16, reason: ReasonCode) {
        if let Some(publish) = self.awaiting.remove(&pkid) {
            let outcome = match reason.verdict() {
                Verdict::Accepted => PublishResult::Acked(Utc::now()),
                Verdict::Refused => {
                    PublishResult::Refused(format!("the broker refused it: {reason}"))
                }
                Verdict::Transient => {
                    PublishResult::Busy(format!("the broker deferred it: {reason}"))
                }
            };
            let _ = publish.done.send(outcome);
        }
    }

    fn outstanding(&self) -> usize {
        self.unpaired.len() + self.awaiting.len()
    }

    fn oldest(&self) -> Option<Instant> {
        self.unpaired
            .front()
            .into_iter()
            .chain(self.awaiting.values())
            .map(|p| p.sent_at)
            .min()
    }

    /// The connection ended: every publish handed over may have reached
    /// the broker, or may still.
    fn interrupt_all(self) {
        for publish in self.unpaired.into_iter().chain(self.awaiting.into_values()) {
            let _ = publish
                .done
                .send(PublishResult::Interrupted("connection lost before PUBACK"));
        }
    }
}

struct Connection {
    settings: Arc<RelaySettings>,
    requests: mpsc::Receiver<Request>,
    connected: watch::Sender<Option<BrokerAddress>>,
    stop: CancellationToken,
}

/// Why a connection ended.
enum End {
    Stopped,
    Failed(String),
}

/// What the broker allows on the current connection.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Publishes awaiting their PUBACK at once.
    window: usize,
    /// Largest packet.
    max_packet: usize,
}

impl Limits {
    fn new(settings: &RelaySettings, connack: &ConnAck) -> Self {
        let broker_window = connack.receive_maximum.map_or(usize::MAX, usize::from);
        let broker_packet = connack.max_packet_size.map_or(u32::MAX, |size| size);
        Self {
            window: settings.max_in_flight.min(broker_window).max(1),
            max_packet: settings.max_packet_bytes.min(broker_packet) as usize,
        }
    }
}

impl Connection {
    async fn run(mut self) {
        let mut failover = Failover::new(self.settings.mqtt.brokers.clone());
        let mut generation = 0u64;
        loop {
            generation += 1;
            let started = Instant::now();
            let broker = failover.broker().clone();
            let reason = match self.connect_and_serve(generation, &mut failover).await {
                End::Stopped => return,
                End::Failed(reason) => reason,
            };
            tracing::warn!(broker = %broker, reason, "broker connection lost or refused");
            if started.elapsed() > STABLE_CONNECTION {
                failover.reset_backoff();
            }
            let delay = failover.failed(&reason);
            let stop = self.stop.clone();
            tokio::select! {
                () = self.refuse_until(delay) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// While disconnected, answers every request at once with `NotSent`.
    async fn refuse_until(&mut self, delay: Duration) {
        let deadline = tokio::time::sleep(delay);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => return,
                Some(request) = self.requests.recv() => {
                    let _ = request.done.send(PublishResult::NotSent);
                }
            }
        }
    }

    async fn connect_and_serve(&mut self, generation: u64, failover: &mut Failover) -> End {
        let settings = &self.settings;
        let broker = failover.broker().clone();
        let mut options = SessionOptions::new(format!("{}-{generation}", settings.client_id));
        options.keep_alive = KEEP_ALIVE;
        options.max_incoming_packet = settings.max_packet_bytes;
        options.max_outgoing_packet = settings.max_packet_bytes;
        // One more than the relay's own window, so the client never holds
        // a request back by itself.
        options.outgoing_window = u16::try_from(settings.max_in_flight + 1).unwrap_or(u16::MAX);
        options.request_capacity = settings.max_in_flight + 1;
        let (client, eventloop) = shadowbox_mqtt::open(&settings.mqtt, &broker, &options);
        let (events_tx, mut events) = mpsc::channel(1024);
        // The event loop is polled by a task of its own and never cancelled
        // mid-poll; dropping the task drops the socket.
        let poller = tokio::spawn(poll_events(eventloop, events_tx));
        let _abort_poller = AbortOnDrop(poller);

        let connack = tokio::select! {
            connack = tokio::time::timeout(CONNACK_TIMEOUT, events.recv()) => connack,
            () = self.stop.cancelled() => return End::Stopped,
        };
        let connack = match connack {
            Ok(Some(Ok(Event::Connected(connack)))) => connack,
            Ok(Some(Ok(other))) => return End::Failed(format!("expected CONNACK, got {other:?}")),
            Ok(Some(Err(e))) => return End::Failed(e.to_string()),
            Ok(None) => return End::Failed("event loop ended".into()),
            Err(_) => return End::Failed(format!("no CONNACK within {CONNACK_TIMEOUT:?}")),
        };
        let limits = Limits::new(settings, &connack);
        failover.connected();
        tracing::info!(
            broker = %broker,
            protocol = %settings.mqtt.protocol,
            in_flight_window = limits.window,
            max_packet_bytes = limits.max_packet,
            "connected to the broker"
        );
        self.connected.send_replace(Some(broker));
        let end = self.serve(&client, &mut events, limits).await;
        self.connected.send_replace(None);
        if matches!(end, End::Stopped) {
            // Let the event loop send the DISCONNECT before it is dropped.
            let _ = client.disconnect().await;
            let flushed = async {
                while let Some(Ok(event)) = events.recv().await {
                    if matches!(event, Event::DisconnectSent) {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(DISCONNECT_GRACE, flushed).await;
        }
        end
    }

    async fn serve(
        &mut self,
        client: &shadowbox_mqtt::Client,
        events: &mut mpsc::Receiver<Result<Event, ConnectionError>>,
        limits: Limits,
    ) -> End {
        let ack_timeout = self.settings.ack_timeout;
        let protocol = self.settings.mqtt.protocol;
        let mut book = InFlightBook::default();
        let mut check = tokio::time::interval(CHECK_INTERVAL);
        let end = loop {
            let outstanding = book.outstanding();
            tokio::select! {
                biased;
                event = events.recv() => match event {
                    Some(Ok(Event::PublishSent(pkid))) => {
                        if let Err(reason) = book.sent(pkid) {
                            break End::Failed(reason);
                        }
                    }
                    Some(Ok(Event::PacketIdInUse(pkid))) => {
                        // The broker acknowledged out of order and a
                        // packet id came round again: the pairing is no
                        // longer certain.
                        break End::Failed(format!("packet id {pkid} collided"));
                    }
                    Some(Ok(Event::PubAck { pkid, reason })) => book.acked(pkid, reason),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break End::Failed(e.to_string()),
                    None => break End::Failed("event loop ended".into()),
                },
                _ = check.tick() => {
                    if book.oldest().is_some_and(|t| t.elapsed() > ack_timeout) {
                        break End::Failed(format!("no PUBACK within {ack_timeout:?}"));
                    }
                    if self.stop.is_cancelled() && outstanding == 0 {
                        break End::Stopped;
                    }
                }
                Some(request) = self.requests.recv(), if outstanding < limits.window => {
                    let size = publish_packet_size(protocol, &request.topic, request.payload.len());
                    if size > limits.max_packet {
                        let _ = request.done.send(PublishResult::TooLarge(format!(
                            "a {size}-byte packet is larger than the broker accepts ({} bytes)",
                            limits.max_packet
                        )));
                        continue;
                    }
                    match client.try_publish(&request.topic, request.payload, true) {
                        Ok(()) => book.handed_over(request.done),
                        Err(RequestError::InvalidTopic(topic)) => {
                            let _ = request.done.send(PublishResult::Refused(format!("invalid MQTT topic {topic:?}")));
                        }
                        Err(RequestError::Closed) => {
                            // The event loop is gone: an outage, not a refusal.
                            let _ = request.done.send(PublishResult::NotSent);
                            break End::Failed("the connection's event loop stopped".into());
                        }
                    }
                }
            }
        };
        book.interrupt_all();
        end
    }
}

async fn poll_events(
    mut eventloop: EventLoop,
    events: mpsc::Sender<Result<Event, ConnectionError>>,
) {
    loop {
        let event = eventloop.poll().await;
        let failed = event.is_err();
        if events.send(event).await.is_err() || failed {
            return;
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handed_over(book: &mut InFlightBook) -> oneshot::Receiver<PublishResult> {
        let (done, outcome) = oneshot::channel();
        book.handed_over(done);
        outcome
    }

    #[test]
    fn a_publish_whose_bytes_may_have_left_is_interrupted_never_not_sent() {
        let mut book = InFlightBook::default();
        let paired = handed_over(&mut book);
        // Handed to the client; its `PublishSent` not seen yet when the
        // connection ends (e.g. the ack timeout fired first).
        let unpaired = handed_over(&mut book);
        book.sent(1).unwrap();
        book.interrupt_all();
        for mut outcome in [paired, unpaired] {
            assert!(matches!(
                outcome.try_recv(),
                Ok(PublishResult::Interrupted(_))
            ));
        }
    }

    #[test]
    fn puback_reason_codes_decide_the_outcome() {
        let mut book = InFlightBook::default();
        let outcomes: Vec<_> = (1..=4).map(|_| handed_over(&mut book)).collect();
        for pkid in 1..=4 {
            book.sent(pkid).unwrap();
        }
        book.acked(1, ReasonCode(0x00));
        book.acked(2, ReasonCode(0x10));
        book.acked(3, ReasonCode(0x87));
        book.acked(4, ReasonCode(0x97));
        let got: Vec<PublishResult> = outcomes
            .into_iter()
            .map(|mut o| o.try_recv().unwrap())
            .collect();
        assert!(matches!(got[0], PublishResult::Acked(_)));
        assert!(matches!(got[1], PublishResult::Acked(_)));
        assert_eq!(
            got[2],
            PublishResult::Refused("the broker refused it: 0x87 not authorized".into())
        );
        assert_eq!(
            got[3],
            PublishResult::Busy("the broker deferred it: 0x97 quota exceeded".into())
        );
        assert_eq!(book.outstanding(), 0);
    }

    #[test]
    fn the_broker_s_connack_narrows_the_window_and_the_packet_size() {
        let mut settings = RelaySettings::new("mqtt://b".parse().unwrap());
        settings.max_in_flight = 2000;
        settings.max_packet_bytes = 1 << 20;
        let v5 = Limits::new(
            &settings,
            &ConnAck {
                session_present: false,
                receive_maximum: Some(20),
                max_packet_size: Some(1000),
            },
        );
        assert_eq!((v5.window, v5.max_packet), (20, 1000));
        let v311 = Limits::new(
            &settings,
            &ConnAck {
                session_present: false,
                receive_maximum: None,
                max_packet_size: None,
            },
        );
        assert_eq!((v311.window, v311.max_packet), (2000, 1 << 20));
    }
}
