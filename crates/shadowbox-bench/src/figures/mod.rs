//! The six figures, measured in order against the private servers:
//!
//! 1. desired writes beside pgbench ([`writes`]);
//! 2. commit-to-device latency ([`latency`]);
//! 3. relay drain beside the raw publish rate ([`drain`]);
//! 4. ingest beside the raw delivery rate ([`ingest`]);
//! 5. the scale curve ([`scale`]);
//! 6. peak RSS of every `serve` (here);
//! 7. the cost of a reconcile pass ([`reconcile`]);
//! 8. a rollout's write and delivery beside plain SQL and the raw
//!    publish rate ([`rollout`]).
//!
//! Figures 1 to 4 share one database and one `serve`; each scale-curve
//! fleet, reconcile fleet and rollout size has its own. `--only` measures some of them; the drain and
//! ingest rows name the MQTT version and in-flight window they ran with.

pub mod drain;
pub mod ingest;
pub mod latency;
pub mod reconcile;
pub mod rollout;
pub mod scale;
pub mod writes;

use serde_json::json;

use crate::api::DesiredApi;
use crate::fleet;
use crate::lab::Lab;
use crate::profile::Profile;
use crate::report::{Figure, Row, count};
use crate::serve::{Role, Serve};
use crate::statements;
use shadowbox_mqtt::Protocol;

/// The database of figures 1 to 4.
const DB: &str = "bench";
/// Tenants of figures 1 to 4: writes (one per fleet size, see
/// [`writes_tenant`]), latency, ingest, and the two drains.
const LATENCY: &str = "latency";
const INGEST: &str = "ingest";
const DRAIN: &str = "drain";
const DRAIN_WIDE: &str = "drainwide";

/// The database of the drain curve.
const CURVE_DB: &str = "curve";

/// The figures' names, for `--only`.
pub const NAMES: [&str; 9] = [
    "writes",
    "latency",
    "drain",
    "curve",
    "ingest",
    "scale",
    "memory",
    "reconcile",
    "rollout",
];

/// The tenant of the write figure's fleet of `devices` devices.
fn writes_tenant(devices: u64) -> String {
    format!("writes{devices}")
}

/// How the relay's and the ingester's broker connection runs, for the
/// drain and ingest figures' labels: `(MQTT 5, in-flight 2000)`.
fn relay_connection(lab: &Lab, serve: &Serve) -> String {
    let window = serve
        .relay_in_flight_window()
        .map_or_else(|| "unknown".to_owned(), |w| w.to_string());
    format!("MQTT {}, in-flight {window}", lab.protocol())
}

/// Under MQTT 5 the ingester announces a receive maximum of a next batch
/// for each of its writers beside the one in hand; under 3.1.1 the
/// broker's `max_inflight_messages` bounds what it sends unacknowledged.
fn ingest_connection(lab: &Lab) -> String {
    let window = match lab.protocol() {
        Protocol::V5 => shadowbox_ingest::receive_maximum(
            shadowbox_ingest::DEFAULT_BATCH_SIZE,
            shadowbox_ingest::DEFAULT_WRITERS,
        ),
        Protocol::V311 => shadowbox_testkit::MAX_INFLIGHT_MESSAGES,
    };
    format!(
        "MQTT {}, in-flight {window}, {} writers",
        lab.protocol(),
        shadowbox_ingest::DEFAULT_WRITERS
    )
}

/// Measures the figures named in `only` (every one when it is empty);
/// `done` gets each one as soon as it is measured.
pub async fn run(
    lab: &Lab,
    profile: &Profile,
    only: &[String],
    mut done: impl FnMut(&Figure),
) -> anyhow::Result<Vec<Figure>> {
    let wants = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let mut figures = Vec::new();
    let mut record = |figure: Figure| {
        done(&figure);
        figures.push(figure);
    };
    let mut raw = None;
    let mut peaks = Vec::new();
    let mut writes_rows = Vec::new();
    let mut writes_detail = Vec::new();
    if ["writes", "latency", "drain", "ingest"]
        .iter()
        .any(|f| wants(f))
    {
        let devices = profile.devices;
        eprintln!("==> set-up: database {DB}, {devices} devices per tenant");
        let pool = lab.create_database(DB).await?;
        for (tenant, n) in [
            (LATENCY, devices),
            (INGEST, devices),
            (DRAIN, profile.backlog_devices),
            (DRAIN_WIDE, profile.backlog_rows),
        ] {
            fleet::create(&pool, tenant, n).await?;
        }
        for &n in &profile.write_fleets {
            fleet::create(&pool, &writes_tenant(n), n).await?;
        }
        fleet::vacuum(&pool).await?;
        statements::enable(&pool).await?;

        let serve = Serve::start(lab, DB, "main").await?;
        let watched = lab.watched(Some(serve.pid()));
        if wants("writes") {
            for &fleet_size in &profile.write_fleets {
                let tenant = writes_tenant(fleet_size);
                eprintln!(
                    "==> 1 desired writes, {fleet_size} devices: pgbench at {:?} clients",
                    profile.clients
                );
                let limits = writes::limits(
                    lab,
                    &watched,
                    DB,
                    &tenant,
                    fleet_size,
                    &profile.clients,
                    profile.window,
                )
                .await?;
                let key = fleet::api_key(serve.base_url(), &tenant).await?;
                let api = DesiredApi::new(serve.base_url(), &tenant, &key)?;
                eprintln!(
                    "==> 1 desired writes, {fleet_size} devices: the API at {:?} clients",
                    profile.clients
                );
                statements::reset(&pool).await?;
                let measured = writes::measure(
                    &api,
                    &watched,
                    fleet_size,
                    &profile.clients,
                    profile.warmup,
                    profile.window,
                )
                .await;
                let spent = statements::top(&pool).await?;
                let label = format!("1 desired writes, {} devices", count(fleet_size as f64));
                statements::print(&label, &spent);
                writes_rows.extend(writes::rows(&label, &limits, &measured));
                writes_detail.push(json!({"devices": fleet_size, "pgbench": limits, "api": measured, "statements": spent}));
            }
            record(Figure {
                name: "writes",
                rows: std::mem::take(&mut writes_rows),
                detail: json!({"fleets": std::mem::take(&mut writes_detail)}),
            });
        }

        if wants("latency") {
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
                rows: latency::rows(&points, &relay_connection(lab, &serve)),
                detail: json!({"devices": devices, "points": points}),
            });
        }

        if wants("drain") || wants("scale") {
            raw = Some(drain::raw(lab.mqtt_port(), &watched, profile.backlog_rows).await?);
        }
        if let (true, Some(raw)) = (wants("drain"), &raw) {
            eprintln!("==> 3 relay drain");
            statements::reset(&pool).await?;
            let coalesced = drain::drain(
                &pool,
                &watched,
                DRAIN,
                profile.backlog_devices,
                profile.backlog_rows,
            )
            .await?;
            let coalesced_spent = statements::top(&pool).await?;
            statements::print("3 relay drain, coalesced", &coalesced_spent);
            statements::reset(&pool).await?;
            let wide = drain::drain(
                &pool,
                &watched,
                DRAIN_WIDE,
                profile.backlog_rows,
                profile.backlog_rows,
            )
            .await?;
            let wide_spent = statements::top(&pool).await?;
            statements::print("3 relay drain, one row per device", &wide_spent);
            let connection = relay_connection(lab, &serve);
            let label = format!("3 relay drain ({connection})");
            record(Figure {
                name: "drain",
                rows: vec![
                    drain::row(&label, &coalesced, raw),
                    drain::row(&label, &wide, raw),
                ],
                detail: json!({
                    "connection": connection,
                    "raw": raw,
                    "coalesced": coalesced,
                    "one_row_per_device": wide,
                    "statements": {"coalesced": coalesced_spent, "one_row_per_device": wide_spent},
                }),
            });
        }

        if wants("ingest") {
            eprintln!("==> 4 ingest");
            let raw_in = ingest::raw(
                lab.mqtt_port(),
                &watched,
                devices,
                profile.reported_messages,
            )
            .await?;
            statements::reset(&pool).await?;
            let pass = ingest::ingest(
                &pool,
                lab.mqtt_port(),
                &watched,
                INGEST,
                devices,
                profile.reported_messages,
            )
            .await?;
            let spent = statements::top(&pool).await?;
            statements::print("4 ingest", &spent);
            let connection = ingest_connection(lab);
            record(Figure {
                name: "ingest",
                rows: vec![ingest::row(
                    &format!("4 ingest ({connection})"),
                    &pass,
                    &raw_in,
                    devices,
                )],
                detail: json!({
                    "connection": connection,
                    "devices": devices,
                    "raw": raw_in,
                    "ingest": pass,
                    "statements": spent,
                }),
            });
        }
        peaks.push(("figures 1-4".to_owned(), serve.stop().await?));
        pool.close().await;
    }

    if raw.is_none() && (wants("scale") || wants("rollout") || wants("curve")) {
        raw = Some(drain::raw(lab.mqtt_port(), &lab.watched(None), profile.backlog_rows).await?);
    }
    if let (true, Some(raw)) = (wants("curve"), &raw) {
        eprintln!(
            "==> set-up: database {CURVE_DB}, fleets of {:?} devices",
            profile.drain_curve
        );
        let pool = lab.create_database(CURVE_DB).await?;
        for &n in &profile.drain_curve {
            fleet::create(&pool, &drain::curve_tenant(n), n).await?;
        }
        fleet::vacuum(&pool).await?;
        statements::enable(&pool).await?;
        let mut points = Vec::new();
        for role in [Role::Serve, Role::Relay] {
            let drained = drain::curve(lab, &pool, CURVE_DB, role, &profile.drain_curve).await?;
            if let Some(last) = drained.last() {
                peaks.push((
                    format!("drain curve under {}", role.command()),
                    last.peak_rss_kib,
                ));
            }
            points.extend(drained);
        }
        pool.close().await;
        record(Figure {
            name: "curve",
            rows: drain::curve_rows(&points, raw),
            detail: json!({"raw": raw, "points": points}),
        });
    }
    if let (true, Some(raw)) = (wants("scale"), &raw) {
        let points = scale::measure(lab, profile).await?;
        record(Figure {
            name: "scale",
            rows: scale::rows(&points, raw),
            detail: json!({"raw_publishes_per_second": raw.per_second, "points": points}),
        });
        peaks.extend(
            points
                .iter()
                .map(|p| (format!("scale {} devices", p.devices), p.peak_rss_kib)),
        );
    }
    if wants("memory") && !peaks.is_empty() {
        record(memory(&peaks));
    }
    if wants("reconcile") {
        let points = reconcile::measure(lab, &profile.reconcile_fleets).await?;
        record(Figure {
            name: "reconcile",
            rows: reconcile::rows(&points),
            detail: json!({"points": points}),
        });
    }
    if let (true, Some(raw)) = (wants("rollout"), &raw) {
        let points = rollout::measure(lab, &profile.rollout_fleets).await?;
        record(Figure {
            name: "rollout",
            rows: rollout::rows(&points, raw),
            detail: json!({"raw": raw, "points": points}),
        });
    }
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
