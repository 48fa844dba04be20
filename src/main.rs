//! `shadowbox`: one binary whose subcommands are the service's roles.
//!
//! `serve` runs api, relay and ingest in one process; `api`, `relay` and
//! `ingest` run one role each (for separate deployments and replicas);
//! `migrate` applies the schema; `outbox`, `tenant` and `apikey` are the
//! operators' commands; `simulate` runs simulated devices.
//!
//! Each role's crate runs its role; this binary only parses flags into the
//! crates' settings (whose `DEFAULT_*` constants are the flags' defaults),
//! sets up logging (`shadowbox-telemetry`) and handles signals.

mod ops;
mod roles;
mod rollout;
mod simulate;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Device shadows for multi-tenant IoT fleets, delivered over MQTT through
/// a transactional outbox.
#[derive(Debug, Parser)]
#[command(name = "shadowbox", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

/// Settings every role shares.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// PostgreSQL URL; the database is created if it does not exist.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/shadowbox",
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,
    /// MQTT broker URL: `mqtt://[user@]host[:port]` or `mqtts://...`;
    /// several, comma-separated, are tried in turn (failover).
    #[arg(
        long,
        env = "MQTT_URL",
        default_value = "mqtt://127.0.0.1:1883",
        global = true,
        hide_env_values = true
    )]
    pub mqtt_url: String,
    /// MQTT protocol version: `5` or `3.1.1` (for brokers without 5).
    #[arg(
        long,
        env = "SHADOWBOX_MQTT_PROTOCOL",
        default_value_t = shadowbox_mqtt::Protocol::default(),
        global = true
    )]
    pub mqtt_protocol: shadowbox_mqtt::Protocol,
    /// PEM trust anchors for `mqtts://` brokers (default: the system's).
    #[arg(long, env = "SHADOWBOX_MQTT_CA_FILE", global = true)]
    pub mqtt_ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for mutual TLS.
    #[arg(long, env = "SHADOWBOX_MQTT_CLIENT_CERT_FILE", global = true)]
    pub mqtt_client_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[arg(long, env = "SHADOWBOX_MQTT_CLIENT_KEY_FILE", global = true)]
    pub mqtt_client_key_file: Option<PathBuf>,
    /// A file holding the MQTT password of the URL's user.
    #[arg(long, env = "SHADOWBOX_MQTT_PASSWORD_FILE", global = true)]
    pub mqtt_password_file: Option<PathBuf>,
    /// Largest desired or reported document, in bytes.
    #[arg(
        long,
        env = "SHADOWBOX_MAX_DOCUMENT_BYTES",
        default_value_t = shadowbox_core::document::DEFAULT_MAX_DOCUMENT_BYTES,
        global = true
    )]
    pub max_document_bytes: usize,
    /// Deepest nesting of a desired or reported document (the document
    /// itself is level 1).
    #[arg(
        long,
        env = "SHADOWBOX_MAX_DOCUMENT_DEPTH",
        default_value_t = shadowbox_core::document::DEFAULT_MAX_DOCUMENT_DEPTH,
        global = true
    )]
    pub max_document_depth: usize,
    /// Log format: `text` or `json` (log level: `RUST_LOG`, default `info`).
    #[arg(
        long,
        env = "SHADOWBOX_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    pub log_format: shadowbox_telemetry::LogFormat,
}

impl CommonArgs {
    /// The brokers and how to reach them: `--mqtt-url` and the
    /// `--mqtt-*` settings, every file read now.
    pub fn mqtt(&self) -> anyhow::Result<shadowbox_mqtt::MqttConfig> {
        let tls = shadowbox_mqtt::TlsFiles {
            ca_file: self.mqtt_ca_file.clone(),
            client_cert_file: self.mqtt_client_cert_file.clone(),
            client_key_file: self.mqtt_client_key_file.clone(),
        };
        Ok(shadowbox_mqtt::MqttConfig::load(
            &self.mqtt_url,
            self.mqtt_protocol,
            &tls,
            self.mqtt_password_file.as_deref(),
        )?)
    }

    /// The document limits of `--max-document-bytes` and `--max-document-depth`.
    pub fn limits(&self) -> shadowbox_core::DocumentLimits {
        shadowbox_core::DocumentLimits {
            max_bytes: self.max_document_bytes,
            max_depth: self.max_document_depth,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run api, relay and ingest in one process (the default for one machine).
    Serve(roles::ServeArgs),
    /// Run the operators' REST API alone.
    Api(roles::ApiArgs),
    /// Run the relay alone: drain the outbox into retained MQTT publishes.
    Relay(roles::RelayCommand),
    /// Apply the database migrations and exit.
    Migrate,
    /// Operate the outbox: delivery status, listing, retries, resync, purge.
    #[command(subcommand)]
    Outbox(ops::OutboxCommand),
    /// Run the ingester alone: write the state devices report (or, with a
    /// subcommand, operate its broker session).
    Ingest(roles::IngestCommand),
    /// Find devices: those that have not applied their desired version.
    #[command(subcommand)]
    Devices(ops::DevicesCommand),
    /// Create, watch and steer rollouts (one merge patch for many devices,
    /// in waves).
    #[command(subcommand)]
    Rollout(rollout::RolloutCommand),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(ops::TenantCommand),
    /// Simulate devices that apply desired state and report it back.
    Simulate(simulate::SimulateArgs),
    /// Manage tenant API keys.
    #[command(subcommand)]
    Apikey(ops::ApikeyCommand),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    shadowbox_telemetry::logging::init(cli.common.log_format);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate => {
            let pool = ops::connect_and_migrate(&cli.common, 2).await?;
            tracing::info!("migrations applied");
            pool.close().await;
            Ok(())
        }
        Command::Serve(args) => roles::serve(&cli.common, &args).await,
        Command::Ingest(args) => roles::ingest(&cli.common, &args).await,
        Command::Api(args) => roles::api(&cli.common, &args).await,
        Command::Relay(args) => roles::relay(&cli.common, &args).await,
        Command::Outbox(command) => ops::outbox(&cli.common, command).await,
        Command::Devices(command) => ops::devices(&cli.common, command).await,
        Command::Rollout(command) => rollout::rollout(&cli.common, command).await,
        Command::Tenant(command) => ops::tenant(&cli.common, command).await,
        Command::Simulate(args) => simulate::simulate(&cli.common, args).await,
        Command::Apikey(command) => ops::apikey(&cli.common, command).await,
    }
}
