//! The shadowbox database layer: the PostgreSQL schema (the workspace's
//! `migrations/`), its migrator, and every SQL query of the project.
//!
//! Functions that change state take `&mut PgConnection`, so a caller can
//! compose them in one transaction it owns; reads take any executor. Other
//! crates never write SQL of their own. Depends on `shadowbox-core` only.
//!
//! - [`connect`]: pool creation (creating the database if missing) and migrations;
//! - [`tenants`] and [`api_keys`]: tenants and their hashed keys;
//! - [`devices`]: registering, reading, listing and decommissioning devices,
//!   and [`desired`], the one transaction that changes desired state;
//! - [`changes`]: the one statement every such transaction records its
//!   changes with (outbox rows, history rows, the relays' wake-up);
//! - [`events`]: the event stream, in commit order;
//! - [`history`]: every desired change with who made it, and when it was
//!   delivered and applied;
//! - [`idempotency`]: `Idempotency-Key` claims and the answers they replay;
//! - [`outbox`]: the outbox as operators see it (lists, reviving dead rows,
//!   resync, purge);
//! - [`relay`]: how relays claim and settle rows;
//! - [`reconcile`]: what a reconcile pass reads (tenants, their locks, each
//!   device's state and newest row);
//! - [`reported`]: the ingester's batched reported-state write;
//! - [`rollouts`]: creating, reading and steering rollouts, and
//!   [`rollout_machine`], the wave machine's steps (chunked, set-based
//!   writes);
//! - `batches`: the retention jobs' delete-in-batches loop.
//!
//! Every query is checked when it compiles (`sqlx::query!` and friends,
//! against the workspace's `.sqlx/`; `scripts/sqlx-prepare.sh` refreshes
//! it); only the dynamic filters (the device list's, a rollout's
//! selector) use a `QueryBuilder`.

pub mod api_keys;
mod batches;
pub mod changes;
pub mod connect;
pub mod desired;
pub mod devices;
pub mod error;
pub mod events;
pub mod history;
pub mod idempotency;
pub mod notifications;
pub mod outbox;
pub mod reconcile;
pub mod relay;
pub mod reported;
pub mod rollout_machine;
pub mod rollouts;
pub mod tenants;

pub use connect::{MIGRATOR, connect, drop_database, migrate};
pub use error::DbError;

/// The `LISTEN`/`NOTIFY` channel a committed outbox row is announced on.
pub const OUTBOX_CHANNEL: &str = "shadowbox_outbox";

/// The `LISTEN`/`NOTIFY` channel a rollout that became due (created,
/// resumed, cancelled, rolled back) is announced on, so a wave machine
/// starts on it at once instead of at its next poll.
pub const ROLLOUT_CHANNEL: &str = "shadowbox_rollouts";
