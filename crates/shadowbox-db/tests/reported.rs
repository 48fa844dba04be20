//! `shadowbox_db::reported::apply_reported`, the ingester's one statement,
//! against a real database.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use shadowbox_core::payload::Rejection;
use shadowbox_core::{DeviceId, Document, TenantId};
use shadowbox_db::reported::{
    ReceivedRejection, RejectionOutcome, ReportedOutcome, ReportedState, ReportedUpdate,
    ReportedWrite, apply_reported,
};
use shadowbox_testkit::{Fleet, TestDb};

fn update(device: &str, version: i64, doc: serde_json::Value, age_s: i64) -> ReportedUpdate {
    let serde_json::Value::Object(document) = doc else {
        panic!("a document is an object")
    };
    let received_at = Utc::now() - Duration::seconds(age_s);
    ReportedUpdate {
        tenant_id: TenantId::parse("acme").unwrap(),
        device_id: DeviceId::parse(device).unwrap(),
        reported: Some(ReportedState {
            document,
            version,
            received_at,
        }),
        rejection: None,
        seen_at: received_at,
    }
}

/// `update` with a rejection of `rejected` as well.
fn rejecting(mut update: ReportedUpdate, rejected: i64, reason: &str) -> ReportedUpdate {
    update.rejection = Some(ReceivedRejection {
        rejection: Rejection {
            version: rejected,
            reason: reason.to_owned(),
        },
        received_at: update.seen_at,
    });
    update
}

/// An update carrying only a rejection.
fn rejection_only(device: &str, rejected: i64, reason: &str) -> ReportedUpdate {
    let mut only = rejecting(update(device, 0, json!({}), 0), rejected, reason);
    only.reported = None;
    only
}

fn outcomes(writes: &[ReportedWrite]) -> Vec<ReportedOutcome> {
    writes.iter().map(|w| w.outcome).collect()
}

/// `(applied_at, desired_committed_at, rejected_version, rejected_reason)`.
async fn convergence(
    fleet: &Fleet,
    device: &str,
) -> (
    Option<DateTime<Utc>>,
    DateTime<Utc>,
    Option<i64>,
    Option<String>,
) {
    sqlx::query_as(
        "SELECT applied_at, desired_committed_at, rejected_version, rejected_reason
         FROM device_state WHERE tenant_id = 'acme' AND device_id = $1",
    )
    .bind(device)
    .fetch_one(&fleet.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn outcomes_come_back_in_input_order_and_versions_never_go_back() {
    let db = TestDb::new().await;
    let fleet = Fleet::register_ids(&db.pool, "acme", ["a", "b", "gone"]).await;
    fleet.desired_at(5).await;
    let mut conn = db.pool.acquire().await.unwrap();
    shadowbox_db::devices::decommission_device(
        &mut conn,
        &fleet.tenant,
        &DeviceId::parse("gone").unwrap(),
        shadowbox_core::Actor::Admin,
    )
    .await
    .unwrap();

    let first = apply_reported(
        &db.pool,
        &[
            update("b", 5, json!({"b": 5}), 0),
            update("nobody", 1, json!({}), 0),
            update("a", 3, json!({"a": 3}), 0),
            update("gone", 1, json!({}), 0),
        ],
    )
    .await
    .unwrap();
    use ReportedOutcome::*;
    assert_eq!(
        outcomes(&first),
        [Applied, Unknown, Applied, Decommissioned]
    );

    let seen_b = fleet.record("b").await.last_seen.unwrap();
    let second = apply_reported(
        &db.pool,
        &[
            // Older than stored: only last_seen moves, and only forward.
            update("b", 4, json!({"b": 4}), -1),
            // Same version: replaces.
            update("a", 3, json!({"a": "3 again"}), 0),
        ],
    )
    .await
    .unwrap();
    assert_eq!(outcomes(&second), [Stale, Applied]);
    let b = fleet.record("b").await;
    assert_eq!(
        (b.reported_version, b.reported_state.0["b"].clone()),
        (5, json!(5))
    );
    assert!(b.last_seen.unwrap() > seen_b);
    let a = fleet.record("a").await;
    assert_eq!(a.reported_state.0["a"], json!("3 again"));

    // A message received earlier than the stored last_seen never moves it back.
    let stale_clock = apply_reported(&db.pool, &[update("a", 4, json!({}), 3600)])
        .await
        .unwrap();
    assert_eq!(outcomes(&stale_clock), [Applied]);
    let a_after = fleet.record("a").await;
    assert_eq!(a_after.reported_version, 4);
    assert_eq!(a_after.last_seen, a.last_seen);
    let gone = fleet.record("gone").await;
    assert_eq!((gone.reported_version, gone.last_seen), (0, None));
    assert_eq!(gone.reported_state.0, Document::new());
}

#[tokio::test]
async fn a_version_above_the_desired_one_is_refused_and_never_stored() {
    let db = TestDb::new().await;
    let fleet = Fleet::register_ids(&db.pool, "acme", ["a"]).await;
    fleet.desired_at(3).await;
    apply_reported(&db.pool, &[update("a", 2, json!({"v": 2}), 1)])
        .await
        .unwrap();
    let seen = fleet.record("a").await.last_seen.unwrap();

    let writes = apply_reported(
        &db.pool,
        &[update("a", i64::MAX, json!({"v": "pinned"}), 0)],
    )
    .await
    .unwrap();
    assert_eq!(outcomes(&writes), [ReportedOutcome::Ahead]);
    let a = fleet.record("a").await;
    assert_eq!(
        (a.reported_version, a.reported_state.0["v"].clone()),
        (2, json!(2))
    );
    assert!(a.last_seen.unwrap() > seen, "the device is alive");

    // Its desired version is still reachable: the device was not pinned.
    let writes = apply_reported(&db.pool, &[update("a", 3, json!({"v": 3}), 0)])
        .await
        .unwrap();
    assert_eq!(outcomes(&writes), [ReportedOutcome::Applied]);
    assert_eq!(fleet.record("a").await.reported_version, 3);
}

#[tokio::test]
async fn applied_at_is_set_once_per_version_and_reset_by_the_next() {
    let db = TestDb::new().await;
    let fleet = Fleet::register_ids(&db.pool, "acme", ["a"]).await;
    fleet.patch(0, json!({"fw": "1"})).await;
    let (applied, committed, _, _) = convergence(&fleet, "a").await;
    assert_eq!(applied, None);

    // Reported before it reaches the version: nothing applied.
    let writes = apply_reported(&db.pool, &[update("a", 0, json!({}), 0)])
        .await
        .unwrap();
    assert_eq!(writes[0].commit_to_applied_seconds, None);

    let first = apply_reported(&db.pool, &[update("a", 1, json!({"fw": "1"}), 0)])
        .await
        .unwrap();
    let seconds = first[0]
        .commit_to_applied_seconds
        .expect("the first report of version 1 applies it");
    let (applied, _, _, _) = convergence(&fleet, "a").await;
    let applied = applied.expect("applied_at is set");
    assert!(applied >= committed);
    let expected = (applied - committed).as_seconds_f64();
    assert!(
        (seconds - expected).abs() < 0.001,
        "{seconds} vs {expected}"
    );

    // The same version again: applied_at stays, nothing is observed.
    let again = apply_reported(&db.pool, &[update("a", 1, json!({"fw": "1"}), 0)])
        .await
        .unwrap();
    assert_eq!(again[0].commit_to_applied_seconds, None);
    assert_eq!(convergence(&fleet, "a").await.0, Some(applied));

    // A new desired version resets it and restarts the clock.
    fleet.patch(0, json!({"fw": "2"})).await;
    let (reset, committed_2, _, _) = convergence(&fleet, "a").await;
    assert_eq!(reset, None);
    assert!(committed_2 > committed);
    let second = apply_reported(&db.pool, &[update("a", 2, json!({"fw": "2"}), 0)])
        .await
        .unwrap();
    assert!(second[0].commit_to_applied_seconds.is_some());
    assert!(convergence(&fleet, "a").await.0.unwrap() > applied);
}

#[tokio::test]
async fn a_rejection_is_recorded_only_for_the_current_unapplied_version() {
    let db = TestDb::new().await;
    let fleet = Fleet::register_ids(&db.pool, "acme", ["a", "b", "gone"]).await;
    for _ in 0..2 {
        fleet.patch(0, json!({"fw": Utc::now().to_rfc3339()})).await;
    }
    fleet.desired_at(2).await;
    let mut conn = db.pool.acquire().await.unwrap();
    shadowbox_db::devices::decommission_device(
        &mut conn,
        &fleet.tenant,
        &DeviceId::parse("gone").unwrap(),
        shadowbox_core::Actor::Admin,
    )
    .await
    .unwrap();

    let writes = apply_reported(
        &db.pool,
        &[
            // Refuses its current version 2, still at 1.
            rejecting(update("a", 1, json!({"fw": "1"}), 0), 2, "no space left"),
            // Refuses version 1, which is not its current one.
            rejection_only("b", 1, "too old"),
            rejection_only("gone", 2, "gone"),
            rejection_only("nobody", 2, "who"),
        ],
    )
    .await
    .unwrap();
    let rejections: Vec<_> = writes.iter().map(|w| w.rejection).collect();
    use RejectionOutcome::*;
    assert_eq!(
        rejections,
        [Some(Recorded), Some(Ignored), Some(Ignored), Some(Ignored)]
    );
    assert_eq!(
        outcomes(&writes),
        [
            ReportedOutcome::Applied,
            ReportedOutcome::NoReport,
            ReportedOutcome::Decommissioned,
            ReportedOutcome::Unknown
        ]
    );
    let (_, _, version, reason) = convergence(&fleet, "a").await;
    assert_eq!(
        (version, reason.as_deref()),
        (Some(2), Some("no space left"))
    );
    let (_, _, version, _) = convergence(&fleet, "b").await;
    assert_eq!(version, None);
    assert!(
        fleet.record("b").await.last_seen.is_some(),
        "a rejection alone moves last_seen"
    );

    // A rejection of a version the same message reports applied is ignored.
    let writes = apply_reported(
        &db.pool,
        &[rejecting(update("b", 2, json!({}), 0), 2, "and yet")],
    )
    .await
    .unwrap();
    assert_eq!(writes[0].rejection, Some(Ignored));
}

#[tokio::test]
async fn concurrent_batches_in_opposite_orders_neither_deadlock_nor_regress() {
    let db = TestDb::new().await;
    let ids: Vec<String> = (0..200).map(|i| format!("d{i:03}")).collect();
    let fleet = Fleet::register_ids(&db.pool, "acme", ids.clone()).await;
    fleet.desired_at(20).await;
    for round in 0..10_i64 {
        let forward: Vec<ReportedUpdate> = ids
            .iter()
            .map(|d| update(d, 2 * round + 1, json!({"v": 2 * round + 1}), 0))
            .collect();
        let backward: Vec<ReportedUpdate> = ids
            .iter()
            .rev()
            .map(|d| update(d, 2 * round + 2, json!({"v": 2 * round + 2}), 0))
            .collect();
        let (a, b) = tokio::join!(
            apply_reported(&db.pool, &forward),
            apply_reported(&db.pool, &backward)
        );
        a.expect("no deadlock");
        b.expect("no deadlock");
    }
    for d in &ids {
        let row = fleet.record(d).await;
        assert_eq!(
            (row.reported_version, row.reported_state.0["v"].clone()),
            (20, json!(20))
        );
    }
}
