//! Ports and signals for the private servers.

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use crate::wait::eventually_blocking;

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Waits until something accepts connections on `127.0.0.1:port`.
pub fn wait_for_port(port: u16, timeout: Duration) {
    eventually_blocking(
        timeout,
        &format!("something listens on 127.0.0.1:{port}"),
        || TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
}

/// Sends `signal` (e.g. `STOP`, `CONT`, `TERM`) to `pid`.
pub(crate) fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Whether this process runs as root (PostgreSQL refuses to).
pub(crate) fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
