//! Desired history against a real PostgreSQL: written with every change
//! in its transaction, filled in by deliveries and reports, purged.

use chrono::{Duration, SubsecRound as _, Utc};
use serde_json::{Value, json};
use shadowbox_core::document::into_document;
use shadowbox_core::payload::Rejection;
use shadowbox_core::tags::Tags;
use shadowbox_core::{Actor, Change, DeviceId, DocumentLimits, TenantId};
use shadowbox_db::desired::{DesiredChange, apply_desired_change};
use shadowbox_db::history;
use shadowbox_db::reported::{ReceivedRejection, ReportedState, ReportedUpdate, apply_reported};
use shadowbox_db::{devices, relay};
use shadowbox_testkit::TestDb;
use sqlx::PgPool;

async fn change(pool: &PgPool, device: &DeviceId, change: DesiredChange, actor: Actor) {
    let mut tx = pool.begin().await.unwrap();
    apply_desired_change(
        &mut tx,
        &acme(),
        device,
        change,
        None,
        &DocumentLimits::default(),
        actor,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn merge(patch: Value) -> DesiredChange {
    DesiredChange::Merge(into_document(patch).unwrap())
}

fn replace(doc: Value) -> DesiredChange {
    DesiredChange::Replace(into_document(doc).unwrap())
}

/// `(version, change, body, actor)` of the device's history, oldest first.
async fn entries(pool: &PgPool, device: &DeviceId) -> Vec<(i64, Change, Option<Value>, String)> {
    let mut rows = history::list(pool, &acme(), device, None, 100)
        .await
        .unwrap();
    rows.reverse();
    rows.into_iter()
        .map(|r| (r.version, r.change, r.body.map(|b| b.0), r.actor))
        .collect()
}

async fn register(pool: &PgPool, device: &str, desired: Option<Value>, actor: Actor) -> DeviceId {
    let device = DeviceId::parse(device).unwrap();
    let mut conn = pool.acquire().await.unwrap();
    devices::register_device(
        &mut conn,
        &acme(),
        &device,
        desired.map(|d| into_document(d).unwrap()),
        &Tags::default(),
        &DocumentLimits::default(),
        actor,
    )
    .await
    .unwrap();
    device
}

#[tokio::test]
async fn every_change_is_recorded_with_its_body_and_actor() {
    let db = TestDb::new().await;
    shadowbox_db::tenants::create_tenant(&db.pool, &acme())
        .await
        .unwrap();
    let key = uuid::Uuid::new_v4();
    let d = register(&db.pool, "d", Some(json!({"a": 1})), Actor::Key(key)).await;
    change(
        &db.pool,
        &d,
        merge(json!({"b": 2, "a": null})),
        Actor::Admin,
    )
    .await;
    // A write that changes nothing makes no version and no history.
    change(&db.pool, &d, merge(json!({"b": 2})), Actor::Admin).await;
    change(&db.pool, &d, replace(json!({"c": 3})), Actor::Key(key)).await;
    change(&db.pool, &d, merge(json!({"fw": "2"})), Actor::Rollout(7)).await;
    change(&db.pool, &d, replace(json!({"c": 3})), Actor::Rollout(7)).await;
    let mut tx = db.pool.begin().await.unwrap();
    devices::decommission_device(&mut tx, &acme(), &d, Actor::Admin)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let (_, changed) = devices::decommission_device(&mut conn, &acme(), &d, Actor::Admin)
        .await
        .unwrap();
    assert!(!changed);
    let bare = register(&db.pool, "bare", None, Actor::Admin).await;

    let k = format!("key:{key}");
    assert_eq!(
        entries(&db.pool, &d).await,
        vec![
            (1, Change::Register, Some(json!({"a": 1})), k.clone()),
            (
                2,
                Change::Merge,
                Some(json!({"b": 2, "a": null})),
                "admin".into()
            ),
            (3, Change::Replace, Some(json!({"c": 3})), k),
            (
                4,
                Change::Rollout,
                Some(json!({"fw": "2"})),
                "rollout:7".into()
            ),
            (
                5,
                Change::Rollback,
                Some(json!({"c": 3})),
                "rollout:7".into()
            ),
            (5, Change::Decommission, None, "admin".into()),
        ]
    );
    assert_eq!(
        entries(&db.pool, &bare).await,
        vec![(0, Change::Register, None, "admin".into())]
    );
}

#[tokio::test]
async fn a_rolled_back_change_leaves_no_history() {
    let db = TestDb::new().await;
    shadowbox_db::tenants::create_tenant(&db.pool, &acme())
        .await
        .unwrap();
    let d = register(&db.pool, "d", None, Actor::Admin).await;
    let mut tx = db.pool.begin().await.unwrap();
    apply_desired_change(
        &mut tx,
        &acme(),
        &d,
        merge(json!({"a": 1})),
        None,
        &DocumentLimits::default(),
        Actor::Admin,
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        entries(&db.pool, &d).await.len(),
        1,
        "the registration only"
    );
}

#[tokio::test]
async fn delivery_and_application_are_filled_in_when_they_happen() {
    let db = TestDb::new().await;
    shadowbox_db::tenants::create_tenant(&db.pool, &acme())
        .await
        .unwrap();
    let d = register(&db.pool, "d", Some(json!({"a": 1})), Actor::Admin).await;
    change(&db.pool, &d, merge(json!({"a": 2})), Actor::Admin).await;
    change(&db.pool, &d, merge(json!({"a": 3})), Actor::Admin).await;

    // The relay delivers version 3 (1 and 2 were superseded).
    // PostgreSQL keeps microseconds.
    let acked_at = (Utc::now() - Duration::seconds(5)).trunc_subsecs(6);
    let mut tx = db.pool.begin().await.unwrap();
    let locked = relay::lock_devices(&mut tx, 10, 100).await.unwrap();
    let claim = relay::take_newest(&mut tx, &locked).await.unwrap();
    let acked: Vec<_> = claim.rows.iter().map(|r| (r.id, acked_at)).collect();
    relay::mark_delivered(&mut tx, &acked).await.unwrap();
    tx.commit().await.unwrap();
    // A repeated PUBACK of a delivered row changes nothing: the first one
    // is the delivery.
    let again: Vec<_> = acked.iter().map(|&(id, _)| (id, Utc::now())).collect();
    let mut conn = db.pool.acquire().await.unwrap();
    relay::mark_delivered(&mut conn, &again).await.unwrap();
    let (outbox_delivered_at, attempts): (Option<chrono::DateTime<Utc>>, i32) =
        sqlx::query_as("SELECT delivered_at, attempts FROM outbox WHERE id = $1")
            .bind(acked[0].0)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!((outbox_delivered_at, attempts), (Some(acked_at), 1));
    let delivered_events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event = 'delivered'")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(delivered_events, 1);
    drop(conn);

    // The device refuses version 3, then reports version 2, then 3; a
    // repeat of 3 changes nothing.
    let at = |age| Utc::now() - Duration::seconds(age);
    let report = |version, age| ReportedUpdate {
        tenant_id: acme(),
        device_id: d.clone(),
        reported: Some(ReportedState {
            document: serde_json::Map::new(),
            version,
            received_at: at(age),
        }),
        rejection: None,
        seen_at: at(age),
    };
    let refusal = ReportedUpdate {
        tenant_id: acme(),
        device_id: d.clone(),
        reported: None,
        rejection: Some(ReceivedRejection {
            rejection: Rejection {
                version: 3,
                reason: "battery low".into(),
            },
            received_at: at(5),
        }),
        seen_at: at(5),
    };
    apply_reported(&db.pool, &[refusal]).await.unwrap();
    apply_reported(&db.pool, &[report(2, 4)]).await.unwrap();
    apply_reported(&db.pool, &[report(3, 3)]).await.unwrap();
    let applied_3 = history::list(&db.pool, &acme(), &d, None, 1).await.unwrap()[0].applied_at;
    apply_reported(&db.pool, &[report(3, 0)]).await.unwrap();

    let rows = history::list(&db.pool, &acme(), &d, None, 10)
        .await
        .unwrap();
    let by_version = |v: i64| rows.iter().find(|r| r.version == v).unwrap();
    let close = |at: Option<chrono::DateTime<Utc>>, age: i64| {
        let at = at.expect("filled in");
        (at - (Utc::now() - Duration::seconds(age)))
            .num_seconds()
            .abs()
            <= 1
    };
    assert_eq!(by_version(3).delivered_at, Some(acked_at));
    assert_eq!(by_version(1).delivered_at, None, "superseded, never sent");
    assert!(close(by_version(2).applied_at, 4));
    assert!(close(by_version(3).applied_at, 3));
    assert_eq!(by_version(3).applied_at, applied_3, "set once");
    assert_eq!(by_version(1).applied_at, None, "skipped by the device");
    assert_eq!(
        by_version(3).rejection_reason.as_deref(),
        Some("battery low")
    );
    assert!(close(by_version(3).rejected_at, 5));
    assert_eq!(by_version(2).rejected_at, None);

    // A clear's PUBACK is its decommission's delivery.
    let mut tx = db.pool.begin().await.unwrap();
    devices::decommission_device(&mut tx, &acme(), &d, Actor::Admin)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    let locked = relay::lock_devices(&mut tx, 10, 100).await.unwrap();
    let claim = relay::take_newest(&mut tx, &locked).await.unwrap();
    let acked: Vec<_> = claim.rows.iter().map(|r| (r.id, Utc::now())).collect();
    relay::mark_delivered(&mut tx, &acked).await.unwrap();
    tx.commit().await.unwrap();
    let rows = history::list(&db.pool, &acme(), &d, None, 10)
        .await
        .unwrap();
    assert_eq!(rows[0].change, Change::Decommission);
    assert!(rows[0].delivered_at.is_some());
    assert_eq!(
        rows[1].delivered_at,
        Some(acked_at),
        "version 3 keeps its own"
    );
}

#[tokio::test]
async fn purge_deletes_only_older_changes() {
    let db = TestDb::new().await;
    shadowbox_db::tenants::create_tenant(&db.pool, &acme())
        .await
        .unwrap();
    let d = register(&db.pool, "d", Some(json!({"a": 1})), Actor::Admin).await;
    sqlx::query("UPDATE desired_history SET committed_at = now() - interval '2 days'")
        .execute(&db.pool)
        .await
        .unwrap();
    change(&db.pool, &d, merge(json!({"a": 2})), Actor::Admin).await;
    let deleted = history::purge(&db.pool, Utc::now() - Duration::days(1), 1)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(
        entries(&db.pool, &d).await,
        vec![(2, Change::Merge, Some(json!({"a": 2})), "admin".into())]
    );
}
