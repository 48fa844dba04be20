//! `shadowbox-bench`: the end-to-end benchmark of shadowbox.
//!
//! Runs the real `shadowbox serve` against a private PostgreSQL and a
//! private Mosquitto, loads it from this (async, Rust) load generator, and
//! prints every headline figure beside the limit of the same machine,
//! measured in the same run, as a ratio. Results go to stdout as a table
//! and to `<out>/<figure>.json` plus `<out>/summary.json`.
//!
//! `scripts/bench.sh [--quick]` builds the release binaries and runs it.

mod api;
mod cpu;
mod figures;
mod fleet;
mod lab;
mod machine;
mod mqtt;
mod pace;
mod pgbench;
mod profile;
mod report;
mod serve;
mod statements;
mod stats;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use serde_json::json;

use crate::lab::Lab;
use crate::machine::Machine;
use crate::profile::Profile;
use shadowbox_mqtt::Protocol;
use shadowbox_testkit::Durability;

/// End-to-end benchmark of shadowbox: every headline figure beside the
/// same machine's limit, measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "shadowbox-bench", version, about)]
struct Args {
    /// Small sizes and short windows (under 2 minutes): checks every
    /// figure runs; the numbers mean little.
    #[arg(long)]
    quick: bool,
    /// Where the JSON results and the servers' logs go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// The `shadowbox` binary under test.
    #[arg(long, default_value = "target/release/shadowbox")]
    shadowbox: PathBuf,
    /// The MQTT version `serve` speaks to the broker
    /// (`SHADOWBOX_MQTT_PROTOCOL`): 5 or 3.1.1. The load generator's own
    /// clients (raw rates, devices) speak 3.1.1 either way.
    #[arg(long, default_value = "5")]
    protocol: Protocol,
    /// Only these figures (comma-separated: writes, latency, drain, ingest,
    /// scale, memory, reconcile, rollout); every one by default.
    #[arg(long, value_delimiter = ',', value_parser = figures::NAMES)]
    only: Vec<String>,
    /// Run the private PostgreSQL with `fsync=off`: faster, and not what
    /// users run (a crash may lose committed writes). Every output says
    /// so. By default the cluster is durable (`fsync` and
    /// `synchronous_commit` on).
    #[arg(long)]
    fsync_off: bool,
    /// The rollout figure's sizes (comma-separated device counts) instead
    /// of the profile's, e.g. `--rollout-devices 1000000`.
    #[arg(long, value_delimiter = ',')]
    rollout_devices: Vec<u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            // Returning (not exiting) on a signal drops every guard: the
            // serve process, the broker and the database are stopped.
            tokio::select! {
                result = run(args) => result,
                signal = stop_signal() => Err(anyhow::anyhow!("interrupted by {}", signal?)),
            }
        })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut profile = if args.quick {
        Profile::quick()
    } else {
        Profile::full()
    };
    if !args.rollout_devices.is_empty() {
        profile.rollout_fleets = args.rollout_devices.clone();
    }
    let started = Instant::now();
    let date = chrono::Utc::now();
    let machine = Machine::now();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    eprintln!(
        "==> shadowbox-bench{} --protocol {}: {} cores, {} MiB, load {}",
        if profile.quick { " --quick" } else { "" },
        args.protocol,
        machine.cores,
        machine.memory_mib,
        machine.load_average
    );
    let durability = if args.fsync_off {
        Durability::FsyncOff
    } else {
        Durability::Durable
    };
    let lab = Lab::start(
        args.shadowbox.clone(),
        args.out.join("logs"),
        args.protocol,
        durability,
    )
    .await?;
    let database = lab.database_settings().await?;
    eprintln!("==> PostgreSQL: {}", durability_label(durability));
    let figures = figures::run(&lab, &profile, &args.only, |figure| {
        print!("{}", report::table(&figure.rows));
    })
    .await?;
    drop(lab);
    let rows: Vec<_> = figures.iter().flat_map(|f| f.rows.clone()).collect();
    for figure in &figures {
        report::write_figure(&args.out, figure)?;
    }
    report::write_json(
        &args.out.join("summary.json"),
        &json!({
            "date": date.to_rfc3339(),
            "command": command,
            "machine": machine,
            "mqtt_protocol": args.protocol.to_string(),
            "database": database,
            "database_durability": durability_label(durability),
            "load_average_after": machine::load_average(),
            "seconds": started.elapsed().as_secs_f64(),
            "profile": profile,
            "rows": rows,
        }),
    )?;
    println!(
        "\nshadowbox-bench {} (MQTT {}, PostgreSQL {}) on {} cores / {} MiB ({}), {:.0} s:\n",
        date.format("%Y-%m-%d %H:%M UTC"),
        args.protocol,
        durability_label(durability),
        machine.cores,
        machine.memory_mib,
        machine.cpu_model,
        started.elapsed().as_secs_f64()
    );
    print!("{}", report::table(&rows));
    println!("\nJSON: {}/*.json", args.out.display());
    Ok(())
}

/// How the run's PostgreSQL keeps commits, as every output states it.
fn durability_label(durability: Durability) -> &'static str {
    match durability {
        Durability::Durable => "durable: fsync on",
        Durability::FsyncOff => "fsync=off: NOT durable (--fsync-off)",
    }
}

/// The first of ctrl-c and SIGTERM.
async fn stop_signal() -> anyhow::Result<&'static str> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map(|()| "ctrl-c").map_err(Into::into),
        _ = term.recv() => Ok("SIGTERM"),
    }
}
