//! Retention: deletes finished outbox rows older than the configured age,
//! in small batches so the relay's own statements never wait long.

use std::sync::Arc;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::RelaySettings;

/// Rows deleted per statement.
const PURGE_BATCH: i64 = 1000;

/// Runs the retention job every `retention_interval` until `shutdown`.
pub async fn run(pool: PgPool, settings: Arc<RelaySettings>, shutdown: CancellationToken) {
    let Some(retention) = settings.retention else {
        return;
    };
    let mut tick = tokio::time::interval(settings.retention_interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let Ok(age) = chrono::Duration::from_std(retention) else {
            return;
        };
        match shadowbox_db::outbox::purge_finished(&pool, chrono::Utc::now() - age, PURGE_BATCH)
            .await
        {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "retention deleted finished outbox rows"),
            Err(e) => tracing::warn!(error = %e, "retention job failed"),
        }
    }
}
