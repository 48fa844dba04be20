//! MQTT observers: what subscribers receive and what the broker retains.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shadowbox_mqtt::{Event, MqttConfig, SessionOptions};
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
    /// Connects (MQTT 5) and subscribes; returns once the broker
    /// acknowledged.
    pub async fn subscribe(broker_url: &str, filter: &str) -> Self {
        Self::subscribe_with(&broker_url.parse().unwrap(), filter).await
    }

    /// Connects to the first broker of `config`, in its protocol, and
    /// subscribes; returns once the broker acknowledged.
    pub async fn subscribe_with(config: &MqttConfig, filter: &str) -> Self {
        let options = SessionOptions::new(format!("observer-{}", uuid::Uuid::new_v4().simple()));
        let (client, mut eventloop) = shadowbox_mqtt::open(config, &config.brokers[0], &options);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let mut subscribed_tx = Some(subscribed_tx);
        let record = seen.clone();
        let filter = filter.to_owned();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Connected(_)) => {
                        client.try_subscribe(&filter).unwrap();
                    }
                    Ok(Event::Subscribed(_)) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Message(m)) => record.lock().unwrap().push(Seen {
                        payload: m.payload().to_vec(),
                        topic: m.topic,
                        retain: m.retain,
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
    retained_with(&broker_url.parse().unwrap(), filter).await
}

/// [`retained`] at the first broker of `config`, in its protocol.
pub async fn retained_with(config: &MqttConfig, filter: &str) -> HashMap<String, Vec<u8>> {
    let observer = Observer::subscribe_with(config, filter).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    observer
        .messages()
        .into_iter()
        .filter(|m| m.retain)
        .map(|m| (m.topic, m.payload))
        .collect()
}
