//! One MQTT client over both protocol versions: rumqttc's 3.1.1 client and
//! its MQTT 5 client (`rumqttc::v5`) behind [`Client`] and [`EventLoop`],
//! with their events normalized into [`Event`], so the relay, the ingester,
//! the simulator and the tests each have one design whatever the version.
//!
//! The normalization keeps what the callers rely on: `PublishSent(pkid)`
//! events come in the order publishes were requested (rumqttc emits
//! `Outgoing::Publish` that way under both versions), a PUBACK carries its
//! reason code (always success under 3.1.1), and a CONNACK carries the
//! broker's receive maximum and maximum packet size (unknown under 3.1.1).

use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS as V5QoS;
use rumqttc::v5::mqttbytes::v5 as v5_packets;
use rumqttc::{NetworkOptions, Outgoing, QoS, TlsConfiguration, Transport as RumqttcTransport};

use crate::address::{BrokerAddress, Transport};
use crate::config::{MqttConfig, Protocol};
use crate::puback::ReasonCode;

/// The largest packet MQTT can carry (268,435,455 bytes).
pub const MQTT_MAX_PACKET_BYTES: u32 = 268_435_455;

/// How one session with a broker is set up.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The client id.
    pub client_id: String,
    /// Start without a session (clean start / clean session).
    pub clean_start: bool,
    /// MQTT 5: how long the broker keeps the session after a disconnect;
    /// `None` ends it with the connection. Under 3.1.1 a session that is
    /// not clean lasts until the broker forgets it by its own rules.
    pub session_expiry: Option<Duration>,
    /// MQTT 5: most unacknowledged QoS 1 messages the broker may send us.
    pub receive_maximum: Option<u16>,
    /// Keep-alive interval (at least a second).
    pub keep_alive: Duration,
    /// Largest packet accepted from the broker (under 5 also announced to
    /// it, so it does not send larger ones).
    pub max_incoming_packet: u32,
    /// Largest packet sent. Under 5 the broker's CONNACK may lower it;
    /// rumqttc drops the connection rather than send a larger one.
    pub max_outgoing_packet: u32,
    /// Most of our publishes awaiting their PUBACK at once; under 5 the
    /// broker's receive maximum lowers it.
    pub outgoing_window: u16,
    /// Acknowledge received messages only when told ([`Client::try_ack`]).
    pub manual_acks: bool,
    /// Requests (publishes, acks, ...) queued for the event loop.
    pub request_capacity: usize,
    /// How long a TCP connect, TLS handshake and CONNACK may take.
    pub connect_timeout: Duration,
}

impl SessionOptions {
    /// A clean session for `client_id`, 30 s keep-alive, 1 MiB packets,
    /// automatic acks.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            clean_start: true,
            session_expiry: None,
            receive_maximum: None,
            keep_alive: Duration::from_secs(30),
            max_incoming_packet: 1 << 20,
            max_outgoing_packet: 1 << 20,
            outgoing_window: 100,
            manual_acks: false,
            request_capacity: 100,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// What the broker said when it accepted the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAck {
    /// The broker still had our session.
    pub session_present: bool,
    /// MQTT 5: most of our QoS 1 publishes it takes unacknowledged.
    pub receive_maximum: Option<u16>,
    /// MQTT 5: the largest packet it accepts.
    pub max_packet_size: Option<u32>,
}

/// A message the broker sent us.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its topic.
    pub topic: String,
    /// Whether it came from the retained store.
    pub retain: bool,
    raw: Box<RawPublish>,
}

#[derive(Debug, Clone)]
enum RawPublish {
    V311(rumqttc::Publish),
    V5(v5_packets::Publish),
}

impl Message {
    /// Its payload.
    pub fn payload(&self) -> &[u8] {
        match &*self.raw {
            RawPublish::V311(p) => &p.payload,
            RawPublish::V5(p) => &p.payload,
        }
    }

    /// What acknowledging it takes, without its topic and payload; `None`
    /// for a QoS 0 message, which is owed no acknowledgement.
    pub fn ack(&self) -> Option<Ack> {
        let (pkid, qos) = match &*self.raw {
            RawPublish::V311(p) if p.qos != QoS::AtMostOnce => (p.pkid, AckQos::V311(p.qos)),
            RawPublish::V5(p) if p.qos != V5QoS::AtMostOnce => (p.pkid, AckQos::V5(p.qos)),
            _ => return None,
        };
        Some(Ack { pkid, qos })
    }
}

/// The acknowledgement a received QoS 1 or 2 message is owed (with manual
/// acks): its packet id and QoS, a few bytes, so a long line of acks
/// waiting for the event loop holds no payloads. Each one queued yields
/// one [`Event::AckSent`] when it goes out.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pkid: u16,
    qos: AckQos,
}

#[derive(Debug, Clone, Copy)]
enum AckQos {
    V311(QoS),
    V5(V5QoS),
}

/// What happened on the connection, the same under both versions.
#[derive(Debug, Clone)]
pub enum Event {
    /// The broker accepted the connection.
    Connected(ConnAck),
    /// A publish went out with this packet id; these come in the order
    /// the publishes were requested.
    PublishSent(u16),
    /// A publish waits because its packet id is still unacknowledged (the
    /// broker acknowledged out of order).
    PacketIdInUse(u16),
    /// The broker's PUBACK.
    PubAck {
        /// The packet id it acknowledges.
        pkid: u16,
        /// Its reason code.
        reason: ReasonCode,
    },
    /// A message for one of our subscriptions.
    Message(Message),
    /// The broker's answer to a SUBSCRIBE: per filter, `Err` names why it
    /// was refused.
    Subscribed(Vec<Result<(), String>>),
    /// One of our acknowledgements went out (a PUBACK, or the PUBREC of a
    /// QoS 2 message).
    AckSent,
    /// Our DISCONNECT went out.
    DisconnectSent,
    /// Anything else (pings, ...).
    Other,
}

/// Why the connection failed or could not be made: the reason shown in
/// logs and by `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConnectionError(pub String);

/// Why a request was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// MQTT forbids this topic or filter: sending it again cannot help.
    #[error("invalid MQTT topic {0:?}")]
    InvalidTopic(String),
    /// The event loop is gone or its queue is full: a connection problem,
    /// never the broker refusing anything.
    #[error("the MQTT connection is closed or its request queue is full")]
    Closed,
}

/// Queues requests for an [`EventLoop`]; cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: ClientInner,
}

#[derive(Clone)]
enum ClientInner {
    V311(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// The connection itself: nothing happens until it is polled.
pub struct EventLoop {
    inner: EventLoopInner,
    protocol: Protocol,
}

enum EventLoopInner {
    V311(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// Prepares a session with `broker`, in `config`'s protocol, with its TLS
/// and credentials. Nothing is sent until the [`EventLoop`] is polled.
pub fn open(
    config: &MqttConfig,
    broker: &BrokerAddress,
    options: &SessionOptions,
) -> (Client, EventLoop) {
    let transport = match broker.transport {
        Transport::Plain => RumqttcTransport::Tcp,
        Transport::Tls => {
            let tls = config
                .tls()
                .expect("MqttConfig::load sets TLS up for mqtts:// brokers");
            RumqttcTransport::Tls(TlsConfiguration::Rustls(tls))
        }
    };
    let credentials = config.credentials(broker);
    let keep_alive = options.keep_alive.max(Duration::from_secs(1));
    let mut network = NetworkOptions::new();
    // Without TCP_NODELAY a lone publish can wait for a delayed ACK.
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(options.connect_timeout.as_secs().max(1));
    match config.protocol {
        Protocol::V311 => {
            let mut o = rumqttc::MqttOptions::new(&options.client_id, &broker.host, broker.port);
            o.set_transport(transport)
                .set_keep_alive(keep_alive)
                .set_clean_session(options.clean_start)
                .set_manual_acks(options.manual_acks)
                .set_inflight(options.outgoing_window.max(1))
                .set_max_packet_size(
                    options.max_incoming_packet as usize,
                    options.max_outgoing_packet as usize,
                );
            if let Some((user, password)) = credentials {
                o.set_credentials(user, password);
            }
            let (client, mut eventloop) = rumqttc::AsyncClient::new(o, options.request_capacity);
            eventloop.set_network_options(network);
            (
                Client {
                    inner: ClientInner::V311(client),
                },
                EventLoop {
                    inner: EventLoopInner::V311(Box::new(eventloop)),
                    protocol: Protocol::V311,
                },
            )
        }
        Protocol::V5 => {
            let mut o =
                rumqttc::v5::MqttOptions::new(&options.client_id, &broker.host, broker.port);
            o.set_transport(transport)
                .set_keep_alive(keep_alive)
                .set_clean_start(options.clean_start)
                .set_session_expiry_interval(
                    options
                        .session_expiry
                        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)),
                )
                .set_receive_maximum(options.receive_maximum)
                .set_max_packet_size(Some(options.max_incoming_packet))
                .set_manual_acks(options.manual_acks)
                .set_outgoing_inflight_upper_limit(options.outgoing_window.max(1))
                .set_connection_timeout(options.connect_timeout.as_secs().max(1))
                .set_network_options(network);
            if let Some((user, password)) = credentials {
                o.set_credentials(user, password);
            }
            let (client, eventloop) = rumqttc::v5::AsyncClient::new(o, options.request_capacity);
            (
                Client {
                    inner: ClientInner::V5(client),
                },
                EventLoop {
                    inner: EventLoopInner::V5(Box::new(eventloop)),
                    protocol: Protocol::V5,
                },
            )
        }
    }
}

impl Client {
    /// Queues a QoS 1 publish without waiting for room in the queue.
    pub fn try_publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
    ) -> Result<(), RequestError> {
        check_topic(topic)?;
        let queued = match &self.inner {
            ClientInner::V311(c) => c
                .try_publish(topic, QoS::AtLeastOnce, retain, payload)
                .is_ok(),
            ClientInner::V5(c) => c
                .try_publish(topic, V5QoS::AtLeastOnce, retain, payload)
                .is_ok(),
        };
        queued.then_some(()).ok_or(RequestError::Closed)
    }

    /// Queues a QoS 1 publish, waiting for room in the queue.
    pub async fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
    ) -> Result<(), RequestError> {
        check_topic(topic)?;
        let queued = match &self.inner {
            ClientInner::V311(c) => c
                .publish(topic, QoS::AtLeastOnce, retain, payload)
                .await
                .is_ok(),
            ClientInner::V5(c) => c
                .publish(topic, V5QoS::AtLeastOnce, retain, payload)
                .await
                .is_ok(),
        };
        queued.then_some(()).ok_or(RequestError::Closed)
    }

    /// Queues a QoS 1 subscription to `filter`.
    pub fn try_subscribe(&self, filter: &str) -> Result<(), RequestError> {
        check_filter(filter)?;
        let queued = match &self.inner {
            ClientInner::V311(c) => c.try_subscribe(filter, QoS::AtLeastOnce).is_ok(),
            ClientInner::V5(c) => c.try_subscribe(filter, V5QoS::AtLeastOnce).is_ok(),
        };
        queued.then_some(()).ok_or(RequestError::Closed)
    }

    /// Subscribes to every filter (QoS 1) in one SUBSCRIBE, waiting for
    /// room in the queue.
    pub async fn subscribe_many(&self, filters: &[String]) -> Result<(), RequestError> {
        for filter in filters {
            check_filter(filter)?;
        }
        let queued = match &self.inner {
            ClientInner::V311(c) => c
                .subscribe_many(
                    filters
                        .iter()
                        .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce)),
                )
                .await
                .is_ok(),
            ClientInner::V5(c) => c
                .subscribe_many(
                    filters
                        .iter()
                        .map(|f| v5_packets::Filter::new(f.clone(), V5QoS::AtLeastOnce)),
                )
                .await
                .is_ok(),
        };
        queued.then_some(()).ok_or(RequestError::Closed)
    }

    /// Unsubscribes from `filter`, waiting for room in the queue.
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), RequestError> {
        check_filter(filter)?;
        let queued = match &self.inner {
            ClientInner::V311(c) => c.unsubscribe(filter).await.is_ok(),
            ClientInner::V5(c) => c.unsubscribe(filter).await.is_ok(),
        };
        queued.then_some(()).ok_or(RequestError::Closed)
    }

    /// Queues the acknowledgement of a message (with manual acks).
    pub fn try_ack(&self, ack: Ack) -> Result<(), RequestError> {
        // rumqttc builds an ack from a publish's packet id and QoS alone.
        let queued = match (&self.inner, ack.qos) {
            (ClientInner::V311(c), AckQos::V311(qos)) => {
                let mut publish = rumqttc::Publish::new(String::new(), qos, Vec::new());
                publish.pkid = ack.pkid;
                c.try_ack(&publish).is_ok()
            }
            (ClientInner::V5(c), AckQos::V5(qos)) => {
                let mut publish = v5_packets::Publish::new(String::new(), qos, Vec::new(), None);
                publish.pkid = ack.pkid;
                c.try_ack(&publish).is_ok()
            }
            // A message of the other protocol came from another session:
            // it cannot be acknowledged here.
            _ => false,
        };
        queued.then_some(()).ok_or(RequestError::Closed)
    }

    /// Queues a DISCONNECT, waiting for room in the queue.
    pub async fn disconnect(&self) -> Result<(), RequestError> {
        let queued = match &self.inner {
            ClientInner::V311(c) => c.disconnect().await.is_ok(),
            ClientInner::V5(c) => c.disconnect().await.is_ok(),
        };
        queued.then_some(()).ok_or(RequestError::Closed)
    }

    /// Queues a DISCONNECT without waiting.
    pub fn try_disconnect(&self) -> Result<(), RequestError> {
        let queued = match &self.inner {
            ClientInner::V311(c) => c.try_disconnect().is_ok(),
            ClientInner::V5(c) => c.try_disconnect().is_ok(),
        };
        queued.then_some(()).ok_or(RequestError::Closed)
    }
}

fn check_topic(topic: &str) -> Result<(), RequestError> {
    if rumqttc::valid_topic(topic) {
        Ok(())
    } else {
        Err(RequestError::InvalidTopic(topic.to_owned()))
    }
}

fn check_filter(filter: &str) -> Result<(), RequestError> {
    if rumqttc::valid_filter(filter) {
        Ok(())
    } else {
        Err(RequestError::InvalidTopic(filter.to_owned()))
    }
}

impl EventLoop {
    /// The protocol it speaks.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The next event. Polling again after an error reconnects to the same
    /// broker (with the same session options). Never cancel a poll midway
    /// if the connection must survive: poll from a task of its own.
    pub async fn poll(&mut self) -> Result<Event, ConnectionError> {
        match &mut self.inner {
            EventLoopInner::V311(e) => match e.poll().await {
                Ok(event) => Ok(from_v311(event)),
                Err(error) => Err(describe_v311(&error)),
            },
            EventLoopInner::V5(e) => match e.poll().await {
                Ok(event) => Ok(from_v5(event)),
                Err(error) => Err(describe_v5(&error)),
            },
        }
    }

    /// Drops the network connection and discards every acknowledgement
    /// still queued (the broker redelivers those messages on the next
    /// connection, where only the new copies may be acknowledged).
    pub fn clean(&mut self) {
        match &mut self.inner {
            EventLoopInner::V311(e) => e.clean(),
            EventLoopInner::V5(e) => e.clean(),
        }
    }
}

fn from_v311(event: rumqttc::Event) -> Event {
    use rumqttc::{Event as E, Packet as P, SubscribeReasonCode as S};
    match event {
        E::Incoming(P::ConnAck(c)) => Event::Connected(ConnAck {
            session_present: c.session_present,
            receive_maximum: None,
            max_packet_size: None,
        }),
        E::Incoming(P::PubAck(ack)) => Event::PubAck {
            pkid: ack.pkid,
            reason: ReasonCode::SUCCESS,
        },
        E::Incoming(P::Publish(p)) => Event::Message(Message {
            topic: p.topic.clone(),
            retain: p.retain,
            raw: Box::new(RawPublish::V311(p)),
        }),
        E::Incoming(P::SubAck(s)) => Event::Subscribed(
            s.return_codes
                .iter()
                .map(|code| match code {
                    S::Success(_) => Ok(()),
                    S::Failure => Err("failure".to_owned()),
                })
                .collect(),
        ),
        E::Outgoing(outgoing) => from_outgoing(outgoing),
        E::Incoming(_) => Event::Other,
    }
}

fn from_v5(event: rumqttc::v5::Event) -> Event {
    use rumqttc::v5::Event as E;
    use v5_packets::{Packet as P, SubscribeReasonCode as S};
    match event {
        E::Incoming(P::ConnAck(c)) => Event::Connected(ConnAck {
            session_present: c.session_present,
            receive_maximum: c.properties.as_ref().and_then(|p| p.receive_max),
            max_packet_size: c.properties.as_ref().and_then(|p| p.max_packet_size),
        }),
        E::Incoming(P::PubAck(ack)) => Event::PubAck {
            pkid: ack.pkid,
            reason: ack.reason.into(),
        },
        E::Incoming(P::Publish(p)) => Event::Message(Message {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            retain: p.retain,
            raw: Box::new(RawPublish::V5(p)),
        }),
        E::Incoming(P::SubAck(s)) => Event::Subscribed(
            s.return_codes
                .iter()
                .map(|code| match code {
                    S::Success(_) => Ok(()),
                    refused => Err(format!("{refused:?}")),
                })
                .collect(),
        ),
        E::Outgoing(outgoing) => from_outgoing(outgoing),
        E::Incoming(_) => Event::Other,
    }
}

fn from_outgoing(outgoing: Outgoing) -> Event {
    match outgoing {
        Outgoing::Publish(pkid) => Event::PublishSent(pkid),
        Outgoing::AwaitAck(pkid) => Event::PacketIdInUse(pkid),
        Outgoing::PubAck(_) | Outgoing::PubRec(_) => Event::AckSent,
        Outgoing::Disconnect => Event::DisconnectSent,
        _ => Event::Other,
    }
}

fn describe_v311(error: &rumqttc::ConnectionError) -> ConnectionError {
    use rumqttc::ConnectionError as C;
    ConnectionError(match error {
        C::ConnectionRefused(code) => format!("the broker refused the connection: {code:?}"),
        C::NetworkTimeout => "timed out connecting to the broker".to_owned(),
        other => other.to_string(),
    })
}

fn describe_v5(error: &rumqttc::v5::ConnectionError) -> ConnectionError {
    use rumqttc::v5::ConnectionError as C;
    ConnectionError(match error {
        C::ConnectionRefused(code) => format!("the broker refused the connection: {code:?}"),
        C::Timeout(_) => "timed out connecting to the broker".to_owned(),
        other => other.to_string(),
    })
}

/// The size in bytes of a QoS 1 PUBLISH of `payload_len` bytes to `topic`,
/// fixed header included: what a broker's maximum packet size limits.
pub fn publish_packet_size(protocol: Protocol, topic: &str, payload_len: usize) -> usize {
    // Topic (length-prefixed), packet id, and under 5 an empty property
    // list (its length, one byte).
    let properties = match protocol {
        Protocol::V5 => 1,
        Protocol::V311 => 0,
    };
    let remaining = 2 + topic.len() + 2 + properties + payload_len;
    let length_bytes = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + length_bytes + remaining
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_sizes_match_what_rumqttc_writes() {
        for (topic, len) in [
            ("a/b", 0),
            ("t", 120),
            ("tenant/x", 20_000),
            ("t", 3_000_000),
        ] {
            let payload = vec![7u8; len];
            let mut v4 = rumqttc::Publish::new(topic, QoS::AtLeastOnce, payload.clone());
            v4.pkid = 1;
            assert_eq!(
                publish_packet_size(Protocol::V311, topic, len),
                v4.size(),
                "3.1.1, {len}"
            );
            let mut v5 = v5_packets::Publish::new(topic, V5QoS::AtLeastOnce, payload, None);
            v5.pkid = 1;
            assert_eq!(
                publish_packet_size(Protocol::V5, topic, len),
                v5.size(),
                "5, {len}"
            );
        }
    }

    #[test]
    fn a_message_is_owed_an_ack_that_yields_one_ack_sent_unless_it_is_qos_0() {
        let received = |qos| {
            let mut publish = rumqttc::Publish::new("t", qos, vec![1]);
            publish.pkid = 7;
            match from_v311(rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish))) {
                Event::Message(message) => message,
                other => panic!("not a message: {other:?}"),
            }
        };
        assert!(received(QoS::AtMostOnce).ack().is_none());
        assert_eq!(received(QoS::AtLeastOnce).ack().map(|a| a.pkid), Some(7));
        assert_eq!(received(QoS::ExactlyOnce).ack().map(|a| a.pkid), Some(7));
        // What rumqttc reports when it sends each kind of ack.
        for sent in [Outgoing::PubAck(7), Outgoing::PubRec(7)] {
            assert!(matches!(from_outgoing(sent), Event::AckSent));
        }
    }

    #[tokio::test]
    async fn a_closed_connection_is_not_a_refusal() {
        for protocol in Protocol::ALL {
            let config = "mqtt://127.0.0.1:1"
                .parse::<MqttConfig>()
                .unwrap()
                .with_protocol(protocol);
            let (client, eventloop) = open(&config, &config.brokers[0], &SessionOptions::new("t"));
            assert_eq!(
                client.try_publish("a/+", Vec::new(), true),
                Err(RequestError::InvalidTopic("a/+".to_owned()))
            );
            drop(eventloop);
            assert_eq!(
                client.try_publish("a/b", Vec::new(), true),
                Err(RequestError::Closed),
                "{protocol}"
            );
        }
    }
}
