//! The six figures, measured in order against the private servers:
//!
//! 1. desired writes beside pgbench ([`writes`]);
//! 2. commit-to-device latency ([`latency`]);
//! 3. relay drain beside the raw publish rate ([`drain`]);
//! 4. ingest beside the raw delivery rate ([`ingest`]);
//! 5. the scale curve ([`scale`]);
//! 6. peak RSS of every `serve` (here).
//!
//! Figures 1 to 4 share one database and one `serve`; each scale-curve
//! fleet has its own.

pub mod drain;
pub mod ingest;
pub mod latency;
pub mod scale;
pub mod writes;

use serde_json::json;

use crate::api::DesiredApi;
use crate::fleet;
use crate::lab::Lab;
use crate::profile::Profile;
use crate::report::{Figure, Row, count};
use crate::serve::Serve;

/// The database of figures 1 to 4.
const DB: &str = "bench";
/// Tenants of figures 1 to 4: writes, latency, ingest, and the two drains.
const WRITES: &str = "writes";
const LATENCY: &str = "latency";
const INGEST: &str = "ingest";
const DRAIN: &str = "drain";
const DRAIN_WIDE: &str = "drainwide";

/// Measures every figure; `done` gets each one as soon as it is measured.
pub async fn run(
    lab: &Lab,
    profile: &Profile,
    mut done: impl FnMut(&Figure),
) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let mut record = |figure: Figure| {
        done(&figure);
        figures.push(figure);
    };
    let devices = profile.devices;
    eprintln!("==> set-up: database {DB}, {devices} devices per tenant");
    let pool = lab.create_database(DB).await?;
    for (tenant, n) in [
        (WRITES, devices),
        (LATENCY, devices),
        (INGEST, devices),
        (DRAIN, profile.backlog_devices),
        (DRAIN_WIDE, profile.backlog_rows),
    ] {
        fleet::create(&pool, tenant, n).await?;
    }
    fleet::vacuum(&pool).await?;

    let serve = Serve::start(lab, DB, "main").await?;
    let watched = lab.watched(Some(serve.pid()));
    eprintln!(
        "==> 1 desired writes: pgbench at {:?} clients",
        profile.clients
    );
    let limits = writes::limits(
        lab,
        &watched,
        DB,
        WRITES,
        devices,
        &profile.clients,
        profile.window,
    )
    .await?;
    let key = fleet::api_key(serve.base_url(), WRITES).await?;
    let api = DesiredApi::new(serve.base_url(), WRITES, &key)?;
    eprintln!(
        "==> 1 desired writes: the API at {:?} clients",
        profile.clients
    );
    let measured = writes::measure(
        &api,
        &watched,
        devices,
        &profile.clients,
        profile.warmup,
        profile.window,
    )
    .await;
    record(Figure {
        name: "writes",
        rows: writes::rows("1 desired writes", &limits, &measured),
        detail: json!({"devices": devices, "pgbench": limits, "api": measured}),
    });

    eprintln!(
        "==> 2 commit-to-device latency at {:?} updates/s",
        profile.rates
    );
    let key = fleet::api_key(serve.base_url(), LATENCY).await?;
    let api = DesiredApi::new(serve.base_url(), LATENCY, &key)?;
    let points = latency::measure(
        &api,
        lab.mqtt_port(),
        &watched,
        LATENCY,
        devices,
        &profile.rates,
        profile.rate_window,
    )
    .await?;
    record(Figure {
        name: "latency",
        rows: latency::rows(&points),
        detail: json!({"devices": devices, "points": points}),
    });

    eprintln!("==> 3 relay drain");
    let raw = drain::raw(lab.mqtt_port(), &watched, profile.backlog_rows).await?;
    let coalesced = drain::drain(
        &pool,
        &watched,
        DRAIN,
        profile.backlog_devices,
        profile.backlog_rows,
    )
    .await?;
    let wide = drain::drain(
        &pool,
        &watched,
        DRAIN_WIDE,
        profile.backlog_rows,
        profile.backlog_rows,
    )
    .await?;
    record(Figure {
        name: "drain",
        rows: vec![
            drain::row("3 relay drain", &coalesced, &raw),
            drain::row("3 relay drain", &wide, &raw),
        ],
        detail: json!({"raw": raw, "coalesced": coalesced, "one_row_per_device": wide}),
    });

    eprintln!("==> 4 ingest");
    let raw_in = ingest::raw(
        lab.mqtt_port(),
        &watched,
        devices,
        profile.reported_messages,
    )
    .await?;
    let pass = ingest::ingest(
        &pool,
        lab.mqtt_port(),
        &watched,
        INGEST,
        devices,
        profile.reported_messages,
    )
    .await?;
    record(Figure {
        name: "ingest",
        rows: vec![ingest::row(&pass, &raw_in, devices)],
        detail: json!({"devices": devices, "raw": raw_in, "ingest": pass}),
    });
    let main_peak = serve.stop().await?;
    pool.close().await;

    let points = scale::measure(lab, profile).await?;
    record(Figure {
        name: "scale",
        rows: scale::rows(&points, &raw),
        detail: json!({"raw_publishes_per_second": raw.per_second, "points": points}),
    });

    let mut peaks = vec![("figures 1-4".to_owned(), main_peak)];
    peaks.extend(
        points
            .iter()
            .map(|p| (format!("scale {} devices", p.devices), p.peak_rss_kib)),
    );
    record(memory(&peaks));
    Ok(figures)
}

/// Figure 6: the largest peak RSS of any `serve`, beside the machine's
/// memory.
fn memory(peaks: &[(String, u64)]) -> Figure {
    let (run, peak) = peaks
        .iter()
        .max_by_key(|(_, kib)| *kib)
        .cloned()
        .unwrap_or_default();
    let total = crate::machine::total_memory_kib();
    let mib = |kib: u64| kib as f64 / 1024.0;
    Figure {
        name: "memory",
        rows: vec![Row {
            figure: "6 peak RSS of shadowbox serve".into(),
            value: format!("{:.1} MiB ({run})", mib(peak)),
            limit: format!("machine {} MiB", count(mib(total))),
            ratio: Some(peak as f64 / total.max(1) as f64),
            target: "-".into(),
            met: None,
        }],
        detail: json!({
            "peak_rss_kib_by_run": peaks.iter().map(|(r, k)| json!({"run": r, "peak_rss_kib": k})).collect::<Vec<_>>(),
            "machine_memory_kib": total,
        }),
    }
}
