//! `shadowbox simulate`: simulated devices that apply the desired state
//! they receive and report it back, to watch and load-test the whole loop.

use std::num::NonZeroUsize;
use std::time::Duration;

use clap::Args;
use shadowbox_core::TenantId;
use shadowbox_sim::{Connections, SimSettings, device_ids};

use crate::CommonArgs;
use crate::duration::parse as duration;

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
    #[arg(long, default_value_t = NonZeroUsize::MIN, conflicts_with = "per_device_connections")]
    pub connections: NonZeroUsize,
    /// One connection and persistent session per device, as real devices.
    #[arg(long)]
    pub per_device_connections: bool,
    /// Fraction (0-1) of the devices that come online.
    #[arg(long, default_value_t = 1.0)]
    pub online_fraction: f64,
    /// Fraction (0-1) of desired messages ignored, as if lost.
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Time a device takes to apply a desired document (e.g. 200ms).
    #[arg(long, default_value = "0ms", value_parser = duration)]
    pub delay: Duration,
    /// Drop and re-establish every connection this often (e.g. 30s).
    #[arg(long, value_parser = duration)]
    pub disconnect_every: Option<Duration>,
    /// How often the counters are logged.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub report_every: Duration,
}

/// Runs the simulator until SIGTERM or ctrl-c, then prints its counters.
pub async fn simulate(common: &CommonArgs, args: SimulateArgs) -> anyhow::Result<()> {
    let devices = device_ids(&args.prefix, args.devices)?;
    let mut settings = SimSettings::new(common.mqtt()?, args.tenant, devices);
    settings.connections = if args.per_device_connections {
        Connections::PerDevice
    } else {
        Connections::Shared(args.connections)
    };
    settings.online_fraction = args.online_fraction;
    settings.drop_rate = args.drop_rate;
    settings.apply_delay = args.delay;
    settings.disconnect_every = args.disconnect_every;
    settings.report_every = args.report_every;
    let stats = shadowbox_sim::run(settings, crate::roles::shutdown_on_signal()).await?;
    println!("{stats}");
    Ok(())
}
