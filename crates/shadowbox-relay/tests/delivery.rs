//! The relay's guarantees against a real PostgreSQL and a private
//! Mosquitto per test, each under MQTT 5 and 3.1.1: delivery confirmed by
//! PUBACK, broker outages that cost nothing, no regression with several
//! replicas, clears, resync.

mod common;

use std::time::Duration;

use common::start_relay;
use serde_json::json;
use shadowbox_testkit::mqtt::{ALL_DESIRED, Client, assert_never_regressed, retained, version_of};
use shadowbox_testkit::{
    Fleet, Mosquitto, PrivatePostgres, Protocol, TestDb, eventually, under_both_protocols,
};

async fn a_patch_ends_retained_with_the_contract_payload_and_delivered(protocol: Protocol) {
    let db = TestDb::new().await;
    let broker = Mosquitto::start();
    let fleet = Fleet::register(&db, 1).await;
    let relay = start_relay(&db.pool, &broker.url(), protocol, |_| {});

    fleet.patch(0, json!({"rate": 5})).await;
    eventually(Duration::from_secs(10), "the row is delivered", || async {
        fleet.statuses().await.get("delivered") == Some(&1)
    })
    .await;

    let retained = retained(&broker.url(), &fleet.topic(0)).await;
    let payload = retained.get(&fleet.topic(0)).expect("a retained message");
    let message: serde_json::Value = serde_json::from_slice(payload).unwrap();
    assert_eq!(message["desired"], json!({"rate": 5}));
    assert_eq!(message["version"], json!(1));
    let timestamp = message["timestamp"].as_str().unwrap();
    assert!(
        timestamp.ends_with('Z') && timestamp.len() == 24,
        "{timestamp}"
    );
    let stored: Vec<u8> = sqlx::query_scalar("SELECT payload FROM outbox")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        &stored, payload,
        "the outbox holds the exact bytes published"
    );
    let (attempts, delivered_at): (i32, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT attempts, delivered_at FROM outbox")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 1);
    assert!(delivered_at.is_some());
    relay.stop().await;
}

async fn a_stopped_broker_costs_nothing_and_everything_lands_after_restart(protocol: Protocol) {
    let db = TestDb::new().await;
    let mut broker = Mosquitto::start();
    let fleet = Fleet::register(&db, 20).await;
    let relay = start_relay(&db.pool, &broker.url(), protocol, |_| {});
    broker.stop();

    for i in 0..20 {
        fleet.patch(i, json!({"v": 1})).await;
        fleet.patch(i, json!({"v": 2})).await;
    }
    // Long enough for several reconnect attempts and polls.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let statuses = fleet.statuses().await;
    assert_eq!(statuses.get("pending"), Some(&20), "{statuses:?}");
    assert_eq!(statuses.get("superseded"), Some(&20), "{statuses:?}");
    let attempts: i64 = sqlx::query_scalar("SELECT coalesce(sum(attempts), 0) FROM outbox")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 0, "nothing is attempted while the broker is down");

    broker.restart(); // no persistence: an empty retained store
    eventually(
        Duration::from_secs(30),
        "every device's newest version is retained",
        || async {
            let retained = retained(&broker.url(), ALL_DESIRED).await;
            retained.len() == 20 && retained.values().all(|p| version_of(p) == 2)
        },
    )
    .await;
    let statuses = fleet.statuses().await;
    assert!(!statuses.contains_key("dead"), "{statuses:?}");
    eventually(Duration::from_secs(10), "rows settle", || async {
        let s = fleet.statuses().await;
        s.get("delivered") == Some(&20) && s.get("superseded") == Some(&20)
    })
    .await;
    relay.stop().await;
}

async fn a_frozen_broker_delivers_nothing_until_it_thaws(protocol: Protocol) {
    let db = TestDb::new().await;
    let broker = Mosquitto::start();
    let fleet = Fleet::register(&db, 1).await;
    let relay = start_relay(&db.pool, &broker.url(), protocol, |s| {
        s.ack_timeout = Duration::from_secs(2);
        s.republish_after_interruption = Duration::from_secs(8);
    });
    fleet.patch(0, json!({"a": 1})).await;
    eventually(Duration::from_secs(10), "first row delivered", || async {
        fleet.statuses().await.get("delivered") == Some(&1)
    })
    .await;

    broker.freeze();
    fleet.patch(0, json!({"a": 2})).await;
    // Past the ack timeout: the relay gave up on the frozen connection.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let statuses = fleet.statuses().await;
    assert_eq!(statuses.get("delivered"), Some(&1), "{statuses:?}");
    assert_eq!(statuses.get("pending"), Some(&1), "{statuses:?}");

    broker.thaw();
    eventually(
        Duration::from_secs(30),
        "delivered after the thaw",
        || async { fleet.statuses().await.get("delivered") == Some(&2) },
    )
    .await;
    let retained = retained(&broker.url(), &fleet.topic(0)).await;
    assert_eq!(version_of(&retained[&fleet.topic(0)]), 2);
    // Bytes of the interrupted publish could have reached the broker late:
    // the device's current state is published once more, later.
    eventually(
        Duration::from_secs(30),
        "the interrupted device is republished",
        || async { fleet.statuses().await.get("delivered") == Some(&3) },
    )
    .await;
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM outbox WHERE status = 'delivered' ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(versions, [1, 2, 2]);
    relay.stop().await;
}

async fn three_replicas_never_regress_a_device(protocol: Protocol) {
    let db = TestDb::new().await;
    let broker = Mosquitto::start();
    let fleet = Fleet::register(&db, 20).await;
    let observer = Client::connect(&broker.url(), "observer").await;
    observer.subscribe(ALL_DESIRED).await;
    let relays: Vec<_> = (0..3)
        .map(|_| {
            start_relay(&db.pool, &broker.url(), protocol, |s| {
                s.batch_size = 8;
                s.workers = 2;
            })
        })
        .collect();

    let fleet = std::sync::Arc::new(fleet);
    // Writers waiting on a device's row lock hold a connection each: a few
    // at a time leave the relays theirs, also on a loaded machine.
    let writing = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
    let writers: Vec<_> = (0..20)
        .flat_map(|device| (0..30).map(move |n| (device, n)))
        .map(|(device, n)| {
            let (fleet, writing) = (fleet.clone(), writing.clone());
            tokio::spawn(async move {
                let _permit = writing.acquire().await.unwrap();
                fleet.patch(device, json!({ "n": n, "by": device })).await
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    fleet
        .wait_until_nothing_pending(Duration::from_secs(30))
        .await;
    assert_never_regressed(&observer.messages());
    let stored = fleet.versions().await;
    let retained = retained(&broker.url(), ALL_DESIRED).await;
    assert_eq!(retained.len(), 20);
    for (i, device) in fleet.devices.iter().enumerate() {
        assert_eq!(stored[device.as_str()], 30);
        assert_eq!(version_of(&retained[&fleet.topic(i)]), 30, "{device}");
    }
    let statuses = fleet.statuses().await;
    assert!(
        statuses.get("superseded").copied().unwrap_or(0) > 0,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.values().sum::<i64>(),
        600,
        "one row per change: {statuses:?}"
    );
    for relay in relays {
        relay.stop().await;
    }
}

async fn decommission_clears_the_retained_message_for_good(protocol: Protocol) {
    let db = TestDb::new().await;
    let broker = Mosquitto::start();
    let fleet = Fleet::register(&db, 1).await;
    let relay = start_relay(&db.pool, &broker.url(), protocol, |_| {});
    fleet.patch(0, json!({"a": 1})).await;
    fleet.patch(0, json!({"a": 2})).await;
    let mut conn = db.pool.acquire().await.unwrap();
    shadowbox_db::devices::decommission_device(
        &mut conn,
        &fleet.tenant,
        &fleet.devices[0],
        shadowbox_core::Actor::Admin,
    )
    .await
    .unwrap();
    eventually(
        Duration::from_secs(10),
        "the clear is delivered",
        || async {
            let kind: Option<String> = sqlx::query_scalar(
                "SELECT kind FROM outbox WHERE status = 'delivered' ORDER BY id DESC LIMIT 1",
            )
            .fetch_optional(&db.pool)
            .await
            .unwrap();
            kind.as_deref() == Some("clear")
        },
    )
    .await;
    // A dead older row revived by an operator must not resurrect the device.
    sqlx::query("UPDATE outbox SET status = 'dead' WHERE kind = 'desired'")
        .execute(&db.pool)
        .await
        .unwrap();
    let old: i64 = sqlx::query_scalar("SELECT min(id) FROM outbox")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    shadowbox_db::outbox::revive_dead(&mut conn, None, old)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the revived row is superseded",
        || async {
            let status: String = sqlx::query_scalar("SELECT status FROM outbox WHERE id = $1")
                .bind(old)
                .fetch_one(&db.pool)
                .await
                .unwrap();
            status == "superseded"
        },
    )
    .await;
    assert!(retained(&broker.url(), ALL_DESIRED).await.is_empty());
    relay.stop().await;
}

async fn resync_restores_retained_state_after_the_broker_lost_it(protocol: Protocol) {
    let db = TestDb::new().await;
    let mut broker = Mosquitto::start();
    let fleet = Fleet::register(&db, 10).await;
    let relay = start_relay(&db.pool, &broker.url(), protocol, |_| {});
    for i in 0..10 {
        fleet.patch(i, json!({"i": i})).await;
    }
    eventually(Duration::from_secs(10), "all delivered", || async {
        fleet.statuses().await.get("delivered") == Some(&10)
    })
    .await;
    broker.kill();
    broker.restart();
    assert!(
        retained(&broker.url(), ALL_DESIRED).await.is_empty(),
        "the broker lost its retained store"
    );
    let enqueued = shadowbox_db::outbox::resync(&db.pool, None).await.unwrap();
    assert_eq!(enqueued, 10);
    eventually(
        Duration::from_secs(30),
        "every device is retained again",
        || async {
            let retained = retained(&broker.url(), ALL_DESIRED).await;
            retained.len() == 10 && retained.values().all(|p| version_of(p) == 1)
        },
    )
    .await;
    relay.stop().await;
}

async fn a_database_restart_loses_nothing_and_delivery_resumes(protocol: Protocol) {
    let postgres = PrivatePostgres::start();
    let pool = shadowbox_db::connect(&postgres.url("shadowbox"), 10)
        .await
        .unwrap();
    shadowbox_db::migrate(&pool).await.unwrap();
    let broker = Mosquitto::start();
    let fleet = Fleet::register_on(&pool, 2).await;
    let relay = start_relay(&pool, &broker.url(), protocol, |_| {});
    fleet.patch(0, json!({"a": 1})).await;
    eventually(
        Duration::from_secs(10),
        "delivered before the restart",
        || async { fleet.statuses().await.get("delivered") == Some(&1) },
    )
    .await;

    postgres.stop();
    // The relay's workers and its LISTEN connection fail while it is down.
    tokio::time::sleep(Duration::from_secs(3)).await;
    postgres.restart();

    // A change committed after the restart is woken up (or polled) and
    // delivered by the same relay.
    eventually(
        Duration::from_secs(20),
        "the database answers again",
        || async { sqlx::query("SELECT 1").execute(&fleet.pool).await.is_ok() },
    )
    .await;
    fleet.patch(1, json!({"b": 2})).await;
    eventually(
        Duration::from_secs(30),
        "delivered after the restart",
        || async { fleet.statuses().await.get("delivered") == Some(&2) },
    )
    .await;
    let retained = retained(&broker.url(), ALL_DESIRED).await;
    assert_eq!(retained.len(), 2);
    assert!(retained.values().all(|p| version_of(p) == 1));
    relay.stop().await;
}

under_both_protocols!(
    a_patch_ends_retained_with_the_contract_payload_and_delivered,
    a_stopped_broker_costs_nothing_and_everything_lands_after_restart,
    a_frozen_broker_delivers_nothing_until_it_thaws,
    three_replicas_never_regress_a_device,
    decommission_clears_the_retained_message_for_good,
    resync_restores_retained_state_after_the_broker_lost_it,
    a_database_restart_loses_nothing_and_delivery_resumes,
);
