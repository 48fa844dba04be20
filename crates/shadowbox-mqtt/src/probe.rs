//! One connection and nothing else, with the same client and settings the
//! relay and the ingester use: readiness (does a broker accept us: TCP,
//! TLS, credentials, CONNACK?) and discarding a retired client's session
//! (a clean start under its client id).

use std::time::Duration;

use crate::address::BrokerAddress;
use crate::client::{ConnectionError, Event, SessionOptions, open};
use crate::config::MqttConfig;

/// How long the DISCONNECT may take to go out.
const DISCONNECT_GRACE: Duration = Duration::from_secs(1);

/// Connects to `broker` with a throw-away clean session and disconnects;
/// `Err` says why it could not, within `timeout`.
pub async fn probe(
    config: &MqttConfig,
    broker: &BrokerAddress,
    timeout: Duration,
) -> Result<(), ConnectionError> {
    // At most 23 characters, which every broker accepts.
    let id = uuid::Uuid::new_v4().simple().to_string();
    connect_once(config, broker, &format!("sbready-{}", &id[..15]), timeout).await
}

/// Discards the session the broker keeps for `client_id` (and the
/// messages queued for it): connects with a clean start under that id and
/// disconnects. A client still connected with that id is disconnected.
pub async fn discard_session(
    config: &MqttConfig,
    broker: &BrokerAddress,
    client_id: &str,
    timeout: Duration,
) -> Result<(), ConnectionError> {
    connect_once(config, broker, client_id, timeout).await
}

/// Connects as `client_id` with a clean start (and under MQTT 5 a session
/// that ends with the connection), then disconnects.
async fn connect_once(
    config: &MqttConfig,
    broker: &BrokerAddress,
    client_id: &str,
    timeout: Duration,
) -> Result<(), ConnectionError> {
    let mut options = SessionOptions::new(client_id);
    options.connect_timeout = timeout;
    options.keep_alive = Duration::from_secs(10);
    let (client, mut events) = open(config, broker, &options);
    let connack = async {
        loop {
            match events.poll().await? {
                Event::Connected(_) => return Ok(()),
                _ => continue,
            }
        }
    };
    match tokio::time::timeout(timeout, connack).await {
        Err(_) => return Err(ConnectionError(format!("no CONNACK within {timeout:?}"))),
        Ok(Err(error)) => return Err(error),
        Ok(Ok(())) => {}
    }
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(DISCONNECT_GRACE, async {
            while let Ok(event) = events.poll().await {
                if matches!(event, Event::DisconnectSent) {
                    break;
                }
            }
        })
        .await;
    }
    Ok(())
}

/// Probes the brokers in list order starting at `preferred`, and returns
/// the index of the first one that accepts; `Err` holds every broker's
/// failure, in the order tried.
pub async fn probe_any(
    config: &MqttConfig,
    preferred: usize,
    timeout: Duration,
) -> Result<usize, Vec<(String, ConnectionError)>> {
    let count = config.brokers.len();
    let mut failures = Vec::new();
    for index in (0..count).map(|i| (preferred + i) % count) {
        let broker = &config.brokers[index];
        match probe(config, broker, timeout).await {
            Ok(()) => return Ok(index),
            Err(error) => failures.push((broker.to_string(), error)),
        }
    }
    Err(failures)
}
