//! Figure 3: the relay draining a backlog of pending rows into retained
//! QoS 1 publishes, beside the raw rate at which one client gets retained
//! QoS 1 publishes acknowledged by the same broker; and its curve, one row
//! per device from 10^4 to 10^6 devices, under `serve` and `relay` alone.

use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::Utc;
use serde::Serialize;
use sqlx::PgPool;

use crate::cpu::{CpuSample, CpuShare, Watched};
use crate::fleet;
use crate::lab::Lab;
use crate::mqtt::{desired_payload, publish_all};
use crate::report::{Row, count};
use crate::serve::{Role, Serve};
use crate::statements::{self, Statement};

/// Rows per second the drain must reach.
const TARGET_ROWS: f64 = 20_000.0;
/// Share of the raw publish rate its publishes must reach.
const TARGET_SHARE: f64 = 0.5;
/// Longest a drain is waited for; a slower one is reported with the rows
/// it left, so one bad figure cannot stall the suite.
const PATIENCE: Duration = Duration::from_secs(90);
/// How often the observer asks whether rows are still pending. The end of
/// a drain is read from the rows themselves (their `delivered_at`), so a
/// coarse poll costs no precision, and a rare one leaves PostgreSQL's
/// cores to the relay.
const POLL: Duration = Duration::from_millis(100);

/// The broker's raw QoS 1 retained publish rate from one client.
#[derive(Debug, Clone, Serialize)]
pub struct Raw {
    /// Publishes, each to its own topic.
    pub publishes: u64,
    /// Publishes acknowledged per second.
    pub per_second: f64,
    /// CPU while it ran.
    pub cpu: CpuShare,
}

/// Publishes `publishes` retained messages, the size of the relay's, to as
/// many topics (outside every shadow topic) from one pipelined client.
pub async fn raw(port: u16, watched: &Watched, publishes: u64) -> anyhow::Result<Raw> {
    let messages = (1..=publishes)
        .map(|i| {
            (
                format!("bench/tenant/raw/device/d{i}/shadow/desired"),
                desired_payload(1),
            )
        })
        .collect();
    let before = CpuSample::now(watched);
    let took = publish_all(port, messages, true).await?;
    Ok(Raw {
        publishes,
        per_second: publishes as f64 / took.as_secs_f64(),
        cpu: CpuSample::now(watched).since(&before),
    })
}

/// One drain of a backlog.
#[derive(Debug, Clone, Serialize)]
pub struct Drain {
    /// Pending rows in the backlog.
    pub rows: u64,
    /// Devices they are spread over.
    pub devices: u64,
    /// From the backlog's commit to the last row settled (or to giving up).
    pub seconds: f64,
    /// Rows still pending when the drain was given up on (0: finished).
    pub left_pending: u64,
    /// Rows settled per second (published or superseded).
    pub rows_per_second: f64,
    /// Publishes acknowledged per second (one per device: older rows of a
    /// device are superseded, never published).
    pub publishes_per_second: f64,
    /// CPU while it ran.
    pub cpu: CpuShare,
}

/// Waits until `tenant` has no pending row, commits a backlog of `rows`
/// pending rows over its first `devices` devices, and times the running
/// relay until none is pending (or `PATIENCE` passed).
pub async fn drain(
    pool: &PgPool,
    watched: &Watched,
    tenant: &str,
    devices: u64,
    rows: u64,
) -> anyhow::Result<Drain> {
    let left = pending_after(pool, tenant, PATIENCE).await?;
    if left > 0 {
        bail!("{tenant} still has {left} pending rows before its backlog");
    }
    // Statistics as a deployment has them when an outage begins (taken
    // while nothing was pending), so the relay's claims are planned as they
    // would be for a real backlog; see BENCHMARKS.md on what that costs.
    fleet::analyze_outbox(pool).await?;
    let delivered = fleet::delivered(pool, tenant).await?;
    let before = CpuSample::now(watched);
    fleet::add_backlog(pool, tenant, devices, rows).await?;
    let committed = Utc::now();
    let started = Instant::now();
    let left_pending = pending_after(pool, tenant, PATIENCE).await?;
    let cpu = CpuSample::now(watched).since(&before);
    let seconds = match (left_pending, fleet::last_delivery(pool, tenant).await?) {
        (0, Some(last)) if last > committed => (last - committed).as_seconds_f64(),
        _ => started.elapsed().as_secs_f64(),
    };
    let publishes = fleet::delivered(pool, tenant).await? - delivered;
    Ok(Drain {
        rows,
        devices,
        seconds,
        left_pending,
        rows_per_second: rows.saturating_sub(left_pending) as f64 / seconds,
        publishes_per_second: publishes as f64 / seconds,
        cpu,
    })
}

/// Waits until `tenant` has no pending row or `patience` passed, and
/// answers how many are left.
pub async fn pending_after(pool: &PgPool, tenant: &str, patience: Duration) -> anyhow::Result<u64> {
    let deadline = Instant::now() + patience;
    while fleet::any_pending(pool, tenant).await? {
        if Instant::now() > deadline {
            return Ok(fleet::pending(pool, tenant).await? as u64);
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(0)
}

/// The table row of `drain`, beside `raw`.
pub fn row(label: &str, drain: &Drain, raw: &Raw) -> Row {
    // The ratio: rows/s over the raw publish rate. With one row per
    // device (no coalescing) rows are publishes, the honest comparison.
    let ratio = drain.rows_per_second / raw.per_second;
    Row {
        figure: format!(
            "{label}: {} rows over {} devices",
            count(drain.rows as f64),
            count(drain.devices as f64)
        ),
        value: format!(
            "{} rows/s ({} publishes/s){}",
            count(drain.rows_per_second),
            count(drain.publishes_per_second),
            match drain.left_pending {
                0 => String::new(),
                n => format!(
                    ", gave up after {PATIENCE:?} with {} pending",
                    count(n as f64)
                ),
            }
        ),
        limit: format!("raw {} publishes/s", count(raw.per_second)),
        ratio: Some(ratio),
        target: format!(
            ">= {} rows/s, >= {:.0}% of raw",
            count(TARGET_ROWS),
            TARGET_SHARE * 100.0
        ),
        met: Some(
            drain.left_pending == 0
                && drain.rows_per_second >= TARGET_ROWS
                && ratio >= TARGET_SHARE,
        ),
    }
}

/// One point of the drain curve: a one-row-per-device backlog over
/// `devices` devices, drained by `role`.
#[derive(Debug, Clone, Serialize)]
pub struct CurvePoint {
    /// The process that drained it.
    pub role: Role,
    /// Its connection, e.g. `MQTT 5, in-flight 2000`.
    pub connection: String,
    /// The drain.
    pub drain: Drain,
    /// PostgreSQL's CPU time per settled row, in microseconds: flat when
    /// the cost per row does not grow with the fleet.
    pub postgres_us_per_row: f64,
    /// The process's CPU time per settled row, in microseconds.
    pub process_us_per_row: f64,
    /// The process's peak resident set so far, KiB.
    pub peak_rss_kib: u64,
    /// Its costliest statements.
    pub statements: Vec<Statement>,
}

/// Drains a one-row-per-device backlog over each fleet of `fleets` (tenant
/// `curve<n>` of database `db`, already created) with `role` running.
pub async fn curve(
    lab: &Lab,
    pool: &PgPool,
    db: &str,
    role: Role,
    fleets: &[u64],
) -> anyhow::Result<Vec<CurvePoint>> {
    let process = Serve::start_role(lab, db, &format!("curve-{}", role.command()), role).await?;
    let watched = lab.watched(Some(process.pid()));
    let connection = super::relay_connection(lab, &process);
    let mut points = Vec::new();
    for &devices in fleets {
        eprintln!(
            "==> 3 drain curve under {}: {devices} devices, one row each",
            role.command()
        );
        statements::reset(pool).await?;
        let drain = drain(pool, &watched, &curve_tenant(devices), devices, devices).await?;
        let spent = statements::top(pool).await?;
        let settled = drain.rows.saturating_sub(drain.left_pending).max(1) as f64;
        let per_row = |cores: f64| cores * drain.seconds / settled * 1e6;
        points.push(CurvePoint {
            role,
            connection: connection.clone(),
            postgres_us_per_row: per_row(drain.cpu.postgres_cores),
            process_us_per_row: per_row(drain.cpu.serve_cores),
            peak_rss_kib: process.peak_rss_kib()?,
            statements: spent,
            drain,
        });
    }
    process.stop().await?;
    Ok(points)
}

/// The tenant of the drain curve's fleet of `devices` devices.
pub fn curve_tenant(devices: u64) -> String {
    format!("curve{devices}")
}

/// One table row per point of the curve, beside `raw`.
pub fn curve_rows(points: &[CurvePoint], raw: &Raw) -> Vec<Row> {
    points
        .iter()
        .map(|p| {
            let mut row = self::row(
                &format!(
                    "3 drain curve under {} ({})",
                    p.role.command(),
                    p.connection
                ),
                &p.drain,
                raw,
            );
            row.value = format!(
                "{}; PostgreSQL {:.0} us/row, {} {:.0} us/row, peak RSS {:.1} MiB",
                row.value,
                p.postgres_us_per_row,
                p.role.command(),
                p.process_us_per_row,
                p.peak_rss_kib as f64 / 1024.0
            );
            row
        })
        .collect()
}
