//! shadowbox's broker connectivity: the one home of everything MQTT below
//! the topics and payloads (which `shadowbox-core` owns).
//!
//! In the order a connection is made:
//!
//! - [`address`]: the brokers of `MQTT_URL` (`mqtt://`, `mqtts://`,
//!   comma-separated for failover, the user name in the URL);
//! - [`config`]: [`MqttConfig`], everything a process is told about its
//!   brokers, read once at start (protocol version, TLS files, password
//!   file);
//! - [`tls`]: the rustls client configuration (ring provider);
//! - [`failover`]: which broker to try next, when (the reconnect
//!   backoff), and the state `/readyz` reports;
//! - [`client`]: [`Client`] and [`EventLoop`], one client over MQTT 5 and
//!   3.1.1 with normalized [`Event`]s;
//! - [`puback`]: what a PUBACK reason code means for its publish;
//! - [`probe`]: a connect-and-disconnect check for readiness.
//!
//! Depends on `shadowbox-core` only (for the reconnect backoff of
//! `shadowbox_core::backoff`); the relay, the ingester, the api, the
//! simulator and the test support depend on it.

pub mod address;
pub mod client;
pub mod config;
pub mod failover;
pub mod probe;
pub mod puback;
pub mod tls;

pub use address::{BrokerAddress, Transport};
pub use client::{
    Ack, Client, ConnAck, ConnectionError, Event, EventLoop, Message, RequestError, SessionOptions,
    open, publish_packet_size,
};
pub use config::{ConfigError, MqttConfig, Protocol};
pub use failover::{BrokerState, BrokerStatus, Failover};
pub use puback::{ReasonCode, Verdict};
pub use tls::TlsFiles;
