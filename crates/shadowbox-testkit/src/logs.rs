//! Logs of the code under test in the test's output.

/// Sends `tracing` logs to the test output (`warn` and above unless
/// `RUST_LOG` says otherwise); once per test binary, later calls do nothing.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
}
