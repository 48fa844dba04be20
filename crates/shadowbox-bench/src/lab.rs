//! The private servers every figure runs against: a PostgreSQL cluster and
//! a Mosquitto broker on free loopback ports, owned by this run and gone
//! when it ends, and the `shadowbox` binary under test.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, bail};
use shadowbox_mqtt::Protocol;
use shadowbox_testkit::{Durability, Mosquitto, MosquittoConfig, PrivatePostgres};
use sqlx::PgPool;

use crate::cpu::{Watched, find_process};
use sqlx::postgres::PgPoolOptions;

/// Connections the cluster accepts: pgbench's 128 clients plus a running
/// `serve` and this load generator.
const MAX_CONNECTIONS: u32 = 300;

/// The private PostgreSQL and Mosquitto, and the binary under test.
pub struct Lab {
    postgres: PrivatePostgres,
    broker: Mosquitto,
    binary: PathBuf,
    logs: PathBuf,
    postmaster: u32,
    mosquitto: u32,
    protocol: Protocol,
}

impl Lab {
    /// Starts both servers. The broker queues without limit, so a backlog
    /// of reported messages waiting for the ingester is never dropped.
    #[expect(
        clippy::disallowed_methods,
        reason = "ALTER SYSTEM takes no bind parameters; the values are this benchmark's constants and its log folder"
    )]
    pub async fn start(
        binary: PathBuf,
        logs: PathBuf,
        protocol: Protocol,
        durability: Durability,
    ) -> anyhow::Result<Self> {
        if !binary.is_file() {
            bail!(
                "{} is missing: run scripts/bench.sh, which builds it",
                binary.display()
            );
        }
        // Only this run's logs.
        let _ = std::fs::remove_dir_all(&logs);
        // PostgreSQL writes its own log (with the plan of every statement
        // slower than 500 ms) next to ours, and counts statements
        // (`pg_stat_statements`); it runs as `postgres` when we are root.
        let pg_logs = std::path::absolute(logs.join("postgres"))?;
        std::fs::create_dir_all(&pg_logs)
            .with_context(|| format!("create {}", pg_logs.display()))?;
        let _ = std::process::Command::new("chown")
            .arg("postgres:")
            .arg(&pg_logs)
            .stderr(Stdio::null())
            .status();
        let postgres = PrivatePostgres::start_with(durability);
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&postgres.url("postgres"))
            .await
            .context("connect to the private PostgreSQL")?;
        // Our own constants and path only.
        for setting in [
            format!("ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS}"),
            "ALTER SYSTEM SET max_wal_size = '4GB'".to_owned(),
            "ALTER SYSTEM SET logging_collector = on".to_owned(),
            format!("ALTER SYSTEM SET log_directory = '{}'", pg_logs.display()),
            "ALTER SYSTEM SET log_filename = 'postgres.log'".to_owned(),
            "ALTER SYSTEM SET session_preload_libraries = 'auto_explain'".to_owned(),
            // Each figure's statements, by cost (`crate::statements`).
            "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'".to_owned(),
            // Makes the next setting known to this session.
            "LOAD 'auto_explain'".to_owned(),
            "ALTER SYSTEM SET auto_explain.log_min_duration = '500ms'".to_owned(),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(setting))
                .execute(&admin)
                .await?;
        }
        admin.close().await;
        postgres.stop();
        postgres.restart();
        let broker = Mosquitto::start_with(MosquittoConfig {
            persistence: false,
            tls: None,
            extra: "max_queued_messages 0\n".to_owned(),
        });
        let postmaster = find_process(&format!("-p {} -c listen_addresses", postgres.port()))
            .context("find the private postmaster")?;
        let conf = broker.dir().join("mosquitto.conf");
        let mosquitto =
            find_process(&conf.display().to_string()).context("find the private mosquitto")?;
        Ok(Self {
            postgres,
            broker,
            binary,
            logs,
            postmaster,
            mosquitto,
            protocol,
        })
    }

    /// The settings of the private PostgreSQL that decide what a figure
    /// means (durability first), for `summary.json` and the table's title.
    pub async fn database_settings(&self) -> anyhow::Result<serde_json::Value> {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.database_url("postgres"))
            .await?;
        let settings = sqlx::query!(
            r#"SELECT name AS "name!", setting AS "setting!", unit FROM pg_settings
               WHERE name = ANY(ARRAY['server_version', 'fsync', 'synchronous_commit',
                                      'full_page_writes', 'wal_level', 'shared_buffers',
                                      'max_wal_size', 'max_connections', 'work_mem'])
               ORDER BY name"#
        )
        .fetch_all(&admin)
        .await?;
        admin.close().await;
        Ok(settings
            .into_iter()
            .map(|s| {
                let value = match s.unit {
                    Some(unit) => format!("{} x {unit}", s.setting),
                    None => s.setting,
                };
                (s.name, serde_json::Value::String(value))
            })
            .collect::<serde_json::Map<_, _>>()
            .into())
    }

    /// The MQTT version every `serve` of this run speaks.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// `mqtt://127.0.0.1:<port>` of the private broker.
    pub fn mqtt_url(&self) -> String {
        self.broker.url()
    }

    /// The processes to account CPU to, with `serve` if one runs.
    pub fn watched(&self, serve: Option<u32>) -> Watched {
        Watched {
            postmaster: self.postmaster,
            mosquitto: self.mosquitto,
            serve,
        }
    }

    /// The private broker's port.
    pub fn mqtt_port(&self) -> u16 {
        self.broker.port()
    }

    /// The private PostgreSQL's port.
    pub fn postgres_port(&self) -> u16 {
        self.postgres.port()
    }

    /// The URL of database `name` on the private cluster.
    pub fn database_url(&self, name: &str) -> String {
        self.postgres.url(name)
    }

    /// The `shadowbox` binary under test.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Where server logs and pgbench logs go.
    pub fn logs(&self) -> &Path {
        &self.logs
    }

    /// Creates database `name` and its schema with `shadowbox migrate`, and
    /// connects to it.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<PgPool> {
        let url = self.database_url(name);
        let output = tokio::process::Command::new(&self.binary)
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .await
            .context("run shadowbox migrate")?;
        if !output.status.success() {
            bail!(
                "shadowbox migrate failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await?)
    }

    /// Drops database `name` (after its pool is closed), freeing its disk.
    pub async fn drop_database(&self, name: &str) -> anyhow::Result<()> {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.database_url("postgres"))
            .await?;
        shadowbox_db::drop_database(&admin, name).await?;
        admin.close().await;
        Ok(())
    }
}
