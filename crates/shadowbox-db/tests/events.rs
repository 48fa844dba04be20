//! The event log's reads and retention against a real PostgreSQL.

use chrono::{Duration, Utc};
use serde_json::json;
use shadowbox_core::TenantId;
use shadowbox_core::event::{EventId, EventKind};
use shadowbox_db::events;
use shadowbox_testkit::TestDb;

#[tokio::test]
async fn events_are_read_in_id_order_and_purged_past_the_window() {
    let db = TestDb::new().await;
    let acme = TenantId::parse("acme").unwrap();
    let start = EventId { xid: 0, seq: 0 };
    for status in ["running", "paused"] {
        let mut tx = db.pool.begin().await.unwrap();
        let data = json!({ "status": status });
        events::record_rollout(&mut tx, &acme, 7, data.as_object().unwrap())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let read = events::read_after(&db.pool, &acme, None, start, 10)
        .await
        .unwrap();
    assert_eq!(read.len(), 2);
    assert!(read[0].id() < read[1].id());
    assert_eq!(read[1].event, EventKind::Rollout);
    assert_eq!(read[1].data.0["status"], "paused");
    assert_eq!(
        events::newest_visible(&db.pool).await.unwrap(),
        Some(read[1].id())
    );
    let after_first = events::read_after(&db.pool, &acme, None, read[0].id(), 10)
        .await
        .unwrap();
    assert_eq!(after_first.len(), 1);
    let other = TenantId::parse("globex").unwrap();
    assert!(
        events::read_after(&db.pool, &other, None, start, 10)
            .await
            .unwrap()
            .is_empty()
    );

    sqlx::query("UPDATE events SET at = now() - interval '2 hours' WHERE seq = $1")
        .bind(read[0].seq)
        .execute(&db.pool)
        .await
        .unwrap();
    let deleted = events::purge(&db.pool, Utc::now() - Duration::hours(1), 1)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let kept = events::read_after(&db.pool, &acme, None, start, 10)
        .await
        .unwrap();
    assert_eq!(
        kept.iter().map(|e| e.id()).collect::<Vec<_>>(),
        vec![read[1].id()]
    );
}
