//! Test support shared by every shadowbox crate.
//!
//! - [`TestDb`]: a fresh, migrated database on the shared PostgreSQL,
//!   dropped when the test ends;
//! - [`Mosquitto`]: a private broker on a free port that a test may stop,
//!   restart, freeze and thaw, killed when the test ends, even on panic;
//! - [`PrivatePostgres`]: a private PostgreSQL cluster (initdb/pg_ctl) for
//!   tests that stop or restart the database;
//! - [`Fleet`]: devices in a test database, changed through the API's
//!   desired-state transaction;
//! - [`mqtt`]: observers of what subscribers receive and brokers retain;
//! - [`tls`]: certificates generated at test time, for TLS listeners;
//! - [`eventually`]: waiting for a condition with a deadline;
//! - [`under_both_protocols!`]: one test body run under MQTT 5 and 3.1.1.
//!
//! Tests that break things use the private ones; nothing here ever touches
//! the shared broker, and the shared database only through fresh databases.

mod db;
mod fleet;
mod mosquitto;
pub mod mqtt;
mod postgres;
mod process;
pub mod tls;
mod wait;

pub use db::TestDb;
pub use fleet::Fleet;
pub use mosquitto::{Mosquitto, MosquittoConfig, MosquittoTls};
pub use postgres::PrivatePostgres;
pub use process::{free_port, wait_for_port};
pub use wait::eventually;

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
