//! The shadowbox reported-state ingester.
//!
//! Devices publish `{"reported": {...}, "version": n}` to
//! `tenant/{t}/device/{d}/shadow/reported`; the ingester writes it to
//! `device_state`. Data flows through these layers, in this order:
//!
//! - [`connection`]: one task owns the MQTT event loop, keeps a
//!   persistent session with manual acks (MQTT 5: with a session expiry
//!   and a receive maximum), (re)subscribes to the shared filter, moves to
//!   the next broker of the list when one fails, and hands every message
//!   to its device's writer through a bounded channel;
//! - [`batch`]: decodes, validates and coalesces a batch (per device, the
//!   highest version wins; among equal versions the latest received);
//! - [`apply`]: writes the batch in one statement, waiting out a database
//!   outage with the reconnect backoff (`shadowbox_core::backoff`);
//! - [`worker`]: a writer (`SHADOWBOX_INGEST_WRITERS` of them, each
//!   device's reports always to the same one) collects batches, counts
//!   every message's result and acknowledges each message only after its
//!   effect is committed, in receive order across writers.
//!
//! [`metrics`] holds the Prometheus metrics and [`log_sampler`] keeps bad
//! input from flooding the logs. Depends on `shadowbox-core`,
//! `shadowbox-db` and `shadowbox-mqtt`; it writes no SQL of its own.

mod apply;
mod batch;
mod connection;
mod log_sampler;
mod metrics;
mod settings;
mod worker;

use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use metrics::IngestMetrics;
pub use settings::{
    DEFAULT_BATCH_SIZE, DEFAULT_BATCH_WAIT, DEFAULT_SESSION_EXPIRY, DEFAULT_SHARE_GROUP,
    DEFAULT_WRITERS, IngestSettings, receive_maximum,
};

/// How long the connection task may take, once the worker has flushed, to
/// send the last acks and the DISCONNECT before it is abandoned (the broker
/// then redelivers whatever was not acknowledged).
const DISCONNECT_GRACE: Duration = Duration::from_secs(5);

/// Runs the ingester until `shutdown` is cancelled: then it commits and
/// acknowledges the batch in hand, disconnects cleanly and returns.
///
/// Returns an error only for what retrying cannot fix, such as the broker
/// refusing the subscription; broker and database outages are waited out.
pub async fn run(
    settings: IngestSettings,
    pool: PgPool,
    metrics: IngestMetrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let stop = shutdown.child_token();
    let (connection, writers) = connection::Connection::start(&settings, metrics.clone());
    let acks = connection.acks();
    let mut connection = tokio::spawn(connection.drive());
    let worker = worker::Worker {
        pool,
        acks: acks.clone(),
        metrics,
        batch_size: settings.batch_size.max(1),
        batch_wait: settings.batch_wait,
        limits: settings.limits,
    };
    let mut running = tokio::task::JoinSet::new();
    for messages in writers {
        running.spawn(worker.clone().run(messages, stop.clone()));
    }
    // Every writer settles what it holds; then a clean disconnect. A writer
    // that panicked never acknowledges its messages, which would hold back
    // every later ack: the others are stopped too, and the broker
    // redelivers.
    let writers_stop = stop.clone();
    let work = async move {
        let mut panicked = None;
        while let Some(ended) = running.join_next().await {
            if let Err(e) = ended {
                writers_stop.cancel();
                panicked = Some(e);
            }
        }
        acks.disconnect().await;
        panicked.map_or(Ok(()), |e| Err(e).context("an ingest writer panicked"))
    };
    tokio::pin!(work);
    tokio::select! {
        settled = &mut work => {
            let closed = match tokio::time::timeout(DISCONNECT_GRACE, &mut connection).await {
                Ok(ended) => ended.context("the MQTT connection task panicked")?,
                Err(_) => {
                    tracing::warn!("the broker did not take the disconnect in time; closing anyway");
                    connection.abort();
                    Ok(())
                }
            };
            settled?;
            closed
        }
        ended = &mut connection => {
            // The connection ends by itself on a fatal error, or when a
            // writer is gone (it panicked): stop the writers (their acks can
            // no longer be sent; the broker redelivers).
            stop.cancel();
            work.await?;
            ended.context("the MQTT connection task panicked")?
        }
    }
}
