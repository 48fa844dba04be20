//! Retention: deletes finished outbox rows older than the configured age,
//! and idempotency keys past their replay window, in small batches so the
//! relay's own statements never wait long.

use std::sync::Arc;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::RelaySettings;

/// Rows deleted per statement.
const PURGE_BATCH: i64 = 1000;

/// Runs the retention job every `retention_interval` until `shutdown`.
/// Expired idempotency keys go even when finished rows are kept
/// (`retention` is `None`).
pub async fn run(pool: PgPool, settings: Arc<RelaySettings>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(settings.retention_interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Some(age) = settings
            .retention
            .and_then(|r| chrono::Duration::from_std(r).ok())
        {
            match shadowbox_db::outbox::purge_finished(&pool, chrono::Utc::now() - age, PURGE_BATCH)
                .await
            {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "retention deleted finished outbox rows"),
                Err(e) => tracing::warn!(error = %e, "retention job failed"),
            }
        }
        match shadowbox_db::idempotency::purge_expired(&pool, PURGE_BATCH).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "retention deleted expired idempotency keys"),
            Err(e) => tracing::warn!(error = %e, "idempotency key retention failed"),
        }
    }
}
