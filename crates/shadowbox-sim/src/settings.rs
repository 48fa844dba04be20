//! What to simulate: the tenant, its devices, how they connect and how
//! flaky they are, and the defaults of each (used by the command line
//! too).

use std::num::NonZeroUsize;
use std::time::Duration;

use shadowbox_core::{DeviceId, IdError, TenantId};
use shadowbox_mqtt::MqttConfig;

use crate::reject::RejectRule;

/// Connections the devices share unless told otherwise.
pub const DEFAULT_CONNECTIONS: NonZeroUsize = NonZeroUsize::MIN;

/// Fraction of the devices that come online unless told otherwise: all.
pub const DEFAULT_ONLINE_FRACTION: f64 = 1.0;

/// Fraction of desired messages ignored unless told otherwise: none.
pub const DEFAULT_DROP_RATE: f64 = 0.0;

/// How long a device takes to apply a desired document unless told
/// otherwise: no time.
pub const DEFAULT_APPLY_DELAY: Duration = Duration::ZERO;

/// How often the counters are logged unless told otherwise.
pub const DEFAULT_REPORT_EVERY: Duration = Duration::from_secs(10);

/// How the simulated devices reach the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    /// Devices share this many connections (clean sessions), each
    /// subscribing for its share of the devices: cheap enough for
    /// thousands of devices on one machine.
    Shared(NonZeroUsize),
    /// One connection per device with a persistent session of its own
    /// (client id `{tenant}/{device}`), as real devices behave: desired
    /// changes published while it is away are delivered when it returns.
    PerDevice,
}

/// Everything a simulator run needs.
#[derive(Debug, Clone)]
pub struct SimSettings {
    /// The brokers, with the login every connection uses.
    pub mqtt: MqttConfig,
    /// The tenant the devices belong to.
    pub tenant: TenantId,
    /// The devices (see [`device_ids`]).
    pub devices: Vec<DeviceId>,
    /// How they share connections.
    pub connections: Connections,
    /// Fraction (0–1) of the devices that connect at all; the others stay
    /// offline for the whole run.
    pub online_fraction: f64,
    /// Fraction (0–1) of desired messages ignored as if lost.
    pub drop_rate: f64,
    /// How long a device takes to apply a desired document.
    pub apply_delay: Duration,
    /// Which desired versions the devices refuse (none by default).
    pub reject: RejectRule,
    /// Drop every connection and reconnect this often, if set.
    pub disconnect_every: Option<Duration>,
    /// How often the counters are logged.
    pub report_every: Duration,
}

impl SimSettings {
    /// Settings for `devices` of `tenant` on the brokers of `mqtt`, every
    /// other value at its default: one shared connection, every device
    /// online, no flakiness, counters logged every 10 s.
    pub fn new(mqtt: MqttConfig, tenant: TenantId, devices: Vec<DeviceId>) -> Self {
        Self {
            mqtt,
            tenant,
            devices,
            connections: Connections::Shared(DEFAULT_CONNECTIONS),
            online_fraction: DEFAULT_ONLINE_FRACTION,
            drop_rate: DEFAULT_DROP_RATE,
            apply_delay: DEFAULT_APPLY_DELAY,
            reject: RejectRule::default(),
            disconnect_every: None,
            report_every: DEFAULT_REPORT_EVERY,
        }
    }

    /// Refuses settings that cannot run.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        for (name, fraction) in [
            ("online fraction", self.online_fraction),
            ("drop rate", self.drop_rate),
            ("reject rate", self.reject.rate),
        ] {
            anyhow::ensure!(
                (0.0..=1.0).contains(&fraction),
                "{name} must be between 0 and 1, got {fraction}"
            );
        }
        anyhow::ensure!(
            !self.report_every.is_zero(),
            "the report interval must not be zero"
        );
        anyhow::ensure!(
            self.disconnect_every.is_none_or(|d| !d.is_zero()),
            "the disconnect interval must not be zero"
        );
        Ok(())
    }
}

/// `count` device ids `{prefix}-{i:05}`, from `{prefix}-00000`.
pub fn device_ids(prefix: &str, count: usize) -> Result<Vec<DeviceId>, IdError> {
    (0..count)
        .map(|i| DeviceId::parse(format!("{prefix}-{i:05}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SimSettings {
        SimSettings::new(
            "mqtt://127.0.0.1:1883".parse().unwrap(),
            TenantId::parse("acme").unwrap(),
            device_ids("sim", 2).unwrap(),
        )
    }

    #[test]
    fn device_ids_are_numbered_from_zero() {
        let ids = device_ids("sim", 2).unwrap();
        assert_eq!(ids[0].as_str(), "sim-00000");
        assert_eq!(ids[1].as_str(), "sim-00001");
        assert!(device_ids("bad/prefix", 1).is_err());
    }

    #[test]
    fn validate_refuses_impossible_settings() {
        assert!(settings().validate().is_ok());
        let mut s = settings();
        s.drop_rate = 1.5;
        assert!(s.validate().is_err());
        let mut s = settings();
        s.online_fraction = -0.1;
        assert!(s.validate().is_err());
        let mut s = settings();
        s.disconnect_every = Some(Duration::ZERO);
        assert!(s.validate().is_err());
    }
}
