//! The operators' commands, run as the real binary against a database with
//! rows in every status.

use std::process::Command;

use serde_json::{Value, json};
use shadowbox_core::payload::Rejection;
use shadowbox_db::reported::{ReceivedRejection, ReportedState, ReportedUpdate, apply_reported};
use shadowbox_testkit::mqtt::Client;
use shadowbox_testkit::{Fleet, Mosquitto, PATIENCE, TestDb, free_port, run_bounded};

/// Runs `shadowbox <args>` on `db` and parses its `--json` output.
fn shadowbox_json(db: &TestDb, args: &[&str]) -> Value {
    let output = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_shadowbox"))
            .args(args)
            .arg("--json")
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn"),
        PATIENCE,
    );
    assert!(
        output.status.success(),
        "shadowbox {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

/// Four devices with one row each, set to each status, plus an old
/// delivered row under a newer one (the only kind purge may delete).
async fn rows_in_every_status(db: &TestDb) -> Fleet {
    let fleet = Fleet::register(db, 4).await;
    for i in 0..4 {
        fleet.patch(i, json!({"v": 1})).await;
    }
    sqlx::query(
        "UPDATE outbox SET status = (ARRAY['pending','delivered','superseded','dead'])[
           substring(device_id FROM 5)::int + 1], last_error = 'refused'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    // dev-001: an old delivered row, then a newer delivered one.
    sqlx::query(
        "UPDATE outbox SET created_at = now() - interval '30 days' WHERE device_id = 'dev-001'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    fleet.patch(1, json!({"v": 2})).await;
    sqlx::query("UPDATE outbox SET status = 'delivered' WHERE device_id = 'dev-001'")
        .execute(&db.pool)
        .await
        .unwrap();
    fleet
}

#[tokio::test]
async fn status_list_retry_and_purge() {
    let db = TestDb::new().await;
    let _fleet = rows_in_every_status(&db).await;

    let status = shadowbox_json(&db, &["outbox", "status"]);
    let counts: Vec<(String, i64)> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_owned(),
                r["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("dead", 1),
            ("delivered", 2),
            ("pending", 1),
            ("superseded", 1)
        ]
        .map(|(s, c)| (s.to_owned(), c))
    );

    let dead = shadowbox_json(&db, &["outbox", "list", "--status", "dead"]);
    let dead = dead.as_array().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["device_id"], "dev-003");
    assert_eq!(dead[0]["last_error"], "refused");
    let of_device = shadowbox_json(
        &db,
        &["outbox", "list", "--tenant", "acme", "--device", "dev-001"],
    );
    let versions: Vec<i64> = of_device
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1], "newest first");
    let recent = shadowbox_json(&db, &["outbox", "list", "--since", "1d"]);
    assert_eq!(
        recent.as_array().unwrap().len(),
        4,
        "the 30-day-old row is not recent"
    );

    let id = dead[0]["id"].as_i64().unwrap().to_string();
    assert_eq!(
        shadowbox_json(&db, &["outbox", "retry", &id]),
        json!({"revived": 1})
    );
    let (status, attempts): (String, i32) =
        sqlx::query_as("SELECT status, attempts FROM outbox WHERE device_id = 'dev-003'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("pending", 0));
    assert_eq!(
        shadowbox_json(&db, &["outbox", "retry", "--all-dead"]),
        json!({"revived": 0})
    );

    assert_eq!(
        shadowbox_json(&db, &["outbox", "purge", "--older-than", "7d"]),
        json!({"deleted": 1}),
        "only the old delivered row under a newer one"
    );
    let left: Vec<(String, String)> =
        sqlx::query_as("SELECT device_id, status FROM outbox ORDER BY device_id, id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let left: Vec<(&str, &str)> = left.iter().map(|(d, s)| (d.as_str(), s.as_str())).collect();
    assert_eq!(
        left,
        [
            ("dev-000", "pending"),
            ("dev-001", "delivered"),
            ("dev-002", "superseded"),
            ("dev-003", "pending"),
        ]
    );
}

#[tokio::test]
async fn resync_enqueues_every_active_device_with_desired_state() {
    let db = TestDb::new().await;
    let fleet = Fleet::register(&db, 3).await;
    fleet.patch(0, json!({"a": 1})).await;
    fleet.patch(1, json!({"a": 1})).await;
    let mut conn = db.pool.acquire().await.unwrap();
    shadowbox_db::devices::decommission_device(
        &mut conn,
        &fleet.tenant,
        &fleet.devices[1],
        shadowbox_core::Actor::Admin,
    )
    .await
    .unwrap();
    // dev-000 has desired state, dev-001 is decommissioned (its clear is
    // enqueued again), dev-002 never had any.
    assert_eq!(
        shadowbox_json(&db, &["outbox", "resync", "--tenant", "acme"]),
        json!({"enqueued": 2})
    );
    let newest: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT DISTINCT ON (device_id) device_id, kind, version FROM outbox
         ORDER BY device_id, id DESC",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        newest,
        [
            ("dev-000".into(), "desired".into(), 1),
            ("dev-001".into(), "clear".into(), 1)
        ]
    );
    assert_eq!(
        shadowbox_json(&db, &["outbox", "resync", "--tenant", "other"]),
        json!({"enqueued": 0})
    );
}

#[tokio::test]
async fn devices_lagging_lists_those_that_have_not_applied_in_time() {
    let db = TestDb::new().await;
    let fleet = Fleet::register(&db, 4).await;
    for i in 0..4 {
        fleet.patch(i, json!({"fw": "2.4.1"})).await;
    }
    // dev-000..002 committed 10 minutes ago, dev-003 just now; dev-001
    // applied it, dev-002 refused it.
    sqlx::query(
        "UPDATE device_state SET desired_committed_at = now() - interval '10 minutes'
         WHERE device_id <> 'dev-003'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let now = chrono::Utc::now();
    let report = |device: &str, version, rejected: Option<&str>| ReportedUpdate {
        tenant_id: shadowbox_core::TenantId::parse("acme").unwrap(),
        device_id: shadowbox_core::DeviceId::parse(device).unwrap(),
        reported: Some(ReportedState {
            document: serde_json::Map::new(),
            version,
            received_at: now,
        }),
        rejection: rejected.map(|reason| ReceivedRejection {
            rejection: Rejection {
                version: 1,
                reason: reason.to_owned(),
            },
            received_at: now,
        }),
        seen_at: now,
    };
    apply_reported(
        &db.pool,
        &[
            report("dev-001", 1, None),
            report("dev-002", 0, Some("no flash")),
        ],
    )
    .await
    .unwrap();

    let lagging = shadowbox_json(
        &db,
        &[
            "devices",
            "lagging",
            "--tenant",
            "acme",
            "--older-than",
            "5m",
        ],
    );
    let lagging = lagging.as_array().unwrap();
    let ids: Vec<&str> = lagging
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["dev-000", "dev-002"]);
    assert_eq!(lagging[0]["rejection"], json!(null));
    assert_eq!(lagging[1]["rejection"]["reason"], "no flash");
    assert_eq!(lagging[1]["desired_version"], 1);
    assert!(lagging[0]["waiting_seconds"].as_f64().unwrap() >= 600.0);
    let none = shadowbox_json(
        &db,
        &[
            "devices",
            "lagging",
            "--tenant",
            "acme",
            "--older-than",
            "1h",
        ],
    );
    assert_eq!(none, json!([]));
}

/// `outbox reconcile` on a private broker: the dry run lists every
/// difference (the `newer` one with both versions) and changes nothing;
/// the real run enqueues one republish per difference and prints a table.
#[tokio::test]
async fn reconcile_lists_the_differences_and_a_dry_run_changes_nothing() {
    let db = TestDb::new().await;
    let broker = Mosquitto::start();
    let fleet = Fleet::register(&db, 3).await;
    for i in 0..3 {
        fleet.patch(i, json!({"a": i})).await;
    }
    // Delivered as far as the database knows; the broker retains only
    // what the admin client below puts there.
    sqlx::query("UPDATE outbox SET status = 'delivered', delivered_at = now()")
        .execute(&db.pool)
        .await
        .unwrap();
    let admin = Client::connect(&broker.url(), "admin").await;
    admin
        .publish_retained(
            fleet.topic(1),
            br#"{"desired":{"a":7},"version":7,"timestamp":"2026-11-27T04:00:00.000Z"}"#.to_vec(),
        )
        .await;
    admin.publish_retained(fleet.topic(2), b"{}".to_vec()).await;
    let reconcile = |extra: &[&str]| {
        let mut args = vec!["outbox", "reconcile", "--tenant", "acme"];
        args.extend_from_slice(extra);
        run_bounded(
            Command::new(env!("CARGO_BIN_EXE_shadowbox"))
                .args(&args)
                .env("DATABASE_URL", &db.url)
                .env("MQTT_URL", broker.url())
                .env("RUST_LOG", "warn"),
            PATIENCE,
        )
    };

    let output = reconcile(&["--dry-run", "--json"]);
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["dry_run"], json!(true));
    assert_eq!(report["republished"], json!(0));
    assert_eq!(
        report["by_kind"],
        json!({"missing": 1, "newer": 1, "malformed": 1})
    );
    assert_eq!(
        report["differences"][1],
        json!({"tenant_id": "acme", "device_id": "dev-001", "kind": "newer",
               "retained_version": 7, "database_version": 1, "status": "active"})
    );
    let rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox")
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    assert_eq!(rows().await, 3, "a dry run enqueues nothing");

    let output = reconcile(&[]);
    assert!(output.status.success(), "{output:?}");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("TENANT") && table.contains("dev-001") && table.contains("newer"),
        "{table}"
    );
    assert!(table.contains("3 differences"), "{table}");
    assert_eq!(rows().await, 6, "one republish per difference");
}

/// A duration too long to subtract from now is refused when the command
/// line is read, by the commands that take an age and by the relay's
/// retention alike; none of them panics later (chrono panics on a date
/// before its calendar).
#[tokio::test]
async fn durations_past_a_century_are_refused_when_read() {
    let db = TestDb::new().await;
    let cases: [(&[&str], Option<&str>); 5] = [
        (&["outbox", "purge", "--older-than", "100000000d"], None),
        (&["outbox", "list", "--since", "100000000d"], None),
        (&["relay"], Some("SHADOWBOX_OUTBOX_RETENTION")),
        (&["relay"], Some("SHADOWBOX_HISTORY_RETENTION")),
        (&["relay"], Some("SHADOWBOX_EVENTS_RETENTION")),
    ];
    for (args, variable) in cases {
        let mut command = Command::new(env!("CARGO_BIN_EXE_shadowbox"));
        command
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env("MQTT_URL", format!("mqtt://127.0.0.1:{}", free_port()))
            .env("RUST_LOG", "warn");
        if let Some(variable) = variable {
            command.env(variable, "100000000d");
        }
        let output = run_bounded(&mut command, PATIENCE);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?} {variable:?}: a usage error, at once: {stderr}"
        );
        assert!(
            stderr.contains("\"100000000d\" is too long: at most 36500d (100 years)"),
            "{args:?} {variable:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // The longest accepted age works.
    assert_eq!(
        shadowbox_json(&db, &["outbox", "purge", "--older-than", "36500d"]),
        json!({"deleted": 0})
    );
    assert_eq!(
        shadowbox_json(&db, &["outbox", "list", "--since", "36500d"]),
        json!([])
    );
}

#[tokio::test]
async fn rollout_commands_create_show_list_and_steer() {
    let db = TestDb::new().await;
    let fleet = Fleet::register(&db, 10).await;
    let tenant = fleet.tenant.to_string();
    let created = shadowbox_json(
        &db,
        &[
            "rollout",
            "create",
            "--tenant",
            &tenant,
            "--all",
            "--patch",
            r#"{"fw": "2"}"#,
            "--waves",
            "0.5,1",
            "--wave-timeout",
            "10m",
        ],
    );
    assert_eq!(created["status"], "running");
    assert_eq!(created["selected"], 10);
    assert_eq!(created["waves"][0]["size"], 5);
    assert_eq!(created["wave_timeout_ms"], 600_000);
    let id = created["id"].as_i64().unwrap().to_string();
    let read = shadowbox_json(&db, &["rollout", "get", &id, "--tenant", &tenant]);
    assert_eq!(read["id"], created["id"]);
    let listed = shadowbox_json(&db, &["rollout", "list", "--tenant", &tenant]);
    assert_eq!(listed[0]["id"], created["id"]);
    let paused = shadowbox_json(&db, &["rollout", "pause", &id, "--tenant", &tenant]);
    assert_eq!(paused["status"], "paused");
    // Pausing twice is refused, with the reason.
    let again = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_shadowbox"))
            .args(["rollout", "pause", &id, "--tenant", &tenant])
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn"),
        PATIENCE,
    );
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("cannot become paused"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let cancelled = shadowbox_json(&db, &["rollout", "cancel", &id, "--tenant", &tenant]);
    assert_eq!(cancelled["status"], "cancelled");
    let rolled_back = shadowbox_json(&db, &["rollout", "rollback", &id, "--tenant", &tenant]);
    assert_eq!(rolled_back["status"], "rolled_back");
    // A table for people, too.
    let table = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_shadowbox"))
            .args(["rollout", "status", &id, "--tenant", &tenant])
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn"),
        PATIENCE,
    );
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("WAVE") && text.contains("rolled_back"),
        "{text}"
    );
}
