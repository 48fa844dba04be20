//! shadowbox device simulator: a fleet of devices that apply the desired
//! state shadowbox publishes and report it back, over a real MQTT broker.
//!
//! Data flows through the modules in this order:
//!
//! - [`settings`]: what to simulate ([`SimSettings`]): tenant, devices,
//!   how they share connections and how flaky they are;
//! - `connection`: one MQTT connection serving a group of devices: it
//!   subscribes to their desired topics and publishes their reports,
//!   reconnecting with the reconnect backoff (`shadowbox_core::backoff`);
//! - `device`: one device's rules (ignore older versions, forget on clear)
//!   and its reported payload;
//! - [`reject`]: when a device refuses a version (`--reject-rate`,
//!   `--reject-when`), reported as a rejection;
//! - [`stats`]: shared counters ([`SimStats`]), logged periodically.
//!
//! It depends on `shadowbox-core` and `shadowbox-mqtt` only: the simulator
//! is a device, it knows the wire contract and nothing of the service.

mod connection;
mod device;
pub mod reject;
pub mod settings;
pub mod stats;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use reject::{RejectRule, RejectWhen};
pub use settings::{
    Connections, DEFAULT_APPLY_DELAY, DEFAULT_CONNECTIONS, DEFAULT_DROP_RATE,
    DEFAULT_ONLINE_FRACTION, DEFAULT_REPORT_EVERY, SimSettings, device_ids,
};
pub use stats::SimStats;

/// Runs the simulated devices until `shutdown` is cancelled, logging the
/// counters every `settings.report_every`; returns the final counters.
pub async fn run(settings: SimSettings, shutdown: CancellationToken) -> anyhow::Result<SimStats> {
    settings.validate()?;
    let counters = Arc::new(stats::Counters::default());
    let groups = connection::groups(&settings);
    counters.set_online(groups.iter().map(|g| g.devices.len()).sum());
    tracing::info!(
        brokers = %settings.mqtt.describe(),
        tenant = %settings.tenant,
        devices = settings.devices.len(),
        online = counters.snapshot().online,
        connections = groups.len(),
        "simulator starting"
    );
    let settings = Arc::new(settings);
    let tracker = TaskTracker::new();
    for group in groups {
        tracker.spawn(connection::run(
            group,
            Arc::clone(&settings),
            Arc::clone(&counters),
            shutdown.clone(),
        ));
    }
    tracker.close();
    let mut ticks = tokio::time::interval(settings.report_every);
    ticks.tick().await;
    loop {
        tokio::select! {
            () = tracker.wait() => break,
            _ = ticks.tick() => tracing::info!(stats = %counters.snapshot(), "simulator"),
        }
    }
    let stats = counters.snapshot();
    tracing::info!(stats = %stats, "simulator stopped");
    Ok(stats)
}
