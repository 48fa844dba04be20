//! shadowbox telemetry: what every role needs to be observed, and nothing
//! of any role.
//!
//! - [`logging`]: the global `tracing` subscriber, readable text or JSON;
//! - [`metrics`]: a Prometheus registry as an OpenMetrics response, and the
//!   `/metrics` + `/healthz` listener of the roles that run without the
//!   API (`shadowbox relay`, `shadowbox ingest`).
//!
//! Depends on no shadowbox crate; the API and the binary depend on it.

pub mod logging;
pub mod metrics;

pub use logging::LogFormat;
pub use metrics::{metrics_response, serve_metrics};
