//! The relay under test, running in a task of the test.

use std::time::Duration;

use shadowbox_mqtt::{MqttConfig, Protocol};
use shadowbox_relay::{RelayMetrics, RelaySettings};
use shadowbox_testkit::Running;
use sqlx::PgPool;

/// Starts a relay on `pool` and `broker_url` (one URL or a comma-separated
/// list) speaking `protocol`, polling every 200 ms, with `tweak` applied to
/// its settings.
pub fn start_relay(
    pool: &PgPool,
    broker_url: &str,
    protocol: Protocol,
    tweak: impl FnOnce(&mut RelaySettings),
) -> Running {
    let mqtt = broker_url.parse::<MqttConfig>().unwrap();
    let mut settings = RelaySettings::new(mqtt.with_protocol(protocol));
    settings.poll_interval = Duration::from_millis(200);
    tweak(&mut settings);
    let pool = pool.clone();
    Running::start(|registry, shutdown| {
        shadowbox_relay::run(settings, pool, RelayMetrics::register(registry), shutdown)
    })
}
