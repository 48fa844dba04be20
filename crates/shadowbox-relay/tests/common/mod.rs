//! The relay under test, running in this process.

use std::time::Duration;

use shadowbox_mqtt::{MqttConfig, Protocol};
use shadowbox_relay::{RelayMetrics, RelaySettings};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A relay running in this process until dropped or stopped.
pub struct RunningRelay {
    pub shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningRelay {
    /// Starts a relay on `broker_url` (one URL or a comma-separated list)
    /// speaking `protocol`, with `tweak` applied to its settings.
    pub fn start(
        pool: &PgPool,
        broker_url: &str,
        protocol: Protocol,
        tweak: impl FnOnce(&mut RelaySettings),
    ) -> Self {
        let mqtt = broker_url.parse::<MqttConfig>().unwrap();
        let mut settings = RelaySettings::new(mqtt.with_protocol(protocol));
        settings.poll_interval = Duration::from_millis(200);
        tweak(&mut settings);
        let metrics = RelayMetrics::register(&mut Default::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(shadowbox_relay::run(
            settings,
            pool.clone(),
            metrics,
            shutdown.clone(),
        ));
        Self {
            shutdown,
            task: Some(task),
        }
    }

    /// Stops the relay and waits for it to finish.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("relay stops within 30 s")
            .unwrap()
            .unwrap();
    }
}

impl Drop for RunningRelay {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
