//! A child process under test (the `shadowbox` binary, a broker, a
//! command-line client): spawned with its output captured, stopped with
//! SIGTERM and a bounded wait, killed when dropped even if the test
//! panics, and its output shown when the test fails.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use crate::process::signal;
use crate::wait::{PATIENCE, eventually, eventually_blocking};

/// Most bytes of captured output shown when a test fails.
const SHOWN_ON_FAILURE: usize = 8 * 1024;

/// A running child process, killed when dropped.
pub struct ChildProcess {
    name: String,
    child: Child,
    output: tempfile::TempDir,
}

impl ChildProcess {
    /// Spawns `command` as `name` (for messages), stdin closed, stdout and
    /// stderr captured.
    pub fn spawn(name: &str, command: &mut Command) -> Self {
        let output = tempfile::tempdir().expect("temp dir");
        command
            .stdin(Stdio::null())
            .stdout(create(output.path().join("stdout")))
            .stderr(create(output.path().join("stderr")));
        Self::start(name, command, output)
    }

    /// Spawns `command` as `name` with its stdout piped to the caller, who
    /// reads it as it comes; stderr is captured.
    pub fn spawn_reading_stdout(name: &str, command: &mut Command) -> (Self, ChildStdout) {
        let output = tempfile::tempdir().expect("temp dir");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(create(output.path().join("stderr")));
        let mut process = Self::start(name, command, output);
        let stdout = process.child.stdout.take().expect("piped stdout");
        (process, stdout)
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "the guard itself: the child is killed when it is dropped"
    )]
    fn start(name: &str, command: &mut Command, output: tempfile::TempDir) -> Self {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({command:?}): {e}"));
        Self {
            name: name.to_owned(),
            child,
            output,
        }
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// What it wrote to stdout so far (empty when piped to the caller).
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.captured("stdout")).into_owned()
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.captured("stderr")).into_owned()
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("wait for {}: {e}", self.name))
    }

    /// Sends it `signal` (e.g. `HUP`, `STOP`).
    pub fn signal(&self, signal_name: &str) {
        signal(self.id(), signal_name);
    }

    /// Kills it at once (SIGKILL), as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (bounded by [`PATIENCE`]) for it to exit;
    /// its exit status.
    pub async fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        let what = format!("{} exits after SIGTERM", self.name);
        let mut status = None;
        eventually(PATIENCE, &what, || {
            status = status.or_else(|| self.try_wait());
            std::future::ready(status.is_some())
        })
        .await;
        status.expect("exited")
    }

    /// Waits (bounded by `timeout`) for it to exit on its own, without a
    /// runtime; its exit status. Past `timeout` it is killed and the test
    /// fails.
    pub fn wait_blocking(&mut self, timeout: Duration) -> ExitStatus {
        let what = format!("{} exits", self.name);
        let mut status = None;
        eventually_blocking(timeout, &what, || {
            status = status.or_else(|| self.try_wait());
            status.is_some()
        });
        status.expect("exited")
    }

    fn captured(&self, stream: &str) -> Vec<u8> {
        std::fs::read(self.output.path().join(stream)).unwrap_or_default()
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
        if std::thread::panicking() {
            for stream in ["stdout", "stderr"] {
                let text = self.captured(stream);
                let tail = &text[text.len().saturating_sub(SHOWN_ON_FAILURE)..];
                if !tail.is_empty() {
                    eprintln!(
                        "--- the end of {}'s {stream} ---\n{}",
                        self.name,
                        String::from_utf8_lossy(tail)
                    );
                }
            }
        }
    }
}

/// Runs `command` to its end, bounded by `timeout` (past it the command is
/// killed and the test fails); its status and captured output.
pub fn run_bounded(command: &mut Command, timeout: Duration) -> Output {
    let name = command.get_program().to_string_lossy().into_owned();
    let mut process = ChildProcess::spawn(&name, command);
    let status = process.wait_blocking(timeout);
    Output {
        status,
        stdout: process.captured("stdout"),
        stderr: process.captured("stderr"),
    }
}

fn create(path: PathBuf) -> File {
    File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()))
}
