//! Reading what a broker retains under a few topic filters, and knowing
//! whether a read saw all of it.
//!
//! MQTT marks no end of a subscription's retained messages, and a broker
//! drops what does not fit its queue for a client (Mosquitto
//! `max_queued_messages`, 1000 by default in Debian) without telling
//! anyone. So every read is closed by a **sentinel**: after the SUBACK the
//! reader publishes a QoS 1 message to a topic of its own, which it is
//! subscribed to. Mosquitto queues a subscription's retained messages
//! while it handles the SUBSCRIBE, before it reads the reader's next
//! packet, and delivers one client's queue in order, so when the sentinel
//! arrives every retained message of that SUBSCRIBE that was not dropped
//! has arrived too. None was dropped if the client's queue never filled:
//! a read is **complete** when the sentinel arrived and fewer messages
//! than `bound` (at most the broker's queue limit) arrived in all, retained
//! or live. An incomplete read (too many messages, no sentinel within
//! [`READ_TIMEOUT`], a lost connection) still tells what it saw, but the
//! caller must not conclude anything from what it did not see, and the
//! next read starts on a fresh connection so no late message of this one
//! leaks into it.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use shadowbox_mqtt::{
    BrokerAddress, Client, ConnectionError, Event, EventLoop, MqttConfig, SessionOptions,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long a connection, a SUBACK or a read's sentinel may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest retained message read: a desired message is far smaller; a
/// larger one (not shadowbox's) fails the connection and the read.
const MAX_PACKET_BYTES: u32 = 1 << 20;

/// What one read saw.
#[derive(Debug, Default)]
pub struct RetainedRead {
    /// The retained messages by topic (topics with none are absent).
    pub retained: HashMap<String, Vec<u8>>,
    /// Whether it saw everything the broker retains under its filters.
    pub complete: bool,
    /// Messages received, retained or live, sentinel excluded.
    pub messages: u64,
}

/// A connection that reads retained messages, read after read.
pub struct RetainedReader {
    config: MqttConfig,
    broker: BrokerAddress,
    client_id: String,
    sentinel_topic: String,
    connection: Option<Connection>,
    reads: u64,
}

struct Connection {
    client: Client,
    events: mpsc::Receiver<Result<Event, ConnectionError>>,
    poller: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

impl RetainedReader {
    /// A reader of `broker` under `client_id` (connected at its first read).
    pub fn new(config: MqttConfig, broker: BrokerAddress, client_id: String) -> Self {
        let sentinel = uuid::Uuid::new_v4().simple();
        Self {
            config,
            broker,
            client_id,
            sentinel_topic: format!("shadowbox/reconcile/{sentinel}"),
            connection: None,
            reads: 0,
        }
    }

    /// A reader of the first broker of `config` that accepts a connection,
    /// under the client id `name` plus a random suffix.
    pub async fn connect_first(config: &MqttConfig, name: &str) -> anyhow::Result<Self> {
        let client_id = format!("{name}-{}", uuid::Uuid::new_v4().simple());
        let mut failures = Vec::new();
        for broker in config.brokers.iter() {
            let mut reader = Self::new(config.clone(), broker.clone(), client_id.clone());
            match reader.connection().await {
                Ok(_) => return Ok(reader),
                Err(e) => failures.push(format!("{broker}: {e:#}")),
            }
        }
        bail!("no broker accepted the connection: {}", failures.join("; "))
    }

    /// The broker it reads.
    pub fn broker(&self) -> &BrokerAddress {
        &self.broker
    }

    async fn connection(&mut self) -> anyhow::Result<&mut Connection> {
        if self.connection.is_none() {
            self.connection = Some(self.connect().await?);
        }
        Ok(self.connection.as_mut().expect("connected above"))
    }

    async fn connect(&self) -> anyhow::Result<Connection> {
        let mut options = SessionOptions::new(&self.client_id);
        options.max_incoming_packet = MAX_PACKET_BYTES;
        options.request_capacity = 1000;
        options.connect_timeout = READ_TIMEOUT;
        let (client, mut eventloop) = shadowbox_mqtt::open(&self.config, &self.broker, &options);
        let (tx, events) = mpsc::channel(1024);
        let poller = tokio::spawn(async move { poll(&mut eventloop, tx).await });
        let mut connection = Connection {
            client,
            events,
            poller,
        };
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            match next_event(&mut connection, deadline).await? {
                Event::Connected(_) => break,
                _ => continue,
            }
        }
        connection
            .client
            .subscribe_many(std::slice::from_ref(&self.sentinel_topic))
            .await?;
        loop {
            match next_event(&mut connection, deadline).await? {
                Event::Subscribed(answers) => {
                    check_subscribed(&answers, std::slice::from_ref(&self.sentinel_topic))?;
                    break;
                }
                _ => continue,
            }
        }
        Ok(connection)
    }

    /// Reads what the broker retains under `filters`; complete only if
    /// fewer than `bound` messages arrived (see the module doc). `Err`
    /// when the broker refused a filter or the connection failed.
    pub async fn read(&mut self, filters: &[String], bound: usize) -> anyhow::Result<RetainedRead> {
        self.reads += 1;
        let token = self.reads.to_string().into_bytes();
        let sentinel_topic = self.sentinel_topic.clone();
        let result = async {
            let connection = self.connection().await?;
            read_on(connection, filters, &sentinel_topic, &token).await
        }
        .await;
        match result {
            Ok(mut read) => {
                let sentinel_seen = read.complete;
                read.complete = sentinel_seen && read.messages < bound as u64;
                if !sentinel_seen {
                    self.connection = None;
                }
                Ok(read)
            }
            Err(e) => {
                self.connection = None;
                Err(e)
            }
        }
    }

    /// Disconnects.
    pub async fn close(mut self) {
        if let Some(mut connection) = self.connection.take()
            && connection.client.try_disconnect().is_ok()
        {
            let deadline = Instant::now() + Duration::from_secs(1);
            while let Ok(event) = next_event(&mut connection, deadline).await {
                if matches!(event, Event::DisconnectSent) {
                    break;
                }
            }
        }
    }
}

/// Subscribes to `filters`, sends the sentinel and collects until it is
/// back; `complete` in the result says whether it came back.
async fn read_on(
    connection: &mut Connection,
    filters: &[String],
    sentinel_topic: &str,
    token: &[u8],
) -> anyhow::Result<RetainedRead> {
    let mut read = RetainedRead::default();
    let deadline = Instant::now() + READ_TIMEOUT;
    connection.client.subscribe_many(filters).await?;
    loop {
        match next_event(connection, deadline).await? {
            Event::Subscribed(answers) => {
                check_subscribed(&answers, filters)?;
                break;
            }
            Event::Message(message) => record(&mut read, message, sentinel_topic),
            _ => {}
        }
    }
    connection
        .client
        .publish(sentinel_topic, token.to_vec(), false)
        .await?;
    loop {
        match next_event(connection, deadline).await {
            Ok(Event::Message(message)) if message.topic == sentinel_topic => {
                if message.payload() == token {
                    read.complete = true;
                    break;
                }
            }
            Ok(Event::Message(message)) => record(&mut read, message, sentinel_topic),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, filters = filters.len(), "a reconcile read did not complete");
                return Ok(read);
            }
        }
    }
    for filter in filters {
        connection.client.unsubscribe(filter).await?;
    }
    Ok(read)
}

fn record(read: &mut RetainedRead, message: shadowbox_mqtt::Message, sentinel_topic: &str) {
    if message.topic == sentinel_topic {
        return;
    }
    read.messages += 1;
    if message.retain {
        read.retained
            .insert(message.topic.clone(), message.payload().to_vec());
    }
}

fn check_subscribed(answers: &[Result<(), String>], filters: &[String]) -> anyhow::Result<()> {
    if let Some((filter, Err(reason))) = filters.iter().zip(answers).find(|(_, a)| a.is_err()) {
        bail!("the broker refused the subscription to {filter}: {reason}");
    }
    Ok(())
}

async fn next_event(connection: &mut Connection, deadline: Instant) -> anyhow::Result<Event> {
    match tokio::time::timeout_at(deadline, connection.events.recv()).await {
        Err(_) => bail!("the broker did not answer within {READ_TIMEOUT:?}"),
        Ok(None) => bail!("the connection's event loop ended"),
        Ok(Some(Err(e))) => Err(e).context("connection to the broker lost"),
        Ok(Some(Ok(event))) => Ok(event),
    }
}

async fn poll(eventloop: &mut EventLoop, events: mpsc::Sender<Result<Event, ConnectionError>>) {
    loop {
        let event = eventloop.poll().await;
        let failed = event.is_err();
        if events.send(event).await.is_err() || failed {
            return;
        }
    }
}
