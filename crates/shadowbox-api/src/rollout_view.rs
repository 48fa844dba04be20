//! The JSON shape of a rollout: its settings, its waves' progress, the
//! skips by reason and, once rolled back, what the rollback did.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use shadowbox_core::Document;
use shadowbox_core::duration;
use shadowbox_db::rollouts::{RollbackProgress, Rollout, RolloutRecord, WaveProgress};
use utoipa::ToSchema;

/// A rollout and its progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RolloutView {
    /// Its id.
    pub id: i64,
    /// `running`, `paused`, `completed`, `aborted`, `cancelled` or
    /// `rolled_back`.
    pub status: String,
    /// The selector as given.
    #[schema(value_type = Object)]
    pub selector: Value,
    /// Devices in its set (fixed at creation).
    pub selected: i64,
    /// The merge patch.
    #[schema(value_type = Object)]
    pub patch: Document,
    /// Each wave's progress (empty in a list: read the rollout for it).
    pub waves: Vec<WaveView>,
    /// Devices not written, by reason: `unchanged`, `decommissioned`,
    /// `limits`.
    pub skipped_by_reason: SkippedByReason,
    /// The convergence gate.
    pub min_converged: f64,
    /// The wave timeout (`10m`), if any.
    pub wave_timeout: Option<String>,
    /// The rejection gate, if any.
    pub max_rejected: Option<f64>,
    /// The wave being written or waited for (1-based).
    pub current_wave: i32,
    /// Why it was aborted.
    pub abort_reason: Option<String>,
    /// What the rollback did, once rolled back.
    pub rollback: Option<RollbackView>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it completed, aborted or was cancelled.
    pub finished_at: Option<DateTime<Utc>>,
}

/// One wave's progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WaveView {
    /// Its cumulative fraction of the set.
    pub fraction: f64,
    /// Devices in it.
    pub size: i64,
    /// Devices given a new version.
    pub written: i64,
    /// Written devices whose version (or a newer one) the broker
    /// acknowledged.
    pub delivered: i64,
    /// Devices reporting the version written for them (or, left
    /// unchanged, in sync).
    pub converged: i64,
    /// Written devices that rejected their version.
    pub rejected: i64,
    /// Devices not written.
    pub skipped: i64,
    /// When its first devices were written.
    pub started_at: Option<DateTime<Utc>>,
    /// When it met the convergence gate.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Skipped devices by reason.
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct SkippedByReason {
    /// The patch changes nothing on them (counted as converged once in
    /// sync).
    pub unchanged: i64,
    /// Decommissioned after the rollout was created.
    pub decommissioned: i64,
    /// The patched document would break the document limits.
    pub limits: i64,
}

/// What a rollback did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RollbackView {
    /// Devices given their previous document back, as a new version.
    pub restored: i64,
    /// Devices left alone: changed (or decommissioned) since the rollout
    /// wrote them.
    pub changed: i64,
    /// When every written device was looked at; `null` while it runs.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&WaveProgress> for WaveView {
    fn from(w: &WaveProgress) -> Self {
        Self {
            fraction: w.fraction,
            size: w.size,
            written: w.written,
            delivered: w.delivered,
            converged: w.converged,
            rejected: w.rejected,
            skipped: w.skipped_unchanged + w.skipped_decommissioned + w.skipped_limits,
            started_at: w.started_at,
            finished_at: w.finished_at,
        }
    }
}

impl RolloutView {
    /// The view of a rollout row alone (a list's item: no progress).
    pub fn summary(r: RolloutRecord) -> Self {
        Self::build(r, &[], None)
    }

    fn build(r: RolloutRecord, waves: &[WaveProgress], rollback: Option<RollbackProgress>) -> Self {
        let skipped = waves
            .iter()
            .fold(SkippedByReason::default(), |sum, w| SkippedByReason {
                unchanged: sum.unchanged + w.skipped_unchanged,
                decommissioned: sum.decommissioned + w.skipped_decommissioned,
                limits: sum.limits + w.skipped_limits,
            });
        Self {
            id: r.id,
            status: r.status.to_string(),
            selector: r.selector.0,
            selected: r.selected,
            patch: r.patch.0,
            waves: waves.iter().map(WaveView::from).collect(),
            skipped_by_reason: skipped,
            min_converged: r.min_converged,
            wave_timeout: r
                .wave_timeout_ms
                .map(|ms| duration::format(std::time::Duration::from_millis(ms as u64))),
            max_rejected: r.max_rejected,
            current_wave: r.current_wave + 1,
            abort_reason: r.abort_reason,
            rollback: rollback.map(|b| RollbackView {
                restored: b.restored,
                changed: b.changed,
                finished_at: r.rollback_finished_at,
            }),
            created_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

impl From<Rollout> for RolloutView {
    fn from(r: Rollout) -> Self {
        Self::build(r.record, &r.waves, r.rollback)
    }
}
