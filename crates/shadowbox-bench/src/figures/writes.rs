//! Figure 1: desired writes (PATCH requests/s and latency) at N concurrent
//! clients, beside pgbench running the same transaction with the same
//! number of connections on the same database.
//!
//! pgbench runs while `serve` is up and idle, so its relay drains
//! pgbench's outbox rows exactly as it drains the API's: both sides pay the
//! relay's share of the database, and neither piles up pending rows that
//! the system would never hold.

use std::time::Duration;

use serde::Serialize;

use crate::api::{ClosedLoop, DesiredApi, closed_loop};
use crate::cpu::{CpuSample, CpuShare, Watched};
use crate::lab::Lab;
use crate::pgbench::{self, PgbenchRun};
use crate::report::{Row, count};

/// The share of the database's limit the API must reach.
const TARGET: f64 = 0.80;

/// The database's limit at one concurrency, and who was busy.
#[derive(Debug, Clone, Serialize)]
pub struct Limit {
    /// pgbench's result.
    pub pgbench: PgbenchRun,
    /// CPU while it ran (`serve` idle but for its relay).
    pub cpu: CpuShare,
}

/// The API at one concurrency, and who was busy.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// The load generator's result.
    pub api: ClosedLoop,
    /// CPU while it ran.
    pub cpu: CpuShare,
}

/// pgbench at each of `clients`, for `window` each, on devices `d1` to
/// `d<devices>` of `tenant` in database `db`, accounting CPU to `watched`.
pub async fn limits(
    lab: &Lab,
    watched: &Watched,
    db: &str,
    tenant: &str,
    devices: u64,
    clients: &[usize],
    window: Duration,
) -> anyhow::Result<Vec<Limit>> {
    let mut out = Vec::new();
    for &c in clients {
        let before = CpuSample::now(watched);
        let pgbench = pgbench::run(lab, db, tenant, devices, c, window).await?;
        out.push(Limit {
            pgbench,
            cpu: CpuSample::now(watched).since(&before),
        });
    }
    Ok(out)
}

/// The API at each of `clients` (after `warmup`, for `window` each),
/// accounting CPU to `watched`.
pub async fn measure(
    api: &DesiredApi,
    watched: &Watched,
    devices: u64,
    clients: &[usize],
    warmup: Duration,
    window: Duration,
) -> Vec<Measured> {
    let mut out = Vec::new();
    for &c in clients {
        let before = CpuSample::now(watched);
        let api = closed_loop(api, devices, c, warmup, window).await;
        out.push(Measured {
            api,
            cpu: CpuSample::now(watched).since(&before),
        });
    }
    out
}

/// One table row per concurrency: `<label>, N clients`.
pub fn rows(label: &str, limits: &[Limit], measured: &[Measured]) -> Vec<Row> {
    limits
        .iter()
        .zip(measured)
        .map(|(limit, m)| {
            let ratio = m.api.per_second / limit.pgbench.per_second;
            let errors = match m.api.errors {
                0 => String::new(),
                n => format!(" ({n} errors)"),
            };
            Row {
                figure: format!("{label}, {} clients", m.api.clients),
                value: format!(
                    "{} req/s; {}{errors}",
                    count(m.api.per_second),
                    m.api.latency.brief()
                ),
                limit: format!(
                    "pgbench {} tps; {}",
                    count(limit.pgbench.per_second),
                    limit.pgbench.latency.brief()
                ),
                ratio: Some(ratio),
                target: format!(">= {:.0}% of pgbench", TARGET * 100.0),
                met: Some(ratio >= TARGET && m.api.errors == 0),
            }
        })
        .collect()
}
