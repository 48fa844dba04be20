//! The metrics listener of the roles without the API, over real HTTP.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use shadowbox_testkit::{free_port, wait_for_port};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn serves_the_registry_and_healthz_until_shutdown() {
    let mut registry = Registry::default();
    let counter = Counter::<u64>::default();
    registry.register("shadowbox_test_events", "Events seen", counter.clone());
    counter.inc_by(3);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(shadowbox_telemetry::serve_metrics(
        addr,
        Arc::new(registry),
        shutdown.clone(),
    ));
    tokio::task::spawn_blocking(move || wait_for_port(port, Duration::from_secs(10)))
        .await
        .unwrap();

    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert_eq!(
        metrics.headers()["content-type"],
        shadowbox_telemetry::metrics::OPENMETRICS_CONTENT_TYPE
    );
    let text = metrics.text().await.unwrap();
    assert!(text.contains("shadowbox_test_events_total 3"), "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the listener stops on shutdown")
        .unwrap()
        .unwrap();
}
