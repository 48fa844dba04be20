//! Waking on `NOTIFY`: a task listens on one channel and wakes a waiter per
//! notification. Waiters also poll, so a notification lost while the
//! listener reconnects costs at most their poll interval.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;

/// Connects a listener to `channel`.
pub async fn listen(pool: &PgPool, channel: &str) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// Wakes one waiter of `wake` per notification `listener` receives, for
/// ever (run it in its own task: a receive it cancels could lose the
/// listener's reconnect). When the connection fails it wakes one waiter
/// anyway, waits `pause` and receives again, which reconnects.
pub async fn forward(mut listener: PgListener, wake: &Notify, pause: Duration) {
    loop {
        match listener.recv().await {
            Ok(_) => wake.notify_one(),
            Err(e) => {
                tracing::warn!(error = %e, "notifications interrupted; polling meanwhile");
                tokio::time::sleep(pause).await;
                wake.notify_one();
            }
        }
    }
}
