//! A private Mosquitto broker for tests that disturb the broker.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::{free_port, signal, wait_for_port};

/// How a private broker is configured.
#[derive(Debug, Clone, Default)]
pub struct MosquittoConfig {
    /// Keep retained messages and sessions on disk across restarts.
    pub persistence: bool,
    /// A TLS listener besides the plain one.
    pub tls: Option<MosquittoTls>,
    /// More configuration lines, appended verbatim.
    pub extra: String,
}

/// A TLS listener: PEM files (see [`crate::tls::TestPki`]).
#[derive(Debug, Clone)]
pub struct MosquittoTls {
    /// The CA client certificates must chain to.
    pub ca_file: PathBuf,
    /// The broker's certificate.
    pub cert_file: PathBuf,
    /// Its key.
    pub key_file: PathBuf,
    /// Refuse clients without a certificate of `ca_file` (mutual TLS).
    pub require_client_certificate: bool,
}

/// The private brokers' `max_inflight_messages`: unacknowledged QoS 1
/// messages per client both ways, and the receive maximum they announce to
/// MQTT 5 clients. 2000 lets the relay use its default window.
pub const MAX_INFLIGHT_MESSAGES: u16 = 2000;

/// A private broker on a free port, killed when dropped.
pub struct Mosquitto {
    port: u16,
    tls_port: Option<u16>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts a broker without persistence.
    pub fn start() -> Self {
        Self::start_with(MosquittoConfig::default())
    }

    /// Starts a broker with `config`.
    pub fn start_with(config: MosquittoConfig) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\n\
             max_inflight_messages {MAX_INFLIGHT_MESSAGES}\nmax_queued_messages 100000\n\
             log_dest file {log}\nlog_type error\nlog_type warning\nlog_type notice\n",
            log = dir.path().join("mosquitto.log").display()
        );
        if config.persistence {
            let _ = writeln!(
                conf,
                "persistence true\npersistence_location {}/\nautosave_interval 1",
                dir.path().display()
            );
        }
        let tls_port = config.tls.as_ref().map(|tls| {
            let tls_port = free_port();
            let _ = writeln!(
                conf,
                "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}",
                tls.ca_file.display(),
                tls.cert_file.display(),
                tls.key_file.display(),
                tls.require_client_certificate
            );
            tls_port
        });
        conf.push_str(&config.extra);
        std::fs::write(dir.path().join("mosquitto.conf"), conf).expect("write config");
        let mut broker = Self {
            port,
            tls_port,
            dir,
            child: None,
        };
        broker.restart();
        broker
    }

    /// The broker's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// `mqtts://localhost:{tls port}`, if the broker has a TLS listener.
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port
            .map(|port| format!("mqtts://localhost:{port}"))
    }

    /// The folder holding the config, log and persistence files.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Stops the broker gracefully (SIGTERM), as an operator would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            child.wait().expect("wait for mosquitto");
        }
    }

    /// Kills the broker at once (SIGKILL): nothing is saved.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port (stopping it first if it
    /// runs) and waits until it accepts connections.
    #[expect(
        clippy::disallowed_methods,
        reason = "the broker's own guard: dropping it thaws and kills the child"
    )]
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto (is it installed?)");
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(10));
        if let Some(port) = self.tls_port {
            wait_for_port(port, Duration::from_secs(10));
        }
    }

    /// Makes the broker read its password and ACL files again (SIGHUP),
    /// as an operator does after changing an account.
    pub fn reload(&self) {
        signal(self.pid(), "HUP");
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing is
    /// answered.
    pub fn freeze(&self) {
        signal(self.pid(), "STOP");
    }

    /// Thaws a frozen broker (SIGCONT).
    pub fn thaw(&self) {
        signal(self.pid(), "CONT");
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is running").id()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A frozen broker ignores SIGKILL until it is thawed.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
    }
}
