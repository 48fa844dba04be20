//! MQTT clients of the load generator: a pipelined QoS 1 publisher (the
//! broker's raw publish rate, and the devices' reported traffic), a
//! counting subscriber (the broker's raw delivery rate) and the devices'
//! view of the desired topics (commit-to-device latency).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS};
use tokio::task::JoinHandle;

/// Publishes awaiting their PUBACK at once: the relay's default window.
const IN_FLIGHT: u16 = 2000;

/// Longest any exchange with the broker is waited for.
const PATIENCE: Duration = Duration::from_secs(60);

/// `future`, or an error once `PATIENCE` passed.
async fn bounded<T>(
    what: &str,
    future: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(PATIENCE, future)
        .await
        .with_context(|| format!("{what}: no answer from the broker within {PATIENCE:?}"))?
}

/// Connects, subscribes to `filter` at QoS 1 and waits for the SUBACK.
async fn subscribed(
    name: &str,
    port: u16,
    filter: &str,
) -> anyhow::Result<(AsyncClient, EventLoop)> {
    let (client, mut eventloop) = connect(name, port);
    client.subscribe(filter, QoS::AtLeastOnce).await?;
    bounded("subscribe", async {
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await? {
                return Ok(());
            }
        }
    })
    .await?;
    Ok((client, eventloop))
}

/// A desired payload of version `version`, the size of the relay's.
pub fn desired_payload(version: u64) -> Vec<u8> {
    format!(
        r#"{{"desired":{{"n":{version}}},"version":{version},"timestamp":"2026-11-27T04:00:00.000Z"}}"#
    )
    .into_bytes()
}

/// A connected client on the private broker at `port`, with Nagle off
/// (otherwise delayed ACKs add ~40 ms) and room for pipelined QoS 1.
pub fn connect(name: &str, port: u16) -> (AsyncClient, EventLoop) {
    let id = format!("bench-{name}-{}", fastrand::u32(..));
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options
        .set_inflight(IN_FLIGHT)
        .set_max_packet_size(1 << 20, 1 << 20)
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 4096);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    (client, eventloop)
}

/// Publishes every `(topic, payload)` at QoS 1 from one pipelined client
/// and answers how long it took from the first send to the last PUBACK.
pub async fn publish_all(
    port: u16,
    messages: Vec<(String, Vec<u8>)>,
    retain: bool,
) -> anyhow::Result<Duration> {
    let (client, mut eventloop) = connect("publisher", port);
    let total = messages.len();
    let started = Instant::now();
    let publisher = tokio::spawn(async move {
        for (topic, payload) in messages {
            client
                .publish(topic, QoS::AtLeastOnce, retain, payload)
                .await?;
        }
        anyhow::Ok(client)
    });
    bounded("publish", async {
        let mut acked = 0;
        while acked < total {
            if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await? {
                acked += 1;
            }
        }
        Ok(())
    })
    .await?;
    let took = started.elapsed();
    publisher.await??.disconnect().await?;
    // Let the DISCONNECT go out.
    let _ = tokio::time::timeout(Duration::from_millis(100), eventloop.poll()).await;
    Ok(took)
}

/// A subscriber that counts the messages on a filter.
pub struct Counter {
    task: JoinHandle<anyhow::Result<Instant>>,
}

impl Counter {
    /// Subscribes to `filter` at QoS 1 and returns once the broker
    /// acknowledged; counts until `expected` messages arrived.
    pub async fn subscribe(port: u16, filter: &str, expected: usize) -> anyhow::Result<Self> {
        let (client, mut eventloop) = subscribed("counter", port, filter).await?;
        let task = tokio::spawn(async move {
            let _client = client;
            let mut received = 0;
            while received < expected {
                if let Event::Incoming(Packet::Publish(_)) = eventloop.poll().await? {
                    received += 1;
                }
            }
            Ok(Instant::now())
        });
        Ok(Self { task })
    }

    /// When the last expected message arrived.
    pub async fn last_arrival(self) -> anyhow::Result<Instant> {
        bounded("count", async { self.task.await? }).await
    }
}

/// When each (topic, version) arrived at a subscriber.
pub type Arrivals = Arc<Mutex<HashMap<(String, i64), Instant>>>;

/// A device-side subscriber of the desired topics: records when each
/// version of each topic arrived.
pub struct Devices {
    /// Every version seen so far, by topic.
    pub arrivals: Arrivals,
    task: JoinHandle<()>,
}

impl Devices {
    /// Subscribes to `filter` at QoS 1 (as devices do) and returns once
    /// the broker acknowledged.
    pub async fn subscribe(port: u16, filter: &str) -> anyhow::Result<Self> {
        let (client, mut eventloop) = subscribed("devices", port, filter).await?;
        let arrivals = Arrivals::default();
        let record = arrivals.clone();
        let task = tokio::spawn(async move {
            let _client = client;
            while let Ok(event) = eventloop.poll().await {
                if let Event::Incoming(Packet::Publish(p)) = event {
                    let at = Instant::now();
                    if let Ok(Some(message)) = shadowbox_core::payload::decode_desired(&p.payload) {
                        record
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert((p.topic, message.version), at);
                    }
                }
            }
        });
        Ok(Self { arrivals, task })
    }
}

impl Drop for Devices {
    fn drop(&mut self) {
        self.task.abort();
    }
}
