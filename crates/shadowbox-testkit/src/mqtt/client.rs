//! The one MQTT test client: connects (MQTT 5 unless told otherwise) with
//! a unique client id and a clean session, publishes at QoS 1 and returns
//! once the broker acknowledged that very publish, subscribes and records
//! every message with its retain flag. Waits are bounded by [`PATIENCE`];
//! a broker that does not answer in time, or refuses, fails the test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use shadowbox_mqtt::{MqttConfig, RequestError, SessionOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::events;
use super::session::{Answer, Message, Session};
use crate::wait::{PATIENCE, eventually};

/// Publishes awaiting their PUBACK at once.
const IN_FLIGHT: u16 = 1000;
/// Requests queued for the event loop before a caller waits for room.
const REQUEST_QUEUE: usize = 1000;
/// Largest packet sent or received: above the document limits.
const MAX_PACKET: u32 = 1 << 20;
/// How long [`retained`] collects after subscribing: retained messages
/// follow the SUBACK at once, and MQTT marks no end of them.
const RETAINED_BURST: Duration = Duration::from_millis(500);

/// `name` with a random suffix: a client id (or share group) that no other
/// test, and no other run on a shared broker, uses.
pub fn unique_client_id(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

/// A connected MQTT client whose event loop runs in a task until dropped.
pub struct Client {
    id: String,
    client: shadowbox_mqtt::Client,
    session: Arc<Mutex<Session>>,
    /// Held while a publish is queued, so waiters and publishes are queued
    /// in the same order.
    publishing: tokio::sync::Mutex<()>,
    /// Messages already returned by [`Client::next_message`].
    read: usize,
    task: JoinHandle<()>,
}

impl Client {
    /// Connects to `broker_url` (`mqtt://host:port`) over MQTT 5; see
    /// [`Client::connect_with`].
    pub async fn connect(broker_url: &str, name: &str) -> Self {
        let config: MqttConfig = broker_url.parse().expect("a broker URL");
        Self::connect_with(&config, name).await
    }

    /// Connects to the first broker of `config`, in its protocol and with
    /// its TLS and login, as `name` plus a unique suffix, with a clean
    /// session; returns once the broker accepted. After a lost connection
    /// it reconnects and subscribes again; a publish the connection broke
    /// under fails.
    pub async fn connect_with(config: &MqttConfig, name: &str) -> Self {
        let id = unique_client_id(name);
        let mut options = SessionOptions::new(&id);
        options.outgoing_window = IN_FLIGHT;
        options.request_capacity = REQUEST_QUEUE;
        options.max_incoming_packet = MAX_PACKET;
        options.max_outgoing_packet = MAX_PACKET;
        let (client, eventloop) = shadowbox_mqtt::open(config, &config.brokers[0], &options);
        let session = Arc::<Mutex<Session>>::default();
        let task = events::spawn(client.clone(), eventloop, Arc::clone(&session));
        let this = Self {
            id,
            client,
            session,
            publishing: tokio::sync::Mutex::default(),
            read: 0,
            task,
        };
        let connected = this.session().expect_connected();
        tokio::time::timeout(PATIENCE, connected)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} not connected to {} within {PATIENCE:?}",
                    this.id,
                    config.describe()
                )
            })
            .expect("the event loop runs");
        this
    }

    /// Its client id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Subscribes to `filter` at QoS 1 and returns once the broker
    /// granted it (retained messages follow); panics if it refused.
    pub async fn subscribe(&self, filter: &str) {
        self.try_subscribe(filter)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// [`Client::subscribe`] that answers why the broker did not grant the
    /// subscription instead of failing the test (a cluster node may refuse
    /// one while it recovers).
    pub async fn try_subscribe(&self, filter: &str) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let answer = loop {
            let queued = {
                let mut session = self.session();
                let queued = events::try_subscribe(&self.client, &mut session, filter);
                if queued.is_ok() {
                    session.filters.push(filter.to_owned());
                }
                queued
            };
            match queued {
                Ok(answer) => break answer,
                // The request queue is full: wait for room.
                Err(RequestError::Closed) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => return Err(format!("{}: subscribe to {filter}: {e}", self.id)),
            }
        };
        self.answered(&format!("the SUBACK for {filter}"), [answer])
            .await
    }

    /// Publishes at QoS 1 (not retained) and returns once the broker
    /// acknowledged it.
    pub async fn publish(&self, topic: impl Into<String>, payload: impl Into<Vec<u8>>) {
        self.publish_each([(topic.into(), payload.into())], false)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Publishes a retained message at QoS 1 and returns once the broker
    /// acknowledged it.
    pub async fn publish_retained(&self, topic: impl Into<String>, payload: impl Into<Vec<u8>>) {
        self.publish_each([(topic.into(), payload.into())], true)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Publishes every message at QoS 1 (not retained), pipelined, and
    /// returns once the broker acknowledged each of them.
    pub async fn publish_all(&self, messages: impl IntoIterator<Item = (String, Vec<u8>)>) {
        self.publish_each(messages, false)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// [`Client::publish_all`] that answers why a publish was not
    /// acknowledged (refused, the connection broke before its PUBACK, no
    /// answer within [`PATIENCE`]) instead of failing the test: for a
    /// broker that may drop connections, where a device publishes again.
    pub async fn try_publish_all(
        &self,
        messages: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<(), String> {
        self.publish_each(messages, false).await
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<Message> {
        self.session().messages.clone()
    }

    /// Waits (bounded by [`PATIENCE`]) until the messages received so far
    /// satisfy `done`; panics with `what` otherwise.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Message]) -> bool) {
        eventually(PATIENCE, what, || async { done(&self.session().messages) }).await;
    }

    /// The oldest message this has not returned yet, waiting (bounded by
    /// [`PATIENCE`]) for one to arrive.
    pub async fn next_message(&mut self) -> Message {
        let read = self.read;
        self.wait_for("a message", |messages| messages.len() > read)
            .await;
        self.read += 1;
        self.session().messages[read].clone()
    }

    /// Queues every publish, each with a waiter for its own PUBACK, then
    /// waits for them all.
    async fn publish_each(
        &self,
        messages: impl IntoIterator<Item = (String, Vec<u8>)>,
        retain: bool,
    ) -> Result<(), String> {
        let mut answers = Vec::new();
        let order = self.publishing.lock().await;
        for (topic, payload) in messages {
            answers.push(self.session().expect_puback());
            if let Err(e) = self.client.publish(&topic, payload, retain).await {
                self.session().forget_last_puback();
                return Err(format!("{}: publish to {topic}: {e}", self.id));
            }
        }
        drop(order);
        self.answered("PUBACK", answers).await
    }

    /// Waits (bounded by [`PATIENCE`] in all) for every answer; `Err`
    /// unless the broker accepted each.
    async fn answered(
        &self,
        what: &str,
        answers: impl IntoIterator<Item = oneshot::Receiver<Answer>>,
    ) -> Result<(), String> {
        let all = async {
            for answer in answers {
                match answer.await {
                    Ok(Ok(())) => {}
                    Ok(Err(refused)) => return Err(format!("{}: {what}: {refused}", self.id)),
                    Err(_) => {
                        return Err(format!(
                            "{}: the connection broke before the {what}",
                            self.id
                        ));
                    }
                }
            }
            Ok(())
        };
        tokio::time::timeout(PATIENCE, all)
            .await
            .unwrap_or_else(|_| Err(format!("{}: no {what} within {PATIENCE:?}", self.id)))
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the broker retains under `filter`: subscribes afresh and collects
/// the retained messages that arrive within a moment. Topics with no
/// retained message are absent.
pub async fn retained(broker_url: &str, filter: &str) -> HashMap<String, Vec<u8>> {
    let config: MqttConfig = broker_url.parse().expect("a broker URL");
    retained_with(&config, filter).await
}

/// [`retained`] on the first broker of `config`, in its protocol.
pub async fn retained_with(config: &MqttConfig, filter: &str) -> HashMap<String, Vec<u8>> {
    try_retained_with(config, filter)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// [`retained_with`] that answers why the broker refused the subscription
/// instead of failing the test.
pub async fn try_retained_with(
    config: &MqttConfig,
    filter: &str,
) -> Result<HashMap<String, Vec<u8>>, String> {
    let client = Client::connect_with(config, "retained").await;
    client.try_subscribe(filter).await?;
    tokio::time::sleep(RETAINED_BURST).await;
    Ok(client
        .messages()
        .into_iter()
        .filter(|m| m.retain)
        .map(|m| (m.topic, m.payload))
        .collect())
}
