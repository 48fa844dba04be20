//! What the relay does with what a broker refuses or cannot take, and with
//! several brokers: a publish the broker's ACL denies (MQTT 5 reason codes
//! against 3.1.1's silent PUBACK), a row larger than the broker accepts,
//! and failover from a dead broker to the next one in `MQTT_URL`.

mod common;

use std::time::Duration;

use common::start_relay;
use serde_json::json;
use shadowbox_core::document::into_document;
use shadowbox_core::{DeviceId, DocumentLimits, TenantId};
use shadowbox_testkit::mqtt::{ALL_DESIRED, retained, version_of};
use shadowbox_testkit::{
    Fleet, Mosquitto, MosquittoConfig, Protocol, TestDb, eventually, under_both_protocols,
};
use sqlx::PgPool;

/// Registers `count` devices of `tenant`, each with a desired document
/// (so each has a pending row).
async fn register_with_desired(pool: &PgPool, tenant: &str, count: usize, doc: serde_json::Value) {
    let tenant = TenantId::parse(tenant).unwrap();
    shadowbox_db::tenants::create_tenant(pool, &tenant)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    for i in 0..count {
        shadowbox_db::devices::register_device(
            &mut conn,
            &tenant,
            &DeviceId::parse(format!("d{i}")).unwrap(),
            Some(into_document(doc.clone()).unwrap()),
            &Default::default(),
            &DocumentLimits::default(),
            shadowbox_core::Actor::Admin,
        )
        .await
        .unwrap();
    }
}

/// `(status, last_error)` of every row of `tenant`.
async fn rows_of(pool: &PgPool, tenant: &str) -> Vec<(String, Option<String>)> {
    sqlx::query_as("SELECT status, last_error FROM outbox WHERE tenant_id = $1 ORDER BY id")
        .bind(tenant)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// A broker whose ACL lets anonymous clients write only tenant `allowed`'s
/// topics (and read everything).
fn broker_denying_one_tenant() -> Mosquitto {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    std::fs::write(
        &acl,
        "topic readwrite tenant/allowed/#\ntopic read tenant/#\n",
    )
    .unwrap();
    let broker = Mosquitto::start_with(MosquittoConfig {
        persistence: false,
        tls: None,
        extra: format!("acl_file {}\n", acl.display()),
    });
    // The broker has read the file.
    drop(dir);
    broker
}

async fn an_acl_refusal_is_dead_under_5_and_passes_for_delivered_under_3_1_1(protocol: Protocol) {
    let db = TestDb::new().await;
    let broker = broker_denying_one_tenant();
    register_with_desired(&db.pool, "allowed", 3, json!({"a": 1})).await;
    register_with_desired(&db.pool, "denied", 3, json!({"a": 1})).await;
    let relay = start_relay(&db.pool, &broker.url(), protocol, |s| {
        s.refusal_backoff.base_delay = Duration::from_millis(20);
        s.refusal_backoff.max_delay = Duration::from_millis(100);
        s.refusal_backoff.max_attempts = 3;
    });
    let settled = |tenant: &'static str, status: &'static str| {
        let pool = db.pool.clone();
        async move {
            rows_of(&pool, tenant)
                .await
                .iter()
                .all(|(s, _)| s == status)
        }
    };
    eventually(
        Duration::from_secs(20),
        "the allowed tenant is delivered",
        || settled("allowed", "delivered"),
    )
    .await;
    let denied_status = match protocol {
        Protocol::V5 => "dead",
        // 3.1.1 has no way to say no: Mosquitto acknowledges and drops it.
        Protocol::V311 => "delivered",
    };
    eventually(
        Duration::from_secs(20),
        &format!("the denied tenant is {denied_status}"),
        || settled("denied", denied_status),
    )
    .await;
    if protocol == Protocol::V5 {
        for (_, error) in rows_of(&db.pool, "denied").await {
            assert_eq!(
                error.as_deref(),
                Some("the broker refused it: 0x87 not authorized")
            );
        }
    }
    let retained = retained(&broker.url(), ALL_DESIRED).await;
    assert_eq!(retained.len(), 3, "only the allowed tenant is retained");
    assert!(retained.keys().all(|t| t.starts_with("tenant/allowed/")));
    relay.stop().await;
}

async fn a_row_larger_than_the_broker_takes_is_dead_without_a_reconnect_loop(protocol: Protocol) {
    let db = TestDb::new().await;
    // Under 5 the broker announces its limit in the CONNACK; under 3.1.1 it
    // just drops a client that sends more, so the relay is told the limit.
    let broker = Mosquitto::start_with(MosquittoConfig {
        persistence: false,
        tls: None,
        extra: "max_packet_size 2000\n".to_owned(),
    });
    let fleet = Fleet::register(&db, 3).await;
    let relay = start_relay(&db.pool, &broker.url(), protocol, |s| {
        if protocol == Protocol::V311 {
            s.max_packet_bytes = 2000;
        }
    });
    fleet.patch(0, json!({"small": 1})).await;
    fleet.patch(1, json!({"blob": "x".repeat(5000)})).await;
    fleet.patch(2, json!({"small": 2})).await;
    eventually(Duration::from_secs(20), "every row is settled", || async {
        let statuses = fleet.statuses().await;
        statuses.get("delivered") == Some(&2) && statuses.get("dead") == Some(&1)
    })
    .await;
    let (attempts, error): (i32, String) =
        sqlx::query_as("SELECT attempts, last_error FROM outbox WHERE status = 'dead'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 1, "dead at once, never retried");
    assert!(
        error.contains("larger than the broker accepts (2000 bytes)"),
        "{error}"
    );
    let interrupted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE attempts > 1 OR last_error LIKE 'connection lost%'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(interrupted, 0, "the connection was never dropped");
    let retained = retained(&broker.url(), ALL_DESIRED).await;
    assert_eq!(retained.len(), 2);
    relay.stop().await;
}

async fn the_next_broker_takes_over_and_resync_repairs_what_it_lacks(protocol: Protocol) {
    let db = TestDb::new().await;
    let mut first = Mosquitto::start();
    let second = Mosquitto::start();
    let fleet = Fleet::register(&db, 4).await;
    let urls = format!("{},{}", first.url(), second.url());
    // Without the reconcile pass, which would repair the second broker
    // right after the switch by itself (tests/reconcile.rs).
    let relay = start_relay(&db.pool, &urls, protocol, |s| {
        s.ack_timeout = Duration::from_secs(2);
        s.reconcile_interval = None;
    });
    fleet.patch(0, json!({"a": 1})).await;
    fleet.patch(1, json!({"a": 1})).await;
    fleet
        .wait_until_nothing_pending(Duration::from_secs(10))
        .await;
    assert_eq!(
        retained(&first.url(), ALL_DESIRED).await.len(),
        2,
        "the first broker is used first"
    );
    assert!(retained(&second.url(), ALL_DESIRED).await.is_empty());

    first.kill();
    fleet.patch(1, json!({"a": 2})).await;
    fleet.patch(2, json!({"a": 1})).await;
    eventually(
        Duration::from_secs(30),
        "the second broker has the new rows",
        || async {
            let retained = retained(&second.url(), ALL_DESIRED).await;
            retained.get(&fleet.topic(1)).map(|p| version_of(p)) == Some(2)
                && retained.contains_key(&fleet.topic(2))
        },
    )
    .await;
    // Device 0 was delivered to the first broker only: resync republishes
    // every device's current state to the broker in use.
    assert!(
        !retained(&second.url(), ALL_DESIRED)
            .await
            .contains_key(&fleet.topic(0))
    );
    shadowbox_db::outbox::resync(&db.pool, None).await.unwrap();
    eventually(
        Duration::from_secs(30),
        "resync repaired the second broker",
        || async {
            let retained = retained(&second.url(), ALL_DESIRED).await;
            retained.len() == 3 && retained.get(&fleet.topic(1)).map(|p| version_of(p)) == Some(2)
        },
    )
    .await;
    let statuses = fleet.statuses().await;
    assert!(!statuses.contains_key("dead"), "{statuses:?}");
    relay.stop().await;
}

under_both_protocols!(
    an_acl_refusal_is_dead_under_5_and_passes_for_delivered_under_3_1_1,
    a_row_larger_than_the_broker_takes_is_dead_without_a_reconnect_loop,
    the_next_broker_takes_over_and_resync_repairs_what_it_lacks,
);
