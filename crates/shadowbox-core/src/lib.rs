//! The shadowbox domain core: the vocabulary every other crate speaks.
//!
//! Pure data and rules, no I/O (new API keys take the operating system's
//! random numbers, nothing more), so it is fast to test and safe to reuse:
//!
//! - [`api_key`]: the tenant API key format, and checking a presented key
//!   or the admin token in constant time;
//! - [`backoff`]: the backoff schedules (reconnecting, and publishes the
//!   broker refused);
//! - [`convergence`]: in sync, a rejection that concerns the device, and
//!   the time-to-converge histogram buckets;
//! - [`idempotency`]: the `Idempotency-Key` form, its replay window and
//!   what makes two requests the same;
//! - [`id`]: validated [`TenantId`] and [`DeviceId`] that cannot inject MQTT
//!   wildcards or topic levels;
//! - [`document`]: shadow documents (JSON objects) and their size and depth
//!   limits;
//! - [`merge`]: RFC 7396 JSON merge patch;
//! - [`tags`]: device tags and tag filters, and their limits;
//! - [`delta`]: the desired parts that differ from reported;
//! - [`topic`]: building and parsing `tenant/{t}/device/{d}/shadow/{kind}`;
//! - [`payload`]: the MQTT wire payloads devices depend on.
//!
//! It depends on nothing of shadowbox; every crate but `shadowbox-telemetry`
//! depends on it.

pub mod api_key;
pub mod backoff;
pub mod convergence;
pub mod delta;
pub mod document;
pub mod id;
pub mod idempotency;
pub mod merge;
pub mod payload;
pub mod tags;
pub mod topic;

pub use document::{Document, DocumentError, DocumentLimits};
pub use id::{DeviceId, IdError, TenantId};
