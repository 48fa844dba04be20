//! `shadowbox simulate`: simulated devices that apply the desired state
//! they receive (or refuse it) and report it back, to watch and load-test
//! the whole loop.

use std::num::NonZeroUsize;
use std::time::Duration;

use clap::Args;
use shadowbox_core::TenantId;
use shadowbox_sim::{Connections, RejectRule, RejectWhen, SimSettings, device_ids};

use crate::CommonArgs;
use shadowbox_core::duration::{format as default_duration, parse as duration};

/// The simulator's flags.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// The tenant the devices belong to (they must be registered to be
    /// tracked by shadowbox).
    #[arg(long)]
    pub tenant: TenantId,
    /// How many devices: `{prefix}-00000`, `{prefix}-00001`, ...
    #[arg(long, default_value_t = 100)]
    pub devices: usize,
    /// Device id prefix.
    #[arg(long, default_value = "sim")]
    pub prefix: String,
    /// Devices share this many MQTT connections.
    #[arg(long, default_value_t = shadowbox_sim::DEFAULT_CONNECTIONS, conflicts_with = "per_device_connections")]
    pub connections: NonZeroUsize,
    /// One connection and persistent session per device, as real devices.
    #[arg(long)]
    pub per_device_connections: bool,
    /// Fraction (0-1) of the devices that come online.
    #[arg(long, default_value_t = shadowbox_sim::DEFAULT_ONLINE_FRACTION)]
    pub online_fraction: f64,
    /// Fraction (0-1) of desired messages ignored, as if lost.
    #[arg(long, default_value_t = shadowbox_sim::DEFAULT_DROP_RATE)]
    pub drop_rate: f64,
    /// Fraction (0-1) of desired versions each device refuses, reported as
    /// a rejection (the same versions every run).
    #[arg(long, default_value_t = RejectRule::default().rate)]
    pub reject_rate: f64,
    /// Refuse every desired document whose top-level `key` holds `value`
    /// (read as JSON when it is, else as a string), e.g. `firmware=2.4.1`;
    /// repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub reject_when: Vec<RejectWhen>,
    /// Time a device takes to apply a desired document (e.g. 200ms).
    #[arg(
        long,
        default_value = default_duration(shadowbox_sim::DEFAULT_APPLY_DELAY),
        value_parser = duration
    )]
    pub delay: Duration,
    /// Drop and re-establish every connection this often (e.g. 30s).
    #[arg(long, value_parser = duration)]
    pub disconnect_every: Option<Duration>,
    /// How often the counters are logged.
    #[arg(
        long,
        default_value = default_duration(shadowbox_sim::DEFAULT_REPORT_EVERY),
        value_parser = duration
    )]
    pub report_every: Duration,
}

impl SimulateArgs {
    /// The simulator's settings.
    pub fn settings(self, common: &CommonArgs) -> anyhow::Result<SimSettings> {
        let devices = device_ids(&self.prefix, self.devices)?;
        let mut settings = SimSettings::new(common.mqtt()?, self.tenant, devices);
        settings.connections = if self.per_device_connections {
            Connections::PerDevice
        } else {
            Connections::Shared(self.connections)
        };
        settings.online_fraction = self.online_fraction;
        settings.drop_rate = self.drop_rate;
        settings.apply_delay = self.delay;
        settings.reject = RejectRule {
            rate: self.reject_rate,
            when: self.reject_when,
        };
        settings.disconnect_every = self.disconnect_every;
        settings.report_every = self.report_every;
        Ok(settings)
    }
}

/// Runs the simulator until SIGTERM or ctrl-c, then prints its counters.
pub async fn simulate(common: &CommonArgs, args: SimulateArgs) -> anyhow::Result<()> {
    let settings = args.settings(common)?;
    let stats = shadowbox_sim::run(settings, crate::roles::shutdown_on_signal()).await?;
    println!("{stats}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn reject_flags_make_the_reject_rule() {
        let cli = crate::Cli::try_parse_from([
            "shadowbox",
            "simulate",
            "--tenant",
            "acme",
            "--reject-rate",
            "0.25",
            "--reject-when",
            "firmware=2.4.1",
            "--reject-when",
            "rate=5",
        ])
        .unwrap();
        let crate::Command::Simulate(args) = cli.command else {
            unreachable!("parsed `simulate`")
        };
        let settings = args.settings(&cli.common).unwrap();
        assert_eq!(settings.reject.rate, 0.25);
        let when: Vec<String> = settings.reject.when.iter().map(|w| w.to_string()).collect();
        assert_eq!(when, ["firmware=\"2.4.1\"", "rate=5"]);
    }

    /// The flags' defaults are the simulator's own defaults, not copies.
    #[test]
    fn flag_defaults_are_the_settings_defaults() {
        let cli =
            crate::Cli::try_parse_from(["shadowbox", "simulate", "--tenant", "acme"]).unwrap();
        let crate::Command::Simulate(args) = cli.command else {
            unreachable!("parsed `simulate`")
        };
        let settings = args.settings(&cli.common).unwrap();
        let defaults = SimSettings::new(
            cli.common.mqtt().unwrap(),
            settings.tenant.clone(),
            settings.devices.clone(),
        );
        assert_eq!(
            (
                settings.connections,
                settings.online_fraction,
                settings.drop_rate,
                settings.apply_delay,
                settings.reject.clone(),
                settings.disconnect_every,
                settings.report_every,
            ),
            (
                defaults.connections,
                defaults.online_fraction,
                defaults.drop_rate,
                defaults.apply_delay,
                defaults.reject.clone(),
                defaults.disconnect_every,
                defaults.report_every,
            )
        );
    }
}
