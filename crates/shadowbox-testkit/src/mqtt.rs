//! MQTT observers: what subscribers receive and what the broker retains.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use shadowbox_core::broker::BrokerAddress;
use tokio::task::JoinHandle;

/// One MQTT message as a subscriber saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// Whether it came as a retained message.
    pub retain: bool,
}

/// A subscriber that records every message on `filter`, in order.
pub struct Observer {
    /// Everything received so far.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Observer {
    /// Connects and subscribes; returns once the broker acknowledged.
    pub async fn subscribe(broker_url: &str, filter: &str) -> Self {
        let broker: BrokerAddress = broker_url.parse().unwrap();
        let mut options = MqttOptions::new(
            format!("observer-{}", uuid::Uuid::new_v4().simple()),
            broker.host,
            broker.port,
        );
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let mut subscribed_tx = Some(subscribed_tx);
        let record = seen.clone();
        let filter = filter.to_owned();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        client.subscribe(&filter, QoS::AtLeastOnce).await.unwrap();
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => record.lock().unwrap().push(Seen {
                        topic: p.topic.clone(),
                        payload: p.payload.to_vec(),
                        retain: p.retain,
                    }),
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .expect("subscribed within 10 s")
            .unwrap();
        Self { seen, task }
    }

    /// A copy of what was received so far.
    pub fn messages(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Panics if any topic received a lower version after a higher one.
    pub fn assert_never_regressed(&self) {
        for (topic, versions) in self.versions_by_topic() {
            assert!(
                versions.windows(2).all(|w| w[0] <= w[1]),
                "{topic} went backwards: {versions:?}"
            );
        }
    }

    /// The versions each topic received, in arrival order (a clear is -1).
    pub fn versions_by_topic(&self) -> HashMap<String, Vec<i64>> {
        let mut by_topic: HashMap<String, Vec<i64>> = HashMap::new();
        for m in self.messages() {
            by_topic
                .entry(m.topic)
                .or_default()
                .push(version_of(&m.payload));
        }
        by_topic
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The version a desired payload carries; -1 for a clear.
pub fn version_of(payload: &[u8]) -> i64 {
    shadowbox_core::payload::decode_desired(payload)
        .unwrap()
        .map_or(-1, |m| m.version)
}

/// What the broker retains under `filter`: subscribes afresh and collects
/// what arrives within a moment. Topics with no retained message are absent.
pub async fn retained(broker_url: &str, filter: &str) -> HashMap<String, Vec<u8>> {
    let observer = Observer::subscribe(broker_url, filter).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    observer
        .messages()
        .into_iter()
        .filter(|m| m.retain)
        .map(|m| (m.topic, m.payload))
        .collect()
}
