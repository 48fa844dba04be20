//! The relay's metrics, registered in the process's Prometheus registry.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use shadowbox_core::convergence::CONVERGENCE_BUCKETS_SECONDS;
use shadowbox_mqtt::BrokerAddress;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::reconcile::PassReport;

/// A failure label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// `interrupted` (connection lost or PUBACK overdue) or `rejected`.
    pub reason: String,
}

/// A reconcile difference label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DifferenceLabels {
    /// `missing`, `older`, `newer`, `malformed`, `not_cleared`, or
    /// `unknown` (a device the database does not know: never touched).
    pub kind: String,
}

/// What the reconciler counts, under `shadowbox_reconcile_`.
#[derive(Default)]
pub struct ReconcileMetrics {
    /// Retained messages found different from the database, by kind.
    pub differences: Family<DifferenceLabels, Counter>,
    /// Finished passes.
    pub passes: Counter,
    /// When the last pass finished (Unix seconds).
    pub last_pass: Gauge<f64, AtomicU64>,
}

impl ReconcileMetrics {
    fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("shadowbox_reconcile");
        r.register(
            "differences",
            "Retained desired messages a reconcile pass found different from the database, by kind (unknown: never touched)",
            self.differences.clone(),
        );
        r.register("passes", "Finished reconcile passes", self.passes.clone());
        r.register(
            "last_pass_timestamp_seconds",
            "When the last reconcile pass finished",
            self.last_pass.clone(),
        );
    }

    /// The difference counter for `kind`.
    pub fn difference(&self, kind: &str) -> Counter {
        self.differences
            .get_or_create(&DifferenceLabels {
                kind: kind.to_owned(),
            })
            .clone()
    }

    /// Counts a finished pass.
    pub fn record(&self, report: &PassReport) {
        self.passes.inc();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        self.last_pass.set(now.as_secs_f64());
        for (kind, count) in &report.by_kind {
            self.difference(kind.label()).inc_by(*count);
        }
        if report.unknown > 0 {
            self.difference("unknown").inc_by(report.unknown);
        }
    }
}

/// What the relay counts.
pub struct RelayMetrics {
    /// Rows the broker acknowledged.
    pub delivered: Counter,
    /// Publishes that failed, by reason.
    pub failed: Family<FailureLabels, Counter>,
    /// Rows the relay superseded when claiming (most are superseded by the
    /// write of a newer row, which the API counts as a change).
    pub superseded: Counter,
    /// Rows that became dead.
    pub dead: Counter,
    /// Pending rows.
    pub pending: Gauge,
    /// Age of the oldest pending row, in seconds.
    pub oldest_pending_age: Gauge<f64, AtomicU64>,
    /// Dead rows.
    pub dead_rows: Gauge,
    /// 1 while connected to the broker.
    pub connected: Gauge,
    /// Seconds from handing a publish to the connection to its PUBACK.
    pub publish_to_puback: Histogram,
    /// Seconds from the row's creation (its transaction's start) to its
    /// PUBACK, in the convergence buckets (10 ms to 1 h).
    pub commit_to_puback: Histogram,
    /// The reconciler's counts.
    pub reconcile: ReconcileMetrics,
}

impl RelayMetrics {
    /// Creates the metrics and registers them under `shadowbox_relay_`
    /// (the reconciler's under `shadowbox_reconcile_`).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            delivered: Counter::default(),
            failed: Family::default(),
            superseded: Counter::default(),
            dead: Counter::default(),
            pending: Gauge::default(),
            oldest_pending_age: Gauge::default(),
            dead_rows: Gauge::default(),
            connected: Gauge::default(),
            publish_to_puback: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            commit_to_puback: Histogram::new(CONVERGENCE_BUCKETS_SECONDS),
            reconcile: ReconcileMetrics::default(),
        };
        metrics.reconcile.register(registry);
        let r = registry.sub_registry_with_prefix("shadowbox_relay");
        r.register(
            "delivered",
            "Outbox rows delivered (PUBACK received)",
            metrics.delivered.clone(),
        );
        r.register(
            "failed",
            "Publishes that failed, by reason",
            metrics.failed.clone(),
        );
        r.register(
            "superseded",
            "Outbox rows the relay superseded when claiming (most are superseded by the write of a newer row)",
            metrics.superseded.clone(),
        );
        r.register("dead", "Outbox rows that became dead", metrics.dead.clone());
        r.register(
            "pending_rows",
            "Pending outbox rows (of the whole database: every replica reports the same)",
            metrics.pending.clone(),
        );
        r.register(
            "oldest_pending_age_seconds",
            "Age of the oldest pending outbox row",
            metrics.oldest_pending_age.clone(),
        );
        r.register(
            "dead_rows",
            "Dead outbox rows (of the whole database: every replica reports the same)",
            metrics.dead_rows.clone(),
        );
        r.register(
            "connected",
            "1 while this relay is connected to the MQTT broker",
            metrics.connected.clone(),
        );
        r.register(
            "publish_to_puback_seconds",
            "Time from publish to PUBACK",
            metrics.publish_to_puback.clone(),
        );
        r.register(
            "commit_to_puback_seconds",
            "Time from the outbox row's creation (its transaction's start) to its PUBACK",
            metrics.commit_to_puback.clone(),
        );
        metrics
    }

    /// The failure counter for `reason`.
    pub fn failure(&self, reason: &str) -> Counter {
        self.failed
            .get_or_create(&FailureLabels {
                reason: reason.to_owned(),
            })
            .clone()
    }
}

/// Keeps the `connected` gauge equal to the broker connection's state
/// (`connection`, the publisher's) until `shutdown`.
pub async fn watch_connection(
    mut connection: watch::Receiver<Option<BrokerAddress>>,
    metrics: Arc<RelayMetrics>,
    shutdown: CancellationToken,
) {
    loop {
        metrics
            .connected
            .set(i64::from(connection.borrow_and_update().is_some()));
        tokio::select! {
            changed = connection.changed() => if changed.is_err() { return },
            () = shutdown.cancelled() => return,
        }
    }
}

/// How often the backlog gauges are refreshed.
const BACKLOG_INTERVAL: Duration = Duration::from_secs(5);

/// Refreshes the backlog gauges every [`BACKLOG_INTERVAL`] until `shutdown`.
pub async fn watch_backlog(pool: PgPool, metrics: Arc<RelayMetrics>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(BACKLOG_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match shadowbox_db::relay::backlog(&pool).await {
            Ok(backlog) => {
                metrics.pending.set(backlog.pending);
                metrics
                    .oldest_pending_age
                    .set(backlog.oldest_pending_age_seconds);
                metrics.dead_rows.set(backlog.dead);
            }
            Err(e) => tracing::debug!(error = %e, "could not read the outbox backlog"),
        }
    }
}
