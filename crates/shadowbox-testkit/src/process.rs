//! Ports and signals for the private servers.

use std::collections::BTreeSet;
use std::hash::{BuildHasher as _, Hasher as _, RandomState};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::wait::eventually_blocking;

/// Where [`free_port`] looks when the kernel's ephemeral range cannot be
/// read (Linux's default range starts at 32768).
const PORTS_FROM: u16 = 10_000;

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago, and
/// that no other call of this process handed out.
///
/// It is taken below the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`): a port from that range can
/// become the local end of any outgoing connection (a database pool, a
/// broker probe, a NATS route) between this call and the server's bind,
/// which then fails with "address in use".
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    if ephemeral_from > PORTS_FROM + 1000 {
        let span = u64::from(ephemeral_from - PORTS_FROM);
        for _ in 0..1000 {
            let offset = RandomState::new().build_hasher().finish() % span;
            let port = PORTS_FROM + u16::try_from(offset).expect("below the range's start");
            if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                handed_out.insert(port);
                return port;
            }
        }
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port();
    handed_out.insert(port);
    port
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
