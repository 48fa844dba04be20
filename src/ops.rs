//! The operators' commands: `outbox ...`, `devices ...`, `tenant ...` and
//! `apikey ...`.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Subcommand;
use shadowbox_core::{DeviceId, DeviceStatus, OutboxStatus, TenantId};
use shadowbox_db::devices::{CurrentRejection, DeviceFilter, DeviceRecord, list_devices};
use shadowbox_db::outbox::{self, OutboxFilter};
use shadowbox_relay::reconcile::{self, PassOptions, RetainedReader};
use sqlx::PgPool;

use crate::CommonArgs;

/// Connects to the database (creating it if missing). Only `serve`, `api`
/// and `migrate` apply migrations: an older relay or ingester still running
/// during a rolling upgrade must not trip over a newer schema.
pub async fn connect(common: &CommonArgs, max_connections: u32) -> anyhow::Result<PgPool> {
    shadowbox_db::connect(&common.database_url, max_connections)
        .await
        .context("connect to PostgreSQL")
}

/// Connects to the database and applies pending migrations.
pub async fn connect_and_migrate(
    common: &CommonArgs,
    max_connections: u32,
) -> anyhow::Result<PgPool> {
    let pool = connect(common, max_connections).await?;
    shadowbox_db::migrate(&pool)
        .await
        .context("apply migrations")?;
    Ok(pool)
}

/// `shadowbox outbox ...`
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Rows per tenant and status, with the oldest row's age: the relay's
    /// backlog at a glance (the `outbox_status` view).
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Outbox rows, newest first.
    List {
        /// Only this tenant's rows.
        #[arg(long)]
        tenant: Option<TenantId>,
        /// Only this device's rows.
        #[arg(long)]
        device: Option<String>,
        /// Only rows in this status.
        #[arg(long, value_enum)]
        status: Option<OutboxStatus>,
        /// Only rows created within this long (e.g. 30m, 2h, 7d).
        #[arg(long, value_parser = shadowbox_core::duration::parse)]
        since: Option<Duration>,
        /// At most this many rows.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revive dead rows (back to pending, due now): one by id, or every
    /// dead row.
    Retry {
        /// The row to revive.
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        id: Option<i64>,
        /// Revive every dead row (of `--tenant`, or all tenants).
        #[arg(long)]
        all_dead: bool,
        /// Only this tenant's rows.
        #[arg(long)]
        tenant: Option<TenantId>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Re-enqueue the current desired state of every active device (of
    /// `--tenant`, or all), for a broker that lost its retained messages.
    Resync {
        /// Only this tenant's devices.
        #[arg(long)]
        tenant: Option<TenantId>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Compare the broker's retained desired messages with the database
    /// once (of `--tenant`, or all) and republish what differs, as the
    /// relays do every SHADOWBOX_RECONCILE_INTERVAL; prints every
    /// difference (a `newer` one means a client other than shadowbox
    /// publishes desired state).
    Reconcile {
        /// Only this tenant's devices.
        #[arg(long)]
        tenant: Option<TenantId>,
        /// Report the differences, republish nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        slice: crate::roles::ReconcileSliceArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete finished rows (delivered, superseded) older than a duration;
    /// pending and dead rows, and each device's newest row, are kept.
    Purge {
        /// Age of the rows to delete (e.g. 7d, 12h).
        #[arg(long, value_parser = shadowbox_core::duration::parse)]
        older_than: Duration,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `shadowbox devices ...`
#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// Active devices of a tenant that have not applied their desired
    /// version within a time (the API's `?in_sync=false&older_than=`), in
    /// id order.
    Lagging {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
        /// Desired versions committed longer ago than this (e.g. 5m, 1h).
        #[arg(long, value_parser = shadowbox_core::duration::parse)]
        older_than: Duration,
        /// At most this many devices.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// A device that has not applied its desired version, as `devices lagging`
/// prints it.
#[derive(Debug, serde::Serialize)]
struct LaggingDevice {
    tenant_id: TenantId,
    device_id: DeviceId,
    desired_version: i64,
    reported_version: i64,
    /// When its desired version was committed.
    committed_at: DateTime<Utc>,
    /// Seconds since.
    waiting_seconds: f64,
    last_seen: Option<DateTime<Utc>>,
    /// Status of its newest outbox row.
    delivery_status: Option<OutboxStatus>,
    /// Its refusal of the desired version, if it refused it.
    rejection: Option<CurrentRejection>,
}

impl LaggingDevice {
    fn new(d: DeviceRecord, now: DateTime<Utc>) -> Self {
        let rejection = d.current_rejection();
        Self {
            waiting_seconds: (now - d.desired_committed_at).as_seconds_f64(),
            tenant_id: d.tenant_id,
            device_id: d.device_id,
            desired_version: d.desired_version,
            reported_version: d.reported_version,
            committed_at: d.desired_committed_at,
            last_seen: d.last_seen,
            delivery_status: d.delivery_status,
            rejection,
        }
    }
}

/// Runs a `devices` command.
pub async fn devices(common: &CommonArgs, command: DevicesCommand) -> anyhow::Result<()> {
    let pool = connect(common, 2).await?;
    match command {
        DevicesCommand::Lagging {
            tenant,
            older_than,
            limit,
            json,
        } => {
            let filter = DeviceFilter {
                status: Some(DeviceStatus::Active),
                in_sync: Some(false),
                older_than: Some(older_than),
                ..DeviceFilter::default()
            };
            let now = Utc::now();
            let devices: Vec<LaggingDevice> = list_devices(&pool, &tenant, &filter, limit)
                .await?
                .into_iter()
                .map(|d| LaggingDevice::new(d, now))
                .collect();
            if json {
                return print_json(&devices);
            }
            println!(
                "{:<24} {:>7} {:>8} {:>10} {:<10} REJECTION",
                "DEVICE", "DESIRED", "REPORTED", "WAITING_S", "DELIVERY"
            );
            for d in devices {
                let rejection = d
                    .rejection
                    .map_or_else(String::new, |r| format!("v{}: {}", r.version, r.reason));
                println!(
                    "{:<24} {:>7} {:>8} {:>10.0} {:<10} {rejection}",
                    d.device_id,
                    d.desired_version,
                    d.reported_version,
                    d.waiting_seconds,
                    d.delivery_status.map_or("", OutboxStatus::as_str),
                );
            }
        }
    }
    Ok(())
}

/// `shadowbox tenant ...`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant (idempotent).
    Create {
        /// The tenant id.
        tenant: TenantId,
    },
}

/// `shadowbox apikey ...`
#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create an API key for a tenant; its secret is printed once and
    /// stored only as a hash.
    Create {
        /// The tenant the key may reach.
        #[arg(long)]
        tenant: TenantId,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an `outbox` command.
pub async fn outbox(common: &CommonArgs, command: OutboxCommand) -> anyhow::Result<()> {
    let pool = connect(common, 2).await?;
    match command {
        OutboxCommand::Status { json } => {
            let rows = outbox::status(&pool).await?;
            if json {
                return print_json(&rows);
            }
            println!(
                "{:<24} {:<11} {:>10} {:>14}",
                "TENANT", "STATUS", "COUNT", "OLDEST_AGE_S"
            );
            for row in rows {
                println!(
                    "{:<24} {:<11} {:>10} {:>14.1}",
                    row.tenant_id, row.status, row.count, row.oldest_age_seconds
                );
            }
        }
        OutboxCommand::List {
            tenant,
            device,
            status,
            since,
            limit,
            json,
        } => {
            let filter = OutboxFilter {
                tenant,
                device,
                status,
                since: since.map(ago).transpose()?,
                before_id: None,
            };
            let rows = outbox::list_rows(&pool, &filter, limit).await?;
            if json {
                return print_json(&rows);
            }
            println!(
                "{:>10} {:<16} {:<20} {:<7} {:>7} {:<10} {:>8} {:<20} LAST_ERROR",
                "ID", "TENANT", "DEVICE", "KIND", "VERSION", "STATUS", "ATTEMPTS", "CREATED_AT"
            );
            for row in rows {
                println!(
                    "{:>10} {:<16} {:<20} {:<7} {:>7} {:<10} {:>8} {:<20} {}",
                    row.id,
                    row.tenant_id,
                    row.device_id,
                    row.kind,
                    row.version,
                    row.status,
                    row.attempts,
                    row.created_at.format("%Y-%m-%d %H:%M:%S"),
                    row.last_error.unwrap_or_default()
                );
            }
        }
        OutboxCommand::Retry {
            id,
            all_dead,
            tenant,
            json,
        } => {
            let mut conn = pool.acquire().await?;
            let revived = if all_dead {
                outbox::revive_all_dead(&mut conn, tenant.as_ref()).await?
            } else {
                let id = id.expect("clap requires an id without --all-dead");
                outbox::revive_dead(&mut conn, tenant.as_ref(), id).await?;
                1
            };
            report(json, "revived", revived, "rows put back to pending")?;
        }
        OutboxCommand::Resync { tenant, json } => {
            let enqueued = outbox::resync(&pool, tenant.as_ref()).await?;
            report(json, "enqueued", enqueued, "rows enqueued")?;
        }
        OutboxCommand::Reconcile {
            tenant,
            dry_run,
            slice,
            json,
        } => {
            let options = PassOptions {
                tenant,
                slice: slice.reconcile_slice.max(1),
                dry_run,
            };
            let mut reader =
                RetainedReader::connect_first(&common.mqtt()?, "shadowbox-reconcile").await?;
            let report = reconcile::pass(&pool, &mut reader, &options).await;
            reader.close().await;
            let report = report?;
            if json {
                return print_json(&report);
            }
            print_reconcile(&report);
        }
        OutboxCommand::Purge { older_than, json } => {
            let deleted = outbox::purge_finished(&pool, ago(older_than)?, 1000).await?;
            report(json, "deleted", deleted, "finished rows deleted")?;
        }
    }
    Ok(())
}

fn print_reconcile(report: &reconcile::PassReport) {
    if !report.differences.is_empty() {
        println!(
            "{:<16} {:<24} {:<12} {:>16} {:>16} STATUS",
            "TENANT", "DEVICE", "KIND", "RETAINED_VERSION", "DATABASE_VERSION"
        );
        for d in &report.differences {
            let retained = d.retained_version.map(|v| v.to_string());
            println!(
                "{:<16} {:<24} {:<12} {:>16} {:>16} {}",
                d.tenant_id,
                d.device_id,
                d.kind.label(),
                retained.as_deref().unwrap_or("-"),
                d.database_version,
                d.status
            );
        }
    }
    let kinds: Vec<String> = report
        .by_kind
        .iter()
        .map(|(kind, n)| format!("{} {n}", kind.label()))
        .collect();
    println!(
        "{} devices of {} tenants checked on {} in {} ms: {} differences{}; {} republished{}",
        report.devices,
        report.tenants,
        report.broker,
        report.duration_ms,
        report.differences.len(),
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        },
        report.republished,
        if report.dry_run { " (dry run)" } else { "" }
    );
    println!(
        "not judged: {} in flight, {} dead, {} unread; {} unknown retained topics; busy tenants: {}",
        report.in_flight,
        report.dead,
        report.unread,
        report.unknown,
        report.busy_tenants.len()
    );
    for failure in &report.failed_tenants {
        println!("tenant {} failed: {}", failure.tenant_id, failure.error);
    }
}

/// Runs a `tenant` command.
pub async fn tenant(common: &CommonArgs, command: TenantCommand) -> anyhow::Result<()> {
    let pool = connect(common, 2).await?;
    match command {
        TenantCommand::Create { tenant } => {
            let created = shadowbox_db::tenants::create_tenant(&pool, &tenant).await?;
            println!(
                "tenant {tenant} {}",
                if created { "created" } else { "already exists" }
            );
        }
    }
    Ok(())
}

fn ago(age: Duration) -> anyhow::Result<DateTime<Utc>> {
    Ok(Utc::now() - chrono::Duration::from_std(age).context("duration too long")?)
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn report(json: bool, key: &str, count: u64, text: &str) -> anyhow::Result<()> {
    if json {
        print_json(&serde_json::json!({ key: count }))
    } else {
        println!("{count} {text}");
        Ok(())
    }
}

/// Runs an `apikey` command.
pub async fn apikey(common: &CommonArgs, command: ApikeyCommand) -> anyhow::Result<()> {
    let pool = connect(common, 2).await?;
    match command {
        ApikeyCommand::Create { tenant, json } => {
            let key = shadowbox_db::api_keys::create_api_key(&pool, &tenant)
                .await
                .with_context(|| format!("create a key for tenant {tenant}"))?;
            if json {
                print_json(&serde_json::json!({
                    "id": key.id, "tenant_id": tenant, "secret": key.secret,
                }))?;
            } else {
                println!("id:     {}\nsecret: {}", key.id, key.secret);
                println!("(the secret is shown only now: store it)");
            }
        }
    }
    Ok(())
}
