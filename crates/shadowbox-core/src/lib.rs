//! The shadowbox domain core: the vocabulary every other crate speaks.
//!
//! Pure data and rules, no I/O (new API keys take the operating system's
//! random numbers, nothing more), so it is fast to test and safe to reuse:
//!
//! - [`event`]: the event stream's kinds and commit-ordered ids;
//! - [`history`]: what a desired change was and who made it (admin, a key,
//!   a rollout);
//! - [`api_key`]: the tenant API key format, and checking a presented key
//!   or the admin token in constant time;
//! - [`backoff`]: the backoff schedules (reconnecting, and publishes the
//!   broker refused);
//! - [`convergence`]: in sync, a rejection that concerns the device, and
//!   the time-to-converge histogram buckets;
//! - [`duration`]: durations as people write them (`5m`, `7d`);
//! - [`idempotency`]: the `Idempotency-Key` form, its replay window and
//!   what makes two requests the same;
//! - [`device`] and [`outbox`]: the statuses and kinds, one enum each,
//!   spelled alike in SQL, JSON and on the command line ([`text_enum`]
//!   writes their mappings once; the optional features `sqlx`, `clap` and
//!   `openapi` add theirs);
//! - [`duration`]: durations as people write them (`500ms`, `10m`, `7d`);
//! - [`id`]: validated [`TenantId`] and [`DeviceId`] that cannot inject MQTT
//!   wildcards or topic levels;
//! - [`document`]: shadow documents (JSON objects) and their size and depth
//!   limits;
//! - [`merge`]: RFC 7396 JSON merge patch;
//! - [`tags`]: device tags and tag filters, and their limits;
//! - [`rollout`]: rollouts' statuses and transitions, waves and gates;
//! - [`delta`]: the desired parts that differ from reported;
//! - [`topic`]: building and parsing `tenant/{t}/device/{d}/shadow/{kind}`;
//! - [`payload`]: the MQTT wire payloads devices depend on;
//! - [`staleness`]: when a reported state replaces the stored one, and
//!   [`report`]: what became of a report.
//!
//! It depends on nothing of shadowbox; every crate but `shadowbox-telemetry`
//! depends on it.

pub mod api_key;
pub mod backoff;
pub mod convergence;
pub mod delta;
pub mod device;
pub mod document;
pub mod duration;
pub mod event;
pub mod history;
pub mod id;
pub mod idempotency;
pub mod merge;
pub mod outbox;
pub mod payload;
pub mod report;
pub mod rollout;
pub mod staleness;
pub mod tags;
pub mod text_enum;
pub mod topic;

pub use device::DeviceStatus;
pub use document::{Document, DocumentError, DocumentLimits};
pub use history::{Actor, Change};
pub use id::{DeviceId, IdError, TenantId};
pub use outbox::{OutboxKind, OutboxStatus};
