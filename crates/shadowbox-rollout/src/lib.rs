//! The shadowbox wave machine: writes each rollout's waves, chunk by
//! chunk, and moves it on when its gates say so (the next wave once
//! enough written devices converged; aborted on too many rejections or a
//! wave timeout; completed after the last wave), and restores rolled-back
//! rollouts' devices.
//!
//! All of its state is in PostgreSQL: a step is one transaction on one
//! rollout's row (`shadowbox_db::rollout_machine` has the SQL and the
//! reasons it is exactly-once with any number of replicas), so a machine
//! that restarts, or several running at once, simply carry on. It runs in
//! the `serve` and `relay` processes. A rollout that becomes due (created,
//! resumed, cancelled, rolled back) wakes it by `NOTIFY`; otherwise it
//! polls.
//!
//! Depends on `shadowbox-core` and `shadowbox-db`.

pub mod metrics;
pub mod settings;

pub use metrics::RolloutMetrics;
pub use settings::{DEFAULT_CHUNK_SIZE, DEFAULT_POLL_INTERVAL, RolloutSettings};

use std::time::Duration;

use shadowbox_db::rollout_machine::{MachineSettings, Step, step};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

/// Runs the wave machine until `shutdown` is cancelled (a step under way
/// finishes first: it is one transaction).
pub async fn run(
    settings: RolloutSettings,
    pool: PgPool,
    metrics: RolloutMetrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let machine = MachineSettings {
        chunk_size: settings.chunk_size,
        poll_interval: settings.poll_interval,
        limits: settings.limits,
    };
    // Listening before the first step, so a rollout created between a step
    // and the wait is not missed. Without a listener the machine polls.
    let mut listener = match listen(&pool).await {
        Ok(listener) => Some(listener),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for new rollouts; polling only");
            None
        }
    };
    tracing::info!(chunk_size = settings.chunk_size, "wave machine started");
    while !shutdown.is_cancelled() {
        match step(&pool, &machine).await {
            Ok(Step::Idle) => {
                if !idle(&mut listener, settings.poll_interval, &shutdown).await {
                    break;
                }
            }
            Ok(done) => metrics.record(&done),
            Err(e) => {
                tracing::error!(error = %e, "wave machine step failed; retrying");
                metrics.failed_steps.inc();
                if !sleep_or_stop(settings.poll_interval, &shutdown).await {
                    break;
                }
            }
        }
    }
    tracing::info!("wave machine stopped");
    Ok(())
}

/// Listens on [`shadowbox_db::ROLLOUT_CHANNEL`].
async fn listen(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(shadowbox_db::ROLLOUT_CHANNEL).await?;
    Ok(listener)
}

/// Waits for a rollout to become due (its notification) or `period`,
/// whichever comes first; `false` when `shutdown` came first.
async fn idle(
    listener: &mut Option<PgListener>,
    period: Duration,
    shutdown: &CancellationToken,
) -> bool {
    let notified = async {
        match listener.as_mut() {
            Some(listener) => {
                if let Err(e) = listener.recv().await {
                    // It reconnects on the next receive; poll meanwhile.
                    tracing::warn!(error = %e, "rollout notifications interrupted");
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = notified => true,
        () = tokio::time::sleep(period) => true,
        () = shutdown.cancelled() => false,
    }
}

/// Sleeps for `period`; `false` when `shutdown` came first.
async fn sleep_or_stop(period: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(period) => true,
        () = shutdown.cancelled() => false,
    }
}
