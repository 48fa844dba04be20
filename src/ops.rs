//! The operators' commands: `outbox ...` and `tenant ...`.

use anyhow::Context as _;
use clap::Subcommand;
use shadowbox_core::TenantId;
use shadowbox_db::outbox;
use sqlx::PgPool;

use crate::CommonArgs;

/// Connects to the database and applies pending migrations.
pub async fn connect(common: &CommonArgs, max_connections: u32) -> anyhow::Result<PgPool> {
    let pool = shadowbox_db::connect(&common.database_url, max_connections)
        .await
        .context("connect to PostgreSQL")?;
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

/// Runs an `outbox` command.
pub async fn outbox(common: &CommonArgs, command: OutboxCommand) -> anyhow::Result<()> {
    let pool = connect(common, 2).await?;
    match command {
        OutboxCommand::Status { json } => {
            let rows = outbox::status(&pool).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
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
        }
    }
    Ok(())
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
