//! `shadowbox serve` (or `shadowbox relay` alone) as a separate process,
//! exactly as deployed: started against the private servers, waited for
//! until it answers that it is ready, stopped with SIGTERM, and killed by
//! its guard whatever happens.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::lab::Lab;

/// The admin token of every `serve` this benchmark starts.
pub const ADMIN_TOKEN: &str = "bench-admin-token";

/// How long `serve` may take to become ready, and to stop.
const PATIENCE: Duration = Duration::from_secs(30);

/// Which `shadowbox` command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every role in one process: api, relay (with the wave machine), ingest.
    Serve,
    /// The relay (with the wave machine) alone.
    Relay,
}

impl Role {
    /// The subcommand.
    pub fn command(self) -> &'static str {
        match self {
            Self::Serve => "serve",
            Self::Relay => "relay",
        }
    }

    /// The variable naming its HTTP listener, and the path that answers
    /// once it is ready.
    fn listener(self) -> (&'static str, &'static str) {
        match self {
            Self::Serve => ("SHADOWBOX_HTTP_ADDR", "/readyz"),
            Self::Relay => ("SHADOWBOX_METRICS_ADDR", "/healthz"),
        }
    }
}

/// A running `shadowbox serve` (or `relay`), killed when dropped.
pub struct Serve {
    child: Child,
    base: String,
    name: String,
    log: PathBuf,
}

impl Serve {
    /// Starts `serve` on database `db`, with `name` in its MQTT client ids
    /// (so no run inherits another's broker session), and waits until it is
    /// ready.
    pub async fn start(lab: &Lab, db: &str, name: &str) -> anyhow::Result<Self> {
        Self::start_role(lab, db, name, Role::Serve).await
    }

    /// Starts `role` as [`Serve::start`] starts `serve`.
    #[expect(
        clippy::disallowed_methods,
        reason = "the benchmark keeps the process's log in its output folder and reports failures as errors; Serve kills the child when dropped"
    )]
    pub async fn start_role(lab: &Lab, db: &str, name: &str, role: Role) -> anyhow::Result<Self> {
        let port = shadowbox_testkit::free_port();
        let log = lab.logs().join(format!("{}-{name}.log", role.command()));
        let (listener, ready_path) = role.listener();
        let child = Command::new(lab.binary())
            .arg(role.command())
            .env("DATABASE_URL", lab.database_url(db))
            .env("MQTT_URL", lab.mqtt_url())
            .env("SHADOWBOX_MQTT_PROTOCOL", lab.protocol().to_string())
            .env(listener, format!("127.0.0.1:{port}"))
            .env("SHADOWBOX_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("SHADOWBOX_INGEST_CLIENT_ID", format!("bench-ingest-{name}"))
            .env("SHADOWBOX_RELAY_CLIENT_ID", format!("bench-relay-{name}"))
            // The fleets are set up in SQL and never published, so a
            // reconcile pass would republish every device of every tenant
            // in the middle of a figure. Figure 7 measures the pass alone.
            .env("SHADOWBOX_RECONCILE_INTERVAL", "0s")
            // The relay's "connected" line states its in-flight window.
            .env("RUST_LOG", "warn,shadowbox_relay::publisher=info")
            .env("SHADOWBOX_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).with_context(|| format!("create {}", log.display()))?)
            .spawn()
            .with_context(|| format!("start {} {}", lab.binary().display(), role.command()))?;
        let mut serve = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            name: name.to_owned(),
            log: log.clone(),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = serve.child.try_wait()? {
                bail!(
                    "{} exited with {status}; see {}",
                    role.command(),
                    log.display()
                );
            }
            let ready = client
                .get(format!("{}{ready_path}", serve.base))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(serve);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not ready after {PATIENCE:?}; see {}",
                    role.command(),
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The relay's in-flight window (publishes awaiting their PUBACK), as
    /// its last connection to the broker set it: its own
    /// `SHADOWBOX_RELAY_MAX_IN_FLIGHT`, under MQTT 5 at most the broker's
    /// receive maximum. `None` if the log does not say.
    pub fn relay_in_flight_window(&self) -> Option<u64> {
        let log = std::fs::read_to_string(&self.log).ok()?;
        log.lines()
            .rev()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|line| line["message"] == "connected to the broker")
            .find_map(|line| line["in_flight_window"].as_u64())
    }

    /// Its process id, for CPU accounting.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its peak resident set so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        crate::machine::peak_rss_kib(self.pid()).context("no VmHWM in /proc/<pid>/status")
    }

    /// Stops it with SIGTERM (it drains and exits) and answers its peak
    /// resident set in KiB, read just before.
    pub async fn stop(mut self) -> anyhow::Result<u64> {
        let peak = self.peak_rss_kib()?;
        Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("run kill")?;
        let deadline = Instant::now() + PATIENCE;
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                bail!("serve {} ignored SIGTERM for {PATIENCE:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(peak)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
