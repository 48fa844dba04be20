//! Waking idle workers: `LISTEN` on the channel every outbox insert
//! notifies, with polling as the fallback, so a lost notification costs at
//! most one poll interval.

use std::sync::Arc;
use std::time::Duration;

use shadowbox_db::notifications;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::RelaySettings;

/// How long the listener waits after its connection failed before it
/// listens again (the workers poll meanwhile).
const RELISTEN_PAUSE: Duration = Duration::from_secs(1);

/// Wakes one idle worker per notification.
#[derive(Clone)]
pub struct Wake {
    notify: Arc<Notify>,
    poll_interval: Duration,
}

impl Wake {
    /// Subscribes to the outbox channel (before any worker queries, so no
    /// notification between a query and the wait is lost) and forwards
    /// notifications until `shutdown`.
    pub async fn start(
        pool: &PgPool,
        settings: &RelaySettings,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> sqlx::Result<Self> {
        let listener = notifications::listen(pool, shadowbox_db::OUTBOX_CHANNEL).await?;
        let wake = Self {
            notify: Arc::new(Notify::new()),
            poll_interval: settings.poll_interval,
        };
        let notify = wake.notify.clone();
        tasks.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = notifications::forward(listener, &notify, RELISTEN_PAUSE) => {}
            }
        });
        Ok(wake)
    }

    /// Passes the wake-up on to another idle worker: there may be more work
    /// than one batch takes.
    pub fn pass_on(&self) {
        self.notify.notify_one();
    }

    /// Waits for a notification, the poll interval, or `cancel`.
    pub async fn idle(&self, cancel: &CancellationToken) {
        tokio::select! {
            () = self.notify.notified() => {}
            () = tokio::time::sleep(self.poll_interval) => {}
            () = cancel.cancelled() => {}
        }
    }
}
