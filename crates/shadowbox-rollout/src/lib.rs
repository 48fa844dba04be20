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

use std::sync::Arc;
use std::time::Duration;

use shadowbox_db::notifications;
use shadowbox_db::rollout_machine::{MachineSettings, Step, step};
use sqlx::PgPool;
use tokio::sync::Notify;
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
    // and the wait is not missed (when the listener is up by then; the
    // poll covers the rest).
    let due = Arc::new(Notify::new());
    let listening = tokio::spawn(listen(pool.clone(), due.clone(), settings.poll_interval));
    tracing::info!(chunk_size = settings.chunk_size, "wave machine started");
    while !shutdown.is_cancelled() {
        match step(&pool, &machine).await {
            Ok(Step::Idle) => {
                if !idle(&due, settings.poll_interval, &shutdown).await {
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
    listening.abort();
    tracing::info!("wave machine stopped");
    Ok(())
}

/// Listens on [`shadowbox_db::ROLLOUT_CHANNEL`] until the task is aborted,
/// waking the machine on each notification; a listener that cannot
/// connect is tried again after `pause` (the machine polls meanwhile).
async fn listen(pool: PgPool, due: Arc<Notify>, pause: Duration) {
    loop {
        match notifications::listen(&pool, shadowbox_db::ROLLOUT_CHANNEL).await {
            Ok(listener) => notifications::forward(listener, &due, pause).await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for due rollouts; polling meanwhile");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Waits for a rollout to become due (its notification) or `period`,
/// whichever comes first; `false` when `shutdown` came first.
async fn idle(due: &Notify, period: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = due.notified() => true,
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
