//! Writing a batch: one statement, tried again with the reconnect backoff
//! while the database is unreachable. A document the database refuses
//! anyway (a data exception the document rules did not foresee, such as a
//! character a database in another encoding cannot hold; a `\u0000` never
//! gets here) is isolated by writing the batch one update at a time, so it
//! is dropped instead of blocking every other device forever.

use std::time::{Duration, Instant};

use backon::Retryable as _;
use shadowbox_core::backoff;
use shadowbox_db::reported::{ReportedUpdate, ReportedWrite, apply_reported};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::metrics::IngestMetrics;

/// How long a batch may still be retried once shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What became of one update.
#[derive(Debug)]
pub(crate) enum WriteResult {
    /// The statement ran; this is what it did.
    Written(ReportedWrite),
    /// The database refused this update's data.
    Rejected(sqlx::Error),
}

/// Writes `updates`, retrying until it succeeds. Returns `None` if `stop`
/// is cancelled and the write still fails [`SHUTDOWN_GRACE`] later: the
/// batch is then left to the broker to redeliver.
pub(crate) async fn apply(
    pool: &PgPool,
    updates: &[ReportedUpdate],
    metrics: &IngestMetrics,
    stop: &CancellationToken,
) -> Option<Vec<WriteResult>> {
    let started = Instant::now();
    let retrying = (|| apply_once(pool, updates))
        .retry(backoff::reconnect())
        .sleep(tokio::time::sleep)
        .notify(|error, delay| {
            metrics.db_retries.inc();
            tracing::warn!(
                %error,
                retry_in_ms = delay.as_millis() as u64,
                updates = updates.len(),
                "writing reported states failed; the messages stay unacknowledged"
            );
        });
    let outcomes = tokio::select! {
        written = retrying => written.ok(),
        () = async { stop.cancelled().await; tokio::time::sleep(SHUTDOWN_GRACE).await } => None,
    };
    metrics
        .apply_seconds
        .observe(started.elapsed().as_secs_f64());
    outcomes
}

async fn apply_once(pool: &PgPool, updates: &[ReportedUpdate]) -> sqlx::Result<Vec<WriteResult>> {
    match apply_reported(pool, updates).await {
        Ok(outcomes) => Ok(outcomes.into_iter().map(WriteResult::Written).collect()),
        Err(e) if is_data_exception(&e) => {
            tracing::warn!(error = %e, updates = updates.len(), "the database refused a batch; writing it one update at a time");
            let mut outcomes = Vec::with_capacity(updates.len());
            for update in updates {
                match apply_reported(pool, std::slice::from_ref(update)).await {
                    Ok(written) => outcomes.extend(written.into_iter().map(WriteResult::Written)),
                    Err(e) if is_data_exception(&e) => outcomes.push(WriteResult::Rejected(e)),
                    Err(e) => return Err(e),
                }
            }
            Ok(outcomes)
        }
        Err(e) => Err(e),
    }
}

/// SQLSTATE class 22: the data itself is refused, so retrying cannot help.
/// Every other error (connection lost, server shutting down, even a
/// schema mismatch after a bad deploy) is retried: dropping the batch
/// would lose reported states.
fn is_data_exception(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code.starts_with("22"))
}
