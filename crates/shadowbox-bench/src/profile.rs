//! The sizes of a run: the full suite (5-6 minutes on 2 cores) or
//! `--quick` (under 2 minutes, for CI).

use std::time::Duration;

use serde::Serialize;

/// Every size and duration a run uses.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    /// `--quick`.
    pub quick: bool,
    /// Devices per tenant for the writes, latency and ingest figures.
    pub devices: u64,
    /// Concurrent clients of the write figure.
    pub clients: Vec<usize>,
    /// Fleet sizes of the write figure (one tenant each).
    pub write_fleets: Vec<u64>,
    /// Load before each measured window, not counted.
    pub warmup: Duration,
    /// Each measured window (writes, pgbench, scale).
    pub window: Duration,
    /// Update rates of the commit-to-device figure.
    pub rates: Vec<u64>,
    /// Each rate's window.
    pub rate_window: Duration,
    /// Pending rows of the drain backlog.
    pub backlog_rows: u64,
    /// Devices the backlog is spread over (several rows each).
    pub backlog_devices: u64,
    /// Fleet sizes of the drain curve: one pending row per device, drained
    /// under `serve` and under `relay` alone.
    pub drain_curve: Vec<u64>,
    /// Reported messages of the ingest figure.
    pub reported_messages: u64,
    /// Fleet sizes of the scale curve.
    pub scale_fleets: Vec<u64>,
    /// Finished outbox rows in every scale-curve database.
    pub scale_history: u64,
    /// Fleet sizes of the reconcile figure.
    pub reconcile_fleets: Vec<u64>,
    /// Concurrent clients of the scale curve's writes.
    pub scale_clients: usize,
    /// Devices of each rollout of the rollout figure.
    pub rollout_fleets: Vec<u64>,
}

impl Profile {
    /// The full suite.
    pub fn full() -> Self {
        Self {
            quick: false,
            devices: 10_000,
            clients: vec![8, 32, 128],
            write_fleets: vec![1_000, 10_000],
            warmup: Duration::from_secs(1),
            window: Duration::from_secs(10),
            rates: vec![100, 1_000, 5_000],
            rate_window: Duration::from_secs(10),
            backlog_rows: 100_000,
            backlog_devices: 10_000,
            drain_curve: vec![10_000, 100_000, 1_000_000],
            reported_messages: 200_000,
            scale_fleets: vec![1_000, 100_000, 1_000_000],
            reconcile_fleets: vec![10_000, 100_000],
            scale_history: 1_000_000,
            scale_clients: 32,
            rollout_fleets: vec![10_000, 100_000],
        }
    }

    /// Small sizes and short windows: every figure, no meaningful numbers.
    pub fn quick() -> Self {
        Self {
            quick: true,
            devices: 1_000,
            write_fleets: vec![1_000],
            warmup: Duration::from_millis(500),
            window: Duration::from_secs(2),
            rate_window: Duration::from_secs(2),
            backlog_rows: 10_000,
            backlog_devices: 1_000,
            drain_curve: vec![1_000, 10_000],
            reported_messages: 20_000,
            scale_fleets: vec![1_000, 10_000],
            reconcile_fleets: vec![1_000],
            scale_history: 10_000,
            rollout_fleets: vec![1_000],
            ..Self::full()
        }
    }
}
