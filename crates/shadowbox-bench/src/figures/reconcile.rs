//! Figure 7: the cost of one reconcile pass. Each fleet size gets a
//! database whose devices are all delivered at version 1 and a broker
//! that retains exactly that, so the pass finds nothing to repair and
//! measures the reading itself: `shadowbox outbox reconcile --dry-run
//! --json` (the same pass a relay runs every interval) reports its time,
//! broker reads and messages and database statements. Beside it, the
//! time to publish the same retained messages, measured in the same run.

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

use crate::fleet;
use crate::lab::Lab;
use crate::mqtt::{desired_payload, publish_all};
use crate::report::{Row, count};

/// The one tenant of every reconcile database.
const TENANT: &str = "reconcile";

/// One fleet size.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Devices, each with one retained desired message.
    pub devices: u64,
    /// Seconds to publish their retained messages (QoS 1, pipelined).
    pub publish_seconds: f64,
    /// The pass's report, as `--json` prints it.
    pub report: Value,
}

/// Measures a pass at every size of `fleets`, each in its own database,
/// dropped afterwards, and clears the retained messages it made.
pub async fn measure(lab: &Lab, fleets: &[u64]) -> anyhow::Result<Vec<Point>> {
    let mut points = Vec::new();
    for &devices in fleets {
        eprintln!("==> 7 reconcile: {devices} devices");
        let db = format!("reconcile_{devices}");
        let pool = lab.create_database(&db).await?;
        fleet::create(&pool, TENANT, devices).await?;
        sqlx::query(
            r#"UPDATE device_state SET desired_state = '{"n": 1}', desired_version = 1
               WHERE tenant_id = $1"#,
        )
        .bind(TENANT)
        .execute(&pool)
        .await?;
        fleet::add_history(&pool, TENANT, devices, devices).await?;
        fleet::vacuum(&pool).await?;
        let topics: Vec<String> = (1..=devices)
            .map(|d| format!("tenant/{TENANT}/device/d{d}/shadow/desired"))
            .collect();
        let publish = publish_all(
            lab.mqtt_port(),
            topics
                .iter()
                .map(|t| (t.clone(), desired_payload(1)))
                .collect(),
            true,
        )
        .await?;
        let output = tokio::process::Command::new(lab.binary())
            .args(["outbox", "reconcile", "--dry-run", "--json"])
            .env("DATABASE_URL", lab.database_url(&db))
            .env("MQTT_URL", lab.mqtt_url())
            .env("SHADOWBOX_MQTT_PROTOCOL", lab.protocol().to_string())
            .env("RUST_LOG", "warn")
            .output()
            .await
            .context("run shadowbox outbox reconcile")?;
        anyhow::ensure!(
            output.status.success(),
            "reconcile failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: Value = serde_json::from_slice(&output.stdout).context("its JSON")?;
        publish_all(
            lab.mqtt_port(),
            topics.into_iter().map(|t| (t, Vec::new())).collect(),
            true,
        )
        .await?;
        pool.close().await;
        lab.drop_database(&db).await?;
        points.push(Point {
            devices,
            publish_seconds: publish.as_secs_f64(),
            report,
        });
    }
    Ok(points)
}

/// One row per fleet size: the pass beside publishing the same messages.
pub fn rows(points: &[Point]) -> Vec<Row> {
    points
        .iter()
        .map(|p| {
            let field = |name: &str| p.report[name].as_f64().unwrap_or(0.0);
            let seconds = field("duration_ms") / 1000.0;
            Row {
                figure: format!("7 reconcile pass, {} devices", count(p.devices as f64)),
                value: format!(
                    "{seconds:.2} s: {} broker messages in {} reads, {} database statements, {} differences",
                    count(field("broker_messages")),
                    count(field("broker_reads")),
                    count(field("database_reads")),
                    p.report["differences"].as_array().map_or(0, Vec::len)
                ),
                limit: format!("publishing them: {:.2} s", p.publish_seconds),
                ratio: Some(p.publish_seconds / seconds.max(1e-9)),
                target: "-".into(),
                met: None,
            }
        })
        .collect()
}
