//! Connecting to PostgreSQL: the pool, creating the database if it is
//! missing (and dropping one, for tests and benchmarks), and applying
//! migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgExecutor, PgPool};

/// The migrations in the workspace's `migrations/` folder, embedded.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Opens a pool of at most `max_connections` to `url`, creating the
/// database first when it does not exist.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?;
    create_database_if_missing(&options).await?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
}

/// Applies every pending migration. Safe to run from several processes at
/// once: the migrator serializes them with an advisory lock.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

async fn create_database_if_missing(options: &PgConnectOptions) -> Result<(), sqlx::Error> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    match options.connect().await {
        Ok(conn) => return conn.close().await,
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("3D000") => {}
        Err(e) => return Err(e),
    }
    let mut admin = options.clone().database("postgres").connect().await?;
    let created = sqlx::query(database_statement("CREATE DATABASE", &name, ""))
        .execute(&mut admin)
        .await;
    match created {
        // Another process created it between our two connections.
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P04") => {}
        Err(e) => return Err(e),
        Ok(_) => tracing::info!(database = %name, "created the database"),
    }
    admin.close().await
}

/// Drops database `name` if it exists, ending its sessions first: for the
/// tests and benchmarks that made it. `admin` is connected to another
/// database of the same server.
pub async fn drop_database(admin: impl PgExecutor<'_>, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(database_statement(
        "DROP DATABASE IF EXISTS",
        name,
        "WITH (FORCE)",
    ))
    .execute(admin)
    .await
    .map(drop)
}

/// `{command} "{name}" {options}`, the name quoted as an identifier:
/// statements on a database take no bind parameters.
#[expect(
    clippy::disallowed_methods,
    reason = "a database name cannot be bound; it is quoted as an identifier here"
)]
fn database_statement(command: &str, name: &str, options: &str) -> sqlx::AssertSqlSafe<String> {
    let quoted = name.replace('"', "\"\"");
    sqlx::AssertSqlSafe(format!("{command} \"{quoted}\" {options}"))
}
