//! The `shadowbox` binary against brokers that ask more than an anonymous
//! connect: a Mosquitto with a password file, logged in to with
//! `SHADOWBOX_MQTT_PASSWORD_FILE`. A wrong password is refused with a clear
//! reason on `/readyz` and in the log, the process keeps retrying, and
//! delivers as soon as the broker accepts the password.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use shadowbox_testkit::mqtt::{ALL_DESIRED, retained, version_of};
use shadowbox_testkit::{
    ChildProcess, Fleet, Mosquitto, MosquittoConfig, Protocol, TestDb, eventually, free_port,
    run_bounded, under_both_protocols, wait_for_port,
};

/// Sets `user`'s password in Mosquitto's password file `file` (created if
/// missing), with Mosquitto's own tool, as an operator does.
fn set_broker_password(file: &Path, user: &str, password: &str) {
    let mut command = Command::new("mosquitto_passwd");
    if !file.exists() {
        command.arg("-c");
    }
    command.arg("-b").arg(file).args([user, password]);
    let output = run_bounded(&mut command, Duration::from_secs(10));
    assert!(
        output.status.success(),
        "mosquitto_passwd: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `/readyz`: its status code and body.
async fn readyz(port: u16) -> (u16, String) {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .expect("/readyz answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

async fn a_wrong_password_is_refused_clearly_and_retried_until_the_broker_takes_it(
    protocol: Protocol,
) {
    let db = TestDb::new().await;
    let files = tempfile::tempdir().unwrap();
    let broker_passwords = files.path().join("broker.passwd");
    set_broker_password(&broker_passwords, "relay", "the-right-one");
    // Anonymous clients (the test's observers) may still connect; a client
    // that names a user must give its password.
    let broker = Mosquitto::start_with(MosquittoConfig {
        extra: format!("password_file {}\n", broker_passwords.display()),
        ..MosquittoConfig::default()
    });
    let password_file = files.path().join("mqtt-password");
    std::fs::write(&password_file, "a-wrong-one\n").unwrap();
    let fleet = Fleet::register(&db, 1).await;
    fleet.patch(0, json!({"rate": 5})).await;

    let port = free_port();
    let broker_url = broker.url();
    let mut serve = ChildProcess::spawn(
        "shadowbox serve",
        Command::new(env!("CARGO_BIN_EXE_shadowbox"))
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("MQTT_URL", broker_url.replace("mqtt://", "mqtt://relay@"))
            .env("SHADOWBOX_MQTT_PASSWORD_FILE", &password_file)
            .env("SHADOWBOX_MQTT_PROTOCOL", protocol.to_string())
            .env("SHADOWBOX_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn"),
    );
    wait_for_port(port, Duration::from_secs(30));

    // Refused: /readyz names the broker and why, the log says so on every
    // attempt, and no row is attempted while there is no connection.
    eventually(
        Duration::from_secs(20),
        "/readyz names the refused login",
        || async {
            let (status, body) = readyz(port).await;
            status == 503
                && body.contains(&broker_url)
                && body.contains("the broker refused the connection")
        },
    )
    .await;
    eventually(
        Duration::from_secs(20),
        "the relay and ingester retry the refused login",
        || async {
            let log = serve.stderr();
            log.matches("the broker refused the connection").count() >= 4
        },
    )
    .await;
    assert!(
        !serve.stderr().contains("a-wrong-one"),
        "the password is never logged"
    );
    assert_eq!(serve.try_wait(), None, "a refused login never stops it");
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM outbox")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 0, "nothing is attempted without a connection");
    assert_eq!(fleet.statuses().await.get("pending"), Some(&1));

    // The broker now takes the password in the file: the same process,
    // retrying, logs in and delivers.
    set_broker_password(&broker_passwords, "relay", "a-wrong-one");
    broker.reload();
    fleet
        .wait_until_nothing_pending(Duration::from_secs(30))
        .await;
    assert_eq!(fleet.statuses().await.get("delivered"), Some(&1));
    let retained = retained(&broker_url, ALL_DESIRED).await;
    assert_eq!(
        retained.get(&fleet.topic(0)).map(|p| version_of(p)),
        Some(1)
    );
    eventually(
        Duration::from_secs(20),
        "/readyz names the broker in use",
        || async {
            let (status, body) = readyz(port).await;
            status == 200 && body.contains(&broker_url)
        },
    )
    .await;
    assert!(serve.terminate().await.success());
}

under_both_protocols!(a_wrong_password_is_refused_clearly_and_retried_until_the_broker_takes_it);
