//! Figure 5: the scale curve. Figures 1 and 3 again (at one concurrency)
//! on fleets of growing size, each beside an outbox holding a long history
//! of finished rows, to show the cost stays flat.

use serde::Serialize;

use super::drain::{self, Drain, Raw};
use super::writes::{self, Limit, Measured};
use crate::api::DesiredApi;
use crate::fleet;
use crate::lab::Lab;
use crate::profile::Profile;
use crate::report::{Row, count};
use crate::serve::Serve;

/// The one tenant of every scale-curve database.
const TENANT: &str = "scale";

/// One fleet size.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Devices in the fleet.
    pub devices: u64,
    /// Finished outbox rows before the measurements.
    pub history: u64,
    /// pgbench at the profile's scale concurrency.
    pub limit: Limit,
    /// The API at the same concurrency.
    pub writes: Measured,
    /// The relay draining the profile's backlog.
    pub drain: Drain,
    /// Peak RSS of this fleet's `serve`, in KiB.
    pub peak_rss_kib: u64,
    /// Its relay's connection, e.g. `MQTT 5, in-flight 2000`.
    pub connection: String,
}

/// Measures every fleet size of `profile`, each in its own database,
/// dropped afterwards.
pub async fn measure(lab: &Lab, profile: &Profile) -> anyhow::Result<Vec<Point>> {
    let mut points = Vec::new();
    for &devices in &profile.scale_fleets {
        let db = format!("scale_{devices}");
        eprintln!(
            "==> scale curve: {devices} devices, {} finished rows",
            profile.scale_history
        );
        let pool = lab.create_database(&db).await?;
        fleet::create(&pool, TENANT, devices).await?;
        fleet::add_history(&pool, TENANT, devices, profile.scale_history).await?;
        fleet::vacuum(&pool).await?;
        let clients = [profile.scale_clients];
        let serve = Serve::start(lab, &db, &format!("scale-{devices}")).await?;
        let watched = lab.watched(Some(serve.pid()));
        let mut limit = writes::limits(
            lab,
            &watched,
            &db,
            TENANT,
            devices,
            &clients,
            profile.window,
        )
        .await?;
        let key = fleet::api_key(serve.base_url(), TENANT).await?;
        let api = DesiredApi::new(serve.base_url(), TENANT, &key)?;
        let mut measured = writes::measure(
            &api,
            &watched,
            devices,
            &clients,
            profile.warmup,
            profile.window,
        )
        .await;
        let backlog_devices = devices.min(profile.backlog_devices);
        let drain = drain::drain(
            &pool,
            &watched,
            TENANT,
            backlog_devices,
            profile.backlog_rows,
        )
        .await?;
        let connection = super::relay_connection(lab, &serve);
        let peak_rss_kib = serve.stop().await?;
        pool.close().await;
        lab.drop_database(&db).await?;
        points.push(Point {
            devices,
            history: profile.scale_history,
            limit: limit.remove(0),
            writes: measured.remove(0),
            drain,
            peak_rss_kib,
            connection,
        });
    }
    Ok(points)
}

/// Two rows per fleet size: writes beside pgbench, drain beside `raw`.
pub fn rows(points: &[Point], raw: &Raw) -> Vec<Row> {
    points
        .iter()
        .flat_map(|p| {
            let label = format!(
                "5 scale {} devices, {} finished rows",
                count(p.devices as f64),
                count(p.history as f64)
            );
            let mut rows = writes::rows(
                &format!("{label}: writes"),
                std::slice::from_ref(&p.limit),
                std::slice::from_ref(&p.writes),
            );
            rows.push(drain::row(
                &format!("{label}: drain ({})", p.connection),
                &p.drain,
                raw,
            ));
            rows
        })
        .collect()
}
