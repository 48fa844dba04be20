//! The relay's one MQTT connection and the bookkeeping that turns
//! rumqttc's events into a confirmed outcome for every publish.
//!
//! rumqttc's `publish()` returns when the request is queued, not when the
//! broker has it. So one task owns the connection: it hands publishes to
//! rumqttc in order, pairs each `Outgoing::Publish(pkid)` event (emitted in
//! request order) with the oldest unpaired request, and resolves it on
//! `Incoming::PubAck(pkid)`. A disconnect, or a PUBACK overdue past the ack
//! timeout, fails every unacknowledged publish and drops the connection:
//! rumqttc never retransmits while connected, and each reconnect builds a
//! fresh client so nothing stale is ever sent. The rows of failed publishes
//! are retried from the database.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet,
    QoS,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::RelaySettings;

/// The largest MQTT packet the relay sends (and accepts).
const MAX_PACKET_BYTES: usize = 1024 * 1024;

/// What became of one publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The broker acknowledged it at this time.
    Acked(DateTime<Utc>),
    /// It was sent, but the connection failed before its PUBACK: the
    /// broker may or may not have it.
    Interrupted(&'static str),
    /// The client refused it (e.g. larger than the packet size limit).
    Rejected(String),
    /// It never left: there was no connection.
    NotSent,
}

struct Request {
    topic: String,
    payload: Vec<u8>,
    done: oneshot::Sender<Outcome>,
}

/// A handle to the connection; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    requests: mpsc::Sender<Request>,
    connected: watch::Receiver<bool>,
}

impl Publisher {
    /// Starts the connection task on `tasks`; it runs until `stop`.
    pub fn start(settings: &RelaySettings, tasks: &TaskTracker, stop: CancellationToken) -> Self {
        let (requests, rx) = mpsc::channel(settings.max_in_flight);
        let (connected_tx, connected) = watch::channel(false);
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
            up = connected.wait_for(|up| *up) => up.is_ok(),
            () = cancel.cancelled() => false,
        }
    }

    /// Publishes `payload` retained at QoS 1 to `topic`; the returned
    /// receiver resolves once the broker acknowledged it or it failed.
    pub async fn publish(&self, topic: String, payload: Vec<u8>) -> oneshot::Receiver<Outcome> {
        let (done, outcome) = oneshot::channel();
        // rumqttc would fail the whole connection on an oversized packet;
        // refuse it here so it costs only its own row.
        let size = payload.len() + topic.len() + 16;
        if size > MAX_PACKET_BYTES {
            let _ = done.send(Outcome::Rejected(format!(
                "packet of {size} bytes exceeds the {MAX_PACKET_BYTES}-byte limit"
            )));
            return outcome;
        }
        let request = Request {
            topic,
            payload,
            done,
        };
        if let Err(mpsc::error::SendError(request)) = self.requests.send(request).await {
            let _ = request.done.send(Outcome::NotSent);
        }
        outcome
    }
}

/// A publish handed to rumqttc, waiting for its packet id or its PUBACK.
struct InFlight {
    done: oneshot::Sender<Outcome>,
    sent_at: Instant,
}

struct Connection {
    settings: Arc<RelaySettings>,
    requests: mpsc::Receiver<Request>,
    connected: watch::Sender<bool>,
    stop: CancellationToken,
}

/// Why a connection ended.
enum End {
    Stopped,
    Failed(String),
}

impl Connection {
    async fn run(mut self) {
        let mut backoff = reconnect_backoff();
        let mut generation = 0u64;
        loop {
            generation += 1;
            let started = Instant::now();
            match self.connect_and_serve(generation).await {
                End::Stopped => return,
                End::Failed(reason) => {
                    tracing::warn!(broker = %self.settings.broker, reason, "broker connection lost");
                }
            }
            // A connection that lived a while resets the backoff.
            if started.elapsed() > Duration::from_secs(30) {
                backoff = reconnect_backoff();
            }
            let delay = backoff.next().unwrap_or(Duration::from_secs(5));
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
                    let _ = request.done.send(Outcome::NotSent);
                }
            }
        }
    }

    async fn connect_and_serve(&mut self, generation: u64) -> End {
        let settings = &self.settings;
        let mut options = MqttOptions::new(
            format!("{}-{generation}", settings.client_id),
            settings.broker.host.clone(),
            settings.broker.port,
        );
        options
            .set_keep_alive(Duration::from_secs(15))
            .set_clean_session(true)
            .set_inflight(u16::try_from(settings.max_in_flight + 1).unwrap_or(u16::MAX))
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        if let Some((user, password)) = &settings.broker.credentials {
            options.set_credentials(user.clone(), password.clone());
        }
        let (client, mut eventloop) = AsyncClient::new(options, settings.max_in_flight + 1);
        // Without TCP_NODELAY a lone publish can wait for a delayed ACK.
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        network.set_connection_timeout(5);
        eventloop.set_network_options(network);
        let (events_tx, mut events) = mpsc::channel(1024);
        // The event loop is polled by a task of its own and never cancelled
        // mid-poll; dropping the task drops the socket.
        let poller = tokio::spawn(poll_events(eventloop, events_tx));
        let _abort_poller = AbortOnDrop(poller);

        let connack = tokio::select! {
            connack = tokio::time::timeout(Duration::from_secs(10), events.recv()) => connack,
            () = self.stop.cancelled() => return End::Stopped,
        };
        match connack {
            Ok(Some(Ok(Event::Incoming(Packet::ConnAck(_))))) => {}
            Ok(Some(Ok(other))) => return End::Failed(format!("expected CONNACK, got {other:?}")),
            Ok(Some(Err(e))) => return End::Failed(e.to_string()),
            Ok(None) => return End::Failed("event loop ended".into()),
            Err(_) => return End::Failed("no CONNACK within 10 s".into()),
        }
        tracing::info!(broker = %settings.broker, "connected to the broker");
        self.connected.send_replace(true);
        let end = self.serve(&client, &mut events).await;
        self.connected.send_replace(false);
        if matches!(end, End::Stopped) {
            // Let the event loop send the DISCONNECT before it is dropped.
            let _ = client.disconnect().await;
            let flushed = async {
                while let Some(Ok(event)) = events.recv().await {
                    if matches!(event, Event::Outgoing(Outgoing::Disconnect)) {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), flushed).await;
        }
        end
    }

    async fn serve(
        &mut self,
        client: &AsyncClient,
        events: &mut mpsc::Receiver<Result<Event, ConnectionError>>,
    ) -> End {
        let ack_timeout = self.settings.ack_timeout;
        let capacity = self.settings.max_in_flight;
        // Handed to rumqttc, waiting for their packet id (in request order).
        let mut unpaired: VecDeque<InFlight> = VecDeque::new();
        // Sent, waiting for their PUBACK.
        let mut awaiting: HashMap<u16, InFlight> = HashMap::new();
        let mut check = tokio::time::interval(Duration::from_millis(250));
        let end = loop {
            let outstanding = unpaired.len() + awaiting.len();
            tokio::select! {
                biased;
                event = events.recv() => match event {
                    Some(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                        let Some(publish) = unpaired.pop_front() else {
                            break End::Failed(format!("publish {pkid} matches no request"));
                        };
                        awaiting.insert(pkid, publish);
                    }
                    Some(Ok(Event::Outgoing(Outgoing::AwaitAck(pkid)))) => {
                        // A packet id collision: the pairing is no longer certain.
                        break End::Failed(format!("packet id {pkid} collided"));
                    }
                    Some(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                        if let Some(publish) = awaiting.remove(&ack.pkid) {
                            let _ = publish.done.send(Outcome::Acked(Utc::now()));
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break End::Failed(e.to_string()),
                    None => break End::Failed("event loop ended".into()),
                },
                _ = check.tick() => {
                    let oldest = unpaired.front().into_iter().chain(awaiting.values())
                        .map(|p| p.sent_at).min();
                    if oldest.is_some_and(|t| t.elapsed() > ack_timeout) {
                        break End::Failed(format!("no PUBACK within {ack_timeout:?}"));
                    }
                    if self.stop.is_cancelled() && outstanding == 0 {
                        break End::Stopped;
                    }
                }
                Some(request) = self.requests.recv(), if outstanding < capacity => {
                    match client.try_publish(request.topic, QoS::AtLeastOnce, true, request.payload) {
                        Ok(()) => unpaired.push_back(InFlight { done: request.done, sent_at: Instant::now() }),
                        Err(e) => { let _ = request.done.send(Outcome::Rejected(e.to_string())); }
                    }
                }
            }
        };
        for publish in unpaired {
            let _ = publish.done.send(Outcome::NotSent);
        }
        for (_, publish) in awaiting {
            let _ = publish
                .done
                .send(Outcome::Interrupted("connection lost before PUBACK"));
        }
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

fn reconnect_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
