//! Test support shared by every shadowbox crate: the one home of test
//! helpers.
//!
//! - [`TestDb`]: a fresh, migrated database on the shared PostgreSQL,
//!   dropped when the test ends;
//! - [`Mosquitto`]: a private broker on a free port that a test may stop,
//!   restart, reload (SIGHUP), freeze and thaw, killed when the test ends, even on panic;
//! - [`NatsCluster`]: a private cluster of `nats-server` nodes with
//!   JetStream and MQTT (3.1.1), retained messages on every node, for the
//!   failover tests on a real broker cluster;
//! - [`PrivatePostgres`]: a private PostgreSQL cluster (initdb/pg_ctl) for
//!   tests that stop or restart the database;
//! - [`Fleet`]: a tenant's devices in a test database, changed through the
//!   API's desired-state transaction;
//! - [`mqtt`]: the one MQTT test client (publish with the PUBACK confirmed,
//!   subscribe and record), what a broker retains, desired payloads;
//! - [`Running`]: a role (relay, ingester, simulator) in a task of the
//!   test, with its own metrics, stopped with a bound;
//! - [`ChildProcess`]: a child process (the `shadowbox` binary, a broker,
//!   a command-line client), killed when the test ends, its output shown
//!   when the test fails;
//! - [`TcpProxy`]: a TCP proxy in front of a broker that holds a
//!   client's bytes and releases them later, even after the client died;
//! - [`tls`]: certificates generated at test time, for TLS listeners;
//! - [`eventually`] and [`eventually_blocking`]: waiting for a condition
//!   with a deadline, [`PATIENCE`] unless a test says otherwise;
//! - [`under_both_protocols!`]: one test body run under MQTT 5 and 3.1.1.
//!
//! Tests that break things use the private servers; nothing here ever
//! touches the shared broker, and the shared database only through fresh
//! databases. Client ids come from [`mqtt::unique_client_id`], so no two
//! tests (or runs) share a broker session.

mod child;
mod db;
mod fleet;
mod logs;
mod metrics;
mod mosquitto;
pub mod mqtt;
mod nats;
mod postgres;
mod process;
mod proxy;
mod running;
pub mod tls;
mod wait;

pub use child::{ChildProcess, run_bounded};
pub use db::TestDb;
pub use fleet::{Fleet, set_desired_version};
pub use logs::init_logs;
pub use metrics::metric_value;
pub use mosquitto::{MAX_INFLIGHT_MESSAGES, Mosquitto, MosquittoConfig, MosquittoTls};
pub use nats::NatsCluster;
pub use postgres::{Durability, PrivatePostgres};
pub use process::{free_port, wait_for_port};
pub use proxy::TcpProxy;
pub use running::Running;
pub use wait::{PATIENCE, eventually, eventually_blocking};

pub use shadowbox_mqtt::Protocol;

/// Runs each named `async fn name(protocol: Protocol)` once per MQTT
/// version, as the tests `name::v5` and `name::v3_1_1`: one body, both
/// protocols.
#[macro_export]
macro_rules! under_both_protocols {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[tokio::test]
            async fn v5() {
                super::$test($crate::Protocol::V5).await;
            }

            #[tokio::test]
            async fn v3_1_1() {
                super::$test($crate::Protocol::V311).await;
            }
        }
    )+};
}
