//! The relay's claiming and settling rules, one transaction at a time,
//! against a real PostgreSQL.

use std::time::Duration;

use serde_json::json;
use shadowbox_core::backoff::RefusalBackoff;
use shadowbox_db::relay;
use shadowbox_testkit::{Fleet, TestDb};
use sqlx::PgPool;

/// `devices` devices (`dev-000`, ...), each changed `versions` times.
async fn fleet(db: &TestDb, devices: usize, versions: usize) {
    let fleet = Fleet::register(db, devices).await;
    for d in 0..devices {
        for v in 0..versions {
            fleet.patch(d, json!({ "v": v })).await;
        }
    }
}

async fn status_of(pool: &PgPool, device: &str) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT version, status FROM outbox WHERE device_id = $1 ORDER BY id")
        .bind(device)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn two_batches_never_hold_the_same_device() {
    let db = TestDb::new().await;
    fleet(&db, 6, 1).await;
    let mut first = db.pool.begin().await.unwrap();
    let mut second = db.pool.begin().await.unwrap();
    let a = relay::lock_devices(&mut first, 4, 100).await.unwrap();
    let b = relay::lock_devices(&mut second, 4, 100).await.unwrap();
    assert_eq!(a.len(), 4);
    assert_eq!(b.len(), 2, "only the devices the first batch does not hold");
    let device = |r: &relay::LockedRow| (r.tenant_id.clone(), r.device_id.clone());
    assert!(
        b.iter()
            .all(|r| !a.iter().map(device).any(|d| d == device(r)))
    );
    first.commit().await.unwrap();
    second.commit().await.unwrap();
    // Released at commit: a new batch takes them all (still pending).
    let mut third = db.pool.begin().await.unwrap();
    assert_eq!(
        relay::lock_devices(&mut third, 10, 100)
            .await
            .unwrap()
            .len(),
        6
    );
}

#[tokio::test]
async fn only_the_newest_row_of_a_device_is_published() {
    let db = TestDb::new().await;
    fleet(&db, 1, 3).await;
    assert_eq!(
        status_of(&db.pool, "dev-000").await,
        vec![
            (1, "superseded".into()),
            (2, "superseded".into()),
            (3, "pending".into())
        ],
        "each write supersedes the older pending rows"
    );
    // Older rows pending again (e.g. revived by an operator) are superseded
    // by the relay too.
    sqlx::query("UPDATE outbox SET status = 'pending'")
        .execute(&db.pool)
        .await
        .unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    let devices = relay::lock_devices(&mut tx, 10, 100).await.unwrap();
    let claim = relay::take_newest(&mut tx, &devices).await.unwrap();
    assert_eq!(claim.superseded, 2);
    assert_eq!(claim.rows.len(), 1);
    assert_eq!(claim.rows[0].version, 3);
    tx.commit().await.unwrap();
    assert_eq!(
        status_of(&db.pool, "dev-000").await,
        vec![
            (1, "superseded".into()),
            (2, "superseded".into()),
            (3, "pending".into())
        ]
    );
}

#[tokio::test]
async fn a_pending_row_older_than_a_finished_one_is_never_published() {
    let db = TestDb::new().await;
    fleet(&db, 1, 2).await;
    sqlx::query(
        "UPDATE outbox SET status = CASE version WHEN 2 THEN 'delivered' ELSE 'pending' END",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    let devices = relay::lock_devices(&mut tx, 10, 100).await.unwrap();
    let claim = relay::take_newest(&mut tx, &devices).await.unwrap();
    assert!(claim.rows.is_empty());
    assert_eq!(claim.superseded, 1);
}

#[tokio::test]
async fn refused_publishes_back_off_then_die_and_interruptions_never_do() {
    let db = TestDb::new().await;
    fleet(&db, 2, 1).await;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM outbox ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let policy = RefusalBackoff {
        base_delay: Duration::from_secs(10),
        max_delay: Duration::from_secs(60),
        max_attempts: 3,
    };
    let mut conn = db.pool.acquire().await.unwrap();
    for attempt in 1..=3 {
        let dead = relay::mark_failed(&mut conn, &ids[..1], "refused", &policy)
            .await
            .unwrap();
        assert_eq!(dead, u64::from(attempt == 3));
        relay::mark_interrupted(&mut conn, &ids[1..], "connection lost")
            .await
            .unwrap();
    }
    let rows: Vec<(String, i32, bool, String)> = sqlx::query_as(
        "SELECT status, attempts, next_attempt_at <= now(), last_error FROM outbox ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows[0], ("dead".into(), 3, false, "refused".into()));
    assert_eq!(
        rows[1],
        ("pending".into(), 3, true, "connection lost".into())
    );
}
