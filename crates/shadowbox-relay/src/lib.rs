//! The shadowbox relay: drains the outbox into retained QoS 1 MQTT
//! publishes and marks a row `delivered` only after the broker's PUBACK for
//! that very publish.
//!
//! Data flows through it in this order:
//!
//! - [`wake`]: `LISTEN` for committed rows, with a polling fallback;
//! - [`worker`]: batches, each one transaction that locks its devices,
//!   takes each device's newest row, publishes, and settles the rows
//!   (`shadowbox_db::relay` holds the SQL and the ordering rules);
//! - [`publisher`]: the one MQTT connection, which correlates every publish
//!   with its PUBACK and fails everything unacknowledged on a disconnect or
//!   an overdue PUBACK;
//! - [`retention`]: deletes old finished rows, old desired history, events
//!   past the resume window and expired idempotency keys in small batches;
//! - [`reconcile`]: compares the broker's retained desired messages with
//!   the database every reconcile interval and after every reconnect,
//!   and republishes what differs;
//! - [`metrics`]: what the relay counts.
//!
//! Depends on `shadowbox-core`, `shadowbox-db` and `shadowbox-mqtt`.

pub mod metrics;
pub mod publisher;
pub mod reconcile;
pub mod retention;
pub mod settings;
pub mod wake;
pub mod worker;

pub use metrics::RelayMetrics;
pub use settings::{
    DEFAULT_ACK_TIMEOUT, DEFAULT_BATCH_SIZE, DEFAULT_EVENTS_RETENTION, DEFAULT_HISTORY_RETENTION,
    DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_PACKET_BYTES, DEFAULT_POLL_INTERVAL,
    DEFAULT_RECONCILE_INTERVAL, DEFAULT_RECONCILE_SLICE, DEFAULT_REFUSAL_BACKOFF_BASE,
    DEFAULT_REFUSAL_BACKOFF_MAX, DEFAULT_REPUBLISH_AFTER, DEFAULT_RETENTION, DEFAULT_WORKERS,
    RelaySettings,
};

use std::sync::Arc;

use anyhow::Context as _;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Runs the relay until `shutdown` is cancelled, then stops claiming,
/// waits for the PUBACKs of in-flight publishes (up to the ack timeout),
/// settles their rows and disconnects.
pub async fn run(
    settings: RelaySettings,
    pool: PgPool,
    metrics: RelayMetrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let metrics = Arc::new(metrics);
    let tasks = TaskTracker::new();
    // The publisher outlives the workers: it must still deliver the PUBACKs
    // of batches that are finishing after `shutdown`.
    let publisher_stop = CancellationToken::new();
    let publisher = publisher::Publisher::start(&settings, &tasks, publisher_stop.clone());
    let wake = wake::Wake::start(&pool, &settings, &tasks, shutdown.clone())
        .await
        .context("listen for outbox notifications")?;
    tracing::info!(brokers = %settings.mqtt.describe(), protocol = %settings.mqtt.protocol, workers = settings.workers, "relay started");
    let workers = TaskTracker::new();
    for id in 0..settings.workers {
        workers.spawn(
            worker::Worker {
                id,
                pool: pool.clone(),
                publisher: publisher.clone(),
                wake: wake.clone(),
                settings: settings.clone(),
                metrics: metrics.clone(),
                shutdown: shutdown.clone(),
            }
            .run(),
        );
    }
    tasks.spawn(retention::run(
        pool.clone(),
        settings.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(metrics::watch_connection(
        publisher.broker(),
        metrics.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(reconcile::run(
        pool.clone(),
        settings.clone(),
        metrics.clone(),
        publisher.broker(),
        shutdown.clone(),
    ));
    tasks.spawn(metrics::watch_backlog(
        pool.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    workers.close();
    workers.wait().await;
    publisher_stop.cancel();
    tasks.close();
    tasks.wait().await;
    tracing::info!("relay stopped");
    Ok(())
}
