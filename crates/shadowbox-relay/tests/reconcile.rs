//! The reconciler against a real PostgreSQL and a private Mosquitto per
//! test: retained messages deleted or rolled back behind shadowbox's back,
//! and a broker restarted without persistence, are each repaired within
//! one reconcile interval and counted by kind; a dry run changes nothing;
//! slices small enough for a broker's queue see every device.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::start_relay;
use serde_json::json;
use shadowbox_core::document::into_document;
use shadowbox_core::payload::encode_desired;
use shadowbox_relay::reconcile::{self, DifferenceKind, PassOptions, PassReport, RetainedReader};
use shadowbox_testkit::mqtt::{ALL_DESIRED, Client, retained, version_of};
use shadowbox_testkit::{
    Fleet, Mosquitto, MosquittoConfig, Protocol, TestDb, eventually, under_both_protocols,
};

/// The reconcile interval of these tests' relays.
const INTERVAL: Duration = Duration::from_secs(2);

/// How long a repair may take: one interval, plus the pass and the
/// republish (generous for a loaded machine).
const ONE_INTERVAL: Duration = Duration::from_secs(2 + 8);

fn differences(kind: &str) -> String {
    format!("shadowbox_reconcile_differences_total{{kind=\"{kind}\"}}")
}

/// A desired payload of `version` with document `doc`.
fn desired(version: i64, doc: serde_json::Value) -> Vec<u8> {
    encode_desired(&into_document(doc).unwrap(), version, chrono::Utc::now())
}

/// Waits until every device of `fleet` with a desired version has it
/// retained, and nothing else is retained.
async fn wait_converged(broker: &Mosquitto, fleet: &Fleet, within: Duration, what: &str) {
    let mut expected = fleet.versions().await;
    expected.retain(|_, version| *version > 0);
    eventually(within, what, || async {
        let retained = retained(&broker.url(), ALL_DESIRED).await;
        retained_versions(&retained) == expected
    })
    .await;
}

fn retained_versions(retained: &HashMap<String, Vec<u8>>) -> HashMap<String, i64> {
    retained
        .iter()
        .map(|(topic, payload)| {
            let device = topic.split('/').nth(3).unwrap().to_owned();
            (device, version_of(payload))
        })
        .collect()
}

/// Runs one pass as `shadowbox outbox reconcile` does.
async fn one_pass(
    db: &TestDb,
    broker: &Mosquitto,
    protocol: Protocol,
    slice: usize,
    dry_run: bool,
) -> PassReport {
    let config = broker
        .url()
        .parse::<shadowbox_mqtt::MqttConfig>()
        .unwrap()
        .with_protocol(protocol);
    let mut reader = RetainedReader::connect_first(&config, "test-reconcile")
        .await
        .unwrap();
    let options = PassOptions {
        tenant: None,
        slice,
        dry_run,
    };
    let report = reconcile::pass(&db.pool, &mut reader, &options)
        .await
        .unwrap();
    reader.close().await;
    report
}

async fn deleted_retained_messages_come_back_within_an_interval(protocol: Protocol) {
    let db = TestDb::new().await;
    let broker = Mosquitto::start();
    let fleet = Fleet::register(&db, 6).await;
    let relay = start_relay(&db.pool, &broker.url(), protocol, |s| {
        s.reconcile_interval = Some(INTERVAL);
    });
    for i in 0..6 {
        fleet.patch(i, json!({"rate": i})).await;
    }
    fleet
        .wait_until_nothing_pending(Duration::from_secs(10))
        .await;
    wait_converged(&broker, &fleet, Duration::from_secs(10), "delivered").await;

    // An admin client deletes two retained messages behind shadowbox's back.
    let admin = Client::connect(&broker.url(), "admin").await;
    admin.publish_retained(fleet.topic(1), Vec::new()).await;
    admin.publish_retained(fleet.topic(4), Vec::new()).await;
    wait_converged(
        &broker,
        &fleet,
        ONE_INTERVAL,
        "the deleted messages are back",
    )
    .await;
    relay.wait_metric(&differences("missing"), 2.0).await;
    assert_eq!(relay.metric(&differences("older")), 0.0);
    assert_eq!(relay.metric(&differences("newer")), 0.0);
    assert!(relay.metric("shadowbox_reconcile_passes_total") >= 1.0);
    let versions = fleet.versions().await;
    assert!(
        versions.values().all(|v| *v == 1),
        "a republish makes no new version: {versions:?}"
    );
    relay.stop().await;
}

async fn an_older_version_published_over_a_newer_one_is_replaced(protocol: Protocol) {
    let db = TestDb::new().await;
    let broker = Mosquitto::start();
    let fleet = Fleet::register(&db, 3).await;
    let relay = start_relay(&db.pool, &broker.url(), protocol, |s| {
        s.reconcile_interval = Some(INTERVAL);
    });
    fleet.patch(0, json!({"a": 1})).await;
    fleet.patch(0, json!({"a": 2})).await;
    fleet.patch(0, json!({"a": 3})).await;
    fleet.patch(2, json!({"b": 1})).await;
    fleet
        .wait_until_nothing_pending(Duration::from_secs(10))
        .await;
    wait_converged(&broker, &fleet, Duration::from_secs(10), "delivered").await;

    let admin = Client::connect(&broker.url(), "admin").await;
    admin
        .publish_retained(fleet.topic(0), desired(1, json!({"a": 1})))
        .await;
    wait_converged(&broker, &fleet, ONE_INTERVAL, "version 3 is back").await;
    relay.wait_metric(&differences("older"), 1.0).await;
    assert_eq!(relay.metric(&differences("missing")), 0.0);
    relay.stop().await;
}

under_both_protocols!(
    deleted_retained_messages_come_back_within_an_interval,
    an_older_version_published_over_a_newer_one_is_replaced
);

#[tokio::test]
async fn a_broker_restarted_without_its_retained_store_is_refilled_after_the_reconnect() {
    let db = TestDb::new().await;
    let mut broker = Mosquitto::start();
    let fleet = Fleet::register(&db, 10).await;
    // The interval is long: only the pass after the reconnect can repair.
    let relay = start_relay(&db.pool, &broker.url(), Protocol::V5, |s| {
        s.reconcile_interval = Some(Duration::from_secs(3600));
    });
    for i in 0..10 {
        fleet.patch(i, json!({"on": true})).await;
    }
    fleet
        .wait_until_nothing_pending(Duration::from_secs(10))
        .await;
    wait_converged(&broker, &fleet, Duration::from_secs(10), "delivered").await;
    let delivered = fleet.statuses().await["delivered"];

    broker.restart(); // no persistence: an empty retained store
    wait_converged(
        &broker,
        &fleet,
        ONE_INTERVAL,
        "every device is retained again",
    )
    .await;
    relay.wait_metric(&differences("missing"), 10.0).await;
    let statuses = fleet.statuses().await;
    assert_eq!(
        statuses["delivered"],
        delivered + 10,
        "one republish per device: {statuses:?}"
    );
    relay.stop().await;
}

#[tokio::test]
async fn a_dry_run_reports_every_kind_and_changes_nothing_then_a_pass_repairs() {
    let db = TestDb::new().await;
    let broker = Mosquitto::start();
    let fleet = Fleet::register(&db, 7).await;
    let relay = start_relay(&db.pool, &broker.url(), Protocol::V5, |s| {
        s.reconcile_interval = None;
    });
    for i in 0..6 {
        fleet.patch(i, json!({"n": i})).await;
        fleet.patch(i, json!({"n": i + 10})).await;
    }
    fleet
        .wait_until_nothing_pending(Duration::from_secs(10))
        .await;
    relay.stop().await;
    let mut conn = db.pool.acquire().await.unwrap();
    shadowbox_db::devices::decommission_device(
        &mut conn,
        &fleet.tenant,
        &fleet.devices[5],
        shadowbox_core::history::Actor::Admin,
    )
    .await
    .unwrap();
    drop(conn);
    // The clear of dev-005 is pending; deliver it.
    let relay = start_relay(&db.pool, &broker.url(), Protocol::V5, |s| {
        s.reconcile_interval = None;
    });
    fleet
        .wait_until_nothing_pending(Duration::from_secs(10))
        .await;
    relay.stop().await;

    let admin = Client::connect(&broker.url(), "admin").await;
    admin.publish_retained(fleet.topic(0), Vec::new()).await; // missing
    admin
        .publish_retained(fleet.topic(1), desired(1, json!({"n": 1})))
        .await; // older
    admin
        .publish_retained(fleet.topic(2), desired(9, json!({"n": 99})))
        .await; // newer
    admin
        .publish_retained(fleet.topic(3), b"garbage".to_vec())
        .await; // malformed
    admin
        .publish_retained(fleet.topic(5), desired(2, json!({"n": 15})))
        .await; // decommissioned: not cleared
    admin
        .publish_retained(fleet.topic(6), desired(0, json!({})))
        .await; // version 0: not cleared
    admin
        .publish_retained("tenant/acme/device/ghost/shadow/desired", b"{}".to_vec())
        .await; // unknown
    let before_rows = fleet.statuses().await;
    let before_retained = retained(&broker.url(), ALL_DESIRED).await;

    let report = one_pass(&db, &broker, Protocol::V5, 500, true).await;
    let kinds: HashMap<String, DifferenceKind> = report
        .differences
        .iter()
        .map(|d| (d.device_id.as_str().to_owned(), d.kind))
        .collect();
    assert_eq!(
        kinds,
        HashMap::from([
            ("dev-000".to_owned(), DifferenceKind::Missing),
            ("dev-001".to_owned(), DifferenceKind::Older),
            ("dev-002".to_owned(), DifferenceKind::Newer),
            ("dev-003".to_owned(), DifferenceKind::Malformed),
            ("dev-005".to_owned(), DifferenceKind::NotCleared),
            ("dev-006".to_owned(), DifferenceKind::NotCleared),
        ]),
        "{report:#?}"
    );
    let newer = report
        .differences
        .iter()
        .find(|d| d.kind == DifferenceKind::Newer)
        .unwrap();
    assert_eq!(
        (newer.retained_version, newer.database_version),
        (Some(9), 2)
    );
    assert_eq!(
        (report.unknown, report.republished, report.devices),
        (1, 0, 7)
    );
    assert_eq!((report.unread, report.in_flight), (0, 0));
    assert_eq!(
        fleet.statuses().await,
        before_rows,
        "a dry run enqueues nothing"
    );
    assert_eq!(
        retained(&broker.url(), ALL_DESIRED).await,
        before_retained,
        "a dry run publishes nothing"
    );

    let report = one_pass(&db, &broker, Protocol::V5, 500, false).await;
    assert_eq!((report.differences.len(), report.republished), (6, 6));
    let relay = start_relay(&db.pool, &broker.url(), Protocol::V5, |s| {
        s.reconcile_interval = None;
    });
    fleet
        .wait_until_nothing_pending(Duration::from_secs(10))
        .await;
    relay.stop().await;
    let mut after = retained(&broker.url(), ALL_DESIRED).await;
    let ghost = after.remove("tenant/acme/device/ghost/shadow/desired");
    assert_eq!(
        ghost.as_deref(),
        Some(&b"{}"[..]),
        "the unknown device is left alone"
    );
    let expected: HashMap<String, i64> = (0..5).map(|i| (format!("dev-{i:03}"), 2)).collect();
    assert_eq!(retained_versions(&after), expected);
    assert_eq!(
        &after[&fleet.topic(4)],
        &before_retained[&fleet.topic(4)],
        "an agreeing device is not republished"
    );
    let report = one_pass(&db, &broker, Protocol::V5, 500, true).await;
    assert!(report.differences.is_empty(), "{report:#?}");
}

/// A broker that queues at most 10 messages for a client and sends one
/// at a time (3.1.1): a wildcard read of 30 retained messages would lose
/// most of them. Slices of 5 device topics read everything.
#[tokio::test]
async fn slices_within_the_broker_s_queue_see_every_device() {
    let db = TestDb::new().await;
    let broker = Mosquitto::start_with(MosquittoConfig {
        extra: "max_queued_messages 10\nmax_inflight_messages 1\n".into(),
        ..MosquittoConfig::default()
    });
    let fleet = Fleet::register(&db, 30).await;
    let relay = start_relay(&db.pool, &broker.url(), Protocol::V311, |s| {
        s.reconcile_interval = None;
    });
    for i in 0..30 {
        fleet.patch(i, json!({"x": i})).await;
    }
    fleet
        .wait_until_nothing_pending(Duration::from_secs(20))
        .await;
    relay.stop().await;
    let admin = Client::connect(&broker.url(), "admin").await;
    for i in [3, 17, 29] {
        admin.publish_retained(fleet.topic(i), Vec::new()).await;
    }

    let report = one_pass(&db, &broker, Protocol::V311, 5, true).await;
    let missing: Vec<&str> = report
        .differences
        .iter()
        .map(|d| d.device_id.as_str())
        .collect();
    assert_eq!(missing, ["dev-003", "dev-017", "dev-029"], "{report:#?}");
    assert!(
        report
            .differences
            .iter()
            .all(|d| d.kind == DifferenceKind::Missing)
    );
    assert_eq!((report.devices, report.unread), (30, 0));
    assert_eq!(report.broker_reads, 6, "six slices of five");
    assert_eq!(report.broker_messages, 27);
}
