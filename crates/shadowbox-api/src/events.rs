//! Event streams (`GET .../events`). Events are rows the database writes
//! in the transactions that make them (`shadowbox_db::events`), so every
//! replica streams every event. Here:
//!
//! - [`EventFeed`]: one poller per process, running only while streams are
//!   open, notices when a newer event becomes visible and wakes the
//!   streams (the database decides when an event may be seen: see
//!   `shadowbox_db::events`);
//! - [`open`]: a stream's task reads its tenant's events after its
//!   position, in commit order, and hands them to the client through a
//!   buffer of [`crate::ApiSettings::events_buffer`] events. A client that
//!   leaves it full for half the [`crate::ApiSettings::send_timeout`] is sent the
//!   reason (an SSE comment) and the stream ends; on shutdown every stream
//!   ends the same way, so none holds it up.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::{Map, Value, json};
use shadowbox_core::event::EventId;
use shadowbox_core::{DeviceId, TenantId};
use shadowbox_db::events::{self, EventRow};
use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::metrics::{ApiMetrics, StreamClosedLabels};
use crate::state::AppState;

/// Events read from the database at once.
const READ_BATCH: i64 = 256;

/// Streams reading from the database at once, per process: however many
/// streams are open, they never take more of the pool than this, so the
/// API's requests always find a connection.
const CONCURRENT_READS: usize = 4;

/// Wakes the streams when a newer event becomes visible.
pub(crate) struct EventFeed {
    /// The newest visible event of any tenant: every event that becomes
    /// visible is newer than all before it, so it moves whenever a stream
    /// may have something to send.
    newest: watch::Sender<Option<EventId>>,
    /// Cancelled when the server shuts down: every stream ends.
    closing: CancellationToken,
    /// Permits to read from the database ([`CONCURRENT_READS`]).
    reads: Semaphore,
}

impl EventFeed {
    /// A feed that wakes no stream until [`EventFeed::run`] runs.
    pub(crate) fn new() -> Self {
        Self {
            newest: watch::Sender::new(None),
            closing: CancellationToken::new(),
            reads: Semaphore::new(CONCURRENT_READS),
        }
    }

    /// Looks for newer events every `interval` while streams are open,
    /// until `shutdown`; then ends every stream.
    pub(crate) async fn run(
        self: Arc<Self>,
        pool: PgPool,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => break,
            }
            if self.newest.receiver_count() == 0 {
                continue;
            }
            match events::newest_visible(&pool).await {
                Ok(newest) => {
                    self.newest.send_if_modified(|current| {
                        let moved = *current != newest;
                        *current = newest;
                        moved
                    });
                }
                Err(e) => tracing::warn!(error = %e, "looking for new events failed"),
            }
        }
        self.closing.cancel();
    }
}

/// What a stream sends: whose events, from where.
pub(crate) struct StreamRequest {
    /// The tenant.
    pub tenant: TenantId,
    /// Only this device's events, if given.
    pub device: Option<DeviceId>,
    /// The position after which the stream starts.
    pub after: EventId,
}

/// Starts a stream's task and returns its body, with heartbeat comments
/// while it is idle.
pub(crate) fn open(
    state: &AppState,
    request: StreamRequest,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    let (sender, receiver) = mpsc::channel(state.settings.events_buffer.max(1));
    let metrics = state.metrics.clone();
    metrics.event_streams.inc();
    let task = Streamer {
        pool: state.pool.clone(),
        feed: state.events.clone(),
        request,
        sender,
        send_timeout: state.settings.send_timeout,
    };
    tokio::spawn(async move {
        let ended = task.run().await;
        close(&metrics, ended);
    });
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let event = receiver.recv().await?;
        Some((Ok(event), receiver))
    });
    Sse::new(body).keep_alive(
        KeepAlive::new()
            .interval(state.settings.events_heartbeat)
            .text("heartbeat"),
    )
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The client went away.
    ClientGone,
    /// The client let the buffer fill.
    SlowClient,
    /// The server is shutting down.
    Shutdown,
    /// The database failed.
    Error,
}

impl Ended {
    /// The metric label, also the first word of the closing comment.
    fn label(self) -> &'static str {
        match self {
            Self::ClientGone => "client_gone",
            Self::SlowClient => "slow_client",
            Self::Shutdown => "shutdown",
            Self::Error => "error",
        }
    }

    /// The comment that tells the client why the stream ends.
    fn comment(self) -> Event {
        let why = match self {
            Self::SlowClient => "the client read too slowly",
            Self::Shutdown => "the server is shutting down",
            Self::Error | Self::ClientGone => "the events could not be read",
        };
        Event::default().comment(format!(
            "closed {}: {why}; reconnect with Last-Event-ID",
            self.label()
        ))
    }
}

fn close(metrics: &ApiMetrics, ended: Ended) {
    metrics.event_streams.dec();
    metrics
        .event_streams_closed
        .get_or_create(&StreamClosedLabels {
            reason: ended.label(),
        })
        .inc();
}

/// One stream's task.
struct Streamer {
    pool: PgPool,
    feed: Arc<EventFeed>,
    request: StreamRequest,
    sender: mpsc::Sender<Event>,
    /// Half of it is how long a full buffer may wait for the client.
    send_timeout: Duration,
}

impl Streamer {
    /// Sends events until the client goes, falls behind, or the server
    /// shuts down.
    async fn run(self) -> Ended {
        let mut newest = self.feed.newest.subscribe();
        let mut position = self.request.after;
        loop {
            newest.mark_unchanged();
            loop {
                let permit = self.feed.reads.acquire().await;
                let rows = events::read_after(
                    &self.pool,
                    &self.request.tenant,
                    self.request.device.as_ref(),
                    position,
                    READ_BATCH,
                )
                .await;
                drop(permit);
                let rows = match rows {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::warn!(error = %e, tenant = %self.request.tenant, "reading events failed");
                        let _ = self.sender.try_send(Ended::Error.comment());
                        return Ended::Error;
                    }
                };
                let more = rows.len() as i64 == READ_BATCH;
                for row in rows {
                    let id = row.id();
                    // A client that takes nothing for half the send timeout
                    // while its buffer is full is too slow (half: before
                    // `send_timeout` drops a connection that stopped
                    // reading, so the reason is known). Nothing past
                    // `position` was handed over: it resumes exactly there.
                    match tokio::time::timeout(
                        self.send_timeout / 2,
                        self.sender.send(sse_event(row)),
                    )
                    .await
                    {
                        Ok(Ok(())) => position = id,
                        Ok(Err(_)) => return Ended::ClientGone,
                        Err(_) => {
                            tokio::select! {
                                _ = self.sender.send(Ended::SlowClient.comment()) => {}
                                () = self.feed.closing.cancelled() => {}
                            }
                            return Ended::SlowClient;
                        }
                    }
                }
                if !more {
                    break;
                }
            }
            tokio::select! {
                changed = newest.changed() => {
                    if changed.is_err() {
                        return Ended::Shutdown;
                    }
                }
                () = self.feed.closing.cancelled() => {
                    let _ = self.sender.try_send(Ended::Shutdown.comment());
                    return Ended::Shutdown;
                }
                () = self.sender.closed() => return Ended::ClientGone,
            }
        }
    }
}

/// An event as the stream sends it: `id:`, `event:` and a JSON `data:`
/// with `type`, `tenant_id`, `at`, `device_id`, `version` and `rollout_id`
/// where they apply, and the event's own fields.
fn sse_event(row: EventRow) -> Event {
    let id = row.id();
    let mut data = Map::new();
    data.insert("type".into(), json!(row.event));
    data.insert("tenant_id".into(), json!(row.tenant_id));
    if let Some(device) = row.device_id {
        data.insert("device_id".into(), json!(device));
    }
    if let Some(version) = row.version {
        data.insert("version".into(), json!(version));
    }
    if let Some(rollout) = row.rollout_id {
        data.insert("rollout_id".into(), json!(rollout));
    }
    data.insert("at".into(), json!(row.at));
    data.extend(row.data.0);
    Event::default()
        .id(id.to_string())
        .event(row.event.as_str())
        .data(Value::Object(data).to_string())
}
