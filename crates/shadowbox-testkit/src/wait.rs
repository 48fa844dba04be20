//! Waiting for a condition with a deadline instead of sleeping blindly.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen soon: generous,
/// so that a loaded machine slows a test down without failing it.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How often [`eventually`] checks again.
const POLL: Duration = Duration::from_millis(100);

/// How often [`eventually_blocking`] checks again: its conditions are cheap
/// local checks (a port, a child process).
const POLL_BLOCKING: Duration = Duration::from_millis(20);

/// Polls `check` until it holds or `timeout` passes; panics with `what`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {timeout:?}: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for synchronous code (tests without a runtime, and the
/// start-up of the private servers): polls `check` until it holds or
/// `timeout` passes; panics with `what`.
#[expect(
    clippy::disallowed_methods,
    reason = "the one blocking poll, for code with no runtime to yield to"
)]
pub fn eventually_blocking(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "not within {timeout:?}: {what}");
        std::thread::sleep(POLL_BLOCKING);
    }
}
