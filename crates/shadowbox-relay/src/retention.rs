//! Retention: deletes finished outbox rows, desired history and events
//! older than their configured ages, and idempotency keys past their replay window,
//! in small batches so the relay's own statements never wait long.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::RelaySettings;

/// Rows deleted per statement.
const PURGE_BATCH: i64 = 1000;

/// Runs the retention job every `retention_interval` until `shutdown`.
/// Expired idempotency keys go even when finished rows and history are
/// kept.
pub async fn run(pool: PgPool, settings: Arc<RelaySettings>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(settings.retention_interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Some(cutoff) = cutoff(settings.retention) {
            match shadowbox_db::outbox::purge_finished(&pool, cutoff, PURGE_BATCH).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "retention deleted finished outbox rows"),
                Err(e) => tracing::warn!(error = %e, "outbox retention failed"),
            }
        }
        if let Some(cutoff) = cutoff(settings.history_retention) {
            match shadowbox_db::history::purge(&pool, cutoff, PURGE_BATCH).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "retention deleted desired history"),
                Err(e) => tracing::warn!(error = %e, "history retention failed"),
            }
        }
        if let Some(cutoff) = cutoff(settings.events_retention) {
            match shadowbox_db::events::purge(&pool, cutoff, PURGE_BATCH).await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "retention deleted events"),
                Err(e) => tracing::warn!(error = %e, "events retention failed"),
            }
        }
        match shadowbox_db::idempotency::purge_expired(&pool, PURGE_BATCH).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "retention deleted expired idempotency keys"),
            Err(e) => tracing::warn!(error = %e, "idempotency key retention failed"),
        }
    }
}

/// The time before which rows kept for `retention` go, if they go at all.
fn cutoff(retention: Option<Duration>) -> Option<DateTime<Utc>> {
    let age = chrono::Duration::from_std(retention?).ok()?;
    Some(Utc::now() - age)
}
