//! The ingester's Prometheus metrics, all prefixed `shadowbox_ingest_`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use shadowbox_core::convergence::CONVERGENCE_BUCKETS_SECONDS;

/// What became of a message.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Why an invalid message was refused.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The ingester's metrics; cheap to clone (every clone updates the same
/// series).
#[derive(Debug, Clone)]
pub struct IngestMetrics {
    messages: Family<ResultLabel, Counter>,
    invalid: Family<ReasonLabel, Counter>,
    rejections: Family<ResultLabel, Counter>,
    /// Seconds from a desired version's commit to the report that first
    /// applied it; one sample per applied version.
    pub(crate) commit_to_applied: Histogram,
    /// Messages per batch.
    pub(crate) batch_size: Histogram,
    /// Time to write one batch, retries included.
    pub(crate) apply_seconds: Histogram,
    /// From the arrival of a batch's oldest message to its ack.
    pub(crate) lag_seconds: Histogram,
    /// Messages received and not yet settled (acknowledged, or left to the
    /// broker to redeliver).
    pub(crate) pending: Gauge,
    /// Failed batch writes that were retried.
    pub(crate) db_retries: Counter,
    /// 1 while connected with the subscription in place.
    pub(crate) subscribed: Gauge,
}

impl IngestMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            messages: Family::default(),
            invalid: Family::default(),
            rejections: Family::default(),
            commit_to_applied: Histogram::new(CONVERGENCE_BUCKETS_SECONDS),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            apply_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            lag_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 18)),
            pending: Gauge::default(),
            db_retries: Counter::default(),
            subscribed: Gauge::default(),
        };
        let registry = registry.sub_registry_with_prefix("shadowbox_ingest");
        registry.register(
            "messages",
            "Reported messages by result: applied, stale, ahead (a version above the desired one, refused), rejection (only a rejection, see rejections), superseded (a newer message of the same device in the same batch), invalid, unknown, decommissioned",
            metrics.messages.clone(),
        );
        registry.register(
            "invalid_messages",
            "Invalid reported messages by reason",
            metrics.invalid.clone(),
        );
        registry.register(
            "rejections",
            "Device rejections by result: recorded (of the current desired version), ignored (of another version, of a version already applied, or of an unknown or decommissioned device), superseded (a newer rejection of the same device in the same batch)",
            metrics.rejections.clone(),
        );
        registry.register_with_unit(
            "commit_to_applied",
            "Time from the commit of a desired version to the reported message that first applied it",
            Unit::Seconds,
            metrics.commit_to_applied.clone(),
        );
        registry.register(
            "batch_size",
            "Messages per batch",
            metrics.batch_size.clone(),
        );
        registry.register_with_unit(
            "apply",
            "Time to write one batch to the database, retries included",
            Unit::Seconds,
            metrics.apply_seconds.clone(),
        );
        registry.register_with_unit(
            "lag",
            "Time from the arrival of a batch's oldest message to its acknowledgement",
            Unit::Seconds,
            metrics.lag_seconds.clone(),
        );
        registry.register(
            "pending_messages",
            "Messages received and not yet committed and acknowledged",
            metrics.pending.clone(),
        );
        registry.register(
            "db_retries",
            "Batch writes that failed and were retried",
            metrics.db_retries.clone(),
        );
        registry.register(
            "subscribed",
            "1 while connected to the MQTT broker with the subscription in place",
            metrics.subscribed.clone(),
        );
        metrics
    }

    /// Counts `n` messages with `result`.
    pub(crate) fn count(&self, result: &'static str, n: u64) {
        self.messages
            .get_or_create(&ResultLabel { result })
            .inc_by(n);
    }

    /// Counts one rejection with `result`.
    pub(crate) fn count_rejection(&self, result: &'static str) {
        self.rejections.get_or_create(&ResultLabel { result }).inc();
    }

    /// Counts one invalid message refused for `reason`.
    pub(crate) fn count_invalid(&self, reason: &'static str) {
        self.count("invalid", 1);
        self.invalid.get_or_create(&ReasonLabel { reason }).inc();
    }
}
