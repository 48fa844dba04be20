//! The long-running roles: `serve`, `api`, `relay` and `ingest`, their
//! flags, and the signals that stop them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use prometheus_client::registry::Registry;
use shadowbox_api::{ApiMetrics, ApiSettings};
use shadowbox_ingest::{IngestMetrics, IngestSettings};
use shadowbox_mqtt::MqttConfig;
use shadowbox_relay::{RelayMetrics, RelaySettings};
use shadowbox_rollout::{RolloutMetrics, RolloutSettings};
use tokio_util::sync::CancellationToken;

use crate::CommonArgs;
use shadowbox_core::duration::{format as default_duration, parse as duration};

/// The API's flags.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Where the HTTP API listens.
    #[arg(long, env = "SHADOWBOX_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// The admin bearer token; without it the admin routes are disabled.
    #[arg(long, env = "SHADOWBOX_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// How long a tenant key found in the database is trusted without
    /// asking it again (`0s`: every request asks). A key deleted in SQL
    /// keeps working in a running process for at most this long.
    #[arg(long, env = "SHADOWBOX_API_KEY_CACHE_TTL", value_parser = duration,
          default_value = default_duration(shadowbox_api::settings::DEFAULT_KEY_CACHE_TTL))]
    pub api_key_cache_ttl: Duration,
}

impl ApiArgs {
    /// The API's settings.
    pub fn settings(&self, common: &CommonArgs) -> anyhow::Result<ApiSettings> {
        let mut settings = ApiSettings::new(self.http_addr, common.mqtt()?);
        settings.admin_token = self.admin_token.clone().filter(|t| !t.is_empty());
        settings.limits = common.limits();
        settings.max_body_bytes = shadowbox_api::settings::body_limit_for(&settings.limits);
        settings.key_cache_ttl = self.api_key_cache_ttl;
        Ok(settings)
    }
}

/// `shadowbox api`: the API alone, until SIGTERM or ctrl-c.
pub async fn api(common: &CommonArgs, args: &ApiArgs) -> anyhow::Result<()> {
    let settings = args.settings(common)?;
    let pool = crate::ops::connect(common, 16).await?;
    let mut registry = Registry::default();
    let metrics = ApiMetrics::register(&mut registry);
    let shutdown = shutdown_on_signal();
    shadowbox_api::run(pool, settings, Arc::new(registry), metrics, shutdown).await
}

/// The relay's flags.
#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    /// MQTT client id of this relay (must be unique per replica; default:
    /// random).
    #[arg(long, env = "SHADOWBOX_RELAY_CLIENT_ID")]
    pub relay_client_id: Option<String>,
    /// Concurrent batches.
    #[arg(long, env = "SHADOWBOX_RELAY_WORKERS", default_value_t = shadowbox_relay::DEFAULT_WORKERS)]
    pub relay_workers: usize,
    /// Devices per batch.
    #[arg(long, env = "SHADOWBOX_RELAY_BATCH_SIZE", default_value_t = shadowbox_relay::DEFAULT_BATCH_SIZE)]
    pub relay_batch_size: usize,
    /// Publishes awaiting their PUBACK at once (under MQTT 5 the broker's
    /// receive maximum may lower it).
    #[arg(long, env = "SHADOWBOX_RELAY_MAX_IN_FLIGHT", default_value_t = shadowbox_relay::DEFAULT_MAX_IN_FLIGHT)]
    pub relay_max_in_flight: usize,
    /// Largest PUBLISH packet, in bytes: a larger row is dead-lettered
    /// unsent. Under 3.1.1 set the broker's limit; under 5 the broker's
    /// CONNACK may lower it.
    #[arg(long, env = "SHADOWBOX_RELAY_MAX_PACKET_SIZE", default_value_t = shadowbox_relay::DEFAULT_MAX_PACKET_BYTES)]
    pub relay_max_packet_size: u32,
    /// A PUBACK later than this drops the connection; the unacknowledged
    /// rows are due again at once.
    #[arg(
        long,
        env = "SHADOWBOX_RELAY_ACK_TIMEOUT",
        default_value = default_duration(shadowbox_relay::DEFAULT_ACK_TIMEOUT),
        value_parser = duration
    )]
    pub relay_ack_timeout: Duration,
    /// Idle polling for due rows, the fallback for missed notifications.
    #[arg(
        long,
        env = "SHADOWBOX_RELAY_POLL_INTERVAL",
        default_value = default_duration(shadowbox_relay::DEFAULT_POLL_INTERVAL),
        value_parser = duration
    )]
    pub relay_poll_interval: Duration,
    /// A row the broker refused this many times becomes dead.
    #[arg(long, env = "SHADOWBOX_RELAY_MAX_ATTEMPTS", default_value_t = shadowbox_relay::DEFAULT_MAX_ATTEMPTS)]
    pub relay_max_attempts: i32,
    /// Refusal backoff: the delay before a refused row is published
    /// again; doubles with each refusal.
    #[arg(
        long,
        env = "SHADOWBOX_RELAY_RETRY_BASE",
        default_value = default_duration(shadowbox_relay::DEFAULT_REFUSAL_BACKOFF_BASE),
        value_parser = duration
    )]
    pub relay_retry_base: Duration,
    /// Refusal backoff: the longest delay before a refused row is
    /// published again.
    #[arg(
        long,
        env = "SHADOWBOX_RELAY_RETRY_MAX",
        default_value = default_duration(shadowbox_relay::DEFAULT_REFUSAL_BACKOFF_MAX),
        value_parser = duration
    )]
    pub relay_retry_max: Duration,
    /// After an interrupted publish, publish the device's current state once
    /// more this much later, past the broker's keep-alive grace, so bytes of
    /// the interrupted publish arriving late cannot leave an older version
    /// retained.
    #[arg(
        long,
        env = "SHADOWBOX_RELAY_REPUBLISH_AFTER",
        default_value = default_duration(shadowbox_relay::DEFAULT_REPUBLISH_AFTER),
        value_parser = duration
    )]
    pub relay_republish_after: Duration,
    /// Delete delivered and superseded rows older than this (0s keeps them).
    #[arg(
        long,
        env = "SHADOWBOX_OUTBOX_RETENTION",
        default_value = default_duration(shadowbox_relay::DEFAULT_RETENTION),
        value_parser = duration
    )]
    pub outbox_retention: Duration,
    /// Delete desired history committed longer ago than this (0s keeps it).
    #[arg(
        long,
        env = "SHADOWBOX_HISTORY_RETENTION",
        default_value = default_duration(shadowbox_relay::DEFAULT_HISTORY_RETENTION),
        value_parser = duration
    )]
    pub history_retention: Duration,
    /// Compare the broker's retained desired messages with the database
    /// this often (and after every reconnect), republishing what differs
    /// (0s: never).
    #[arg(
        long,
        env = "SHADOWBOX_RECONCILE_INTERVAL",
        default_value = default_duration(shadowbox_relay::DEFAULT_RECONCILE_INTERVAL),
        value_parser = duration
    )]
    pub reconcile_interval: Duration,
    /// Delete events older than this: the event stream's resume window
    /// (0s keeps them).
    #[arg(
        long,
        env = "SHADOWBOX_EVENTS_RETENTION",
        default_value = default_duration(shadowbox_relay::DEFAULT_EVENTS_RETENTION),
        value_parser = duration
    )]
    pub events_retention: Duration,
    #[command(flatten)]
    pub reconcile_slice: ReconcileSliceArg,
}

/// How many device topics a reconcile pass reads from the broker at once.
#[derive(Debug, Clone, Args)]
pub struct ReconcileSliceArg {
    /// Device topics a reconcile pass reads from the broker at once: at
    /// most half the broker's queue limit for one client (Mosquitto
    /// `max_queued_messages`).
    #[arg(long, env = "SHADOWBOX_RECONCILE_SLICE", default_value_t = shadowbox_relay::DEFAULT_RECONCILE_SLICE)]
    pub reconcile_slice: usize,
}

impl RelayArgs {
    /// The relay's settings for the brokers of `mqtt`.
    pub fn settings(&self, mqtt: MqttConfig) -> RelaySettings {
        let mut settings = RelaySettings::new(mqtt);
        if let Some(id) = &self.relay_client_id {
            settings.client_id.clone_from(id);
        }
        settings.workers = self.relay_workers.max(1);
        settings.batch_size = self.relay_batch_size.max(1);
        settings.max_in_flight = self.relay_max_in_flight.max(1);
        settings.max_packet_bytes = self.relay_max_packet_size;
        settings.ack_timeout = self.relay_ack_timeout;
        settings.poll_interval = self.relay_poll_interval;
        settings.refusal_backoff.max_attempts = self.relay_max_attempts.max(1);
        settings.refusal_backoff.base_delay = self.relay_retry_base;
        settings.refusal_backoff.max_delay = self.relay_retry_max;
        settings.republish_after_interruption = self.relay_republish_after;
        settings.retention = Some(self.outbox_retention).filter(|d| !d.is_zero());
        settings.history_retention = Some(self.history_retention).filter(|d| !d.is_zero());
        settings.reconcile_interval = Some(self.reconcile_interval).filter(|d| !d.is_zero());
        settings.reconcile_slice = self.reconcile_slice.reconcile_slice.max(1);
        settings.events_retention = Some(self.events_retention).filter(|d| !d.is_zero());
        settings
    }
}

/// The wave machine's flags (it runs in `serve` and `relay`).
#[derive(Debug, Clone, Args)]
pub struct RolloutArgs {
    /// Rollout devices written per transaction.
    #[arg(long, env = "SHADOWBOX_ROLLOUT_CHUNK_SIZE", default_value_t = shadowbox_rollout::DEFAULT_CHUNK_SIZE)]
    pub rollout_chunk_size: i64,
    /// How often the wave machine looks for work when idle, and counts a
    /// waiting wave's gates.
    #[arg(
        long,
        env = "SHADOWBOX_ROLLOUT_POLL_INTERVAL",
        default_value = default_duration(shadowbox_rollout::DEFAULT_POLL_INTERVAL),
        value_parser = duration
    )]
    pub rollout_poll_interval: Duration,
}

impl RolloutArgs {
    /// The wave machine's settings.
    pub fn settings(&self, common: &CommonArgs) -> RolloutSettings {
        RolloutSettings {
            chunk_size: self.rollout_chunk_size.max(1),
            poll_interval: self.rollout_poll_interval,
            limits: common.limits(),
        }
    }
}

/// Where a role that runs without the API serves `/metrics` and `/healthz`.
#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Serve `/metrics` (Prometheus) and `/healthz` here, e.g.
    /// `0.0.0.0:9090`; without it the role's metrics are not exposed.
    #[arg(long, env = "SHADOWBOX_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

impl MetricsArgs {
    /// Serves `registry` until `shutdown`, if an address was given.
    fn serve(&self, registry: Registry, shutdown: &CancellationToken) {
        if let Some(addr) = self.metrics_addr {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let served =
                    shadowbox_telemetry::serve_metrics(addr, Arc::new(registry), shutdown.clone())
                        .await;
                if let Err(e) = served {
                    tracing::error!(error = format!("{e:#}"), "metrics listener failed");
                    shutdown.cancel();
                }
            });
        }
    }
}

/// `shadowbox relay`'s flags.
#[derive(Debug, Clone, Args)]
pub struct RelayCommand {
    #[command(flatten)]
    relay: RelayArgs,
    #[command(flatten)]
    rollout: RolloutArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
}

/// `shadowbox relay`: the relay and the wave machine, until SIGTERM or
/// ctrl-c.
pub async fn relay(common: &CommonArgs, command: &RelayCommand) -> anyhow::Result<()> {
    let args = &command.relay;
    // A connection per worker, and the outbox and rollout listeners, the
    // wave machine, retention, reconcile and the backlog gauge.
    let pool = crate::ops::connect(common, args.relay_workers as u32 + 6).await?;
    let mut registry = Registry::default();
    let metrics = RelayMetrics::register(&mut registry);
    let rollout_metrics = RolloutMetrics::register(&mut registry);
    let shutdown = shutdown_on_signal();
    command.metrics.serve(registry, &shutdown);
    let machine = shadowbox_rollout::run(
        command.rollout.settings(common),
        pool.clone(),
        rollout_metrics,
        shutdown.clone(),
    );
    let relay = shadowbox_relay::run(args.settings(common.mqtt()?), pool, metrics, shutdown);
    let (relayed, machined) = tokio::join!(relay, machine);
    relayed.and(machined)
}

/// The ingester's flags.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// MQTT client id of this ingester: stable across restarts (the broker
    /// keeps its persistent session, and the messages that arrive while it
    /// is away, under this id) and unique per replica. Default:
    /// `shadowbox-ingest-<hostname>`.
    #[arg(long, env = "SHADOWBOX_INGEST_CLIENT_ID")]
    pub ingest_client_id: Option<String>,
    /// Shared-subscription group; replicas in one group split the traffic.
    /// Empty: a plain subscription, for brokers without shared
    /// subscriptions (NATS); run one ingester then.
    #[arg(
        long,
        env = "SHADOWBOX_INGEST_SHARE_GROUP",
        default_value = shadowbox_ingest::DEFAULT_SHARE_GROUP
    )]
    pub ingest_share_group: String,
    /// MQTT 5: how long the broker keeps this ingester's session, and
    /// queues reports for it, after it disconnected.
    #[arg(
        long,
        env = "SHADOWBOX_INGEST_SESSION_EXPIRY",
        default_value = default_duration(shadowbox_ingest::DEFAULT_SESSION_EXPIRY),
        value_parser = duration
    )]
    pub ingest_session_expiry: Duration,
    /// Most messages per batch; under 3.1.1 keep it times the writers below
    /// the broker's per-client in-flight window (Mosquitto
    /// `max_inflight_messages`).
    #[arg(long, env = "SHADOWBOX_INGEST_BATCH_SIZE", default_value_t = shadowbox_ingest::DEFAULT_BATCH_SIZE)]
    pub ingest_batch_size: usize,
    /// Longest wait for a batch to fill after its first message.
    #[arg(
        long,
        env = "SHADOWBOX_INGEST_BATCH_WAIT",
        default_value = default_duration(shadowbox_ingest::DEFAULT_BATCH_WAIT),
        value_parser = duration
    )]
    pub ingest_batch_wait: Duration,
    /// Batches written at once, each device's reports always by the same
    /// writer (one database connection each).
    #[arg(long, env = "SHADOWBOX_INGEST_WRITERS", default_value_t = shadowbox_ingest::DEFAULT_WRITERS)]
    pub ingest_writers: usize,
}

impl IngestArgs {
    /// The ingester's settings.
    pub fn settings(&self, common: &CommonArgs) -> anyhow::Result<IngestSettings> {
        let client_id = match &self.ingest_client_id {
            Some(id) => id.clone(),
            None => format!("shadowbox-ingest-{}", hostname()),
        };
        let mut settings = IngestSettings::new(common.mqtt()?, client_id);
        settings.share_group.clone_from(&self.ingest_share_group);
        settings.session_expiry = self.ingest_session_expiry;
        settings.batch_size = self.ingest_batch_size.max(1);
        settings.batch_wait = self.ingest_batch_wait;
        settings.writers = self.ingest_writers.max(1);
        settings.limits = common.limits();
        Ok(settings)
    }
}

/// This machine's (or container's) name, for stable default client ids.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `shadowbox ingest`'s flags.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct IngestCommand {
    #[command(subcommand)]
    action: Option<IngestAction>,
    #[command(flatten)]
    ingest: IngestArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
}

/// What `shadowbox ingest` can do besides running.
#[derive(Debug, Clone, Subcommand)]
enum IngestAction {
    /// Discard the broker session of a retired ingester (and the reports
    /// queued for it), on every broker of MQTT_URL. A running ingester
    /// with that client id is disconnected.
    ForgetSession {
        /// The retired ingester's client id.
        #[arg(long)]
        client_id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `shadowbox ingest`: the ingester alone, until SIGTERM or ctrl-c.
pub async fn ingest(common: &CommonArgs, command: &IngestCommand) -> anyhow::Result<()> {
    if let Some(IngestAction::ForgetSession { client_id, json }) = &command.action {
        return forget_session(common, client_id, *json).await;
    }
    let settings = command.ingest.settings(common)?;
    let pool = crate::ops::connect(common, settings.writers as u32 + 2).await?;
    let mut registry = Registry::default();
    let metrics = IngestMetrics::register(&mut registry);
    let shutdown = shutdown_on_signal();
    command.metrics.serve(registry, &shutdown);
    shadowbox_ingest::run(settings, pool, metrics, shutdown).await
}

/// How long `forget-session` waits for each broker.
const FORGET_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// `shadowbox ingest forget-session`: a clean start under `client_id` on
/// every broker, so none keeps that session.
async fn forget_session(common: &CommonArgs, client_id: &str, json: bool) -> anyhow::Result<()> {
    let mqtt = common.mqtt()?;
    let mut results = Vec::new();
    for broker in mqtt.brokers.iter() {
        let outcome = shadowbox_mqtt::probe::discard_session(
            &mqtt,
            broker,
            client_id,
            FORGET_SESSION_TIMEOUT,
        )
        .await;
        results.push((broker.to_string(), outcome));
    }
    if json {
        let brokers: Vec<serde_json::Value> = results
            .iter()
            .map(|(broker, outcome)| match outcome {
                Ok(()) => serde_json::json!({"broker": broker, "discarded": true}),
                Err(e) => serde_json::json!({"broker": broker, "discarded": false, "error": e.to_string()}),
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"client_id": client_id, "brokers": brokers})
        );
    } else {
        for (broker, outcome) in &results {
            match outcome {
                Ok(()) => println!("{broker}: discarded the session of {client_id}"),
                Err(e) => println!("{broker}: could not connect: {e}"),
            }
        }
    }
    anyhow::ensure!(
        results.iter().any(|(_, outcome)| outcome.is_ok()),
        "no broker could be reached"
    );
    Ok(())
}

/// `shadowbox serve`'s flags: every role's.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    relay: RelayArgs,
    #[command(flatten)]
    ingest: IngestArgs,
    #[command(flatten)]
    rollout: RolloutArgs,
}

/// `shadowbox serve`: api, relay (with the wave machine) and ingest in one process, sharing one
/// pool, one metrics registry and one shutdown. The first role to fail
/// stops the others.
pub async fn serve(common: &CommonArgs, args: &ServeArgs) -> anyhow::Result<()> {
    let api_settings = args.api.settings(common)?;
    let relay_settings = args.relay.settings(common.mqtt()?);
    let ingest_settings = args.ingest.settings(common)?;
    let rollout_settings = args.rollout.settings(common);
    // The API's 16, the relay's (see `relay`) and one per ingest writer.
    let connections = 16 + relay_settings.workers as u32 + 6 + ingest_settings.writers as u32;
    // Migrate before any role starts, so relay and ingest never query an
    // empty database.
    let pool = crate::ops::connect_and_migrate(common, connections).await?;
    let mut registry = Registry::default();
    let api_metrics = ApiMetrics::register(&mut registry);
    let relay_metrics = RelayMetrics::register(&mut registry);
    let ingest_metrics = IngestMetrics::register(&mut registry);
    let rollout_metrics = RolloutMetrics::register(&mut registry);
    let registry = Arc::new(registry);
    let shutdown = shutdown_on_signal();
    let mut roles = tokio::task::JoinSet::new();
    let (p, s, t) = (pool.clone(), api_settings, shutdown.clone());
    roles.spawn(async move {
        (
            "api",
            shadowbox_api::run(p, s, registry, api_metrics, t).await,
        )
    });
    let (p, t) = (pool.clone(), shutdown.clone());
    roles.spawn(async move {
        (
            "relay",
            shadowbox_relay::run(relay_settings, p, relay_metrics, t).await,
        )
    });
    let (p, t) = (pool.clone(), shutdown.clone());
    roles.spawn(async move {
        (
            "ingest",
            shadowbox_ingest::run(ingest_settings, p, ingest_metrics, t).await,
        )
    });
    let (p, t) = (pool.clone(), shutdown.clone());
    roles.spawn(async move {
        (
            "rollout",
            shadowbox_rollout::run(rollout_settings, p, rollout_metrics, t).await,
        )
    });
    let mut first_error = None;
    while let Some(joined) = roles.join_next().await {
        let (role, result) = joined?;
        if let Err(e) = result {
            tracing::error!(
                role,
                error = format!("{e:#}"),
                "role failed; stopping the others"
            );
            shutdown.cancel();
            first_error.get_or_insert(e.context(format!("{role} failed")));
        } else if !shutdown.is_cancelled() {
            tracing::error!(role, "role stopped on its own; stopping the others");
            shutdown.cancel();
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// A token cancelled on SIGTERM or ctrl-c.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("install the SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested: finishing in-flight work");
        cancel.cancel();
    });
    token
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;
    use shadowbox_core::DocumentLimits;

    use super::*;

    /// The flags' defaults are the crates' own defaults, not copies.
    #[test]
    fn flag_defaults_are_the_settings_defaults() {
        let cli = crate::Cli::try_parse_from(["shadowbox", "serve"]).unwrap();
        let crate::Command::Serve(args) = cli.command else {
            unreachable!("parsed `serve`")
        };
        assert_eq!(cli.common.limits(), DocumentLimits::default());
        let mqtt = cli.common.mqtt().unwrap();
        let relay = args.relay.settings(mqtt.clone());
        let defaults = RelaySettings::new(mqtt.clone());
        assert_eq!(
            (
                relay.workers,
                relay.batch_size,
                relay.max_in_flight,
                relay.max_packet_bytes,
                relay.ack_timeout,
                relay.poll_interval,
                relay.refusal_backoff,
                relay.republish_after_interruption,
                relay.retention,
            ),
            (
                defaults.workers,
                defaults.batch_size,
                defaults.max_in_flight,
                defaults.max_packet_bytes,
                defaults.ack_timeout,
                defaults.poll_interval,
                defaults.refusal_backoff,
                defaults.republish_after_interruption,
                defaults.retention,
            )
        );
        let rollout = args.rollout.settings(&cli.common);
        let defaults = RolloutSettings::default();
        assert_eq!(
            (rollout.chunk_size, rollout.poll_interval, rollout.limits),
            (defaults.chunk_size, defaults.poll_interval, defaults.limits)
        );
        let ingest = args.ingest.settings(&cli.common).unwrap();
        let defaults = IngestSettings::new(mqtt, "id");
        assert_eq!(
            (
                ingest.share_group,
                ingest.session_expiry,
                ingest.batch_size,
                ingest.batch_wait,
                ingest.limits
            ),
            (
                defaults.share_group,
                defaults.session_expiry,
                defaults.batch_size,
                defaults.batch_wait,
                defaults.limits
            )
        );
    }
}
