//! Figure 8: one rollout of N devices in one wave, from the POST to the
//! last PUBACK, in two phases, each beside its limit measured in the same
//! run:
//!
//! - **write**: the POST until the wave machine has written every device
//!   (version bump, outbox row, history row, outcome), beside plain SQL
//!   writing the same changes, in chunks of the same size, to a second
//!   tenant of the same size in the same database;
//! - **delivery**: until the relay has every device's outbox row
//!   acknowledged by the broker, beside the raw publish rate of figure 3.
//!
//! Meanwhile a few clients PATCH other devices of the rollout's tenant at
//! a modest rate (their latency is the rollout's cost to everyone else),
//! and the rollout's own `serve` reports its peak RSS. The rollout has
//! `min_converged: 0`, so its one wave completes once written: no device
//! needs to report. `pg_stat_statements` says where the database's time
//! went during the write (in the JSON).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use chrono::Utc;
use reqwest::header::AUTHORIZATION;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::task::JoinHandle;

use super::drain::{Raw, pending_after};
use super::relay_connection;
use crate::api::DesiredApi;
use crate::cpu::{CpuSample, CpuShare};
use crate::fleet;
use crate::lab::Lab;
use crate::report::{Row, count};
use crate::serve::Serve;
use crate::statements::{self, Statement};
use crate::stats::Latency;
use shadowbox_rollout::DEFAULT_CHUNK_SIZE;

/// The rollout's tenant and the tenant plain SQL writes, for a size:
/// their own names at every size, so no size meets the messages an
/// earlier one left retained at the broker (a reconcile pass would take
/// them for a foreign publisher's, and repair them during the rollout).
fn tenants(devices: u64) -> (String, String) {
    (format!("rollout{devices}"), format!("sqlwrite{devices}"))
}
/// The tag of the devices a rollout selects (`d1` to `dN` of each tenant).
const TAG: (&str, &str) = ("bench", "rollout");
/// Untagged devices after them, the PATCH clients' devices.
const OTHER_DEVICES: u64 = 1_000;
/// The merge patch of every rollout (and of plain SQL's `||`).
const PATCH: &str = r#"{"firmware": "2.4.1"}"#;
/// PATCH clients, and the pause between two PATCHes of one client (25/s
/// each, 100/s in all: a modest load beside the rollout).
const PATCH_CLIENTS: u64 = 4;
const PATCH_INTERVAL: Duration = Duration::from_millis(40);
/// Longest the `GET` of the finished rollout is waited for: it counts
/// delivered and converged devices, one pass over the written ones, and
/// a plan made from statistics older than the rollout's set can take far
/// longer (reported, not failed).
const GET_PATIENCE: Duration = Duration::from_secs(60);
/// How often the rollout's progress is looked at.
const POLL: Duration = Duration::from_millis(10);
/// Targets: the write within 1.5x plain SQL's time, PATCHes' p99, RSS.
const TARGET_WRITE_TIME: f64 = 1.5;
const TARGET_PATCH_P99_MS: f64 = 50.0;
const TARGET_RSS_MIB: f64 = 64.0;

/// Longest a phase is waited for: a minute, plus a second per thousand
/// devices (a rollout slower than that is reported as such).
fn patience(devices: u64) -> Duration {
    Duration::from_secs(60 + devices / 1_000)
}

/// One rollout size.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Devices in the rollout (and in plain SQL's write).
    pub devices: u64,
    /// The relay's MQTT version and in-flight window.
    pub connection: String,
    /// Devices written per chunk, by both.
    pub chunk_size: i64,
    /// From the POST to its answer (the set's snapshot).
    pub created_seconds: f64,
    /// From the POST until every device was written (or to giving up).
    pub write_seconds: f64,
    /// Devices written by then: all of them unless the write was given up
    /// on (the rollout is then cancelled, and the rest is measured on
    /// what it wrote).
    pub written_devices: u64,
    /// The rollout as `GET /v1/tenants/{t}/rollouts/{id}` answered after
    /// the last PUBACK (`None`: no answer within [`GET_PATIENCE`]).
    pub written: Option<Value>,
    /// How long that `GET` took (or was waited for).
    pub get_seconds: f64,
    /// Plain SQL writing the same changes.
    pub sql: SqlWrite,
    /// From the POST to the last PUBACK (or to giving up).
    pub delivered_seconds: f64,
    /// Rows still pending when the delivery was given up on (0: finished).
    pub left_pending: u64,
    /// PATCHes of other devices while the rollout wrote.
    pub patches: Patches,
    /// The same PATCHes while plain SQL wrote.
    pub patches_beside_sql: Patches,
    /// CPU while the rollout wrote.
    pub cpu_write: CpuShare,
    /// CPU from the last write to the last PUBACK.
    pub cpu_delivery: CpuShare,
    /// The database's costliest statements while the rollout wrote
    /// (statements run by triggers included).
    pub statements: Vec<Statement>,
    /// Peak RSS of this rollout's `serve`, in KiB.
    pub peak_rss_kib: u64,
}

impl Point {
    /// From the last write to the last PUBACK.
    fn drain_seconds(&self) -> f64 {
        self.delivered_seconds - self.write_seconds
    }

    /// Publishes acknowledged per second, from the POST to the last one.
    fn delivered_per_second(&self) -> f64 {
        self.written_devices.saturating_sub(self.left_pending) as f64 / self.delivered_seconds
    }

    /// Devices written per second over plain SQL's rate: SQL's time over
    /// the rollout's when it wrote them all.
    fn write_ratio(&self) -> f64 {
        (self.written_devices as f64 / self.write_seconds)
            / (self.devices as f64 / self.sql.seconds)
    }
}

/// Plain SQL's write of the same changes.
#[derive(Debug, Clone, Serialize)]
pub struct SqlWrite {
    /// All chunks, one transaction each.
    pub seconds: f64,
    /// The slowest chunk.
    pub slowest_chunk_seconds: f64,
    /// CPU while it ran.
    pub cpu: CpuShare,
}

/// What the PATCH clients saw.
#[derive(Debug, Clone, Serialize)]
pub struct Patches {
    /// Their latency.
    pub latency: Latency,
    /// Failed PATCHes.
    pub errors: u64,
}

/// Measures a rollout of each size of `fleets`, each in its own database
/// with its own `serve`, dropped afterwards.
pub async fn measure(lab: &Lab, fleets: &[u64]) -> anyhow::Result<Vec<Point>> {
    let mut points = Vec::new();
    for &devices in fleets {
        eprintln!("==> 8 rollout: {devices} devices");
        let db = format!("rollout_{devices}");
        let pool = lab.create_database(&db).await?;
        let (tenant, sql_tenant) = tenants(devices);
        for tenant in [&tenant, &sql_tenant] {
            fleet::create(&pool, tenant, devices + OTHER_DEVICES).await?;
            fleet::tag(&pool, tenant, devices, TAG).await?;
        }
        fleet::vacuum(&pool).await?;
        statements::enable(&pool).await?;
        statements::count_nested(&pool).await?;
        let serve = Serve::start(lab, &db, &format!("rollout-{devices}")).await?;
        let point = measure_one(lab, &pool, &serve, devices).await;
        let peak_rss_kib = serve.stop().await?;
        pool.close().await;
        lab.drop_database(&db).await?;
        points.push(Point {
            peak_rss_kib,
            ..point?
        });
    }
    Ok(points)
}

async fn measure_one(
    lab: &Lab,
    pool: &PgPool,
    serve: &Serve,
    devices: u64,
) -> anyhow::Result<Point> {
    let watched = lab.watched(Some(serve.pid()));
    let (tenant, sql_tenant) = tenants(devices);
    let key = fleet::api_key(serve.base_url(), &tenant).await?;
    let others = DesiredApi::new(serve.base_url(), &tenant, &key)?;

    // The limit first, under the same PATCH load; the relay delivers its
    // rows too, so both pay the relay's share while they write.
    let load = PatchLoad::start(&others, devices);
    let before = CpuSample::now(&watched);
    let (seconds, slowest) = write_sql(pool, &sql_tenant, devices).await?;
    let sql = SqlWrite {
        seconds: seconds.as_secs_f64(),
        slowest_chunk_seconds: slowest.as_secs_f64(),
        cpu: CpuSample::now(&watched).since(&before),
    };
    let patches_beside_sql = load.stop().await;
    let left = pending_after(pool, &sql_tenant, patience(devices)).await?;
    ensure!(left == 0, "plain SQL's rows still pending: {left}");
    let left = pending_after(pool, &tenant, patience(devices)).await?;
    ensure!(left == 0, "the PATCHes' rows still pending: {left}");

    let client = reqwest::Client::new();
    let auth = format!("Bearer {key}");
    let rollouts = format!("{}/v1/tenants/{tenant}/rollouts", serve.base_url());
    statements::reset(pool).await?;
    let load = PatchLoad::start(&others, devices);
    let before = CpuSample::now(&watched);
    let (posted, started) = (Utc::now(), Instant::now());
    let created: Value = client
        .post(&rollouts)
        .header(AUTHORIZATION, &auth)
        .json(&json!({
            "selector": {"tags": {TAG.0: TAG.1}},
            "patch": serde_json::from_str::<Value>(PATCH)?,
            "waves": [1.0],
            "min_converged": 0,
        }))
        .send()
        .await?
        .error_for_status()
        .context("POST the rollout")?
        .json()
        .await?;
    let created_seconds = started.elapsed().as_secs_f64();
    let id = created["id"].as_i64().context("the rollout's id")?;
    let written_devices = written_after(pool, id, patience(devices)).await?;
    let write_seconds = started.elapsed().as_secs_f64();
    if written_devices < devices {
        // Given up on: stop it (waits for a chunk being written), and
        // measure the delivery of what it wrote.
        client
            .post(format!("{rollouts}/{id}/cancel"))
            .header(AUTHORIZATION, &auth)
            .send()
            .await?
            .error_for_status()
            .context("cancel the rollout")?;
    }
    let cpu_write = CpuSample::now(&watched).since(&before);
    let patches = load.stop().await;
    let spent = statements::top(pool).await?;
    statements::print(&format!("8 rollout of {devices} devices, write"), &spent);
    let before = CpuSample::now(&watched);
    let left_pending = pending_after(pool, &tenant, patience(devices)).await?;
    // The last PUBACK as the relay recorded it, exact however coarse the
    // polling (the PATCHes' rows were all delivered well before it).
    let delivered_seconds = match (left_pending, fleet::last_delivery(pool, &tenant).await?) {
        (0, Some(last)) if last > posted => (last - posted).as_seconds_f64(),
        _ => started.elapsed().as_secs_f64(),
    };
    let cpu_delivery = CpuSample::now(&watched).since(&before);
    let asked = Instant::now();
    let read = client
        .get(format!("{rollouts}/{id}"))
        .header(AUTHORIZATION, &auth)
        .timeout(GET_PATIENCE)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status);
    let written = match read {
        Ok(answer) => Some(answer.json::<Value>().await?),
        Err(e) if e.is_timeout() => None,
        Err(e) => return Err(e).context("GET the rollout"),
    };
    let get_seconds = asked.elapsed().as_secs_f64();
    if let Some(written) = &written {
        let wave = &written["waves"][0];
        ensure!(
            wave["size"].as_u64() == Some(devices)
                && wave["written"].as_u64() >= Some(written_devices)
                // Every device written: completed, or still running until
                // the wave machine's next step checks the last gate.
                && (written_devices < devices
                    || written["status"] == "completed"
                    || written["status"] == "running"),
            "the rollout's counts disagree with its cursor ({written_devices} written): {written}"
        );
    }
    Ok(Point {
        devices,
        connection: relay_connection(lab, serve),
        chunk_size: DEFAULT_CHUNK_SIZE,
        created_seconds,
        write_seconds,
        written_devices,
        written,
        get_seconds,
        sql,
        delivered_seconds,
        left_pending,
        patches,
        patches_beside_sql,
        cpu_write,
        cpu_delivery,
        statements: spent,
        peak_rss_kib: 0,
    })
}

/// The limit: the rollout's changes to `d1`..`d<devices>` of `tenant`
/// in plain SQL, a transaction per chunk of the wave
/// machine's size: the documents merged (`||` standing in for RFC 7396),
/// the version bumped, pending rows superseded, the outbox row and the
/// history row inserted (the triggers of both tables fire as for the
/// rollout), the relays notified. What the rollout does besides: claim
/// its row, lock the chunk's devices through its set, merge in Rust,
/// record every device's outcome and advance its cursor. Answers the
/// total and the slowest chunk.
async fn write_sql(
    pool: &PgPool,
    tenant: &str,
    devices: u64,
) -> anyhow::Result<(Duration, Duration)> {
    let chunk = DEFAULT_CHUNK_SIZE as u64;
    let patch: Value = serde_json::from_str(PATCH)?;
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for first in (1..=devices).step_by(chunk as usize) {
        let ids: Vec<String> = (first..=devices.min(first + chunk - 1))
            .map(|i| format!("d{i}"))
            .collect();
        let began = Instant::now();
        let mut tx = pool.begin().await?;
        sqlx::query!(
            r#"WITH superseded AS (
                 UPDATE outbox SET status = 'superseded'
                 WHERE tenant_id = $1 AND device_id = ANY($2) AND status = 'pending'),
               written AS (
                 UPDATE device_state d
                 SET desired_state = d.desired_state || $3::jsonb,
                     desired_version = d.desired_version + 1, updated_at = now()
                 FROM unnest($2::text[]) AS u(device_id)
                 WHERE d.tenant_id = $1 AND d.device_id = u.device_id
                 RETURNING d.device_id, d.desired_state, d.desired_version),
               queued AS (
                 INSERT INTO outbox (tenant_id, device_id, kind, topic, payload, version)
                 SELECT $1, device_id, 'desired',
                        'tenant/' || $1 || '/device/' || device_id || '/shadow/desired',
                        convert_to(jsonb_build_object('desired', desired_state,
                                     'version', desired_version, 'timestamp', now())::text,
                                   'UTF8'),
                        desired_version
                 FROM written ORDER BY device_id)
               INSERT INTO desired_history (tenant_id, device_id, version, change, body, actor)
               SELECT $1, device_id, desired_version, 'rollout', $3::jsonb, 'rollout:0'
               FROM written"#,
            tenant,
            &ids,
            patch
        )
        .execute(&mut *tx)
        .await
        .context("plain SQL's chunk")?;
        shadowbox_db::outbox::notify_relays(&mut *tx).await?;
        tx.commit().await?;
        slowest = slowest.max(began.elapsed());
    }
    Ok((started.elapsed(), slowest))
}

/// Waits until rollout `id` has looked at every device of its set (its
/// cursor at the set's size) or `patience` passed, and answers how many
/// it had looked at. Its row, not `GET`: the API counts delivered and
/// converged devices on every read, a pass over the written devices that
/// would load the database being measured.
async fn written_after(pool: &PgPool, id: i64, patience: Duration) -> anyhow::Result<u64> {
    let deadline = Instant::now() + patience;
    loop {
        let rollout = sqlx::query!(
            "SELECT written_through, selected, status FROM rollouts WHERE id = $1",
            id
        )
        .fetch_one(pool)
        .await?;
        if rollout.written_through >= rollout.selected || Instant::now() > deadline {
            return Ok(rollout.written_through as u64);
        }
        if rollout.status != "running" {
            bail!(
                "rollout {id} is {} with {} of {} devices written",
                rollout.status,
                rollout.written_through,
                rollout.selected
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// PATCH clients writing the untagged devices after `d<devices>`, each
/// one PATCH every [`PATCH_INTERVAL`], until stopped.
struct PatchLoad {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<(Vec<Duration>, u64)>>,
}

impl PatchLoad {
    fn start(api: &DesiredApi, devices: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..PATCH_CLIENTS)
            .map(|client| {
                let (api, stop) = (api.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut rng = fastrand::Rng::new();
                    let (mut latencies, mut errors) = (Vec::new(), 0);
                    // A fresh value every time, so every PATCH commits.
                    let mut n = (rng.u64(..) >> 24) + client;
                    let mut tick = tokio::time::interval(PATCH_INTERVAL);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    while !stop.load(Ordering::Relaxed) {
                        tick.tick().await;
                        let sent = Instant::now();
                        let device = devices + rng.u64(1..=OTHER_DEVICES);
                        match api.patch(device, n).await {
                            Ok(_) => latencies.push(sent.elapsed()),
                            Err(_) => errors += 1,
                        }
                        n += PATCH_CLIENTS;
                    }
                    (latencies, errors)
                })
            })
            .collect();
        Self { stop, clients }
    }

    async fn stop(self) -> Patches {
        self.stop.store(true, Ordering::Relaxed);
        let (mut latencies, mut errors) = (Vec::new(), 0);
        for client in self.clients {
            let (l, e) = client.await.expect("a PATCH client panicked");
            latencies.extend(l);
            errors += e;
        }
        Patches {
            latency: Latency::of(latencies),
            errors,
        }
    }
}

/// Four rows per size: the write beside plain SQL, the delivery beside
/// `raw`, the PATCHes meanwhile, and `serve`'s peak RSS.
pub fn rows(points: &[Point], raw: &Raw) -> Vec<Row> {
    points
        .iter()
        .flat_map(|p| {
            let label = format!(
                "8 rollout of {} devices, one wave ({})",
                count(p.devices as f64),
                p.connection
            );
            let write_ratio = p.write_ratio();
            let rss_mib = p.peak_rss_kib as f64 / 1024.0;
            let p99 = p.patches.latency.p99_ms;
            [
                Row {
                    figure: format!("{label}: write"),
                    value: format!(
                        "{:.2} s from the POST ({} devices/s; created in {:.2} s){}",
                        p.write_seconds,
                        count(p.written_devices as f64 / p.write_seconds),
                        p.created_seconds,
                        if p.written_devices < p.devices {
                            format!(
                                ", gave up with {} of {} written",
                                count(p.written_devices as f64),
                                count(p.devices as f64)
                            )
                        } else {
                            String::new()
                        }
                    ),
                    limit: format!(
                        "plain SQL, chunks of {}: {:.2} s",
                        count(p.chunk_size as f64),
                        p.sql.seconds
                    ),
                    ratio: Some(write_ratio),
                    target: format!(
                        "<= {TARGET_WRITE_TIME}x SQL's time (>= {:.0}%)",
                        100.0 / TARGET_WRITE_TIME
                    ),
                    met: Some(
                        p.written_devices == p.devices && write_ratio * TARGET_WRITE_TIME >= 1.0,
                    ),
                },
                Row {
                    figure: format!("{label}: delivery"),
                    value: format!(
                        "last PUBACK {:.2} s after the last write, {:.2} s from the POST ({} publishes/s){}; then GET {}",
                        p.drain_seconds(),
                        p.delivered_seconds,
                        count(p.delivered_per_second()),
                        match p.left_pending {
                            0 => String::new(),
                            n => format!(", gave up with {} pending", count(n as f64)),
                        },
                        match p.written {
                            Some(_) => format!("answered in {:.2} s", p.get_seconds),
                            None => format!("did not answer in {GET_PATIENCE:?}"),
                        }
                    ),
                    limit: format!("raw {} publishes/s", count(raw.per_second)),
                    ratio: Some(p.delivered_per_second() / raw.per_second),
                    target: "-".into(),
                    met: None,
                },
                Row {
                    figure: format!("{label}: PATCHes of other devices meanwhile"),
                    value: format!(
                        "{} ({} PATCHes, {} failed)",
                        p.patches.latency.brief(),
                        count(p.patches.latency.samples as f64),
                        p.patches.errors
                    ),
                    limit: format!(
                        "beside plain SQL: {}",
                        p.patches_beside_sql.latency.brief()
                    ),
                    ratio: None,
                    target: format!("p99 < {TARGET_PATCH_P99_MS} ms"),
                    met: Some(p.patches.errors == 0 && p99 < TARGET_PATCH_P99_MS),
                },
                Row {
                    figure: format!("{label}: peak RSS of serve"),
                    value: format!("{rss_mib:.1} MiB"),
                    limit: "-".into(),
                    ratio: None,
                    target: format!("<= {TARGET_RSS_MIB} MiB"),
                    met: Some(rss_mib <= TARGET_RSS_MIB),
                },
            ]
        })
        .collect()
}
