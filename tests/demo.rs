//! `scripts/demo.sh` as a new user runs it: after a `shadowbox serve` with
//! the defaults was started and stopped on the same broker. That serve's
//! ingester leaves a persistent session in the default share group, and
//! the broker keeps routing a share of the group's reports to it; the demo
//! must not depend on that group.
//!
//! Runs on a private broker and a database of its own, so the shared
//! servers and other runs of the demo are left alone.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use shadowbox_testkit::{
    ChildProcess, Mosquitto, PATIENCE, TestDb, eventually, free_port, run_bounded,
};

/// Longest the demo may take.
const DEMO_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn the_demo_gets_in_sync_beside_a_stopped_serves_session() {
    let broker = Mosquitto::start();

    // The README's `serve`: default share group and ingester client id.
    let serve_db = TestDb::new().await;
    let mut serve = ChildProcess::spawn(
        "shadowbox serve",
        Command::new(env!("CARGO_BIN_EXE_shadowbox"))
            .arg("serve")
            .env("DATABASE_URL", &serve_db.url)
            .env("MQTT_URL", broker.url())
            .env("SHADOWBOX_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("SHADOWBOX_ADMIN_TOKEN", "dev-admin-token")
            .env("RUST_LOG", "info"),
    );
    eventually(PATIENCE, "the ingester subscribes", || {
        std::future::ready(serve.stderr().contains("$share/shadowbox/"))
    })
    .await;
    assert!(serve.terminate().await.success(), "serve stopped cleanly");

    let demo_db = TestDb::new().await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh");
    let demo = run_bounded(
        Command::new(script)
            .env("SHADOWBOX_BIN", env!("CARGO_BIN_EXE_shadowbox"))
            .env("MQTT_URL", broker.url())
            .env("DEMO_DATABASE_URL", &demo_db.url)
            .env("DEMO_HTTP_ADDR", format!("127.0.0.1:{}", free_port())),
        DEMO_TIMEOUT,
    );
    let output =
        String::from_utf8_lossy(&demo.stdout).into_owned() + &String::from_utf8_lossy(&demo.stderr);
    assert!(demo.status.success(), "the demo failed:\n{output}");
    assert!(output.contains("all 3 devices in sync"), "{output}");
    assert!(output.contains("sim-00001 rejected version 2"), "{output}");
}
