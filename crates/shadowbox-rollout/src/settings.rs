//! The wave machine's settings and their defaults (used by the command
//! line too).

use std::time::Duration;

use shadowbox_core::DocumentLimits;

/// Devices written per transaction unless told otherwise: large enough
/// that a chunk costs a few statements per thousand devices, small enough
/// that a PATCH of one of its devices waits a fraction of a second at
/// most.
pub const DEFAULT_CHUNK_SIZE: i64 = 2000;

/// How often the machine looks for due rollouts when idle, and how long a
/// rollout waiting for its gate is left alone between two counts, unless
/// told otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How the wave machine runs.
#[derive(Debug, Clone, Copy)]
pub struct RolloutSettings {
    /// Devices written per transaction (`SHADOWBOX_ROLLOUT_CHUNK_SIZE`).
    pub chunk_size: i64,
    /// Idle polling and gate counting interval
    /// (`SHADOWBOX_ROLLOUT_POLL_INTERVAL`).
    pub poll_interval: Duration,
    /// The document limits every desired write obeys.
    pub limits: DocumentLimits,
}

impl Default for RolloutSettings {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            poll_interval: DEFAULT_POLL_INTERVAL,
            limits: DocumentLimits::default(),
        }
    }
}
