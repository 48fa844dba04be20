//! A private PostgreSQL cluster for tests that stop or restart the
//! database.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{free_port, running_as_root, wait_for_port};

/// Whether a private cluster flushes its writes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fsync` on, as PostgreSQL ships and users run it: what a benchmark
    /// measures by default.
    Durable,
    /// `fsync=off`: a crash may lose committed data; faster, for tests
    /// that stop and restart the database (never for a figure people
    /// compare without saying so).
    FsyncOff,
}

/// A private cluster under a temp dir on a free port, stopped when dropped.
pub struct PrivatePostgres {
    port: u16,
    dir: tempfile::TempDir,
    durability: Durability,
}

impl PrivatePostgres {
    /// Creates a cluster with `fsync=off` (`initdb`) and starts it: the
    /// tests' cluster.
    pub fn start() -> Self {
        Self::start_with(Durability::FsyncOff)
    }

    /// Creates a cluster of `durability` (`initdb`) and starts it.
    pub fn start_with(durability: Durability) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = Self {
            port: free_port(),
            dir,
            durability,
        };
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(cluster.dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the cluster dir to postgres");
        }
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "--auth=trust", "-N"],
        );
        cluster.restart();
        cluster
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Stops the cluster (fast shutdown: clients are disconnected).
    pub fn stop(&self) {
        let data = self.data_dir();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
    }

    /// Starts the cluster and waits until it accepts connections.
    pub fn restart(&self) {
        let data = self.data_dir();
        let fsync = match self.durability {
            Durability::Durable => "on",
            Durability::FsyncOff => "off",
        };
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync={fsync}",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        );
        wait_for_port(self.port, Duration::from_secs(20));
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let status = as_cluster_owner(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(status.success(), "{program} {args:?} failed");
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = as_cluster_owner("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `program`, run as the `postgres` user when this process is root.
fn as_cluster_owner(program: &str) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", program]);
        command
    } else {
        Command::new(program)
    }
}
