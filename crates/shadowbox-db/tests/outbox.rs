//! Operators' outbox operations racing the API's writes.

use std::sync::Arc;

use serde_json::json;
use shadowbox_testkit::{Fleet, TestDb};

#[tokio::test]
async fn resync_racing_writes_never_leaves_an_older_version_newest() {
    let db = TestDb::new().await;
    let fleet = Arc::new(Fleet::register(&db, 20).await);
    for d in 0..20 {
        fleet.patch(d, json!({ "n": 0 })).await;
    }
    let writers: Vec<_> = (0..20)
        .map(|d| {
            let fleet = fleet.clone();
            tokio::spawn(async move {
                for n in 1..=20 {
                    fleet.patch(d, json!({ "n": n })).await;
                }
            })
        })
        .collect();
    for _ in 0..5 {
        shadowbox_db::outbox::resync(&db.pool, None).await.unwrap();
    }
    for writer in writers {
        writer.await.unwrap();
    }
    // For every device, the newest row (the one the relay publishes) carries
    // the stored version.
    let stale: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT d.device_id, d.desired_version, o.version FROM device_state d
         JOIN LATERAL (SELECT version FROM outbox o
                       WHERE o.tenant_id = d.tenant_id AND o.device_id = d.device_id
                       ORDER BY id DESC LIMIT 1) o ON true
         WHERE o.version <> d.desired_version",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        stale.is_empty(),
        "newest rows behind the stored version: {stale:?}"
    );
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE status = 'pending'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(pending, 20, "one pending row per device");
}
