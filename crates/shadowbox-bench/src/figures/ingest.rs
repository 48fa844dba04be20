//! Figure 4: reported messages per second from publish to committed
//! state, beside the raw rate at which the same broker delivers the same
//! traffic from one publisher to one subscriber.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;
use sqlx::PgPool;

use crate::cpu::{CpuSample, CpuShare, Watched};
use crate::fleet;
use crate::mqtt::{Counter, publish_all};
use crate::report::{Row, count};

/// Share of the broker's raw rate to one subscriber the ingester must
/// reach.
const TARGET_SHARE: f64 = 0.7;
/// Longest the ingester may take.
const PATIENCE: Duration = Duration::from_secs(120);

/// One pass of the reported traffic.
#[derive(Debug, Clone, Serialize)]
pub struct Pass {
    /// Messages published.
    pub messages: u64,
    /// From the first publish to the last message received (raw) or
    /// committed (ingest).
    pub seconds: f64,
    /// Messages per second.
    pub per_second: f64,
    /// How long the publisher took to get every PUBACK.
    pub publish_seconds: f64,
    /// CPU while it ran.
    pub cpu: CpuShare,
}

/// `messages` reported messages over `devices` devices of `tenant` (under
/// `prefix`), in rounds: round r gives every device version r + 1. The
/// profile makes `messages` a multiple of `devices`.
fn traffic(prefix: &str, tenant: &str, devices: u64, messages: u64) -> Vec<(String, Vec<u8>)> {
    (0..messages)
        .map(|i| {
            let (device, version) = (i % devices + 1, i / devices + 1);
            (
                format!("{prefix}tenant/{tenant}/device/d{device}/shadow/reported"),
                format!(r#"{{"reported":{{"n":{version}}},"version":{version}}}"#).into_bytes(),
            )
        })
        .collect()
}

/// The broker alone: one publisher, one subscriber, the same traffic on
/// topics no ingester listens to.
pub async fn raw(
    port: u16,
    watched: &Watched,
    devices: u64,
    messages: u64,
) -> anyhow::Result<Pass> {
    let prefix = "bench/";
    let counter = Counter::subscribe(
        port,
        &format!("{prefix}tenant/+/device/+/shadow/reported"),
        messages as usize,
    )
    .await?;
    let traffic = traffic(prefix, "raw", devices, messages);
    let before = CpuSample::now(watched);
    let started = Instant::now();
    let publish = publish_all(port, traffic, false).await?;
    let seconds = (counter.last_arrival().await? - started).as_secs_f64();
    Ok(Pass {
        messages,
        seconds,
        per_second: messages as f64 / seconds,
        publish_seconds: publish.as_secs_f64(),
        cpu: CpuSample::now(watched).since(&before),
    })
}

/// How often the observer asks whether a device is still behind.
const POLL: Duration = Duration::from_millis(20);

/// Whether a device of `tenant` has not reported its desired version yet.
async fn lagging(pool: &PgPool, tenant: &str) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM device_state
                          WHERE tenant_id = $1 AND reported_version < desired_version) AS "any!""#,
        tenant
    )
    .fetch_one(pool)
    .await?)
}

/// The running ingester: publishes the traffic to devices `d1` to
/// `d<devices>` of `tenant` (whose desired version is first set to the last
/// version, so no report is `ahead` and the last one applies it) and times
/// it until every device's last version is committed.
pub async fn ingest(
    pool: &PgPool,
    port: u16,
    watched: &Watched,
    tenant: &str,
    devices: u64,
    messages: u64,
) -> anyhow::Result<Pass> {
    let last_version = (messages / devices) as i64;
    fleet::set_desired_version(pool, tenant, last_version).await?;
    let traffic = traffic("", tenant, devices, messages);
    let before = CpuSample::now(watched);
    let started = Instant::now();
    let publisher = tokio::spawn(publish_all(port, traffic, false));
    let deadline = started + PATIENCE;
    // Each device's messages arrive in order, so its last version committed
    // means all of them were: done when no device is behind its desired
    // version (the last one). Asked through the partial index of lagging
    // devices (one probe, where a count walked the whole tenant), so
    // polling often costs PostgreSQL nothing the ingester needs.
    while lagging(pool, tenant).await? {
        if Instant::now() > deadline {
            let behind = sqlx::query_scalar!(
                r#"SELECT count(*) AS "count!" FROM device_state
                   WHERE tenant_id = $1 AND reported_version < desired_version"#,
                tenant
            )
            .fetch_one(pool)
            .await?;
            bail!(
                "ingest: {behind} of {devices} devices behind their last version after {PATIENCE:?}"
            );
        }
        tokio::time::sleep(POLL).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = CpuSample::now(watched).since(&before);
    let publish = publisher.await??;
    Ok(Pass {
        messages,
        seconds,
        per_second: messages as f64 / seconds,
        publish_seconds: publish.as_secs_f64(),
        cpu,
    })
}

/// The table row.
pub fn row(label: &str, ingest: &Pass, raw: &Pass, devices: u64) -> Row {
    Row {
        figure: format!(
            "{label}: {} messages over {} devices",
            count(ingest.messages as f64),
            count(devices as f64)
        ),
        value: format!("{} msg/s", count(ingest.per_second)),
        limit: format!("raw {} msg/s to one subscriber", count(raw.per_second)),
        ratio: Some(ingest.per_second / raw.per_second),
        target: format!(">= {:.0}% of raw", TARGET_SHARE * 100.0),
        met: Some(ingest.per_second >= TARGET_SHARE * raw.per_second),
    }
}
