//! MQTT in tests: [`Client`], the one test client (publish with the PUBACK
//! confirmed, subscribe and record), [`retained`] (what a broker retains)
//! and the [`desired`] payload readers.
//!
//! The client speaks MQTT 5 or 3.1.1 through `shadowbox_mqtt`
//! (`events.rs`); its bookkeeping (`session.rs`) knows nothing of the
//! protocol version.

mod client;
pub mod desired;
mod events;
mod session;

pub use client::{Client, retained, retained_with, try_retained_with, unique_client_id};
pub use desired::{ALL_DESIRED, assert_never_regressed, version_of, versions_by_topic};
pub use session::Message;
