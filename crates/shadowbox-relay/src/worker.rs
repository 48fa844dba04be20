//! A relay worker: claims a batch of devices, publishes each one's newest
//! row, and settles the rows in the same transaction that held the
//! devices, so a crash at any point leaves the rows pending.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use shadowbox_core::backoff::RefusalBackoff;
use shadowbox_core::{DeviceId, TenantId};
use shadowbox_db::relay::{self, ClaimedRow};
use sqlx::PgPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::publisher::{PublishResult, Publisher};
use crate::wake::Wake;
use crate::{RelayMetrics, RelaySettings};

/// How long a worker pauses after a batch failed (the database is
/// unreachable, say) before it claims again.
const PAUSE_AFTER_FAILED_BATCH: Duration = Duration::from_secs(1);

/// One of a relay's concurrent batch loops.
pub struct Worker {
    /// Its number, for logs.
    pub id: usize,
    /// The database.
    pub pool: PgPool,
    /// The broker connection.
    pub publisher: Publisher,
    /// Where idle workers wait.
    pub wake: Wake,
    /// The relay's settings.
    pub settings: Arc<RelaySettings>,
    /// The relay's metrics.
    pub metrics: Arc<RelayMetrics>,
    /// Stops claiming when cancelled.
    pub shutdown: CancellationToken,
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Due rows the batch locked (0: nothing was due).
    pub locked: usize,
    /// Rows the broker acknowledged.
    pub delivered: usize,
    /// Rows left pending or dead by a failure.
    pub failed: usize,
}

impl Worker {
    /// Runs batches until shutdown; idles while there is nothing to do and
    /// while the broker is unreachable (no attempt is made then).
    pub async fn run(self) {
        while !self.shutdown.is_cancelled() {
            if !self.publisher.wait_connected(&self.shutdown).await {
                break;
            }
            match self.run_batch().await {
                Ok(report) if report.locked == 0 => self.wake.idle(&self.shutdown).await,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(worker = self.id, error = %e, "relay batch failed; its rows stay pending");
                    tokio::select! {
                        () = tokio::time::sleep(PAUSE_AFTER_FAILED_BATCH) => {}
                        () = self.shutdown.cancelled() => {}
                    }
                }
            }
        }
    }

    /// Claims, publishes and settles one batch.
    pub async fn run_batch(&self) -> sqlx::Result<BatchReport> {
        let started = Instant::now();
        let mut tx = self.pool.begin().await?;
        let locked = relay::lock_devices(
            &mut tx,
            self.settings.batch_size as i64,
            self.settings.claim_window(),
        )
        .await?;
        if locked.is_empty() {
            tx.commit().await?;
            return Ok(BatchReport::default());
        }
        // A full batch: more rows are likely due, so another worker starts.
        if locked.len() == self.settings.batch_size {
            self.wake.pass_on();
        }
        let claim = relay::take_newest(&mut tx, &locked).await?;
        self.metrics.superseded.inc_by(claim.superseded);
        let claimed_in = started.elapsed();

        let sent_at = Instant::now();
        let mut pending = Vec::with_capacity(claim.rows.len());
        for row in &claim.rows {
            let outcome = self
                .publisher
                .publish(row.topic.clone(), row.payload.clone())
                .await;
            pending.push(outcome);
        }
        let mut settled = Settled::default();
        for (row, outcome) in claim.rows.iter().zip(pending) {
            let outcome = outcome.await.unwrap_or(PublishResult::NotSent);
            settled.add(row, outcome, sent_at, &self.metrics);
        }
        let published_in = sent_at.elapsed();
        let interrupted = settled.interrupted_devices(&claim.rows);
        let report = settled
            .apply(&mut tx, &self.settings, &self.metrics)
            .await?;
        tx.commit().await?;
        if !interrupted.is_empty() {
            self.republish_later(interrupted);
        }
        tracing::debug!(
            worker = self.id,
            locked = locked.len(),
            superseded = claim.superseded,
            delivered = report.delivered,
            failed = report.failed,
            claim_ms = claimed_in.as_millis() as u64,
            publish_ms = published_in.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "batch settled"
        );
        Ok(BatchReport {
            locked: locked.len(),
            ..report
        })
    }
}

impl Worker {
    /// After `republish_after_interruption`, publishes the current state of
    /// `devices` once more (see [`RelaySettings::republish_after_interruption`]).
    fn republish_later(&self, devices: Vec<(TenantId, DeviceId)>) {
        let (pool, shutdown) = (self.pool.clone(), self.shutdown.clone());
        let delay = self.settings.republish_after_interruption;
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return,
            }
            match shadowbox_db::outbox::resync_devices(&pool, &devices).await {
                Ok(rows) => {
                    tracing::info!(rows, "republished devices whose publish was interrupted")
                }
                Err(e) => {
                    tracing::warn!(error = %e, devices = devices.len(), "could not republish interrupted devices")
                }
            }
        });
    }
}

/// A batch's outcomes, grouped by what the database must record.
#[derive(Default)]
struct Settled {
    delivered: Vec<(i64, chrono::DateTime<Utc>)>,
    interrupted: Vec<(i64, &'static str)>,
    refused: Vec<(i64, String)>,
    busy: Vec<(i64, String)>,
    too_large: Vec<(i64, String)>,
}

impl Settled {
    fn add(
        &mut self,
        row: &ClaimedRow,
        outcome: PublishResult,
        sent_at: Instant,
        metrics: &RelayMetrics,
    ) {
        match outcome {
            PublishResult::Acked(at) => {
                metrics
                    .publish_to_puback
                    .observe(sent_at.elapsed().as_secs_f64());
                let commit_to_ack = (at - row.created_at).to_std().unwrap_or_default();
                metrics
                    .commit_to_puback
                    .observe(commit_to_ack.as_secs_f64());
                self.delivered.push((row.id, at));
            }
            PublishResult::Interrupted(reason) => self.interrupted.push((row.id, reason)),
            PublishResult::Refused(reason) => self.refused.push((row.id, reason)),
            PublishResult::Busy(reason) => self.busy.push((row.id, reason)),
            PublishResult::TooLarge(reason) => self.too_large.push((row.id, reason)),
            PublishResult::NotSent => {}
        }
    }

    /// The `(tenant, device)` of every interrupted row of `rows`.
    fn interrupted_devices(&self, rows: &[ClaimedRow]) -> Vec<(TenantId, DeviceId)> {
        rows.iter()
            .filter(|row| self.interrupted.iter().any(|(id, _)| *id == row.id))
            .map(|row| (row.tenant_id.clone(), row.device_id.clone()))
            .collect()
    }

    async fn apply(
        self,
        tx: &mut sqlx::PgConnection,
        settings: &RelaySettings,
        metrics: &RelayMetrics,
    ) -> sqlx::Result<BatchReport> {
        if !self.delivered.is_empty() {
            relay::mark_delivered(tx, &self.delivered).await?;
            metrics.delivered.inc_by(self.delivered.len() as u64);
        }
        for (reason, ids) in group_by_reason(self.interrupted.iter().map(|(id, r)| (*id, *r))) {
            relay::mark_interrupted(tx, &ids, reason).await?;
            metrics.failure("interrupted").inc_by(ids.len() as u64);
        }
        // Refused: the refusal backoff, dead after the maximum attempts.
        for (reason, ids) in group_by_reason(self.refused.iter().map(|(id, r)| (*id, r.as_str()))) {
            let dead = relay::mark_failed(tx, &ids, reason, &settings.refusal_backoff).await?;
            metrics.failure("rejected").inc_by(ids.len() as u64);
            metrics.dead.inc_by(dead);
            tracing::warn!(rows = ids.len(), dead, reason, "publishes refused");
        }
        // Busy: the refusal backoff's delays, never dead, as in an outage.
        let never_dead = RefusalBackoff {
            max_attempts: i32::MAX,
            ..settings.refusal_backoff
        };
        for (reason, ids) in group_by_reason(self.busy.iter().map(|(id, r)| (*id, r.as_str()))) {
            relay::mark_failed(tx, &ids, reason, &never_dead).await?;
            metrics.failure("busy").inc_by(ids.len() as u64);
            tracing::warn!(
                rows = ids.len(),
                reason,
                "the broker deferred publishes; retrying later"
            );
        }
        // Too large: no broker of this configuration will ever take it.
        let dead_at_once = RefusalBackoff {
            max_attempts: 1,
            ..settings.refusal_backoff
        };
        for (reason, ids) in group_by_reason(self.too_large.iter().map(|(id, r)| (*id, r.as_str())))
        {
            let dead = relay::mark_failed(tx, &ids, reason, &dead_at_once).await?;
            metrics.failure("too_large").inc_by(ids.len() as u64);
            metrics.dead.inc_by(dead);
            tracing::warn!(
                rows = ids.len(),
                reason,
                "publishes too large for the broker are dead"
            );
        }
        Ok(BatchReport {
            locked: 0,
            delivered: self.delivered.len(),
            failed: self.interrupted.len()
                + self.refused.len()
                + self.busy.len()
                + self.too_large.len(),
        })
    }
}

/// Groups row ids by failure text, so each text is one UPDATE.
fn group_by_reason<'a>(failures: impl Iterator<Item = (i64, &'a str)>) -> Vec<(&'a str, Vec<i64>)> {
    let mut groups: Vec<(&str, Vec<i64>)> = Vec::new();
    for (id, reason) in failures {
        match groups.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, ids)) => ids.push(id),
            None => groups.push((reason, vec![id])),
        }
    }
    groups
}
