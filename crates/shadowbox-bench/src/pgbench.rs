//! The database's own limit for a desired write: `pgbench` running the
//! API's transaction (lock the device row, update its state, supersede its
//! pending rows, insert the outbox row, notify, record the change in the
//! history, whose trigger writes the `desired` event) with no HTTP, no
//! JSON, no auth and no `serve` in the way.

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::lab::Lab;
use crate::stats::Latency;

/// What one pgbench run achieved.
#[derive(Debug, Clone, Serialize)]
pub struct PgbenchRun {
    /// Concurrent clients (connections).
    pub clients: usize,
    /// Transactions per second.
    pub per_second: f64,
    /// Transaction latency, from pgbench's per-transaction log.
    pub latency: Latency,
}

/// The transaction of `PATCH .../desired` as SQL (no `:` in its literals:
/// pgbench would read one as a variable), for device `d<random>`
/// of `tenant` (`shadowbox_db::desired` and `shadowbox_db::changes`).
fn script(tenant: &str, devices: u64) -> String {
    let device = "'d' || :d";
    let channel = shadowbox_db::OUTBOX_CHANNEL;
    format!(
        "\\set d random(1, {devices})\n\
         BEGIN;\n\
         SELECT status, desired_version + 1 AS v FROM device_state WHERE tenant_id = '{tenant}' AND device_id = {device} FOR UPDATE \\gset\n\
         UPDATE device_state SET desired_state = jsonb_build_object('n', CAST(:v AS bigint)), desired_version = :v, updated_at = now() WHERE tenant_id = '{tenant}' AND device_id = {device};\n\
         WITH superseded AS (UPDATE outbox SET status = 'superseded' WHERE tenant_id = '{tenant}' AND device_id = {device} AND status = 'pending'), \
         ins AS (INSERT INTO outbox (tenant_id, device_id, kind, topic, payload, version) VALUES ('{tenant}', {device}, 'desired', \
         'tenant/{tenant}/device/d' || :d || '/shadow/desired', \
         convert_to('{{\"desired\":{{\"n\":' || :v || '}},\"version\":' || :v || ',\"timestamp\":\"' || now() || '\"}}', 'UTF8'), :v) RETURNING id) \
         SELECT ins.id FROM ins, LATERAL (SELECT pg_notify('{channel}', '')) AS n;\n\
         INSERT INTO desired_history (tenant_id, device_id, version, change, body, actor) \
         VALUES ('{tenant}', {device}, :v, 'merge', jsonb_build_object('n', CAST(:v AS bigint)), 'admin');\n\
         COMMIT;\n"
    )
}

/// Runs the transaction with `clients` connections for `duration` on
/// database `db`, over devices `d1` to `d<devices>` of `tenant`.
pub async fn run(
    lab: &Lab,
    db: &str,
    tenant: &str,
    devices: u64,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<PgbenchRun> {
    let dir = lab.logs().join(format!("pgbench-{db}-{clients}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let script_path = dir.join("desired.sql");
    std::fs::write(&script_path, script(tenant, devices))?;
    let output = tokio::process::Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-n", "-M", "prepared"])
        .arg(format!("--port={}", lab.postgres_port()))
        .arg(format!("--client={clients}"))
        .arg(format!("--jobs={}", clients.min(2)))
        .arg(format!("--time={}", duration.as_secs().max(1)))
        .arg(format!("--file={}", script_path.display()))
        .arg("--log")
        .arg(format!("--log-prefix={}", dir.join("tx").display()))
        .arg(db)
        .kill_on_drop(true)
        .output()
        .await
        .context("run pgbench (apt-get install postgresql-client)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let per_second = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .with_context(|| format!("no tps in pgbench's output: {stdout}"))?;
    Ok(PgbenchRun {
        clients,
        per_second,
        latency: Latency::of(logged_latencies(&dir)?),
    })
}

/// Every transaction's latency in pgbench's logs (`tx.<pid>[.<thread>]`:
/// `client transaction latency_us script epoch epoch_us` per line).
fn logged_latencies(dir: &std::path::Path) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("tx."))
        {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        // Megabytes per run, parsed now: not worth keeping.
        std::fs::remove_file(&path)?;
        latencies.extend(
            text.lines()
                .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
                .map(Duration::from_micros),
        );
    }
    Ok(latencies)
}
