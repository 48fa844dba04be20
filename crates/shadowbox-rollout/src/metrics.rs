//! What the wave machine counts, registered under `shadowbox_rollout_`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use shadowbox_db::rollout_machine::Step;

/// A device outcome label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `written`, `skipped`, `restored` (rollback) or `changed` (rollback:
    /// left alone).
    pub outcome: &'static str,
}

/// A finished rollout's label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// `completed` or `aborted`.
    pub status: &'static str,
}

/// The wave machine's metrics.
#[derive(Clone, Default)]
pub struct RolloutMetrics {
    /// Devices handled, by outcome.
    pub devices: Family<OutcomeLabels, Counter>,
    /// Waves started after the first.
    pub waves_started: Counter,
    /// Rollouts the machine finished, by status.
    pub finished: Family<StatusLabels, Counter>,
    /// Steps that failed (the database refused or was unreachable).
    pub failed_steps: Counter,
}

impl RolloutMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let r = registry.sub_registry_with_prefix("shadowbox_rollout");
        r.register(
            "devices",
            "Rollout devices handled by the wave machine, by outcome",
            metrics.devices.clone(),
        );
        r.register(
            "waves_started",
            "Rollout waves started after a gate was met",
            metrics.waves_started.clone(),
        );
        r.register(
            "finished",
            "Rollouts the wave machine completed or aborted",
            metrics.finished.clone(),
        );
        r.register(
            "failed_steps",
            "Wave machine steps that failed and were retried",
            metrics.failed_steps.clone(),
        );
        metrics
    }

    /// Counts what a step did.
    pub fn record(&self, step: &Step) {
        let count = |outcome, n| {
            self.devices
                .get_or_create(&OutcomeLabels { outcome })
                .inc_by(n);
        };
        match step {
            Step::Idle | Step::Waited { .. } => {}
            Step::Wrote {
                written, skipped, ..
            } => {
                count("written", *written);
                count("skipped", *skipped);
            }
            Step::NextWave { .. } => {
                self.waves_started.inc();
            }
            Step::Finished { status, .. } => {
                self.finished
                    .get_or_create(&StatusLabels {
                        status: status.as_str(),
                    })
                    .inc();
            }
            Step::RolledBack {
                restored, changed, ..
            } => {
                count("restored", *restored);
                count("changed", *changed);
            }
        }
    }
}
