//! A writer: collects a batch from its channel, writes it, counts what
//! became of each message, then hands the batch to [`Acks`], which
//! acknowledges in receive order across writers. Nothing is acknowledged
//! before its effect is committed; dropped messages (invalid, stale,
//! unknown, decommissioned) are acknowledged too, so the broker does not
//! redeliver them forever.

use std::fmt::Display;
use std::time::Duration;

use shadowbox_core::DocumentLimits;
use shadowbox_db::reported::{RejectionOutcome, ReportedOutcome};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::apply::{WriteResult, apply};
use crate::batch::{Part, Verdict, plan};
use crate::connection::{Acks, Received};
use crate::log_sampler::LogSampler;
use crate::metrics::IngestMetrics;

/// At most one log line per kind of dropped message in this interval.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Everything a writer needs.
#[derive(Clone)]
pub(crate) struct Worker {
    /// Where reported states are written.
    pub pool: PgPool,
    /// How messages are acknowledged.
    pub acks: Acks,
    /// Where results are counted.
    pub metrics: IngestMetrics,
    /// Most messages per batch (at least 1).
    pub batch_size: usize,
    /// Longest wait for a batch to fill after its first message.
    pub batch_wait: Duration,
    /// Limits a reported document must respect.
    pub limits: DocumentLimits,
}

impl Worker {
    /// Works until `stop` is cancelled (or the connection is gone), then
    /// settles what has already arrived.
    pub async fn run(self, mut messages: mpsc::Receiver<Received>, stop: CancellationToken) {
        let mut log = LogSampler::new(DROP_LOG_INTERVAL);
        while !stop.is_cancelled() {
            let batch = self.collect(&mut messages, &stop).await;
            if batch.is_empty() {
                break;
            }
            self.settle(batch, &stop, &mut log).await;
        }
        let mut rest = Vec::with_capacity(self.batch_size);
        while rest.len() < self.batch_size {
            match messages.try_recv() {
                Ok(message) => rest.push(message),
                Err(_) => break,
            }
        }
        if !rest.is_empty() {
            self.settle(rest, &stop, &mut log).await;
        }
    }

    /// Waits for a first message, then takes more until the batch is full
    /// or `batch_wait` has passed. Empty when stopped or disconnected.
    async fn collect(
        &self,
        messages: &mut mpsc::Receiver<Received>,
        stop: &CancellationToken,
    ) -> Vec<Received> {
        let mut batch = Vec::with_capacity(self.batch_size);
        tokio::select! {
            biased;
            () = stop.cancelled() => return batch,
            _ = messages.recv_many(&mut batch, self.batch_size) => {}
        }
        let deadline = tokio::time::sleep(self.batch_wait);
        tokio::pin!(deadline);
        while !batch.is_empty() && batch.len() < self.batch_size {
            let room = self.batch_size - batch.len();
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                () = &mut deadline => break,
                received = messages.recv_many(&mut batch, room) => if received == 0 { break },
            }
        }
        batch
    }

    /// Writes, counts and acknowledges one batch.
    async fn settle(&self, batch: Vec<Received>, stop: &CancellationToken, log: &mut LogSampler) {
        let plan = plan(
            batch
                .iter()
                .map(|m| (m.message.topic.as_str(), m.message.payload(), m.received_at)),
            &self.limits,
        );
        let outcomes = if plan.updates.is_empty() {
            Vec::new()
        } else if let Some(outcomes) = apply(&self.pool, &plan.updates, &self.metrics, stop).await {
            outcomes
        } else {
            tracing::warn!(
                messages = batch.len(),
                "stopping while the database is unreachable; the broker will redeliver this batch"
            );
            self.metrics.pending.dec_by(batch.len() as i64);
            return;
        };
        for (message, verdict) in batch.iter().zip(&plan.verdicts) {
            self.record(&message.message.topic, verdict, &outcomes, log);
        }
        self.metrics.batch_size.observe(batch.len() as f64);
        self.metrics
            .lag_seconds
            .observe(batch[0].since.elapsed().as_secs_f64());
        self.metrics.pending.dec_by(batch.len() as i64);
        for message in batch {
            self.acks.ack(message);
        }
    }

    /// Counts (and, sampled, logs) what became of one message.
    fn record(
        &self,
        topic: &str,
        verdict: &Verdict,
        outcomes: &[WriteResult],
        log: &mut LogSampler,
    ) {
        let (slot, report, rejection) = match verdict {
            Verdict::Invalid(invalid) => {
                self.metrics.count_invalid(invalid.reason());
                dropped(log, invalid.reason(), topic, invalid);
                return;
            }
            Verdict::Valid {
                slot,
                report,
                rejection,
            } => (*slot, *report, *rejection),
        };
        let write = match &outcomes[slot] {
            WriteResult::Written(write) => write,
            WriteResult::Rejected(error) => {
                self.metrics.count_invalid("db_rejected");
                dropped(log, "db_rejected", topic, error);
                return;
            }
        };
        // An unknown or decommissioned device's messages all share its
        // fate; a superseded report was beaten in its own batch.
        let counted = match report {
            _ if !write.outcome.device_active() => Some(write.outcome),
            Part::Winner => Some(write.outcome),
            Part::Absent => Some(ReportedOutcome::NoReport),
            Part::Superseded => None,
        };
        match counted {
            None => self.metrics.count("superseded", 1),
            Some(outcome @ (ReportedOutcome::Applied | ReportedOutcome::NoReport)) => {
                self.metrics.count(outcome.as_str(), 1);
            }
            Some(outcome) => {
                self.metrics.count(outcome.as_str(), 1);
                dropped(log, outcome.as_str(), topic, &outcome.as_str());
            }
        }
        match rejection {
            Part::Absent => {}
            Part::Superseded => self.metrics.count_rejection("superseded"),
            Part::Winner => self.metrics.count_rejection(
                write
                    .rejection
                    .unwrap_or(RejectionOutcome::Ignored)
                    .as_str(),
            ),
        }
        if report == Part::Winner
            && let Some(seconds) = write.commit_to_applied_seconds
        {
            self.metrics.commit_to_applied.observe(seconds);
        }
    }
}

/// Logs a dropped message, at most once per `kind` and interval.
fn dropped(log: &mut LogSampler, kind: &'static str, topic: &str, detail: &dyn Display) {
    if let Some(skipped) = log.admit(kind) {
        tracing::warn!(
            kind,
            topic,
            detail = %detail,
            skipped_since_last_log = skipped,
            "dropped a reported message"
        );
    }
}
