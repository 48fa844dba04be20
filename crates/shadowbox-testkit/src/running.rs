//! A role (relay, ingester, simulator) running in a task of the test, with
//! a metrics registry of its own, stopped through its cancellation token.

use std::future::Future;

use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics::metric_value;
use crate::wait::{PATIENCE, eventually};

/// A role running until stopped, aborted or dropped (dropping cancels its
/// token and leaves it to finish on its own).
pub struct Running<T = ()> {
    registry: Registry,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<T>>>,
}

impl<T: Send + 'static> Running<T> {
    /// Starts `role` in a task: it registers its metrics in the registry it
    /// is given and runs until the token it is given is cancelled.
    pub fn start<F>(role: impl FnOnce(&mut Registry, CancellationToken) -> F) -> Self
    where
        F: Future<Output = anyhow::Result<T>> + Send + 'static,
    {
        let mut registry = Registry::default();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(role(&mut registry, shutdown.clone()));
        Self {
            registry,
            shutdown,
            task: Some(task),
        }
    }

    /// The value of one series of its metrics, as a scraper reads it (0 if
    /// absent).
    pub fn metric(&self, series: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("encode the metrics");
        metric_value(&text, series).unwrap_or(0.0)
    }

    /// Waits (bounded by [`PATIENCE`]) until `series` reads `value`.
    pub async fn wait_metric(&self, series: &str, value: f64) {
        eventually(PATIENCE, &format!("{series} == {value}"), || async {
            self.metric(series) == value
        })
        .await;
    }

    /// Cancels its token and waits (bounded by [`PATIENCE`]) for a clean
    /// return; panics if it fails or takes longer.
    pub async fn stop(mut self) -> T {
        self.shutdown.cancel();
        let task = self.task.take().expect("running");
        tokio::time::timeout(PATIENCE, task)
            .await
            .unwrap_or_else(|_| panic!("not stopped within {PATIENCE:?} of the cancellation"))
            .expect("the task does not panic")
            .expect("it returns Ok")
    }

    /// Kills it as a crash would: nothing of it runs after this returns (no
    /// flush, no acknowledgement, no DISCONNECT).
    pub async fn abort(mut self) {
        let task = self.task.take().expect("running");
        task.abort();
        let _ = task.await;
    }
}

impl<T> Drop for Running<T> {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
